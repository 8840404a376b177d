"""A plain per-line reference for the vectorised apportionment: one Python loop, one line at a time.

It shares nothing with :mod:`allocation.apportion` but the public rounding rule
(:func:`allocation.money.split_pence`) and the definition of a key's running total, so the
vectorised pass can be checked against it to the penny.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from allocation.money import split_pence


def reference(
    lines: pd.DataFrame,
    atoms: pd.DataFrame,
    proxy_values: pd.DataFrame,
    membership: pd.DataFrame,
    cut_set: str,
) -> tuple[dict[tuple[int, str, str, str], int], dict[int, dict], dict[int, dict[int, int]]]:
    """Return (product, outcomes, spreads).

    product: (atom_id, body, cofog_code, method) -> pence; outcomes: line_id -> {allocated,
    method}; spreads: line_id -> {atom_id: pence}.
    """
    value = {(r.proxy, r.unit_code): float(r.value) for r in proxy_values.itertuples()}
    atom = {int(r.atom_id): r for r in atoms.itertuples()}
    members: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for r in membership.itertuples():
        members[(r.set, r.code)].append((int(r.atom_id), float(r.weight)))
    for rows in members.values():
        rows.sort()

    running: dict[tuple, int] = defaultdict(int)
    product: dict[tuple[int, str, str, str], int] = defaultdict(int)
    outcomes: dict[int, dict] = {}
    spreads: dict[int, dict[int, int]] = {}
    for line in sorted(lines.itertuples(), key=lambda r: r.line_id):
        rows = members.get((line.area_set, line.area_code), [])
        outcomes[line.line_id] = {"allocated": 0, "method": None}
        if not rows or line.amount_pence == 0:
            continue
        by_proxy = []
        for atom_id, m in rows:
            a = atom[atom_id]
            zone_value = value.get((line.proxy, a.zone_code), 0.0) if isinstance(
                a.zone_code, str) else 0.0
            by_proxy.append(zone_value * float(a.zone_share) * m)
        if sum(by_proxy) > 0:
            weights, method = by_proxy, "proxy"
        else:
            weights = [float(atom[atom_id].area_m2) * m for atom_id, m in rows]
            method = "area"
            if sum(weights) <= 0:
                continue
        if line.area_set == cut_set:
            method = "direct"
        key = (line.area_set, line.area_code, line.proxy, line.body, line.cofog_code)
        before = running[key]
        after = before + int(line.amount_pence)
        running[key] = after
        zeros = np.zeros(len(rows), dtype=np.intp)
        w = np.array(weights)
        spread = split_pence(np.array([after]), zeros, w) - split_pence(
            np.array([before]), zeros, w)
        outcomes[line.line_id] = {"allocated": int(line.amount_pence), "method": method}
        spreads[line.line_id] = {}
        for (atom_id, _), pence in zip(rows, spread, strict=True):
            if pence:
                spreads[line.line_id][atom_id] = int(pence)
                product[(atom_id, line.body, line.cofog_code, method)] += int(pence)
    return {k: v for k, v in product.items() if v}, outcomes, spreads
