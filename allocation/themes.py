"""Themes: the part of each spend line that belongs to a cross-cutting issue, in exact pence.

A theme (older people, children and young people...) is a table of rules, chosen for each line
exactly as a proxy table's rows are (:func:`allocation.apportion.choose_rows`: the body's own
rules before any-body rules; the line's name, then its function as given, its COFOG group, its
division, then ``*``). A rule says what share of a line's pence belongs to the theme:

- ``share``: a fixed fraction (1 for a line wholly in the theme, 0.3 for part of one);
- ``share_proxy``: the fraction varies by place, as one proxy's value over the line's own
  proxy's (residents 65+ over all residents: the part of a health line spent on older people
  where they live). ``share`` then scales it (1 by default).

A line no rule names is not in the theme (an implicit ``*`` rule of share 0). A line may be in
several themes: each theme counts it, and a theme is only ever a view of a run, never added to
its totals, so the whole is counted once.

Pence: a line's theme total is its exact theme value rounded half up (``round(Σ atom pence x
share)``), split over the line's atoms by running-total rounding (:mod:`allocation.money`), so
the atoms add back to it exactly and each is within a penny of its part of that total (so
within a penny and a half of its exact part, the total's rounding shared among them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocation.apportion import choose_rows
from allocation.money import split_pence
from domain.errors import InputError

#: Columns of a theme rules table (``body``, ``share_proxy`` and ``rationale`` optional).
RULE_COLUMNS = ("theme", "body", "line", "share", "share_proxy", "rationale")


def line_shares(lines: pd.DataFrame, rules: pd.DataFrame) -> pd.DataFrame:
    """Which lines each theme takes, and how: one row per (theme, line) in the theme.

    ``lines``: line_id, line, and body, cofog_code, source_code where known. ``rules``: theme,
    line, share, and body, share_proxy where given. Returns theme, line_id, share (float),
    share_proxy (None for a fixed share) and rule (the rule's position in ``rules``).
    """
    _check_rules(rules)
    rules = rules.reset_index(drop=True)
    out = []
    for theme, table in rules.groupby("theme", sort=True):
        table = table.assign(body=table["body"] if "body" in table else "*")
        implicit = pd.DataFrame({"theme": [theme], "body": ["*"], "line": ["*"], "share": [0.0]},
                                index=[-1])
        has_star = ((table["body"].fillna("*") == "*") & (table["line"] == "*")).any()
        full = table if has_star else pd.concat([table, implicit], ignore_index=False)
        positions = choose_rows(lines, full.reset_index(drop=True))
        chosen = full.iloc[positions.to_numpy()]
        proxy = (chosen["share_proxy"] if "share_proxy" in chosen
                 else pd.Series([None] * len(chosen), index=chosen.index))
        frame = pd.DataFrame({
            "theme": theme,
            "line_id": lines["line_id"].to_numpy(),
            "share": chosen["share"].astype(float).to_numpy(),
            "share_proxy": proxy.astype(object).where(proxy.notna(), None).to_numpy(),
            "rule": chosen.index.to_numpy(),
        })
        out.append(frame[(frame["share"] > 0)])
    if not out:
        return pd.DataFrame(columns=["theme", "line_id", "share", "share_proxy", "rule"])
    return pd.concat(out, ignore_index=True)


def _check_rules(rules: pd.DataFrame) -> None:
    missing = {"theme", "line", "share"} - set(rules.columns)
    if missing:
        raise InputError(f"a theme table needs the columns {', '.join(sorted(missing))}",
                         "give theme, line, share (and body, share_proxy, rationale if wanted)")
    share = pd.to_numeric(rules["share"], errors="coerce")
    bad = ~share.between(0, 1)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"rule {i + 1} of theme {rules['theme'].iloc[i]!r} has share "
                         f"{rules['share'].iloc[i]!r}", "a share is a fraction from 0 to 1",
                         where=f"row {i + 2}")


def theme_pence(spread: pd.DataFrame, shares: pd.DataFrame,
                proxy_share: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each theme's pence of each line in each atom, exact to the penny.

    ``spread``: line_id, atom_id, amount_pence (a run's lines over its atoms). ``shares``: from
    :func:`line_shares`. ``proxy_share``: atom_id, share_proxy, fraction (0..1) for the proxies
    the rules name. Returns theme, line_id, atom_id, amount_pence, without zero rows; the pence
    of one (theme, line) add to ``round(Σ amount x share x fraction)``.
    """
    rows = spread.merge(shares, on="line_id", how="inner")
    if rows.empty:
        return pd.DataFrame({"theme": [], "line_id": [], "atom_id": [], "amount_pence": []})
    rows = rows.sort_values(["theme", "line_id", "atom_id"], kind="stable").reset_index(drop=True)
    exact = (rows["amount_pence"].to_numpy(dtype=np.int64) * rows["share"].to_numpy()
             * _fractions(rows, proxy_share))
    group = pd.factorize(pd.MultiIndex.from_frame(rows[["theme", "line_id"]]))[0].astype(np.intp)
    n = int(group.max()) + 1
    value = np.bincount(group, weights=exact, minlength=n)
    totals = (np.sign(value) * np.floor(np.abs(value) + 0.5)).astype(np.int64)  # half up
    pence = split_pence(totals, group, np.abs(exact))
    out = rows.assign(amount_pence=pence)[["theme", "line_id", "atom_id", "amount_pence"]]
    return out[out["amount_pence"] != 0].reset_index(drop=True)


def _fractions(rows: pd.DataFrame, proxy_share: pd.DataFrame | None) -> np.ndarray:
    """Each row's proxy fraction: 1 for a fixed share, else its atom's fraction (0 if none)."""
    fraction = np.ones(len(rows))
    named = rows["share_proxy"].notna().to_numpy()
    if not named.any():
        return fraction
    if proxy_share is None:
        raise InputError("a theme rule names a share proxy, but no proxy shares were given",
                         "give the proxies' fractions per atom")
    table = proxy_share.set_index(["atom_id", "share_proxy"])["fraction"]
    keys = pd.MultiIndex.from_arrays([rows["atom_id"][named], rows["share_proxy"][named]])
    found = table.reindex(keys).to_numpy(dtype=float)
    fraction[named] = np.nan_to_num(np.clip(found, 0.0, 1.0), nan=0.0)
    return fraction
