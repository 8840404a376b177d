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

**How the pass stays fast.** Text columns are turned into small integer codes once (pandas
Categorical columns cost nothing to code), and every later step works on those codes: groups,
keys and slices are numbered by combining codes, never by sorting a million rows. Each group's
keys are split as one table of rounded running totals (atoms x keys), differenced down the
atoms and added into a dense (atom x slice) table, a whole block at a time when the group's
atoms are consecutive; when the product is small next to that table and the groups it would
loop over, the cells are instead listed and summed in one sorted pass. Tables handed back are
built from the arrays without copying them, and text columns are built from their few distinct
labels.

A line whose reporting area has no atoms at all is not allocated, and the conservation report
says so. Worked example in ``docs/methods.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.extensions import ExtensionArray

from allocation.money import (
    MAX_EXACT_PENCE,
    group_sum,
    label_column,
    running_shares,
    split_by_shares,
)
from domain.errors import ConservationError, InputError

#: Dense (atom x slice) accumulators up to this many cells; sparser products are sorted.
DENSE_CELLS = 64_000_000
#: A spread with fewer cells than 1/SPARSE_RATIO of the dense table's cost is listed and sorted
#: instead; that cost counts the table's cells and GROUP_CELLS for each group it loops over.
SPARSE_RATIO = 10
GROUP_CELLS = 4096
#: Cells listed at once by the sorted spread (memory stays bounded however many lines there are).
BATCH_CELLS = 4_000_000
#: Cells of the dense table compacted at a time into its own memory (see ``_table_rows``).
COMPACT_CELLS = 1 << 18

#: The "area set" of lines reported at a point (a site, a postcode, coordinates): its codes
#: are atom ids, each line's code the atom its point falls in. Such lines are placed directly.
AT_POINT = "@point"
#: Prefix of the "area set" of a line's part placed by the body's own shares over a set's
#: units (``estimate@hackney-wards-2014``): its atoms are that set's, its method the estimate.
ESTIMATE_PREFIX = "estimate@"
_NO_ATOMS, _NO_LAND, _OK = 0, 1, 2
#: The dtype pandas gives a column of Python strings.
_TEXT = pd.Series(np.array(["text"], dtype=object)).dtype

Codes = npt.NDArray[np.intp]
IntArray = npt.NDArray[np.int64]


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
    """The grouping of lines and the group weights, shared by the pass and by line_spread.

    Rows are (group, atom) pairs, group by group and in atom_id order within a group.
    """

    line_group: Codes  # group of each line
    groups: pd.DataFrame  # area_set, area_code, proxy, status, method, by_proxy
    row_group: Codes  # group of each (group, atom) row, non-decreasing
    row_atom: IntArray  # atom_id of each row
    row_pos: Codes  # position of each row's atom in atom_ids
    atom_ids: IntArray  # every atom of the lines' reporting areas, ascending
    before: npt.NDArray[np.float64]
    after: npt.NDArray[np.float64]


def atom_proxy_values(atoms: pd.DataFrame, proxy_values: pd.DataFrame) -> pd.DataFrame:
    """Give every atom its share of each proxy: the small area's value times ``zone_share``.

    ``atoms``: atom_id, zone_code (None for uncovered pieces), zone_share.
    ``proxy_values``: proxy, unit_code, value. Returns a frame indexed by atom_id with one
    float column per proxy slug (0 where the atom has no small area or the area no value).
    """
    proxy, names = pd.factorize(proxy_values["proxy"], sort=True)
    unit, units = pd.factorize(proxy_values["unit_code"])
    per_unit = np.zeros((len(units), len(names)))
    np.add.at(per_unit, (unit, proxy), proxy_values["value"].to_numpy(dtype=np.float64))
    where = pd.Index(units).get_indexer(atoms["zone_code"].to_numpy())
    per_zone = np.where((where >= 0)[:, None], per_unit[np.maximum(where, 0)], 0.0)
    share = atoms["zone_share"].to_numpy(dtype=np.float64)[:, None]
    return pd.DataFrame(
        per_zone * share, index=atoms["atom_id"].to_numpy(), columns=[str(n) for n in names]
    )


