"""Read the embedded (or any user-supplied, same-shaped) data files into tidy frames.

Every reader checks what it reads and raises :class:`~domain.errors.InputError` naming the
file, the row (1-based line number in the file, header = line 1) or feature, and the fix.
Geometry is read as-is: CRS normalisation and validity repair happen later, in
``geo.prepare_boundaries``.

Money is exact: Revenue Outturn values (in £ thousand) are parsed with :class:`decimal.Decimal`
and turned into integer pence, never through a float.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import geopandas
import pandas

from boundaries.catalog import (
    DATA_DIR,
    BoundarySource,
    ProxySource,
    SpendSource,
    existing_file,
)
from domain.errors import InputError

#: Prefix of the RS line that the 13 service lines must add up to.
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

#: Pence in one £ thousand.
_PENCE_PER_THOUSAND = Decimal(100_000)
_DIVISION_RE = re.compile(r"^(0[1-9]|10)$")
_GROUP_RE = re.compile(r"^(0[1-9]|10)\.[1-9]$")
_COFOG_KEEP_RE = re.compile(r"^\d{2}(\.\d)?$")
_SPEND_COLUMNS = ("financial_year", "e_code", "line", "value_gbp_thousand")


@dataclass(frozen=True)
class _Record:
    """One CSV data row and the 1-based line number it starts on."""

    line_no: int
    values: dict[str, str]


# --------------------------------------------------------------------------- helpers


def _where(path: Path, line_no: int) -> str:
    """Name a row as ``file, line N``."""
    return f"{path.name}, line {line_no}"


def _records(path: Path, required: tuple[str, ...]) -> Iterator[_Record]:
    """Yield the data rows of a CSV file with their starting line numbers.

    Checks the header holds ``required`` and every row has as many fields as the header.
    Blank lines are skipped. Quoted fields spanning lines keep line numbers right.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise InputError(
                    f"{path.name} is empty",
                    f"supply a CSV whose first line names the columns {', '.join(required)}",
                    where=str(path),
                ) from None
            missing = [c for c in required if c not in header]
            if missing:
                raise InputError(
                    f"{path.name} has no column {', '.join(repr(c) for c in missing)}"
                    f" (found: {', '.join(header)})",
                    f"rename the header so it includes {', '.join(required)}",
                    where=_where(path, 1),
                )
            last = reader.line_num
            for row in reader:
                start, last = last + 1, reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise InputError(
                        f"{path.name} row has {len(row)} fields, the header has {len(header)}",
                        "quote any field containing a comma, and give every row every column",
                        where=_where(path, start),
                    )
                yield _Record(start, dict(zip(header, (cell.strip() for cell in row), strict=True)))
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})",
            "save the file as UTF-8 CSV",
            where=str(path),
        ) from None
    except csv.Error as exc:
        raise InputError(
            f"{path.name} is not valid CSV ({exc})",
            "check quoting: a field containing commas or quotes must be in double quotes",
            where=str(path),
        ) from None


def _no_duplicates(path: Path, key: str, seen: dict[str, int], value: str, line_no: int) -> None:
    """Raise InputError if ``value`` was already seen in column ``key``."""
    if value in seen:
        raise InputError(
            f"{key} {value!r} appears twice in {path.name} (first on line {seen[value]})",
            "keep one row per value and delete or merge the other",
            where=_where(path, line_no),
        )
    seen[value] = line_no


def _pence(text: str, path: Path, line_no: int) -> int:
    """Convert a £ thousand figure to exact integer pence (Decimal, never float)."""
    fix = "write the amount as a plain number in £ thousand, e.g. 1234.5 (at most 5 decimals)"
    if not text:
        raise InputError("amount is missing", fix, where=_where(path, line_no))
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InputError(
            f"amount {text!r} is not a number", fix, where=_where(path, line_no)
        ) from None
    if not value.is_finite():
        raise InputError(
            f"amount {text!r} is not a finite number", fix, where=_where(path, line_no)
        )
    pence = value * _PENCE_PER_THOUSAND
    if pence != pence.to_integral_value():
        raise InputError(
            f"amount {text!r} (£ thousand) has more than 2 decimals of pounds",
            "round the amount to whole pence (at most 5 decimals in £ thousand)",
            where=_where(path, line_no),
        )
    return int(pence)


def _pounds(pence: int) -> str:
    """Render pence as £ with thousands separators, for messages."""
    sign = "-" if pence < 0 else ""
    whole, rest = divmod(abs(pence), 100)
    return f"{sign}£{whole:,}.{rest:02d}"


