"""Runs: each computed apportionment, its parameters, publications and conservation report.

A run never changes once made, so these answers carry the provenance behind every figure a
collection serves: which lines, which proxies, and where every penny went. The report's line
table is served in pages (``/runs/{id}/lines``) and whole as CSV (``/runs/{id}/lines.csv``);
one line's spread over the atoms is derived on request (``/runs/{id}/lines/{line_id}``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ConnDep, KeyDep
from api.http import base_url, cached, etag, json_response, link
from api.openapi import WRITE_ERRORS
from domain.errors import BadRequest
from placespend.runs import (
    DEFAULT_TARGETS,
    RunRequest,
    line_spread,
    make_run_recorded,
    publish,
)
from store import runs as store
from store import transfers as store_transfers
from store.db import Connection, pooled, set_local_timeout
from store.runs import reap_attempts

#: A set's or proxy's slug.
SLUG = r"^[a-z0-9][a-z0-9-]{0,79}$"

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


@router.get("/runs/attempts", summary="Run attempts: running, complete or failed (and why)")
def run_attempts(conn: ConnDep,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JSONResponse:
    """The latest requests to make a run, newest first; a failed one says why."""
    reap_attempts(conn)
    rows = store.attempts(conn, limit)
    return json_response({"attempts": [
        {**r, "started_at": r["started_at"].isoformat(),
         "finished_at": None if r["finished_at"] is None else r["finished_at"].isoformat()}
        for r in rows]})


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
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JSONResponse:
    """Each source line: its pence, what reached atoms, the method, the proxy and any reason."""
    if offset > request.app.state.settings.max_offset:
        raise BadRequest(f"offset {offset:,} is over this server's maximum of "
                         f"{request.app.state.settings.max_offset:,}",
                         f"take every line at once from /runs/{run_id}/lines.csv",
                         where="offset")
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


# ---- writes: making and publishing runs (an editor's key, unscoped) -----------------------


class RunBody(BaseModel):
    """What to apportion: the options of ``placespend run`` a client may choose.

    The proxy table is the embedded default (a server path is never read on a client's say).
    """

    model_config = ConfigDict(extra="forbid")

    financial_year: str = Field("2014-15", pattern=r"^\d{4}-\d{2}$", examples=["2014-15"])
    basis: Literal["served", "delivered"] = "served"
    netting_rules: Literal["default", "none"] = "default"
    finer: str | None = Field(None, pattern=SLUG, description="a finer set, e.g. hackney-oa-2011")
    finer_proxy: str | None = Field(None, pattern=SLUG)
    target_sets: list[Annotated[str, Field(pattern=SLUG)]] | None = Field(
        None, min_length=1, max_length=20,
        description="boundary sets to publish through (default: Hackney's and London's wards)")
    publish: bool = Field(False, description="make this run the one its collections serve")


class PublishBody(BaseModel):
    """Which of a run's publications to make public (default: every one it has)."""

    model_config = ConfigDict(extra="forbid")

    target_sets: list[Annotated[str, Field(pattern=SLUG)]] | None = Field(
        None, min_length=1, max_length=20)
    best_fit: bool = False


@contextmanager
def _write_conn(request: Request) -> Iterator[Connection]:
    """A pool connection whose statements may take as long as a write is allowed."""
    with pooled(request.app.state.pool) as conn:
        set_local_timeout(conn, request.app.state.settings.write_timeout_ms)
        yield conn


@router.post("/runs", summary="Make a run (and publish it, if asked)", status_code=201,
             responses={200: {"description": "The same inputs' run already existed"},
                        **WRITE_ERRORS, 404: {"description": "A named set does not exist"},
                        422: {"description": "The inputs cannot be apportioned"}})
def create_run(request: Request, key: KeyDep, body: RunBody) -> JSONResponse:
    """Apportion a year's spend as ``placespend run`` does, recorded as a run attempt.

    201 with the new run; 200 when a run of exactly these inputs exists (it is reused, and two
    identical requests at once make one run). A failure leaves nothing of the run and marks
    its attempt failed with the reason (``GET /runs/attempts``).
    """
    request.state.audit_target = body.financial_year
    key.need_unscoped("make runs")
    req = RunRequest(
        financial_year=body.financial_year, basis=body.basis,
        netting_rules=None if body.netting_rules == "none" else RunRequest().netting_rules,
        finer=body.finer, finer_proxy=body.finer_proxy,
        target_sets=tuple(body.target_sets) if body.target_sets else DEFAULT_TARGETS)
    result = make_run_recorded(lambda: _write_conn(request), req, by=key.name,
                               then_publish=body.publish)
    request.state.audit_created = result.created
    request.state.audit_target = f"run {result.run_id}"
    base = base_url(request)
    return json_response({"run": result.run_id, "created": result.created,
                          "collections": list(result.collections),
                          "published": body.publish, "links": _links(base, result.run_id)},
                         status_code=201 if result.created else 200)


@router.post("/runs/{run_id}/publish", summary="Make a run the one its collections serve",
             responses={**WRITE_ERRORS, 404: {"description": "No such run or set"}})
def publish_run(request: Request, run_id: int, key: KeyDep,
                body: PublishBody | None = None) -> JSONResponse:
    """Publish: its collections (all, or through the sets named) now serve this run.

    Every collection moves in one transaction: a reader sees the old run or the new, never a
    mix. Publishing appends to the publication log; nothing is overwritten.
    """
    body = body or PublishBody()
    request.state.audit_target = f"run {run_id}"
    key.need_unscoped("publish runs")
    if body.best_fit and not body.target_sets:
        raise BadRequest("a best-fit publication needs its target sets",
                         "name them in target_sets", where="target_sets")
    with _write_conn(request) as conn:
        ids = publish(conn, run_id, body.target_sets, fit="best_fit" if body.best_fit
                      else "split", by=key.name)
    return json_response({"run": run_id, "published": ids,
                          "links": _links(base_url(request), run_id)})
