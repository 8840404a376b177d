"""Agencies whose areas do not nest: spend per Westminster constituency spread to 2014 wards.

Each of London's 73 constituencies (2010-24 boundaries, which do not follow the 2014 wards)
reports one line, spread over its residents through the atoms. Checked against an independent
computation: geopandas overlays of LSOAs x constituencies x wards, each LSOA's residents shared
over its pieces by area, and each constituency's pence split by its pieces' residents (those in
London's wards: generalised LSOA edges leave a few on paper outside every ward). The part
of a constituency that no 2014 ward covers is reported as outside the target set, never pushed
onto the nearest ward.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from boundaries import catalog
from placespend import load
from placespend.load import embedded_boundaries
from placespend.runs import RunRequest, make_run, publish
from store import features
from store import runs as store_runs
from store.db import connect

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CONSTITUENCIES = SHARED / "london-constituencies-2013" / "london_constituencies_2013.geojson"
YEAR = "2019-20"  # a year of its own, so the run holds only these lines


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    from tests.conftest import _new_database

    url = _new_database("placespend_test_agency_areas")
    folder = tmp_path_factory.mktemp("agency")
    codes = gpd.read_file(CONSTITUENCIES)["PCON13CD"].sort_values().tolist()
    lines = pd.DataFrame({
        "body": "constituency_fund", "body_name": "A fund paid per constituency",
        "financial_year": YEAR, "line": "Grants", "function": "10",
        "amount_pence": [1_000_000_00 + 7 * i for i in range(len(codes))],
        "area_set": "london-constituencies-2013", "area_code": codes})
    lines.to_csv(folder / "fund.csv", index=False)
    table = folder / "table.csv"
    table.write_text("line,proxy,rationale\n*,residents-all,everyone\n")
    with connect(url) as conn:
        load.load_embedded(conn)
        load.load_boundaries(conn, load.Upload(CONSTITUENCIES, CONSTITUENCIES.name),
                             load.BoundaryOptions(slug="london-constituencies-2013",
                                                  kind="constituency", code_field="PCON13CD",
                                                  name_field="PCON13NM"))
        load.load_spend(conn, load.Upload(folder / "fund.csv", "fund.csv"),
                        load.SpendLoadOptions())
        result = make_run(conn, RunRequest(financial_year=YEAR, proxy_table=table,
                                           target_sets=("london-wards-2014",)))
        publish(conn, result.run_id)
        wards = {f["properties"]["code"]: f["properties"]["total_pence"] for f in json.loads(
            features.items(conn, f"london-wards-2014-spend-{YEAR}", limit=1000).features_json)}
        got = store_runs.get_run(conn, result.run_id)
    return {"lines": lines, "wards": wards, "run": got, "conservation": result.conservation}


def _independent(lines: pd.DataFrame) -> pd.Series:
    people = pd.read_csv(catalog.DATA_DIR / "london-lsoa-msoa-2011" /
                         "london_lsoa11_population_mid2020.csv",
                         dtype={"LSOA11CD": str}).set_index("LSOA11CD")["Persons_All-Ages"]
    lsoa = embedded_boundaries("london-lsoa-2011")
    lsoa = lsoa.assign(people=lsoa["code"].map(people).fillna(0.0), whole=lsoa.geometry.area)
    seats = gpd.read_file(CONSTITUENCIES).to_crs(27700)[["PCON13CD", "geometry"]]
    seats["geometry"] = seats.geometry.make_valid()
    wards = embedded_boundaries("london-wards-2014")[["code", "geometry"]].rename(
        columns={"code": "ward"})
    a = gpd.overlay(lsoa[["code", "people", "whole", "geometry"]], seats, how="intersection",
                    keep_geom_type=True)
    b = gpd.overlay(a, wards, how="intersection", keep_geom_type=True)
    b["residents"] = b["people"] * b.geometry.area / b["whole"]
    # the seat's residents in London's wards: generalised LSOA edges leave a few hundred
    # residents on paper outside every ward, and a line is for residents in the geography
    seat_people = b.groupby("PCON13CD")["residents"].sum()
    pence = lines.set_index("area_code")["amount_pence"]
    b["pence"] = b["residents"] / seat_people.reindex(b["PCON13CD"]).to_numpy() * \
        pence.reindex(b["PCON13CD"]).to_numpy()
    return b.groupby("ward")["pence"].sum()


def test_constituency_spend_reaches_2014_wards_as_an_overlay_says(run) -> None:
    want = _independent(run["lines"])
    got = pd.Series(run["wards"])
    both = pd.concat([got.rename("ours"), want.rename("overlay")], axis=1).fillna(0.0)
    assert len(got) == 630
    rel = (both["ours"] - both["overlay"]).abs() / both["overlay"].abs().clip(lower=1)
    print(f"\nconstituencies -> wards vs overlay: max rel {rel.max():.2e}, median "
          f"{rel.median():.2e}, total diff {both['ours'].sum() - both['overlay'].sum():.0f}p")
    # ward by ward within a millionth (and a penny of rounding); the same pence in all
    assert ((both["ours"] - both["overlay"]).abs() <= 1 + both["overlay"].abs() * 1e-6).all()
    assert abs(both["ours"].sum() - both["overlay"].sum()) < 1


def test_every_penny_is_in_a_ward_or_said_to_be_outside(run) -> None:
    total = int(run["lines"]["amount_pence"].sum())
    c = run["conservation"]
    assert c["total_pence"] == total and c["allocated_pence"] == total
    (pub,) = run["run"]["collections"]
    assert pub["allocated_pence"] + pub["outside_pence"] == total
    assert sum(run["wards"].values()) == pub["allocated_pence"]
    # published to the wards the run was cut by, nothing lies outside them
    assert pub["outside_pence"] == 0
