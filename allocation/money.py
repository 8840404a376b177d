"""Exact money: split whole pence by float weights so every group adds back to the penny.

The method is *running-total rounding*. Inside a group (one spend line, or one atom's pence
being passed on to targets) the rows are taken in order; each row's running share ``C`` is the
share of the group's weight up to and including that row (the last row's is exactly 1). A row
gets the rounded running total after it minus the rounded running total before it::

    pence(row) = round(T * C(row)) - round(T * C(previous row))       (round half up)

The differences telescope, so the rows add back to ``T`` exactly; each row is within one penny
of its exact quota ``T * weight / sum of weights`` (each rounded total is within half a penny);
no row of a positive total is ever negative; and nothing has to be sorted, so a million lines
split in one vectorised pass. Negative totals are split as their absolute value and given back
their sign, so a refund of -£5 is spread exactly like a spend of £5.

Worked example: 1,000p split by weights 1:1:1. Running shares 1/3, 2/3, 1; running totals
333.33, 666.67, 1000 round to 333, 667, 1000; the rows get 333, 334, 333.

The same running shares split *several* totals over one set of rows (:func:`split_by_shares`):
that is how every line reported for the same area and proxy is split with weights computed once.

Three helpers for the tables these amounts go into are here too, so that the modules that build
those tables share them: :func:`group_sum` (exact integer sums per group),
:func:`label_column` (a column of a few repeated labels, built without one Python object per
row) and :class:`IdLookup` (the position of each of many integer ids among a few, without
hashing when the ids are compact).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.extensions import ExtensionArray

from domain.errors import ConservationError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Sums of pence in float64 are exact below this (2**53); larger inputs are refused.
MAX_EXACT_PENCE = 2**53


def running_shares(
    group: npt.NDArray[np.intp], weights: FloatArray, n_groups: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Running shares of each row in its group: ``(before, after, weight sum of the group)``.

    ``group`` must be non-decreasing (each group's rows together, in the order that decides
    ties). ``after`` of a group's last row is exactly 1 when the group has positive weight; a
    group with no weight has ``before = after = 0`` on every row. Accumulation restarts in every
    group, so a share is as precise as the group's own sum, however many groups precede it.
    """
    group = np.asarray(group, dtype=np.intp)
    weights = np.asarray(weights, dtype=np.float64)
    if len(group) != len(weights):
        raise ValueError("group and weights must have the same length")
    if len(weights) and (weights.min() < 0 or not np.isfinite(weights).all()):
        raise ValueError("weights must be finite and non-negative")
    if len(group) > 1 and (group[1:] < group[:-1]).any():
        raise ValueError("rows must be ordered by group")
    wsum = np.bincount(group, weights=weights, minlength=n_groups)
    safe = np.where(wsum > 0, wsum, 1.0)
    share = weights / safe[group]
    # pandas' grouped cumsum is compensated (Kahan) summation: keep it, the shares depend on it.
    after = pd.Series(share).groupby(group, sort=False).cumsum().to_numpy(copy=True)
    np.minimum(after, 1.0, out=after)
    # The compensation can step a running share back by an ulp on a zero (or tiny) share; a
    # share that fell could round a row of a positive total to -1p, so shares never fall.
    if len(group) > 1 and ((after[1:] < after[:-1]) & (group[1:] == group[:-1])).any():
        after = pd.Series(after).groupby(group, sort=False).cummax().to_numpy(copy=True)
    if len(group):
        last = np.r_[group[1:] != group[:-1], True]
        after[last & (wsum[group] > 0)] = 1.0
        first = np.r_[True, group[1:] != group[:-1]]
        before = np.r_[0.0, after[:-1]]
        before[first] = 0.0
    else:
        before = after.copy()
    return before, after, wsum


def split_by_shares(totals: IntArray, before: FloatArray, after: FloatArray) -> IntArray:
    """Each row's pence of its total: ``round(|T| after) - round(|T| before)``, with T's sign.

    ``totals[i]`` is the signed whole-pence total the row belongs to; ``before``/``after`` its
    running shares (:func:`running_shares`). Rows of one total add back to it exactly.
    """
    totals = np.asarray(totals, dtype=np.int64)
    magnitude = np.abs(totals)
    if len(totals) and magnitude.max() >= MAX_EXACT_PENCE:
        raise ValueError(f"a total of {int(magnitude.max())}p is too large to split exactly")
    magnitude = magnitude.astype(np.float64)
    hi = magnitude * after
    hi += 0.5
    np.floor(hi, out=hi)
    lo = np.multiply(magnitude, before, out=magnitude)
    lo += 0.5
    np.floor(lo, out=lo)
    hi -= lo
    return hi.astype(np.int64) * np.sign(totals)


