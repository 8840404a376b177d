"""Agency estimates: a body's own shares of a line over the units of a boundary set.

A body that knows roughly where it spent (its housing repairs by ward, its grants by
neighbourhood) can give shares with a line: ``{"set": "hackney-wards-2014", "shares":
{"E05009367": 0.25, ...}}``. The line is then cut into *parts* before it is apportioned: one
part per named unit, with the line's pence split by the shares (running-total rounding, so the
parts add back to the line exactly), and one part for what the shares leave (1 minus their
sum), reported for the line's own area as before. A unit's part is spread over that unit's
atoms by the line's proxy and counts as the **agency estimate** method; the rest keeps its own
method (proxy, area or direct).

Worked example: a £1,000 line for the borough, with shares W1 0.25 and W2 0.5, becomes £250
for W1 and £500 for W2 (agency estimate) and £250 spread over the borough by residents (proxy).

The parts are an internal step: the conservation report and every stored outcome stay one row
per source line (its allocated pence are the sum of its parts').
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocation.apportion import ESTIMATE_PREFIX
from allocation.money import split_pence
from domain.money import format_pounds


@dataclass(frozen=True)
class Parts:
    """Lines cut into parts: what :func:`allocation.apportion.apportion` is given instead."""

    lines: pd.DataFrame  # one row per part; line_id is the part's id, in source line order
    source: np.ndarray  # the source line_id of each part
    original: pd.DataFrame  # the source lines


def estimate_sets(lines: pd.DataFrame) -> list[str]:
    """The boundary sets agency shares name (their crosswalks are needed to place them)."""
    if "shares" not in lines:
        return []
    sets = {s["set"] for s in lines["shares"] if isinstance(s, dict) and s.get("set")}
    return sorted(sets)


def expand(lines: pd.DataFrame) -> Parts | None:
    """Cut every line that carries shares into its parts; None when no line does."""
    if not estimate_sets(lines):
        return None
    rows: list[dict] = []
    source: list[int] = []
    for line in lines.to_dict(orient="records"):
        given = line.get("shares")
        if not isinstance(given, dict) or not given.get("shares"):
            rows.append(line)
            source.append(int(line["line_id"]))
            continue
        codes = sorted(given["shares"])
        weights = np.array([float(given["shares"][c]) for c in codes]
                           + [max(0.0, 1.0 - sum(given["shares"].values()))])
        pence = split_pence(np.array([int(line["amount_pence"])], dtype=np.int64),
                            np.zeros(len(weights), dtype=np.intp), weights)
        for code, p in zip(codes, pence[:-1], strict=True):
            rows.append({**line, "amount_pence": int(p), "area_set": ESTIMATE_PREFIX
                         + given["set"], "area_code": code, "x": np.nan, "y": np.nan})
            source.append(int(line["line_id"]))
        if weights[-1] > 0:
            rows.append({**line, "amount_pence": int(pence[-1])})
            source.append(int(line["line_id"]))
    parts = pd.DataFrame(rows, columns=lines.columns)
    parts["line_id"] = np.arange(1, len(parts) + 1, dtype=np.int64)
    parts["amount_pence"] = parts["amount_pence"].astype(np.int64)
    return Parts(parts, np.asarray(source, dtype=np.int64), lines)


def join(outcomes: pd.DataFrame, parts: Parts) -> pd.DataFrame:
    """The parts' outcomes as one row per source line (the conservation report's rows).

    A line's allocated pence are its parts'; its method is the method that placed most of it;
    the reason says how much the body's own estimate placed, then any part's own reason.
    """
    o = outcomes.set_index("line_id").loc[parts.lines["line_id"].to_numpy()]
    o = o.assign(source=parts.source, estimate=parts.lines["area_set"].astype(str)
                 .str.startswith(ESTIMATE_PREFIX).to_numpy())
    out = []
    for line in parts.original.to_dict(orient="records"):
        mine = o.loc[o["source"] == int(line["line_id"])]
        placed = mine["allocated_pence"].to_numpy(dtype=np.int64)
        biggest = int(np.argmax(np.abs(placed))) if len(mine) else 0
        methods = mine["method"].to_numpy(dtype=object)
        estimated = int(placed[mine["estimate"].to_numpy()].sum())
        notes = [str(r) for r in mine["reason"].dropna().unique()]
        if mine["estimate"].any():
            units = int(mine["estimate"].sum())
            notes.insert(0, f"{format_pounds(estimated)} placed by the body's own estimate over "
                         f"{units} unit(s) of {line['shares']['set']}")
        amount = int(line["amount_pence"])
        out.append({
            "line_id": int(line["line_id"]), "body": line["body"], "line": line["line"],
            "area": f"{line['area_set']}:{line['area_code']}",
            "amount_pence": amount, "allocated_pence": int(placed.sum()),
            "method": methods[biggest] if len(mine) and placed.any() else None,
            "proxy": line["proxy"], "reason": "; ".join(notes) if notes else None,
        })
    return pd.DataFrame(out, columns=list(outcomes.columns))
