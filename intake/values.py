"""Strict parsing of the values a user's file holds: money, financial years, codes, COFOG.

Every parser takes the text of one cell and either returns the canonical value or raises
:class:`BadValue` with a ``reason`` (what is wrong with it) and a ``fix`` (what to write
instead). Callers know the row, field and value, so they turn it into a
:class:`~domain.errors.Problem` with :meth:`BadValue.problem`.

Money is exact: amounts are parsed with :class:`decimal.Decimal` and returned as integer pence,
never through a float. Nothing here guesses: an amount a spreadsheet has mangled (scientific
notation, a misplaced thousands separator) is refused, not repaired.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

from domain.errors import Problem

__all__ = [
    "AMOUNT_UNITS",
    "MAX_AMOUNT_PENCE",
    "BadValue",
    "parse_amount",
    "parse_code",
    "parse_cofog",
    "parse_financial_year",
]


class BadValue(ValueError):
    """A cell's text cannot be read as the value its column holds.

    ``reason`` says what is wrong with the text, ``fix`` what the user should write instead.
    """

    def __init__(self, reason: str, fix: str) -> None:
        self.reason = reason
        self.fix = fix
        super().__init__(f"{reason}. Fix: {fix}")

    def problem(
        self,
        *,
        where: str,
        field: str | None = None,
        value: str | None = None,
        row: int | None = None,
        feature: int | None = None,
    ) -> Problem:
        """Turn this into a :class:`~domain.errors.Problem` naming where it was found."""
        return Problem(
            where=where,
            reason=self.reason,
            fix=self.fix,
            field=field,
            value=value,
            row=row,
            feature=feature,
        )


# --------------------------------------------------------------------------- money

#: Pence in one of each unit an amount column may be written in.
AMOUNT_UNITS: dict[str, int] = {"pounds": 100, "thousands": 100_000, "pence": 1}

_UNIT_WORDS = {"pounds": "£", "thousands": "£ thousand", "pence": "pence"}

#: £1 trillion, in pence: more than any public body spends in a year.
MAX_AMOUNT_PENCE = 10**12 * 100

#: Whole digits beyond which a number is refused before any arithmetic (> £1tn in any unit).
_MAX_WHOLE_DIGITS = 15

_PLAIN_RE = re.compile(r"^[0-9]+(?:\.[0-9]*)?$|^\.[0-9]+$")
_GROUPED_RE = re.compile(r"^[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?$")
_SCIENTIFIC_RE = re.compile(r"^[0-9.,]*[0-9][eE][+-]?[0-9]+$")
_NOT_FINITE = frozenset({"nan", "-nan", "+nan", "inf", "-inf", "+inf", "infinity",
                         "-infinity", "+infinity", "#num!", "#value!", "#div/0!"})
_OTHER_CURRENCIES = {
    "$": "dollars ($)",
    "€": "euros (€)",
    "¥": "yen (¥)",
    "US$": "US dollars",
    "USD": "US dollars",
    "EUR": "euros",
}
#: Characters that count as a minus sign: hyphen-minus, the Unicode minus, and a dash that
#: word processors substitute for it.
_MINUS = ("-", "\u2212", "\u2013")
_SPACES = " \t\u00a0\u2007\u202f"


def _amount_fix(unit: str) -> str:
    if unit == "pence":
        return "write the amount as a whole number of pence, e.g. 123450 or -120"
    if unit == "thousands":
        return ("write the amount as a plain number in £ thousand, e.g. 1234.5 or -120"
                " (at most 5 decimals: whole pence)")
    return "write the amount as a plain number of pounds, e.g. 1234.50, £1,234.50 or -120"


def parse_amount(text: str, unit: str = "pounds") -> int:
    """Parse a money amount into exact integer pence (through Decimal, never a float).

    ``unit`` is what the column counts: ``"pounds"``, ``"thousands"`` (£000, as Revenue Outturn
    publishes) or ``"pence"``. Accepted: ``1234.5``, ``£1,234.50``, `` 1,234 ``, ``-120``,
    ``−120`` (Unicode minus), ``(120.00)`` and ``£(1,234)`` (accounting negatives). Refused
    with :class:`BadValue`: blank, NaN/Infinity, scientific notation, fractions of a penny,
    misplaced thousands separators, other currencies, more than £1 trillion, and any other text.
    """
    if unit not in AMOUNT_UNITS:
        raise ValueError(f"unknown amount unit {unit!r}: use one of {', '.join(AMOUNT_UNITS)}")
    fix = _amount_fix(unit)
    s = text.strip(_SPACES) if isinstance(text, str) else ""
    if not isinstance(text, str):
        raise BadValue(f"amount is {type(text).__name__}, not text", fix)
    if not s:
        raise BadValue("amount is blank", fix + "; write 0 where nothing was spent")
    if s.lower() in _NOT_FINITE:
        raise BadValue(f"amount {s!r} is not a finite number", fix)
    negative = False
    body = s
    if body.startswith("(") and body.endswith(")"):
        negative, body = True, body[1:-1].strip(_SPACES)
    if body.startswith("£"):
        body = body[1:].strip(_SPACES)
        if body.startswith("(") and body.endswith(")"):
            if negative:
                raise BadValue(f"amount {s!r} has two sets of brackets", fix)
            negative, body = True, body[1:-1].strip(_SPACES)
    if body.startswith(_MINUS) or body.startswith("+"):
        if negative:
            raise BadValue(f"amount {s!r} is both bracketed and signed", fix)
        negative, body = body[0] != "+", body[1:].strip(_SPACES)
    if body.startswith("£"):  # -£120
        body = body[1:].strip(_SPACES)
    for symbol, name in _OTHER_CURRENCIES.items():
        if symbol in s.upper():
            raise BadValue(
                f"amount {s!r} is in {name}, not pounds sterling",
                "convert it to pounds and write it without another currency's symbol",
            )
    if "£" in body:
        raise BadValue(f"amount {s!r} has a £ sign in the wrong place", fix)
    if _SCIENTIFIC_RE.match(body):
        raise BadValue(
            f"amount {s!r} is in scientific notation, which spreadsheets write when digits"
            " have already been lost",
            "format the column as a number (not General) in the spreadsheet, check the"
            " figures against the source, and export again",
        )
    if "," in body and not _GROUPED_RE.match(body):
        raise BadValue(
            f"amount {s!r} has thousands separators in the wrong places",
            "group digits in threes (1,234,567.89) or leave the separators out",
        )
    digits = body.replace(",", "")
    if any(c in _SPACES for c in digits) and _PLAIN_RE.match(
        "".join(c for c in digits if c not in _SPACES)
    ):
        raise BadValue(
            f"amount {s!r} has spaces inside the number",
            "write the digits together, with commas or nothing between the thousands",
        )
    if not _PLAIN_RE.match(digits):
        raise BadValue(f"amount {s!r} is not a number", fix)
    whole = digits.split(".", 1)[0].lstrip("0")
    if len(whole) > _MAX_WHOLE_DIGITS:
        raise BadValue(
            f"amount {s!r} has {len(whole)} digits before the point: more than £1 trillion,"
            " more than any public body spends in a year",
            "check the column's unit and that two cells were not run together",
        )
    try:
        value = Decimal(digits) * AMOUNT_UNITS[unit]
    except InvalidOperation:  # pragma: no cover - the regular expressions admit only numbers
        raise BadValue(f"amount {s!r} is not a number", fix) from None
    if value != value.to_integral_value():
        raise BadValue(
            f"amount {s!r} ({_UNIT_WORDS[unit]}) is not a whole number of pence",
            "round the amount to whole pence"
            + (" (at most 5 decimals in £ thousand)" if unit == "thousands" else
               "" if unit == "pence" else " (at most 2 decimals)"),
        )
    pence = int(value)
    if pence > MAX_AMOUNT_PENCE:
        raise BadValue(
            f"amount {s!r} ({_UNIT_WORDS[unit]}) is more than £1 trillion, more than any"
            " public body spends in a year",
            "check the column's unit (pounds, £ thousand or pence) and the figure",
        )
    return -pence if negative else pence


# --------------------------------------------------------------------------- years

_YEAR_FIX = "write it as 2014-15"
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2212"
_YEAR_RE = re.compile(r"^(?:FY\s*)?([0-9]+)\s*[-/]\s*([0-9]+)$", re.IGNORECASE)
FIRST_YEAR, LAST_YEAR = 1990, 2100


def parse_financial_year(text: str) -> str:
    """Parse a UK financial year (April to March) into the canonical form ``2014-15``.

    Accepted: ``2014-15``, ``2014/15``, ``2014-2015``, ``2014/2015``, ``FY2014-15``, ``2014–15``
    (en dash), with surrounding spaces. Refused with :class:`BadValue`: a two-digit start year
    (the century is ambiguous), an end year that is not the start plus one, a single year, three
    parts, blank, and years before 1990 or after 2100.
    """
    s = text.strip(_SPACES) if isinstance(text, str) else ""
    if not s:
        raise BadValue("financial year is blank", _YEAR_FIX)
    norm = s
    for dash in _DASHES:
        norm = norm.replace(dash, "-")
    if re.fullmatch(r"(?:FY\s*)?[0-9]{4}", norm, re.IGNORECASE):
        raise BadValue(
            f"financial year {s!r} is a single year; a financial year runs April to March"
            " across two",
            _YEAR_FIX,
        )
    if len(re.split(r"[-/]", norm)) > 2:
        raise BadValue(f"financial year {s!r} has more than two parts", _YEAR_FIX)
    match = _YEAR_RE.match(norm)
    if not match:
        raise BadValue(f"financial year {s!r} is not a year range", _YEAR_FIX)
    first, second = match.group(1), match.group(2)
    if len(first) == 2:
        raise BadValue(
            f"financial year {s!r} starts with a two-digit year: the century is ambiguous",
            _YEAR_FIX,
        )
    if len(first) != 4:
        raise BadValue(f"financial year {s!r} does not start with a 4-digit year", _YEAR_FIX)
    start = int(first)
    if not FIRST_YEAR <= start < LAST_YEAR:
        raise BadValue(
            f"financial year {s!r} is outside {FIRST_YEAR}-{LAST_YEAR}", _YEAR_FIX
        )
    if len(second) == 2:
        ok = int(second) == (start + 1) % 100
    elif len(second) == 4:
        ok = int(second) == start + 1
    else:
        ok = False
    if not ok:
        raise BadValue(
            f"financial year {s!r} does not end the year after it starts"
            f" (expected {start}-{(start + 1) % 100:02d})",
            _YEAR_FIX,
        )
    return f"{start}-{(start + 1) % 100:02d}"


# --------------------------------------------------------------------------- codes

#: Longest code accepted (ONS GSS codes are 9 characters; local codes are short too).
MAX_CODE_LENGTH = 64


def parse_code(text: str, field: str) -> str:
    """Parse an identifier (an ONS code, an E-code, a site reference): stripped, non-blank.

    Refuses with :class:`BadValue` a blank code, one holding control or invisible formatting
    characters (pasted from a web page or PDF), and one longer than 64 characters.
    """
    s = text.strip(_SPACES) if isinstance(text, str) else ""
    if not s:
        raise BadValue(f"{field} is blank", f"give every row its {field}")
    bad = [c for c in s if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    if bad:
        names = ", ".join(sorted({f"U+{ord(c):04X}" for c in bad}))
        raise BadValue(
            f"{field} {s!r} holds control or invisible characters ({names})",
            f"retype the {field}; such characters come from copying out of a web page or PDF",
        )
    if len(s) > MAX_CODE_LENGTH:
        raise BadValue(
            f"{field} is {len(s)} characters long, more than {MAX_CODE_LENGTH}",
            f"check that the column really holds the {field} and not a description",
        )
    return s


# --------------------------------------------------------------------------- COFOG

#: Groups per COFOG division (UN Classification of the Functions of Government): 69 in all.
COFOG_GROUPS: dict[str, int] = {
    "01": 8, "02": 5, "03": 6, "04": 9, "05": 6, "06": 6, "07": 6, "08": 6, "09": 8, "10": 9,
}
#: A COFOG code, optionally followed by its label as published ("10.2 Old age", "4. Economic
#: affairs"): HM Treasury's and the UN's own files write them so.
_COFOG_RE = re.compile(r"^([0-9]{1,2})(?:\.([0-9])(?:\.([0-9]))?)?\.?(?:\s+[^\d\s].*)?$", re.S)
_COFOG_FIX = ("use a COFOG division 01 to 10 or a group such as 09.1, from the UN COFOG list"
              " (boundaries/data/cofog-classification)")


def parse_cofog(text: str) -> str:
    """Parse a COFOG code into a division (``09``) or group (``09.1``).

    ``9`` becomes ``09`` and ``9.1`` becomes ``09.1``; a class such as ``10.2.0`` is kept at
    group level (``10.2``); a code followed by its label (``10.2 Old age``) is read as the
    code. Refuses with :class:`BadValue` a division outside 01-10 (``00``, ``11``), a group the
    division does not have, and anything that is not a code (``abc``).
    """
    s = text.strip(_SPACES) if isinstance(text, str) else ""
    if not s:
        raise BadValue("COFOG code is blank", _COFOG_FIX)
    match = _COFOG_RE.match(s)
    if not match:
        raise BadValue(f"COFOG code {s!r} is not a COFOG code", _COFOG_FIX)
    division = f"{int(match.group(1)):02d}"
    if division not in COFOG_GROUPS:
        raise BadValue(f"COFOG division {s!r} is not one of 01 to 10", _COFOG_FIX)
    if match.group(2) is None:
        return division
    group = int(match.group(2))
    if not 1 <= group <= COFOG_GROUPS[division]:
        raise BadValue(
            f"COFOG group {s!r} does not exist: division {division} has groups"
            f" {division}.1 to {division}.{COFOG_GROUPS[division]}",
            _COFOG_FIX,
        )
    return f"{division}.{group}"
