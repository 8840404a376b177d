"""The HTTP API against a real PostGIS holding the published 2014-15 demo run.

Values, not only status codes: the pence served must add back to the Revenue Outturn figures
(Hackney £529,694,000; GLA £4,700,863,000; together 523,055,700,000p over London's wards).
"""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from shapely.geometry import shape

from api.app import create_app
from domain.version import ALGORITHM_VERSION
from placespend.runs import RunResult
from placespend.settings import Settings

HACKNEY = "hackney-wards-2014-spend-2014-15"
LONDON = "london-wards-2014-spend-2014-15"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
EPSG_27700 = "http://www.opengis.net/def/crs/EPSG/0/27700"
HACKNEY_PENCE = 52_969_400_000
GLA_PENCE = 470_086_300_000
#: The whole public pound of 2014-15 in London: the 33 councils' and the GLA's service lines
#: (£18.71bn) and the CRA's rows but its local government current spending on services
#: (£65.82bn); the GP payments are inside NHS England's rows (tests/test_demo_run.py derives
#: it from the files).
ALL_PENCE = 8_452_687_200_000
#: Lines of the 2014-15 run: 442 RS, 1,576 CRA, 1,437 GP practices.
ALL_LINES = 442 + 1_576 + 1_437
#: Pence the netting rules took off: CRA's local government rows and the GP payments.
NETTED_PENCE = 1_861_444_700_000 + 120_404_145_300
PROPERTIES = (
    ["code", "name", "population", "total", "total_pence", "per_head"]
    + [f"cofog_{i:02d}" for i in range(1, 11)]
    + ["body_hackney", "body_gla", "share_direct", "share_agency_estimate", "share_proxy",
       "share_area", "share_best_fit", "confidence"]
)


def _all(client: TestClient, url: str) -> list[dict]:
    """Every feature of a collection, following ``next`` links."""
    out: list[dict] = []
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["features"]
        url = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
    return out