def split_pence(totals: IntArray, group: npt.NDArray[np.intp], weights: FloatArray) -> IntArray:
    """Split each group's whole-pence total over its rows in proportion to ``weights``.

    ``totals[g]`` is the signed pence of group ``g``; ``group[i]`` names the group of row ``i``
    (non-decreasing); ``weights[i] >= 0``. Every group with a non-zero total must have a
    positive weight sum. Returns int64 pence per row such that, for every group, the rows add
    back to its total exactly, and every row is within one penny of its exact quota.
    """
    totals = np.asarray(totals, dtype=np.int64)
    group = np.asarray(group, dtype=np.intp)
    before, after, wsum = running_shares(group, weights, len(totals))
    unfunded = (totals != 0) & (wsum <= 0)
    if unfunded.any():
        g = int(np.flatnonzero(unfunded)[0])
        raise ValueError(f"group {g} has a non-zero total but no positive weight")
    pence = split_by_shares(totals[group], before, after)
    check = group_sum(pence, group, len(totals))
    if not np.array_equal(check, totals):
        bad = int(np.flatnonzero(check != totals)[0])
        raise ConservationError(
            f"pence for group {bad} add to {int(check[bad])}, not {int(totals[bad])}",
            "report this as a bug with the input that caused it",
        )
    return pence


def group_sum(values: IntArray, group: npt.NDArray[np.intp], n_groups: int) -> IntArray:
    """Exact integer sum of ``values`` per group.

    ``np.bincount`` goes through float64, which is exact while every partial sum stays below
    2**53 pence; beyond that the slower exact ``np.add.at`` is used.
    """
    values = np.asarray(values, dtype=np.int64)
    if len(values) == 0 or int(np.abs(values).sum(dtype=np.float64)) < MAX_EXACT_PENCE // 2:
        return np.rint(np.bincount(group, weights=values, minlength=n_groups)).astype(np.int64)
    out = np.zeros(n_groups, dtype=np.int64)
    np.add.at(out, group, values)
    return out


def label_column(table: np.ndarray, codes: npt.NDArray[np.intp]) -> np.ndarray | ExtensionArray:
    """``table[codes]`` as the column pandas would make of it, cheaply.

    ``table`` holds a few labels (strings, or None for none); ``codes`` (each ``>= 0``) pick one
    per row. pandas stores an object array of strings as its ``str`` dtype, converting every
    row; here the dtype is inferred from the labels actually used and the rows are then taken
    from a converted copy of the few labels, which gives the same column. Anything that is not
    text comes back as the plain object array, for pandas to treat as it always has.
    """
    table = np.asarray(table, dtype=object)
    codes = np.asarray(codes, dtype=np.intp)
    used = np.bincount(codes, minlength=len(table)).astype(bool)
    dtype = pd.Series(table[used]).dtype
    if isinstance(dtype, pd.StringDtype):
        return pd.array(np.where(used, table, None), dtype=dtype).take(codes)
    return table[codes]


class IdLookup:
    """Slots for integer ids (atoms, slices): offsets into a table when compact, else a hash.

    A table of ``size`` values indexed by slot answers for any id; its first and last slots
    stand for ids the lookup was not built with, so they should hold "unknown".
    """

    def __init__(self, ids: IntArray) -> None:
        low = int(ids.min()) if len(ids) else 0
        high = int(ids.max()) if len(ids) else -1
        self.direct = high - low < 4 * len(ids) + 1024
        if self.direct:
            self.offset = low - 1
            self.size = high - low + 3
        else:
            self.index = pd.Index(np.unique(ids))
            self.size = len(self.index) + 2

    def slots(self, ids: IntArray) -> IntArray:
        """The slots of ids the lookup was built with."""
        return ids - self.offset if self.direct else self.index.get_indexer(ids) + 1

    def take(self, values: IntArray, ids: IntArray) -> IntArray:
        """``values`` (one per slot) at each of ``ids``, known or not."""
        if self.direct:
            return np.take(values, ids - self.offset, mode="clip")
        return values[self.index.get_indexer(ids) + 1]


def pounds(pence: int) -> float:
    """Whole pence as pounds with two decimal places (for display; sums stay in pence)."""
    return round(pence / 100, 2)
