"""Transfers counted once, at the final spender (pure: no database)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.transfers import count_once, net_of_transfers, passed_on_reason


def _t(rows):
    return pd.DataFrame(rows, columns=["transfer_id", "payer", "payee", "cofog_code",
                                       "amount_pence", "recorded_by"])


def _lines(rows):
    return pd.DataFrame(rows, columns=["line_id", "body", "cofog_code", "amount_pence"])


def test_recorded_by_both_sides_is_one_transfer() -> None:
    counted = count_once(_t([(1, "a", "b", "10", 10_000, "payer"),
                             (2, "a", "b", "10", 10_000, "payee")]))
    assert len(counted) == 1 and counted.iloc[0]["amount_pence"] == 10_000
    assert counted.iloc[0]["recorded"] == 2 and counted.iloc[0]["transfer_ids"] == [1, 2]


def test_two_grants_on_one_side_and_one_on_the_other_are_two() -> None:
    counted = count_once(_t([(1, "a", "b", None, 500, "payer"), (2, "a", "b", None, 500, "payer"),
                             (3, "a", "b", None, 500, "payee")]))
    assert len(counted) == 2 and counted["amount_pence"].sum() == 1_000


def test_the_payer_s_lines_lose_what_it_passed_on() -> None:
    lines = _lines([(1, "a", "10", 10_000), (2, "b", "10", 10_000), (3, "a", "09", 7)])
    counted = count_once(_t([(1, "a", "b", "10", 10_000, "payer"),
                             (2, "a", "b", "10", 10_000, "payee")]))
    net, report = net_of_transfers(lines, counted)
    assert net["amount_pence"].tolist() == [0, 10_000, 7]
    assert net["passed_on_pence"].tolist() == [10_000, 0, 0]
    assert report.iloc[0]["deducted_pence"] == 10_000
    assert passed_on_reason(net, counted).iloc[0].startswith("£100.00 passed on to b")


def test_a_transfer_bigger_than_the_payer_s_lines_takes_what_is_there() -> None:
    lines = _lines([(1, "a", "10", 3_000), (2, "a", "10", -500)])
    net, report = net_of_transfers(lines, count_once(_t([(1, "a", "b", "10", 10_000, "payer")])))
    assert net["amount_pence"].tolist() == [0, -500]  # negative lines are never touched
    assert (report.iloc[0]["deducted_pence"], report.iloc[0]["not_deducted_pence"]) == (3_000,
                                                                                       7_000)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-10_000, 1_000_000), min_size=1, max_size=12),
       st.lists(st.integers(1, 2_000_000), min_size=1, max_size=5))
def test_every_penny_is_placed_or_passed_on_once(amounts, grants) -> None:
    lines = _lines([(i, "a" if i % 2 else "b", "10", v) for i, v in enumerate(amounts)])
    counted = count_once(_t([(i, "a", "b", "10", g, "payer") for i, g in enumerate(grants)]))
    net, report = net_of_transfers(lines, counted)
    assert (net["amount_pence"] + net["passed_on_pence"]).tolist() == amounts
    assert int(net["passed_on_pence"].sum()) == int(report["deducted_pence"].sum())
    assert (net.loc[lines["amount_pence"] >= 0, "amount_pence"] >= 0).all()
    assert (net.loc[net["body"] == "b", "passed_on_pence"] == 0).all()
