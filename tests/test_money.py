"""Whole pence: running-total splits add back exactly and stay within a penny of quota."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.money import label_column, pounds, running_shares, split_by_shares, split_pence


def test_three_equal_shares_the_middle_row_gets_the_spare_penny() -> None:
    # running totals 333.33, 666.67, 1000 round to 333, 667, 1000
    out = split_pence(np.array([1000]), np.zeros(3, dtype=np.intp), np.ones(3))
    assert out.tolist() == [333, 334, 333]


def test_each_row_gets_the_step_of_the_rounded_running_total() -> None:
    # running totals 3.33, 6.67, 10 round to 3, 7, 10; half a penny rounds up (2.5 -> 3)
    out = split_pence(np.array([10, 5]), np.array([0, 0, 0, 1, 1], dtype=np.intp),
                      np.array([1.0, 1, 1, 1, 1]))
    assert out.tolist() == [3, 4, 3, 3, 2]


def test_negative_total_is_split_like_its_absolute_value() -> None:
    out = split_pence(np.array([-500_000]), np.zeros(3, dtype=np.intp), np.array([1.0, 1, 2]))
    assert out.tolist() == [-125_000, -125_000, -250_000]


def test_the_row_whose_running_total_reaches_half_a_penny_takes_it() -> None:
    # quotas 0.75, 0.125, 0.125: running totals 0.75, 0.875, 1 round to 1, 1, 1
    out = split_pence(np.array([1]), np.zeros(3, dtype=np.intp), np.array([300.0, 50, 50]))
    assert out.tolist() == [1, 0, 0]


def test_a_zero_weight_row_never_takes_a_penny_back() -> None:
    # The compensated running sum once stepped back by an ulp on the zero weight, so the
    # running total 1.5p rounded to 2 and then to 1: the zero row got -1p.
    w = np.array([29235912.0, 1.5, 1.5, 347.5, 163137354.5, 0.0, 1.5, 1.5, 1.5, 192373612.5])
    out = split_pence(np.array([3]), np.zeros(len(w), dtype=np.intp), w)
    assert out.tolist() == [0, 0, 0, 0, 2, 0, 0, 0, 0, 1]


def test_groups_are_independent() -> None:
    out = split_pence(
        np.array([10, -7, 0]),
        np.array([0, 0, 1, 1, 2], dtype=np.intp),
        np.array([1.0, 1.0, 3.0, 1.0, 5.0]),
    )
    assert out.tolist() == [5, 5, -5, -2, 0]


def test_zero_weights_for_a_funded_group_is_refused() -> None:
    with pytest.raises(ValueError, match="no positive weight"):
        split_pence(np.array([5]), np.zeros(2, dtype=np.intp), np.zeros(2))


def test_negative_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        split_pence(np.array([5]), np.zeros(2, dtype=np.intp), np.array([1.0, -1.0]))


def test_largest_real_line_is_exact() -> None:
    # GLA police 2014-15: £2,834,354,000 over 12,000 uneven weights
    rng = np.random.default_rng(7)
    w = rng.random(12_000) ** 3
    out = split_pence(np.array([283_435_400_000]), np.zeros(12_000, dtype=np.intp), w)
    assert int(out.sum()) == 283_435_400_000
    quota = 283_435_400_000 * w / w.sum()
    assert np.abs(out - quota).max() < 1.0


def test_pounds_has_two_decimals() -> None:
    assert pounds(123_456) == 1234.56
    assert pounds(-1) == -0.01


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-(10**13), max_value=10**13),
            st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1,
                     max_size=40),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_every_group_adds_back_to_the_penny(groups: list[tuple[int, list[float]]]) -> None:
    totals, group, weights = [], [], []
    for g, (total, ws) in enumerate(groups):
        if sum(ws) <= 0:
            ws = [*ws[:-1], 1.0]
        totals.append(total)
        group += [g] * len(ws)
        weights += ws
    t = np.array(totals, dtype=np.int64)
    gi = np.array(group, dtype=np.intp)
    w = np.array(weights)
    out = split_pence(t, gi, w)
    sums = np.zeros(len(t), dtype=np.int64)
    np.add.at(sums, gi, out)
    assert sums.tolist() == t.tolist()
    wsum = np.bincount(gi, weights=w)
    quota = t[gi] * (w / wsum[gi])
    assert np.all(np.abs(out - quota) <= 1.0 + 1e-6 * np.abs(quota))
    assert np.all((out == 0) | (np.sign(out) == np.sign(t[gi])))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1, max_size=40),
    st.lists(st.integers(min_value=-(10**13), max_value=10**13), min_size=1, max_size=8),
)
def test_several_totals_over_one_set_of_shares_equal_separate_splits(
    weights: list[float], totals: list[int]
) -> None:
    if sum(weights) <= 0:
        weights = [*weights[:-1], 1.0]
    w = np.array(weights)
    n = len(w)
    zeros = np.zeros(n, dtype=np.intp)
    before, after, _ = running_shares(zeros, w, 1)
    together = split_by_shares(np.repeat(totals, n), np.tile(before, len(totals)),
                               np.tile(after, len(totals))).reshape(len(totals), n)
    for row, total in zip(together, totals, strict=True):
        assert row.tolist() == split_pence(np.array([total]), zeros, w).tolist()
        assert int(row.sum()) == total


def test_label_column_is_the_column_pandas_would_make() -> None:
    table = np.array(["a", None, "b", "unused"], dtype=object)
    codes = np.array([0, 2, 1, 0, 2], dtype=np.intp)
    got = pd.DataFrame({"x": label_column(table, codes)})
    want = pd.DataFrame({"x": table[codes]})
    pd.testing.assert_frame_equal(got, want)
    nothing = np.array([None], dtype=object)
    pd.testing.assert_frame_equal(pd.DataFrame({"x": label_column(nothing, np.zeros(3, np.intp))}),
                                  pd.DataFrame({"x": nothing[np.zeros(3, np.intp)]}))