# --------------------------------------------------------------------------- boundaries


def read_boundaries(src: BoundarySource, base: Path = DATA_DIR) -> geopandas.GeoDataFrame:
    """Read a boundary file's raw features with all their source fields.

    Raises InputError if the file is missing or unreadable, has no features, or lacks
    ``src.code_field`` / ``src.name_field`` / ``src.parent_field``. Codes, geometry, CRS and
    validity are checked by ``geo.prepare_boundaries``, which every boundary set goes through.
    """
    path = existing_file(base, src.path)
    try:
        frame = geopandas.read_file(path, engine="pyogrio")
    except (RuntimeError, ValueError, OSError) as exc:
        raise InputError(
            f"cannot read boundary file {path.name} for {src.slug!r}: {exc}",
            "supply a GeoJSON, GeoPackage or zipped Shapefile that GDAL can open",
            where=str(path),
        ) from None
    if len(frame) == 0:
        raise InputError(
            f"boundary file {path.name} for {src.slug!r} has no features",
            "supply a file with at least one polygon",
            where=str(path),
        )
    wanted = [src.code_field, src.name_field]
    if src.parent_field is not None:
        wanted.append(src.parent_field)
    missing = [f for f in wanted if f not in frame.columns]
    if missing:
        found = ", ".join(str(c) for c in frame.columns if c != frame.geometry.name)
        raise InputError(
            f"boundary file {path.name} has no field {', '.join(repr(m) for m in missing)}"
            f" (found: {found})",
            f"rename the field in the file, or set the field names for {src.slug!r}",
            where=str(path),
        )
    return frame


# --------------------------------------------------------------------------- proxies


def read_proxy(src: ProxySource, base: Path = DATA_DIR) -> pandas.DataFrame:
    """Read one proxy as columns ``unit_code`` (str) and ``value`` (float64, >= 0).

    Raises InputError naming the line for a missing code, a missing, non-numeric, infinite or
    negative value, or a code that appears twice.
    """
    path = existing_file(base, src.path)
    codes: list[str] = []
    values: list[float] = []
    seen: dict[str, int] = {}
    for rec in _records(path, (src.code_field, src.value_field)):
        code, text = rec.values[src.code_field], rec.values[src.value_field]
        if not code:
            raise InputError(
                f"{src.code_field} is missing",
                "give every row a unit code",
                where=_where(path, rec.line_no),
            )
        _no_duplicates(path, src.code_field, seen, code, rec.line_no)
        fix = f"put a number of zero or more in {src.value_field}"
        if not text:
            raise InputError(
                f"{src.value_field} is missing for {code}", fix, where=_where(path, rec.line_no)
            )
        try:
            value = float(text)
        except ValueError:
            raise InputError(
                f"{src.value_field} {text!r} for {code} is not a number",
                fix,
                where=_where(path, rec.line_no),
            ) from None
        if not math.isfinite(value) or value < 0:
            raise InputError(
                f"{src.value_field} {text!r} for {code} is negative or not finite",
                fix,
                where=_where(path, rec.line_no),
            )
        codes.append(code)
        values.append(value)
    if not codes:
        raise InputError(
            f"{path.name} has no data rows", "supply one row per unit", where=str(path)
        )
    return pandas.DataFrame(
        {
            "unit_code": pandas.Series(codes, dtype=str),
            "value": pandas.Series(values, dtype="float64"),
        }
    )


# --------------------------------------------------------------------------- spend


