"""Spread every spend line over the atoms of its reporting area, in whole pence, in one pass.

An *atom* is the smallest piece the service allocates to: a small area that carries a proxy
(an LSOA) cut by the boundaries of the target geography (wards), plus the pieces of a ward no
small area covers (proxy 0). Each atom knows its small area (``zone_code``), what share of that
small area's land it holds (``zone_share``), its land area and the code of the unit it was cut by.

For a line reported for area R (a borough, a region, a ward) with proxy P (residents, residents
aged 0-15, ...), atom *a* gets the weight::

    w(a) = P(zone of a) * zone_share(a) * m(a, R)

where ``m(a, R)`` is the share of atom *a* inside R (1 for atoms that nest in R).

Methods, recorded on every allocated amount:

- ``direct``: R is itself a unit of the geography the atoms were cut by (a ward-level line).
- ``proxy``: the proxy has residents somewhere in R: the dasymetric spread above.
- ``area``: no proxy value anywhere in R: plain areal weighting, ``w(a) = area(a) * m(a, R)``.

**One pass for every line.** Lines are grouped by (reporting area, proxy): a *group*'s weights
are computed once, however many lines share them. Lines of one group with the same body and
function (COFOG code) form a *key*; a key's pence are split over the group's atoms by running
-total rounding (:mod:`allocation.money`), all keys at once. The result is the run's stored
product: pence per (atom, body, function, method). Each source line still adds back exactly:
:func:`line_spread` derives one line's pence per atom on request, as the split of the key's
running total (lines in id order) after the line minus the split before it, so the lines of a
key add up to the stored product to the penny and each line to its own amount.

A line whose reporting area has no atoms at all is not allocated, and the conservation report
says so. Worked example in ``docs/methods.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from allocation.money import MAX_EXACT_PENCE, group_sum, running_shares, split_by_shares
from domain.errors import ConservationError, InputError

METHODS = ("direct", "proxy", "area")
#: Dense (atom x slice) accumulators up to this many cells; sparser products are sorted.
DENSE_CELLS = 64_000_000

_NO_ATOMS, _NO_LAND, _OK = 0, 1, 2


@dataclass(frozen=True)
class Apportionment:
    """The atom-level result of one run.

    ``product``: atom_id, slice_id, amount_pence (int64, no zero rows), ordered by atom then
    slice. ``slices``: slice_id, body, cofog_code, method, one row per combination that
    appears. ``outcomes``: one row per line (see :func:`apportion`).
    """

    product: pd.DataFrame
    slices: pd.DataFrame
    outcomes: pd.DataFrame


@dataclass(frozen=True)
class _Plan:
    """The grouping of lines and the group weights, shared by the pass and by line_spread."""

    line_group: npt.NDArray[np.intp]  # group of each line
    groups: pd.DataFrame  # area_set, area_code, proxy, status, method, by_proxy
    row_group: npt.NDArray[np.intp]  # group of each (group, atom) row, non-decreasing
    row_atom: npt.NDArray[np.int64]  # atom_id of each row
    before: npt.NDArray[np.float64]
    after: npt.NDArray[np.float64]


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


def _codes(frame: pd.DataFrame, columns: list[str]) -> tuple[npt.NDArray[np.intp], np.ndarray]:
    """Number the distinct rows of ``frame[columns]`` in sorted order: (code per row, firsts)."""
    combined = np.zeros(len(frame), dtype=np.int64)
    for col in columns:
        codes, uniques = pd.factorize(frame[col], sort=True)
        combined = combined * (len(uniques) + 1) + codes
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    return inverse.astype(np.intp), first


def _plan(
    lines: pd.DataFrame,
    atoms: pd.DataFrame,
    proxies: pd.DataFrame,
    membership: pd.DataFrame,
    cut_set: str,
) -> _Plan:
    """Group the lines by (area, proxy) and compute each group's weights and running shares."""
    missing = sorted(set(lines["proxy"].unique()) - set(proxies.columns))
    if missing:
        raise InputError(
            f"proxy {missing[0]!r} is named in the proxy table but not loaded",
            "load that proxy or change the proxy table to one of: "
            + ", ".join(sorted(map(str, proxies.columns))),
        )
    line_group, first = _codes(lines, ["area_set", "area_code", "proxy"])
    groups = lines.iloc[first][["area_set", "area_code", "proxy"]].reset_index(drop=True)
    n_groups = len(groups)

    rows = groups.reset_index(names="group").merge(
        membership.rename(columns={"set": "area_set", "code": "area_code"}),
        on=["area_set", "area_code"],
        how="inner",
    )
    rows = rows.sort_values(["group", "atom_id"], kind="stable")
    row_group = rows["group"].to_numpy(dtype=np.intp)
    row_atom = rows["atom_id"].to_numpy(dtype=np.int64)
    m = rows["weight"].to_numpy(dtype=np.float64)

    position = pd.Index(proxies.index).get_indexer(row_atom)
    if (position < 0).any():
        raise InputError(
            f"atom {int(row_atom[position < 0][0])} is in a reporting area but not in the atoms",
            "rebuild the crosswalks of this atom set",
        )
    column = pd.Index(proxies.columns).get_indexer(groups["proxy"].to_numpy())
    by_proxy_w = proxies.to_numpy(dtype=np.float64)[position, column[row_group]] * m
    area = (
        atoms.set_index("atom_id")["area_m2"].reindex(proxies.index).to_numpy(dtype=np.float64)
    )
    by_area_w = area[position] * m
    proxy_sum = np.bincount(row_group, weights=by_proxy_w, minlength=n_groups)
    area_sum = np.bincount(row_group, weights=by_area_w, minlength=n_groups)
    counts = np.bincount(row_group, minlength=n_groups)
    by_proxy = proxy_sum > 0
    weights = np.where(by_proxy[row_group], by_proxy_w, by_area_w)
    before, after, _ = running_shares(row_group, weights, n_groups)

    status = np.where(counts == 0, _NO_ATOMS, np.where(by_proxy | (area_sum > 0), _OK, _NO_LAND))
    direct = (groups["area_set"] == cut_set).to_numpy()
    groups["status"] = status
    groups["by_proxy"] = by_proxy
    groups["method"] = np.where(direct, "direct", np.where(by_proxy, "proxy", "area"))
    return _Plan(line_group, groups, row_group, row_atom, before, after)


