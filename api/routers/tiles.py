"""Vector tiles (OGC API Tiles, Mapbox Vector Tiles) of every layer, built by PostGIS.

``/collections/{id}/tiles/WebMercatorQuad/{z}/{x}/{y}`` is one tile from ``ST_AsMVT`` with the
layer's properties on each feature as numbers and strings, geometry simplified to the tile's
pixel, at most ``max_tile_features`` features, 204 when empty. Published runs never change, so a
tile's ETag is its layer's id and version and the tile's parameter object; addresses pinned to
a run (``?run=N``, which TileJSON hands out) may be cached for a year. Every tile made is kept
as bytes in memory (gzipped once when a client asks), and a pinned tile's whole answer too
(:mod:`api.cache`), so a warm tile is answered before routing, without the database.
"""

from __future__ import annotations

import gzip
import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.cache import ByteCache, keep_answer
from api.deps import ConnDep
from api.http import (
    base_url,
    cached,
    check_known,
    etag,
    json_response,
    layer_etag,
    link,
    not_modified,
)
from api.openapi import ERRORS, NOT_MODIFIED
from api.query import MAX_ZOOM, RunPin, TileQuery, check_tile
from api.routers.features import JSON, MVT
from placespend.downloads import attribution_text
from store import features as store
from store.db import pooled

router = APIRouter(tags=["Vector tiles"])

TMS = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
REL_TILING = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
_HALF = 20037508.3427892
#: The zoom levels TileJSON offers (tiles exist to MAX_ZOOM; wards need no more than this).
MAX_ADVERTISED_ZOOM = 18
_TMS_PATH = Annotated[str, Path(description="The tile matrix set: WebMercatorQuad",
                                pattern="^WebMercatorQuad$")]


@router.get("/tileMatrixSets", summary="Tiling schemes")
def tile_matrix_sets(request: Request) -> Response:
    """The one tiling scheme tiles are served in: WebMercatorQuad."""
    base = base_url(request)
    return json_response({"tileMatrixSets": [{
        "id": TMS, "title": "Google Maps Compatible for the World", "uri": TMS_URI,
        "links": [link(f"{base}/tileMatrixSets/{TMS}", "self", JSON, "The definition")],
    }]})


@router.get("/tileMatrixSets/{tileMatrixSetId}", summary="A tiling scheme's definition",
            responses=ERRORS)
def tile_matrix_set(tileMatrixSetId: _TMS_PATH) -> Response:  # noqa: N803
    """The WebMercatorQuad tile matrix set (OGC 2D TileMatrixSet), zoom 0 to MAX_ZOOM."""
    matrices = []
    for z in range(MAX_ZOOM + 1):
        n = 2 ** z
        matrices.append({
            "id": str(z), "scaleDenominator": 559082264.0287178 / n,
            "cellSize": 156543.03392804097 / n, "cornerOfOrigin": "topLeft",
            "pointOfOrigin": [-_HALF, _HALF], "tileWidth": 256, "tileHeight": 256,
            "matrixWidth": n, "matrixHeight": n,
        })
    return json_response({
        "id": TMS, "title": "Google Maps Compatible for the World", "uri": TMS_URI,
        "crs": CRS_3857, "orderedAxes": ["X", "Y"], "wellKnownScaleSet":
            "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": matrices,
    })


def _address(base: str, layer: store.Layer, tail: str = "") -> str:
    """``…/collections/{id}/tiles/WebMercatorQuad{tail}``, pinned to the layer's run if any."""
    pin = f"?run={layer.run_id}" if layer.run_id is not None else ""
    return f"{base}/collections/{layer.id}/tiles/{TMS}{tail}{pin}"


@router.get("/collections/{collectionId}/tiles", summary="Tilesets of a collection",
            responses=ERRORS)
def tilesets(request: Request, conn: ConnDep, collectionId: str,  # noqa: N803
             run: RunPin = None) -> Response:
    """The vector tilesets of a layer (one: WebMercatorQuad)."""
    check_known(request, frozenset({"run"}))
    layer = store.get_layer(conn, collectionId, run)
    base = base_url(request)
    return json_response({"tilesets": [{
        "title": f"{layer.title} (vector tiles)", "dataType": "vector", "crs": CRS_3857,
        "tileMatrixSetURI": TMS_URI,
        "links": [
            link(_address(base, layer), "self", JSON, "The tileset"),
            link(f"{base}/tileMatrixSets/{TMS}", REL_TILING, JSON, "The tiling scheme"),
        ],
    }]})


