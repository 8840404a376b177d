"""Spend files: Revenue Outturn (RS) returns and plain spend lines (CSV or JSON), row by row.

A reader returns :class:`SpendRead`: one row per spend line with where it was reported (an area
code, a postcode, coordinates, a site, or nothing: the body's whole area) still as text, for the
orchestrator to resolve against what is loaded. Every row at fault is a
:class:`~domain.errors.Problem`; a file with any problem is refused whole
(:class:`~domain.errors.Rejected`), so nothing of it is stored.

Two formats, told apart by their header:

- ``rs``: DCLG Revenue Outturn summary, columns ``financial_year, e_code, ons_code, authority,
  line, value_gbp_thousand``. Service lines are mapped to COFOG through the ``rs`` function
  map; the lines below TOTAL SERVICE EXPENDITURE (benefits, levies, trading accounts) are not
  service spend and are skipped, and each body-year's service lines are checked against its
  TOTAL SERVICE EXPENDITURE row.
- ``lines``: one spend line a row: ``body, financial_year, amount, function`` and optionally
  ``line`` (its own name), ``kind`` (expenditure or income), ``scheme`` (how ``function`` is
  coded: cofog, or a mapped scheme such as rs or cipfa), ``body_name``, ``body_kind``, and where
  it was reported: ``area_set`` + ``area_code``, ``postcode``, ``easting`` + ``northing``
  (EPSG:27700), ``longitude`` + ``latitude``, or ``site_id``; none of them: the whole area of
  the body. ``shares`` (optional) is the body's own estimate of where the line went: a JSON
  object of area code -> share (stored with the line, for the method hierarchy; codes of
  ``share_set``). A file that names its columns otherwise is read through ``columns`` (ours -> its
  own: ``amount`` is the column ``2014-15``), and ``constants`` give a value to every row where
  the file has no such column (``body`` = ``gla``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from domain.errors import Problem, Rejected
from domain.money import format_pounds
from intake.tables import Row, read_json_records, read_rows
from intake.values import BadValue, parse_amount, parse_cofog, parse_financial_year

#: Prefix of the RS line that the service lines must add up to.
TOTAL_SERVICE_LINE_PREFIX = "TOTAL SERVICE EXPENDITURE"

#: RS lines below TOTAL SERVICE EXPENDITURE: benefits, levies, trading accounts, adjustments.
#: They are not service spend, so they are skipped (and never reported as unknown).
NON_SERVICE_LINES: frozenset[str] = frozenset(
    {
        "Housing benefits: rent allowances - mandatory payments",
        "Housing benefits: non-HRA rent rebates - mandatory payments",
        "Housing benefits: rent rebates to HRA tenants - mandatory payments",
        "Housing benefits: subsidy limitation transfers from HRA",
        "Contribution to the HRA re items shared by the whole community",
        "Parish precepts",
        "Integrated Transport Authority levy",
        "Waste Disposal Authority levy",
        "London Pensions Fund Authority levy",
        "Other levies",
        "External Trading Accounts net surplus(-)/deficit(+)",
        "Internal Trading Accounts net surplus(-)/deficit(+)",
        "Capital items accounted for in External Trading Accounts",
        "Capital items accounted for in Internal Trading Accounts",
        "Appropriations to(+) / from(-) Accumulated Absences Account",
        "Adjustments to net current expenditure",
        "NET CURRENT EXPENDITURE(TOTAL OF LINES 699to748)",
    }
)

RS_COLUMNS = ("financial_year", "e_code", "authority", "line", "value_gbp_thousand")
LINES_COLUMNS = ("body", "financial_year", "amount", "function")

#: Output columns of :func:`read_spend`.
COLUMNS = ["body", "body_name", "body_kind", "body_code", "financial_year", "line", "function",
           "scheme", "amount_pence", "kind", "area_set", "area_code", "postcode", "easting",
           "northing", "longitude", "latitude", "site_id", "shares", "source_row"]

#: Short slugs for bodies whose full names make unwieldy property names.
BODY_SLUGS = {"greater london authority": "gla"}

_SLUG_RE = re.compile(r"[^a-z0-9]+")
_BODY_SLUG = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")


def body_slug(name: str) -> str:
    """A body's slug from its name: ``Hammersmith & Fulham`` -> ``hammersmith_and_fulham``."""
    low = name.strip().lower()
    if low in BODY_SLUGS:
        return BODY_SLUGS[low]
    return _SLUG_RE.sub("_", low.replace("&", " and ")).strip("_")


