"""intake.values: strict parsing of amounts, financial years, codes and COFOG codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import Problem
from intake.values import (
    MAX_AMOUNT_PENCE,
    BadValue,
    parse_amount,
    parse_code,
    parse_cofog,
    parse_financial_year,
)

# --------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("text", "unit", "pence"),
    [
        ("1234.5", "pounds", 123450),
        ("1234.50", "pounds", 123450),
        ("£1,234.50", "pounds", 123450),
        (" 1,234 ", "pounds", 123400),
        ("-120", "pounds", -12000),
        ("(120.00)", "pounds", -12000),
        ("\u2212120", "pounds", -12000),
        ("£(1,234)", "pounds", -123400),
        ("(£1,234)", "pounds", -123400),
        ("-£1.01", "pounds", -101),
        ("+7", "pounds", 700),
        ("0", "pounds", 0),
        ("1,000,000,000,000", "pounds", MAX_AMOUNT_PENCE),
        ("1234.56789", "thousands", 123456789),
        ("-0.5", "thousands", -50000),
        ("12345", "pence", 12345),
        ("\u00a01234.5\u00a0", "pounds", 123450),
    ],
)
def test_amounts_accepted(text: str, unit: str, pence: int) -> None:
    assert parse_amount(text, unit) == pence


@pytest.mark.parametrize(
    ("text", "unit", "says"),
    [
        ("", "pounds", "blank"),
        ("   ", "pounds", "blank"),
        ("NaN", "pounds", "not a finite number"),
        ("nan", "pounds", "not a finite number"),
        ("Infinity", "pounds", "not a finite number"),
        ("inf", "pounds", "not a finite number"),
        ("-inf", "thousands", "not a finite number"),
        ("#VALUE!", "pounds", "not a finite number"),
        ("1.2e3", "pounds", "scientific notation"),
        ("1.23457E+11", "thousands", "scientific notation"),
        ("1.234", "pounds", "not a whole number of pence"),
        ("1.234567", "thousands", "not a whole number of pence"),
        ("12.5", "pence", "not a whole number of pence"),
        ("1,23,4", "pounds", "thousands separators in the wrong places"),
        ("12,34.50", "pounds", "thousands separators in the wrong places"),
        ("1234,5", "pounds", "thousands separators in the wrong places"),
        ("$12", "pounds", "dollars"),
        ("€12", "pounds", "euros"),
        ("12 EUR", "pounds", "euros"),
        ("1" * 20, "pounds", "more than £1 trillion"),
        ("1000000000000.01", "pounds", "more than £1 trillion"),
        ("1000000001", "thousands", "more than £1 trillion"),
        ("12 pounds", "pounds", "not a number"),
        ("n/a", "pounds", "not a number"),
        ("-", "pounds", "not a number"),
        ("--1", "pounds", "not a number"),
        ("1 234", "pounds", "spaces inside the number"),
        ("(-12)", "pounds", "both bracketed and signed"),
        ("12£", "pounds", "£ sign in the wrong place"),
        ("\u0661\u0662", "pounds", "not a number"),
        ("0x1F", "pounds", "not a number"),
    ],
)
def test_amounts_refused(text: str, unit: str, says: str) -> None:
    with pytest.raises(BadValue) as caught:
        parse_amount(text, unit)
    err = caught.value
    assert isinstance(err, ValueError)
    assert says in err.reason
    assert err.fix  # every refusal says what to write instead


def test_scientific_notation_fix_says_format_the_column() -> None:
    with pytest.raises(BadValue) as caught:
        parse_amount("1.2e3")
    assert "format the column as a number" in caught.value.fix


def test_unknown_unit_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown amount unit"):
        parse_amount("1", "guineas")


def test_bad_value_becomes_a_problem() -> None:
    with pytest.raises(BadValue) as caught:
        parse_amount("n/a")
    problem = caught.value.problem(where="spend.csv, line 7", field="amount", value="n/a", row=7)
    assert isinstance(problem, Problem)
    assert problem.row == 7 and problem.field == "amount" and problem.value == "n/a"
    assert "line 7" in problem.one_line() and "not a number" in problem.one_line()


pence_values = st.integers(min_value=-MAX_AMOUNT_PENCE, max_value=MAX_AMOUNT_PENCE)


def _pounds(p: int, *, sign: bool, commas: bool, accounting: bool) -> str:
    whole, frac = divmod(abs(p), 100)
    digits = f"{whole:,}" if commas else str(whole)
    body = f"{'£' if sign else ''}{digits}.{frac:02d}"
    if p < 0:
        return f"({body})" if accounting else f"-{body}"
    return body


@given(pence_values, st.booleans(), st.booleans(), st.booleans())
def test_formatted_pounds_parse_back_exactly(p: int, sign: bool, commas: bool,
                                             accounting: bool) -> None:
    assert parse_amount(_pounds(p, sign=sign, commas=commas, accounting=accounting)) == p


@given(pence_values)
def test_thousands_parse_back_exactly(p: int) -> None:
    whole, frac = divmod(abs(p), 100_000)
    text = f"{'-' if p < 0 else ''}{whole}.{frac:05d}"
    assert parse_amount(text, "thousands") == p


@given(pence_values)
def test_pence_parse_back_exactly(p: int) -> None:
    assert parse_amount(str(p), "pence") == p


# --------------------------------------------------------------------------- years


@pytest.mark.parametrize(
    "text",
    ["2014-15", "2014/15", "2014-2015", "2014/2015", "FY2014-15", "2014\u201315", " 2014-15 ",
     "fy 2014/15", "2014 - 15"],
)
def test_financial_years_accepted(text: str) -> None:
    assert parse_financial_year(text) == "2014-15"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("14-15", "two-digit year"),
        ("2015-14", "does not end the year after"),
        ("2014-16", "does not end the year after"),
        ("2014-2016", "does not end the year after"),
        ("2014", "single year"),
        ("2014-15-16", "more than two parts"),
        ("", "blank"),
        ("1989-90", "outside 1990-2100"),
        ("2100-01", "outside 1990-2100"),
        ("2014-155", "does not end the year after"),
        ("April 2014", "not a year range"),
    ],
)
def test_financial_years_refused(text: str, says: str) -> None:
    with pytest.raises(BadValue) as caught:
        parse_financial_year(text)
    assert says in caught.value.reason
    assert caught.value.fix == "write it as 2014-15"


@given(st.integers(min_value=1990, max_value=2099))
def test_financial_year_forms_are_canonical(y: int) -> None:
    canonical = f"{y}-{(y + 1) % 100:02d}"
    assert parse_financial_year(canonical) == canonical
    assert parse_financial_year(f"{y}/{y + 1}") == canonical


# --------------------------------------------------------------------------- codes


def test_codes_are_stripped() -> None:
    assert parse_code("  E05000001 ", "ward_code") == "E05000001"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "ward_code is blank"),
        ("   ", "ward_code is blank"),
        ("E0500\x000001", "control or invisible characters"),
        ("E05000001\u200b", "control or invisible characters"),
        ("E05\t000001", "control or invisible characters"),
        ("E" * 65, "more than 64"),
    ],
)
def test_codes_refused(text: str, says: str) -> None:
    with pytest.raises(BadValue) as caught:
        parse_code(text, "ward_code")
    assert says in caught.value.reason
    assert "ward_code" in caught.value.fix or "ward_code" in caught.value.reason


# --------------------------------------------------------------------------- COFOG


@pytest.mark.parametrize(
    ("text", "code"),
    [("09", "09"), ("9", "09"), ("09.1", "09.1"), ("9.1", "09.1"), ("10.2.0", "10.2"),
     (" 10 ", "10"), ("01.8", "01.8")],
)
def test_cofog_accepted(text: str, code: str) -> None:
    assert parse_cofog(text) == code


@pytest.mark.parametrize(
    ("text", "says"),
    [("11", "not one of 01 to 10"), ("00", "not one of 01 to 10"), ("abc", "not a COFOG code"),
     ("01.9", "does not exist"), ("09.0", "does not exist"), ("", "blank"),
     ("9.12", "not a COFOG code")],
)
def test_cofog_refused(text: str, says: str) -> None:
    with pytest.raises(BadValue) as caught:
        parse_cofog(text)
    assert says in caught.value.reason
    assert "COFOG list" in caught.value.fix
