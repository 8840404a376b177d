"""Boundary vintages: Hackney's 19 pre-2014 wards re-expressed on its 21 wards of 2014.

Checked against an independent computation: geopandas overlays of LSOAs, 2013 wards and 2014
wards, each LSOA's residents spread over its pieces by area (what the atoms do).
"""

from __future__ import annotations

import io

import geopandas as gpd
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from placespend.load import embedded_boundaries
from placespend.runs import unit_crosswalk
from store.db import Connection

POPULATION = "london-lsoa-msoa-2011/london_lsoa11_population_mid2020.csv"


def _independent(basis: str) -> pd.DataFrame:
    from boundaries import catalog

    lsoa = embedded_boundaries("london-lsoa-2011")
    w13 = embedded_boundaries("hackney-wards-2013")
    w14 = embedded_boundaries("hackney-wards-2014")
    people = pd.read_csv(catalog.DATA_DIR / POPULATION, dtype={"LSOA11CD": str}).set_index(
        "LSOA11CD")["Persons_All-Ages"]
    lsoa = lsoa.assign(people=lsoa["code"].map(people).fillna(0.0),
                       lsoa_area=lsoa.geometry.area)
    near = lsoa[lsoa.intersects(w13.union_all())]
    a = gpd.overlay(near[["code", "people", "lsoa_area", "geometry"]].rename(
        columns={"code": "lsoa"}), w13[["code", "geometry"]].rename(columns={"code": "s"}),
        how="intersection", keep_geom_type=True)
    whole = (a.assign(v=a["people"] * a.geometry.area / a["lsoa_area"]) if basis == "population"
             else a.assign(v=a.geometry.area)).groupby("s")["v"].sum()
    b = gpd.overlay(a, w14[["code", "geometry"]].rename(columns={"code": "t"}),
                    how="intersection", keep_geom_type=True)
    b["v"] = (b["people"] * b.geometry.area / b["lsoa_area"] if basis == "population"
              else b.geometry.area)
    pair = b.groupby(["s", "t"])["v"].sum().reset_index()
    pair["weight"] = pair["v"] / whole.reindex(pair["s"]).to_numpy()
    return pair.rename(columns={"s": "source_code", "t": "target_code"})[
        ["source_code", "target_code", "weight"]]


@pytest.mark.parametrize("basis", ["population", "area"])
def test_pre_2014_wards_on_2014_wards(conn: Connection, demo, basis: str) -> None:
    ours = unit_crosswalk(conn, "hackney-wards-2013", "hackney-wards-2014", basis=basis)
    theirs = _independent(basis)
    both = ours.merge(theirs, on=["source_code", "target_code"], how="outer",
                      suffixes=("", "_overlay")).fillna(0.0)
    assert both["source_code"].nunique() == 19
    # the two agree to within a millionth of each ward, pieces under a square metre aside
    assert (both["weight"] - both["weight_overlay"]).abs().max() < 1e-6
    sums = ours.groupby("source_code")["weight"].sum()
    assert (sums <= 1 + 1e-9).all() and sums.min() > 0.98  # generalised 2013 edges stray a little


def test_crosswalk_csv(client: TestClient) -> None:
    r = client.get("/crosswalks/hackney-wards-2013/hackney-wards-2014.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(r.text))
    assert list(frame.columns) == ["source_code", "target_code", "weight", "basis",
                                   "source_vintage", "target_vintage"]
    assert set(frame["basis"]) == {"population"} and frame["source_code"].nunique() == 19
    assert set(frame["source_vintage"]) == {"2013-12"}
    assert client.get("/crosswalks/nope/hackney-wards-2014.csv").status_code == 404
    assert client.get("/crosswalks/hackney-wards-2013/hackney-wards-2014.csv",
                      params={"basis": "height"}).status_code == 400