@dataclass
class SpendRead:
    """What a spend file holds, before it is checked against the store."""

    format: str
    lines: pd.DataFrame
    #: RS: per body-year, the stated TOTAL SERVICE EXPENDITURE and the sum of the lines.
    checks: list[dict] = field(default_factory=list)
    #: Rows read but not spend lines (RS lines below the service total), by reason.
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class SpendOptions:
    """How to read a spend file; every field has a sensible default."""

    #: ``auto`` (from the header), ``rs`` or ``lines``.
    format: str = "auto"
    #: Unit of ``amount`` in the lines format: pounds, thousands (£000) or pence.
    unit: str = "pounds"
    #: Boundary set of ``area_code`` where the file has no ``area_set`` column.
    area_set: str | None = None
    #: Scheme of ``function`` where the file has no ``scheme`` column.
    scheme: str = "cofog"
    #: Text encoding (None: UTF-8, with a hint naming the likely one if that fails).
    encoding: str | None = None
    #: RS: the largest difference allowed between the service lines and their stated total
    #: (DCLG rounds each figure to £1,000 on its own, so a return can be a few £1k out).
    total_tolerance_pence: int = 1_000_000
    #: Lines: which of the file's columns holds each of ours (``{"amount": "2014-15"}``).
    columns: dict[str, str] = field(default_factory=dict)
    #: Lines: a value for every row where the file has no such column (``{"body": "gla"}``).
    constants: dict[str, str] = field(default_factory=dict)


def _problem(row: Row, fld: str, value: str | None, reason: str, fix: str) -> Problem:
    return Problem(where=f"row {row.line_no}", reason=reason, fix=fix, field=fld, value=value,
                   row=row.line_no)


def _rows(path: Path, source: str, required: tuple[str, ...], encoding: str | None
          ) -> Iterable[Row]:
    if Path(source).suffix.lower() == ".json" or path.suffix.lower() == ".json":
        return read_json_records(path, source=source)
    return read_rows(path, required, encoding=encoding, source=source)


def sniff_format(header: Iterable[str]) -> str:
    """``rs`` or ``lines`` from a file's column names (case and spaces ignored)."""
    cols = {c.strip().lower() for c in header}
    if {"e_code", "value_gbp_thousand"} <= cols:
        return "rs"
    return "lines"


def read_spend(path: Path, *, source: str, options: SpendOptions,
               function_maps: dict[str, dict[str, str]]) -> SpendRead:
    """Read a spend file; Rejected with every row at fault if anything is wrong.

    ``function_maps``: scheme -> {source code -> COFOG code}, the mappings loaded so far.
    """
    fmt = options.format
    if fmt == "auto":
        fmt = _sniff_path(path, source, options.encoding)
    if fmt == "rs":
        return _read_rs(path, source, options, function_maps.get("rs", {}))
    if fmt == "lines":
        return _read_lines(path, source, options, function_maps)
    raise Rejected(source, [Problem("file", f"unknown format {fmt!r}",
                                    "use --format auto, rs or lines", field="format", value=fmt)])


def _sniff_path(path: Path, source: str, encoding: str | None) -> str:
    if Path(source).suffix.lower() == ".json":
        return "lines"
    first = next(iter(read_rows(path, (), encoding=encoding, source=source)), None)
    return "lines" if first is None else sniff_format(first.values.keys())


