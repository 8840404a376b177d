"""The embedded whole public pound, Hackney and London, 2014-15: every penny of every input
accounted for, netting rules included; per-head varies."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd

from boundaries import catalog
from intake.spend import body_slug
from placespend.runs import RunResult
from store import features, reference, runs
from store.db import Connection

HACKNEY_2014_15 = 52_969_400_000  # RS TOTAL SERVICE EXPENDITURE, £529,694,000
GLA_2014_15 = 470_086_300_000  # signed sum of the GLA's 13 service lines, £4,700,863,000
HACKNEY_WARDS = [f"E050093{n}" for n in range(67, 88)]
SPEND = [e.path for e in catalog.EMBEDDED if e.kind == "spend"]
RS, CRA, GP = (catalog.DATA_DIR / p for p in SPEND)


def cra_pence(year: str, *, services: bool | None = None, sector: str | None = None) -> int:
    """The CRA lines' pence for a year (£ thousand in the file), by plain pandas and Decimal.

    ``services``: only the local government sector's current spending on services, which the
    councils' returns count (True: rows of sector LG, current, not 10.6 Housing), only the
    rest (False), or all (None); ``sector``: only that sector's rows.
    """
    raw = pd.read_csv(CRA, dtype=str, keep_default_na=False)
    rows = raw[raw["financial_year"] == year]
    if sector is not None:
        rows = rows[rows["sector"] == sector]
    if services is not None:
        counted = ((rows["sector"] == "LG") & (rows["cap_or_cur"] == "CUR")
                   & (rows["cofog_level_1"] != "10.6 Housing"))
        rows = rows[counted == services]
    return int(sum(Decimal(v) * 100_000 for v in rows["amount"]))


def gp_pence() -> int:
    """NHS England's payments to every London GP practice, 2014-15 (whole pounds)."""
    return int(pd.read_csv(GP, dtype=str)["amount"].map(lambda v: int(v) * 100).sum())


def whole_pound(year: str) -> int:
    """Every input less every netting rule: the councils' and the GLA's service lines, the
    CRA's other rows (its local government housing benefit and capital among them), and the
    GP payments (taken off NHS England's rows, so counted once)."""
    return sum(rs_service_pence(year).values()) + cra_pence(year, services=False)


def rs_service_pence(year: str) -> dict[str, int]:
    """Each body's signed sum of its 13 service lines, read from the RS file by plain pandas."""
    raw = pd.read_csv(RS, dtype=str)
    mapped = set(pd.read_csv(catalog.DATA_DIR / "rs_line_cofog.csv", dtype=str)["line"])
    rows = raw[(raw["financial_year"] == year) & raw["line"].isin(mapped)]
    pence = rows["value_gbp_thousand"].map(lambda v: int(Decimal(v) * 100_000))
    return pence.groupby(rows["authority"].map(body_slug)).sum().astype(int).to_dict()


def _features(conn: Connection, cid: str) -> list[dict]:
    page = features.items(conn, cid, limit=10_000)
    return [f["properties"] for f in json.loads(page.features_json)]


def test_the_rs_file_holds_34_bodies() -> None:
    for year in ("2013-14", "2014-15"):
        bodies = rs_service_pence(year)
        assert len(bodies) == 34 and "gla" in bodies and "city_of_london" in bodies
    assert rs_service_pence("2014-15")["hackney"] == HACKNEY_2014_15
    assert rs_service_pence("2014-15")["gla"] == GLA_2014_15


