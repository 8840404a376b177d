"""Sum atom-level pence into a target geography through a crosswalk, exactly.

A crosswalk is a table (atom_id, target_code, weight): the share of each atom inside each target
unit. Atoms cut by the target's own boundaries nest (one row, weight 1), so their pence pass
straight through. Where an atom straddles targets the pence of each (line, atom) are split by
largest remainder, and the share of an atom outside every target (``1 - sum of weights``) is
kept apart as *outside* pence, so inside + outside always equals what the atoms held.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocation.money import split_pence

OUTSIDE = ""  # target code used internally for pence outside every target unit
_TOLERANCE = 1e-9


def to_targets(allocations: pd.DataFrame, crosswalk: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Move (line, atom) pence to (line, target) pence.

    ``allocations``: line_id, atom_id, amount_pence, method. ``crosswalk``: atom_id,
    target_code, weight. Returns (line_id, target_code, method, amount_pence) summed per
    target, without zero rows, and the signed pence that fell outside every target.
    """
    xw = crosswalk[["atom_id", "target_code", "weight"]]
    inside = xw.groupby("atom_id")["weight"].sum()
    outside = (1.0 - inside).clip(lower=0.0)
    outside = outside[outside > _TOLERANCE]
    rest = pd.DataFrame(
        {"atom_id": outside.index, "target_code": OUTSIDE, "weight": outside.to_numpy()}
    )
    # Atoms with no crosswalk row at all lie wholly outside.
    absent = np.setdiff1d(allocations["atom_id"].unique(), inside.index.to_numpy())
    gone = pd.DataFrame({"atom_id": absent, "target_code": OUTSIDE, "weight": 1.0})
    xw = pd.concat([xw, rest, gone], ignore_index=True)

    alloc = allocations[["line_id", "atom_id", "method", "amount_pence"]].reset_index(drop=True)
    alloc["group"] = np.arange(len(alloc))
    rows = alloc.merge(xw, on="atom_id", how="inner")
    rows["amount_pence"] = split_pence(
        alloc["amount_pence"].to_numpy(dtype=np.int64),
        rows["group"].to_numpy(dtype=np.intp),
        rows["weight"].to_numpy(dtype=np.float64),
    )
    out_pence = int(rows.loc[rows["target_code"] == OUTSIDE, "amount_pence"].sum())
    summed = (
        rows.loc[rows["target_code"] != OUTSIDE]
        .groupby(["line_id", "target_code", "method"], as_index=False, sort=True)["amount_pence"]
        .sum()
    )
    summed = summed.loc[summed["amount_pence"] != 0].reset_index(drop=True)
    summed["amount_pence"] = summed["amount_pence"].astype(np.int64)
    return summed, out_pence


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