def _assert_error(r, status: int, where: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["cause"] and body["fix"], body
    if where is not None:
        assert where in (body["where"] or ""), body
    return body


def test_landing_page_links(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    body = r.json()
    assert body["title"] == "Placespend" and "public money" in body["description"]
    links = {lk["rel"]: lk for lk in body["links"]}
    assert links["self"]["href"] == "http://testserver/"
    assert links["service-desc"]["href"] == "http://testserver/api"
    assert links["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.1"
    assert client.get("/api").json()["openapi"].startswith("3.1")
    assert links["service-doc"]["href"] == "http://testserver/api.html"
    assert links["conformance"]["href"] == "http://testserver/conformance"
    assert links["data"]["href"] == "http://testserver/collections"
    assert any(lk["href"] == "http://testserver/map" and lk["type"] == "text/html"
               for lk in body["links"])
    # the service description the landing page points at is there
    assert "/collections/{collectionId}/items" in client.get("/api").json()["paths"]


def test_conformance_classes(client: TestClient) -> None:
    conforms = client.get("/conformance").json()["conformsTo"]
    prefix = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
    assert {prefix + c for c in ("core", "geojson")} <= set(conforms)
    assert prefix + "oas30" not in conforms  # the API definition is OpenAPI 3.1
    assert "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/schemas" in conforms


def test_collections_list_both_with_crs84_bboxes(client: TestClient, demo: RunResult) -> None:
    body = client.get("/collections").json()
    by_id = {c["id"]: c for c in body["collections"]}
    assert {HACKNEY, LONDON} <= set(by_id)
    for cid in (HACKNEY, LONDON):
        c = by_id[cid]
        assert c["itemType"] == "feature" and c["crs"] == [CRS84, EPSG_4326, EPSG_27700]
        assert c["storageCrs"] == EPSG_27700 and c["kind"] == "publication"
        assert c["run"] == demo.run_id
        assert c["extent"]["spatial"]["crs"] == CRS84
        [[minx, miny, maxx, maxy]] = c["extent"]["spatial"]["bbox"]
        # lon/lat order, around London (the box of the British National Grid extent, so a
        # little wider than the wards themselves)
        assert -0.53 < minx < maxx < 0.36, c["extent"]
        assert 51.27 < miny < maxy < 51.70, c["extent"]
        assert c["extent"]["temporal"]["interval"] == [
            ["2014-04-01T00:00:00Z", "2015-03-31T23:59:59Z"]
        ]
        assert "Ordnance Survey" in c["attribution"]
        assert c["licence"] == "Open Government Licence v3.0"
        rels = {lk["rel"]: lk for lk in c["links"] if lk["type"] != "text/html"
                and "f=csv" not in lk["href"]}
        assert rels["self"]["href"] == f"http://testserver/collections/{cid}"
        assert rels["items"]["href"] == f"http://testserver/collections/{cid}/items"
        assert rels["items"]["type"] == "application/geo+json"
        assert any(lk["href"] == f"http://testserver/runs/{demo.run_id}" for lk in c["links"])
    [[hminx, hminy, hmaxx, hmaxy]] = by_id[HACKNEY]["extent"]["spatial"]["bbox"]
    [[lminx, lminy, lmaxx, lmaxy]] = by_id[LONDON]["extent"]["spatial"]["bbox"]
    assert lminx < -0.50 and lmaxx > 0.33 and lminy < 51.29 and lmaxy > 51.69
    assert lminx < hminx < hmaxx < lmaxx and lminy < hminy < hmaxy < lmaxy
    # Hackney: about -0.11..-0.02 E, 51.52..51.58 N
    assert -0.12 < hminx < -0.09 and -0.03 < hmaxx < 0.0
    assert 51.51 < hminy < 51.53 and 51.57 < hmaxy < 51.59
    one = client.get(f"/collections/{HACKNEY}").json()
    assert one == by_id[HACKNEY]
    assert by_id[HACKNEY]["features"] == 21 and by_id[LONDON]["features"] == 630


def test_hackney_items_values_add_back(client: TestClient) -> None:
    r = client.get(f"/collections/{HACKNEY}/items")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == 21 and body["numberReturned"] == 21
    assert body["timeStamp"].endswith("Z")
    assert not any(lk["rel"] == "next" for lk in body["links"])
    feats = body["features"]
    assert len(feats) == 21 and len({f["id"] for f in feats}) == 21
    for f in feats:
        assert f["type"] == "Feature" and f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert set(PROPERTIES) <= set(f["properties"]), f["properties"].keys()
        assert f["id"] == f["properties"]["code"]
        p = f["properties"]
        assert p["total"] == pytest.approx(p["total_pence"] / 100, abs=0.005)
        assert p["share_proxy"] == pytest.approx(1.0)
    codes = {f["id"] for f in feats}
    assert codes == {f"E05009{n}" for n in range(367, 388)}

    london = {f["id"]: f["properties"] for f in _all(client, f"/collections/{LONDON}/items")}
    gla_in_hackney = sum(round(london[c]["body_gla"] * 100) for c in codes)
    hackney_total = sum(f["properties"]["total_pence"] for f in feats)
    assert hackney_total > HACKNEY_PENCE + gla_in_hackney  # and every other body's share
    assert sum(round(f["properties"]["body_hackney"] * 100) for f in feats) == HACKNEY_PENCE
    assert 0 < gla_in_hackney < GLA_PENCE
    # London as a whole holds every penny of both bodies
    assert sum(p["total_pence"] for p in london.values()) == ALL_PENCE
    assert sum(round(p["body_gla"] * 100) for p in london.values()) == GLA_PENCE
    assert len({f["properties"]["per_head"] for f in feats}) > 10


def test_schema_and_pence_survive_clients_that_guess_types(client: TestClient) -> None:
    """GIS clients guess 32-bit integers from a first page of small wards: pence are sent as
    whole numbers written with ".0" (so they are read as doubles), and the schema says so."""
    link = next(lk for lk in client.get(f"/collections/{LONDON}").json()["links"]
                if lk["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/schema")
    assert link["type"] == "application/schema+json"
    r = client.get(link["href"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/schema+json")
    props = r.json()["properties"]
    assert props["geometry"]["x-ogc-role"] == "primary-geometry"
    assert props["total_pence"]["type"] == "number"
    assert "whole pence" in props["total_pence"]["description"]
    assert props["population"]["type"] == "integer" and props["population"]["format"] == "int64"
    for name in ("total", "per_head", "cofog_02", "body_gla", "share_proxy"):
        assert props[name]["type"] == "number", name
    assert props["code"]["type"] == props["name"]["type"] == "string"
    assert "Education" in props["cofog_09"]["description"]
    assert "Greater London Authority" in props["body_gla"]["description"]
    # the order matches the features' properties
    first = client.get(f"/collections/{LONDON}/items?limit=1").json()["features"][0]
    ordered = sorted((k for k in props if k != "geometry"),
                     key=lambda k: props[k]["x-ogc-propertySeq"])
    assert ordered == list(first["properties"])
    # and the reason it matters: the first page is small, later wards exceed 2**31 pence,
    # so every total_pence is written as a float literal, never as a bare integer
    raw = client.get(f"/collections/{LONDON}/items?limit=10").text
    assert re.search(r'"total_pence": ?-?\d+\.0[,}]', raw)
    assert not re.search(r'"total_pence": ?-?\d+[,}]', raw)
    _assert_error(client.get("/collections/no-such-thing/schema"), 404)


def test_paging_london_follows_next_links(client: TestClient) -> None:
    url: str | None = f"/collections/{LONDON}/items?limit=100"
    ids: list[str] = []
    pages = 0
    while url:
        body = client.get(url).json()
        pages += 1
        assert body["numberMatched"] == 630
        assert body["numberReturned"] == len(body["features"]) <= 100
        rels = {lk["rel"]: lk["href"] for lk in body["links"]}
        assert ("prev" in rels) == (pages > 1)
        ids += [f["id"] for f in body["features"]]
        url = rels.get("next")
    assert pages == 7
    assert len(ids) == 630 and len(set(ids)) == 630


def test_bbox_around_one_ward(client: TestClient) -> None:
    r = client.get(f"/collections/{HACKNEY}/items/E05009367")
    assert r.status_code == 200
    ward = r.json()
    assert ward["properties"]["name"] == "Brownswood"
    assert any(lk["rel"] == "collection" for lk in ward["links"])
    pt = shape(ward["geometry"]).representative_point()
    box = f"{pt.x - 0.0005},{pt.y - 0.0005},{pt.x + 0.0005},{pt.y + 0.0005}"
    body = client.get(f"/collections/{HACKNEY}/items", params={"bbox": box}).json()
    got = {f["id"] for f in body["features"]}
    assert "E05009367" in got and 1 <= len(got) <= 3 and body["numberMatched"] == len(got)
    same = client.get(f"/collections/{HACKNEY}/items",
                      params={"bbox": box, "bbox-crs": CRS84}).json()
    assert {f["id"] for f in same["features"]} == got
    # far away from London: nothing
    empty = client.get(f"/collections/{HACKNEY}/items", params={"bbox": "2,48,3,49"}).json()
    assert empty["numberMatched"] == 0 and empty["features"] == []


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"bbox": "-0.02,51.5,-0.1,51.6"}, "bbox"),  # min lon > max lon
        ({"bbox": "51.5,-0.1,51.6,-0.02,0"}, "bbox"),
        ({"bbox": "-0.1,51.5,-0.02,51.6", "bbox-crs": "EPSG:3857"}, "bbox-crs"),
        ({"crs": "EPSG:3857"}, "crs"),
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"datetime": "last tuesday"}, "datetime"),
        ({"bbbox": "-0.1,51.5,-0.02,51.6"}, "bbbox"),
    ],
)
def test_bad_parameters_are_400_with_cause_and_fix(client: TestClient, params: dict,
                                                   where: str) -> None:
    _assert_error(client.get(f"/collections/{HACKNEY}/items", params=params), 400, where)