def test_conservation_report_accounts_for_every_penny(conn: Connection, demo: RunResult) -> None:
    """The whole public pound of 2014-15: the London total is the sum of every input less
    every netting rule, to the penny, each rule its own line of the report."""
    report = demo.conservation
    rs, gp = sum(rs_service_pence("2014-15").values()), gp_pence()
    cra, cra_lg = cra_pence("2014-15"), cra_pence("2014-15", services=True)
    # hmt-cra-london/SOURCE.md (£ thousand): London 84,430,080; LG sector 29,160,613, of which
    # housing benefit (10.6 Housing) 6,549,842; nhs-payments-gp-practices-london/SOURCE.md:
    # London 2014-15 £1,204,041,453
    assert (cra, gp) == (84_430_080 * 100_000, 1_204_041_453 * 100)
    assert cra_pence("2014-15", sector="LG") == 29_160_613 * 100_000
    lg_capital = cra_pence("2014-15", sector="LG") - cra_lg - 6_549_842 * 100_000
    assert (cra_lg, lg_capital) == (18_614_447 * 100_000, 3_996_324 * 100_000)
    assert rs == 1_871_123_900_000
    assert report["reported_pence"] == rs + cra + gp
    rules = {r["rule"]: r for r in report["netting"]}
    assert rules["cra-local-government"]["netted_pence"] == cra_lg
    assert rules["gp-payments-in-nhs-england"]["parts_pence"] == gp
    assert rules["gp-payments-in-nhs-england"]["netted_pence"] == gp
    assert rules["gp-payments-in-nhs-england"]["not_netted_pence"] == 0
    assert report["netted_pence"] == cra_lg + gp
    assert report["total_pence"] == rs + cra + gp - cra_lg - gp == whole_pound("2014-15")
    assert report["total_pence"] == 8_452_687_200_000  # £84.53bn
    assert report["allocated_pence"] == report["total_pence"]
    assert report["unallocated_pence"] == 0
    # 442 RS lines, 1,576 CRA rows, 1,437 GP practices
    assert report["lines"] == 34 * 13 + 1_576 + 1_437 and report["lines_unallocated"] == 0
    lines = runs.run_lines(conn, demo.run_id)
    assert len(lines) == report["lines"]
    assert int(lines["amount_pence"].sum()) == report["reported_pence"]
    assert int(lines["netted_pence"].sum()) == report["netted_pence"]
    for line in lines.itertuples():
        assert (line.allocated_pence + line.netted_pence == line.amount_pence
                or line.reason), line
    netted = lines[lines["netted_pence"] != 0]
    assert set(netted["body"]) == {"cra_local_government", "nhs_england"}
    assert not netted["reason"].str.contains("the line is £0").any()
    assert netted["reason"].str.contains("rule cra-local-government|rule gp-payments").all()
    zero = lines.loc[lines["amount_pence"] == 0]
    assert zero["reason"].str.startswith("nothing to allocate (the line is £0)").all()
    assert "Police services" in set(zero["line"])  # councils report no police spend: the GLA does
    by_target = {c["target_set"]: c for c in runs.get_run(conn, demo.run_id)["collections"]}
    assert by_target["london-wards-2014"]["allocated_pence"] == report["total_pence"]
    assert by_target["london-wards-2014"]["outside_pence"] == 0
    hackney = by_target["hackney-wards-2014"]
    assert hackney["allocated_pence"] + hackney["outside_pence"] == report["total_pence"]


def test_every_borough_s_wards_hold_its_own_spend_to_the_penny(
    conn: Connection, demo: RunResult
) -> None:
    """The London Pound: each council's lines over its own wards, the GLA's over all 630."""
    london = _features(conn, "london-wards-2014-spend-2014-15")
    assert len(london) == 630
    want = rs_service_pence("2014-15")
    assert sum(f["total_pence"] for f in london) == whole_pound("2014-15")
    wards = {r["code"]: r["parent_code"] for r in conn.execute(
        "SELECT b.code, b.parent_code FROM boundary b JOIN boundary_set s ON s.id = b.set_id"
        " WHERE s.slug = 'london-wards-2014'")}
    borough_of = {b: r["area_code"] for b, r in reference.bodies(conn).items()}
    for body, pence in want.items():
        held = [f for f in london if f[f"body_{body}"] != 0]
        assert round(sum(f[f"body_{body}"] for f in london) * 100) == pence, body
        if body != "gla":  # a council's pence stay inside its own borough's wards
            assert {wards[f["code"]] for f in held} == {borough_of[body]}, body
    assert all(f["body_gla"] > 0 for f in london)  # every ward carries the GLA's spend


def test_the_2013_14_london_pound_is_published_too(conn: Connection, demo: RunResult) -> None:
    london = _features(conn, "london-wards-2014-spend-2013-14")
    assert len(london) == 630
    # no GP payments are loaded for 2013-14: NHS England's rows are spread whole
    assert sum(f["total_pence"] for f in london) == whole_pound("2013-14")


