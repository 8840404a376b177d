"""Runs: each published apportionment, with its parameters and conservation report.

A run never changes once published, so these answers carry the provenance behind every figure a
collection serves: which lines, which proxies, and where every penny went.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ConnDep
from api.http import base_url, json_response, link
from store import runs as store

router = APIRouter(tags=["Runs"])

JSON = "application/json"


def _links(base: str, run_id: int, collections: list[str]) -> list[dict[str, str]]:
    links = [link(f"{base}/runs/{run_id}", "self", JSON, f"Run {run_id}")]
    links += [
        link(f"{base}/collections/{cid}", "related", JSON, f"Collection {cid}")
        for cid in collections
    ]
    return links


@router.get("/runs", summary="Runs")
def list_runs(request: Request, conn: ConnDep) -> JSONResponse:
    """Every published run, newest first, with its headline conservation figures (pence)."""
    base = base_url(request)
    out: list[dict[str, Any]] = []
    for row in store.list_runs(conn):
        out.append({
            "id": row["id"],
            "financial_year": row["financial_year"],
            "created_at": row["created_at"],
            "code_version": row["code_version"],
            "status": row["status"],
            "total_pence": row["total_pence"],
            "allocated_pence": row["allocated_pence"],
            "unallocated_pence": row["unallocated_pence"],
            "links": _links(base, row["id"], [])[:1],
        })
    return json_response({
        "links": [link(f"{base}/runs", "self", JSON, "Runs")],
        "runs": out,
    })


@router.get("/runs/{run_id}", summary="One run", responses={404: {"description": "No such run"}})
def get_run(request: Request, conn: ConnDep, run_id: int) -> JSONResponse:
    """One run: its parameters, collections and whole conservation report; 404 if absent."""
    run = store.get_run(conn, run_id)
    body = {
        "id": run["id"],
        "financial_year": run["financial_year"],
        "created_at": run["created_at"],
        "code_version": run["code_version"],
        "status": run["status"],
        "inputs_sha256": run["inputs_sha256"],
        "atom_set_id": run["atom_set_id"],
        "params": run["params"],
        "collections": run["collections"],
        "conservation": run["conservation"],
        "links": _links(base_url(request), run["id"], run["collections"]),
    }
    return json_response(body)
