"""Serving: British National Grid, queryables, formats, vector tiles and downloads.

One rule above the rest: a ward's pence are the same whichever way a client reads them — items
in CRS84, EPSG:4326 or EPSG:27700, decoded vector tiles, the GeoJSON, CSV and GeoPackage
downloads. Tiles are decoded with GDAL's MVT driver (through pyogrio), downloads with pyogrio
and pandas, never with this project's own code.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pandas as pd
import pyogrio
import pytest
from fastapi.testclient import TestClient

from api.query import TileQuery
from api.routers.tiles import pinned_tag
from placespend.runs import RunResult

HACKNEY = "hackney-wards-2014-spend-2014-15"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
EPSG_27700 = "http://www.opengis.net/def/crs/EPSG/0/27700"
MVT = "application/vnd.mapbox-vector-tile"
DALSTON = "E05009370"


def _pence(features: list[dict]) -> dict[str, int]:
    return {f["properties"]["code"]: int(f["properties"]["total_pence"]) for f in features}


@pytest.fixture(scope="module")
def by_items(client: TestClient) -> dict[str, int]:
    """Each Hackney ward's pence, read through /items in the default CRS (CRS84)."""
    body = client.get(f"/collections/{HACKNEY}/items").json()
    assert body["numberMatched"] == 21
    return _pence(body["features"])


def _tiles_over(bbox: list[float], z: int) -> list[tuple[int, int, int]]:
    n = 2 ** z

    def col(lon: float) -> int:
        return int((lon + 180) / 360 * n)

    def row(lat: float) -> int:
        r = math.radians(lat)
        return int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * n)

    minx, miny, maxx, maxy = bbox
    return [(z, x, y) for x in range(col(minx), col(maxx) + 1)
            for y in range(row(maxy), row(miny) + 1)]


def _decode(tile: bytes, z: int, x: int, y: int, tmp: Path) -> pd.DataFrame:
    """A tile's features through GDAL's MVT driver (it reads z/x/y from the path)."""
    path = tmp / str(z) / str(x) / f"{y}.pbf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tile)
    return pyogrio.read_dataframe(path, layer=HACKNEY)


# ---- British National Grid and the other CRSs -------------------------------------------