def _factorize(column: pd.Series) -> tuple[Codes, np.ndarray]:
    """Code each row of ``column`` (-1 for missing) and return the distinct values as objects.

    Codes follow the values' sorted order (a Categorical's category order). Cheap for
    Categorical columns, which are already coded.
    """
    codes, uniques = pd.factorize(column, sort=True)
    return codes.astype(np.intp, copy=False), np.asarray(uniques, dtype=object)


def _sort_rank(values: np.ndarray) -> Codes:
    """Rank of each of a few distinct values in the order pandas sorts them as a column."""
    return _factorize(pd.Series(np.asarray(values, dtype=object)))[0]


def _number(parts: list[tuple[Codes, int]]) -> tuple[Codes, Codes]:
    """Number the distinct combinations of several code columns in sorted order.

    ``parts``: (codes, number of distinct values) per column, codes -1 for missing. Returns
    the number of each row's combination and, for each combination, one row that has it. The
    codes are combined into one integer; a small range of combinations is ranked with a table,
    a large one by hashing, so a million rows are never sorted.
    """
    n = len(parts[0][0])
    combined = np.zeros(n, dtype=np.int64)
    span = 1
    for codes, n_values in parts:
        combined *= n_values + 1
        combined += codes
        combined += 1
        span *= n_values + 1
    if span <= 4 * n + 65_536:
        present = np.zeros(span, dtype=bool)
        present[combined] = True
        rank = np.cumsum(present, dtype=np.intp)
        rank -= 1
        number = rank[combined]
        n_distinct = int(rank[-1]) + 1
    else:
        first_seen, distinct = pd.factorize(combined)
        order = np.argsort(distinct)
        rank = np.empty(len(order), dtype=np.intp)
        rank[order] = np.arange(len(order))
        number = rank[first_seen]
        n_distinct = len(order)
    representative = np.empty(n_distinct, dtype=np.intp)
    representative[number] = np.arange(n)
    return number, representative


def _text_column(column: pd.Series) -> np.ndarray | ExtensionArray:
    """A text column of the lines as the line table stores it (pandas' reading of its values).

    ``str`` columns are passed on as they are and string Categoricals are expanded from their
    categories; anything else is handed to pandas as values, as before.
    """
    if isinstance(column.dtype, pd.CategoricalDtype) and isinstance(
        column.cat.categories.dtype, pd.StringDtype
    ):
        codes = column.cat.codes.to_numpy().astype(np.intp)
        table = np.append(np.asarray(column.cat.categories, dtype=object), None)
        return label_column(table, np.where(codes < 0, len(table) - 1, codes))
    if column.dtype == _TEXT and column.notna().any():
        return column.array.copy()
    return column.to_numpy()


def _area_rows(
    membership: pd.DataFrame, set_values: np.ndarray, code_values: np.ndarray, areas: IntArray
) -> tuple[Codes, IntArray, npt.NDArray[np.float64]]:
    """The membership rows of the lines' reporting areas: (area, atom_id, weight) per row.

    ``set_values`` / ``code_values`` are the lines' distinct area sets and codes; ``areas`` the
    sorted keys ``(set + 1) * (len(code_values) + 1) + code + 1`` of the areas wanted. Rows keep
    the membership table's order.
    """
    m_set, m_set_values = pd.factorize(membership["set"])
    m_code, m_code_values = pd.factorize(membership["code"])
    set_of = np.append(pd.Index(set_values).get_indexer(m_set_values), -1)[m_set]
    code_of = np.append(pd.Index(code_values).get_indexer(m_code_values), -1)[m_code]
    key = (set_of + 1) * (len(code_values) + 1) + code_of + 1
    hit = (set_of >= 0) & (code_of >= 0)
    # Keys are below (sets + 1) x (codes + 1), a small range: a table gives each its area.
    area_of_key = np.full((len(set_values) + 1) * (len(code_values) + 1), -1, dtype=np.intp)
    area_of_key[areas] = np.arange(len(areas))
    area = area_of_key[key]
    hit &= area >= 0
    selected = np.flatnonzero(hit)
    atom = membership["atom_id"].to_numpy(dtype=np.int64)[selected]
    weight = membership["weight"].to_numpy(dtype=np.float64)[selected]
    return area[selected].astype(np.intp), atom, weight


