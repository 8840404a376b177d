"""Transfers between bodies (grants passed on), row by row.

Columns: ``payer, payee, financial_year, amount`` (pounds unless ``--unit``; or
``amount_pence``), and optionally ``function`` (a COFOG code: the payer's lines it is taken
from), ``recorded_by`` (payer, payee or other: who says so), ``reference`` (the grant's name or
number). Every row at fault is a :class:`~domain.errors.Problem`; a file with any is refused
whole.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from domain.errors import Problem, Rejected
from intake.tables import read_json_records, read_rows
from intake.values import BadValue, parse_amount, parse_cofog, parse_financial_year

COLUMNS = ["payer", "payee", "financial_year", "cofog_code", "amount_pence", "recorded_by",
           "reference", "source_row"]
RECORDERS = ("payer", "payee", "other")


def read_transfers(path: Path, *, source: str, unit: str = "pounds",
                   recorded_by: str | None = None, encoding: str | None = None) -> pd.DataFrame:
    """Read a transfers file into :data:`COLUMNS`; Rejected naming every row at fault."""
    problems: list[Problem] = []
    rows = (read_json_records(path, source=source, problems=problems)
            if Path(source).suffix.lower() == ".json"
            else read_rows(path, ("payer", "payee", "financial_year"), encoding=encoding,
                           source=source, problems=problems))
    out = []
    for row in rows:
        v = {k.strip().lower(): (x if isinstance(x, str) else str(x))
             for k, x in row.values.items()}
        where, before = f"row {row.line_no}", len(problems)

        def bad(fld: str, value: str | None, reason: str, fix: str, _w: str = where,
                _r: int = row.line_no) -> None:
            problems.append(Problem(_w, reason, fix, field=fld, value=value, row=_r))

        payer, payee = v.get("payer", "").strip().lower(), v.get("payee", "").strip().lower()
        if not payer or not payee:
            bad("payer" if not payer else "payee", "", "a transfer needs both bodies",
                "name the payer and the payee by their slugs (e.g. gla, hackney)")
        elif payer == payee:
            bad("payee", payee, "a body cannot pass money to itself", "check the payee")
        try:
            year = parse_financial_year(v.get("financial_year", ""))
        except BadValue as exc:
            problems.append(exc.problem(where=where, field="financial_year",
                                        value=v.get("financial_year", ""), row=row.line_no))
            year = ""
        col = "amount_pence" if "amount_pence" in v else "amount"
        pence = 0
        try:
            pence = parse_amount(v.get(col, ""), "pence" if col == "amount_pence" else unit)
            if pence <= 0:
                bad(col, v[col], "a transfer is a positive amount",
                    "write the amount passed on, without a sign")
        except BadValue as exc:
            problems.append(exc.problem(where=where, field=col, value=v.get(col, ""),
                                        row=row.line_no))
        cofog = None
        if v.get("function"):
            try:
                cofog = parse_cofog(v["function"])[:2]
            except BadValue as exc:
                problems.append(exc.problem(where=where, field="function", value=v["function"],
                                            row=row.line_no))
        who = (v.get("recorded_by") or recorded_by or "other").strip().lower()
        if who not in RECORDERS:
            bad("recorded_by", who, "recorded_by must be payer, payee or other",
                "say whose records the row comes from")
        if len(problems) > before:
            continue
        out.append({"payer": payer, "payee": payee, "financial_year": year,
                    "cofog_code": cofog, "amount_pence": pence, "recorded_by": who,
                    "reference": v.get("reference") or None, "source_row": row.line_no})
    if problems:
        raise Rejected(source, problems)
    if not out:
        raise Rejected(source, [Problem("file", "the file has no transfers",
                                        "supply one row per transfer")])
    frame = pd.DataFrame(out, columns=COLUMNS)
    frame["amount_pence"] = frame["amount_pence"].astype("int64")
    return frame
