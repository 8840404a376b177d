"""Following the money: a place's pence as flows, funders -> spending bodies -> functions.

The flow view (a Sankey diagram) of one place shows three columns:

1. **who paid for it**: each body that passed money to a spending body (a grant recorded as a
   transfer, counted once at the spender: :mod:`allocation.transfers`), and one shared node,
   ``own``, "Own income and other funding", for everything else a body spends (council tax,
   fees, general grants nobody loaded as a transfer...);
2. **who spent it**: each spending body, with exactly its pence in the place (the feature's
   ``body_<slug>``);
3. **what it was spent on**: each COFOG division, with exactly the place's pence on it (the
   feature's ``cofog_XX``).

*Funder -> body.* Transfers are known for a body's whole run spending, not place by place, so
a spending body's pence in the place are shared between its funders in proportion to what it
received from each over the whole run, against everything the run placed for it: a body that
placed £1,000 over the run, £300 of it received from A, is 30 % A's money everywhere. What no
transfer explains is its own. The split is exact (:func:`allocation.money.split_pence`,
running-total rounding, funders in the order of their slugs, ``own`` last), so the links into
a body add back to its pence to the penny. A body that received more than it placed (its
lines were partly not placed) is funded wholly by its funders, in proportion to what each gave.

*Body -> function.* One link per (body, division) cell of the place, its pence as they are.

*Negative cells.* Net current expenditure can be negative: a service whose income exceeds its
cost (pension contributions above the pensions paid, say). Such a cell is kept as a link with
its sign: ``body:<slug> -> function:<division>`` of, say, -£10, so that every total is exact
when links are added up with their signs. A Sankey cannot draw a negative width: a diagram
draws the positive links and lists the negative ones (net income); the figures still hold. A
body whose pence in the place are negative overall (it took in more than it spent there) is
not split between funders (a grant pays for spending, not for income): it has one link from
``own`` of its (negative) pence. So, with signs:

- a body's pence (``body_<slug>``) = its links in = its links out;
- a division's pence (``cofog_XX``) = its links in;
- the place's total = every function link = every funder link (``funder:*`` and ``own``).

Only a body's positive pence are shared between funders, and every funder link of such a body
is positive; the only negative links are net income (a negative cell, or a negative body's link
from ``own``). :func:`flow_nodes` gives each node its exact pence (bodies and divisions their
net figure, the map's; funders the sum of their links), so a diagram can label nodes with the
map's figures even where it leaves a negative link out.

Worked example (plain numbers). Body B placed £1,000 over its whole run, of which £300 was a
grant from A (a transfer the run took off A's lines and counted at B). In the place B has £200
on Education (09) and -£10 on Housing (06): B's pence there are £190. B's funders: A with
weight 300, own with weight 1,000 - 300 = 700, so A £57.00, own £133.00 (exact: £190 x 0.3 =
£57). The links: ``funder:a -> body:b`` £57, ``own -> body:b`` £133, ``body:b -> function:09``
£200, ``body:b -> function:06`` -£10. Into B: 57 + 133 = £190; out of B: 200 - 10 = £190;
Education £200, Housing -£10, the total £190 either way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocation.money import IdLookup, group_sum, split_pence
from domain.errors import ConservationError

#: Node kinds, one per column: funders, spending bodies, functions (COFOG divisions).
FUNDER, BODY, FUNCTION = "funder", "body", "function"
KINDS = (FUNDER, BODY, FUNCTION)
#: The node of every body's own resources (no colon: it cannot be a ``funder:<slug>``).
OWN = "own"
LINK_COLUMNS = ("source", "target", "source_kind", "target_kind", "pence")
NODE_COLUMNS = ("id", "kind", "key", "pence")


def funder_node(slug: str) -> str:
    """The id of the node of body ``slug`` as a funder (what it passed on)."""
    return f"funder:{slug}"


def body_node(slug: str) -> str:
    """The id of the node of body ``slug`` as a spending body."""
    return f"body:{slug}"


def function_node(division: str) -> str:
    """The id of COFOG division ``division``'s node ("01" .. "10")."""
    return f"function:{division}"