def _plan(
    lines: pd.DataFrame,
    atoms: pd.DataFrame,
    proxies: pd.DataFrame,
    membership: pd.DataFrame,
    cut_set: str,
) -> _Plan:
    """Group the lines by (area, proxy) and compute each group's weights and running shares."""
    set_codes, set_values = _factorize(lines["area_set"])
    code_codes, code_values = _factorize(lines["area_code"])
    proxy_codes, proxy_values = _factorize(lines["proxy"])
    _check_proxies(set(proxy_values) | ({np.nan} if (proxy_codes < 0).any() else set()),
                   proxies)
    line_group, first = _number(
        [(set_codes, len(set_values)), (code_codes, len(code_values)),
         (proxy_codes, len(proxy_values))]
    )
    groups = lines[["area_set", "area_code", "proxy"]].iloc[first].reset_index(drop=True)
    n_groups = len(groups)
    areas, group_area = np.unique(
        (set_codes[first] + 1) * (len(code_values) + 1) + code_codes[first] + 1,
        return_inverse=True,
    )
    n_areas = len(areas)

    # The atoms of each area, in atom_id order (ties keep the membership table's order).
    m_area, m_atom, m_weight = _area_rows(membership, set_values, code_values, areas)
    index = proxies.index
    position = index.get_indexer(m_atom)
    if (position < 0).any():
        bad = position < 0
        worst = np.lexsort((m_atom[bad], m_area[bad]))[0]
        raise InputError(
            f"atom {int(m_atom[bad][worst])} is in a reporting area but not in the atoms",
            "rebuild the crosswalks of this atom set",
        )
    index_ids = index.to_numpy()
    if index.is_monotonic_increasing:
        rank = position
        ids_by_rank = index_ids
    else:
        by_id = np.argsort(index_ids, kind="stable")
        rank_of = np.empty(len(by_id), dtype=np.intp)
        rank_of[by_id] = np.arange(len(by_id))
        rank = rank_of[position]
        ids_by_rank = index_ids[by_id]
    if len(rank) < 2 or (rank[1:] >= rank[:-1]).all():
        # Rows already in atom order (as stored): a stable sort by area alone keeps it, and
        # sorts small integers by radix.
        order = np.argsort(m_area.astype(np.uint16 if n_areas <= 1 << 16 else np.int64),
                           kind="stable")
    else:
        order = np.argsort(m_area.astype(np.int64) * len(index_ids) + rank, kind="stable")
    area_count = np.bincount(m_area, minlength=n_areas)
    area_start = np.cumsum(area_count) - area_count

    # Rows: every group takes its area's atoms.
    length = area_count[group_area]
    row_group = np.repeat(np.arange(n_groups, dtype=np.intp), length)
    offset = np.cumsum(length) - length
    src = order[np.arange(int(length.sum())) - np.repeat(offset - area_start[group_area], length)]
    row_rank = rank[src]
    row_position = position[src]
    row_atom = m_atom[src]
    m = m_weight[src]

    column = pd.Index(proxies.columns).get_indexer(proxy_values[proxy_codes[first]])
    by_proxy_w = proxies.to_numpy(dtype=np.float64)[row_position, column[row_group]] * m
    if np.array_equal(atoms["atom_id"].to_numpy(), index_ids):
        area = atoms["area_m2"].to_numpy(dtype=np.float64)
    else:
        area = atoms.set_index("atom_id")["area_m2"].reindex(index).to_numpy(dtype=np.float64)
    by_area_w = area[row_position] * m
    proxy_sum = np.bincount(row_group, weights=by_proxy_w, minlength=n_groups)
    area_sum = np.bincount(row_group, weights=by_area_w, minlength=n_groups)
    by_proxy = proxy_sum > 0
    weights = np.where(by_proxy[row_group], by_proxy_w, by_area_w)
    before, after, _ = running_shares(row_group, weights, n_groups)

    touched = np.zeros(len(index_ids), dtype=bool)
    touched[row_rank] = True
    row_pos = (np.cumsum(touched, dtype=np.intp) - 1)[row_rank]
    atom_ids = ids_by_rank[touched].astype(np.int64)

    status = np.where(length == 0, _NO_ATOMS, np.where(by_proxy | (area_sum > 0), _OK, _NO_LAND))
    direct = groups["area_set"].isin([cut_set, AT_POINT]).to_numpy()
    groups["status"] = status
    groups["by_proxy"] = by_proxy
    estimate = groups["area_set"].astype(str).str.startswith(ESTIMATE_PREFIX).to_numpy()
    groups["method"] = np.where(direct, "direct", np.where(
        estimate, "agency_estimate", np.where(by_proxy, "proxy", "area")))
    return _Plan(line_group, groups, row_group, row_atom, row_pos, atom_ids, before, after)


