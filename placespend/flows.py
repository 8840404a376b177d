"""Follow the money: the flow view of a place, funders -> spending bodies -> functions.

:func:`layer_flows` answers for one feature of a publication (a ward) or for the whole layer;
:func:`flows_answer` for any body x division cells of a run (a drawn polygon's, from
:func:`placespend.neighbourhoods.budget`). Both read what the run counted as passed between
bodies (``run_flow``) and what it placed for each body (``run_line``), and hand the cells to the
pure core (:func:`allocation.flows.place_flows`), which keeps every total exact.

The answer is JSON-ready: ``nodes`` (id, name, kind, pence, pounds) and ``links`` (source,
target, pence, pounds), every link whole pence (negative only for net income), with ``notes``
saying in plain words what the diagram shows (docs/methods.md, "Following the money: the flow
view").
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from allocation import flows as core
from allocation.money import pounds
from domain.errors import NotFound
from store import boundaries as store_boundaries
from store import features as store_features
from store import reference, runs
from store import transfers as store_transfers
from store.db import Connection, remembered

OWN_NAME = "Own income and other funding"

def _run_inputs(conn: Connection, run_id: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(received, spent, transfers counted) of a run, read once per database and run.

    A run never changes, so what it counted as passed between bodies and what it placed for
    each body are kept (a drawn polygon's budget asks for them every time), under the run's
    fingerprint as well as its id.
    """
    def read() -> tuple[pd.DataFrame, pd.DataFrame, int]:
        counted = store_transfers.run_flows(conn, run_id)
        received = pd.DataFrame({"payer": [f["payer"] for f in counted],
                                 "payee": [f["payee"] for f in counted],
                                 "pence": [int(f["deducted_pence"]) for f in counted]})
        spent = runs.placed_by_body(conn, run_id)
        return received, spent, sum(1 for f in counted if int(f["deducted_pence"]) > 0)

    return remembered(conn, ("flow-inputs", run_id, runs.run_fingerprint(conn, run_id)), read)


def _names(conn: Connection, nodes: pd.DataFrame) -> list[str]:
    bodies = {slug: row["name"] for slug, row in reference.bodies(conn).items()}
    divisions = reference.cofog_divisions(conn)
    out = []
    for kind, node_id, key in zip(nodes["kind"], nodes["id"], nodes["key"], strict=True):
        if node_id == core.OWN:
            out.append(OWN_NAME)
        elif kind == core.FUNDER:
            out.append(f"Grants from {bodies.get(key, key)}")
        elif kind == core.BODY:
            out.append(bodies.get(key, key))
        else:
            out.append(divisions.get(key, key))
    return out


def _notes(run_id: int, year: str, transfers: int, links: pd.DataFrame,
           nodes: pd.DataFrame) -> list[str]:
    rows = list(links[["source", "target", "target_kind", "pence"]].itertuples(index=False,
                                                                             name=None))
    notes = []
    if transfers == 0:
        notes.append(f"No transfers between bodies were counted for {year} (run {run_id}): "
                     f"each body's money is shown as its own (\u201c{OWN_NAME}\u201d).")
    else:
        notes.append(
            f"{transfers} transfer(s) between bodies were counted in run {run_id}: a spending "
            "body's pence here are shared between the bodies that passed it money, in "
            "proportion to what it received from each over the whole run against all the run "
            f"placed for it; the rest is its own (\u201c{OWN_NAME}\u201d).")
    if transfers == 0 or any(source == core.OWN for source, _, _, _ in rows):
        notes.append(f"\u201c{OWN_NAME}\u201d is everything no loaded transfer explains: a "
                     "body's own taxes, charges and other income, and grants nobody loaded "
                     "as a transfer (a council's grants from government, say).")
    cells = sum(1 for _, _, kind, p in rows if p < 0 and kind == core.FUNCTION)
    bodies = sum(1 for s, _, _, p in rows if p < 0 and s == core.OWN)
    if cells or bodies:
        notes.append(
            f"{cells + bodies} link(s) are negative: net income, where a body took in more "
            f"than it spent, on one function ({cells} link(s) from a body to a function) or "
            f"here overall ({bodies} from \u201c{OWN_NAME}\u201d), such as pension "
            "contributions above the pensions paid. A diagram cannot draw them, but the "
            "figures count them: a body's or a function's figure (its node's pence) is its "
            "links added up with their signs.")
    names = dict(zip(nodes["id"], nodes["name"], strict=True))
    below = [names[t] for s, t, k, p in rows if s == core.OWN and p < 0]
    if below:
        notes.append(
            f"{len(below)} body/bodies took in more than they spent here ({', '.join(below)}): "
            f"each has one negative link from \u201c{OWN_NAME}\u201d, never shared between "
            "funders (a grant pays for spending, not for income), and its figure is negative, "
            "as on the map.")
    notes.append("Every link is whole pence: a body's links from its funders add up to its "
                 "figure exactly (running-total rounding); the function links add up to the "
                 "total, and so do the funder links.")
    return notes


