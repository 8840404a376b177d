"""Money passed between bodies: counted once, at the body that finally spends it.

A grant from body A to body B shows up twice in the bodies' own figures: in A's spend (the grant
paid out) and in B's (the services B bought with it). Total Place's rule is to count it once,
at the final spender. So a run takes the passed-on part off the payer's lines before
apportioning, and keeps the flow itself on record for the flow view.

Two steps, both pure:

1. :func:`count_once`: a transfer recorded by both payer and payee (the same payer, payee,
   function and amount) is one transfer, never two and never none. Where one side records the
   same grant twice and the other once, two are counted: the larger count of either side.
2. :func:`net_of_transfers`: each counted transfer is taken off the payer's lines of the same
   function (all its lines if the transfer names none), in proportion to their positive pence,
   with the same running-total rounding as everywhere else (every penny of the transfer lands
   on exactly one line). If the payer's lines hold less than it passed on, what they hold is
   taken and the rest is reported as not deducted: those pence were never in the payer's
   figures, so nothing was counted twice.

Worked example: A reports one line of £100 (grants), B one line of £100 in ward X, and both
record "A paid B £100". Counted once: one transfer of £100. Net of it, A's line places £0 and
says "£100.00 passed on to B", B's line places £100 in X. X shows £100, once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocation.money import split_pence
from domain.money import format_pounds

#: Columns of the transfers a run reads.
TRANSFER_COLUMNS = ("transfer_id", "payer", "payee", "cofog_code", "amount_pence",
                    "recorded_by")


def count_once(transfers: pd.DataFrame) -> pd.DataFrame:
    """The transfers to count: one per grant, however many sides recorded it.

    ``transfers``: :data:`TRANSFER_COLUMNS` (``cofog_code`` may be None: any function).
    Returns payer, payee, cofog_code, amount_pence, recorded (how many records it stands
    for), transfer_ids (the records it stands for), one row per counted transfer.
    """
    if transfers.empty:
        return pd.DataFrame(columns=["payer", "payee", "cofog_code", "amount_pence",
                                     "recorded", "transfer_ids"])
    t = transfers.assign(cofog_code=transfers["cofog_code"].fillna(""))
    key = ["payer", "payee", "cofog_code", "amount_pence"]
    # the n-th record of a grant on each side pairs with the n-th on the other side
    t = t.sort_values([*key, "recorded_by", "transfer_id"])
    t["nth"] = t.groupby([*key, "recorded_by"]).cumcount()
    out = (t.groupby([*key, "nth"], sort=True)
           .agg(recorded=("transfer_id", "size"),
                transfer_ids=("transfer_id", lambda s: sorted(int(v) for v in s)))
           .reset_index().drop(columns="nth"))
    out["cofog_code"] = out["cofog_code"].replace("", None)
    out["amount_pence"] = out["amount_pence"].astype(np.int64)
    return out


def net_of_transfers(lines: pd.DataFrame, counted: pd.DataFrame
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Take each counted transfer off its payer's lines.

    ``lines``: line_id, body, cofog_code, amount_pence. ``counted``: :func:`count_once`'s.
    Returns (lines with ``amount_pence`` net of what was passed on and a ``passed_on_pence``
    column, the transfers with ``deducted_pence`` and ``not_deducted_pence``). A line never
    goes below zero through a transfer; negative lines are never touched.
    """
    out = lines.copy()
    passed = np.zeros(len(out), dtype=np.int64)
    amount = out["amount_pence"].to_numpy(dtype=np.int64)
    body = out["body"].to_numpy(dtype=object)
    cofog = out["cofog_code"].astype(str).to_numpy(dtype=object)
    deducted: list[int] = []
    for t in counted.itertuples(index=False):
        mine = body == t.payer
        if t.cofog_code is not None and isinstance(t.cofog_code, str):
            mine &= cofog == t.cofog_code
        room = np.where(mine, np.maximum(amount - passed, 0), 0)
        take = int(min(int(room.sum()), int(t.amount_pence)))
        if take > 0:
            idx = np.flatnonzero(room > 0)
            passed[idx] += split_pence(np.array([take], dtype=np.int64),
                                       np.zeros(len(idx), dtype=np.intp),
                                       room[idx].astype(np.float64))
        deducted.append(take)
    out["amount_pence"] = amount - passed
    out["passed_on_pence"] = passed
    report = counted.copy()
    report["deducted_pence"] = np.asarray(deducted, dtype=np.int64)
    report["not_deducted_pence"] = report["amount_pence"] - report["deducted_pence"]
    return out, report


def passed_on_reason(lines: pd.DataFrame, counted: pd.DataFrame) -> pd.Series:
    """A note per line that passed pence on: "£100.00 passed on to b (counted there)"."""
    payees = (counted.groupby("payer")["payee"].agg(lambda s: ", ".join(sorted(set(s))))
              if len(counted) else pd.Series(dtype=object))
    notes = []
    for body, pence in zip(lines["body"], lines["passed_on_pence"], strict=True):
        if pence:
            notes.append(f"{format_pounds(pence)} passed on to {payees.get(body, '?')} "
                         "(counted there, where it is spent)")
        else:
            notes.append(None)
    return pd.Series(notes, index=lines.index, dtype=object)