def _outcomes(lines: pd.DataFrame, plan: _Plan, cut_set: str) -> pd.DataFrame:
    """One row per line: line_id, body, line, area, amount_pence, allocated_pence, method,
    proxy, reason.

    ``reason`` explains any shortfall (the area has no atoms, or no land), and notes a £0 line
    or a direct line spread by land area. Labels are made once per group, not once per line.
    """
    g = plan.groups
    lg = plan.line_group
    label = (g["area_set"].astype(str) + ":" + g["area_code"].astype(str)).to_numpy(dtype=object)
    status = g["status"].to_numpy()
    group_reason = np.full(len(g), None, dtype=object)
    for i in np.flatnonzero(status == _NO_ATOMS):
        group_reason[i] = (f"reporting area {label[i]} has no atoms: it is not covered by the "
                           f"geography the run was cut by ({cut_set})")
    for i in np.flatnonzero(status == _NO_LAND):
        group_reason[i] = f"reporting area {label[i]} has no land area"
    by_area_direct = (g["method"].to_numpy() == "direct") & ~g["by_proxy"].to_numpy() & (
        status == _OK)
    for i in np.flatnonzero(by_area_direct):
        group_reason[i] = f"no {g['proxy'].iloc[i]} in the area: spread by land area"

    amount = lines["amount_pence"].to_numpy(dtype=np.int64)
    ok = (status[lg] == _OK) & (amount != 0)
    reason = group_reason[lg]
    reason[(status[lg] == _OK) & (amount == 0)] = "nothing to allocate (the line is £0)"
    method = g["method"].to_numpy(dtype=object)[lg]
    method[~ok] = None
    return pd.DataFrame(
        {
            "line_id": lines["line_id"].to_numpy(dtype=np.int64),
            "body": lines["body"].to_numpy(),
            "line": lines["line"].to_numpy(),
            "area": label[lg],
            "amount_pence": amount,
            "allocated_pence": np.where(ok, amount, 0),
            "method": method,
            "proxy": lines["proxy"].to_numpy(),
            "reason": reason,
        }
    )


def _check_inputs(lines: pd.DataFrame) -> None:
    if lines["line_id"].duplicated().any():
        dup = int(lines.loc[lines["line_id"].duplicated(), "line_id"].iloc[0])
        raise InputError(f"line {dup} appears twice in one run", "give every line its own id")
    if len(lines) and np.abs(lines["amount_pence"].to_numpy(dtype=np.int64)).sum(
        dtype=np.float64
    ) >= MAX_EXACT_PENCE // 2:
        raise InputError(
            "the lines of this run add up to more pence than can be summed exactly (2**52)",
            "split the run by year or body",
        )


