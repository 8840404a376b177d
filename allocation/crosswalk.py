"""Sum the atom product into any target geography through a crosswalk, exactly.

A crosswalk is a table (atom_id, target_code, weight): the share of each atom inside each target
unit. Atoms cut by the target's own boundaries nest (one row, weight 1), so their pence pass
straight through with no rounding. Where an atom straddles targets, the pence of each product
row (atom, slice) are split over the targets by running-total rounding, and the share of an atom
outside every target (``1 - sum of weights``) is kept apart as *outside* pence, so inside +
outside always equals what the atoms held.

The product can have millions of rows, so the nesting atoms go through a lookup table from atom
to target, a chunk of rows at a time, and are summed straight into a dense (target x slice)
table when that table is small; only the rows of straddling atoms are expanded and split.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from allocation.money import MAX_EXACT_PENCE, IdLookup, group_sum, label_column, split_pence

_TOLERANCE = 1e-9
#: Product rows looked up at a time (keeps every temporary small).
_CHUNK = 1 << 20
#: A dense (target x slice) table is used up to this many cells (beyond, cells are sorted).
_DENSE_CELLS = 1 << 24

IntArray = npt.NDArray[np.int64]


class _Cells:
    """Exact sums of pence per (target x slice) cell: a dense table when small, else a list.

    The table sums in float64, which is exact while the pence added since the last flush stay
    below 2**52 in absolute value; before that bound is passed they are moved into an int64
    table.
    """

    def __init__(self, n_cells: int) -> None:
        self.n_cells = n_cells
        self.dense = n_cells <= _DENSE_CELLS
        self.table: npt.NDArray[np.float64] | None = None
        self.exact: IntArray | None = None
        self.held = 0.0
        self.cells: list[IntArray] = []
        self.pence: list[IntArray] = []

    def add(self, cell: IntArray, pence: IntArray) -> None:
        """Add ``pence[i]`` to cell ``cell[i]``."""
        if not len(cell):
            return
        if cell.min() < 0 or cell.max() >= self.n_cells:
            raise ValueError("a product row names a slice or target beyond the ones given")
        if not self.dense:
            self.cells.append(cell)
            self.pence.append(pence)
            return
        size = float(np.abs(pence).sum(dtype=np.float64))
        if self.held + size >= MAX_EXACT_PENCE // 2:
            self._flush()
        if size >= MAX_EXACT_PENCE // 2:
            np.add.at(self._exact(), cell, pence)
            return
        sums = np.bincount(cell, weights=pence, minlength=self.n_cells)
        if self.table is None:
            self.table = sums
        else:
            self.table += sums
        self.held += size

    def _exact(self) -> IntArray:
        if self.exact is None:
            self.exact = np.zeros(self.n_cells, dtype=np.int64)
        return self.exact

    def _flush(self) -> None:
        if self.table is not None:
            self._exact()[:] += np.rint(self.table).astype(np.int64)
        self.table = None
        self.held = 0.0

    def totals(self) -> tuple[IntArray, IntArray]:
        """The cells with a non-zero sum, in cell order, and their sums."""
        if self.dense and self.exact is None:
            table = self.table if self.table is not None else np.zeros(0)
            cell = np.flatnonzero(table)
            return cell, np.rint(table[cell]).astype(np.int64)
        if self.dense:
            self._flush()
            cell = np.flatnonzero(self.exact)
            return cell, self._exact()[cell]
        every = np.concatenate(self.cells) if self.cells else np.zeros(0, dtype=np.int64)
        pence = np.concatenate(self.pence) if self.pence else np.zeros(0, dtype=np.int64)
        cell, inverse = np.unique(every, return_inverse=True)
        summed = group_sum(pence, inverse.astype(np.intp), len(cell))
        keep = summed != 0
        return cell[keep], summed[keep]


def _target_codes(crosswalk: pd.DataFrame) -> tuple[npt.NDArray[np.intp], pd.CategoricalDtype]:
    """The code of each crosswalk row's target and the distinct target codes, in sorted order.

    A Categorical target_code whose categories are sorted and all used is taken as it is (no
    row is hashed); anything else is factorized, as ``pd.factorize(..., sort=True)`` codes it.
    """
    column = crosswalk["target_code"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = column.cat.categories
        codes = column.cat.codes.to_numpy().astype(np.intp)
        if categories.is_monotonic_increasing and (
                np.bincount(codes[codes >= 0], minlength=len(categories)) > 0).all():
            return codes, column.dtype
    codes, targets = pd.factorize(column, sort=True)
    return codes.astype(np.intp, copy=False), pd.CategoricalDtype(
        np.asarray(targets, dtype=object))


def coded(crosswalk: pd.DataFrame) -> pd.DataFrame:
    """``crosswalk`` with target_code as a Categorical (categories sorted, all used).

    :func:`to_targets` and :func:`target_values` take such a column as it is, and otherwise
    code the target codes first: code a crosswalk once when it is summed through more than
    once (a cached crosswalk, or one publication's pence and residents).
    """
    codes, dtype = _target_codes(crosswalk)
    if crosswalk["target_code"].dtype is dtype:
        return crosswalk
    return crosswalk.assign(target_code=pd.Categorical.from_codes(codes, dtype=dtype))


def to_targets(
    product: pd.DataFrame, crosswalk: pd.DataFrame, n_slices: int | None = None, *,
    categorical: bool = False,
) -> tuple[pd.DataFrame, int]:
    """Move (atom, slice) pence to (target, slice) pence.

    ``product``: atom_id, slice_id, amount_pence. ``crosswalk``: atom_id, target_code, weight
    (target_code may be Categorical). Returns (target_code, slice_id, amount_pence) summed per
    target and slice, without zero rows, ordered by target then slice, and the signed pence that
    fell outside every target. target_code is text; with ``categorical`` it is a Categorical of
    the crosswalk's target codes instead (a number per row, no text made:
    :func:`text_targets` makes the text column from it).
    """
    codes, target_dtype = _target_codes(crosswalk)
    targets = target_dtype.categories
    x_atom = crosswalk["atom_id"].to_numpy(dtype=np.int64)
    x_weight = crosswalk["weight"].to_numpy(dtype=np.float64)

    atom = product["atom_id"].to_numpy(dtype=np.int64)
    pence = product["amount_pence"].to_numpy(dtype=np.int64)
    slices = product["slice_id"].to_numpy(dtype=np.int64)
    n_slices = int(n_slices if n_slices is not None else (slices.max() + 1 if len(slices) else 0))
    width = max(n_slices, 1)

    # Atoms wholly inside one target (one crosswalk row, weight 1) pass straight through.
    lookup = IdLookup(x_atom)
    slot = lookup.slots(x_atom)
    rows_of = np.bincount(slot, minlength=lookup.size)
    weight_of = np.bincount(slot, weights=x_weight, minlength=lookup.size)
    whole = (rows_of == 1) & (np.abs(weight_of - 1.0) <= _TOLERANCE)
    target_of = np.full(lookup.size, -1, dtype=np.int64)  # -1: not wholly inside one target
    nested = whole[slot]
    target_of[slot[nested]] = codes[nested]

    sums = _Cells(len(targets) * width)
    rest: list[IntArray] = []
    for start in range(0, len(atom), _CHUNK):
        stop = min(start + _CHUNK, len(atom))
        cell = lookup.take(target_of, atom[start:stop])
        passes = cell >= 0
        cell *= width
        cell += slices[start:stop]
        if passes.all():
            sums.add(cell, pence[start:stop])
        else:
            rest.append(start + np.flatnonzero(~passes))
            sums.add(cell[passes], pence[start:stop][passes])

    # The rest: split over the targets they touch, plus outside.
    outside = 0
    if rest:
        rows = np.concatenate(rest)
        cell, amount, outside = _split_straddling(
            atom[rows], pence[rows], slices[rows], x_atom, codes, x_weight, len(targets), width
        )
        sums.add(cell, amount)

    cell, summed = sums.totals()
    result = pd.DataFrame(
        {
            "target_code": pd.Categorical.from_codes(cell // width, dtype=target_dtype),
            "slice_id": (cell % width).astype(np.int64),
            "amount_pence": summed,
        },
        copy=False,
    )
    return (result if categorical else text_targets(result)), outside


def text_targets(target_alloc: pd.DataFrame) -> pd.DataFrame:
    """A :func:`to_targets` table whose target_code is Categorical, with that column as text.

    The text column is made from the few distinct codes (:func:`allocation.money.label_column`),
    so it is the column :func:`to_targets` returns by default.
    """
    column = target_alloc["target_code"].array
    return pd.DataFrame(
        {
            "target_code": label_column(np.asarray(column.categories, dtype=object),
                                        column.codes),
            "slice_id": target_alloc["slice_id"].to_numpy(),
            "amount_pence": target_alloc["amount_pence"].to_numpy(),
        },
        copy=False,
    )


def _split_straddling(
    atom: IntArray,
    pence: IntArray,
    slices: IntArray,
    x_atom: IntArray,
    codes: IntArray,
    x_weight: npt.NDArray[np.float64],
    outside_code: int,
    width: int,
) -> tuple[IntArray, IntArray, int]:
    """Split the product rows of atoms that do not nest over their targets and outside.

    Each row's pence are split by running-total rounding over the atom's crosswalk rows in
    target order (ties in crosswalk order), then the share outside every target; an atom with no
    crosswalk row is all outside. Returns the inside (cell, pence) rows and the outside pence.
    """
    known = np.isin(x_atom, atom)
    xa, xt, xw = x_atom[known], codes[known].astype(np.int64), x_weight[known]
    inside = pd.Series(xw).groupby(xa).sum()  # compensated sums, as the split has always used
    remainder = (1.0 - inside).clip(lower=0.0)
    remainder = remainder[remainder > _TOLERANCE]
    xa = np.concatenate([xa, remainder.index.to_numpy(dtype=np.int64)])
    xt = np.concatenate([xt, np.full(len(remainder), outside_code, dtype=np.int64)])
    xw = np.concatenate([xw, remainder.to_numpy(dtype=np.float64)])
    order = np.lexsort((xt, xa))
    xa, xt, xw = xa[order], xt[order], xw[order]

    first = np.searchsorted(xa, atom, side="left")
    count = np.searchsorted(xa, atom, side="right") - first
    # An atom with no crosswalk row is all outside: one row of weight 1, appended last.
    xt = np.append(xt, outside_code)
    xw = np.append(xw, 1.0)
    absent = count == 0
    first[absent] = len(xt) - 1
    count[absent] = 1
    group = np.repeat(np.arange(len(atom)), count)
    offset = np.cumsum(count) - count
    row = np.repeat(first - offset, count) + np.arange(int(count.sum()))
    target, weight = xt[row], xw[row]
    split = split_pence(pence, group, weight)
    out = target == outside_code
    inside_rows = ~out
    cell = target[inside_rows] * width + slices[group[inside_rows]]
    return cell, split[inside_rows], int(split[out].sum())


def target_values(atom_values: pd.DataFrame, crosswalk: pd.DataFrame) -> pd.DataFrame:
    """Sum per-atom quantities (proxies: residents, ...) into targets; float, not money.

    ``atom_values`` is indexed by atom_id with one column per quantity. Returns a frame indexed
    by target_code with the same columns.
    """
    codes, target_dtype = _target_codes(crosswalk)
    targets = target_dtype.categories
    where = pd.Index(atom_values.index).get_indexer(crosswalk["atom_id"].to_numpy())
    values = atom_values.to_numpy(dtype=np.float64)
    weight = crosswalk["weight"].to_numpy(dtype=np.float64)
    known = where >= 0
    out = np.column_stack([
        np.bincount(codes[known], weights=values[where[known], j] * weight[known],
                    minlength=len(targets))
        for j in range(values.shape[1])
    ]) if values.shape[1] else np.zeros((len(targets), 0))
    return pd.DataFrame(out, index=pd.Index(np.asarray(targets, dtype=object),
                                            name="target_code"), columns=atom_values.columns)


def unit_crosswalk(atoms: pd.DataFrame, crosswalk: pd.DataFrame, basis: pd.Series) -> pd.DataFrame:
    """From each unit of the set the atoms were cut by, the share of it in each target unit.

    ``atoms``: atom_id, cut_code (the source unit each atom lies in); ``crosswalk``: atom_id,
    target_code, weight (an atom's fraction in each target); ``basis``: a quantity per atom
    (indexed by atom_id): residents for a population crosswalk, area for an area one. The
    weight of (source S, target T) is the basis in the atoms of S that lie in T, over the basis
    in all of S: ``w(S, T) = sum over atoms a of S of basis(a) * xw(a, T) / sum basis(a)``.
    A source's weights add to 1 where all of it lies in the target set, less where part lies
    outside it. Returns source_code, target_code, weight, one row per pair with weight > 0,
    ordered by source and target.
    """
    value = basis.reindex(crosswalk["atom_id"].to_numpy()).fillna(0.0).to_numpy(np.float64)
    source = atoms.set_index("atom_id")["cut_code"].reindex(
        crosswalk["atom_id"].to_numpy()).to_numpy(dtype=object)
    pieces = pd.DataFrame({"source_code": source, "target_code": crosswalk["target_code"]
                           .astype(str).to_numpy(dtype=object),
                           "value": value * crosswalk["weight"].to_numpy(np.float64)})
    pair = pieces.groupby(["source_code", "target_code"], sort=True)["value"].sum()
    whole = pd.Series(basis.reindex(atoms["atom_id"].to_numpy()).fillna(0.0).to_numpy(),
                      index=atoms["cut_code"].to_numpy()).groupby(level=0).sum()
    out = pair.reset_index()
    out["weight"] = out["value"] / whole.reindex(out["source_code"]).to_numpy()
    out = out.loc[out["weight"] > 0, ["source_code", "target_code", "weight"]]
    return out.reset_index(drop=True)


def best_fit(atoms: pd.DataFrame, crosswalk: pd.DataFrame, basis: pd.Series) -> pd.DataFrame:
    """The best-fit crosswalk: every small area wholly to one target, ONS-style.

    Each small area (``zone_code`` of ``atoms``) goes, all its atoms, to the target holding
    most of its ``basis`` (residents) by the exact crosswalk: a stand-in for the target holding
    its population-weighted centroid, where the finer units that locate that centroid are not
    loaded. A small area whose residents are mostly outside every target (an LSOA of the next
    borough that a ward of this set only touches) stays outside, as does one no target
    touches; atoms no small area covers keep their exact weights. Returns atom_id,
    target_code, weight (1.0 for every best-fit atom).
    """
    value = basis.reindex(crosswalk["atom_id"].to_numpy()).fillna(0.0).to_numpy(np.float64)
    zone = atoms.set_index("atom_id")["zone_code"].reindex(
        crosswalk["atom_id"].to_numpy()).to_numpy(dtype=object)
    pieces = pd.DataFrame({"zone": zone, "target_code": crosswalk["target_code"].astype(str)
                           .to_numpy(dtype=object),
                           "value": value * crosswalk["weight"].to_numpy(np.float64)})
    pieces = pieces[pd.notna(pieces["zone"])]
    per = pieces.groupby(["zone", "target_code"], sort=True)["value"].sum().reset_index()
    # most residents wins; a tie (or no residents) goes to the lowest target code
    per = per.sort_values(["zone", "value", "target_code"], ascending=[True, False, True])
    top = per.drop_duplicates("zone").set_index("zone")
    # the residents of each small area in no target: all its atoms' less those inside targets
    every = pd.Series(basis.reindex(atoms["atom_id"].to_numpy()).fillna(0.0).to_numpy(np.float64),
                      index=atoms["zone_code"].to_numpy()).groupby(level=0).sum()
    inside = per.groupby("zone")["value"].sum()
    outside = every.reindex(top.index).fillna(0.0) - inside.reindex(top.index)
    winner = top.loc[top["value"] >= outside - 1e-9, "target_code"]
    zoned = atoms.loc[atoms["zone_code"].notna(), ["atom_id", "zone_code"]]
    chosen = zoned.assign(target_code=zoned["zone_code"].map(winner)).dropna(
        subset=["target_code"])
    loose = crosswalk[~crosswalk["atom_id"].isin(zoned["atom_id"])]
    out = pd.concat([chosen[["atom_id", "target_code"]].assign(weight=1.0),
                     loose[["atom_id", "target_code", "weight"]]], ignore_index=True)
    return out.sort_values(["atom_id", "target_code"]).reset_index(drop=True)