def read_spend(
    src: SpendSource,
    base: Path = DATA_DIR,
    *,
    mapping: pandas.DataFrame,
    total_tolerance_pence: int = 0,
) -> pandas.DataFrame:
    """Read the RS service lines of each body and year in ``src``, one row each.

    ``mapping`` is :func:`read_rs_cofog_mapping`'s frame; its lines are the service lines.
    Columns: ``body``, ``financial_year``, ``line``, ``cofog_code`` (2-digit division),
    ``amount_pence`` (int64, exact), ``area_set``, ``area_code``, ``source_row`` (1-based).

    Per body and year the service lines must add up to the file's TOTAL SERVICE EXPENDITURE
    line exactly, unless ``total_tolerance_pence`` allows a difference (DCLG rounds every
    figure to £1,000 on its own, so a few councils are £1k out; Hackney and the GLA are exact).
    Raises InputError for an unknown line, a bad amount, a duplicate, a missing line, or a
    total that does not match.
    """
    if not {"line", "cofog_division"} <= set(mapping.columns):
        raise InputError(
            "the RS-to-COFOG mapping has no 'line' or 'cofog_division' column",
            "pass the frame returned by read_rs_cofog_mapping",
        )
    division = {
        str(k): str(v) for k, v in zip(mapping["line"], mapping["cofog_division"], strict=True)
    }
    path = existing_file(base, src.path)
    wanted = {(b.e_code, y): b for b in src.bodies for y in src.years}
    found: dict[tuple[str, str], dict[str, _Record]] = {key: {} for key in wanted}
    for rec in _records(path, _SPEND_COLUMNS):
        key = (rec.values["e_code"], rec.values["financial_year"])
        if key not in wanted:
            continue
        line = rec.values["line"]
        if line in found[key]:
            raise InputError(
                f"line {line!r} appears twice for {wanted[key].slug} {key[1]}"
                f" (first on line {found[key][line].line_no})",
                "keep one row per body, year and line",
                where=_where(path, rec.line_no),
            )
        if not (
            line in division
            or line in NON_SERVICE_LINES
            or line.startswith(TOTAL_SERVICE_LINE_PREFIX)
        ):
            raise InputError(
                f"RS line {line!r} for {wanted[key].slug} {key[1]} is neither a mapped service"
                " line nor a known non-service line",
                "add it to boundaries/data/rs_line_cofog.csv with its COFOG division,"
                " or correct its spelling",
                where=_where(path, rec.line_no),
            )
        ons = rec.values.get("ons_code", "")
        if ons and ons != wanted[key].area_code:
            raise InputError(
                f"row for {wanted[key].slug} ({key[0]}) carries ONS code {ons},"
                f" not the expected {wanted[key].area_code}",
                "check the body's e_code and area_code in the catalogue",
                where=_where(path, rec.line_no),
            )
        found[key][line] = rec
    rows: list[dict[str, object]] = []
    for (e_code, year), body in wanted.items():
        rows.extend(
            _body_year_rows(
                path,
                body.slug,
                year,
                found[(e_code, year)],
                division,
                total_tolerance_pence,
                body.area_set,
                body.area_code,
            )
        )
    frame = pandas.DataFrame(
        rows,
        columns=[
            "body",
            "financial_year",
            "line",
            "cofog_code",
            "amount_pence",
            "area_set",
            "area_code",
            "source_row",
        ],
    )
    frame["amount_pence"] = frame["amount_pence"].astype("int64")
    frame["source_row"] = frame["source_row"].astype("int64")
    return frame


def _body_year_rows(
    path: Path,
    body: str,
    year: str,
    lines: dict[str, _Record],
    division: dict[str, str],
    tolerance: int,
    area_set: str,
    area_code: str,
) -> list[dict[str, object]]:
    """Turn one body-year's records into output rows and check them against the total."""
    if not lines:
        raise InputError(
            f"{path.name} has no rows for {body} in {year}",
            "check the body's e_code and the years in the catalogue, or supply that year",
            where=str(path),
        )
    missing = [line for line in division if line not in lines]
    if missing:
        raise InputError(
            f"{body} {year} has no row for service line(s) {', '.join(map(repr, missing))}",
            "add the missing rows (use 0 where the body spent nothing)",
            where=str(path),
        )
    totals = [r for line, r in lines.items() if line.startswith(TOTAL_SERVICE_LINE_PREFIX)]
    if len(totals) != 1:
        raise InputError(
            f"{body} {year} has {len(totals)} TOTAL SERVICE EXPENDITURE rows, expected 1",
            "keep exactly one TOTAL SERVICE EXPENDITURE row per body and year",
            where=str(path),
        )
    for line, rec in lines.items():  # validate every amount of the body-year, skipped or not
        if line not in division:
            _pence(rec.values["value_gbp_thousand"], path, rec.line_no)
    out: list[dict[str, object]] = []
    summed = 0
    for line in division:
        rec = lines[line]
        pence = _pence(rec.values["value_gbp_thousand"], path, rec.line_no)
        summed += pence
        out.append(
            {
                "body": body,
                "financial_year": year,
                "line": line,
                "cofog_code": division[line],
                "amount_pence": pence,
                "area_set": area_set,
                "area_code": area_code,
                "source_row": rec.line_no,
            }
        )
    total_rec = totals[0]
    total = _pence(total_rec.values["value_gbp_thousand"], path, total_rec.line_no)
    if abs(summed - total) > tolerance:
        raise InputError(
            f"{body} {year}: the {len(out)} service lines add up to {_pounds(summed)}"
            f" but TOTAL SERVICE EXPENDITURE says {_pounds(total)}"
            f" (difference {_pounds(summed - total)})",
            "correct the file; if the gap is only DCLG's £1k rounding,"
            " pass total_tolerance_pence=100000 to read_spend",
            where=_where(path, total_rec.line_no),
        )
    return out


