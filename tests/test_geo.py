"""Geometry normalisation: wrong or missing CRS, invalid shapes, bad codes; crosswalk shares."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import Polygon, box

from geo.atoms import build_atoms
from geo.crosswalk import build_crosswalk, build_crosswalk_via_cuts
from geo.prepare import dissolve, prepare_boundaries
from placespend.errors import InputError
from tests import world


def _frame(geoms, crs, codes=None) -> gpd.GeoDataFrame:
    codes = codes or [f"C{i}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"code": codes, "name": codes}, geometry=geoms, crs=crs)


def test_lonlat_is_projected_to_bng() -> None:
    out = prepare_boundaries(
        _frame([box(-0.08, 51.54, -0.07, 51.55)], 4326), code_field="code", name_field="name",
        source="t.geojson",
    ).frame
    assert out.crs.to_epsg() == 27700
    minx, miny, _, _ = out.total_bounds
    assert 533_000 < minx < 535_000 and 184_000 < miny < 186_000
    assert out.geometry.iloc[0].geom_type == "MultiPolygon"


def test_bng_coordinates_labelled_lonlat_are_refused_with_the_fix() -> None:
    with pytest.raises(InputError, match="look like British National Grid") as err:
        prepare_boundaries(_frame([world.rect(0, 100)], 4326), code_field="code",
                           name_field="name", source="wards.geojson")
    assert "EPSG:27700" in err.value.fix


def test_missing_crs_is_refused() -> None:
    with pytest.raises(InputError, match="no coordinate reference system"):
        prepare_boundaries(_frame([world.rect(0, 100)], None), code_field="code",
                           name_field="name", source="wards.shp")


def test_duplicate_and_blank_codes_name_the_feature() -> None:
    with pytest.raises(InputError, match="code C appears 2 times") as err:
        prepare_boundaries(_frame([world.rect(0, 1), world.rect(1, 2)], 27700, ["C", "C"]),
                           code_field="code", name_field="name", source="x")
    assert err.value.where == "code C"
    with pytest.raises(InputError, match="feature 2 has no code"):
        prepare_boundaries(_frame([world.rect(0, 1), world.rect(1, 2)], 27700, ["C", " "]),
                           code_field="code", name_field="name", source="x")


def test_missing_field_lists_the_fields_there_are() -> None:
    with pytest.raises(InputError, match="no field 'GSS_Code'.*code, name"):
        prepare_boundaries(_frame([world.rect(0, 1)], 27700), code_field="GSS_Code",
                           name_field="name", source="x")


def test_bow_tie_is_repaired_and_reported() -> None:
    x, y = world.X0, world.Y0
    bow = Polygon([(x, y), (x + 100, y + 100), (x + 100, y), (x, y + 100)])
    done = prepare_boundaries(_frame([bow, world.rect(200, 300)], 27700), code_field="code",
                              name_field="name", source="x")
    assert done.repaired == ("C0",)
    assert done.frame.geometry.iloc[0].is_valid
    assert done.frame.geometry.iloc[0].area == pytest.approx(5_000)


def test_dissolve_by_group_and_whole() -> None:
    wards = world.wards()
    boroughs = dissolve(wards, ["B", "B"], names={"B": "Borough"})
    assert boroughs["code"].tolist() == ["B"] and boroughs["name"].tolist() == ["Borough"]
    assert boroughs.geometry.iloc[0].area == pytest.approx(20_000)
    region = dissolve(wards, None, code="R", name="Region")
    assert region.geometry.iloc[0].area == pytest.approx(20_000)


def test_crosswalk_shares_of_straddling_atoms() -> None:
    atoms = world.zones().rename(columns={"code": "zone"}).assign(atom_id=[0, 1])
    xw = build_crosswalk(atoms, world.wards())
    got = {(r.atom_id, r.target_code): round(r.weight, 9) for r in xw.itertuples()}
    assert got == {(0, "W1"): 1.0, (1, "W1"): 0.5, (1, "W2"): 0.5}


def test_crosswalk_via_cuts_equals_the_atom_by_atom_one() -> None:
    # W1 lies wholly in the left half, W2 straddles: both paths must agree exactly.
    atoms = build_atoms(world.zones(), world.wards())
    halves = gpd.GeoDataFrame({"code": ["L", "R"], "name": ["L", "R"]},
                              geometry=[world.rect(0, 175), world.rect(175, 200)], crs=27700)
    direct = build_crosswalk(atoms, halves)
    via = build_crosswalk_via_cuts(atoms, world.wards(), halves)
    assert via.to_dict("records") == direct.to_dict("records")
    got = {(r.atom_id, r.target_code): round(r.weight, 9) for r in via.itertuples()}
    w2 = int(atoms.loc[atoms["cut_code"] == "W2", "atom_id"].iloc[0])
    assert got[(w2, "L")] == 0.5 and got[(w2, "R")] == 0.5