def _read_rs(path: Path, source: str, options: SpendOptions,
             mapping: dict[str, str]) -> SpendRead:
    problems: list[Problem] = []
    out: list[dict] = []
    seen: dict[tuple[str, str, str], int] = {}
    totals: dict[tuple[str, str], tuple[int, Row]] = {}
    sums: dict[tuple[str, str], int] = {}
    bodies: dict[str, tuple[str, str, str]] = {}
    skipped = 0
    for row in read_rows(path, RS_COLUMNS, encoding=options.encoding, source=source):
        v = row.values
        try:
            year = parse_financial_year(v["financial_year"])
        except BadValue as exc:
            problems.append(_problem(row, "financial_year", v["financial_year"], exc.reason,
                                     exc.fix))
            continue
        name, e_code, line = v["authority"], v["e_code"], v["line"]
        if not name or not e_code:
            problems.append(_problem(row, "authority" if not name else "e_code", "",
                                     "the body is not named", "give every row its authority "
                                     "and e_code"))
            continue
        slug = body_slug(name)
        bodies.setdefault(slug, (name, e_code, v.get("ons_code", "")))
        key = (slug, year, line)
        if key in seen:
            problems.append(_problem(row, "line", line, f"{name} {year} has this line twice "
                                     f"(first on row {seen[key]})",
                                     "keep one row per body, year and line"))
            continue
        seen[key] = row.line_no
        try:
            pence = parse_amount(v["value_gbp_thousand"], "thousands")
        except BadValue as exc:
            problems.append(_problem(row, "value_gbp_thousand", v["value_gbp_thousand"],
                                     exc.reason, exc.fix))
            continue
        if line.startswith(TOTAL_SERVICE_LINE_PREFIX):
            totals[(slug, year)] = (pence, row)
            continue
        if line in NON_SERVICE_LINES:
            skipped += 1
            continue
        if line not in mapping:
            problems.append(_problem(
                row, "line", line, "this RS line is not mapped to a COFOG function",
                "map it: `placespend load functions FILE --scheme rs` with a row for it, or "
                "correct its spelling"))
            continue
        sums[(slug, year)] = sums.get((slug, year), 0) + pence
        out.append({"body": slug, "body_name": name, "body_kind": _rs_kind(e_code),
                    "body_code": e_code, "financial_year": year, "line": line,
                    "function": line, "scheme": "rs", "amount_pence": pence,
                    "kind": "expenditure", "area_code": v.get("ons_code") or None,
                    "source_row": row.line_no})
    checks = []
    for key, summed in sorted(sums.items()):
        slug, year = key
        if key not in totals:
            problems.append(Problem("file", f"{bodies[slug][0]} {year} has no TOTAL SERVICE "
                                    "EXPENDITURE row to check its lines against",
                                    "keep the return's total row", field="line"))
            continue
        total, row = totals[key]
        checks.append({"body": slug, "financial_year": year, "lines_pence": summed,
                       "stated_total_pence": total, "difference_pence": summed - total})
        if abs(summed - total) > options.total_tolerance_pence:
            problems.append(_problem(
                row, "value_gbp_thousand", row.values["value_gbp_thousand"],
                f"{bodies[slug][0]} {year}: the service lines add up to {format_pounds(summed)}, "
                f"not the stated total ({format_pounds(summed - total)} apart)",
                "correct the lines or the total; DCLG rounding is allowed up to "
                f"{format_pounds(options.total_tolerance_pence)}"))
    if not problems and not out:
        problems.append(Problem("file", "the file has no service lines (only totals or lines "
                                "below TOTAL SERVICE EXPENDITURE)",
                                "supply the return's service lines"))
    if problems:
        raise Rejected(source, problems)
    frame = _frame(out)
    return SpendRead("rs", frame, checks, {"RS lines below the service total": skipped})


def _rs_kind(e_code: str) -> str:
    return "regional" if e_code == "E5100" else "council"



def _get(values: dict[str, str], *names: str) -> str:
    for n in names:
        if values.get(n):
            return values[n]
    return ""


