"""Any polygon answered from the demo run's atoms; saved as a neighbourhood set, the same figures.

The polygon is a triangle between points inside three Hackney wards that meet, so it crosses
ward boundaries and cuts atoms (LSOA pieces) in two.
"""

from __future__ import annotations

import json
from itertools import combinations

import pytest
import shapely
import shapely.affinity
from fastapi.testclient import TestClient
from pyproj import Transformer

from geo.crosswalk import MIN_SHARE
from placespend.runs import RunResult, derive_publications
from store import boundaries as store_boundaries
from store.db import Connection

_TO_LONLAT = Transformer.from_crs(27700, 4326, always_xy=True)


@pytest.fixture(scope="module")
def triangle(demo: RunResult, db_url: str) -> shapely.Polygon:
    from store.db import connect

    with connect(db_url) as conn:
        wards = store_boundaries.read_boundaries(conn, "hackney-wards-2014")
    geoms = dict(zip(wards["code"], wards.geometry, strict=True))
    for a, b, c in combinations(sorted(geoms), 3):
        if all(geoms[x].touches(geoms[y]) or geoms[x].intersects(geoms[y])
               for x, y in ((a, b), (b, c), (a, c))):
            points = [geoms[x].representative_point() for x in (a, b, c)]
            tri = shapely.Polygon([(p.x, p.y) for p in points])
            hit = [code for code, g in geoms.items() if g.intersects(tri)]
            if len(hit) == 3:
                return tri
    raise AssertionError("no three mutually adjacent Hackney wards found")


def _geojson(polygon: shapely.Polygon, lonlat: bool = True) -> dict:
    ring = list(polygon.exterior.coords)
    if lonlat:
        ring = [_TO_LONLAT.transform(x, y) for x, y in ring]
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


def test_budget_equals_the_atom_pieces_inside(client: TestClient, conn: Connection,
                                              demo: RunResult, triangle) -> None:
    r = client.post("/neighbourhoods/budget", json=_geojson(triangle))
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["run"] == demo.run_id
    assert got["atoms_split"] > 0  # the triangle cuts atoms in two

    # Independently, in PostGIS: each touched atom's pence and the share of its area inside.
    rows = conn.execute(
        """
        SELECT a.atom_id, sum(x.amount_pence)::bigint AS pence,
               ST_Area(ST_Intersection(a.geom, t.g)) / ST_Area(a.geom) AS share,
               count(*) AS product_rows
          FROM atom a
          JOIN run r ON r.id = %(run)s AND r.atom_set_id = a.atom_set_id
          JOIN atom_allocation x ON x.run_id = r.id AND x.atom_id = a.atom_id
          CROSS JOIN (SELECT ST_GeomFromText(%(wkt)s, 27700) AS g) t
         WHERE ST_Intersects(a.geom, t.g)
         GROUP BY a.atom_id, a.geom, t.g
        """,
        {"run": demo.run_id, "wkt": triangle.wkt},
    ).fetchall()
    # Pieces below a millionth of an atom are digitising noise (geo.crosswalk.MIN_SHARE).
    rows = [row for row in rows if row["share"] >= MIN_SHARE]
    touched = sum(int(row["pence"]) for row in rows)
    expected = sum(int(row["pence"]) * row["share"] for row in rows)
    straddling_rows = sum(int(row["product_rows"]) for row in rows if row["share"] < 1 - 1e-9)
    # Whole pence: what lies inside plus what the cut atoms keep outside is every touched penny,
    assert got["total_pence"] + got["outside_pence"] == touched
    # and each cut atom's pence are split by its area share, to within a penny per amount.
    assert abs(got["total_pence"] - expected) <= straddling_rows
    assert sum(got["by_body_pence"].values()) == got["total_pence"]
    assert sum(got["by_function_pence"].values()) == got["total_pence"]
    assert sum(got["by_method_pence"].values()) == got["total_pence"]
    assert abs(sum(got["method_shares"].values()) - 1) < 1e-5
    assert got["population"] > 0
    # per head is worked out from the unrounded population (shown to 0.1 of a person, so
    # within 0.05 of it), then rounded to the penny
    shown = got["total_pence"] / 100 / got["population"]
    assert abs(got["per_head"] - shown) <= shown * 0.05 / got["population"] + 0.005

    # The same polygon in British National Grid, or as a Feature, gives the same answer.
    bng = client.post("/neighbourhoods/budget?crs=EPSG:27700",
                      json=_geojson(triangle, lonlat=False)).json()
    assert abs(bng["total_pence"] - got["total_pence"]) <= straddling_rows
    feature = client.post("/neighbourhoods/budget", json={
        "type": "Feature", "properties": {"name": "Triangle"}, "geometry": _geojson(triangle)})
    assert feature.json()["total_pence"] == got["total_pence"]
    assert feature.json()["name"] == "Triangle"


TRIANGLES = "/neighbourhood-sets/test-triangles/neighbourhoods"
OVERLAPS = "/neighbourhood-sets/test-overlaps/neighbourhoods"


