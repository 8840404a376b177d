"""OGC API - Features Parts 1 (core, GeoJSON, HTML), 2 (CRS), 3 (queryables) and 5 (schemas).

Over every layer: each publication of a run and each boundary set (:mod:`store.features`).
Thin: each request's parameters are checked into one object (:mod:`api.query`), which is both
what the store is asked and, with the layer's version, the response's ETag; the GeoJSON of
the features arrives as text built by PostGIS and is spliced into the response unparsed.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from api import crs as crs_
from api import formats
from api.cache import keep_answer, remembered
from api.deps import ConnDep, SettingsDep
from api.http import (
    base_url,
    cached,
    check_known,
    json_response,
    layer_etag,
    link,
    not_modified,
)
from api.openapi import ERRORS, NOT_MODIFIED
from api.query import (
    BBOX_PATTERN,
    DEFAULT_MAX_OFFSET,
    ItemsQuery,
    RunPin,
    check_offset,
    financial_year_interval,
    in_time,
    parse_bbox,
    parse_datetime,
    parse_filters,
    queryables,
    store_filters,
)
from domain.errors import NotFound
from placespend import downloads
from store import features as store

log = logging.getLogger("placespend.api")

router = APIRouter(tags=["OGC API Features"])

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    # No oas30 class: FastAPI describes the API in OpenAPI 3.1, and OGC has no class for that.
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    # Part 5: a JSON Schema per collection, so clients know total_pence is a 64-bit integer
    # rather than guessing 32 bits from a first page of small values.
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/schemas",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
]
GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
CSV = "text/csv"
JSON_SCHEMA = "application/schema+json"
MVT = "application/vnd.mapbox-vector-tile"
REL_SCHEMA = "http://www.opengis.net/def/rel/ogc/1.0/schema"
REL_QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
REL_TILESETS = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
#: Query parameters /items understands besides the layer's queryables (OGC: unknown -> 400).
ITEMS_PARAMS = frozenset({"limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "f", "run",
                          "parent"})
FEATURE_PARAMS = frozenset({"crs", "f", "run"})
#: Licence names in boundary sets -> the licence text on the web, for ``license`` links.
_LICENCE_URLS = {
    "Open Government Licence v3.0": (
        "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/"
    ),
}
#: Documents that f=html (or Accept: text/html) answers as an HTML page.
_DOC_OR_HTML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The document (JSON), or its HTML page"},
}

CrsParam = Annotated[str | None, Query(
    description="CRS of the response's coordinates: CRS84 (the default; longitude, latitude), "
                "EPSG:4326 (latitude, longitude) or EPSG:27700 (British National Grid, "
                f"metres), as a URI ({', '.join(crs_.SUPPORTED)}) or EPSG:code",
    json_schema_extra={"enum": list(crs_.NAMES)},
)]
FeatureFormat = Annotated[Literal["json", "geojson", "html"] | None, Query(
    description="Format: json (GeoJSON, the default) or html; without f, Accept decides")]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _answer(request: Request, fmt: str, title: str, doc: dict[str, Any]) -> Response:
    """A JSON document, or its HTML view, with ``Vary: Accept``."""
    if fmt == "html":
        return HTMLResponse(formats.document_html(title, jsonable_encoder(doc)),
                            headers=formats.VARY)
    return json_response(doc, headers=formats.VARY)


DocFormat = Annotated[Literal["json", "html"] | None, Query(
    description="Format: json (the default) or html; without f, Accept decides")]


# ---- landing, conformance, collections ---------------------------------------------------


@router.get("/", summary="Landing page", responses={**_DOC_OR_HTML, 400: ERRORS[400]})
def landing(request: Request, f: DocFormat = None) -> Response:
    """The landing page: what this service is and where everything is."""
    check_known(request, frozenset({"f"}))
    base = base_url(request)
    doc = {
        "title": request.app.title,
        "description": request.app.description,
        "links": [
            link(f"{base}/", "self", JSON, "This document"),
            link(f"{base}/?f=html", "alternate", HTML, "This document as HTML"),
            link(f"{base}/api", "service-desc", "application/vnd.oai.openapi+json;version=3.1",
                  "The API definition (OpenAPI)"),
            link(f"{base}/api.html", "service-doc", HTML, "The API documentation"),
            link(f"{base}/conformance", "conformance", JSON,
                  "OGC API conformance classes implemented by this server"),
            link(f"{base}/collections", "data", JSON, "Collections of apportioned spend"),
            link(f"{base}/tileMatrixSets", "http://www.opengis.net/def/rel/ogc/1.0/"
                 "tiling-schemes", JSON, "The tiling scheme of the vector tiles"),
            link(f"{base}/runs", "related", JSON, "Runs and their conservation reports"),
            link(f"{base}/map", "alternate", HTML, "Map of spend per ward"),
        ],
    }
    return _answer(request, formats.choose(request, f, ("json", "html")), "Placespend", doc)


@router.get("/conformance", summary="Conformance classes")
def conformance() -> JSONResponse:
    """The OGC API conformance classes this server implements."""
    return json_response({"conformsTo": CONFORMANCE})


def _collection(base: str, layer: store.Layer, extent_row: dict, pinned: bool = False
                ) -> dict[str, Any]:
    """One layer's metadata. With ``pinned`` every link carries ``?run=N``."""
    cid = layer.id
    pin = f"?run={layer.run_id}" if pinned else ""
    amp = "&" if pin else "?"
    extent: dict[str, Any] = {}
    if extent_row["bbox"]:
        extent["spatial"] = {"bbox": [extent_row["bbox"]], "crs": crs_.CRS84}
    interval = financial_year_interval(layer.financial_year)
    if interval:
        extent["temporal"] = {
            "interval": [[_iso(interval[0]), _iso(interval[1])]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    links = [
        link(f"{base}/collections/{cid}{pin}", "self", JSON, "This collection"),
        link(f"{base}/collections/{cid}/items{pin}", "items", GEOJSON, "Features as GeoJSON"),
        link(f"{base}/collections/{cid}/items{pin}{amp}f=html", "items", HTML,
             "Features as an HTML table"),
        link(f"{base}/collections/{cid}/items{pin}{amp}f=csv", "items", CSV,
             "Features as CSV (a page; no geometry)"),
        link(f"{base}/collections/{cid}/schema{pin}", REL_SCHEMA, JSON_SCHEMA,
             "Feature properties and their types (JSON Schema)"),
        link(f"{base}/collections/{cid}/queryables{pin}", REL_QUERYABLES, JSON_SCHEMA,
             "Properties to filter on (?name=value)"),
        link(f"{base}/collections/{cid}/tiles{pin}", REL_TILESETS, JSON,
             "Vector tiles (Mapbox Vector Tiles, WebMercatorQuad)"),
    ]
    for fmt, title in (("geojson", "Download: every feature as GeoJSON"),
                       ("csv", "Download: every feature as CSV (no geometry)"),
                       ("gpkg", "Download: GeoPackage in British National Grid")):
        links.append(link(f"{base}/collections/{cid}/download{pin}{amp}f={fmt}", "enclosure",
                          downloads.MEDIA[fmt], title))
    if layer.run_id is not None:
        links.append(link(f"{base}/runs/{layer.run_id}", "related", JSON,
                          "The run that produced these figures, with its conservation report"))
        if not pinned:
            links.append(link(f"{base}/collections/{cid}?run={layer.run_id}", "related", JSON,
                              "These figures, pinned to their run (a citable address)"))
    licence_url = _LICENCE_URLS.get(layer.licence)
    if licence_url:
        links.append(link(licence_url, "license", HTML, layer.licence))
    return {
        "id": cid,
        "title": layer.title,
        "description": layer.description,
        "extent": extent,
        "itemType": "feature",
        "crs": list(crs_.SUPPORTED),
        "storageCrs": crs_.STORAGE,
        "kind": layer.kind,
        "run": layer.run_id,
        "financial_year": layer.financial_year,
        "boundary_set": layer.set_slug,
        "features": extent_row["features"],
        "attribution": layer.attribution,
        "licence": layer.licence,
        "links": links,
    }


@router.get("/collections", summary="Collections",
            responses={**_DOC_OR_HTML, 400: ERRORS[400]})
def collections(request: Request, conn: ConnDep, f: DocFormat = None) -> Response:
    """Every layer: each publication at the run it serves now, then each boundary set."""
    check_known(request, frozenset({"f"}))
    fmt = formats.choose(request, f, ("json", "html"))
    base = base_url(request)
    doc = {
        "links": [link(f"{base}/collections", "self", JSON, "This document"),
                  link(f"{base}/collections?f=html", "alternate", HTML, "As HTML")],
        "collections": [_collection(base, layer, store.summary(conn, layer))
                        for layer in store.list_layers(conn)],
    }
    return _answer(request, fmt, "Collections", doc)


@router.get("/collections/{collectionId}", summary="One collection",
            responses={**_DOC_OR_HTML, **ERRORS})
def collection(
    request: Request, conn: ConnDep, collectionId: str,  # noqa: N803
    run: RunPin = None, f: DocFormat = None,
) -> Response:
    """One collection's metadata (as served now, or of ``run``); 404 if there is none."""
    check_known(request, frozenset({"f", "run"}))
    fmt = formats.choose(request, f, ("json", "html"))
    layer = store.get_layer(conn, collectionId, run)
    doc = _collection(base_url(request), layer, store.summary(conn, layer),
                      pinned=run is not None)
    return _answer(request, fmt, layer.title, doc)


def _json_schema(request: Request, layer: store.Layer, names: dict[str, str] | None,
                 what: str, run: int | None) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if names is None:
        properties["geometry"] = {"format": "geometry-multipolygon",
                                  "x-ogc-role": "primary-geometry"}
    for seq, prop in enumerate(layer.properties, 1):
        if names is not None and prop["name"] not in names:
            continue
        # One type name, not ["number", "null"]: QGIS reads only a string here. per_head is the
        # one property that may be null (population 0); its description says so.
        entry: dict[str, Any] = {"type": prop["type"], "x-ogc-propertySeq": seq}
        if prop["type"] == "integer":
            entry["format"] = "int64"
        if prop["name"] == "code":
            entry["x-ogc-role"] = "id"
        if prop.get("description"):
            entry["description"] = prop["description"]
        properties[prop["name"]] = entry
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base_url(request)}/collections/{layer.id}/{what}"
               + (f"?run={run}" if run is not None else ""),
        "type": "object",
        "title": layer.title,
        "description": layer.description,
        "properties": properties,
        **({"additionalProperties": False} if names is not None else {}),
    }