def _outcomes(lines: pd.DataFrame, plan: _Plan, cut_set: str) -> pd.DataFrame:
    """The line table: one row per line, in line_id order.

    Columns: line_id, body, line, area, amount_pence, allocated_pence, method, proxy, reason.
    ``reason`` explains any shortfall (the area has no atoms, or no land), and notes a £0 line
    or a direct line spread by land area. Labels are made once per group, not once per line.
    """
    g = plan.groups
    lg = plan.line_group
    n_groups = len(g)
    label = (g["area_set"].astype(str) + ":" + g["area_code"].astype(str)).to_numpy(dtype=object)
    status = g["status"].to_numpy()
    group_reason = np.full(n_groups + 1, None, dtype=object)
    group_reason[n_groups] = "nothing to allocate (the line is £0)"
    for i in np.flatnonzero(status == _NO_ATOMS):
        group_reason[i] = (f"reporting area {label[i]} has no atoms: it is not covered by the "
                           f"geography the run was cut by ({cut_set})")
        if str(label[i]).startswith(AT_POINT + ":"):
            group_reason[i] = (f"the line's point lies outside the geography the run was cut "
                               f"by ({cut_set})")
    for i in np.flatnonzero(status == _NO_LAND):
        group_reason[i] = f"reporting area {label[i]} has no land area"
    by_area_direct = (g["method"].to_numpy() == "direct") & ~g["by_proxy"].to_numpy() & (
        status == _OK)
    for i in np.flatnonzero(by_area_direct):
        group_reason[i] = f"no {g['proxy'].iloc[i]} in the area: spread by land area"

    amount = lines["amount_pence"].to_numpy(dtype=np.int64, copy=True)
    placed = status[lg] == _OK
    ok = placed & (amount != 0)
    method = np.append(g["method"].to_numpy(dtype=object), None)
    return pd.DataFrame(
        {
            "line_id": lines["line_id"].to_numpy(dtype=np.int64, copy=True),
            "body": _text_column(lines["body"]),
            "line": _text_column(lines["line"]),
            "area": label_column(label, lg),
            "amount_pence": amount,
            "allocated_pence": np.where(ok, amount, 0),
            "method": label_column(method, np.where(ok, lg, n_groups)),
            "proxy": _text_column(lines["proxy"]),
            "reason": label_column(group_reason, np.where(placed & (amount == 0), n_groups, lg)),
        },
        copy=False,
    )


