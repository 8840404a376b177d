"""Themes in the pure core: hand-computed pence, and the invariants (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.money import split_pence
from allocation.themes import line_shares, theme_pence
from domain.errors import InputError

#: Three lines of two bodies: a health line, a schools line, a pensions line.
LINES = pd.DataFrame({
    "line_id": [1, 2, 3],
    "body": ["hackney", "hackney", "dwp"],
    "line": ["Public health", "Primary schools", "State pension"],
    "cofog_code": ["07", "09", "10"],
    "source_code": [None, None, "10.2"],
})
#: Line 1 (1,000p) over atoms 11 and 12 (600p, 400p); line 2 (-500p) over 11 and 12; line 3
#: (999p) wholly in atom 12.
SPREAD = pd.DataFrame({
    "line_id": [1, 1, 2, 2, 3],
    "atom_id": [11, 12, 11, 12, 12],
    "amount_pence": [600, 400, -250, -250, 999],
})
RULES = pd.DataFrame({
    "theme": ["older", "older", "children", "children"],
    "body": ["*", "dwp", "*", "*"],
    "line": ["07", "10.2", "09", "Public health"],
    "share": [0.25, 1.0, 1.0, 1.0],
    "share_proxy": [None, None, None, "share-0-15"],
})
#: Residents aged 0-15 over all residents in each atom.
FRACTIONS = pd.DataFrame({"atom_id": [11, 12], "share_proxy": ["share-0-15"] * 2,
                          "fraction": [0.5, 0.1]})


def _by(frame: pd.DataFrame) -> dict:
    return {(r.theme, r.line_id, r.atom_id): r.amount_pence for r in frame.itertuples()}


def test_hand_computed_theme_pence() -> None:
    shares = line_shares(LINES, RULES)
    got = _by(theme_pence(SPREAD, shares, FRACTIONS))
    assert got == {
        # older people: a quarter of the health line (250p: 150 + 100), all of the pension
        ("older", 1, 11): 150, ("older", 1, 12): 100, ("older", 3, 12): 999,
        # children: all of the schools line (a refund, -500p); the health line by the share of
        # residents aged 0-15 where it is spent: 600 x 0.5 + 400 x 0.1 = 340p
        ("children", 1, 11): 300, ("children", 1, 12): 40,
        ("children", 2, 11): -250, ("children", 2, 12): -250,
    }


def test_a_line_in_two_themes_counts_in_each_and_once_in_the_whole() -> None:
    pence = theme_pence(SPREAD, line_shares(LINES, RULES), FRACTIONS)
    per_theme = pence.groupby("theme")["amount_pence"].sum().to_dict()
    assert per_theme == {"older": 1249, "children": -160}
    # line 1 is in both themes (250p + 340p of its 1,000p): each theme has its part, and the
    # run's whole still counts the line once, at 1,000p (a theme is a view, never added)
    line_1 = pence[pence["line_id"] == 1].groupby("theme")["amount_pence"].sum().to_dict()
    assert line_1 == {"older": 250, "children": 340}
    assert SPREAD["amount_pence"].sum() == 1000 - 500 + 999


def test_the_most_specific_rule_wins_and_unnamed_lines_are_out() -> None:
    rules = pd.DataFrame({"theme": ["t", "t"], "body": ["*", "hackney"],
                          "line": ["*", "Primary schools"], "share": [0.5, 0.0]})
    shares = line_shares(LINES, rules).set_index("line_id")["share"].to_dict()
    assert shares == {1: 0.5, 3: 0.5}  # line 2: its own rule (share 0) wins over '*'
    none = pd.DataFrame({"theme": ["t"], "line": ["Libraries"], "share": [1.0]})
    assert line_shares(LINES, none).empty


def test_a_share_outside_0_to_1_is_refused_naming_the_row() -> None:
    bad = RULES.assign(share=[0.25, 1.5, 1.0, 1.0])
    with pytest.raises(InputError) as caught:
        line_shares(LINES, bad)
    assert caught.value.where == "row 3"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-10**9, 10**9), st.lists(
    st.floats(0.001, 1e6), min_size=1, max_size=6)), min_size=1, max_size=8),
       st.floats(0.0, 1.0), st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6))
def test_theme_pence_are_exact_and_within_a_penny(lines, share, fractions) -> None:
    rows = []
    for i, (total, weights) in enumerate(lines):
        group = np.zeros(len(weights), dtype=np.intp)
        parts = split_pence(np.array([total]), group, np.array(weights))
        rows += [(i, a, int(p)) for a, p in enumerate(parts)]
    spread = pd.DataFrame(rows, columns=["line_id", "atom_id", "amount_pence"])
    shares = pd.DataFrame({"theme": "t", "line_id": range(len(lines)), "share": share,
                           "share_proxy": "p", "rule": 0})
    frac = pd.DataFrame({"atom_id": range(6), "share_proxy": "p", "fraction": fractions})
    got = theme_pence(spread, shares, frac)
    merged = spread.merge(got, on=["line_id", "atom_id"], how="left", suffixes=("", "_t"))
    merged["amount_pence_t"] = merged["amount_pence_t"].fillna(0).astype(np.int64)
    exact = merged["amount_pence"] * share * merged["atom_id"].map(dict(enumerate(fractions)))
    # each atom within a penny of its part of the rounded total, which is itself within half a
    # penny of the exact value: within a penny and a half of the exact part
    assert ((merged["amount_pence_t"] - exact).abs() < 1.5 + 1e-6).all()
    for _, g in merged.groupby("line_id"):
        value = float((g["amount_pence"] * share * g["atom_id"].map(
            dict(enumerate(fractions)))).sum())
        assert int(g["amount_pence_t"].sum()) == int(np.sign(value) * np.floor(abs(value) + 0.5))
        # never more than the line, never the other sign
        assert (g["amount_pence_t"].abs() <= g["amount_pence"].abs()).all()
        assert ((g["amount_pence_t"] == 0) | (np.sign(g["amount_pence_t"])
                                              == np.sign(g["amount_pence"]))).all()