def test_hackney_collection_is_hackney_lines_plus_its_gla_share(
    conn: Connection, demo: RunResult
) -> None:
    hackney = _features(conn, "hackney-wards-2014-spend-2014-15")
    assert sorted(f["code"] for f in hackney) == HACKNEY_WARDS
    london = {f["code"]: f for f in _features(conn, "london-wards-2014-spend-2014-15")}
    gla_share = sum(round(london[c]["body_gla"] * 100) for c in HACKNEY_WARDS)
    assert round(sum(f["body_hackney"] for f in hackney) * 100) == HACKNEY_2014_15
    for f in hackney:  # the same pence, ward by ward, in both collections
        assert f["total_pence"] == london[f["code"]]["total_pence"]
        assert f["body_gla"] == london[f["code"]]["body_gla"]
    # Hackney's ~281k residents out of London's ~9.0m take roughly 3% of the GLA's spend.
    assert 0.025 < gla_share / GLA_2014_15 < 0.04


def test_per_head_differs_between_wards(conn: Connection, demo: RunResult) -> None:
    hackney = _features(conn, "hackney-wards-2014-spend-2014-15")
    per_head = [f["per_head"] for f in hackney]
    assert len(set(per_head)) == 21
    # Hackney's LSOAs hold 280,941 residents (mid-2020); generalised LSOA edges stray a little
    # over the full-resolution borough boundary, so the wards hold slightly fewer.
    assert abs(sum(f["population"] for f in hackney) - 280_941) < 0.005 * 280_941
    # children's services follow 0-15s and adult care 65+s, so the shape varies by ward
    edu_share = [f["cofog_09"] / f["total"] for f in hackney]
    assert max(edu_share) - min(edu_share) > 0.05
    for f in hackney:
        assert round(sum(f[f"share_{m}"] for m in ("direct", "agency_estimate", "proxy",
                                                   "area", "best_fit")), 6) == 1.0
        parts = sum(f[f"cofog_{d:02d}"] for d in range(1, 11))
        assert round(parts * 100) == f["total_pence"]


def test_one_borough_of_the_london_collection(client) -> None:
    """Other boroughs are filters of the London collection: ?parent=<borough code>."""
    page = client.get("/collections/london-wards-2014-spend-2014-15/items",
                      params={"parent": "E09000030", "limit": 100}).json()  # Tower Hamlets
    wards = [f["properties"] for f in page["features"]]
    assert page["numberMatched"] == len(wards) == 20  # its 2014 wards
    assert round(sum(w["body_tower_hamlets"] for w in wards) * 100) == \
        rs_service_pence("2014-15")["tower_hamlets"]
    assert client.get("/collections/london-wards-2014-spend-2014-15/items",
                      params={"parent": "E09999999"}).json()["numberMatched"] == 0


def test_each_ward_s_range_holds_its_figure(conn: Connection, demo: RunResult) -> None:
    london = _features(conn, "london-wards-2014-spend-2014-15")
    for f in london:
        assert f["range_low"] <= f["total"] <= f["range_high"]
        four = (f["total"], f["total_by_area"], f["total_best_fit"],
                f["total_by_alternative_proxy"])
        assert (f["range_low"], f["range_high"]) == (min(four), max(four))
    # the alternative proxy (health by residents aged 65+) keeps London's pence and moves them
    # towards wards with more older residents
    assert round(sum(f["total_by_alternative_proxy"] for f in london) * 100) == \
        whole_pound("2014-15")
    moved = [f["total_by_alternative_proxy"] - f["total"] for f in london]
    assert min(moved) < -100_000 and max(moved) > 100_000
    # by land area too, every penny of the whole pound is in London's wards
    assert round(sum(f["total_by_area"] for f in london) * 100) == whole_pound("2014-15")
    # and by best fit (each LSOA wholly to one ward), less only LSOAs in no London ward
    assert abs(round(sum(f["total_best_fit"] for f in london) * 100)
               - whole_pound("2014-15")) < 100
    # and the method matters: the City's jobs-heavy, thinly lived wards move most
    moved = sorted(london, key=lambda f: abs(f["total_by_area"] - f["total"]) / f["total"])
    assert abs(moved[-1]["total_by_area"] / moved[-1]["total"] - 1) > 0.5