def apportion(
    lines: pd.DataFrame,
    atoms: pd.DataFrame,
    proxies: pd.DataFrame,
    membership: pd.DataFrame,
    *,
    cut_set: str,
) -> Apportionment:
    """Allocate every line's pence to atoms in one vectorised pass (see the module docstring).

    ``lines``: line_id, body, line, cofog_code, amount_pence (int), area_set, area_code, proxy.
    ``atoms``: atom_id, area_m2. ``proxies``: from :func:`atom_proxy_values`.
    ``membership``: set, code, atom_id, weight — which atoms lie in each reporting area.
    ``cut_set``: slug of the boundary set the atoms were cut by (lines reported for its
    units are ``direct``).
    """
    _check_inputs(lines)
    lines = lines.sort_values("line_id", kind="stable").reset_index(drop=True)
    plan = _plan(lines, atoms, proxies, membership, cut_set)
    outcomes = _outcomes(lines, plan, cut_set)
    live = np.flatnonzero(outcomes["allocated_pence"].to_numpy() != 0)
    method_of_group = plan.groups["method"].to_numpy()
    body_code, bodies = pd.factorize(lines["body"], sort=True)
    cofog_code, cofogs = pd.factorize(lines["cofog_code"], sort=True)
    group = plan.line_group[live].astype(np.int64)
    combined = (group * (len(bodies) + 1) + body_code[live]) * (len(cofogs) + 1) + cofog_code[live]
    _, kfirst, key = np.unique(combined, return_index=True, return_inverse=True)
    n_keys = len(kfirst)
    key_total = group_sum(outcomes["amount_pence"].to_numpy()[live], key.astype(np.intp), n_keys)
    first_line = live[kfirst]
    keys = pd.DataFrame({
        "group": group[kfirst],
        "body": np.asarray(bodies, dtype=object)[body_code[first_line]],
        "cofog_code": np.asarray(cofogs, dtype=object)[cofog_code[first_line]],
        "method": method_of_group[group[kfirst]],
    })
    slice_of_key, sfirst = _codes(keys, ["body", "cofog_code", "method"])
    slices = keys.iloc[sfirst][["body", "cofog_code", "method"]].reset_index(drop=True)
    slices.insert(0, "slice_id", np.arange(len(slices), dtype=np.int64))

    atom_ids = np.unique(plan.row_atom)
    product = _spread_keys(
        plan, keys["group"].to_numpy(dtype=np.intp), key_total, slice_of_key, len(slices),
        atom_ids,
    )
    _check_product(product, key_total, slice_of_key, len(slices), outcomes)
    return Apportionment(product, slices, outcomes)