def _fields(layer: store.Layer) -> dict[str, str]:
    kinds = {"integer": "Number", "number": "Number", "string": "String"}
    return {p["name"]: kinds.get(p["type"], "String") for p in layer.properties}


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}",
            summary="Tileset metadata (OGC API Tiles)", responses=ERRORS)
def tileset(request: Request, conn: ConnDep, collectionId: str,  # noqa: N803
            tileMatrixSetId: _TMS_PATH, run: RunPin = None) -> Response:  # noqa: N803
    """The tileset: its tiling scheme, the tile address template, its layer and properties."""
    check_known(request, frozenset({"run"}))
    layer = store.get_layer(conn, collectionId, run)
    extent = store.summary(conn, layer)
    base = base_url(request)
    doc: dict[str, Any] = {
        "title": f"{layer.title} (vector tiles)", "dataType": "vector", "crs": CRS_3857,
        "tileMatrixSetURI": TMS_URI,
        "layers": [{"id": layer.id, "dataType": "polygons", "title": layer.title,
                    "propertiesSchema": {"type": "object", "properties": {
                        p["name"]: {"type": p["type"]} for p in layer.properties}}}],
        "links": [
            link(_address(base, layer), "self", JSON, "This tileset"),
            link(f"{base}/tileMatrixSets/{TMS}", REL_TILING, JSON, "The tiling scheme"),
            {"href": _address(base, layer, "/{tileMatrix}/{tileCol}/{tileRow}"), "rel": "item",
             "type": MVT, "templated": True, "title": "A tile (Mapbox Vector Tile)"},
            link(_address(base, layer, "/tilejson.json"), "describedby", JSON,
                 "TileJSON, for MapLibre and Leaflet"),
        ],
    }
    if extent["bbox"]:
        doc["boundingBox"] = {"lowerLeft": extent["bbox"][:2], "upperRight": extent["bbox"][2:],
                              "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
    return json_response(doc)


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json",
            summary="TileJSON 3.0 of a collection's vector tiles", responses=ERRORS)
def tilejson(request: Request, conn: ConnDep, collectionId: str,  # noqa: N803
             tileMatrixSetId: _TMS_PATH, run: RunPin = None) -> Response:  # noqa: N803
    """TileJSON for MapLibre, Leaflet or QGIS: the tile URL pinned to the run it serves."""
    check_known(request, frozenset({"run"}))
    layer = store.get_layer(conn, collectionId, run)
    extent = store.summary(conn, layer)
    bounds = extent["bbox"] or [-180.0, -85.0511, 180.0, 85.0511]
    minzoom = _fit_zoom(bounds)
    return json_response({
        "tilejson": "3.0.0",
        "name": layer.id,
        "description": layer.title,
        "version": "1.0.0",
        "attribution": attribution_text(store.sources(conn, layer)),
        "scheme": "xyz",
        "tiles": [_address(base_url(request), layer, "/{z}/{x}/{y}")],
        "minzoom": 0,
        "maxzoom": MAX_ADVERTISED_ZOOM,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, minzoom],
        "vector_layers": [{"id": layer.id, "fields": _fields(layer), "minzoom": 0,
                           "maxzoom": MAX_ADVERTISED_ZOOM, "description": layer.description}],
    })


def _fit_zoom(bounds: list[float]) -> int:
    """The largest zoom at which the bounds fit in about one tile (for TileJSON's center)."""
    width = max(bounds[2] - bounds[0], 1e-6)
    return int(max(0, min(MAX_ADVERTISED_ZOOM, math.floor(math.log2(360.0 / width)))))


def pinned_tag(collection_id: str, run: int, q: TileQuery) -> str:
    """The ETag (and cache key) of a tile of a publication pinned to its run.

    The same as :func:`api.http.layer_etag` of that publication, whose version is its run,
    so it is known before the database is asked.
    """
    return etag(collection_id, store.publication_version(run), "tile", q)


