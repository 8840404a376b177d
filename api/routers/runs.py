"""Runs: each computed apportionment, its parameters, publications and conservation report.

A run never changes once made, so these answers carry the provenance behind every figure a
collection serves: which lines, which proxies, and where every penny went. The report's line
table is served in pages (``/runs/{id}/lines``) and whole as CSV (``/runs/{id}/lines.csv``);
one line's spread over the atoms is derived on request (``/runs/{id}/lines/{line_id}``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import ConnDep
from api.http import base_url, cached, etag, json_response, link
from placespend.runs import line_spread
from store import runs as store
from store import transfers as store_transfers

router = APIRouter(tags=["Runs"])

JSON = "application/json"
CSV = "text/csv"
#: Largest page of a run's lines; the CSV has them all.
MAX_LINES_PAGE = 10_000


def _links(base: str, run_id: int) -> list[dict[str, str]]:
    return [
        link(f"{base}/runs/{run_id}", "self", JSON, f"Run {run_id}"),
        link(f"{base}/runs/{run_id}/lines", "related", JSON,
             "The conservation report, one source line per row (paged)"),
        link(f"{base}/runs/{run_id}/lines.csv", "alternate", CSV,
             "The whole conservation report as CSV"),
    ]


@router.get("/runs", summary="Runs")
def list_runs(request: Request, conn: ConnDep) -> JSONResponse:
    """Every run, newest first, with its headline conservation figures (pence)."""
    base = base_url(request)
    out: list[dict[str, Any]] = []
    for row in store.list_runs(conn):
        out.append({
            "id": row["id"],
            "financial_year": row["financial_year"],
            "created_at": row["created_at"],
            "algorithm_version": row["algorithm_version"],
            "code_version": row["code_version"],
            "status": row["status"],
            "total_pence": row["total_pence"],
            "allocated_pence": row["allocated_pence"],
            "unallocated_pence": row["unallocated_pence"],
            "links": _links(base, row["id"])[:1],
        })
    return json_response({
        "links": [link(f"{base}/runs", "self", JSON, "Runs")],
        "runs": out,
    })


@router.get("/runs/{run_id}", summary="One run", responses={404: {"description": "No such run"}})
def get_run(request: Request, conn: ConnDep, run_id: int) -> JSONResponse:
    """One run: its parameters, totals and publications (which are public now); 404 if absent."""
    run = store.get_run(conn, run_id)
    base = base_url(request)
    collections = [
        {
            "id": c["id"],
            "target_set": c["target_set"],
            "public": c["current"],
            "allocated_pence": c["allocated_pence"],
            "outside_pence": c["outside_pence"],
            "href": f"{base}/collections/{c['id']}?run={run_id}",
        }
        for c in run["collections"]
    ]
    links = _links(base, run_id) + [
        link(c["href"], "related", JSON, f"Collection {c['id']} as published from this run")
        for c in collections
    ]
    return json_response({
        "id": run["id"],
        "financial_year": run["financial_year"],
        "created_at": run["created_at"],
        "algorithm_version": run["algorithm_version"],
        "code_version": run["code_version"],
        "status": run["status"],
        "inputs_sha256": run["inputs_sha256"],
        "atom_set_id": run["atom_set_id"],
        "params": run["params"],
        "conservation": run["conservation"],
        "collections": collections,
        "links": links,
    })


@router.get("/runs/{run_id}/lines", summary="A run's conservation report, paged",
            responses={404: {"description": "No such run"}})
def lines(
    request: Request,
    conn: ConnDep,
    run_id: int,
    limit: Annotated[int, Query(ge=1, le=MAX_LINES_PAGE)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> JSONResponse:
    """Each source line: its pence, what reached atoms, the method, the proxy and any reason."""
    store.get_run(conn, run_id)
    total = store.count_lines(conn, run_id)
    page = store.run_lines(conn, run_id, limit=limit, offset=offset)
    base = base_url(request)
    links = [link(str(request.url), "self", JSON, "This page"),
             link(f"{base}/runs/{run_id}/lines.csv", "alternate", CSV, "All lines as CSV")]
    if offset + len(page) < total:
        links.append(link(str(request.url.include_query_params(offset=offset + limit)),
                          "next", JSON, "Next page"))
    if offset > 0:
        links.append(link(str(request.url.include_query_params(offset=max(0, offset - limit))),
                          "prev", JSON, "Previous page"))
    records = page.astype(object).where(page.notna(), None).to_dict(orient="records")
    for r in records:
        r["href"] = f"{base}/runs/{run_id}/lines/{r['line_id']}"
    return json_response({"run": run_id, "numberMatched": total, "numberReturned": len(page),
                          "links": links, "lines": records})


@router.get("/runs/{run_id}/lines.csv", summary="A run's conservation report as CSV",
            response_class=Response,
            responses={200: {"content": {CSV: {}}, "description": "One row per source line"},
                       404: {"description": "No such run"}})
def lines_csv(request: Request, conn: ConnDep, run_id: int) -> Response:
    """The whole conservation report; runs never change, so it is cached by run."""
    store.get_run(conn, run_id)
    tag = etag("lines.csv", run_id)
    body = store.run_lines(conn, run_id).to_csv(index=False)
    response = cached(request, tag, body, CSV)
    response.headers["Content-Disposition"] = f'attachment; filename="run-{run_id}-lines.csv"'
    return response


@router.get("/runs/{run_id}/lines/{line_id}", summary="One line and where its pence went",
            responses={404: {"description": "No such run, or the line is not in it"}})
def one_line(request: Request, conn: ConnDep, run_id: int, line_id: int) -> JSONResponse:
    """One source line's outcome and its pence per atom, derived exactly as the run placed it.

    The atoms are the small areas cut by the run's wards (``zone_code`` | ``cut_code``); the
    pence of a line's atoms add up to its allocated pence.
    """
    spread = line_spread(conn, run_id, line_id)
    row = store.run_lines(conn, run_id, line_id=line_id)
    record = row.astype(object).where(row.notna(), None).to_dict(orient="records")[0]
    by_ward = spread.groupby("cut_code")["amount_pence"].sum()
    return json_response({
        "run": run_id,
        "line_id": line_id,
        **record,
        "by_cut_unit": {str(k): int(v) for k, v in by_ward.items()},
        "atoms": spread.astype(object).where(spread.notna(), None).to_dict(orient="records"),
        "links": [link(str(request.url), "self", JSON, "This line"),
                  link(f"{base_url(request)}/runs/{run_id}", "up", JSON, f"Run {run_id}")],
    })


@router.get("/runs/{run_id}/flows", summary="Money a run counted as passed between bodies",
            responses={404: {"description": "No such run"}})
def run_flows(request: Request, conn: ConnDep, run_id: int) -> JSONResponse:
    """Each transfer the run counted once: payer, payee, pence, and what left the payer's lines.

    A grant is counted at the body that spends it: ``deducted_pence`` were taken off the
    payer's lines (and are placed by the payee's); ``not_deducted_pence`` were more than the
    payer's lines held. The run's ``conservation.bodies`` gives each body's reported, passed-on,
    received and placed pence.
    """
    run = store.get_run(conn, run_id)
    flows = store_transfers.run_flows(conn, run_id)
    return json_response({
        "run": run_id,
        "financial_year": run["financial_year"],
        "flows": flows,
        "bodies": run["conservation"].get("bodies", {}),
        "links": [link(str(request.url), "self", JSON, "These flows"),
                  link(f"{base_url(request)}/runs/{run_id}", "up", JSON, f"Run {run_id}")],
    })
