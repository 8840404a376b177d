"""Direct placement on real data: NHS payments to each London GP practice, 2014-15, placed at
the practice, against the same money spread by residents.

Independent check: a geopandas spatial join of the practices' points to the 2014 wards. Every
practice's pence must land, whole, in the ward its point is in; the spread-by-residents figures
for the same total show how different "where it is delivered" is from "who it is for".
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from placespend import load
from placespend.load import embedded_boundaries
from placespend.runs import RunRequest, make_run, publish
from store import features
from store.db import connect

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PAYMENTS = SHARED / "nhs-payments-gp-practices-london" / "london_gp_payments_2014-15.csv"
TOTAL = "Total NHS Payments to General Practice"
YEAR = "2014-15"


@pytest.fixture(scope="module")
def placed(tmp_path_factory) -> dict:
    from tests.conftest import _new_database

    folder = tmp_path_factory.mktemp("gp")
    raw = pd.read_csv(PAYMENTS, dtype=str)
    raw = raw[raw["geocoded"] == "1"]  # the practices Code-Point placed (1,402 of 1,437)
    lines = pd.DataFrame({"body": "gp_payments_only", "body_name": "NHS England (GP payments)",
                          "body_kind": "nhs",
                          "financial_year": YEAR, "line": "GP practice " + raw["Practice Code"],
                          "function": "07.2", "amount": raw[TOTAL],
                          "easting": raw["easting"], "northing": raw["northing"]})
    lines.to_csv(folder / "gp.csv", index=False)
    table = folder / "table.csv"
    table.write_text("line,proxy,rationale\n*,residents-all,everyone\n")
    url = _new_database("placespend_test_direct")
    with connect(url) as conn:
        load.load_embedded(conn)
        load.load_spend(conn, load.Upload(folder / "gp.csv", "gp.csv"),
                        load.SpendLoadOptions(dataset="gp-payments"))
        result = make_run(conn, RunRequest(proxy_table=table, target_sets=("london-wards-2014",)))
        publish(conn, result.run_id)
        wards = {f["properties"]["code"]: f["properties"] for f in json.loads(
            features.items(conn, f"london-wards-2014-spend-{YEAR}", limit=1000).features_json)}
    return {"lines": lines, "wards": wards}


def test_every_practice_s_money_is_in_the_ward_its_point_is_in(placed) -> None:
    lines = placed["lines"]
    pence = (pd.to_numeric(lines["amount"]) * 100).round().astype("int64")
    points = gpd.GeoDataFrame({"pence": pence.to_numpy()}, crs=27700, geometry=gpd.points_from_xy(
        pd.to_numeric(lines["easting"]), pd.to_numeric(lines["northing"])))
    wards = embedded_boundaries("london-wards-2014")[["code", "geometry"]]
    joined = gpd.sjoin(points, wards, predicate="intersects", how="left")
    joined = joined[~joined.index.duplicated()]  # a point on an edge: one ward
    want = joined.groupby("code")["pence"].sum()
    got = pd.Series({c: round(p["body_gp_payments_only"] * 100)
                     for c, p in placed["wards"].items()})
    assert int(got.sum()) == int(pence.sum()) == int(want.sum())  # all of it, once
    differ = (got.reindex(want.index).fillna(0) - want).abs()
    assert (differ == 0).sum() >= len(want) - 2  # a point exactly on a ward edge may go either way
    assert all(p["share_direct"] > 0 for c, p in placed["wards"].items() if c in want.index)


def test_delivered_is_not_who_it_serves(placed) -> None:
    """Spread by residents, the same total would be far from where practices are."""
    wards = placed["wards"]
    nhs = pd.Series({c: p["body_gp_payments_only"] for c, p in wards.items()})
    people = pd.Series({c: p["population"] for c, p in wards.items()})
    by_residents = nhs.sum() * people / people.sum()
    assert abs(nhs.sum() - by_residents.sum()) < 1
    no_practice = (nhs == 0).sum()
    assert no_practice > 50  # many wards have no practice at all: served, not delivered, there
    # 288 of the 630 wards are more than half off their residents' share (measured 2026-12)
    assert (abs(nhs - by_residents) > 0.5 * by_residents).sum() > 250
