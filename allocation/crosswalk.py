"""Sum the atom product into any target geography through a crosswalk, exactly.

A crosswalk is a table (atom_id, target_code, weight): the share of each atom inside each target
unit. Atoms cut by the target's own boundaries nest (one row, weight 1), so their pence pass
straight through with no rounding. Where an atom straddles targets, the pence of each product
row (atom, slice) are split over the targets by running-total rounding, and the share of an atom
outside every target (``1 - sum of weights``) is kept apart as *outside* pence, so inside +
outside always equals what the atoms held.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocation.money import group_sum, split_pence

_TOLERANCE = 1e-9


def to_targets(
    product: pd.DataFrame, crosswalk: pd.DataFrame, n_slices: int | None = None
) -> tuple[pd.DataFrame, int]:
    """Move (atom, slice) pence to (target, slice) pence.

    ``product``: atom_id, slice_id, amount_pence. ``crosswalk``: atom_id, target_code, weight.
    Returns (target_code, slice_id, amount_pence) summed per target and slice, without zero
    rows, ordered by target then slice, and the signed pence that fell outside every target.
    """
    xw = crosswalk[["atom_id", "target_code", "weight"]]
    codes, targets = pd.factorize(xw["target_code"], sort=True)
    xw = pd.DataFrame({"atom_id": xw["atom_id"].to_numpy(dtype=np.int64),
                       "target": codes.astype(np.int64),
                       "weight": xw["weight"].to_numpy(dtype=np.float64)})
    outside_code = len(targets)  # one past the last target: the "outside" bucket
    per_atom = xw.groupby("atom_id").agg(n=("target", "size"), inside=("weight", "sum"),
                                         target=("target", "first"))
    whole = per_atom[(per_atom["n"] == 1) & ((per_atom["inside"] - 1.0).abs() <= _TOLERANCE)]

    atom = product["atom_id"].to_numpy(dtype=np.int64)
    pence = product["amount_pence"].to_numpy(dtype=np.int64)
    slices = product["slice_id"].to_numpy(dtype=np.int64)
    n_slices = int(n_slices if n_slices is not None else (slices.max() + 1 if len(slices) else 0))

    # Atoms wholly inside one target: straight through.
    direct_target = pd.Series(whole["target"]).reindex(atom).to_numpy()
    passes = ~np.isnan(direct_target.astype(np.float64))
    out_target = [direct_target[passes].astype(np.int64)]
    out_slice = [slices[passes]]
    out_pence = [pence[passes]]

    # The rest: split over the targets they touch, plus outside.
    rest = np.flatnonzero(~passes)
    if len(rest):
        inside = per_atom["inside"]
        remainder = (1.0 - inside).clip(lower=0.0)
        remainder = remainder[remainder > _TOLERANCE]
        ext = pd.concat(
            [
                xw,
                pd.DataFrame({"atom_id": remainder.index.to_numpy(dtype=np.int64),
                              "target": outside_code, "weight": remainder.to_numpy()}),
            ],
            ignore_index=True,
        ).sort_values(["atom_id", "target"], kind="stable")
        rows = pd.DataFrame({"group": np.arange(len(rest)), "atom_id": atom[rest]}).merge(
            ext, on="atom_id", how="left"
        )
        absent = rows["target"].isna().to_numpy()  # atoms with no crosswalk row: all outside
        rows.loc[absent, "target"] = outside_code
        rows.loc[absent, "weight"] = 1.0
        rows = rows.sort_values(["group", "target"], kind="stable")
        g = rows["group"].to_numpy(dtype=np.intp)
        split = split_pence(pence[rest], g, rows["weight"].to_numpy(dtype=np.float64))
        out_target.append(rows["target"].to_numpy(dtype=np.int64))
        out_slice.append(slices[rest][g])
        out_pence.append(split)

    tgt = np.concatenate(out_target)
    slc = np.concatenate(out_slice)
    amt = np.concatenate(out_pence)
    outside = int(amt[tgt == outside_code].sum())
    keep = tgt != outside_code
    cell = tgt[keep] * max(n_slices, 1) + slc[keep]
    uniq, inv = np.unique(cell, return_inverse=True)
    summed = group_sum(amt[keep], inv.astype(np.intp), len(uniq))
    nz = summed != 0
    result = pd.DataFrame(
        {
            "target_code": np.asarray(targets, dtype=object)[uniq[nz] // max(n_slices, 1)],
            "slice_id": (uniq[nz] % max(n_slices, 1)).astype(np.int64),
            "amount_pence": summed[nz],
        }
    )
    return result, outside


def target_values(atom_values: pd.DataFrame, crosswalk: pd.DataFrame) -> pd.DataFrame:
    """Sum per-atom quantities (proxies: residents, ...) into targets; float, not money.

    ``atom_values`` is indexed by atom_id with one column per quantity. Returns a frame indexed
    by target_code with the same columns.
    """
    xw = crosswalk[["atom_id", "target_code", "weight"]]
    values = atom_values.reindex(xw["atom_id"].to_numpy()).fillna(0.0).to_numpy()
    weighted = pd.DataFrame(
        values * xw["weight"].to_numpy()[:, None],
        columns=atom_values.columns,
    )
    weighted["target_code"] = xw["target_code"].to_numpy()
    return weighted.groupby("target_code").sum()
