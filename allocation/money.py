"""Exact money: split whole pence by float weights so every group adds back to the penny.

The method is largest remainder (Hamilton): each share gets the floor of its exact quota, then
the pence still owed go, one each, to the shares with the largest fractional remainders (ties to
the earlier row). Negative totals are split as their absolute value and given back their sign,
so a refund of -£5 is spread exactly like a spend of £5.

Worked example: 1,000p split by weights 1:1:1 gives quotas 333.33 each; floors 333+333+333 = 999;
the one penny left goes to the first row (all remainders tie): 334, 333, 333.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from placespend.errors import ConservationError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def split_pence(totals: IntArray, group: npt.NDArray[np.intp], weights: FloatArray) -> IntArray:
    """Split each group's whole-pence total over its rows in proportion to ``weights``.

    ``totals[g]`` is the signed pence of group ``g``; ``group[i]`` names the group of row ``i``;
    ``weights[i] >= 0``. Every group with a non-zero total must have a positive weight sum.
    Returns int64 pence per row such that, for every group, the rows add back to its total
    exactly, and every row is within one penny of its exact quota.
    """
    totals = np.asarray(totals, dtype=np.int64)
    group = np.asarray(group, dtype=np.intp)
    weights = np.asarray(weights, dtype=np.float64)
    n_groups = len(totals)
    if len(group) != len(weights):
        raise ValueError("group and weights must have the same length")
    if len(weights) and (weights.min() < 0 or not np.isfinite(weights).all()):
        raise ValueError("weights must be finite and non-negative")
    wsum = np.bincount(group, weights=weights, minlength=n_groups)
    unfunded = (totals != 0) & (wsum <= 0)
    if unfunded.any():
        g = int(np.flatnonzero(unfunded)[0])
        raise ValueError(f"group {g} has a non-zero total but no positive weight")

    sign = np.sign(totals)
    magnitude = np.abs(totals)
    safe_wsum = np.where(wsum > 0, wsum, 1.0)
    quota = magnitude[group].astype(np.float64) * (weights / safe_wsum[group])
    floors = np.floor(quota).astype(np.int64)
    remainder = quota - floors
    owed = magnitude - group_sum(floors, group, n_groups)

    # Rank rows inside each group: largest remainder first, ties to the earlier row.
    order = np.lexsort((np.arange(len(group)), -remainder, group))
    starts = np.searchsorted(group[order], np.arange(n_groups))
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - starts[group[order]]
    counts = np.bincount(group, minlength=n_groups)

    # Floating point can leave a group owed -1 (floors summed one too high); take that penny
    # back from the smallest remainders that have one to give.
    plus = (owed[group] > 0) & (rank < owed[group])
    minus = (owed[group] < 0) & (rank >= counts[group] + owed[group]) & (floors > 0)
    pence = floors + plus.astype(np.int64) - minus.astype(np.int64)
    pence = pence * sign[group]

    check = group_sum(pence, group, n_groups)
    if not np.array_equal(check, totals):
        bad = int(np.flatnonzero(check != totals)[0])
        raise ConservationError(
            f"pence for group {bad} add to {int(check[bad])}, not {int(totals[bad])}",
            "report this as a bug with the input that caused it",
        )
    return pence


def group_sum(values: IntArray, group: npt.NDArray[np.intp], n_groups: int) -> IntArray:
    """Exact integer sum of ``values`` per group (``np.bincount`` would go through float64)."""
    out = np.zeros(n_groups, dtype=np.int64)
    np.add.at(out, group, np.asarray(values, dtype=np.int64))
    return out


def pounds(pence: int) -> float:
    """Whole pence as pounds with two decimal places (for display; sums stay in pence)."""
    return round(pence / 100, 2)
