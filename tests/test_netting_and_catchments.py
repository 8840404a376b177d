"""Netting rules and catchments, pure, on hand-computed worlds (answers to the penny)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation.catchment import catchment_weights
from allocation.netting import apply_rules
from domain.errors import Rejected
from intake.reference import NETTING_COLUMNS, read_netting_rules


def _lines(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["line_id", "dataset", "body", "cofog_code", "source_code",
                                       "amount_pence"])


def _rules(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c, "*" if c.endswith(("function",)) else "") for c in
                          NETTING_COLUMNS} for r in rows], columns=list(NETTING_COLUMNS))


PART_OF = {"rule": "gp-in-nhse", "action": "part_of", "dataset": "gp", "body": "nhse",
           "function": "07", "within_dataset": "cra", "within_body": "nhse",
           "within_function": "07", "rationale": "GP payments are inside NHS England's row"}
NOT_COUNTED = {"rule": "cra-lg", "action": "not_counted", "dataset": "cra", "body": "cra_lg",
               "function": "*", "rationale": "the councils count it"}


def test_a_part_is_taken_off_its_whole_and_counted_where_it_is() -> None:
    """The docstring's example: CRA NHS England £5,000; GP lines £1,000 and £200. The GP lines
    place their £1,200; the CRA line keeps £3,800; the place's total is £5,000, once."""
    lines = _lines([(1, "cra", "nhse", "07", "07", 500_000),
                    (2, "gp", "nhse", "07", "07.2", 100_000),
                    (3, "gp", "nhse", "07", "07.2", 20_000)])
    out = apply_rules(lines, _rules([PART_OF]))
    assert out.lines["amount_pence"].tolist() == [380_000, 100_000, 20_000]
    assert out.lines["netted_pence"].tolist() == [120_000, 0, 0]
    assert "£1,200.00 netted" in out.lines["netting"].iloc[0]
    (r,) = out.report.to_dict(orient="records")
    assert (r["parts_pence"], r["netted_pence"], r["not_netted_pence"], r["lines"]) == (
        120_000, 120_000, 0, 1)


def test_a_part_is_shared_over_the_whole_s_lines_by_their_pence() -> None:
    """£100.00 of parts over wholes of £2,000 and £1,000: running-total rounding gives 6,667p
    and 3,333p (the exact shares are 6,666.67 and 3,333.33)."""
    lines = _lines([(1, "cra", "nhse", "07", "07", 200_000),
                    (2, "cra", "nhse", "07", "07", 100_000),
                    (3, "gp", "nhse", "07", "07.2", 10_000)])
    out = apply_rules(lines, _rules([PART_OF]))
    assert out.lines["netted_pence"].tolist() == [6_667, 3_333, 0]


def test_parts_larger_than_their_whole_take_it_all_and_say_what_was_not_netted() -> None:
    lines = _lines([(1, "cra", "nhse", "07", "07", 50_000),
                    (2, "gp", "nhse", "07", "07.2", 80_000)])
    out = apply_rules(lines, _rules([PART_OF]))
    assert out.lines["amount_pence"].tolist() == [0, 80_000]
    (r,) = out.report.to_dict(orient="records")
    assert (r["netted_pence"], r["not_netted_pence"]) == (50_000, 30_000)


def test_not_counted_lines_are_netted_whole_and_named() -> None:
    lines = _lines([(1, "cra", "cra_lg", "09", "09.1", 700_000),
                    (2, "cra", "dwp", "10", "10.2", 300_000),
                    (3, "main", "cra_lg", "09", "09", 5)])  # another dataset: untouched
    out = apply_rules(lines, _rules([NOT_COUNTED]))
    assert out.lines["amount_pence"].tolist() == [0, 300_000, 5]
    assert out.lines["netted_pence"].tolist() == [700_000, 0, 0]
    assert "not counted (rule cra-lg: the councils count it)" in out.lines["netting"].iloc[0]


@given(st.lists(st.tuples(st.sampled_from(["cra", "gp"]), st.sampled_from(["nhse", "cra_lg"]),
                          st.integers(-10**9, 10**9)), min_size=1, max_size=20))