def cells_of(target_alloc: pd.DataFrame, slices: pd.DataFrame) -> pd.DataFrame:
    """Pence by spending body and COFOG division (body, division, pence), summed exactly.

    ``target_alloc``: slice_id, amount_pence (one area's, or several areas' together);
    ``slices``: slice_id, body, cofog_code. A slice not in ``slices`` is an error: its pence
    would be lost.
    """
    if target_alloc.empty:
        return pd.DataFrame({"body": pd.Series(dtype=object),
                             "division": pd.Series(dtype=object),
                             "pence": pd.Series(dtype=np.int64)})
    ids = slices["slice_id"].to_numpy(dtype=np.int64)
    keys = pd.MultiIndex.from_arrays([slices["body"].astype(str).to_numpy(),
                                      slices["cofog_code"].astype(str).str.slice(0, 2)
                                      .to_numpy()])
    key_codes, uniques = pd.factorize(keys)
    lookup = IdLookup(ids)
    position = np.full(lookup.size, -1, dtype=np.intp)
    position[lookup.slots(ids)] = key_codes
    key = lookup.take(position, target_alloc["slice_id"].to_numpy(dtype=np.int64))
    if (key < 0).any():
        bad = int(target_alloc["slice_id"].to_numpy()[key < 0][0])
        raise ValueError(f"slice {bad} has pence but is not one of the run's slices")
    pence = group_sum(target_alloc["amount_pence"].to_numpy(dtype=np.int64), key, len(uniques))
    out = pd.DataFrame({"body": uniques.get_level_values(0).astype(object),
                        "division": uniques.get_level_values(1).astype(object),
                        "pence": pence})
    return out.loc[out["pence"] != 0].sort_values(["body", "division"], ignore_index=True)


def _tidy_cells(cells: pd.DataFrame) -> dict[tuple[str, str], int]:
    """(body, division) -> whole pence, summed, zeros dropped, in (body, division) order.

    The tables are small (a place has at most a few hundred cells), so plain integers do it
    faster than a grouped frame would, and exactly.
    """
    out: dict[tuple[str, str], int] = {}
    if cells.empty:
        return out
    for body, division, pence in cells[["body", "division", "pence"]].itertuples(
            index=False, name=None):
        whole = int(pence)
        if whole != pence:
            raise ValueError(f"cells must be whole pence, not {pence!r}")
        key = (str(body), str(division))
        out[key] = out.get(key, 0) + whole
    return {k: out[k] for k in sorted(out) if out[k]}


def _add(totals: dict[str, int], key: str, pence: int) -> None:
    totals[key] = totals.get(key, 0) + pence


