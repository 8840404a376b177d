"""Sites and postcodes through the one load path, on real shared data and on bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from fastapi.testclient import TestClient

from domain.errors import BadRequest, InputError, Rejected
from placespend import load
from placespend.cli import main
from store import sites as store_sites
from store.db import Connection, connect

DATA = Path("/work/shared/data")
CODEPOINT = DATA / "hackney-postcodes" / "codepoint_open_2025_hackney_postcode_districts.csv"
GP = DATA / "london-gp-practices-2022" / "london_gp_practices_patients_may2022.csv"
KS4 = DATA / "london-secondary-schools-ks4-2024" / "london_schools_ks4_2023-24_pupils.csv"
HACKNEY = "E09000012"
TABLES = ("upload_batch", "postcode", "site_set", "site")


def counts(conn: Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in TABLES}


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def load_codepoint(conn: Connection) -> load.Loaded:
    return load.load_postcodes(conn, load.Upload(CODEPOINT, CODEPOINT.name), load.PostcodeOptions(
        licence="Open Government Licence v3.0",
        attribution="Contains OS data © Crown copyright and database right 2025"))


def load_sites(conn: Connection, path: Path, **options: object) -> load.Loaded:
    return load.load_sites(conn, load.Upload(path, path.name), load.SiteOptions(**options))


def codepoint_point(postcode: str) -> tuple[float, float]:
    for r in rows_of(CODEPOINT):
        if r["Postcode"] == postcode:
            return float(r["Eastings"]), float(r["Northings"])
    raise AssertionError(postcode)


# --------------------------------------------------------------------------- real data


def test_codepoint_hackney_postcodes(fresh_db: str) -> None:
    with connect(fresh_db) as conn:
        loaded = load_codepoint(conn)
        stored = counts(conn)
        again = load_codepoint(conn)
        points = store_sites.postcode_points(conn, ["E1 0AA", "E8 1DY", "ZZ9 9ZZ"])
        assert counts(conn) == stored
    assert loaded.created and loaded.kind == "postcodes"
    assert loaded.details["postcodes"] == 11_967 == stored["postcode"]  # SOURCE.md: 11,967
    assert loaded.details["districts"] == 15  # SOURCE.md lists 15 postcode districts
    assert stored["upload_batch"] == 1
    assert not again.created and again.batch_id == loaded.batch_id
    assert points["E1 0AA"] == (535267.0, 181084.0)  # the CSV's first row
    assert "ZZ9 9ZZ" not in points


def test_the_newest_batch_answers_for_a_postcode(fresh_db: str, tmp_path: Path) -> None:
    moved = write_csv(tmp_path / "moved.csv", ["pcd", "lon", "lat"],
                      [["e1  0aa", "-0.055323", "51.51291"], ["zz99zz", "-0.1", "51.5"]])
    with connect(fresh_db) as conn:
        load_codepoint(conn)
        second = load.load_postcodes(conn, load.Upload(moved, moved.name), load.PostcodeOptions(
            postcode_field="pcd", longitude_field="lon", latitude_field="lat"))
        points = store_sites.postcode_points(conn, ["E1 0AA", "ZZ9 9ZZ", "E1 0AD"])
        assert counts(conn)["postcode"] == 11_967 + 2
    assert second.details["already_loaded"] == 1 and second.details["moved"] == 1
    assert second.details["first_moved"] == ["E1 0AA"]
    # lon/lat projected to British National Grid: E1 0AD's lon/lat in the Code-Point file is
    # within a few metres of its eastings/northings
    assert points["E1 0AA"][0] == pytest.approx(535042, abs=5)
    assert points["E1 0AA"][1] == pytest.approx(181124, abs=5)
    assert points["E1 0AA"] != (535267.0, 181084.0)
    assert "ZZ9 9ZZ" in points  # the pattern is checked, not the existence of the postcode
    assert points["E1 0AD"] == (535042.0, 181124.0)  # only in the older batch: it answers


def test_london_gp_practices(fresh_db: str) -> None:
    raw = rows_of(GP)
    with connect(fresh_db) as conn:
        loaded = load_sites(conn, GP, slug="london-gp-2022", name="London GP practices, May 2022",
                            kind="gp_practice", id_field="practice_code",
                            name_field="practice_name", postcode_field="postcode",
                            easting_field="easting", northing_field="northing",
                            licence="Open Government Licence v3.0")
        sites = store_sites.read_sites(conn, "london-gp-2022")
        meta = store_sites.find_site_set(conn, "london-gp-2022")
    assert loaded.created and loaded.details["version"] == 1 and meta["version"] == 1
    assert len(sites) == 1_187 == len(raw)  # SOURCE.md: 1,187 practices
    assert loaded.details["located_by"] == {"coordinates": 1_187}
    patients = sites["attrs"].map(lambda a: a["number_of_patients"])
    assert patients.map(type).eq(int).all()
    assert int(patients.sum()) == sum(int(r["number_of_patients"]) for r in raw) == 10_667_434
    hackney = sites[sites["attrs"].map(lambda a: a["lad_code"] == HACKNEY)]
    # SOURCE.md: Hackney 39 practices, 332,924 registered patients
    assert len(hackney) == 39
    assert int(hackney["attrs"].map(lambda a: a["number_of_patients"]).sum()) == 332_924
    first = sites.set_index("site_code").loc["F81062"]
    assert (first["x"], first["y"]) == (544407.0, 191687.0)
    assert first["kind"] == "gp_practice" and first["postcode"] == "IG6 2TA"
    assert first["attrs"]["ccg_code"] == "07H" and first["attrs"]["extract_date"] == "01May2022"
    assert "easting" not in first["attrs"] and "practice_name" not in first["attrs"]


def test_london_ks4_schools(fresh_db: str, tmp_path: Path) -> None:
    raw = rows_of(KS4)
    ungeocoded = {i + 2: r for i, r in enumerate(raw) if r["geocoded"] == "0"}
    options = dict(slug="london-ks4-2024", kind="school", id_field="urn",
                   name_field="school_name", postcode_field="postcode",
                   easting_field="easting", northing_field="northing")
    with connect(fresh_db) as conn:
        load_codepoint(conn)
        before = counts(conn)
        with pytest.raises(Rejected) as err:
            load_sites(conn, KS4, **options)
        assert counts(conn) == before
        # SOURCE.md: 859 rows, 821 geocoded; the 38 others have no coordinates
        assert len(raw) == 859 and len(ungeocoded) == 38
        assert err.value.total == 38
        assert {p.row for p in err.value.problems} == set(ungeocoded)
        assert all(p.where == f"row {p.row}" for p in err.value.problems)
        no_postcode = [p for p in err.value.problems if not ungeocoded[p.row]["postcode"]]
        unknown = [p for p in err.value.problems if ungeocoded[p.row]["postcode"]]
        # 33 give no postcode at all; 5 give one that Code-Point 2025 (Hackney's districts
        # here) does not have
        assert len(no_postcode) == 33 and len(unknown) == 5
        assert {p.field for p in no_postcode} == {"easting, northing, postcode"}
        assert {p.field for p in unknown} == {"postcode"}
        assert all(p.fix == "load a postcode file that has it, or give coordinates"
                   for p in unknown)
        # the geocoded rows load
        geocoded = tmp_path / "ks4_geocoded.csv"
        with geocoded.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(raw[0]))
            w.writeheader()
            w.writerows(r for r in raw if r["geocoded"] == "1")
        loaded = load_sites(conn, geocoded, **options)
        sites = store_sites.read_sites(conn, "london-ks4-2024")
    assert loaded.created and len(sites) == 821
    assert loaded.details["located_by"] == {"coordinates": 821}
    hackney = sites[sites["attrs"].map(lambda a: a["la_code"] == HACKNEY)]
    assert len(hackney) == 29  # SOURCE.md: 31 Hackney schools, 29 geocoded
    pupils = hackney["attrs"].map(lambda a: a["pupils_all_key_stages"])
    expected = sum(int(r["pupils_all_key_stages"]) for r in raw
                   if r["la_code"] == HACKNEY and r["geocoded"] == "1"
                   and r["pupils_all_key_stages"].isdigit())
    assert int(sum(p for p in pupils if isinstance(p, int))) == expected
    # DfE's suppression marker stays text
    markers = sites["attrs"].map(lambda a: a["pupils_all_key_stages"])
    assert (markers == "z").sum() == sum(1 for r in raw if r["geocoded"] == "1"
                                        and r["pupils_all_key_stages"] == "z")


def test_sites_placed_by_postcode_only(fresh_db: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "clinics.csv", ["ref", "title", "pc", "beds"], [
        ["C1", "Clinic one", "e1  0aa", "12"], ["C2", "Clinic two", "E10AD", ""],
        ["C3", "Clinic three", "N16 0AA", "007"]])
    with connect(fresh_db) as conn:
        load_codepoint(conn)
        loaded = load_sites(conn, path, slug="clinics", kind="clinic", id_field="ref",
                            name_field="title", postcode_field="pc")
        sites = store_sites.read_sites(conn, "clinics").set_index("site_code")
    assert loaded.details["located_by"] == {"postcode": 3}
    for code, postcode in (("C1", "E1 0AA"), ("C2", "E1 0AD"), ("C3", "N16 0AA")):
        assert sites.loc[code, "postcode"] == postcode
        assert sites.loc[code, "located"] == "postcode"
        assert (sites.loc[code, "x"], sites.loc[code, "y"]) == codepoint_point(postcode)
    assert sites.loc["C1", "attrs"] == {"beds": 12}
    assert sites.loc["C2", "attrs"] == {"beds": None}
    assert sites.loc["C3", "attrs"] == {"beds": "007"}  # a leading zero is not a number


def test_same_file_twice_and_a_changed_file(fresh_db: str, tmp_path: Path) -> None:
    header = ["id", "name", "e", "n", "pupils"]
    rows = [["S1", "School one", "535267", "181084", "100"],
            ["S2", "School two", "535042", "181124", "200"]]
    first = write_csv(tmp_path / "schools.csv", header, rows)
    options = dict(slug="fx-schools", kind="school", id_field="id", name_field="name",
                   easting_field="e", northing_field="n")
    with connect(fresh_db) as conn:
        v1 = load_sites(conn, first, **options)
        stored = counts(conn)
        again = load_sites(conn, first, **options)
        assert counts(conn) == stored  # 0 new rows
        # the same sites in another order: the same content, nothing new either
        reordered = write_csv(tmp_path / "schools-reordered.csv", header, rows[::-1])
        same = load_sites(conn, reordered, **options)
        assert counts(conn) == stored
        changed = write_csv(tmp_path / "schools-2.csv", header,
                            [rows[0], ["S2", "School two", "535042", "181124", "250"],
                             ["S3", "School three", "535238", "180880", "50"]])
        v2 = load_sites(conn, changed, **options)
        newest = store_sites.read_sites(conn, "fx-schools")
        set_v1 = store_sites.find_site_set(conn, "fx-schools")
        old = store_sites.read_sites(conn, int(conn.execute(
            "SELECT id FROM site_set WHERE slug = 'fx-schools' AND version = 1").fetchone()["id"]))
        assert counts(conn)["site"] == 5 and counts(conn)["site_set"] == 2
    assert v1.created and v1.details["version"] == 1
    assert not again.created and again.batch_id == v1.batch_id
    assert "already loaded" in again.summary
    assert not same.created and same.batch_id == v1.batch_id and "version 1" in same.summary
    assert v2.created and v2.details["version"] == 2 and set_v1["version"] == 2
    assert list(newest["site_code"]) == ["S1", "S2", "S3"]
    assert newest.set_index("site_code").loc["S2", "attrs"] == {"pupils": 250}
    assert list(old["site_code"]) == ["S1", "S2"]  # version 1 untouched
    assert old.set_index("site_code").loc["S2", "attrs"] == {"pupils": 200}


def test_geojson_and_geopackage_points_any_crs(fresh_db: str, tmp_path: Path) -> None:
    lonlat = tmp_path / "stations.geojson"
    lonlat.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": 910, "label": "Dalston Junction",
                                           "zone": 2, "step_free": True},
         "geometry": {"type": "Point", "coordinates": [-0.052098, 51.512497]}},
        {"type": "Feature", "properties": {"code": 911, "label": "Hackney Central",
                                           "zone": 2, "step_free": False},
         "geometry": {"type": "Point", "coordinates": [-0.055323, 51.51291]}}]}),
        encoding="utf-8")
    gpkg = tmp_path / "stations.gpkg"
    gpd.GeoDataFrame({"code": ["A"], "label": ["Homerton"], "postcode": ["e9 6tl"]},
                     geometry=[shapely.Point(535700, 184900)], crs=27700).to_file(
        gpkg, driver="GPKG", layer="stations", engine="pyogrio")
    with connect(fresh_db) as conn:
        geo = load_sites(conn, lonlat, slug="stations", kind="station", id_field="code",
                         name_field="label")
        pkg = load_sites(conn, gpkg, slug="stations-gpkg", kind="station", id_field="code",
                         name_field="label", postcode_field="postcode")
        a = store_sites.read_sites(conn, "stations").set_index("site_code")
        b = store_sites.read_sites(conn, "stations-gpkg").set_index("site_code")
    assert geo.details["format"] == "geojson" and pkg.details["format"] == "gpkg"
    assert geo.details["declared_crs"] == "EPSG:4326"
    assert list(a.index) == ["910", "911"]
    # E1 0AA's lon/lat in the Code-Point file: within a few metres of its eastings/northings
    assert a.loc["910", "x"] == pytest.approx(535267, abs=5)
    assert a.loc["910", "y"] == pytest.approx(181084, abs=5)
    assert a.loc["911", "x"] == pytest.approx(535042, abs=5)
    assert a.loc["910", "attrs"] == {"zone": 2, "step_free": True}
    assert (b.loc["A", "x"], b.loc["A", "y"]) == (535700.0, 184900.0)
    assert b.loc["A", "postcode"] == "E9 6TL" and b.loc["A", "located"] == "coordinates"


def test_the_cli_loads_postcodes_and_sites(fresh_db: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", fresh_db)
    path = write_csv(tmp_path / "hubs.csv", ["id", "name", "postcode"], [["H1", "Hub", "E8 1DY"]])
    assert main(["load", "postcodes", str(CODEPOINT), "--licence", "OGL v3.0"]) == 0
    assert main(["load", "sites", str(path), "--slug", "hubs", "--kind", "hub", "--id-field",
                 "id", "--name-field", "name", "--postcode-field", "postcode"]) == 0
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "postcodes: 11,967 points" in out and "site set hubs version 1: 1 hub sites" in out
    with connect(fresh_db) as conn:
        (site,) = store_sites.read_sites(conn, "hubs").itertuples()
    assert (site.x, site.y) == codepoint_point("E8 1DY")


def test_upload_sites_over_http(client: TestClient, auth: dict, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "up-sites.csv", ["id", "name", "lon", "lat"],
                     [["U1", "Upload one", "-0.055", "51.545"]])
    bad = write_csv(tmp_path / "up-bad.csv", ["id", "name", "lon", "lat"],
                    [["U1", "Upload one", "535000", "185000"]])

    def post(p: Path, **fields: str):
        with p.open("rb") as f:
            return client.post("/uploads/sites", headers=auth, files={"file": (p.name, f)},
                               data={"slug": "up-sites", "kind": "test", "id_field": "id",
                                     "name_field": "name", "longitude_field": "lon",
                                     "latitude_field": "lat", **fields})

    first = post(path)
    assert first.status_code == 201, first.text
    assert first.json()["sites"] == 1 and first.json()["created"] is True
    assert post(path).status_code == 200
    refused = post(bad)
    assert refused.status_code == 422
    (problem,) = refused.json()["problems"]
    assert problem["row"] == 2 and problem["field"] == "lon, lat"
    assert "British National Grid" in problem["reason"]
    assert str(tmp_path) not in refused.text
    half = post(path, easting_field="e")
    assert half.status_code == 400 and "northing_field" in half.json()["cause"]


def test_option_pairs_are_checked() -> None:
    with pytest.raises(BadRequest, match="longitude_field and latitude_field"):
        load.options(load.PostcodeOptions, longitude_field="lon")
    with pytest.raises(BadRequest, match="not both"):
        load.options(load.SiteOptions, slug="s", kind="school", id_field="i", name_field="n",
                     easting_field="e", northing_field="n", longitude_field="x",
                     latitude_field="y")
    assert set(load.LOADERS) >= {"sites", "postcodes"}


# --------------------------------------------------------------------------- bad input

SITE = dict(slug="fx-bad", kind="school", id_field="id", name_field="name")
EN = dict(easting_field="e", northing_field="n")
LL = dict(longitude_field="lon", latitude_field="lat")
GOOD = ["S0", "Good school", "535267", "181084"]


def _feature(props: dict, geometry: dict | None) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _pt(x: float, y: float) -> dict:
    return {"type": "Point", "coordinates": [x, y]}


OK_FEATURE = _feature({"id": "F0", "name": "Good"}, _pt(-0.06, 51.54))
BNG_CRS = {"type": "name", "properties": {"name": "EPSG:27700"}}

#: (case, kind, file, options, where, field, words in the reason)
BAD: list[tuple] = [
    ("postcode malformed", "postcodes", ("Postcode,Eastings,Northings",
     [["E1 0AA", 535267, 181084], ["E1 0A", 535042, 181124]]), {}, "row 3", "Postcode",
     "not a UK postcode"),
    ("postcode digits only", "postcodes", ("Postcode,Eastings,Northings",
     [["123 456", 535267, 181084]]), {}, "row 2", "Postcode", "not a UK postcode"),
    ("postcode blank", "postcodes", ("Postcode,Eastings,Northings",
     [["", 535267, 181084]]), {}, "row 2", "Postcode", "blank"),
    ("easting not a number", "postcodes", ("Postcode,Eastings,Northings",
     [["E1 0AA", "abc", 181084]]), {}, "row 2", "Eastings", "not a number"),
    ("easting with a separator", "postcodes", ("Postcode,Eastings,Northings",
     [["E1 0AA", "535,267", 181084]]), {}, "row 2", "Eastings", "not a number"),
    ("northing blank", "postcodes", ("Postcode,Eastings,Northings",
     [["E1 0AA", 535267, ""]]), {}, "row 2", "Northings", "blank"),
    ("no coordinates", "postcodes", ("Postcode,Eastings,Northings",
     [["E1 0AA", "", ""]]), {}, "row 2", "Eastings, Northings", "no coordinates"),
    ("postcode outside GB", "postcodes", ("Postcode,Eastings,Northings",
     [["E1 0AA", 900000, 181084]]), {}, "row 2", "Eastings, Northings", "outside Great Britain"),
    ("degrees as eastings", "postcodes", ("Postcode,Eastings,Northings",
     [["E1 0AA", "-0.052", "51.512"]]), {}, "row 2", "Eastings, Northings", "longitude/latitude"),
    ("postcode twice", "postcodes", ("Postcode,Eastings,Northings",
     [["E1 0AA", 535267, 181084], ["e10aa", 535267, 181084]]), {}, "row 3", "Postcode",
     "appears twice"),
    ("metres as lon/lat", "postcodes", ("pc,lon,lat", [["E1 0AA", 535267, 181084]]),
     dict(postcode_field="pc", **LL), "row 2", "lon, lat", "British National Grid"),
    ("lon/lat swapped", "postcodes", ("pc,lon,lat", [["E1 0AA", "51.512", "-0.052"]]),
     dict(postcode_field="pc", **LL), "row 2", "lon, lat", "swapped"),
    ("site id blank", "sites", ("id,name,e,n", [GOOD, ["", "No id", 535042, 181124]]),
     {**SITE, **EN}, "row 3", "id", "blank"),
    ("site id twice", "sites", ("id,name,e,n", [GOOD, ["S0", "Again", 535042, 181124]]),
     {**SITE, **EN}, "row 3", "id", "appears twice"),
    ("site id invisible character", "sites", ("id,name,e,n", [["S\u200b1", "Zero width",
     535042, 181124]]), {**SITE, **EN}, "row 2", "id", "invisible"),
    ("site name blank", "sites", ("id,name,e,n", [GOOD, ["S1", " ", 535042, 181124]]),
     {**SITE, **EN}, "row 3", "name", "no name"),
    ("site postcode unknown", "sites", ("id,name,postcode", [["S1", "Far away", "ZZ9 9ZZ"]]),
     {**SITE, "postcode_field": "postcode"}, "row 2", "postcode", "not among the loaded"),
    ("site postcode malformed", "sites", ("id,name,postcode", [["S1", "Typo", "E1 OAA"]]),
     {**SITE, "postcode_field": "postcode"}, "row 2", "postcode", "not a UK postcode"),
    ("site postcode blank", "sites", ("id,name,postcode", [["S1", "Nowhere", ""]]),
     {**SITE, "postcode_field": "postcode"}, "row 2", "postcode", "blank"),
    ("site degrees as eastings", "sites", ("id,name,e,n", [GOOD, ["S1", "Deg", "-0.05",
     "51.5"]]), {**SITE, **EN}, "row 3", "e, n", "longitude/latitude"),
    ("site metres as lon/lat", "sites", ("id,name,lon,lat", [["S1", "BNG", 535042, 181124]]),
     {**SITE, **LL}, "row 2", "lon, lat", "British National Grid"),
    ("site outside GB", "sites", ("id,name,e,n", [GOOD, ["S1", "Far", 10000000, 181124]]),
     {**SITE, **EN}, "row 3", "e, n", "outside Great Britain"),
    ("site lon/lat outside GB", "sites", ("id,name,lon,lat", [["S1", "Paris", 2.35, 48.85]]),
     {**SITE, **LL}, "row 2", "lon, lat", "outside Great Britain"),
    ("site coordinate infinite", "sites", ("id,name,e,n", [["S1", "Inf", "inf", 181124]]),
     {**SITE, **EN}, "row 2", "e", "not a number"),
    ("site without coordinates", "sites", ("id,name,e,n", [GOOD, ["S1", "Blank", "", ""]]),
     {**SITE, **EN}, "row 3", "e, n", "no coordinates"),
    ("feature a line", "geojson", [OK_FEATURE, _feature({"id": "F1", "name": "Line"}, {
        "type": "LineString", "coordinates": [[-0.06, 51.54], [-0.05, 51.55]]})], SITE,
     "feature 2 (F1)", "geometry", "LineString, not a Point"),
    ("feature a polygon", "geojson", [_feature({"id": "F1", "name": "Poly"}, {
        "type": "Polygon", "coordinates": [[[-0.06, 51.54], [-0.05, 51.54], [-0.05, 51.55],
                                            [-0.06, 51.54]]]}), OK_FEATURE], SITE,
     "feature 1 (F1)", "geometry", "Polygon, not a Point"),
    ("feature a multipoint", "geojson", [OK_FEATURE, _feature({"id": "F1", "name": "Two"}, {
        "type": "MultiPoint", "coordinates": [[-0.06, 51.54], [-0.05, 51.55]]})], SITE,
     "feature 2 (F1)", "geometry", "MultiPoint, not a Point"),
    ("feature without geometry", "geojson", [OK_FEATURE, _feature({"id": "F1", "name": "None"},
                                                                   None)], SITE,
     "feature 2 (F1)", "geometry", "no geometry"),
    ("feature metres as degrees", "geojson", [OK_FEATURE, _feature(
        {"id": "F1", "name": "BNG"}, _pt(535042, 181124))], SITE, "feature 2 (F1)", "geometry",
     "British National Grid"),
    ("feature degrees declared as BNG", "geojson-bng", [_feature(
        {"id": "F0", "name": "Metres"}, _pt(535042, 181124)), _feature(
        {"id": "F1", "name": "Degrees"}, _pt(-0.05, 51.5))], SITE, "feature 2 (F1)",
     "geometry", "longitude/latitude"),
    ("feature outside GB", "geojson", [OK_FEATURE, _feature({"id": "F1", "name": "Rome"},
                                                             _pt(12.5, 41.9))], SITE,
     "feature 2 (F1)", "geometry", "outside Great Britain"),
    ("feature id twice", "geojson", [OK_FEATURE, _feature({"id": "F0", "name": "Again"},
                                                           _pt(-0.05, 51.55))], SITE,
     "feature 2 (F0)", "id", "appears twice"),
    ("feature name blank", "geojson", [OK_FEATURE, _feature({"id": "F1", "name": None},
                                                             _pt(-0.05, 51.55))], SITE,
     "feature 2 (F1)", "name", "no name"),
]


def _write(tmp_path: Path, kind: str, content: object) -> Path:
    if kind.startswith("geojson"):
        path = tmp_path / "bad.geojson"
        doc = {"type": "FeatureCollection", "features": content}
        if kind == "geojson-bng":
            doc["crs"] = BNG_CRS
        path.write_text(json.dumps(doc), encoding="utf-8")
        return path
    header, rows = content  # type: ignore[misc]
    return write_csv(tmp_path / "bad.csv", header.split(","), rows)


@pytest.mark.parametrize(("kind", "content", "options", "where", "field", "reason"),
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_is_refused_naming_where_and_field(
        fresh_db: str, tmp_path: Path, kind: str, content: object, options: dict, where: str,
        field: str, reason: str) -> None:
    path = _write(tmp_path, kind, content)
    small = write_csv(tmp_path / "known.csv", ["Postcode", "Eastings", "Northings"],
                      [["E1 0AA", 535267, 181084]])
    with connect(fresh_db) as conn:
        load.load_postcodes(conn, load.Upload(small, small.name), load.PostcodeOptions())
        before = counts(conn)
        with pytest.raises(Rejected) as err:
            if kind == "postcodes":
                load.load_postcodes(conn, load.Upload(path, path.name),
                                    load.PostcodeOptions(**options))
            else:
                load_sites(conn, path, **options)
        assert counts(conn) == before
    problems = err.value.problems
    assert len(problems) == 1, problems
    (problem,) = problems
    assert problem.where == where and problem.field == field
    assert reason in problem.reason, problem
    assert problem.fix
    assert (problem.row if where.startswith("row") else problem.feature) == int(
        where.split()[1])
    assert str(tmp_path) not in str(err.value)
    assert path.name in str(err.value)


def test_missing_columns_and_wrong_files_are_input_errors(fresh_db: str, tmp_path: Path) -> None:
    no_northings = write_csv(tmp_path / "pc.csv", ["Postcode", "Eastings"], [["E1 0AA", 1]])
    sites = write_csv(tmp_path / "s.csv", ["id", "name"], [["S1", "One"]])
    geo = tmp_path / "s.geojson"
    geo.write_text(json.dumps({"type": "FeatureCollection", "features": [OK_FEATURE]}))
    with connect(fresh_db) as conn:
        with pytest.raises(InputError) as err:
            load.load_postcodes(conn, load.Upload(no_northings, "pc.csv"), load.PostcodeOptions())
        assert "Northings" in err.value.cause and err.value.where == "pc.csv, line 1"
        with pytest.raises(InputError, match="no coordinate or postcode fields"):
            load_sites(conn, sites, **SITE)
        with pytest.raises(InputError, match="no field 'ref'") as err:
            load_sites(conn, geo, **{**SITE, "id_field": "ref"})
        assert err.value.where == "s.geojson"
        with pytest.raises(InputError, match="placed by their geometry"):
            load_sites(conn, geo, **SITE, **EN)
        with pytest.raises(InputError, match="not CSV"):
            load.load_postcodes(conn, load.Upload(geo, "s.geojson"), load.PostcodeOptions())
        assert counts(conn) == dict.fromkeys(TABLES, 0)
