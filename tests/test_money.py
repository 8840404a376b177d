"""Whole pence: largest remainder splits add back exactly and stay within a penny of quota."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.money import pounds, split_pence


def test_three_equal_shares_first_gets_the_spare_penny() -> None:
    out = split_pence(np.array([1000]), np.zeros(3, dtype=np.intp), np.ones(3))
    assert out.tolist() == [334, 333, 333]


def test_negative_total_is_split_like_its_absolute_value() -> None:
    out = split_pence(np.array([-500_000]), np.zeros(3, dtype=np.intp), np.array([1.0, 1, 2]))
    assert out.tolist() == [-125_000, -125_000, -250_000]


def test_largest_remainder_wins_the_penny() -> None:
    # quotas 0.75, 0.125, 0.125 -> the 0.75 row takes the single penny
    out = split_pence(np.array([1]), np.zeros(3, dtype=np.intp), np.array([300.0, 50, 50]))
    assert out.tolist() == [1, 0, 0]


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