def test_every_penny_is_either_netted_or_still_on_its_line(rows) -> None:
    lines = _lines([(i + 1, d, b, "07", "07", p) for i, (d, b, p) in enumerate(rows)])
    out = apply_rules(lines, _rules([NOT_COUNTED, PART_OF]))
    assert (out.lines["amount_pence"] + out.lines["netted_pence"]).tolist() == [
        p for _, _, p in rows]
    assert int(out.report["netted_pence"].sum()) == int(out.lines["netted_pence"].sum())
    positive = lines["amount_pence"] >= 0
    assert (out.lines.loc[positive, "amount_pence"] >= 0).all()  # a whole never goes below 0


def test_a_rules_table_with_faults_is_refused_naming_each_row(tmp_path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text("rule,action,dataset,body,function,within_dataset,within_body,"
                    "within_function,rationale\n"
                    "a,part_of,gp,nhse,07,,,,no whole named\n"
                    "a,drop,cra,x,*,,,,repeated name and unknown action\n"
                    "c,not_counted,cra,x,*,,,,\n")
    with pytest.raises(Rejected) as err:
        read_netting_rules(path)
    got = {(p.row, p.field) for p in err.value.problems}
    assert {(2, "within_dataset"), (2, "within_body"), (3, "rule"), (3, "action"),
            (4, "rationale")} <= got


def test_the_catchment_worked_example() -> None:
    """allocation/catchment.py: practices 2 km apart, 6,000 and 2,000 patients, an atom
    midway: P = 6,000e^-1 / (6,000e^-1 + 2,000e^-1) = 0.75 and 0.25."""
    atoms = pd.DataFrame({"atom_id": [1], "x": [1_000.0], "y": [0.0]})
    sites = pd.DataFrame({"code": ["A", "B"], "x": [0.0, 2_000.0], "y": [0.0, 0.0],
                          "size": [6_000.0, 2_000.0]})
    w = catchment_weights(atoms, sites)
    assert w["code"].tolist() == ["A", "B"]
    assert w["weight"].tolist() == pytest.approx([0.75, 0.25], abs=1e-12)


def test_a_nearer_atom_is_pulled_harder_and_far_atoms_not_at_all() -> None:
    """An atom 500 m from A and 1,500 m from B: P(A) = 6,000e^-0.5 / (6,000e^-0.5 +
    2,000e^-1.5) = 0.8908; an atom 6 km from both (beyond the 5 km reach) is served by none."""
    atoms = pd.DataFrame({"atom_id": [1, 2], "x": [500.0, 1_000.0], "y": [0.0, 6_000.0]})
    sites = pd.DataFrame({"code": ["A", "B"], "x": [0.0, 2_000.0], "y": [0.0, 0.0],
                          "size": [6_000.0, 2_000.0]})
    w = catchment_weights(atoms, sites)
    a = 6_000 * math.exp(-0.5)
    b = 2_000 * math.exp(-1.5)
    assert w.loc[w["atom_id"] == 1, "weight"].tolist() == pytest.approx([a / (a + b),
                                                                          b / (a + b)])
    assert (w["atom_id"] == 2).sum() == 0


@given(st.lists(st.tuples(st.integers(0, 8_000), st.integers(0, 8_000), st.integers(0, 9_000)),
                min_size=1, max_size=8),
       st.lists(st.tuples(st.integers(0, 8_000), st.integers(0, 8_000)), min_size=1,
                max_size=30))
def test_each_atom_s_weights_over_its_sites_add_to_one(site_rows, atom_rows) -> None:
    sites = pd.DataFrame({"code": [f"S{i}" for i in range(len(site_rows))],
                          "x": [float(x) for x, _, _ in site_rows],
                          "y": [float(y) for _, y, _ in site_rows],
                          "size": [float(s) for _, _, s in site_rows]})
    atoms = pd.DataFrame({"atom_id": np.arange(1, len(atom_rows) + 1),
                          "x": [float(x) for x, _ in atom_rows],
                          "y": [float(y) for _, y in atom_rows]})
    w = catchment_weights(atoms, sites)
    sums = w.groupby("atom_id")["weight"].sum()
    assert np.allclose(sums.to_numpy(), 1.0)
    assert (w["weight"] > 0).all()