def _wants_gzip(request: Request) -> bool:
    accept = request.headers.get("accept-encoding", "").replace(" ", "").lower()
    return "gzip" in accept and "gzip;q=0," not in accept + "," and "gzip;q=0.0" not in accept


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _features_in(tile: bytes) -> int:
    """How many features a Mapbox Vector Tile holds (its layers' field 2), read, not decoded."""
    count, i = 0, 0
    while i < len(tile):
        key, i = _varint(tile, i)
        if key & 7 != 2:  # a tile holds only layers (field 3, length-delimited)
            return count
        size, i = _varint(tile, i)
        end, j = i + size, i
        while j < end:
            field, j = _varint(tile, j)
            kind = field & 7
            if kind == 2:
                length, j = _varint(tile, j)
                count += field >> 3 == 2
                j += length
            elif kind == 0:
                _, j = _varint(tile, j)
            elif kind == 5:
                j += 4
            elif kind == 1:
                j += 8
            else:
                return count
        i = end
    return count


def _truncated(body: bytes, cap: int) -> dict[str, str]:
    """``X-Placespend-Truncated: true`` when the tile holds ``cap`` features, the most it may.

    The query stops at ``cap`` (store.features.tile) without counting the rest, so a tile
    that reached it is said to have dropped some. Every feature takes 2 bytes at least, so a
    smaller tile is not read.
    """
    if cap <= 0 or len(body) < 2 * cap or _features_in(body) < cap:
        return {}
    return {"X-Placespend-Truncated": "true"}


def _tile_response(request: Request, cache: ByteCache, tag: str, body: bytes | None,
                   pinned: bool, cap: int = 0) -> Response:
    """The tile (gzipped once and kept, when the client takes gzip), 204 empty, or 304."""
    if body is None or not_modified(request, tag):
        return cached(request, tag, b"", MVT, pinned=pinned)
    if not body:
        response = cached(request, tag, b"", MVT, pinned=pinned)
        response.status_code = 204
        return response
    truncated = _truncated(body, cap)
    if _wants_gzip(request):
        zipped = cache.get(tag + ":gzip")
        if zipped is None:
            zipped = gzip.compress(body, compresslevel=6, mtime=0)
            cache.put(tag + ":gzip", zipped)
        return cached(request, tag, zipped, MVT, pinned=pinned,
                      headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding",
                               **truncated})
    return cached(request, tag, body, MVT, pinned=pinned, headers=truncated)


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}",
    summary="One vector tile (Mapbox Vector Tile)",
    response_class=Response,
    responses={200: {"content": {MVT: {}}, "description": "A Mapbox Vector Tile",
                     "headers": {"X-Placespend-Truncated": {
                         "description": "true when the tile holds max_tile_features features, "
                                        "the most it may: others were dropped",
                         "schema": {"type": "string", "enum": ["true"]}}}},
               204: {"description": "No feature in this tile"}, **NOT_MODIFIED, **ERRORS},
)
async def tile(
    request: Request,
    collectionId: str,  # noqa: N803
    tileMatrixSetId: _TMS_PATH,  # noqa: N803
    z: Annotated[int, Path(ge=0, le=MAX_ZOOM, description="Zoom level (tile matrix)")],
    x: Annotated[int, Path(ge=0, le=2**MAX_ZOOM - 1, description="Column, 0 at the west")],
    y: Annotated[int, Path(ge=0, le=2**MAX_ZOOM - 1, description="Row, 0 at the north")],
    run: RunPin = None,
) -> Response:
    """One tile of a layer: its features with every property, or 204 when there are none."""
    check_known(request, frozenset({"run"}))
    check_tile(z, x, y)
    settings = request.app.state.settings
    cache = request.app.state.cache
    q = TileQuery(z=z, x=x, y=y, cap=settings.max_tile_features)
    if run is not None:  # a pinned publication: its key is known without the database
        tag = pinned_tag(collectionId, run, q)
        body = cache.get(tag)
        if body is not None:
            return keep_answer(request, _tile_response(request, cache, tag, body, True, q.cap))

    def render() -> tuple[str, bytes | None]:
        """The tile's key and bytes (None: the client has it, so it is not made)."""
        with pooled(request.app.state.pool) as conn:
            layer = store.get_layer(conn, collectionId, run)
            key = layer_etag(layer, "tile", q)
            found = cache.get(key)
            if found is not None or not_modified(request, key):
                return key, found
            data = store.tile(conn, layer, z, x, y, cap=q.cap)
        cache.put(key, data)
        return key, data

    tag, body = await run_in_threadpool(render)
    response = _tile_response(request, cache, tag, body, run is not None, q.cap)
    return keep_answer(request, response) if run is not None else response