def test_saved_and_published_it_gives_the_same_figures(client: TestClient, conn: Connection, auth,
                                                       demo: RunResult, triangle) -> None:
    drawn = client.post("/neighbourhoods/budget", json=_geojson(triangle)).json()
    saved = client.post(headers=auth, url=TRIANGLES, json={
        "type": "Feature", "properties": {"name": "Three Wards Triangle"},
        "geometry": _geojson(triangle)})
    assert saved.status_code == 201, saved.text
    assert saved.json()["code"] == "three-wards-triangle"
    (cid,) = derive_publications(conn, demo.run_id, ["test-triangles"])
    conn.commit()
    r = client.get(f"/collections/{cid}/items?run={demo.run_id}")
    assert r.status_code == 200, r.text
    (feature,) = r.json()["features"]
    p = feature["properties"]
    assert p["total_pence"] == drawn["total_pence"]
    assert p["population"] == round(drawn["population"])
    for body, pence in drawn["by_body_pence"].items():
        assert round(p[f"body_{body}"] * 100) == pence
    for division, pence in drawn["by_function_pence"].items():
        assert round(p[f"cofog_{division}"] * 100) == pence
    # Published figures never move: the set is frozen now.
    again = client.post(headers=auth, url=TRIANGLES, json={
        "type": "Feature", "properties": {"name": "Another"}, "geometry": _geojson(triangle)})
    assert again.status_code == 409
    assert "already published" in again.json()["cause"]


@pytest.mark.parametrize(
    ("body", "query", "status", "where"),
    [
        ({"type": "LineString", "coordinates": [[-0.07, 51.54], [-0.06, 51.55]]}, "", 422,
         "geometry"),
        ({"type": "FeatureCollection", "features": []}, "", 422, "features"),
        ({"type": "Polygon", "coordinates": [[[-0.085, 51.535], [-0.06, 51.535], [-0.06, 51.55],
                                               [-0.085, 51.55], [-0.085, 51.535]]]},
         "?crs=EPSG:27700", 422, None),  # lon/lat declared as metres
        ({"type": "Polygon", "coordinates": [[[2.3, 48.8], [2.4, 48.8], [2.4, 48.9],
                                               [2.3, 48.8]]]}, "", 422, None),  # Paris
        ({"type": "Polygon", "coordinates": "nonsense"}, "", 422, "geometry.coordinates"),
        ({"type": "Polygon", "coordinates": [[[530000, 180000], [531000, 180000],
                                               [531000, 181000], [530000, 180000]]]},
         "", 422, None),  # metres sent without saying so
        ({"no": "type"}, "", 422, "body"),
        ({"type": "Polygon", "coordinates": [[[-0.07, 51.54], [-0.06, 51.54], [-0.06, 51.55],
                                               [-0.07, 51.54]]]}, "?crs=EPSG:99999", 422, "crs"),
        ({"type": "Polygon", "coordinates": [[[-0.07, 51.54], [-0.06, 51.54], [-0.06, 51.55],
                                               [-0.07, 51.54]]]}, "?run=999999", 404, None),
    ],
)
def test_bad_polygons_get_a_clear_4xx(client: TestClient, body, query, status, where) -> None:
    r = client.post(f"/neighbourhoods/budget{query}", json=body)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["cause"] and err["fix"]
    if where:
        assert err["where"] == where
    if "EPSG:27700" in query:
        assert "look like lon/lat degrees" in err["cause"]
    if body.get("coordinates") and body["coordinates"][0][0] == [2.3, 48.8]:
        assert "outside Great Britain" in err["cause"]


def test_overlapping_neighbourhoods_in_one_set_are_refused(client: TestClient, triangle,
                                                          auth) -> None:
    first = client.post(headers=auth, url=f"{OVERLAPS}?name=First",
                        json=_geojson(triangle))
    assert first.status_code == 201, first.text
    moved = shapely.affinity.translate(triangle, xoff=50.0)
    r = client.post(headers=auth, url=f"{OVERLAPS}?name=Second",
                    json=_geojson(moved))
    assert r.status_code == 422
    assert "overlaps neighbourhood 'first'" in r.json()["cause"]
    beside = shapely.affinity.translate(triangle, xoff=triangle.bounds[2] - triangle.bounds[0])
    ok = client.post(headers=auth, url=f"{OVERLAPS}?name=Beside",
                     json=_geojson(beside))
    assert ok.status_code == 201, ok.text


def test_unknown_parameters_and_missing_runs_are_named(client: TestClient, triangle) -> None:
    r = client.post("/neighbourhoods/budget?foo=1", json=_geojson(triangle))
    assert r.status_code == 400 and r.json()["where"] == "foo"
    r = client.get("/collections/hackney-wards-2014-spend-2014-15/items?run=999999")
    assert r.status_code == 404 and r.json()["cause"] == "no run 999999"
    r = client.post("/neighbourhoods/budget", content=b'{"type": "Polygon"}')
    assert r.status_code == 400 and "Content-Type: application/json" in r.json()["fix"]


def test_a_body_that_is_not_json_is_a_400(client: TestClient) -> None:
    r = client.post("/neighbourhoods/budget", content=b"{not json",
                    headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert json.loads(r.text)["fix"]


def test_a_polygon_outside_the_runs_geography_is_an_empty_budget(client: TestClient) -> None:
    # Edinburgh: in Great Britain, nowhere near London's atoms.
    r = client.post("/neighbourhoods/budget", json={"type": "Polygon", "coordinates": [[
        [-3.22, 55.94], [-3.17, 55.94], [-3.17, 55.96], [-3.22, 55.96], [-3.22, 55.94]]]})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["atoms"], got["total_pence"], got["outside_pence"]) == (0, 0, 0)
    assert got["per_head"] is None and got["by_body_pence"] == {}
