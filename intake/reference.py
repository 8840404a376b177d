"""Reference tables: the UN COFOG list and proxy tables (which proxy spreads which line)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas

from domain.errors import InputError, Problem, Rejected
from intake.tables import read_rows

_COFOG_KEEP_RE = re.compile(r"^\d{2}(\.\d)?$")


def read_cofog(path: Path) -> pandas.DataFrame:
    """Read the UN COFOG list as ``code, description``: the 10 divisions and 69 groups.

    Classes (e.g. 10.2.0) are dropped. The file's ExplanatoryNote field spans several lines
    inside quotes, so it is parsed with a real CSV parser.
    """
    path = Path(path)
    try:
        raw = pandas.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, pandas.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot parse COFOG list {path.name}: {exc}",
            "supply the UN COFOG CSV with columns Code and Description",
            where=str(path),
        ) from None
    if not {"Code", "Description"} <= set(raw.columns):
        raise InputError(
            f"COFOG list {path.name} has no Code or Description column",
            "supply the UN COFOG CSV with columns Code and Description",
            where=str(path),
        )
    codes = raw["Code"].str.strip()
    keep = codes.str.match(_COFOG_KEEP_RE.pattern)
    out = pandas.DataFrame(
        {"code": codes[keep], "description": raw["Description"][keep].str.strip()}
    ).reset_index(drop=True)
    if out.empty or out["code"].duplicated().any():
        raise InputError(
            f"COFOG list {path.name} has no divisions or repeats a code",
            "supply the UN COFOG CSV unchanged",
            where=str(path),
        )
    return out


def read_proxy_table(path: Path, *, source: str | None = None) -> pandas.DataFrame:
    """Read a proxy table: ``line, proxy, rationale``, the proxy that spreads each spend line.

    Columns: body (``*`` where the file has no body column: any body), line, proxy, rationale,
    catchment (optional: the site attribute that sizes each site's catchment, e.g.
    ``registered_patients``, for lines reported at a site on the *served* basis; see
    :mod:`allocation.catchment`; blank: such lines stay at their site), alternative
    (optional: another proxy whose figure each feature also shows, in its range), row (its line
    in the file). A row's ``line`` is a spend line's name, a COFOG group or
    division, or ``*`` (see :func:`allocation.apportion.choose_proxies`). Exactly one row must
    be ``*`` for any body and any line. Every row at
    fault (a repeated or blank line, a missing proxy or rationale) is named in one
    :class:`~domain.errors.Rejected`. Whether the lines and proxies exist is checked by the run
    that uses the table.
    """
    path = Path(path)
    source = source or path.name
    columns = ("line", "proxy", "rationale")
    problems: list[Problem] = []
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for row in read_rows(path, columns, source=source, problems=problems):
        v = row.values
        where = f"row {row.line_no}"
        body = (v.get("body") or "*").strip().lower()
        key = (body, v["line"])
        if not v["line"]:
            problems.append(Problem(where, "no line named", "name the spend line, or '*' for "
                                    "all others", field="line", value="", row=row.line_no))
        elif key in seen:
            problems.append(Problem(where, f"line appears twice for body {body} (first on row "
                                    f"{seen[key]})", "keep one row per body and line",
                                    field="line", value=v["line"], row=row.line_no))
        elif not v["proxy"]:
            problems.append(Problem(where, "no proxy", "name a proxy slug, e.g. residents-all",
                                    field="proxy", value="", row=row.line_no))
        elif not v["rationale"]:
            problems.append(Problem(where, "no rationale", "explain in one sentence why that "
                                    "proxy fits", field="rationale", value="", row=row.line_no))
        else:
            seen[key] = row.line_no
            rows.append({"body": body, **{c: v[c] for c in columns},
                         "catchment": (v.get("catchment") or "").strip(),
                         "alternative": (v.get("alternative") or "").strip(),
                         "row": str(row.line_no)})
    if not problems and ("*", "*") not in seen:
        problems.append(Problem("file", "there is no '*' row", "add one row with line '*' "
                                "giving the proxy for every line not listed", field="line"))
    if problems:
        raise Rejected(source, problems)
    out = pandas.DataFrame(rows, columns=["body", *columns, "catchment", "alternative", "row"]
                           ).astype(str)
    out["row"] = out["row"].astype(int)
    return out


#: What a netting rule does (see :mod:`allocation.netting`).
NETTING_ACTIONS = ("not_counted", "part_of")
#: The columns of a netting rules table.
NETTING_COLUMNS = ("rule", "action", "dataset", "body", "function", "within_dataset",
                   "within_body", "within_function", "rationale")


def read_netting_rules(path: Path, *, source: str | None = None) -> pandas.DataFrame:
    """Read a netting rules table (see :mod:`allocation.netting`), one rule a row.

    Columns: ``rule, action, dataset, body, function, within_dataset, within_body,
    within_function, rationale`` (the ``within_*`` columns only for ``part_of``; ``*`` matches
    anything). Every row at fault is named in one :class:`~domain.errors.Rejected`. Whether the
    datasets and bodies exist is checked by the run that uses the table.
    """
    path = Path(path)
    source = source or path.name
    problems: list[Problem] = []
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for row in read_rows(path, ("rule", "action", "dataset", "body", "rationale"),
                         source=source, problems=problems):
        v = {c: (row.values.get(c) or "").strip() for c in NETTING_COLUMNS}
        where = f"row {row.line_no}"

        def bad(fld: str, reason: str, fix: str, _w: str = where, _r: int = row.line_no,
                _v: dict = v) -> None:
            problems.append(Problem(_w, reason, fix, field=fld, value=_v.get(fld), row=_r))

        if not v["rule"]:
            bad("rule", "no rule name", "give each rule a short name, e.g. cra-local-government")
        elif v["rule"] in seen:
            bad("rule", f"rule appears twice (first on row {seen[v['rule']]})",
                "give each rule its own name")
        else:
            seen[v["rule"]] = row.line_no
        if v["action"] not in NETTING_ACTIONS:
            bad("action", "unknown action", "write not_counted or part_of")
        for fld in ("dataset", "body"):
            if not v[fld]:
                bad(fld, f"no {fld}", f"name the {fld} the rule acts on, or '*'")
        v["function"] = v["function"] or "*"
        if v["action"] == "part_of":
            for fld in ("within_dataset", "within_body"):
                if not v[fld]:
                    bad(fld, "a part_of rule names the lines it is part of",
                        f"give {fld} (or '*')")
            v["within_function"] = v["within_function"] or "*"
        if not v["rationale"]:
            bad("rationale", "no rationale", "say in a sentence why the money is counted once "
                "this way (the docs and the conservation report quote it)")
        if not [p for p in problems if p.row == row.line_no]:
            rows.append(v)
    if problems:
        raise Rejected(source, problems)
    return pandas.DataFrame(rows, columns=list(NETTING_COLUMNS))