def flows_answer(conn: Connection, run_id: int, financial_year: str, cells: pd.DataFrame, *,
                 collection: str | None = None, code: str | None = None,
                 name: str | None = None) -> dict[str, Any]:
    """The flow view of ``cells`` (body, division, pence) of run ``run_id``, JSON-ready.

    run, collection, code, name, financial_year, total_pence, total, nodes (id, name, kind,
    pence, pounds), links (source, target, pence, pounds) and notes.
    """
    received, spent, transfers = _run_inputs(conn, run_id)
    links = core.place_flows(cells, received, spent)
    nodes = core.flow_nodes(links, cells)
    nodes["name"] = _names(conn, nodes)
    total = int(cells["pence"].sum()) if len(cells) else 0
    return {
        "run": run_id,
        "collection": collection,
        "code": code,
        "name": name,
        "financial_year": financial_year,
        "total_pence": total,
        "total": pounds(total),
        "nodes": [{"id": i, "name": n, "kind": k, "pence": int(p), "pounds": pounds(int(p))}
                  for i, n, k, p in zip(nodes["id"], nodes["name"], nodes["kind"],
                                        nodes["pence"], strict=True)],
        "links": [{"source": s, "target": t, "pence": int(p), "pounds": pounds(int(p))}
                  for s, t, p in zip(links["source"], links["target"], links["pence"],
                                     strict=True)],
        "notes": _notes(run_id, financial_year, transfers, links, nodes),
    }


def layer_flows(conn: Connection, layer_id: str | store_features.Layer, code: str | None = None,
                run_id: int | None = None) -> dict[str, Any]:
    """The flow view of feature ``code`` of a publication, or of the whole layer (code None).

    ``layer_id`` is a collection id (as served now, or of ``run_id``) or a layer already
    looked up. NotFound for a boundary set (it has no figures) and for a code the layer lacks.
    """
    layer = (layer_id if isinstance(layer_id, store_features.Layer)
             else store_features.get_layer(conn, layer_id, run_id))
    if layer.kind != "publication" or layer.run_id is None:
        pubs = [other.id for other in store_features.list_layers(conn)
                if other.kind == "publication" and other.set_slug == layer.set_slug]
        asks = ", ".join(f"GET /collections/{p}/flows" for p in pubs)
        fix = (f"ask for a publication of it: {asks}" if pubs else
               f"publish a run to it (`placespend publish RUN --to {layer.id}`) and ask for "
               "that collection's flows (GET /collections lists them)")
        raise NotFound(f"{layer.id!r} is a boundary set: it has no figures, so no flows", fix,
                       where=layer.id)
    if code is None:
        name = store_boundaries.get_set_by_id(conn, layer.set_id)["name"]
    else:
        name = runs.feature_name(conn, layer.id, layer.run_id, code)
        if name is None:
            raise NotFound(f"collection {layer.id!r} has no feature {code!r}",
                           f"list its features with GET /collections/{layer.id}/items, or "
                           "leave code out for the whole layer", where="code")
    cells = runs.place_cells(conn, layer.run_id, layer.set_id, layer.fit, code)
    return flows_answer(conn, layer.run_id, str(layer.financial_year), cells,
                        collection=layer.id, code=code, name=name)
