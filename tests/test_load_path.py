"""The load path itself (placespend.load), on small hand-made files in a fresh database."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from domain.errors import InputError, Rejected
from placespend import load
from placespend.runs import ensure_atoms
from store import boundaries as store_boundaries
from store import reference, spend
from store.db import Connection, connect
from tests import world


def geojson(path: Path, frame: gpd.GeoDataFrame) -> Path:
    """Write ``frame`` (EPSG:27700) as GeoJSON with a crs member."""
    frame.to_file(path, driver="GeoJSON", engine="pyogrio")
    assert "urn:ogc:def:crs:EPSG::27700" in path.read_text(encoding="utf-8")
    return path


def load_set(conn: Connection, path: Path, slug: str, **options: object) -> load.Loaded:
    opts = {"code_field": "code", "name_field": "name", **options}
    return load.load_boundaries(conn, load.Upload(path, path.name),
                                load.BoundaryOptions(slug=slug, **opts))


def load_lines(conn: Connection, path: Path, **options: object) -> load.Loaded:
    return load.load_spend(conn, load.Upload(path, path.name), load.SpendLoadOptions(**options))


def count(conn: Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def with_cofog(conn: Connection) -> None:
    reference.save_cofog(conn, pd.DataFrame({"code": ["01", "09", "10"],
                                             "description": ["general", "education", "social"]}))


# --------------------------------------------------------------------------- boundaries


def test_guessed_code_and_name_fields_are_stated(fresh_db: str, tmp_path: Path) -> None:
    wards = gpd.GeoDataFrame(
        {"ward_id": [7, 8], "WD14NM": ["Ward One", "Ward Two"],
         "LAD14CD": ["E09000012", "E09000012"], "WD14CD": ["E05000001", "E05000002"]},
        geometry=[world.rect(0, 150), world.rect(150, 200)], crs=world.BNG)
    path = geojson(tmp_path / "wards.geojson", wards)
    with connect(fresh_db) as conn:
        loaded = load.load_boundaries(conn, load.Upload(path, "wards.geojson"),
                                      load.BoundaryOptions(slug="fx-wards", kind="ward"))
        stored = store_boundaries.read_boundaries(conn, "fx-wards")
    assert loaded.created
    # the GSS-looking unique field wins over the one merely named like an id
    assert loaded.details["fields"] == {"code": "WD14CD", "name": "WD14NM"}
    assert loaded.details["guesses"] == [
        "codes from field 'WD14CD' (guessed: pass --code-field to choose)",
        "names from field 'WD14NM' (guessed: pass --name-field to choose)",
    ]
    assert loaded.details["declared_crs"] == "EPSG:27700"
    assert loaded.details["tiles"] is True and loaded.details["version"] == 1
    assert list(stored["code"]) == ["E05000001", "E05000002"]
    assert list(stored["name"]) == ["Ward One", "Ward Two"]
    # given fields are not guesses
    with connect(fresh_db) as conn:
        given = load.load_boundaries(conn, load.Upload(path, "wards.geojson"),
                                     load.BoundaryOptions(slug="fx-wards-2", code_field="WD14CD",
                                                          name_field="WD14NM"))
    assert given.details["guesses"] == []


def test_a_file_with_no_code_like_field_is_refused(fresh_db: str, tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"label": ["same", "same"], "area": [1.0, 2.0]},
                             geometry=[world.rect(0, 150), world.rect(150, 200)], crs=world.BNG)
    path = geojson(tmp_path / "nocode.geojson", frame)
    with connect(fresh_db) as conn:
        with pytest.raises(Rejected) as err:
            load.load_boundaries(conn, load.Upload(path, "nocode.geojson"),
                                 load.BoundaryOptions(slug="fx-nocode"))
        assert count(conn, "boundary_set") == count(conn, "upload_batch") == 0
    (first,) = err.value.problems
    assert first.field == "code_field"
    assert "--code-field" in first.fix and "label" in first.fix


def test_an_overlapping_set_is_stored_but_not_cut_into_atoms(fresh_db: str,
                                                             tmp_path: Path) -> None:
    overlapping = gpd.GeoDataFrame(
        {"code": ["A", "B"], "name": ["A", "B"]},
        geometry=[world.rect(0, 150), world.rect(100, 200)], crs=world.BNG)  # 50 m x 100 m
    over = geojson(tmp_path / "overlap.geojson", overlapping)
    zones = geojson(tmp_path / "zones.geojson", world.zones())
    with connect(fresh_db) as conn:
        loaded = load_set(conn, over, "fx-overlap")
        load_set(conn, zones, "fx-zones")
        meta = store_boundaries.get_set(conn, "fx-overlap")
        assert loaded.created
        assert loaded.details["tiles"] is False
        assert loaded.details["overlap_m2"] == pytest.approx(5000.0)
        (pair,) = loaded.details["overlaps"]
        assert (pair["code_a"], pair["code_b"]) == ("A", "B")
        assert pair["area_m2"] == pytest.approx(5000.0)
        assert "not usable for cutting atoms" in loaded.summary
        assert meta["tiles"] is False and meta["overlap_m2"] == pytest.approx(5000.0)
        assert len(store_boundaries.read_boundaries(conn, "fx-overlap")) == 2
        for zone_set, cut_set in (("fx-zones", "fx-overlap"), ("fx-overlap", "fx-zones")):
            with pytest.raises(InputError, match="overlap") as err:
                ensure_atoms(conn, zone_set, cut_set)
            assert "fx-overlap (version 1)" in err.value.cause
            assert "5,000 m²" in err.value.cause
            assert "corrected version of fx-overlap" in err.value.fix
        assert count(conn, "atom_set") == 0


def test_a_new_version_leaves_the_old_units_alone(fresh_db: str, tmp_path: Path) -> None:
    first = geojson(tmp_path / "wards.geojson", world.wards())
    changed = world.wards()
    changed["name"] = ["Ward One (renamed)", "Ward Two"]
    changed["geometry"] = [world.rect(0, 140), world.rect(140, 200)]
    second = geojson(tmp_path / "wards-v2.geojson", changed)
    with connect(fresh_db) as conn:
        v1 = load_set(conn, first, "fx-wards", parent_field="parent_code")
        v1_meta = store_boundaries.get_set(conn, "fx-wards")
        v1_units = store_boundaries.read_boundaries(conn, int(v1_meta["id"]))
        v2 = load_set(conn, second, "fx-wards", parent_field="parent_code")
        v2_meta = store_boundaries.get_set(conn, "fx-wards")
        old = store_boundaries.read_boundaries(conn, int(v1_meta["id"]))
        new = store_boundaries.read_boundaries(conn, "fx-wards")
        again = load_set(conn, second, "fx-wards", parent_field="parent_code")
        versions = conn.execute("SELECT id, version, batch_id, content_sha256 FROM boundary_set"
                                " WHERE slug = 'fx-wards' ORDER BY version").fetchall()
    assert v1.details["version"] == 1
    assert v2.created and v2.batch_id != v1.batch_id
    assert v2.details["version"] == 2 and "version 2" in v2.summary
    assert v2_meta["version"] == 2 and v2_meta["id"] != v1_meta["id"]
    # version 1's units are as they were
    pd.testing.assert_frame_equal(old.drop(columns="geometry"),
                                  v1_units.drop(columns="geometry"))
    assert shapely.equals(old.geometry.to_numpy(), v1_units.geometry.to_numpy()).all()
    assert list(old["name"]) == ["Ward One", "Ward Two"]
    assert old.geometry.area.tolist() == pytest.approx([15_000.0, 5_000.0])
    # the newest version is what the slug answers
    assert list(new["name"]) == ["Ward One (renamed)", "Ward Two"]
    assert new.geometry.area.tolist() == pytest.approx([14_000.0, 6_000.0])
    assert list(new["parent_code"]) == ["B", "B"]
    # the same content again is found, not stored a third time
    assert not again.created and again.batch_id == v2.batch_id
    assert [(r["version"], r["batch_id"]) for r in versions] == [(1, v1.batch_id),
                                                                 (2, v2.batch_id)]
    assert versions[0]["id"] == v1_meta["id"]


# --------------------------------------------------------------------------- proxies


def test_a_proxy_code_not_in_its_unit_set_is_refused(fresh_db: str, tmp_path: Path) -> None:
    zones = geojson(tmp_path / "zones.geojson", world.zones())
    csv = tmp_path / "residents.csv"
    csv.write_text("unit_code,residents\nZ1,300\nZ9,5\nZ2,100\n", encoding="utf-8")
    opts = load.ProxyOptions(slug="residents-all", unit_set="fx-zones", year=2020,
                             code_field="unit_code", value_field="residents")
    with connect(fresh_db) as conn:
        load_set(conn, zones, "fx-zones")
        with pytest.raises(Rejected) as err:
            load.load_proxy(conn, load.Upload(csv, "residents.csv"), opts)
        assert count(conn, "proxy") == count(conn, "proxy_value") == 0
        csv.write_text("unit_code,residents\nZ1,300\nZ2,100\n", encoding="utf-8")
        ok = load.load_proxy(conn, load.Upload(csv, "residents.csv"), opts)
    (first,) = err.value.problems
    assert (first.row, first.where, first.field, first.value) == (3, "row 3", "unit_code", "Z9")
    assert "no unit Z9 in fx-zones" in first.reason
    assert "residents.csv" in err.value.cause
    assert ok.created and ok.details["units"] == 2 and ok.details["total"] == 400.0


# --------------------------------------------------------------------------- spend

SPEND_HEADER = "body,body_name,body_kind,financial_year,line,function,amount,kind,area_set," \
    "area_code\n"


def spend_file(path: Path, *rows: str) -> Path:
    path.write_text(SPEND_HEADER + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def borough_db(fresh_db: str, tmp_path: Path) -> str:
    with connect(fresh_db) as conn:
        with_cofog(conn)
        load_set(conn, geojson(tmp_path / "borough.geojson", world.borough()), "fx-borough",
                 kind="borough")
    return fresh_db


def test_pence_typed_into_a_pounds_column_is_refused(borough_db: str, tmp_path: Path) -> None:
    earlier = spend_file(tmp_path / "2013-14.csv",
                         "council,Council,council,2013-14,Schools,09,1000.00,,fx-borough,B")
    later = spend_file(tmp_path / "2014-15.csv",
                       "council,Council,council,2014-15,Schools,09,100000,,fx-borough,B")
    with connect(borough_db) as conn:
        first = load_lines(conn, earlier)
        assert first.details["scopes"][0]["total_pence"] == 100_000
        before = {t: count(conn, t) for t in ("upload_batch", "spend_line", "spend_scope")}
        with pytest.raises(Rejected) as err:
            load_lines(conn, later)
        assert {t: count(conn, t) for t in before} == before
        as_pence = load_lines(conn, later, unit="pence")
    (first_problem,) = err.value.problems
    assert first_problem.where == "council 2014-15"
    assert first_problem.field == "amount"
    assert "100 times 2013-14" in first_problem.reason
    assert "pence typed into a pounds column" in first_problem.reason
    assert "--unit pence" in first_problem.fix
    assert as_pence.created
    assert as_pence.details["scopes"][0]["total_pence"] == 100_000


def test_an_income_line_is_kept_apart(borough_db: str, tmp_path: Path) -> None:
    path = spend_file(tmp_path / "spend.csv",
                      "council,Council,council,2014-15,Schools,09,500.00,expenditure,fx-borough,B",
                      "council,Council,council,2014-15,Fees,09,120.00,income,fx-borough,B")
    with connect(borough_db) as conn:
        loaded = load_lines(conn, path)
        stored = conn.execute("SELECT line, kind, amount_pence, source_row FROM spend_line"
                              " WHERE batch_id = %s ORDER BY id", (loaded.batch_id,)).fetchall()
        scope = conn.execute("SELECT * FROM spend_scope WHERE batch_id = %s",
                             (loaded.batch_id,)).fetchone()
        read = spend.read_lines(conn, financial_year="2014-15")
    assert [(r["line"], r["kind"], r["amount_pence"], r["source_row"]) for r in stored] == [
        ("Schools", "expenditure", 50_000, 2), ("Fees", "income", 12_000, 3)]
    assert (scope["lines"], scope["total_pence"], scope["income_pence"]) == (2, 50_000, 12_000)
    assert loaded.details["income_lines"] == 1
    assert loaded.details["scopes"][0]["total_pence"] == 50_000  # income is never netted
    assert list(read["line"]) == ["Schools"]
    assert read["amount_pence"].tolist() == [50_000]


def test_a_spend_line_for_an_unknown_area_names_its_row(borough_db: str,
                                                        tmp_path: Path) -> None:
    path = spend_file(tmp_path / "spend.csv",
                      "council,Council,council,2014-15,Schools,09,500.00,,fx-borough,B",
                      "council,Council,council,2014-15,Roads,09,5.00,,fx-borough,Q")
    with connect(borough_db) as conn:
        with pytest.raises(Rejected) as err:
            load_lines(conn, path)
        assert count(conn, "spend_line") == count(conn, "body") == 0
    (first,) = err.value.problems
    assert (first.row, first.field, first.value) == (3, "area_code", "Q")
    assert "no area Q in fx-borough" in first.reason