_SCHEMA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {JSON_SCHEMA: {}}, "description": "A JSON Schema"}, **NOT_MODIFIED,
    **ERRORS,
}


@router.get("/collections/{collectionId}/schema", response_class=Response,
            summary="Feature schema of a collection (OGC API Features Part 5)",
            responses=_SCHEMA_RESPONSES)
def schema(request: Request, conn: ConnDep, collectionId: str,  # noqa: N803
           run: RunPin = None) -> Response:
    """The properties of the collection's features with their JSON types, in order."""
    check_known(request, frozenset({"run"}))
    layer = store.get_layer(conn, collectionId, run)
    tag = layer_etag(layer, "schema")
    body = _json_schema(request, layer, None, "schema", run)
    return cached(request, tag, json.dumps(jsonable_encoder(body)), JSON_SCHEMA,
                  pinned=run is not None)


@router.get("/collections/{collectionId}/queryables", response_class=Response,
            summary="Properties to filter items on (OGC API Features Part 3)",
            responses=_SCHEMA_RESPONSES)
def queryables_doc(request: Request, conn: ConnDep, collectionId: str,  # noqa: N803
                   run: RunPin = None) -> Response:
    """The properties ``/items`` filters on by equality: ``?name=Dalston``, ``?confidence=D``."""
    check_known(request, frozenset({"run"}))
    layer = store.get_layer(conn, collectionId, run)
    body = _json_schema(request, layer, queryables(layer), "queryables", run)
    return cached(request, layer_etag(layer, "queryables"), json.dumps(body), JSON_SCHEMA,
                  pinned=run is not None)