def check_lines(lines: pd.DataFrame, proxies: pd.DataFrame) -> None:
    """Refuse what only the whole run can show, before any work.

    That is a line id used twice, more pence than float64 sums exactly, or a proxy that is
    named but not loaded.

    :func:`apportion` calls it; so does anything that splits a run into parts
    (``placespend.distributed``) before handing the parts to :func:`apportion`.
    """
    ids = lines["line_id"].to_numpy()
    if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
        ordered = np.sort(ids)
        if (ordered[1:] == ordered[:-1]).any():
            dup = int(lines.loc[lines["line_id"].duplicated(), "line_id"].iloc[0])
            raise InputError(f"line {dup} appears twice in one run", "give every line its own id")
    if len(lines) and np.abs(lines["amount_pence"].to_numpy(dtype=np.int64)).sum(
        dtype=np.float64
    ) >= MAX_EXACT_PENCE // 2:
        raise InputError(
            "the lines of this run add up to more pence than can be summed exactly (2**52)",
            "split the run by year or body",
        )
    _check_proxies(set(lines["proxy"].unique()), proxies)


def _check_proxies(named: set, proxies: pd.DataFrame) -> None:
    missing = sorted(named - set(proxies.columns), key=str)
    if missing:
        raise InputError(
            f"proxy {missing[0]!r} is named in the proxy table but not loaded",
            "load that proxy or change the proxy table to one of: "
            + ", ".join(sorted(map(str, proxies.columns))),
        )


def _in_line_order(lines: pd.DataFrame) -> pd.DataFrame:
    """The lines ordered by line_id, with a fresh index (no copy when they already are)."""
    ids = lines["line_id"].to_numpy()
    if len(ids) < 2 or (ids[1:] > ids[:-1]).all():
        return lines.reset_index(drop=True)
    return lines.sort_values("line_id", kind="stable").reset_index(drop=True)


def apportion(
    lines: pd.DataFrame,
    atoms: pd.DataFrame,
    proxies: pd.DataFrame,
    membership: pd.DataFrame,
    *,
    cut_set: str,
) -> Apportionment:
    """Allocate every line's pence to atoms in one vectorised pass (see the module docstring).

    ``lines``: line_id, body, line, cofog_code, amount_pence (int), area_set, area_code, proxy;
    text columns may be Categorical. ``atoms``: atom_id, area_m2. ``proxies``: from
    :func:`atom_proxy_values`. ``membership``: set, code, atom_id, weight — which atoms lie in
    each reporting area. ``cut_set``: slug of the boundary set the atoms were cut by (lines
    reported for its units are ``direct``).
    """
    check_lines(lines, proxies)
    lines = _in_line_order(lines)
    plan = _plan(lines, atoms, proxies, membership, cut_set)
    outcomes = _outcomes(lines, plan, cut_set)
    amount = outcomes["amount_pence"].to_numpy()
    live = np.flatnonzero(outcomes["allocated_pence"].to_numpy())
    n_groups = len(plan.groups)
    body_code, bodies = _factorize(lines["body"])
    cofog_code, cofogs = _factorize(lines["cofog_code"])
    key, first = _number(
        [(plan.line_group[live], n_groups), (body_code[live], len(bodies)),
         (cofog_code[live], len(cofogs))]
    )
    key_total = group_sum(amount[live], key, len(first))
    first = live[first]
    key_group = plan.line_group[first]
    key_body = body_code[first]
    key_cofog = cofog_code[first]

    # Slices are numbered in the sorted order of (body, cofog_code, method).
    method_of_group = plan.groups["method"].to_numpy(dtype=object)
    method_rank = _sort_rank(method_of_group)
    slice_of_key, one = _number(
        [(_sort_rank(bodies)[key_body], len(bodies)), (_sort_rank(cofogs)[key_cofog], len(cofogs)),
         (method_rank[key_group], int(method_rank.max(initial=-1)) + 1)]
    )
    slices = pd.DataFrame({
        "slice_id": np.arange(len(one), dtype=np.int64),
        "body": bodies[key_body[one]],
        "cofog_code": cofogs[key_cofog[one]],
        "method": method_of_group[key_group[one]],
    })
    product, per_slice = _spread_keys(plan, key_group, key_total, slice_of_key, len(slices))
    _check_product(per_slice, key_total, slice_of_key, len(slices), outcomes)
    return Apportionment(product, slices, outcomes)


