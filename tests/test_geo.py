"""Geometry normalisation: wrong or missing CRS, invalid shapes, bad codes; crosswalk shares."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import GeometryCollection, LineString, MultiPolygon, Point, Polygon, box

from bench.synthetic import EXTENT, national
from domain.errors import InputError, Rejected
from geo.atoms import atom_pieces, build_atoms, finish_atoms
from geo.crosswalk import build_crosswalk, build_crosswalk_via_cuts
from geo.prepare import dissolve, polygonal, prepare_boundaries
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
    # Every problem is collected into one Rejected, each naming its feature.
    with pytest.raises(Rejected, match="code C is used by features 1 and 2") as err:
        prepare_boundaries(_frame([world.rect(0, 1), world.rect(1, 2)], 27700, ["C", "C"]),
                           code_field="code", name_field="name", source="x")
    assert err.value.where == "feature 2 (C)"
    assert [p.feature for p in err.value.problems] == [2]
    with pytest.raises(Rejected, match="feature 2 code ' ': the feature has no code"):
        prepare_boundaries(_frame([world.rect(0, 1), world.rect(1, 2)], 27700, ["C", " "]),
                           code_field="code", name_field="name", source="x")


def test_missing_field_lists_the_fields_there_are() -> None:
    with pytest.raises(InputError, match="no field 'GSS_Code'.*code, name"):
        prepare_boundaries(_frame([world.rect(0, 1)], 27700), code_field="GSS_Code",
                           name_field="name", source="x")


def test_bow_tie_is_refused_and_a_small_self_intersection_repaired() -> None:
    # A bow-tie's shoelace area is 0 and its repair 5,000 m²: too big a change to make silently.
    x, y = world.X0, world.Y0
    bow = Polygon([(x, y), (x + 100, y + 100), (x + 100, y), (x, y + 100)])
    with pytest.raises(Rejected, match="outline crosses itself") as err:
        prepare_boundaries(_frame([bow, world.rect(200, 300)], 27700), code_field="code",
                           name_field="name", source="x")
    assert [p.where for p in err.value.problems] == ["feature 1 (C0)"]
    # A 0.5 m² twisted loop at a corner of a 10,000 m² square is repaired, and reported.
    loop = Polygon([(x, y), (x + 100, y), (x + 100, y + 101), (x + 101, y + 100), (x, y + 100)])
    done = prepare_boundaries(_frame([loop, world.rect(200, 300)], 27700), code_field="code",
                              name_field="name", source="x")
    assert done.repaired == ("C0",)
    assert done.frame.geometry.iloc[0].is_valid
    assert done.repairs["area_changed_m2"].tolist() == pytest.approx([1.0])


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


# ------------------------------------------------------------- atoms at scale: split, threads


@pytest.fixture(scope="module")
def synthetic():
    return national(seed=3, zones=600, wards=120, agencies=9)


def _same_atoms(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    assert a.columns.tolist() == b.columns.tolist() and len(a) == len(b)
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    assert shapely.equals_identical(a.geometry.to_numpy(), b.geometry.to_numpy()).all()


def test_synthetic_layers_tile_the_same_rectangle(synthetic) -> None:
    whole = shapely.area(shapely.box(*EXTENT))
    for frame, n in ((synthetic.zones, 600), (synthetic.wards, 120), (synthetic.agencies, 9)):
        geoms = frame.geometry.to_numpy()
        assert len(frame) == n and frame["code"].is_unique
        assert shapely.is_valid(geoms).all() and shapely.coverage_is_valid(geoms)
        assert shapely.area(geoms).sum() == pytest.approx(whole, rel=1e-12)
        vertices = shapely.get_num_coordinates(geoms)
        assert vertices.min() >= 100 and vertices.max() <= 300
    again = national(seed=3, zones=600, wards=120, agencies=9)
    assert shapely.equals_identical(again.zones.geometry.to_numpy(),
                                    synthetic.zones.geometry.to_numpy()).all()


def test_atom_pieces_of_any_split_of_the_zones_give_the_same_atoms(synthetic) -> None:
    zones, wards = synthetic.zones, synthetic.wards
    whole = build_atoms(zones, wards)
    x = shapely.get_x(shapely.centroid(zones.geometry.to_numpy()))
    for groups in (np.digitize(x, np.quantile(x, [0.3, 0.6])),
                   np.random.default_rng(1).integers(0, 4, len(zones))):
        parts = [atom_pieces(zones[groups == g], wards) for g in np.unique(groups)[::-1]]
        _same_atoms(finish_atoms(pd.concat(parts, ignore_index=True), wards), whole)
    assert whole["atom_id"].tolist() == list(range(len(whole)))
    assert whole.groupby("zone_code")["zone_share"].sum().to_numpy() == pytest.approx(1.0)


def test_one_thread_and_two_give_identical_atoms_and_crosswalks(synthetic) -> None:
    zones, wards, agencies = synthetic.zones, synthetic.wards, synthetic.agencies
    one = build_atoms(zones, wards, threads=1)
    two = build_atoms(zones, wards, threads=2)
    _same_atoms(one, two)
    for build in (lambda t: build_crosswalk(one, agencies, threads=t),
                  lambda t: build_crosswalk_via_cuts(one, wards, agencies, threads=t)):
        pd.testing.assert_frame_equal(build(1), build(2), check_exact=True)
    # The shortcut through whole cut units agrees with the atom-by-atom crosswalk.
    via = build_crosswalk_via_cuts(two, wards, agencies)
    direct = build_crosswalk(two, agencies)
    merged = via.merge(direct, on=["atom_id", "target_code"], how="outer")
    assert merged["weight_x"].fillna(0).to_numpy() == pytest.approx(
        merged["weight_y"].fillna(0).to_numpy(), abs=2e-6
    )


def _strip(x1: float, x2: float) -> object:
    return MultiPolygon([world.rect(x1, x2)])


def test_a_gap_no_zone_covers_becomes_its_wards_gap_atom() -> None:
    # Z2 stops 10 m short of W2's edge; W3 is reached by no zone at all.
    zones = gpd.GeoDataFrame({"code": ["Z1", "Z2"]}, geometry=[_strip(0, 100), _strip(100, 190)],
                             crs=27700)
    wards = gpd.GeoDataFrame({"code": ["W1", "W2", "W3"]},
                             geometry=[_strip(0, 150), _strip(150, 200), _strip(300, 310)],
                             crs=27700)
    atoms = build_atoms(zones, wards)
    gaps = atoms[atoms["zone_code"].isna()]
    assert gaps["cut_code"].tolist() == ["W2", "W3"]
    assert gaps["area_m2"].tolist() == pytest.approx([1_000.0, 1_000.0])
    assert (gaps["zone_share"] == 0).all()
    assert atoms.groupby("cut_code")["area_m2"].sum().to_dict() == pytest.approx(
        {"W1": 15_000.0, "W2": 5_000.0, "W3": 1_000.0}
    )
    assert atoms["atom_id"].tolist() == list(range(len(atoms)))
    assert atoms.loc[atoms["cut_code"] == "W2", "zone_code"].fillna("gap").tolist() == ["gap", "Z2"]


def test_a_gap_is_found_even_where_overlapping_zones_fill_the_sum() -> None:
    # Z1 and Z2 overlap by 20 m (2,000 m²) and leave W1's last 10 m uncovered: the pieces' areas
    # add up to more than the ward's, yet its 1,000 m² gap must still become an atom.
    zones = gpd.GeoDataFrame({"code": ["Z1", "Z2"]}, geometry=[_strip(0, 120), _strip(100, 190)],
                             crs=27700)
    wards = gpd.GeoDataFrame({"code": ["W1"]}, geometry=[_strip(0, 200)], crs=27700)
    atoms = build_atoms(zones, wards)
    assert atoms["zone_code"].fillna("gap").tolist() == ["gap", "Z1", "Z2"]
    assert atoms["area_m2"].tolist() == pytest.approx([1_000.0, 12_000.0, 9_000.0])


def test_polygonal_keeps_polygon_parts_as_multipolygons() -> None:
    tiny = box(0, 0, 0.001, 0.001)
    geoms = np.array(
        [box(0, 0, 1, 1), MultiPolygon([box(0, 0, 1, 1), box(2, 2, 3, 3)]),
         GeometryCollection([box(0, 0, 1, 1), LineString([(0, 0), (1, 1)]), Point(3, 3)]),
         Point(1, 1), Polygon(), None, tiny, MultiPolygon([box(5, 5, 6, 6), tiny])],
        dtype=object,
    )
    out = polygonal(geoms, min_part_m2=0.01)
    assert [g.geom_type for g in out] == ["MultiPolygon"] * len(geoms)
    assert [len(g.geoms) for g in out] == [1, 2, 1, 0, 0, 0, 0, 1]
    assert shapely.area(out).tolist() == pytest.approx([1, 2, 1, 0, 0, 0, 0, 1])
    assert len(polygonal(geoms)[6].geoms) == 1  # no threshold: the tiny part stays