# ---- items -------------------------------------------------------------------------------

_DATE = r"(?!0000)[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_INSTANT = (rf"{_DATE}(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
            r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?")
#: An RFC 3339 instant, or an interval of two with ``..`` (or nothing) for an open end.
_DATETIME_PATTERN = rf"^({_INSTANT}|({_INSTANT}|\.\.)?/({_INSTANT}|\.\.)?)$"


def _limit_too_large(limit: int, maximum: int) -> RequestValidationError:
    """The same 400 the validation handler gives for ``limit < 1``, for the runtime maximum."""
    return RequestValidationError([{
        "type": "less_than_equal",
        "loc": ("query", "limit"),
        "msg": f"Input should be less than or equal to {maximum}",
        "input": limit,
        "ctx": {"le": maximum},
    }])


def _page(conn: ConnDep, layer: store.Layer, q: ItemsQuery, out_crs: crs_.Crs) -> store.Page:
    if not in_time(layer, q.when):
        return store.Page("[]", 0, 0, layer.run_id)
    return store.items(
        conn, layer, bbox=q.bbox, bbox_srid=q.bbox_srid, limit=q.limit, offset=q.offset,
        code=q.code, parent=q.parent, filters=store_filters(layer, q.filters),
        srid=out_crs.srid, lat_first=out_crs.lat_first, with_geometry=q.format != "csv",
    )


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection",
    response_class=Response,
    responses={
        200: {"content": {GEOJSON: {}, HTML: {}, CSV: {}},
              "description": "A GeoJSON FeatureCollection (or its HTML table, or CSV)"},
        **NOT_MODIFIED, **ERRORS,
    },
)
def items(
    request: Request,
    conn: ConnDep,
    settings: SettingsDep,
    collectionId: str,  # noqa: N803
    limit: Annotated[int, Query(
        ge=1, le=10_000,
        description="Features per page, 1 to the server's maximum (10,000 by default)"
    )] = 1000,
    offset: Annotated[int, Query(
        ge=0, le=2**31 - 1,
        description="Features to skip (follow `next` links), at most the server's maximum "
                    f"({DEFAULT_MAX_OFFSET:,} by default)",
        json_schema_extra={"maximum": DEFAULT_MAX_OFFSET},
    )] = 0,
    bbox: Annotated[str | None, Query(
        description="minx,miny,maxx,maxy (4 numbers, or 6 with heights) in bbox-crs: "
                    "longitude first in CRS84 (the default), latitude first in EPSG:4326, "
                    "metres in EPSG:27700; minimum values first, degrees within "
                    "-180..180 / -90..90. Features that intersect it.",
        # For the API description only: parse_bbox refuses the rest with a 400 saying why
        # in plain words (a regex in an error message helps nobody).
        json_schema_extra={"pattern": BBOX_PATTERN},
        examples=["-0.11,51.53,-0.02,51.58"],
    )] = None,
    bbox_crs: Annotated[str | None, Query(
        alias="bbox-crs", description="CRS of bbox: CRS84 (default), EPSG:4326 or EPSG:27700",
        json_schema_extra={"enum": list(crs_.NAMES)},
    )] = None,
    crs: CrsParam = None,
    datetime_: Annotated[str | None, Query(
        alias="datetime",
        description="RFC 3339 instant or interval; features whose financial year it meets",
        # For the API description only: parse_datetime refuses the rest with a 400 saying why.
        json_schema_extra={"pattern": _DATETIME_PATTERN},
        examples=["2014-04-01/2015-03-31"],
    )] = None,
    f: Annotated[Literal["json", "geojson", "html", "csv"] | None, Query(
        description="Format: json (GeoJSON, the default), html or csv (properties only); "
                    "without f, Accept decides")] = None,
    run: RunPin = None,
    parent: Annotated[str | None, Query(
        max_length=64, description="Only the features inside this enclosing unit: one "
        "borough's wards of the London collection (its ONS code)", examples=["E09000012"],
    )] = None,
) -> Response:
    """A page of features as a GeoJSON FeatureCollection, with ``next``/``prev`` links.

    Any property listed at ``/collections/{collectionId}/queryables`` filters by equality:
    ``?name=Dalston``, ``?confidence=D``.
    """
    if limit > settings.max_items:
        raise _limit_too_large(limit, settings.max_items)
    check_offset(offset, settings.max_offset, collectionId)
    fmt = formats.choose(request, f, ("json", "html", "csv"))
    out_crs = crs_.parse(crs, "crs")
    in_crs = crs_.parse(bbox_crs, "bbox-crs")
    layer = store.get_layer(conn, collectionId, run)
    q = ItemsQuery(
        limit=limit, offset=offset,
        bbox=parse_bbox(bbox, in_crs) if bbox is not None else None,
        bbox_srid=in_crs.srid, crs=out_crs.uri,
        when=parse_datetime(datetime_) if datetime_ is not None else None,
        parent=parent, filters=parse_filters(request, layer, ITEMS_PARAMS), format=fmt,
    )
    tag = layer_etag(layer, "items", q)
    headers = {**formats.VARY, **(crs_.header(out_crs) if fmt == "json" else {})}
    media = {"json": GEOJSON, "html": HTML, "csv": CSV}[fmt]
    pinned = run is not None
    if not_modified(request, tag):
        return cached(request, tag, "", media, pinned=pinned, headers=headers)
    media = {"json": GEOJSON, "html": "text/html; charset=utf-8",
             "csv": "text/csv; charset=utf-8"}[fmt]

    def make() -> bytes:
        page = _page(conn, layer, q, out_crs)
        base = base_url(request)
        here = request.url
        pin = f"?run={layer.run_id}" if pinned else ""
        links = [
            link(str(here), "self", media, "This page"),
            link(f"{base}/collections/{collectionId}{pin}", "collection", JSON,
                 "The collection"),
        ]
        if offset + page.number_returned < page.number_matched:
            links.append(link(str(here.include_query_params(offset=offset + limit)), "next",
                              media, "Next page"))
        if offset > 0:
            links.append(link(str(here.include_query_params(offset=max(0, offset - limit))),
                              "prev", media, "Previous page"))
        head_doc = {
            "type": "FeatureCollection",
            "numberMatched": page.number_matched,
            "numberReturned": page.number_returned,
            "timeStamp": _now(),
            "run": layer.run_id,
            "links": links,
        }
        member = crs_.geojson_member(out_crs)
        if member:
            head_doc["crs"] = member
        if fmt == "csv":
            return downloads.csv_text(layer, json.loads(page.features_json),
                                      store.sources(conn, layer)).encode()
        if fmt == "html":
            columns = [p["name"] for p in layer.properties][:8]
            return formats.items_html(layer.title, head_doc, page.features_json,
                                      columns).encode()
        head = json.dumps(head_doc)
        return f'{head[:-1]}, "features": {page.features_json}}}'.encode()

    # the links name the address asked for, so the kept answer is per address too
    body = remembered(request, f"{tag} {request.url}", make)
    response = cached(request, tag, body, media, pinned=pinned, headers=headers)
    return keep_answer(request, response) if pinned else response


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One feature",
    response_class=Response,
    responses={
        200: {"content": {GEOJSON: {}, HTML: {}}, "description": "A GeoJSON Feature"},
        **NOT_MODIFIED, **ERRORS,
    },
)
def feature(
    request: Request,
    conn: ConnDep,
    collectionId: str,  # noqa: N803
    featureId: str,  # noqa: N803
    crs: CrsParam = None,
    f: FeatureFormat = None,
    run: RunPin = None,
) -> Response:
    """One feature by its code (e.g. a ward's GSS code); 404 if the collection lacks it."""
    check_known(request, FEATURE_PARAMS)
    fmt = formats.choose(request, f, ("json", "html"))
    out_crs = crs_.parse(crs, "crs")
    layer = store.get_layer(conn, collectionId, run)
    q = ItemsQuery(limit=1, crs=out_crs.uri, code=featureId, format=fmt)
    tag = layer_etag(layer, "feature", q)
    headers = {**formats.VARY, **(crs_.header(out_crs) if fmt == "json" else {})}
    media = GEOJSON if fmt == "json" else "text/html; charset=utf-8"
    pinned = run is not None
    if not_modified(request, tag):
        return cached(request, tag, "", media, pinned=pinned, headers=headers)
    page = _page(conn, layer, q, out_crs)
    if page.number_returned == 0:
        raise NotFound(
            f"collection {collectionId!r} has no feature {featureId!r}",
            f"list its features with GET /collections/{collectionId}/items",
            where=featureId,
        )
    base = base_url(request)
    pin = f"?run={layer.run_id}" if pinned else ""
    links = [
        link(str(request.url), "self", media, "This feature"),
        link(f"{base}/collections/{collectionId}{pin}", "collection", JSON, "The collection"),
    ]
    one = page.features_json.strip()
    one = one[1:-1].strip()  # the array holds exactly this feature: drop the brackets
    if fmt == "html":
        doc = json.loads(one)
        doc["links"] = links
        return cached(request, tag, formats.document_html(featureId, doc), media,
                      pinned=pinned, headers=headers)
    member = crs_.geojson_member(out_crs)
    extra = f', "crs": {json.dumps(member)}' if member else ""
    body = f'{one[:-1]}, "links": {json.dumps(links)}{extra}}}'
    return cached(request, tag, body, GEOJSON, pinned=pinned, headers=headers)