def _spread_keys(
    plan: _Plan,
    key_group: Codes,
    key_total: IntArray,
    key_slice: Codes,
    n_slices: int,
) -> tuple[pd.DataFrame, IntArray]:
    """Split every key's total over its group's atoms and sum per (atom, slice).

    ``key_group`` must be non-decreasing (keys are numbered group by group). Returns the
    product and its pence per slice. The dense (atom x slice) table is used unless it is too
    big, or the product is small next to it (and to the groups it would loop over): both give
    the same cells, so this decides only the time.
    """
    n_groups = len(plan.groups)
    group_len = np.bincount(plan.row_group, minlength=n_groups)
    group_start = np.cumsum(group_len) - group_len
    n_cells = int(group_len[key_group].sum())
    dense_cells = len(plan.atom_ids) * n_slices
    if n_cells == 0:
        atom = slice_id = amount = np.zeros(0, dtype=np.int64)
        per_slice = np.zeros(n_slices, dtype=np.int64)
    elif dense_cells > DENSE_CELLS or n_cells * SPARSE_RATIO < (
            dense_cells + GROUP_CELLS * (1 + int(np.count_nonzero(np.diff(key_group))))):
        cell, amount = _listed_cells(plan, group_start, group_len, key_group, key_total,
                                     key_slice, n_slices)
        position, slice_id = np.divmod(cell, n_slices)
        atom = plan.atom_ids[position]
        per_slice = group_sum(amount, slice_id.astype(np.intp), n_slices)
    else:
        table = _dense_table(plan, group_start, group_len, key_group, key_total, key_slice,
                             n_slices)
        per_slice = table.sum(axis=0)
        atom, slice_id, amount = _table_rows(table, plan.atom_ids)
    product = pd.DataFrame(
        {"atom_id": atom, "slice_id": slice_id, "amount_pence": amount}, copy=False
    )
    return product, per_slice


def _dense_table(
    plan: _Plan,
    group_start: IntArray,
    group_len: IntArray,
    key_group: Codes,
    key_total: IntArray,
    key_slice: Codes,
    n_slices: int,
) -> npt.NDArray[np.int64]:
    """Pence per (atom, slice) as a dense table, one group at a time, all its keys at once.

    A group's (atoms x keys) table holds the rounded running totals after each atom,
    ``floor(|T| after + 0.5)``, signed, made in one step as ``trunc(T after + sign(T) / 2)``
    (the cast truncates towards zero, and ``T after`` is exactly ``-(|T| after)`` for a
    negative T, so this is the same integer); an atom's pence are the step from the previous
    atom's (the group's ``before`` is its ``after`` shifted by one). Within a group each
    (atom, slice) cell occurs once, so the group's table adds into the accumulator without
    collisions. When a group has keys for a good share of
    the slices its table spans every slice (zero for the absent ones), so that whole rows add;
    when its atoms are also consecutive, the totals are added and then subtracted one row down,
    which is the step without computing it.
    """
    n_groups = len(group_len)
    key_count = np.bincount(key_group, minlength=n_groups)
    key_start = np.cumsum(key_count) - key_count
    signed = key_total.astype(np.float64)
    half = np.sign(key_total) * 0.5
    # A group's atoms are consecutive in the table when their positions step by one.
    same = plan.row_group[1:] == plan.row_group[:-1]
    jumps = same & (np.diff(plan.row_pos) != 1)
    consecutive = np.bincount(plan.row_group[1:][jumps], minlength=n_groups) == 0

    table = np.zeros((len(plan.atom_ids), n_slices), dtype=np.int64)
    live = np.flatnonzero(key_count)
    size = int(group_len[live].max()) * n_slices
    product_buf = np.empty(size)
    total_buf = np.empty(size, dtype=np.int64)
    step_buf = np.empty(size, dtype=np.int64)
    every_signed = np.zeros(n_slices)
    every_half = np.zeros(n_slices)
    for g in live:
        keys = slice(key_start[g], key_start[g] + key_count[g])
        r0, n = group_start[g], group_len[g]
        columns = key_slice[keys]
        full = 3 * len(columns) >= n_slices
        if full:
            every_signed[:] = 0.0
            every_signed[columns] = signed[keys]
            every_half[:] = 0.0
            every_half[columns] = half[keys]
            amounts, halves, width = every_signed, every_half, n_slices
        else:
            amounts, halves, width = signed[keys], half[keys], len(columns)
        exact = product_buf[: n * width].reshape(n, width)
        np.multiply(plan.after[r0:r0 + n, None], amounts, out=exact)
        total = total_buf[: n * width].reshape(n, width)
        np.add(exact, halves, out=total, casting="unsafe")
        pos = plan.row_pos[r0:r0 + n]
        if full and consecutive[g]:
            rows = table[pos[0]:pos[0] + n]
            rows += total
            rows[1:] -= total[:-1]
            continue
        step = step_buf[: n * width].reshape(n, width)
        step[0] = total[0]
        np.subtract(total[1:], total[:-1], out=step[1:])
        if full:
            table[pos] += step
        elif consecutive[g]:
            table[pos[0]:pos[0] + n, columns] += step
        else:
            table[pos[:, None], columns] += step
    return table