_UNIT_COLUMNS = {"amount": None, "amount_pence": "pence", "amount_gbp": "pounds",
                 "amount_gbp_thousand": "thousands", "value_gbp_thousand": "thousands"}


def _read_lines(path: Path, source: str, options: SpendOptions,
                function_maps: dict[str, dict[str, str]]) -> SpendRead:
    problems: list[Problem] = []
    out: list[dict] = []
    wanted = {theirs.strip().lower(): ours for ours, theirs in options.columns.items()}
    constants = {k.strip().lower(): v for k, v in options.constants.items()}
    seen_header = False
    for row in _rows(path, source, (), options.encoding):
        raw = {k.strip().lower(): (val if isinstance(val, str) else str(val))
               for k, val in row.values.items()}
        if not seen_header:
            seen_header = True
            missing = sorted(t for t in wanted if t not in raw)
            if missing:
                raise Rejected(source, [Problem(
                    "file", f"no column {', '.join(map(repr, missing))} to read as "
                    f"{', '.join(wanted[m] for m in missing)}",
                    "the columns are: " + ", ".join(row.values), field="columns")])
        v = {**constants, **{wanted.get(k, k): val for k, val in raw.items()}}
        bad = len(problems)
        body = _get(v, "body").strip().lower()
        if not body:
            problems.append(_problem(row, "body", "", "no body is named",
                                     "give the body's slug (e.g. hackney) in the body column"))
        elif len(body) > 63:
            problems.append(_problem(row, "body", body, f"a body's slug is at most 63 "
                                     f"characters (this one is {len(body)})",
                                     "shorten it (e.g. ofsted), and give the full name in "
                                     "body_name"))
        elif not _BODY_SLUG.match(body):
            problems.append(_problem(row, "body", body, "a body's slug may hold only letters, "
                                     "digits and _", f"write it as {body_slug(body)!r}"))
        try:
            year = parse_financial_year(_get(v, "financial_year", "year"))
        except BadValue as exc:
            problems.append(_problem(row, "financial_year", _get(v, "financial_year", "year"),
                                     exc.reason, exc.fix))
            year = ""
        amount_col = next((c for c in _UNIT_COLUMNS if c in v), None)
        pence = 0
        if amount_col is None:
            problems.append(_problem(row, "amount", None, "the row has no amount",
                                     "add an amount column (pounds; or amount_pence)"))
        else:
            unit = _UNIT_COLUMNS[amount_col] or options.unit
            try:
                pence = parse_amount(v[amount_col], unit)
            except BadValue as exc:
                problems.append(_problem(row, amount_col, v[amount_col], exc.reason, exc.fix))
        scheme = _get(v, "scheme") or options.scheme
        function = _get(v, "function", "cofog", "cofog_code")
        cofog = None
        if not function:
            problems.append(_problem(row, "function", "", "the row has no function",
                                     "give a COFOG code (e.g. 09) or a mapped code with its "
                                     "scheme"))
        elif scheme == "cofog":
            try:
                cofog = parse_cofog(function)
            except BadValue as exc:
                problems.append(_problem(row, "function", function, exc.reason, exc.fix))
        elif scheme not in function_maps:
            problems.append(_problem(row, "scheme", scheme, f"no function map {scheme!r} is "
                                     "loaded", "load it: `placespend load functions FILE "
                                     f"--scheme {scheme}`, or give COFOG codes"))
        elif function not in function_maps[scheme]:
            problems.append(_problem(row, "function", function,
                                     f"this {scheme} code is not mapped to a COFOG function",
                                     f"add it to the {scheme} function map, or correct it"))
        kind = (_get(v, "kind", "type") or "expenditure").lower()
        if kind not in ("expenditure", "income"):
            problems.append(_problem(row, "kind", kind, "kind must be expenditure or income",
                                     "write expenditure or income (income is kept apart, "
                                     "never netted)"))
        located = _location(row, v, options, problems)
        shares = _shares(row, v.get("shares", ""), problems)
        if len(problems) > bad:
            continue
        out.append({"body": body.strip().lower(), "body_name": _get(v, "body_name") or None,
                    "body_kind": _get(v, "body_kind") or None, "body_code": None,
                    "financial_year": year, "line": _get(v, "line", "description") or function,
                    "function": cofog if scheme == "cofog" else function, "scheme": scheme,
                    "amount_pence": pence, "kind": kind, "source_row": row.line_no,
                    "shares": shares, **located})
    if problems:
        raise Rejected(source, problems)
    if not out:
        raise Rejected(source, [Problem("file", "the file has no spend lines",
                                        "supply one row per spend line")])
    return SpendRead("lines", _frame(out))