def test_items_in_each_crs_carry_the_same_pence(client: TestClient,
                                                by_items: dict[str, int]) -> None:
    url = f"/collections/{HACKNEY}/items"
    for crs, check in (
        (EPSG_27700, lambda x, y: 525_000 < x < 541_000 and 181_000 < y < 191_000),
        (EPSG_4326, lambda x, y: 51.5 < x < 51.6 and -0.11 < y < -0.01),  # latitude first
        (CRS84, lambda x, y: -0.11 < x < -0.01 and 51.5 < y < 51.6),
        ("EPSG:27700", lambda x, y: 525_000 < x < 541_000 and 181_000 < y < 191_000),
    ):
        r = client.get(url, params={"crs": crs})
        assert r.status_code == 200, r.text
        canonical = crs if crs.startswith("http") else EPSG_27700
        assert r.headers["content-crs"] == f"<{canonical}>"
        body = r.json()
        assert _pence(body["features"]) == by_items
        # the 2008-style member GDAL reads a plain GeoJSON file's CRS from, for BNG only
        # (GDAL would read EPSG::4326 in a file longitude first)
        assert body.get("crs") == ({"type": "name", "properties": {
            "name": "urn:ogc:def:crs:EPSG::27700"}} if canonical == EPSG_27700 else None)
        assert "crs" not in body["features"][0]["geometry"]
        x, y = body["features"][0]["geometry"]["coordinates"][0][0][0]
        assert check(x, y), (crs, x, y)
    one = client.get(f"{url}/{DALSTON}", params={"crs": EPSG_27700})
    assert one.headers["content-crs"] == f"<{EPSG_27700}>"
    assert one.json()["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::27700"
    assert int(one.json()["properties"]["total_pence"]) == by_items[DALSTON]


def test_bbox_in_british_national_grid_and_latitude_first(client: TestClient) -> None:
    url = f"/collections/{HACKNEY}/items"
    # Dalston's neighbourhood, in each CRS's own order: the same wards whichever CRS is used.
    lonlat = client.get(url, params={"bbox": "-0.080,51.545,-0.070,51.550"}).json()
    latlon = client.get(url, params={"bbox": "51.545,-0.080,51.550,-0.070",
                                     "bbox-crs": EPSG_4326}).json()
    codes = sorted(f["id"] for f in lonlat["features"])
    assert codes and DALSTON in codes and len(codes) < 21
    assert sorted(f["id"] for f in latlon["features"]) == codes
    metres = client.get(url, params={"bbox": "533000,184000,537000,187000",
                                     "bbox-crs": "EPSG:27700"}).json()
    assert 0 < metres["numberMatched"] < 21
    nowhere = client.get(url, params={"bbox": "0,0,10,10", "bbox-crs": EPSG_27700}).json()
    assert nowhere["numberMatched"] == 0
    for far in ("90,-60,180,0", "-180,-90,-170,-80", "170,80,180,90"):  # outside the grid
        r = client.get(url, params={"bbox": far})
        assert r.status_code == 200 and r.json()["numberMatched"] == 0, (far, r.text)


def test_collections_say_their_crs_and_storage_crs(client: TestClient) -> None:
    c = client.get(f"/collections/{HACKNEY}").json()
    assert c["crs"] == [CRS84, EPSG_4326, EPSG_27700] and c["storageCrs"] == EPSG_27700
    conformance = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conformance


# ---- boundary sets are layers too --------------------------------------------------------


def test_boundary_sets_are_collections(client: TestClient) -> None:
    listed = {c["id"]: c for c in client.get("/collections").json()["collections"]}
    wards = listed["hackney-wards-2014"]
    assert wards["kind"] == "boundaries" and wards["run"] is None and wards["features"] == 21
    assert listed["london-wards-2014"]["features"] == 630
    items = client.get("/collections/hackney-wards-2014/items").json()
    assert items["numberMatched"] == 21
    assert set(items["features"][0]["properties"]) == {"code", "name", "parent_code"}
    assert {f["properties"]["parent_code"] for f in items["features"]} == {"E09000012"}
    r = client.get("/collections/hackney-wards-2014/items", params={"run": 1})
    assert r.status_code == 404 and r.json()["where"] == "run"
    assert "boundary set" in r.json()["cause"] and "omit run" in r.json()["fix"]
    assert wards["description"].startswith("Hackney") and "21 wards, no figures" in \
        wards["description"]


# ---- queryables and filters --------------------------------------------------------------


def test_queryables_and_filters(client: TestClient, by_items: dict[str, int]) -> None:
    q = client.get(f"/collections/{HACKNEY}/queryables")
    assert q.status_code == 200 and q.headers["content-type"] == "application/schema+json"
    props = q.json()["properties"]
    assert props["name"]["type"] == "string" and props["population"]["type"] == "integer"
    assert "geometry" not in props and q.json()["additionalProperties"] is False
    url = f"/collections/{HACKNEY}/items"
    dalston = client.get(url, params={"name": "Dalston"}).json()
    assert [f["id"] for f in dalston["features"]] == [DALSTON]
    assert client.get(url, params={"confidence": "D"}).json()["numberMatched"] == 21
    pence = client.get(url, params={"total_pence": str(by_items[DALSTON])}).json()
    assert [f["id"] for f in pence["features"]] == [DALSTON]
    assert client.get(url, params={"name": "' OR 1=1 --"}).json()["numberMatched"] == 0
    bad = client.get(url, params={"population": "many"})
    assert bad.status_code == 400 and bad.json()["where"] == "population"
    unknown = client.get(url, params={"nmae": "Dalston"})
    assert unknown.status_code == 400 and "queryables" in unknown.json()["fix"]


# ---- formats and negotiation -------------------------------------------------------------


def test_items_are_geojson_whatever_the_client_accepts(client: TestClient) -> None:
    url = f"/collections/{HACKNEY}/items?limit=2"
    for accept in ("application/geo+json", "application/json", None, "*/*"):
        headers = {"Accept": accept} if accept else {}
        r = client.get(url, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
        assert r.headers["vary"].startswith("Accept") and r.json()["numberReturned"] == 2
    browser = client.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.headers["content-type"].startswith("text/html")
    assert "Dalston" not in browser.text or "<table>" in browser.text
    assert browser.headers["etag"] != client.get(url).headers["etag"]


def test_items_as_csv_and_html(client: TestClient, by_items: dict[str, int]) -> None:
    r = client.get(f"/collections/{HACKNEY}/items", params={"f": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(r.text))
    assert len(frame) == 21 and list(frame.columns[:3]) == ["code", "name", "population"]
    assert dict(zip(frame["code"], frame["total_pence"].astype("int64"), strict=True)) == by_items
    html = client.get(f"/collections/{HACKNEY}/items", params={"f": "html"})
    assert html.headers["content-type"].startswith("text/html") and "Dalston" in html.text
    bad = client.get(f"/collections/{HACKNEY}/items", params={"f": "xml"})
    assert bad.status_code == 400 and bad.json()["where"].endswith("f")


def test_cors_and_gzip(client: TestClient) -> None:
    url = f"/collections/{HACKNEY}/items?limit=5"
    r = client.get(url, headers={"Origin": "https://maps.example", "Accept-Encoding": "gzip"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "ETag" in r.headers["access-control-expose-headers"]
    assert r.headers["content-encoding"] == "gzip" and r.json()["numberReturned"] == 5
    pre = client.options(url, headers={"Origin": "https://maps.example",
                                       "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 200 and "GET" in pre.headers["access-control-allow-methods"]
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    # HEAD: the GET's headers, gzip included, and no body
    head = client.head(url, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-encoding"] == "gzip"
    assert head.headers["content-length"] == r.headers["content-length"]


# ---- vector tiles ------------------------------------------------------------------------


def test_tilejson_and_tileset_metadata(client: TestClient, demo: RunResult) -> None:
    tj = client.get(f"/collections/{HACKNEY}/tiles/WebMercatorQuad/tilejson.json").json()
    assert tj["tilejson"] == "3.0.0" and tj["scheme"] == "xyz"
    assert tj["tiles"] == [f"http://testserver/collections/{HACKNEY}/tiles/WebMercatorQuad/"
                           f"{{z}}/{{x}}/{{y}}?run={demo.run_id}"]
    [layer] = tj["vector_layers"]
    assert layer["id"] == HACKNEY and layer["fields"]["total_pence"] == "Number"
    assert layer["fields"]["name"] == "String"
    assert "Ordnance Survey" in tj["attribution"]
    minx, miny, maxx, maxy = tj["bounds"]
    assert -0.12 < minx < maxx < 0.0 and 51.5 < miny < maxy < 51.6
    ts = client.get(f"/collections/{HACKNEY}/tiles/WebMercatorQuad").json()
    assert ts["dataType"] == "vector" and ts["tileMatrixSetURI"].endswith("WebMercatorQuad")
    assert any(lk["rel"] == "item" and lk["templated"] for lk in ts["links"])
    tms = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert len(tms["tileMatrices"]) == 25 and tms["tileMatrices"][1]["matrixWidth"] == 2


def test_decoded_tiles_carry_each_wards_pence(client: TestClient, demo: RunResult,
                                             by_items: dict[str, int], tmp_path: Path) -> None:
    tj = client.get(f"/collections/{HACKNEY}/tiles/WebMercatorQuad/tilejson.json").json()
    seen: dict[str, int] = {}
    for z, x, y in _tiles_over(tj["bounds"], 13):
        r = client.get(f"/collections/{HACKNEY}/tiles/WebMercatorQuad/{z}/{x}/{y}",
                       params={"run": demo.run_id})
        if r.status_code == 204:
            continue
        assert r.status_code == 200 and r.headers["content-type"] == MVT
        frame = _decode(r.content, z, x, y, tmp_path)
        assert str(frame["total_pence"].dtype) in ("int64", "float64")  # numbers, not text
        for code, pence in zip(frame["code"], frame["total_pence"], strict=True):
            assert seen.setdefault(code, int(pence)) == int(pence)
    assert seen == by_items


def test_tiles_empty_bounds_etag_and_cache(client: TestClient, demo: RunResult,
                                           app) -> None:
    base = f"/collections/{HACKNEY}/tiles/WebMercatorQuad"
    for path in ("12/0/0", "2/3/2", "0/0/0", "1/1/1"):  # far from, or around, the grid
        empty = client.get(f"{base}/{path}")
        assert empty.status_code == 204 and empty.content == b"", (path, empty.text)
    for path, where in (("25/0/0", "path.z"), ("2/4/0", "x"), ("2/0/4", "y"),
                        ("2/-1/0", "path.x"), ("a/0/0", "path.z")):
        r = client.get(f"{base}/{path}")
        assert r.status_code == 400 and r.json()["where"] == where, (path, r.text)
    assert client.get(f"/collections/{HACKNEY}/tiles/EuropeanETRS89/0/0/0").status_code == 400
    url = f"{base}/13/4094/2723"
    pinned = client.get(url, params={"run": demo.run_id})
    assert pinned.status_code == 200
    assert pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
    current = client.get(url)
    assert current.headers["cache-control"] == "public, max-age=300"
    assert current.headers["etag"] == pinned.headers["etag"]  # the same run, the same tile
    assert current.content == pinned.content
    again = client.get(url, params={"run": demo.run_id},
                       headers={"If-None-Match": pinned.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    hits = app.state.cache.hits
    plain = client.get(url, params={"run": demo.run_id}, headers={"Accept-Encoding": "identity"})
    assert plain.content == pinned.content and "content-encoding" not in plain.headers
    assert app.state.cache.hits == hits + 1  # from memory, no database
    zipped = client.get(url, params={"run": demo.run_id}, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers.get("content-encoding") == "gzip"
    vary = [v.strip() for v in zipped.headers["vary"].split(",")]
    assert vary.count("Accept-Encoding") == 1  # once, not once per layer of code
    assert zipped.content == pinned.content  # httpx unzips: the same tile
    assert int(zipped.headers["content-length"]) < len(pinned.content)
    # a client holding a tile this server never made gets a 304 without it being made
    q = TileQuery(z=14, x=8188, y=5447, cap=app.state.settings.max_tile_features)
    tag = pinned_tag(HACKNEY, demo.run_id, q)
    assert app.state.cache.get(tag) is None
    r = client.get(f"{base}/14/8188/5447", headers={"If-None-Match": tag})
    assert r.status_code == 304 and r.headers["etag"] == tag
    assert app.state.cache.get(tag) is None  # not rendered, not stored


def test_boundary_set_tiles(client: TestClient) -> None:
    r = client.get("/collections/hackney-wards-2014/tiles/WebMercatorQuad/12/2046/1361")
    assert r.status_code == 200 and r.headers["content-type"] == MVT and len(r.content) > 100


# ---- downloads ---------------------------------------------------------------------------


def test_downloads_carry_the_same_pence_and_every_source(client: TestClient, demo: RunResult,
                                                        by_items: dict[str, int]) -> None:
    url = f"/collections/{HACKNEY}/download"
    geo = client.get(url, params={"f": "geojson"})
    assert geo.status_code == 200 and geo.headers["content-type"] == "application/geo+json"
    assert f"-run-{demo.run_id}.geojson" in geo.headers["content-disposition"]
    doc = geo.json()
    assert doc["run"] == demo.run_id and _pence(doc["features"]) == by_items
    roles = [s["role"] for s in doc["sources"]]
    assert roles[0] == "boundaries" and "spend" in roles and "population" in roles
    assert "Ordnance Survey" in doc["attribution"] and "HM Treasury" in doc["attribution"]

    csv = client.get(url, params={"f": "csv"})
    frame = pd.read_csv(io.StringIO(csv.text))
    assert dict(zip(frame["code"], frame["total_pence"].astype("int64"), strict=True)) == by_items
    assert set(frame["run"]) == {demo.run_id}
    assert frame["attribution"].iloc[0] == doc["attribution"]

    gpkg = client.get(url, params={"f": "gpkg"})
    assert gpkg.headers["content-type"] == "application/geopackage+sqlite3"
    assert gpkg.headers["content-crs"] == f"<{EPSG_27700}>"
    info = pyogrio.read_info(io.BytesIO(gpkg.content))
    assert info["crs"] == "EPSG:27700" and info["features"] == 21
    assert info["dataset_metadata"]["run"] == str(demo.run_id)
    assert info["dataset_metadata"]["attribution"] == doc["attribution"]
    assert json.loads(info["dataset_metadata"]["sources"]) == doc["sources"]
    table = pyogrio.read_dataframe(io.BytesIO(gpkg.content))
    assert dict(zip(table["code"], table["total_pence"].astype("int64"), strict=True)) == by_items
    assert 525_000 < table.total_bounds[0] < table.total_bounds[2] < 541_000

    bng = client.get(url, params={"f": "geojson", "crs": "EPSG:27700"}).json()
    assert bng["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::27700"
    assert _pence(bng["features"]) == by_items


def test_the_byte_cache_is_bounded_even_for_empty_tiles() -> None:
    from api.cache import ENTRY_OVERHEAD, ByteCache

    off = ByteCache(0)
    off.put("k", b"")
    assert off.get("k") is None and off.size == 0  # 0 MB caches nothing, empty tiles included
    small = ByteCache(10 * (ENTRY_OVERHEAD + 10))
    for i in range(1000):
        small.put(f"empty-{i:04d}", b"")
    assert small.size <= small.max_bytes and small.get("empty-0000") is None
    assert small.get("empty-0999") == b""  # the most recent are kept
    small.put("big", b"x" * small.max_bytes)  # larger than the whole cache: not kept
    assert small.get("big") is None and small.get("empty-0999") == b""


def test_pages_and_downloads_are_kept_per_address(client: TestClient, app,
                                                  demo: RunResult) -> None:
    url = f"/collections/{HACKNEY}/items?limit=3&run={demo.run_id}"
    first = client.get(url)
    hits = app.state.cache.hits
    again = client.get(url)  # the whole answer, kept and sent before routing
    assert again.content == first.content and app.state.cache.hits == hits + 1
    for name in ("etag", "cache-control", "content-type", "content-crs", "vary"):
        assert again.headers[name] == first.headers[name], name
    held = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert held.status_code == 304 and held.headers["etag"] == first.headers["etag"]
    html = client.get(url, headers={"Accept": "text/html"})  # Accept is part of the key
    assert html.headers["content-type"].startswith("text/html")
    # the links name the address asked for: another host name is another kept answer
    other = client.get(url, headers={"Host": "maps.example"})
    assert other.headers["etag"] == first.headers["etag"]
    assert "http://maps.example/" in other.text and "testserver" not in other.text
    gpkg = f"/collections/{HACKNEY}/download?f=gpkg"
    made = client.get(gpkg).content
    hits = app.state.cache.hits
    assert client.get(gpkg).content == made and app.state.cache.hits == hits + 1
