"""Follow the money: a place's flows, funders -> spending bodies -> functions (a Sankey).

Thin: :func:`placespend.flows.layer_flows` works the flows out from the publication's own pence,
so their totals are the features' to the penny. A publication never changes under its run, so
the answer is cached like ``/items``: an ETag of the layer's version and the code, and, with
``?run=N``, immutable for a year. Its ``links`` are the diagram's (source, target, pence), not
hyperlinks: the answer has the shape of a drawn polygon's ``flows`` (``POST
/neighbourhoods/budget``), so one piece of code draws both.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.cache import keep_answer, remembered
from api.deps import ConnDep
from api.http import cached, check_known, layer_etag, not_modified
from api.openapi import ERRORS, NOT_MODIFIED
from api.query import RunPin
from placespend.flows import layer_flows
from store import features as store

router = APIRouter(tags=["Flows"])

JSON = "application/json"
_NODE = {"type": "object", "required": ["id", "name", "kind", "pence", "pounds"], "properties": {
    "id": {"type": "string", "description": "funder:<slug>, own, body:<slug> or "
                                            "function:<division>"},
    "name": {"type": "string"},
    "kind": {"enum": ["funder", "body", "function"]},
    "pence": {"type": "integer", "description": "A body's or function's net pence in the place "
                                                "(signed, as on the map); a funder's links"},
    "pounds": {"type": "number"},
}}
_LINK = {"type": "object", "required": ["source", "target", "pence", "pounds"], "properties": {
    "source": {"type": "string"}, "target": {"type": "string"},
    "pence": {"type": "integer", "description": "Whole pence, never 0; negative: net income "
                                                "(a Sankey draws the positive links only)"},
    "pounds": {"type": "number"},
}}
FLOWS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["run", "collection", "code", "name", "financial_year", "total_pence", "total",
                 "nodes", "links", "notes"],
    "properties": {
        "run": {"type": "integer"},
        "collection": {"type": ["string", "null"]},
        "code": {"type": ["string", "null"]},
        "name": {"type": ["string", "null"]},
        "financial_year": {"type": "string"},
        "total_pence": {"type": "integer"},
        "total": {"type": "number"},
        "nodes": {"type": "array", "items": _NODE},
        "links": {"type": "array", "items": _LINK},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}


@router.get(
    "/collections/{collectionId}/flows",
    summary="Follow the money: funders -> spending bodies -> functions, for a place",
    response_class=Response,
    responses={
        200: {"content": {JSON: {"schema": FLOWS_SCHEMA}},
              "description": "The nodes and links of a Sankey diagram, in exact pence"},
        **NOT_MODIFIED,
        400: ERRORS[400],
        404: {"description": "No such collection, feature or run, or a boundary set (no "
                             "figures)"},
    },
)
def flows(
    request: Request,
    conn: ConnDep,
    collectionId: str,  # noqa: N803
    code: Annotated[str | None, Query(
        max_length=64, description="One feature's code (a ward's GSS code); leave it out for "
                                   "the whole layer", examples=["E05009372"],
    )] = None,
    run: RunPin = None,
) -> Response:
    """Who paid for a place's public money, which bodies spent it, and on what.

    Nodes are funders (a body that passed money on, or "Own income and other funding"),
    spending bodies and COFOG divisions; links are whole pence, negative where a body took in
    more than it spent (net income). Added up with their signs, a body's links are the
    feature's ``body_<slug>``, a division's its ``cofog_XX`` and all the function links its
    ``total_pence``, exactly (see docs/methods.md, "Following the money").
    """
    check_known(request, frozenset({"code", "run"}))
    layer = store.get_layer(conn, collectionId, run)
    tag = layer_etag(layer, "flows", code)
    pinned = run is not None
    if not_modified(request, tag):
        return cached(request, tag, "", JSON, pinned=pinned)

    def make() -> bytes:
        return json.dumps(layer_flows(conn, layer, code)).encode()

    body = remembered(request, tag, make)  # no hyperlinks: the same body at any address
    response = cached(request, tag, body, JSON, pinned=pinned)
    return keep_answer(request, response) if pinned else response