def _table_rows(
    table: npt.NDArray[np.int64], atom_ids: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """The non-zero cells of an (atom x slice) table as (atom_id, slice_id, pence) columns.

    The pence column is the table's own memory: its non-zero cells are moved to its front, a
    block at a time (so no second table-sized array is touched), and the column is a view of
    them. The atom and slice columns are picked by the same mask.
    """
    n_atoms, n_slices = table.shape
    nonzero = table != 0
    if np.count_nonzero(nonzero) == table.size:
        slice_id = np.tile(np.arange(n_slices, dtype=np.int64), n_atoms)
        return np.repeat(atom_ids, n_slices), slice_id, table.reshape(-1)
    atom = np.broadcast_to(atom_ids[:, None], table.shape)[nonzero]
    slice_id = np.broadcast_to(np.arange(n_slices, dtype=np.int64), table.shape)[nonzero]
    flat, keep = table.reshape(-1), nonzero.reshape(-1)
    kept = 0
    for start in range(0, flat.size, COMPACT_CELLS):
        # The block's non-zero cells are copied out before any of its cells is overwritten,
        # and the write ends at or before the block's end: later blocks are untouched.
        part = flat[start:start + COMPACT_CELLS][keep[start:start + COMPACT_CELLS]]
        flat[kept:kept + len(part)] = part
        kept += len(part)
    return atom, slice_id, flat[:kept]


def _listed_cells(
    plan: _Plan,
    group_start: IntArray,
    group_len: IntArray,
    key_group: Codes,
    key_total: IntArray,
    key_slice: Codes,
    n_slices: int,
) -> tuple[IntArray, IntArray]:
    """Pence per (atom, slice) cell, listed: (cell = atom position x n_slices + slice, pence).

    Every (key, atom) cell is split with :func:`split_by_shares` and the cells are summed in
    sorted order, in batches of keys so that memory stays bounded. No zero cells.
    """
    key_len = group_len[key_group]
    ends = np.cumsum(key_len)
    cells: list[IntArray] = []
    amounts: list[IntArray] = []
    k0 = 0
    while k0 < len(key_group):
        k1 = max(int(np.searchsorted(ends, ends[k0] - key_len[k0] + BATCH_CELLS, "right")), k0 + 1)
        length = key_len[k0:k1]
        key = np.repeat(np.arange(k0, k1), length)
        offset = np.cumsum(length) - length - group_start[key_group[k0:k1]]
        row = np.arange(int(length.sum())) - np.repeat(offset, length)
        pence = split_by_shares(key_total[key], plan.before[row], plan.after[row])
        cell = plan.row_pos[row].astype(np.int64) * n_slices + key_slice[key]
        cell, pence = _sum_cells(cell, pence)
        cells.append(cell)
        amounts.append(pence)
        k0 = k1
    if len(cells) == 1:
        return cells[0], amounts[0]
    return _sum_cells(np.concatenate(cells), np.concatenate(amounts))


def _sum_cells(cell: IntArray, pence: IntArray) -> tuple[IntArray, IntArray]:
    """Sum pence per distinct cell, in cell order, dropping cells that sum to zero."""
    order = np.argsort(cell)
    cell = cell[order]
    start = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    total = np.add.reduceat(pence[order], start) if len(start) else pence[:0]
    keep = total != 0
    return cell[start][keep], total[keep]


def _check_product(
    per_slice: IntArray,
    key_total: IntArray,
    key_slice: Codes,
    n_slices: int,
    outcomes: pd.DataFrame,
) -> None:
    """The product must hold, per (body, function, method), exactly the pence of its lines."""
    want = group_sum(key_total, key_slice, n_slices)
    allocated = int(outcomes["allocated_pence"].sum())
    if not np.array_equal(per_slice, want) or int(want.sum()) != allocated:
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
    lines = _in_line_order(lines)
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
    """The proxy each line is spread by: the most specific row of the proxy table that fits it.

    ``table``: body (optional; ``*`` or missing: any body), line, proxy. A row's ``line`` is a
    spend line's own name (``Education services``), its function as the body gave it (a mapped
    code such as a department, ``source_code``), a COFOG group or division (``09.1``, ``09``),
    or ``*``. For each line the first row that fits wins, in this order: the body's own rows
    before the any-body rows; within them the line's name, then its function as given, then its
    COFOG group (where the function given is one), then its division (``cofog_code``), then
    ``*``.
    ``lines``: line, and body, cofog_code, source_code where known. The ``*``/``*`` row must
    exist. Returns a Series aligned with ``lines``.
    """
    rows = choose_rows(lines, table)
    return rows.map(dict(enumerate(table["proxy"].astype(str))))


def choose_rows(lines: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    """The position (0, 1, ...) in ``table`` of the row that fits each line.

    Rows are chosen as :func:`choose_proxies` chooses them; a Series aligned with ``lines``.
    """
    bodies = (table["body"] if "body" in table else pd.Series("*", index=table.index))
    rows = dict(zip(zip(bodies.fillna("*").astype(str), table["line"].astype(str), strict=True),
                    range(len(table)), strict=True))
    if ("*", "*") not in rows:
        raise InputError(
            "the proxy table needs a '*' row for every line of every body",
            "add a row: *,residents-all,... (with body '*' or no body column)",
        )
    n = len(lines)

    def column(name: str) -> pd.Series:
        if name in lines:
            return lines[name].astype(object).where(lines[name].notna(), None)
        return pd.Series([None] * n, index=lines.index, dtype=object)

    body = column("body")
    given = column("source_code")  # the function as given: an RS line, a department, 10.4...
    group = given.where(given.astype(str).str.fullmatch(r"\d\d\.\d"), None)
    levels = [column("line"), given, group, column("cofog_code"),
              pd.Series(["*"] * n, index=lines.index, dtype=object)]
    key_of = {f"{b}\x1f{line}": proxy for (b, line), proxy in rows.items()}
    out = pd.Series([None] * n, index=lines.index, dtype=object)
    for who in (body, pd.Series(["*"] * n, index=lines.index, dtype=object)):
        for what in levels:
            keys = who.astype(str) + "\x1f" + what.astype(str)
            found = keys.map(key_of).where(who.notna() & what.notna())
            out = out.where(out.notna(), found)
    return out