# ---- downloads ---------------------------------------------------------------------------


@router.get(
    "/collections/{collectionId}/download",
    summary="Every feature of a collection as one file",
    response_class=Response,
    responses={
        200: {"content": {downloads.MEDIA["geojson"]: {}, downloads.MEDIA["csv"]: {},
                          downloads.MEDIA["gpkg"]: {}},
              "description": "The whole layer, with the run and every source's attribution"},
        **NOT_MODIFIED, **ERRORS,
    },
)
def download(
    request: Request,
    conn: ConnDep,
    collectionId: str,  # noqa: N803
    f: Annotated[Literal["geojson", "csv", "gpkg"], Query(
        description="geojson (CRS84 unless crs says otherwise), csv (properties only, "
                    "with run and attribution columns) or gpkg (GeoPackage, British "
                    "National Grid)")] = "geojson",
    crs: CrsParam = None,
    run: RunPin = None,
) -> Response:
    """The whole layer as a file, with the run and the attribution of every source."""
    check_known(request, frozenset({"f", "crs", "run"}))
    out_crs = crs_.parse(crs, "crs")
    layer = store.get_layer(conn, collectionId, run)
    q = ItemsQuery(limit=0, crs=out_crs.uri if f == "geojson" else crs_.EPSG_27700, format=f)
    tag = layer_etag(layer, "download", q)
    headers = {} if f == "csv" else crs_.header(
        out_crs if f == "geojson" else crs_.parse(crs_.EPSG_27700, "crs"))
    if not_modified(request, tag):
        return cached(request, tag, "", downloads.MEDIA[f], pinned=run is not None,
                      headers=headers)
    body = remembered(request, tag, lambda: downloads.make(
        conn, layer, f, srid=out_crs.srid, lat_first=out_crs.lat_first,
        crs_member=crs_.geojson_member(out_crs)).body)
    headers["Content-Disposition"] = f'attachment; filename="{downloads.filename(layer, f)}"'
    response = cached(request, tag, body, downloads.MEDIA[f], pinned=run is not None,
                      headers=headers)
    return keep_answer(request, response) if run is not None else response