def test_datetime_selects_by_financial_year(client: TestClient) -> None:
    url = f"/collections/{HACKNEY}/items"
    assert client.get(url, params={"datetime": "2014-06-01T00:00:00Z"}).json()[
        "numberMatched"] == 21
    assert client.get(url, params={"datetime": "2015-03-01/.."}).json()["numberMatched"] == 21
    after = client.get(url, params={"datetime": "2016-01-01T00:00:00Z/.."}).json()
    assert after["numberMatched"] == 0 and after["features"] == []


def test_unknown_collection_and_feature_are_404(client: TestClient) -> None:
    body = _assert_error(client.get("/collections/no-such-thing"), 404)
    assert body["code"] == "not_found" and "/collections" in body["fix"]
    _assert_error(client.get("/collections/no-such-thing/items"), 404)
    _assert_error(client.get(f"/collections/{HACKNEY}/items/E09999999"), 404, "E09999999")


def test_etag_and_if_none_match(client: TestClient) -> None:
    url = f"/collections/{HACKNEY}/items?limit=5"
    first = client.get(url)
    tag = first.headers["etag"]
    assert tag and first.headers["cache-control"] == "public, max-age=300"
    assert client.get(url).headers["etag"] == tag  # same run, same parameters
    again = client.get(url, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == tag
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    other = client.get(f"/collections/{HACKNEY}/items?limit=5&offset=5").headers["etag"]
    assert other != tag
    one = client.get(f"/collections/{HACKNEY}/items/E05009367")
    assert client.get(f"/collections/{HACKNEY}/items/E05009367",
                      headers={"If-None-Match": one.headers["etag"]}).status_code == 304


def test_runs(client: TestClient, demo: RunResult) -> None:
    listed = client.get("/runs").json()["runs"]
    mine = next(r for r in listed if r["id"] == demo.run_id)
    assert mine["financial_year"] == "2014-15"
    assert mine["total_pence"] == ALL_PENCE and mine["unallocated_pence"] == 0
    assert mine["links"][0]["href"] == f"http://testserver/runs/{demo.run_id}"
    run = client.get(f"/runs/{demo.run_id}").json()
    assert run["conservation"]["total_pence"] == ALL_PENCE
    assert run["conservation"]["allocated_pence"] == ALL_PENCE
    assert run["conservation"]["unallocated_pence"] == 0
    assert run["conservation"]["lines"] == ALL_LINES
    assert run["conservation"]["netted_pence"] == NETTED_PENCE
    assert run["algorithm_version"] == ALGORITHM_VERSION
    assert {c["id"] for c in run["collections"]} >= {HACKNEY, LONDON}
    assert all(c["public"] for c in run["collections"] if c["id"] in (HACKNEY, LONDON))
    assert run["params"]["financial_year"] == "2014-15"
    targets = {c["target_set"]: c for c in run["collections"]}
    assert targets["london-wards-2014"]["allocated_pence"] == ALL_PENCE
    assert targets["london-wards-2014"]["outside_pence"] == 0
    assert (targets["hackney-wards-2014"]["allocated_pence"]
            + targets["hackney-wards-2014"]["outside_pence"]) == ALL_PENCE
    assert any(lk["href"] == f"http://testserver/collections/{HACKNEY}?run={demo.run_id}"
               for lk in run["links"])

    # The conservation report: paged, and whole as CSV; every line adds back.
    page = client.get(f"/runs/{demo.run_id}/lines?limit=10").json()
    assert page["numberMatched"] == ALL_LINES and page["numberReturned"] == 10
    assert any(lk["rel"] == "next" for lk in page["links"])
    rest = client.get(f"/runs/{demo.run_id}/lines?limit=2000&offset=10").json()["lines"]
    rest += client.get(f"/runs/{demo.run_id}/lines?limit=2000&offset=2010").json()["lines"]
    every = page["lines"] + rest
    assert len({r["line_id"] for r in every}) == ALL_LINES
    assert sum(r["amount_pence"] for r in every) == ALL_PENCE + NETTED_PENCE
    assert sum(r["netted_pence"] for r in every) == NETTED_PENCE
    assert all(r["allocated_pence"] + r["netted_pence"] == r["amount_pence"] for r in every)
    csv = client.get(f"/runs/{demo.run_id}/lines.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(csv.text))
    assert len(frame) == ALL_LINES and int(frame["allocated_pence"].sum()) == ALL_PENCE

    # One line's spread, derived on request, adds back to the penny.
    biggest = max(every, key=lambda r: r["amount_pence"])
    one = client.get(biggest["href"]).json()
    assert sum(a["amount_pence"] for a in one["atoms"]) == biggest["amount_pence"]
    assert sum(one["by_cut_unit"].values()) == biggest["amount_pence"]
    _assert_error(client.get(f"/runs/{demo.run_id}/lines/999999999"), 404)
    _assert_error(client.get("/runs/999999"), 404)
    _assert_error(client.get("/runs/abc"), 400)


def test_health(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok"}


def test_health_reports_a_dead_database_safely(client: TestClient, app: FastAPI) -> None:
    class DeadPool:
        def connection(self, timeout: float | None = None):
            raise OSError("connection refused: password=hunter2 host=db.internal")

    real = app.state.pool
    app.state.pool = DeadPool()
    try:
        r = client.get("/health")
    finally:
        app.state.pool = real
    body = _assert_error(r, 503, "database")
    assert "hunter2" not in r.text and "db.internal" not in r.text
    assert body["code"] == "setup"


def test_busy_database_is_503_on_data_requests(client: TestClient, app: FastAPI) -> None:
    from psycopg_pool import PoolTimeout

    class BusyPool:
        def connection(self, timeout: float | None = None):
            raise PoolTimeout("couldn't get a connection after 10.00 sec")

    real = app.state.pool
    app.state.pool = BusyPool()
    try:
        r = client.get(f"/collections/{LONDON}/items")
    finally:
        app.state.pool = real
    body = _assert_error(r, 503)
    assert body["code"] == "setup" and "did not answer in time" in body["cause"]


def test_unexpected_error_is_500_without_internals(db_url: str) -> None:
    app = create_app(Settings(database_url=db_url))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: /srv/placespend/keys.txt")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500
    assert "secret" not in r.text and "keys.txt" not in r.text
    body = r.json()
    assert body["code"] == "internal" and body["cause"] and body["fix"]


def _public_bytes(client: TestClient) -> dict[str, str]:
    """Everything a public client reads, with the one moving part (timeStamp) taken out."""
    out = {"/collections": client.get("/collections").text}
    for cid in (HACKNEY, LONDON):
        for path in (f"/collections/{cid}", f"/collections/{cid}/schema",
                     f"/collections/{cid}/items?limit=1000"):
            r = client.get(path)
            assert r.status_code == 200, r.text
            out[path] = re.sub(r'"timeStamp": "[^"]*"', "", r.text) + r.headers.get("etag", "")
    return out


def test_a_what_if_run_leaves_every_public_collection_byte_identical(
    client: TestClient, db_url: str, demo: RunResult, tmp_path, monkeypatch, capsys
) -> None:
    from placespend.cli import main

    before = _public_bytes(client)
    table = tmp_path / "what-if.csv"
    table.write_text("line,proxy,rationale\n*,residents-65-plus,what if everything followed 65+\n")
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["run", "--proxy-table", str(table)]) == 0
    err = capsys.readouterr().err
    what_if = int(re.search(r"run (\d+) computed", err).group(1))
    assert what_if != demo.run_id
    assert "not published: the public collections are unchanged" in err
    assert _public_bytes(client) == before
    # The what-if figures are there, at an address that pins the run, and they differ.
    pinned = client.get(f"/collections/{HACKNEY}/items?run={what_if}").json()
    assert pinned["run"] == what_if
    now = client.get(f"/collections/{HACKNEY}/items").json()
    assert now["run"] == demo.run_id
    assert ([f["properties"]["total_pence"] for f in pinned["features"]]
            != [f["properties"]["total_pence"] for f in now["features"]])
    assert (sum(f["properties"]["total_pence"] for f in pinned["features"])
            != sum(f["properties"]["total_pence"] for f in now["features"]))
    run = client.get(f"/runs/{what_if}").json()
    assert not any(c["public"] for c in run["collections"])


def test_unknown_routes_and_methods_answer_in_the_one_error_shape(client: TestClient) -> None:
    r = client.get("/no/such/place")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found" and set(r.json()) == {"code", "cause", "where", "fix"}
    r = client.delete(f"/collections/{HACKNEY}")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed" and "DELETE" in r.json()["cause"]


def test_head_answers_like_get_without_a_body(client: TestClient) -> None:
    got = client.get(f"/collections/{HACKNEY}/items?limit=2")
    head = client.head(f"/collections/{HACKNEY}/items?limit=2")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["etag"] == got.headers["etag"]


def test_a_huge_offset_is_a_400_naming_it(client: TestClient) -> None:
    r = client.get(f"/collections/{HACKNEY}/items", params={"offset": 99999999999999999999})
    assert r.status_code == 400 and r.json()["where"] == "query.offset"


def test_a_world_sized_bbox_returns_every_feature(client: TestClient) -> None:
    """The world's corners collapse when reprojected to British National Grid: the box is
    clamped to where the grid is defined first. A box wholly outside it finds nothing."""
    world = client.get(f"/collections/{HACKNEY}/items", params={"bbox": "-180,-90,180,90"})
    assert world.status_code == 200 and world.json()["numberMatched"] == 21
    far = client.get(f"/collections/{HACKNEY}/items", params={"bbox": "100,10,110,20"})
    assert far.status_code == 200 and far.json()["numberMatched"] == 0
    one = client.get(f"/collections/{HACKNEY}/items", params={"bbox": "-0.085,51.535,-0.06,51.55"})
    assert 0 < one.json()["numberMatched"] < 21
