"""Spread each spend line over the atoms of its reporting area, in whole pence.

An *atom* is the smallest piece the service allocates to: a small area that carries a proxy
(an LSOA) cut by the boundaries of the target geography (wards), plus the pieces of a ward no
small area covers (proxy 0). Each atom knows its small area (``zone_code``), what share of that
small area's land it holds (``zone_share``), its land area and the code of the unit it was cut by.

For a line reported for area R (a borough, a region, a ward) with proxy P (residents, residents
aged 0-15, ...), atom *a* gets the weight::

    w(a) = P(zone of a) * zone_share(a) * m(a, R)

where ``m(a, R)`` is the share of atom *a* inside R (1 for atoms that nest in R). The line's pence
are split over the atoms in proportion to ``w`` by largest remainder (``money.split_pence``).

Methods, recorded on every allocated amount:

- ``direct``: R is itself a unit of the geography the atoms were cut by (a ward-level line).
- ``proxy``: the proxy has residents somewhere in R: the dasymetric spread above.
- ``area``: no proxy value anywhere in R: plain areal weighting, ``w(a) = area(a) * m(a, R)``.

A line whose reporting area has no atoms at all is not allocated, and the conservation report
says so. Worked example in ``docs/methods.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocation.conservation import LineOutcome
from allocation.money import split_pence
from placespend.errors import InputError

METHODS = ("direct", "agency_estimate", "proxy", "area", "best_fit")


@dataclass(frozen=True)
class Apportionment:
    """The atom-level result of one run: amounts per (line, atom) and one outcome per line."""

    allocations: pd.DataFrame  # line_id, atom_id, amount_pence, method, proxy
    outcomes: list[LineOutcome]


def atom_proxy_values(atoms: pd.DataFrame, proxy_values: pd.DataFrame) -> pd.DataFrame:
    """Give every atom its share of each proxy: the small area's value times ``zone_share``.

    ``atoms``: atom_id, zone_code (None for uncovered pieces), zone_share.
    ``proxy_values``: proxy, unit_code, value. Returns a frame indexed by atom_id with one
    float column per proxy slug (0 where the atom has no small area or the area no value).
    """
    wide = proxy_values.pivot_table(
        index="unit_code", columns="proxy", values="value", aggfunc="sum"
    )
    per_zone = wide.reindex(atoms["zone_code"].to_numpy()).fillna(0.0).to_numpy()
    share = atoms["zone_share"].to_numpy(dtype=np.float64)[:, None]
    return pd.DataFrame(
        per_zone * share, index=atoms["atom_id"].to_numpy(), columns=list(wide.columns)
    )


def apportion_lines(
    lines: pd.DataFrame,
    atoms: pd.DataFrame,
    proxies: pd.DataFrame,
    membership: pd.DataFrame,
    *,
    cut_set: str,
) -> Apportionment:
    """Allocate every line's pence to atoms; see the module docstring for the rule.

    ``lines``: line_id, body, line, amount_pence (int), area_set, area_code, proxy.
    ``atoms``: atom_id, area_m2. ``proxies``: from :func:`atom_proxy_values`.
    ``membership``: set, code, atom_id, weight — which atoms lie in each reporting area.
    ``cut_set``: slug of the boundary set the atoms were cut by (lines reported for its
    units are ``direct``).
    """
    missing = sorted(set(lines["proxy"]) - set(proxies.columns))
    if missing:
        raise InputError(
            f"proxy {missing[0]!r} is named in the proxy table but not loaded",
            "load that proxy or change the proxy table to one of: "
            + ", ".join(sorted(proxies.columns)),
        )
    area = atoms.set_index("atom_id")["area_m2"]
    members = membership.groupby(["set", "code"], sort=False)

    pieces: list[pd.DataFrame] = []
    outcomes: list[LineOutcome] = []
    totals: list[int] = []
    for row in lines.itertuples(index=False):
        amount = int(row.amount_pence)
        key = (row.area_set, row.area_code)
        inside = members.get_group(key) if key in members.groups else None
        outcome = LineOutcome(
            line_id=int(row.line_id),
            body=str(row.body),
            line=str(row.line),
            area=f"{row.area_set}:{row.area_code}",
            amount_pence=amount,
            allocated_pence=0,
            method=None,
            proxy=str(row.proxy),
            reason=None,
        )
        outcomes.append(outcome)
        if inside is None or inside.empty:
            outcome.reason = (
                f"reporting area {outcome.area} has no atoms: it is not covered by the "
                f"geography the run was cut by ({cut_set})"
            )
            continue
        if amount == 0:
            outcome.reason = "nothing to allocate (the line is £0)"
            continue
        atom_ids = inside["atom_id"].to_numpy()
        m = inside["weight"].to_numpy(dtype=np.float64)
        weights = proxies[row.proxy].reindex(atom_ids).fillna(0.0).to_numpy() * m
        by_proxy = weights.sum() > 0
        if not by_proxy:
            weights = area.reindex(atom_ids).fillna(0.0).to_numpy() * m
            if weights.sum() <= 0:
                outcome.reason = f"reporting area {outcome.area} has no land area"
                continue
        if row.area_set == cut_set:
            method = "direct"
            if not by_proxy:
                outcome.reason = f"no {row.proxy} in the area: spread by land area"
        else:
            method = "proxy" if by_proxy else "area"
        outcome.method = method
        totals.append(amount)
        pieces.append(
            pd.DataFrame(
                {
                    "line_id": outcome.line_id,
                    "atom_id": atom_ids,
                    "weight": weights,
                    "method": method,
                    "proxy": row.proxy if by_proxy else None,
                    "group": len(totals) - 1,
                }
            )
        )

    if not pieces:
        empty = pd.DataFrame(
            {
                "line_id": pd.Series(dtype=np.int64),
                "atom_id": pd.Series(dtype=np.int64),
                "amount_pence": pd.Series(dtype=np.int64),
                "method": pd.Series(dtype=object),
                "proxy": pd.Series(dtype=object),
            }
        )
        return Apportionment(empty, outcomes)

    rows = pd.concat(pieces, ignore_index=True)
    rows["amount_pence"] = split_pence(
        np.asarray(totals, dtype=np.int64),
        rows["group"].to_numpy(dtype=np.intp),
        rows["weight"].to_numpy(dtype=np.float64),
    )
    columns = ["line_id", "atom_id", "amount_pence", "method", "proxy"]
    rows = rows.loc[rows["amount_pence"] != 0, columns]
    allocated = rows.groupby("line_id")["amount_pence"].sum()
    for outcome in outcomes:
        outcome.allocated_pence = int(allocated.get(outcome.line_id, 0))
    return Apportionment(rows.reset_index(drop=True), outcomes)


def choose_proxies(lines: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    """The proxy each line is spread by: its row in the proxy table, else the ``*`` row.

    ``table``: line, proxy (one row must be ``*``). Returns a Series aligned with ``lines``.
    """
    default = table.loc[table["line"] == "*", "proxy"]
    if len(default) != 1:
        raise InputError(
            "the proxy table needs exactly one '*' row (the proxy for every other line)",
            "add a row: *,residents-all,...",
        )
    named = dict(zip(table["line"], table["proxy"], strict=True))
    return lines["line"].map(lambda line: named.get(line, default.iloc[0]))