def _location(row: Row, v: dict[str, str], options: SpendOptions,
              problems: list[Problem]) -> dict:
    """Where a plain spend line was reported, as given (resolved later against the store)."""
    given = {k: v.get(k, "") for k in ("area_code", "postcode", "easting", "northing",
                                        "longitude", "latitude", "site_id")}
    kinds = [k for k, names in (("area", ("area_code",)), ("postcode", ("postcode",)),
                                ("bng", ("easting", "northing")),
                                ("lonlat", ("longitude", "latitude")), ("site", ("site_id",)))
             if any(given[n] for n in names)]
    if len(kinds) > 1:
        problems.append(_problem(row, "location", ", ".join(kinds),
                                 "the row gives more than one location",
                                 "give one of area_code, postcode, coordinates or site_id"))
        return {}
    out: dict[str, object] = {}
    if kinds == ["area"]:
        area_set = v.get("area_set") or options.area_set
        if not area_set:
            problems.append(_problem(row, "area_set", "", "an area code needs its boundary set",
                                     "add an area_set column, or pass --area-set SET"))
        out.update(area_set=area_set, area_code=given["area_code"].strip())
    elif kinds == ["postcode"]:
        out["postcode"] = given["postcode"]
    elif kinds in (["bng"], ["lonlat"]):
        a, b = ("easting", "northing") if kinds == ["bng"] else ("longitude", "latitude")
        for name in (a, b):
            try:
                out[name] = float(given[name])
            except ValueError:
                out[name] = float("nan")
            if not math.isfinite(out[name]):
                problems.append(_problem(row, name, given[name], "not a number",
                                         "write coordinates as plain numbers"))
                return {}
    elif kinds == ["site"]:
        out["site_id"] = given["site_id"].strip()
    return out


def _shares(row: Row, text: str, problems: list[Problem]) -> dict[str, float] | None:
    """Agency-supplied shares, or None when not given.

    A JSON object of area code -> share of the line (0 to 1, adding to at most 1), e.g.
    ``{"E05009367": 0.25, "E05009368": 0.75}``.
    """
    if not text or not text.strip():
        return None
    fix = ('write a JSON object of area code to share, e.g. {"E05009367": 0.25, '
           '"E05009368": 0.75}, with shares from 0 to 1 adding to at most 1')
    try:
        shares = json.loads(text)
    except ValueError:
        problems.append(_problem(row, "shares", text, "not JSON", fix))
        return None
    ok = isinstance(shares, dict) and shares and all(
        isinstance(k, str) and k.strip() and isinstance(v, int | float)
        and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
        for k, v in shares.items())
    if not ok:
        problems.append(_problem(row, "shares", text, "not an object of codes to shares "
                                 "from 0 to 1", fix))
        return None
    if sum(shares.values()) > 1 + 1e-9:
        problems.append(_problem(row, "shares", text, f"the shares add up to "
                                 f"{sum(shares.values()):g}, more than the whole line", fix))
        return None
    return {k.strip(): float(v) for k, v in shares.items()}


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["amount_pence"] = frame["amount_pence"].astype("int64")
    frame["source_row"] = frame["source_row"].astype("int64")
    return frame.astype({c: object for c in COLUMNS if c not in ("amount_pence", "source_row",
                                                                 "easting", "northing",
                                                                 "longitude", "latitude")})
