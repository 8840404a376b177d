"""The embedded Hackney/London 2014-15 run: every penny accounted for, per-head varies."""

from __future__ import annotations

import json

from placespend.runs import RunResult
from store import features, runs
from store.db import Connection

HACKNEY_2014_15 = 52_969_400_000  # RS TOTAL SERVICE EXPENDITURE, £529,694,000
GLA_2014_15 = 470_086_300_000  # signed sum of the GLA's 13 service lines, £4,700,863,000
HACKNEY_WARDS = [f"E050093{n}" for n in range(67, 88)]


def _features(conn: Connection, cid: str) -> list[dict]:
    page = features.items(conn, cid, limit=10_000)
    return [f["properties"] for f in json.loads(page.features_json)]


def test_conservation_report_accounts_for_every_penny(conn: Connection, demo: RunResult) -> None:
    report = demo.conservation
    assert report["total_pence"] == HACKNEY_2014_15 + GLA_2014_15
    assert report["allocated_pence"] == report["total_pence"]
    assert report["unallocated_pence"] == 0
    assert report["lines"] == 26 and report["lines_unallocated"] == 0
    lines = runs.run_lines(conn, demo.run_id)
    assert len(lines) == 26
    assert int(lines["amount_pence"].sum()) == report["total_pence"]
    for line in lines.itertuples():
        assert line.allocated_pence == line.amount_pence or line.reason
    zero = lines.loc[lines["amount_pence"] == 0]
    assert (zero["reason"] == "nothing to allocate (the line is £0)").all()
    assert "Police services" in set(zero["line"])  # Hackney reports no police spend: the GLA does
    by_target = {c["target_set"]: c for c in runs.get_run(conn, demo.run_id)["collections"]}
    assert by_target["london-wards-2014"]["allocated_pence"] == HACKNEY_2014_15 + GLA_2014_15
    assert by_target["london-wards-2014"]["outside_pence"] == 0
    hackney = by_target["hackney-wards-2014"]
    assert hackney["allocated_pence"] + hackney["outside_pence"] == report["total_pence"]


def test_london_collection_sums_to_both_bodies_exactly(conn: Connection, demo: RunResult) -> None:
    london = _features(conn, "london-wards-2014-spend-2014-15")
    assert len(london) == 630
    assert sum(f["total_pence"] for f in london) == HACKNEY_2014_15 + GLA_2014_15
    assert round(sum(f["body_hackney"] for f in london) * 100) == HACKNEY_2014_15
    assert round(sum(f["body_gla"] for f in london) * 100) == GLA_2014_15
    # Hackney's own lines stay inside Hackney.
    outside = [f for f in london if f["code"] not in HACKNEY_WARDS]
    assert all(f["body_hackney"] == 0 for f in outside)


def test_hackney_collection_is_hackney_lines_plus_its_gla_share(
    conn: Connection, demo: RunResult
) -> None:
    hackney = _features(conn, "hackney-wards-2014-spend-2014-15")
    assert sorted(f["code"] for f in hackney) == HACKNEY_WARDS
    london = {f["code"]: f for f in _features(conn, "london-wards-2014-spend-2014-15")}
    gla_share = sum(round(london[c]["body_gla"] * 100) for c in HACKNEY_WARDS)
    assert sum(f["total_pence"] for f in hackney) == HACKNEY_2014_15 + gla_share
    for f in hackney:  # the same pence, ward by ward, in both collections
        assert f["total_pence"] == london[f["code"]]["total_pence"]
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
        assert abs(f["share_proxy"] + f["share_direct"] + f["share_area"] - 1) < 1e-5
        parts = sum(f[f"cofog_{d:02d}"] for d in range(1, 11))
        assert round(parts * 100) == f["total_pence"]
