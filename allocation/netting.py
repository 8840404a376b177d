"""Netting rules: the same money reported by two sources is counted once.

Total Place counts every body's money in a place, and never a pound twice. When two datasets
report the same money (HM Treasury's regional analysis counts councils' spending, which the
councils' own returns count too; NHS England's row includes the payments to GP practices
that are loaded, and placed, practice by practice), a *netting rule* says which figure is
kept. Two kinds, both pure and both written in the run's conservation report as their own
line (rule, pence, rationale):

- ``not_counted``: the lines a rule names are not counted at all; their pence are netted off
  whole (CRA's local government rows: the councils' returns count them).
- ``part_of``: the lines a rule names (the *parts*, e.g. GP payments, placed at each practice)
  are part of other lines (the *whole*, e.g. NHS England's health rows). The parts are counted
  where they are, and their total is taken off the whole's lines in proportion to their
  positive pence, with the same running-total rounding as everywhere (every penny taken lands
  on exactly one line); the rest of the whole is spread as before. A whole never goes below
  zero: if it holds less than its parts, what it holds is taken and the rest is reported as not
  netted.

A rule names lines by ``dataset`` (the spend dataset they were loaded as), ``body`` and
``function`` (a COFOG code prefix, matched against the function as given or its division);
``*`` matches anything.

Worked example: a CRA NHS England line of £5,000 and GP payment lines of £1,000 and £200;
rule "gp-payments are part of NHS England's health rows": the GP lines place £1,200 at their
practices and the CRA line spreads £3,800 by residents, with "£1,200.00 netted: part of ..."
on the line. The place's total is £5,000, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocation.money import split_pence
from domain.money import format_pounds


@dataclass(frozen=True)
class Netted:
    """Lines net of every rule, and what each rule did."""

    #: The lines with ``amount_pence`` net of the rules, ``netted_pence`` (what was taken off)
    #: and ``netting`` (a note saying why, or None).
    lines: pd.DataFrame
    #: One row per rule: rule, action, rationale, lines (acted on), parts_pence (part_of: the
    #: parts' total), netted_pence, not_netted_pence.
    report: pd.DataFrame


def _matches(lines: pd.DataFrame, dataset: str, body: str, function: str) -> np.ndarray:
    ok = np.ones(len(lines), dtype=bool)
    if dataset != "*":
        ok &= lines["dataset"].astype(str).to_numpy() == dataset
    if body != "*":
        ok &= lines["body"].astype(str).to_numpy() == body
    if function != "*":
        given = lines["source_code"].where(lines["source_code"].notna(), lines["cofog_code"])
        ok &= (given.astype(str).str.startswith(function)
               | lines["cofog_code"].astype(str).str.startswith(function)).to_numpy()
    return ok


def apply_rules(lines: pd.DataFrame, rules: pd.DataFrame) -> Netted:
    """Apply every rule, in table order, to a year's lines.

    ``lines``: line_id, dataset, body, cofog_code, source_code, amount_pence.
    ``rules``: rule, action, dataset, body, function, within_dataset, within_body,
    within_function, rationale (as :func:`intake.reference.read_netting_rules` reads them).
    """
    amount = lines["amount_pence"].to_numpy(dtype=np.int64).copy()
    netted = np.zeros(len(lines), dtype=np.int64)
    notes: list[list[str]] = [[] for _ in range(len(lines))]
    out_rows = []
    for r in rules.itertuples(index=False):
        named = _matches(lines, r.dataset, r.body, r.function)
        if r.action == "not_counted":
            take = np.where(named, amount - netted, 0)
            netted += take
            for i in np.flatnonzero(named & (take != 0)):
                notes[i].append(f"{format_pounds(int(take[i]))} not counted (rule {r.rule}: "
                                f"{r.rationale})")
            out_rows.append({"rule": r.rule, "action": r.action, "rationale": r.rationale,
                             "lines": int(named.sum()), "parts_pence": 0,
                             "netted_pence": int(take.sum()), "not_netted_pence": 0})
            continue
        whole = _matches(lines, r.within_dataset, r.within_body, r.within_function) & ~named
        parts = int(amount[named].sum() - netted[named].sum())
        room = np.where(whole, np.maximum(amount - netted, 0), 0)
        take_total = int(min(max(parts, 0), int(room.sum())))
        take = np.zeros(len(lines), dtype=np.int64)
        if take_total > 0:
            idx = np.flatnonzero(room > 0)
            take[idx] = split_pence(np.array([take_total], dtype=np.int64),
                                    np.zeros(len(idx), dtype=np.intp),
                                    room[idx].astype(np.float64))
        netted += take
        for i in np.flatnonzero(take):
            notes[i].append(f"{format_pounds(int(take[i]))} netted: part of it is counted "
                            f"elsewhere (rule {r.rule}: {r.rationale})")
        out_rows.append({"rule": r.rule, "action": r.action, "rationale": r.rationale,
                         "lines": int(whole.sum()), "parts_pence": parts,
                         "netted_pence": take_total,
                         "not_netted_pence": max(parts, 0) - take_total})
    out = lines.copy()
    out["amount_pence"] = amount - netted
    out["netted_pence"] = netted
    out["netting"] = pd.Series(["; ".join(n) if n else None for n in notes],
                               index=lines.index, dtype=object)
    report = pd.DataFrame(out_rows, columns=["rule", "action", "rationale", "lines",
                                             "parts_pence", "netted_pence",
                                             "not_netted_pence"])
    return Netted(out, report)
