"""Runs: one apportionment and everything it produced, written in one transaction.

A run is only ever inserted whole (run, atom allocations, target allocations, collections and
their features) inside one transaction, so a failure leaves nothing behind; triggers in the
schema refuse any later UPDATE or DELETE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from psycopg.types.json import Json, Jsonb

from placespend.errors import NotFound
from store.db import Connection

_RUN_LOCK = 7_311_943  # advisory lock: one run written at a time


@dataclass(frozen=True)
class CollectionWrite:
    """One target set's view of a run, published as an OGC API collection."""

    collection_id: str
    target_set_id: int
    title: str
    description: str
    target_alloc: pd.DataFrame  # line_id, target_code, method, amount_pence
    features: pd.DataFrame  # code + flat properties, one row per target unit
    schema: list[dict[str, Any]]  # name, type, nullable, description of each property


def lock_runs(conn: Connection) -> None:
    """Serialise run writers until the end of the current transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RUN_LOCK,))


def find_run(conn: Connection, inputs_sha256: str) -> dict | None:
    """A published run made from exactly these inputs, or None."""
    return conn.execute(
        "SELECT * FROM run WHERE inputs_sha256 = %s ORDER BY id DESC LIMIT 1", (inputs_sha256,)
    ).fetchone()


def get_run(conn: Connection, run_id: int) -> dict:
    """One run with its conservation report and collections."""
    run = conn.execute("SELECT * FROM run WHERE id = %s", (run_id,)).fetchone()
    if run is None:
        raise NotFound(f"no run {run_id}", "list runs with GET /runs")
    run["collections"] = [
        r["id"] for r in conn.execute(
            "SELECT id FROM collection WHERE run_id = %s ORDER BY id", (run_id,)
        )
    ]
    return run


def list_runs(conn: Connection) -> list[dict]:
    """Every run, newest first, without the per-line report."""
    return conn.execute(
        "SELECT id, financial_year, created_at, code_version, status,"
        " conservation->'total_pence' AS total_pence,"
        " conservation->'allocated_pence' AS allocated_pence,"
        " conservation->'unallocated_pence' AS unallocated_pence"
        " FROM run ORDER BY id DESC"
    ).fetchall()


def point_collections(conn: Connection, run_id: int) -> list[str]:
    """Make every collection of ``run_id`` serve that run; return their ids."""
    rows = conn.execute(
        "INSERT INTO collection_current (id, run_id)"
        " SELECT id, run_id FROM collection WHERE run_id = %s"
        " ON CONFLICT (id) DO UPDATE SET run_id = EXCLUDED.run_id, updated_at = now()"
        " RETURNING id",
        (run_id,),
    ).fetchall()
    return sorted(r["id"] for r in rows)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict(orient="records"):
        out.append({k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()})
    return out


def save_run(
    conn: Connection,
    *,
    financial_year: str,
    atom_set_id: int,
    inputs_sha256: str,
    params: dict[str, Any],
    code_version: str,
    conservation: dict[str, Any],
    allocations: pd.DataFrame,
    collections: list[CollectionWrite],
) -> int:
    """Write a whole run; returns its id. Call inside the caller's transaction."""
    run_id = int(
        conn.execute(
            "INSERT INTO run (financial_year, atom_set_id, inputs_sha256, params, code_version,"
            " conservation) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (financial_year, atom_set_id, inputs_sha256, Jsonb(params), code_version,
             Jsonb(conservation)),
        ).fetchone()["id"]
    )
    with conn.cursor().copy(
        "COPY allocation (run_id, spend_line_id, atom_id, amount_pence, method, proxy_slug)"
        " FROM STDIN"
    ) as copy:
        for line_id, atom_id, pence, method, proxy in allocations[
            ["line_id", "atom_id", "amount_pence", "method", "proxy"]
        ].itertuples(index=False, name=None):
            copy.write_row((run_id, int(line_id), int(atom_id), int(pence), method, proxy))
    for c in collections:
        with conn.cursor().copy(
            "COPY target_allocation (run_id, target_set_id, spend_line_id, target_code, method,"
            " amount_pence) FROM STDIN"
        ) as copy:
            for line_id, code, method, pence in c.target_alloc[
                ["line_id", "target_code", "method", "amount_pence"]
            ].itertuples(index=False, name=None):
                copy.write_row((run_id, c.target_set_id, int(line_id), code, method, int(pence)))
        conn.execute(
            "INSERT INTO collection (id, run_id, target_set_id, title, description, properties)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (c.collection_id, run_id, c.target_set_id, c.title, c.description,
             Jsonb(c.schema)),
        )
        with conn.cursor().copy(
            "COPY collection_feature (collection_id, run_id, code, properties) FROM STDIN"
        ) as copy:
            for rec in _records(c.features):
                copy.write_row((c.collection_id, run_id, rec["code"], Json(rec)))
    point_collections(conn, run_id)
    return run_id