def place_flows(cells: pd.DataFrame, received: pd.DataFrame, spent: pd.DataFrame
                ) -> pd.DataFrame:
    """The links of a place's flow view, in whole pence, negative ones net income.

    ``cells``: body, division ("01" .. "10"), pence: the place's pence by spending body and
    COFOG division (exact integers; a (body, division) given twice is summed).
    ``received``: payer, payee, pence: what the run took off each payer's lines and counted at
    the payee (``deducted_pence`` of the run's flows; several rows of one pair are summed).
    ``spent``: body, pence: what the run placed for each body over its whole geography.

    Returns :data:`LINK_COLUMNS` (source, target, source_kind, target_kind, pence), body by
    body (in slug order): its funders (slug order, ``own`` last), then its functions (division
    order). No link is zero; see the module's docstring for what a negative one means and the
    identities that keep every total exact.
    """
    tidy = _tidy_cells(cells)
    place: dict[str, int] = {}
    for (body, _), pence in tidy.items():
        _add(place, body, pence)
    given: dict[str, dict[str, int]] = {}
    for payer, payee, pence in received[["payer", "payee", "pence"]].itertuples(
            index=False, name=None):
        if int(pence) > 0:  # only what was taken off the payer is the payer's money
            _add(given.setdefault(str(payee), {}), str(payer), int(pence))
    placed = {str(b): int(p) for b, p in spent[["body", "pence"]].itertuples(
        index=False, name=None)}

    # 1. funders of each body whose pence in the place are positive, split exactly
    funded = [b for b in place if place[b] > 0]
    group: list[int] = []
    weight: list[float] = []
    source: list[str] = []
    for g, b in enumerate(funded):
        payers = sorted(given.get(b, {}).items())
        receipts = sum(p for _, p in payers)
        own = max(placed.get(b, 0) - receipts, 0) if receipts else 1
        for payer, p in payers:
            group.append(g)
            weight.append(float(p))
            source.append(funder_node(payer))
        if own > 0:
            group.append(g)
            weight.append(float(own))
            source.append(OWN)
    shares = split_pence(np.array([place[b] for b in funded], dtype=np.int64),
                         np.asarray(group, dtype=np.intp),
                         np.asarray(weight, dtype=np.float64)).tolist() if funded else []
    by_body: dict[str, list[tuple[str, str, str, str, int]]] = {b: [] for b in place}
    for g, src, pence in zip(group, source, shares, strict=True):
        if pence:
            by_body[funded[g]].append((src, body_node(funded[g]), FUNDER, BODY, int(pence)))
    # a body that took in more than it spent here: one link of its net income, from its own
    for b, pence in place.items():
        if pence < 0:
            by_body[b].append((OWN, body_node(b), FUNDER, BODY, pence))
    # 2. every cell, with its sign
    for (b, division), pence in tidy.items():
        by_body[b].append((body_node(b), function_node(division), BODY, FUNCTION, pence))
    rows = [row for b in place for row in by_body[b]]
    _check(rows, place)
    links = pd.DataFrame(rows, columns=list(LINK_COLUMNS))
    links["pence"] = links["pence"].astype(np.int64)
    return links


def _check(rows: list[tuple[str, str, str, str, int]], place: dict[str, int]) -> None:
    """Every body: links in == links out == its pence; a positive body's funders all positive."""
    into: dict[str, int] = {}
    out: dict[str, int] = {}
    for source, target, _, _, pence in rows:
        if pence == 0:
            raise ConservationError(f"the flow link {source} -> {target} is 0p",
                                    "report this as a bug with the place that caused it")
        _add(into, target, pence)
        _add(out, source, pence)
    for b, pence in place.items():
        node = body_node(b)
        if into.get(node, 0) != pence or out.get(node, 0) != pence:
            raise ConservationError(f"the flows of body {b} do not add up to its {pence}p",
                                    "report this as a bug with the place that caused it")
        if pence > 0 and any(r[4] < 0 for r in rows if r[1] == node):
            raise ConservationError(f"a funder of body {b} has a negative share",
                                    "report this as a bug with the place that caused it")


def flow_nodes(links: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The nodes of :func:`place_flows`' links: id, kind, key (slug or division), pence.

    Bodies and divisions carry their net pence in the place (signed: the feature's
    ``body_<slug>`` and ``cofog_XX`` in pence, which are also their links added up); funders
    the sum of their links. In order of :data:`KINDS`: funders and bodies largest first (then
    by id), functions by division.
    """
    net: dict[str, int] = {}
    for (body, division), pence in _tidy_cells(cells).items():
        _add(net, body_node(body), pence)
        _add(net, function_node(division), pence)
    kinds: dict[str, str] = {}
    given: dict[str, int] = {}
    for source, target, source_kind, target_kind, pence in links[list(LINK_COLUMNS)].itertuples(
            index=False, name=None):
        kinds.setdefault(source, source_kind)
        kinds.setdefault(target, target_kind)
        if source_kind == FUNDER:
            _add(given, source, int(pence))
    rank = {k: i for i, k in enumerate(KINDS)}
    table = []
    for node, kind in kinds.items():
        pence = given[node] if kind == FUNDER else net.get(node, 0)
        key = node.split(":", 1)[1] if ":" in node else node
        size = 0 if kind == FUNCTION else -pence  # functions in division order (by id)
        table.append((rank[kind], size, node, kind, key, pence))
    table.sort()
    nodes = pd.DataFrame([row[2:] for row in table], columns=list(NODE_COLUMNS))
    nodes["pence"] = nodes["pence"].astype(np.int64)
    return nodes
