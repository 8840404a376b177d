"""Straddling small areas shared by a finer unit (Output Areas) instead of by land area.

Hand-computed: the worked example of :func:`geo.atoms.refine_zone_shares`. Real data: a run
with Hackney's 749 Output Areas against the default run, checked against a geopandas overlay
of the OAs with the wards, LSOA by LSOA.
"""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from boundaries import catalog
from geo.atoms import build_atoms, refine_zone_shares
from placespend.load import embedded_boundaries
from placespend.runs import RunRequest, RunResult, make_run
from store import atoms as store_atoms
from store import features
from store.db import Connection, connect


def test_the_worked_example() -> None:
    """An LSOA of 4 OAs: three of flats (10% of its land each) and one around a park (70%);
    ward A holds one flats OA and half the park: 45% by area, 1.5 of 4 = 37.5% by OAs."""
    zones = gpd.GeoDataFrame({"code": ["Z"], "name": ["Z"]}, geometry=[box(0, 0, 1000, 100)],
                             crs=27700)
    wards = gpd.GeoDataFrame({"code": ["A", "B1", "B2"], "name": ["A", "B1", "B2"]},
                             geometry=[box(200, 0, 650, 100), box(0, 0, 200, 100),
                                       box(650, 0, 1000, 100)], crs=27700)
    oas = gpd.GeoDataFrame({"code": ["O1", "O2", "O3", "O4"]},
                           geometry=[box(0, 0, 100, 100), box(100, 0, 200, 100),
                                     box(200, 0, 300, 100), box(300, 0, 1000, 100)], crs=27700)
    atoms = build_atoms(zones, wards)
    by_area = dict(zip(atoms["cut_code"], atoms["zone_share"], strict=True))
    assert by_area == pytest.approx({"A": 0.45, "B1": 0.20, "B2": 0.35})
    fine = refine_zone_shares(atoms, zones, oas)
    assert dict(zip(fine["cut_code"], fine["zone_share"], strict=True)) == pytest.approx(
        {"A": 0.375, "B1": 0.5, "B2": 0.125})
    # with a proxy on the OAs (households, say) they weigh by it: O4 has 3, the others 1
    weighted = refine_zone_shares(atoms, zones, oas, pd.Series({"O1": 1.0, "O2": 1.0,
                                                                "O3": 1.0, "O4": 3.0}))
    assert dict(zip(weighted["cut_code"], weighted["zone_share"], strict=True)) == \
        pytest.approx({"A": 2.5 / 6, "B1": 2 / 6, "B2": 1.5 / 6})
    # an LSOA no finer unit belongs to keeps its area shares
    assert refine_zone_shares(atoms, zones, oas.iloc[0:0])["zone_share"].tolist() == \
        atoms["zone_share"].tolist()


@pytest.fixture(scope="module")
def finer(db_url: str, demo: RunResult) -> RunResult:
    with connect(db_url) as conn:
        return make_run(conn, RunRequest(finer=catalog.HACKNEY_OA_2011))


def _atoms(conn: Connection, run_id: int) -> pd.DataFrame:
    set_id = conn.execute("SELECT atom_set_id FROM run WHERE id = %s", (run_id,)).fetchone()
    return store_atoms.read_atoms(conn, int(set_id["atom_set_id"]))


def test_a_run_by_output_areas_keeps_every_penny_and_moves_the_split(
        conn: Connection, demo: RunResult, finer: RunResult) -> None:
    assert finer.conservation["total_pence"] == demo.conservation["total_pence"]
    assert finer.conservation["allocated_pence"] == finer.conservation["total_pence"]
    assert finer.run_id != demo.run_id
    cid = "hackney-wards-2014-spend-2014-15"

    def wards(run_id: int) -> pd.DataFrame:
        page = features.items(conn, cid, run_id=run_id, limit=100)
        return pd.DataFrame([f["properties"] for f in json.loads(page.features_json)]
                            ).set_index("code")

    split, by_oa = wards(demo.run_id), wards(finer.run_id)
    moved = (by_oa["total_pence"] - split["total_pence"]).abs()
    assert (moved > 0).sum() == 21  # every Hackney ward has an LSOA a ward line cuts
    assert moved.max() > 0.03 * split.loc[moved.idxmax(), "total_pence"]
    # London as a whole holds the same pence; Hackney's residents stay within a few dozen
    assert abs(by_oa["population"].sum() - split["population"].sum()) < 200


def test_the_shares_match_an_overlay_of_the_output_areas(conn: Connection, demo: RunResult,
                                                         finer: RunResult) -> None:
    """Independently, with geopandas: each OA goes to the LSOA holding its representative
    point; each ward's piece of an LSOA holds the share of each of its OAs' area that lies in
    that ward; the LSOA's share of each ward is those OA fractions over the LSOA's OAs."""
    oas = embedded_boundaries(catalog.HACKNEY_OA_2011).to_crs(27700)[["code", "geometry"]]
    lsoas = embedded_boundaries("london-lsoa-2011").to_crs(27700)[["code", "geometry"]]
    wards = embedded_boundaries("london-wards-2014").to_crs(27700)[["code", "geometry"]]
    home = gpd.sjoin(gpd.GeoDataFrame(oas[["code"]], geometry=oas.representative_point(),
                                      crs=27700), lsoas.rename(columns={"code": "lsoa"}),
                     predicate="within")[["code", "lsoa"]].drop_duplicates("code")
    before, after = _atoms(conn, demo.run_id), _atoms(conn, finer.run_id)
    assert (before["atom_id"] == after["atom_id"]).all()  # the same pieces, other shares
    changed = after[(after["zone_share"] - before["zone_share"]).abs() > 1e-9]
    assert changed["zone_code"].nunique() > 100
    big = changed.groupby("zone_code")["zone_share"].agg(lambda s: (s > 0.2).sum())
    checked = 0
    for lsoa in big[big >= 2].index[:5]:  # LSOAs a ward line cuts well inside
        mine = oas[oas["code"].isin(home.loc[home["lsoa"] == lsoa, "code"])]
        lsoa_wards = after.loc[after["zone_code"] == lsoa, "cut_code"]
        shape = lsoas.loc[lsoas["code"] == lsoa, "geometry"].iloc[0]
        cut = gpd.GeoDataFrame({"ward": wards["code"]}, geometry=wards.intersection(shape),
                               crs=27700)
        cut = cut[cut["ward"].isin(lsoa_wards) & ~cut.is_empty]
        pieces = gpd.overlay(mine.assign(oa_area=mine.area), cut, how="intersection",
                             keep_geom_type=True)
        w = (pieces.area / pieces["oa_area"]).groupby(pieces["ward"]).sum()
        held = after.loc[after["zone_code"] == lsoa].groupby("cut_code")["zone_share"].sum()
        want = w / w.sum() * held.sum()
        got = held.reindex(want.index)
        assert (got - want).abs().max() < 1e-6, (lsoa, got, want)
        checked += 1
    assert checked == 5