def _spread_keys(
    plan: _Plan,
    key_group: npt.NDArray[np.intp],
    key_total: npt.NDArray[np.int64],
    key_slice: npt.NDArray[np.intp],
    n_slices: int,
    atom_ids: npt.NDArray[np.int64],
) -> pd.DataFrame:
    """Split every key's total over its group's atoms and sum per (atom, slice).

    One group at a time, all its keys at once: a (keys x atoms) table of running totals,
    rounded, differenced along the atoms. Within a group each (atom, slice) cell occurs once,
    so the group's table adds into the (atom x slice) accumulator without collisions.
    """
    n_groups = len(plan.groups)
    g_start = np.searchsorted(plan.row_group, np.arange(n_groups))
    g_stop = np.searchsorted(plan.row_group, np.arange(n_groups), side="right")
    row_pos = np.searchsorted(atom_ids, plan.row_atom)
    order = np.argsort(key_group, kind="stable")
    k_bounds = np.searchsorted(key_group[order], np.arange(n_groups + 1))
    magnitude = np.abs(key_total).astype(np.float64)
    sign = np.sign(key_total).astype(np.float64)
    k_len = np.diff(k_bounds)
    dense = len(atom_ids) * n_slices <= DENSE_CELLS
    acc = np.zeros((len(atom_ids), n_slices) if dense else (0, 0))
    sparse_cells: list[np.ndarray] = []
    sparse_pence: list[np.ndarray] = []
    for g in np.flatnonzero(k_len):
        keys = order[k_bounds[g]:k_bounds[g + 1]]
        rows = slice(g_start[g], g_stop[g])
        # Rounded running totals after each atom; an atom's pence are the step from the
        # previous atom's (the group's ``before`` is its ``after`` shifted by one).
        block = np.multiply(magnitude[keys][:, None], plan.after[rows][None, :])
        block += 0.5
        np.floor(block, out=block)
        block[:, 1:] -= block[:, :-1].copy()
        block *= sign[keys][:, None]
        pos = row_pos[rows]
        if dense:
            acc[pos[:, None], key_slice[keys][None, :]] += block.T
        else:
            sparse_cells.append((pos[None, :] * n_slices + key_slice[keys][:, None]).ravel())
            sparse_pence.append(block.ravel())
    if dense:
        flat = acc.ravel()
        cell = np.flatnonzero(flat)
        amount = flat[cell]
    elif sparse_cells:
        uniq, inv = np.unique(np.concatenate(sparse_cells), return_inverse=True)
        total = np.bincount(inv, weights=np.concatenate(sparse_pence))
        cell = uniq[total != 0]
        amount = total[total != 0]
    else:
        cell = np.zeros(0, dtype=np.int64)
        amount = np.zeros(0)
    width = max(n_slices, 1)
    return pd.DataFrame(
        {
            "atom_id": atom_ids[cell // width],
            "slice_id": (cell % width).astype(np.int64),
            "amount_pence": np.rint(amount).astype(np.int64),
        }
    )


def _check_product(
    product: pd.DataFrame,
    key_total: npt.NDArray[np.int64],
    key_slice: npt.NDArray[np.intp],
    n_slices: int,
    outcomes: pd.DataFrame,
) -> None:
    """The product must hold, per (body, function, method), exactly the pence of its lines."""
    want = group_sum(key_total, key_slice, n_slices)
    got = group_sum(
        product["amount_pence"].to_numpy(), product["slice_id"].to_numpy(dtype=np.intp), n_slices
    )
    allocated = int(outcomes["allocated_pence"].sum())
    if not np.array_equal(got, want) or int(want.sum()) != allocated:
        raise ConservationError(
            "the atom product does not hold exactly the allocated pence of every body and "
            "function", "report this as a bug; the run was not written",
        )


def line_spread(
    lines: pd.DataFrame,
    atoms: pd.DataFrame,
    proxies: pd.DataFrame,
    membership: pd.DataFrame,
    *,
    cut_set: str,
    line_id: int,
) -> pd.DataFrame:
    """One line's pence per atom (atom_id, amount_pence; no zero rows), as the run placed it.

    ``lines`` are all the run's lines (the line's key-mates decide its share of the rounding);
    the other arguments as for :func:`apportion`. The spreads of a key's lines add up to the
    stored product exactly, and each line's to its own amount.
    """
    lines = lines.sort_values("line_id", kind="stable").reset_index(drop=True)
    hit = lines.index[lines["line_id"] == line_id]
    if len(hit) == 0:
        raise InputError(f"line {line_id} is not in this run", "list the run's lines first")
    me = lines.loc[hit[0]]
    mates = lines.loc[
        (lines["area_set"] == me["area_set"]) & (lines["area_code"] == me["area_code"])
        & (lines["proxy"] == me["proxy"]) & (lines["body"] == me["body"])
        & (lines["cofog_code"] == me["cofog_code"])
    ].reset_index(drop=True)
    plan = _plan(mates, atoms, proxies, membership, cut_set)
    outcome = _outcomes(mates, plan, cut_set)
    empty = pd.DataFrame({"atom_id": pd.Series(dtype=np.int64),
                          "amount_pence": pd.Series(dtype=np.int64)})
    mine = int(np.flatnonzero(mates["line_id"].to_numpy() == line_id)[0])
    if outcome["allocated_pence"].iloc[mine] == 0:
        return empty
    running = np.cumsum(outcome["allocated_pence"].to_numpy(dtype=np.int64))
    after_total = int(running[mine])
    before_total = after_total - int(outcome["allocated_pence"].iloc[mine])
    n = len(plan.row_group)
    spread = split_by_shares(np.full(n, after_total), plan.before, plan.after) - split_by_shares(
        np.full(n, before_total), plan.before, plan.after
    )
    out = pd.DataFrame({"atom_id": plan.row_atom, "amount_pence": spread})
    return out.loc[out["amount_pence"] != 0].reset_index(drop=True)


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
    return lines["line"].map(named).fillna(default.iloc[0])
