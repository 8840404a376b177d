"""Lambeth's payments over £500 (June 2012) by service, through a whole run.

The file says which department paid, not where: so no line is placed directly, and each is
spread over Lambeth's wards by the proxy its service follows (children's services by residents
aged 0-15, adult services by residents aged 65+, the rest by all residents), keyed by body and
department in the proxy table. Checked against an independent computation: each department's
pounds times each ward's share of Lambeth's residents of that kind, from the LSOA populations
shared over wards by area (geopandas overlay).
"""

from __future__ import annotations

import json

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
from tests.test_shared_data import DEPARTMENTS, PAYMENTS, write_rows

YEAR = "2012-13"
LAMBETH = "E09000022"
PROXY_OF = {"Children and Young People's Service": ("residents-0-15", "Persons_0-15"),
            "Adults' and Community Services": ("residents-65-plus", "Persons_65+")}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    from tests.conftest import _new_database

    folder = tmp_path_factory.mktemp("lambeth")
    mapping = write_rows(folder / "departments.csv",
                         [{"source_code": d, "cofog": c, "rationale": r}
                          for d, (c, r) in DEPARTMENTS.items()],
                         ["source_code", "cofog", "rationale"])
    table = folder / "table.csv"
    table.write_text("body,line,proxy,rationale\n"
                     + "".join(f'lambeth,"{d}",{p},"{d} follows {p}"\n'
                               for d, (p, _) in PROXY_OF.items())
                     + "*,*,residents-all,everyone\n")
    url = _new_database("placespend_test_lambeth")
    with connect(url) as conn:
        load.load_embedded(conn)
        load.load_functions(conn, load.Upload(mapping, "departments.csv"),
                            load.FunctionMapOptions(scheme="lambeth-dept"))
        load.load_spend(conn, load.Upload(PAYMENTS, PAYMENTS.name), load.SpendLoadOptions(
            scheme="lambeth-dept", dataset="payments-over-500",
            columns={"function": "Department", "amount": "Invoice Nett Amount",
                     "line": "Subj Description"}, constants={"financial_year": YEAR}))
        result = make_run(conn, RunRequest(financial_year=YEAR, proxy_table=table,
                                           target_sets=("london-wards-2014",)))
        publish(conn, result.run_id)
        wards = {f["properties"]["code"]: f["properties"] for f in json.loads(
            features.items(conn, f"london-wards-2014-spend-{YEAR}", limit=1000).features_json)}
        lines = store_runs.run_lines(conn, result.run_id)
    return {"wards": wards, "lines": lines, "conservation": result.conservation}


def _independent() -> pd.Series:
    raw = pd.read_csv(PAYMENTS, dtype={"Invoice Nett Amount": str})
    pence = raw.groupby("Department")["Invoice Nett Amount"].apply(
        lambda s: sum(round(float(v) * 100) for v in s))
    people = pd.read_csv(catalog.DATA_DIR / "london-lsoa-msoa-2011" /
                         "london_lsoa11_population_mid2020.csv", dtype={"LSOA11CD": str})
    lsoa = embedded_boundaries("london-lsoa-2011").merge(
        people, left_on="code", right_on="LSOA11CD")
    lsoa["whole"] = lsoa.geometry.area
    wards = embedded_boundaries("london-wards-2014")
    lambeth = wards[wards["parent_code"] == LAMBETH][["code", "geometry"]].rename(
        columns={"code": "ward"})
    pieces = gpd.overlay(lsoa, lambeth, how="intersection", keep_geom_type=True)
    share = pieces.geometry.area / pieces["whole"]
    out = pd.Series(0.0, index=sorted(lambeth["ward"]))
    for dept, amount in pence.items():
        column = PROXY_OF.get(dept, ("residents-all", "Persons_All-Ages"))[1]
        held = (pieces[column] * share).groupby(pieces["ward"]).sum()
        out = out.add(held / held.sum() * amount, fill_value=0.0)
    return out


def test_lambeth_s_payments_are_spread_by_service_over_its_own_wards(run) -> None:
    wards = pd.Series({c: round(p["body_lambeth"] * 100) for c, p in run["wards"].items()})
    want = _independent()
    assert int(wards.sum()) == 4_029_233_484  # SOURCE.md: £40,292,334.84, all of it placed
    assert set(wards[wards != 0].index) == set(want.index)  # Lambeth's wards, and only them
    diff = (wards.reindex(want.index) - want).abs()
    print(f"\nLambeth by service vs overlay: max {diff.max():.2f}p a ward, "
          f"{diff.sum():.2f}p in all")
    # whole pence against float shares: measured 2.83p at most in a ward, 23.47p in all
    assert diff.max() < 5 and diff.sum() < 100


def test_each_line_names_its_proxy_and_nothing_is_direct(run) -> None:
    lines = run["lines"]
    assert len(lines) == 3_155 and (lines["method"] == "proxy").all()
    by_dept = lines.merge(pd.read_csv(PAYMENTS).reset_index(drop=True).assign(
        source_row=lambda f: f.index + 2)[["source_row", "Department"]], on="source_row")
    for dept, (proxy, _) in PROXY_OF.items():
        assert set(by_dept.loc[by_dept["Department"] == dept, "proxy"]) == {proxy}
    assert all(p["share_proxy"] == 1.0 and p["confidence"] == "D"
               for p in run["wards"].values() if p["body_lambeth"])
