"""The error paths: every malformed request is a 4xx in the one error shape, and changes nothing.

Each case is its own test. The shape is a JSON object with exactly ``code``, ``cause``,
``where`` and ``fix`` (cause and fix non-empty), ``where`` naming the parameter (or, for an
unknown thing, the value) at fault, and nothing of the server's insides: no SQL, no stack
trace, no path on the server. Injection attempts in filters are plain values: they match
nothing, and the data is the same afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

HACKNEY = "hackney-wards-2014-spend-2014-15"
ITEMS = f"/collections/{HACKNEY}/items"
FEATURE = f"{ITEMS}/E05009367"
TILES = f"/collections/{HACKNEY}/tiles/WebMercatorQuad"
SAVE = "/neighbourhood-sets/errors-neighbourhoods/neighbourhoods"
BOX = "-0.1,51.5,-0.02,51.6"
#: Text that would betray the server's insides (user input is never echoed with these).
LEAKS = ("Traceback", 'File "', "psycopg", "sqlstate", "SQLSTATE", "SELECT ", "INSERT ",
         " FROM ", "DETAIL:", "/work/", "site-packages", ".py", "postgresql://", "password")
SQUARE = {"type": "Polygon", "coordinates": [[[-0.08, 51.54], [-0.07, 51.54], [-0.07, 51.55],
                                              [-0.08, 51.55], [-0.08, 51.54]]]}


def _get(path: str, params: Any = None, status: int = 400, where: str | None = None,
         *, id: str) -> Any:
    """One GET case: 400 naming ``where`` unless said otherwise."""
    return pytest.param("GET", path, params, status, where, id=id)


def _call(method: str, path: str, status: int, where: str | None = None, *, id: str) -> Any:
    """One case of another method, without parameters."""
    return pytest.param(method, path, None, status, where, id=id)


BAD_REQUESTS = [
    # ---- bbox: count, numbers, finiteness, ranges and order, in each bbox-crs
    _get(ITEMS, {"bbox": "-0.1,51.5,-0.02"}, where="bbox", id="bbox-3-numbers"),
    _get(ITEMS, {"bbox": "-0.1,51.5,-0.02,51.6,0"}, where="bbox", id="bbox-5-numbers"),
    _get(ITEMS, {"bbox": "1,2,3,4,5,6,7"}, where="bbox", id="bbox-7-numbers"),
    _get(ITEMS, {"bbox": ""}, where="bbox", id="bbox-empty"),
    _get(ITEMS, {"bbox": "a,b,c,d"}, where="bbox", id="bbox-not-numbers"),
    _get(ITEMS, {"bbox": "-0.1,51.5,-0.02,NaN"}, where="bbox", id="bbox-nan"),
    _get(ITEMS, {"bbox": "-inf,51.5,-0.02,51.6"}, where="bbox", id="bbox-minus-inf"),
    _get(ITEMS, {"bbox": "0,50,1e999,51"}, where="bbox", id="bbox-overflows-to-inf"),
    _get(ITEMS, {"bbox": "-181,51.5,-0.02,51.6"}, where="bbox", id="bbox-longitude-below-180"),
    _get(ITEMS, {"bbox": "-0.1,91,-0.02,92"}, where="bbox", id="bbox-latitude-above-90"),
    _get(ITEMS, {"bbox": "-0.02,51.5,-0.1,51.6"}, where="bbox", id="bbox-min-lon-above-max"),
    _get(ITEMS, {"bbox": "-0.1,51.6,-0.02,51.5"}, where="bbox", id="bbox-min-lat-above-max"),
    _get(ITEMS, {"bbox": "51.6,-0.1,51.5,-0.02", "bbox-crs": "EPSG:4326"}, where="bbox",
         id="bbox-4326-min-lat-above-max"),
    _get(ITEMS, {"bbox": "100,-0.1,101,-0.02", "bbox-crs": "EPSG:4326"}, where="bbox",
         id="bbox-4326-latitude-100"),
    _get(ITEMS, {"bbox": "a,b,c,d", "bbox-crs": "EPSG:4326"}, where="bbox",
         id="bbox-4326-not-numbers"),
    _get(ITEMS, {"bbox": "537000,184000,533000,187000", "bbox-crs": "EPSG:27700"},
         where="bbox", id="bbox-27700-min-above-max"),
    _get(ITEMS, {"bbox": "533000,184000,537000", "bbox-crs": "EPSG:27700"}, where="bbox",
         id="bbox-27700-3-numbers"),
    _get(ITEMS, {"bbox": "533000,184000,inf,187000", "bbox-crs": "EPSG:27700"}, where="bbox",
         id="bbox-27700-inf"),
    _get(ITEMS, {"bbox": "-0.1,51.5,-0.02,51.6,0",
                 "bbox-crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}, where="bbox",
         id="bbox-crs84-uri-5-numbers"),
    _get(ITEMS, {"bbox": BOX, "bbox-crs": "EPSG:3857"}, where="bbox-crs", id="bbox-crs-3857"),
    _get(ITEMS, {"bbox": BOX, "bbox-crs": "garbage"}, where="bbox-crs", id="bbox-crs-garbage"),
    # ---- limit and offset
    _get(ITEMS, {"limit": "0"}, where="limit", id="limit-0"),
    _get(ITEMS, {"limit": "-1"}, where="limit", id="limit-minus-1"),
    _get(ITEMS, {"limit": "10001"}, where="limit", id="limit-above-maximum"),
    _get(ITEMS, {"limit": "99999999999999999999"}, where="limit", id="limit-huge"),
    _get(ITEMS, {"limit": "1.5"}, where="limit", id="limit-not-integer"),
    _get(ITEMS, {"limit": "ten"}, where="limit", id="limit-word"),
    _get(ITEMS, {"limit": ""}, where="limit", id="limit-empty"),
    _get(ITEMS, {"offset": "-1"}, where="offset", id="offset-minus-1"),
    _get(ITEMS, {"offset": "99999999999999999999"}, where="offset", id="offset-huge"),
    _get(ITEMS, {"offset": "2.5"}, where="offset", id="offset-not-integer"),
    _get(ITEMS, {"offset": "abc"}, where="offset", id="offset-word"),
    _get("/runs/1/lines", {"limit": "0"}, where="limit", id="run-lines-limit-0"),
    _get("/runs/1/lines", {"offset": "99999999999999999999"}, where="offset",
         id="run-lines-offset-huge"),
    # ---- crs
    _get(ITEMS, {"crs": "EPSG:3857"}, where="crs", id="crs-3857"),
    _get(ITEMS, {"crs": "garbage"}, where="crs", id="crs-garbage"),
    _get(ITEMS, {"crs": "EPSG:99999"}, where="crs", id="crs-unknown-epsg"),
    _get(FEATURE, {"crs": "EPSG:3857"}, where="crs", id="feature-crs-3857"),
    _get(f"/collections/{HACKNEY}/download", {"crs": "urn:nowhere"}, where="crs",
         id="download-crs-unknown"),
    # ---- tiles
    _get(f"{TILES}/25/0/0", where="z", id="tile-z-25"),
    _get(f"{TILES}/-1/0/0", where="z", id="tile-z-negative"),
    _get(f"{TILES}/99999999999999999999/0/0", where="z", id="tile-z-huge"),
    _get(f"{TILES}/1/2/0", where="x", id="tile-x-2-at-zoom-1"),
    _get(f"{TILES}/2/0/4", where="y", id="tile-y-4-at-zoom-2"),
    _get(f"{TILES}/3/-1/0", where="x", id="tile-x-negative"),
    _get(f"{TILES}/3/0/-1", where="y", id="tile-y-negative"),
    _get(f"{TILES}/3/1.5/0", where="x", id="tile-x-not-integer"),
    _get(f"{TILES}/a/0/0", where="z", id="tile-z-word"),
    _get(f"/collections/{HACKNEY}/tiles/WorldCRS84Quad/0/0/0", where="tileMatrixSetId",
         id="tile-wrong-tile-matrix-set"),
    _get(f"/collections/{HACKNEY}/tiles/WorldCRS84Quad", where="tileMatrixSetId",
         id="tileset-wrong-tile-matrix-set"),
    _get("/tileMatrixSets/GoogleCRS84Quad", where="tileMatrixSetId",
         id="tile-matrix-set-unknown"),
    # ---- ids: unknown, long, unicode, traversal, NUL
    _get("/collections/no-such-collection", status=404, where="no-such-collection",
         id="collection-unknown"),
    _get("/collections/no-such-collection/items", status=404, where="no-such-collection",
         id="collection-unknown-items"),
    _get("/collections/no-such-collection/tiles/WebMercatorQuad/0/0/0", status=404,
         where="no-such-collection", id="collection-unknown-tile"),
    _get(f"{ITEMS}/E09999999", status=404, where="E09999999", id="feature-unknown"),
    _get("/collections/" + "x" * 5000, status=404, id="collection-id-5000-characters"),
    _get(f"{ITEMS}/" + "E0" * 3000, status=404, id="feature-id-6000-characters"),
    _get("/collections/%C5%B5ard-%C2%A3", status=404, where="ŵard-£", id="collection-unicode"),
    _get(f"{ITEMS}/%E2%98%83", status=404, where="☃", id="feature-unicode"),
    _get("/collections/..%2F..%2Fetc%2Fpasswd", status=404, id="collection-path-traversal"),
    _get(f"{ITEMS}/..%2F..%2F..%2Fetc%2Fpasswd", status=404, id="feature-path-traversal"),
    _get("/collections/..%2Fruns", status=404, id="collection-traversal-to-runs"),
    _get("/collections/%00", where="collectionId", id="collection-nul"),
    _get(f"{ITEMS}/E05009367%00", where="featureId", id="feature-nul"),
    _get("/crosswalks/hackney-wards-2014%00/hackney-wards-2013.csv", where="source",
         id="crosswalk-source-nul"),
    # ---- run
    _get(ITEMS, {"run": "0"}, where="run", id="run-0"),
    _get(ITEMS, {"run": "-1"}, where="run", id="run-negative"),
    _get(ITEMS, {"run": "99999999999999999999"}, where="run", id="run-huge"),
    _get(ITEMS, {"run": "2147483648"}, where="run", id="run-above-int32"),
    _get(ITEMS, {"run": "abc"}, where="run", id="run-word"),
    _get(ITEMS, {"run": "999999"}, status=404, where="run", id="run-unknown"),
    _get(f"/collections/{HACKNEY}", {"run": "999999"}, status=404, where="run",
         id="collection-run-unknown"),
    _get("/runs/999999", status=404, id="runs-unknown"),
    _get("/runs/abc", where="run_id", id="runs-word"),
    _get("/runs/1/lines/abc", where="line_id", id="run-line-word"),
    _get("/uploads/batches/abc", where="batch_id", id="upload-batch-word"),
    # ---- filters on queryables
    _get(ITEMS, {"colour": "red"}, where="colour", id="filter-unknown-property"),
    _get(ITEMS, {"population": "many"}, where="population", id="filter-integer-given-word"),
    _get(ITEMS, {"population": "1.5"}, where="population", id="filter-integer-given-decimal"),
    _get(ITEMS, {"population": "1 OR 1=1"}, where="population",
         id="filter-integer-injection"),
    _get(ITEMS, {"population": "99999999999999999999"}, where="population",
         id="filter-integer-above-int64"),
    _get(ITEMS, {"total": "abc"}, where="total", id="filter-number-given-word"),
    _get(ITEMS, {"total": "NaN"}, where="total", id="filter-number-nan"),
    _get(ITEMS, [("name", "Dalston"), ("name", "Hoxton")], where="name",
         id="filter-repeated"),
    _get(ITEMS, {"name": "x" * 201}, where="name", id="filter-over-200-characters"),
    _get(ITEMS, {"code[$ne]": "x"}, where="code[$ne]", id="filter-nosql-operator"),
    _get(ITEMS, {"name": "\x00"}, where="name", id="filter-nul"),
    _get(ITEMS, {"name": "Dalston\x00' OR 1=1 --"}, where="name", id="filter-nul-injection"),
    # ---- format, datetime, unknown parameters
    _get(ITEMS, {"f": "xml"}, where="f", id="items-f-unknown"),
    _get(ITEMS, {"f": "gpkg"}, where="f", id="items-f-download-only"),
    _get("/", {"f": "xml"}, where="f", id="landing-f-unknown"),
    _get(FEATURE, {"f": "csv"}, where="f", id="feature-f-csv"),
    _get(f"/collections/{HACKNEY}/download", {"f": "shp"}, where="f", id="download-f-unknown"),
    _get(ITEMS, {"datetime": "last tuesday"}, where="datetime", id="datetime-words"),
    _get(ITEMS, {"datetime": "2015-13-01"}, where="datetime", id="datetime-month-13"),
    _get(ITEMS, {"datetime": "2015-02-30"}, where="datetime", id="datetime-february-30"),
    _get(ITEMS, {"datetime": "../.."}, where="datetime", id="datetime-both-ends-open"),
    _get(ITEMS, {"datetime": "2015-01-01/2014-01-01"}, where="datetime",
         id="datetime-ends-before-it-starts"),
    _get(ITEMS, {"datetime": "\x00"}, where="datetime", id="datetime-nul"),
    _get(ITEMS, {"foo": "1"}, where="foo", id="items-unknown-parameter"),
    _get(FEATURE, {"foo": "1"}, where="foo", id="feature-unknown-parameter"),
    _get(f"{TILES}/10/511/340", {"foo": "1"}, where="foo", id="tile-unknown-parameter"),
    _get(f"/collections/{HACKNEY}/download", {"limit": "1"}, where="limit",
         id="download-unknown-parameter"),
    _get("/crosswalks/hackney-wards-2014/hackney-wards-2013.csv", {"basis": "volume"},
         where="basis", id="crosswalk-basis-unknown"),
    _get("/crosswalks/no-such-set/hackney-wards-2013.csv", status=404,
         id="crosswalk-set-unknown"),
    _get("/map", {"collection": "x" * 201}, where="collection", id="map-collection-too-long"),
    _get("/map", {"collection": "no-such-collection"}, status=404,
         where="no-such-collection", id="map-collection-unknown"),
    _get("/map", {"collection": "hackney-wards-2014"}, status=404, where="collection",
         id="map-boundary-set"),
    # ---- unknown routes and methods
    _get("/nope", status=404, where="/nope", id="route-unknown"),
    _get("/collections/hackney/items/E05009367/more", status=404, id="route-too-deep"),
    _call("POST", "/collections", 405, "/collections", id="post-on-get-route"),
    _call("POST", ITEMS, 405, ITEMS, id="post-on-items"),
    _call("PUT", f"/collections/{HACKNEY}", 405, id="put-collection"),
    _call("DELETE", ITEMS, 405, id="delete-items"),
    _call("DELETE", "/runs/1", 405, "/runs/1", id="delete-run"),
    _call("PATCH", "/collections", 405, id="patch-collections"),
    _call("PUT", "/uploads/spend", 405, id="put-upload"),
    _call("GET", "/neighbourhoods/budget", 405, id="get-on-post-route"),
]


def _assert_error_shape(r: Any, status: int, where: str | None) -> dict:
    assert r.status_code == status, r.text
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"code", "cause", "where", "fix"}, body
    assert isinstance(body["code"], str) and body["code"], body
    assert isinstance(body["cause"], str) and body["cause"].strip(), body
    assert isinstance(body["fix"], str) and body["fix"].strip(), body
    assert body["where"] is None or isinstance(body["where"], str), body
    if where is not None:
        assert where in (body["where"] or ""), body
    for leak in LEAKS:
        assert leak not in r.text, (leak, r.text)
    return body


@pytest.fixture(scope="module")
def before(client: TestClient) -> dict[str, Any]:
    """What the public reads before any malformed request of this module was sent."""
    return _state(client)


def _state(client: TestClient) -> dict[str, Any]:
    items = client.get(ITEMS).json()
    return {
        "hackney": (items["numberMatched"], sorted(f["id"] for f in items["features"])),
        "runs": [(r["id"], r["total_pence"]) for r in client.get("/runs").json()["runs"]],
        "collections": sorted(c["id"] for c in client.get("/collections").json()["collections"]),
        "batches": len(client.get("/uploads/batches").json()["batches"]),
    }


def test_the_state_before(before: dict[str, Any]) -> None:
    assert before["hackney"][0] == 21 and len(before["hackney"][1]) == 21
    assert before["runs"]


@pytest.mark.parametrize(("method", "path", "params", "status", "where"), BAD_REQUESTS)
def test_a_malformed_request_is_a_4xx_in_the_one_error_shape(
    client: TestClient, method: str, path: str, params: Any, status: int, where: str | None
) -> None:
    _assert_error_shape(client.request(method, path, params=params), status, where)


BUDGET = "/neighbourhoods/budget"


@pytest.mark.parametrize(("path", "params", "status", "where", "body", "key"), [
    pytest.param(BUDGET, {}, 400, "body", b"this is not json", False, id="budget-body-not-json"),
    pytest.param(BUDGET, {}, 400, "body", b'{"type": "Polygon", "coordinates": [[[', False,
                 id="budget-body-truncated-json"),
    pytest.param(BUDGET, {}, 422, "body", {"no": "type"}, False, id="budget-body-not-geojson"),
    pytest.param(BUDGET, {}, 422, "geometry",
                 {"type": "LineString", "coordinates": [[0, 51], [1, 52]]}, False,
                 id="budget-linestring"),
    pytest.param(BUDGET, {}, 422, "geometry.coordinates", {"type": "Polygon", "coordinates": "x"},
                 False, id="budget-coordinates-not-numbers"),
    pytest.param(BUDGET, {"crs": "EPSG:99999"}, 422, "crs", SQUARE, False,
                 id="budget-crs-unknown"),
    pytest.param(BUDGET, {"run": "0"}, 400, "run", SQUARE, False, id="budget-run-0"),
    pytest.param(BUDGET, {"run": "999999"}, 404, None, SQUARE, False, id="budget-run-unknown"),
    pytest.param(BUDGET, {"foo": "1"}, 400, "foo", SQUARE, False,
                 id="budget-unknown-parameter"),
    pytest.param(BUDGET, {"crs": "\x00"}, 400, "crs", SQUARE, False, id="budget-crs-nul"),
    pytest.param(SAVE, {"name": "Keyless"}, 401, None, SQUARE, False, id="save-without-a-key"),
    pytest.param(SAVE, {}, 422, "body",
                 {"type": "Feature", "properties": {"name": "Dalston\x00Lane"},
                  "geometry": SQUARE}, True, id="save-name-with-nul-in-the-body"),
    pytest.param("/neighbourhood-sets/Not A Slug/neighbourhoods", {"name": "x"}, 422, "set",
                 SQUARE, True, id="save-set-name-not-a-slug"),
])
def test_a_malformed_write_is_a_4xx_in_the_one_error_shape(
    client: TestClient, auth: dict[str, str], path: str, params: dict, status: int,
    where: str | None, body: Any, key: bool
) -> None:
    headers = {**({"Content-Type": "application/json"} if isinstance(body, bytes) else {}),
               **(auth if key else {})}
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    _assert_error_shape(client.post(path, params=params, headers=headers, **kwargs), status,
                        where)


@pytest.mark.parametrize(("path", "status", "where", "key"), [
    pytest.param("/uploads/spend", 401, None, False, id="upload-without-a-key"),
    pytest.param("/uploads/planets", 404, None, True, id="upload-kind-unknown"),
    pytest.param("/uploads/spend", 400, None, True, id="upload-without-a-file"),
])
def test_a_malformed_upload_is_a_4xx_in_the_one_error_shape(
    client: TestClient, auth: dict[str, str], path: str, status: int, where: str | None,
    key: bool
) -> None:
    headers = auth if key else {"Authorization": "Bearer psk_not-a-key"}
    r = client.post(path, headers=headers, data={"unit": "pence"})
    _assert_error_shape(r, status, where)


@pytest.mark.parametrize("value", [
    pytest.param("' OR 1=1 --", id="or-1-equals-1"),
    pytest.param("Dalston'; DROP TABLE run; --", id="drop-table-run"),
    pytest.param("' UNION SELECT code, name FROM boundary --", id="union-select"),
    pytest.param("Dalston' OR '1'='1", id="or-quoted-1"),
    pytest.param("%' OR name LIKE '%", id="like-wildcards"),
    pytest.param("\\'; DELETE FROM publication; --", id="escaped-quote-delete"),
    pytest.param('{"$ne": "x"}', id="nosql-object"),
    pytest.param("*", id="star"),
])
def test_an_injection_in_a_filter_is_a_value_that_matches_nothing(
    client: TestClient, value: str
) -> None:
    r = client.get(ITEMS, params={"name": value})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["numberMatched"] == 0 and body["numberReturned"] == 0 and body["features"] == []
    code = client.get(ITEMS, params={"code": value})
    assert code.status_code == 200 and code.json()["numberMatched"] == 0, code.text


def test_a_real_name_still_matches_after_the_injections(client: TestClient) -> None:
    r = client.get(ITEMS, params={"name": "Dalston"})
    assert r.status_code == 200 and r.json()["numberMatched"] == 1, r.text


def test_nothing_changed(client: TestClient, before: dict[str, Any]) -> None:
    after = _state(client)
    assert after == before
    assert after["hackney"][0] == 21