# --------------------------------------------------------------------------- tables


def read_rs_cofog_mapping(path: Path) -> pandas.DataFrame:
    """Read the RS-line-to-COFOG mapping: ``line, cofog_division, cofog_group, rationale``.

    ``cofog_group`` is ``None`` where a line spans several groups. Raises InputError naming the
    line for a repeated RS line, a division that is not "01".."10", a group not inside its
    division, or a missing rationale.
    """
    path = existing_file(Path(path).parent, Path(path).name)
    columns = ("line", "cofog_division", "cofog_group", "rationale")
    rows: list[dict[str, str | None]] = []
    seen: dict[str, int] = {}
    for rec in _records(path, columns):
        v = rec.values
        where = _where(path, rec.line_no)
        if not v["line"]:
            raise InputError("RS line name is missing", "name the RS line", where=where)
        _no_duplicates(path, "line", seen, v["line"], rec.line_no)
        if not _DIVISION_RE.match(v["cofog_division"]):
            raise InputError(
                f"COFOG division {v['cofog_division']!r} for {v['line']!r} is not '01'..'10'",
                "write the 2-digit division with its leading zero, e.g. 09",
                where=where,
            )
        group = v["cofog_group"] or None
        if group is not None and not (
            _GROUP_RE.match(group) and group.startswith(v["cofog_division"] + ".")
        ):
            raise InputError(
                f"COFOG group {group!r} for {v['line']!r} is not a group of division"
                f" {v['cofog_division']}",
                "write the group as division.digit (e.g. 04.5), or leave it empty",
                where=where,
            )
        if not v["rationale"]:
            raise InputError(
                f"no rationale for {v['line']!r}",
                "explain in one sentence why the line belongs to that division",
                where=where,
            )
        rows.append(
            {
                "line": v["line"],
                "cofog_division": v["cofog_division"],
                "cofog_group": group,
                "rationale": v["rationale"],
            }
        )
    if not rows:
        raise InputError(
            f"{path.name} has no data rows", "map at least one RS line", where=str(path)
        )
    return pandas.DataFrame(rows, columns=list(columns)).astype(
        {"line": str, "cofog_division": str, "rationale": str}
    )


def read_cofog(path: Path) -> pandas.DataFrame:
    """Read the UN COFOG list as ``code, description``: the 10 divisions and 69 groups.

    Classes (e.g. 10.2.0) are dropped. The file's ExplanatoryNote field spans several lines
    inside quotes, so it is parsed with a real CSV parser.
    """
    path = existing_file(Path(path).parent, Path(path).name)
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


def read_proxy_table(path: Path) -> pandas.DataFrame:
    """Read the default proxy per RS line: ``line, proxy, rationale``.

    Exactly one row must have line ``*`` (the proxy for every line not listed). Raises
    InputError naming the line for a repeated line, a missing proxy or a missing rationale.
    """
    path = existing_file(Path(path).parent, Path(path).name)
    columns = ("line", "proxy", "rationale")
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for rec in _records(path, columns):
        v = rec.values
        where = _where(path, rec.line_no)
        if not v["line"]:
            raise InputError(
                "RS line name is missing", "name the line, or '*' for all others", where=where
            )
        _no_duplicates(path, "line", seen, v["line"], rec.line_no)
        if not v["proxy"]:
            raise InputError(
                f"no proxy for {v['line']!r}", "name a proxy slug, e.g. residents-all", where=where
            )
        if not v["rationale"]:
            raise InputError(
                f"no rationale for {v['line']!r}",
                "explain in one sentence why that proxy fits",
                where=where,
            )
        rows.append({c: v[c] for c in columns})
    if "*" not in seen:
        raise InputError(
            f"{path.name} has no '*' row",
            "add one row with line '*' giving the proxy for every line not listed",
            where=str(path),
        )
    return pandas.DataFrame(rows, columns=list(columns)).astype(str)
