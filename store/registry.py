"""Upload batches: one row per loaded file, keyed by the hash of its content and options.

Every load (boundaries, proxy, sites, postcodes, spend, transfers, functions) writes its batch
and its rows in one transaction, under a lock per kind, so two uploads of the same file at the
same moment make one batch, and a failure stores nothing.
"""

from __future__ import annotations

import json
import zlib

from store.db import Connection

KINDS = ("boundaries", "proxy", "sites", "postcodes", "spend", "transfers", "functions")


def lock(conn: Connection, kind: str) -> None:
    """Hold a transaction-scoped lock on loads of ``kind`` (call inside a transaction)."""
    key = zlib.crc32(kind.encode()) - (1 << 31)  # into int4
    conn.execute("SELECT pg_advisory_xact_lock(%s::int, %s::int)", (7_311_943, key))


def find_batch(conn: Connection, kind: str, sha256: str) -> dict | None:
    """The batch that already holds this content (with these options), or None."""
    return conn.execute(
        "SELECT * FROM upload_batch WHERE kind = %s AND sha256 = %s", (kind, sha256)
    ).fetchone()


def get_batch(conn: Connection, batch_id: int) -> dict | None:
    """A batch by id, or None."""
    return conn.execute("SELECT * FROM upload_batch WHERE id = %s", (batch_id,)).fetchone()


def save_batch(
    conn: Connection, *, kind: str, filename: str, sha256: str, rows: int,
    options: dict, report: dict, loaded_by: str,
) -> int:
    """Insert a batch row and return its id."""
    row = conn.execute(
        "INSERT INTO upload_batch (kind, filename, sha256, rows, options, report, loaded_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (kind, filename, sha256, rows, json.dumps(options), json.dumps(report), loaded_by),
    ).fetchone()
    return int(row["id"])


def list_batches(conn: Connection, kind: str | None = None) -> list[dict]:
    """Every batch (of one kind), newest first."""
    return conn.execute(
        "SELECT id, kind, filename, sha256, rows, loaded_at, loaded_by, report"
        " FROM upload_batch WHERE %s::text IS NULL OR kind = %s ORDER BY id DESC",
        (kind, kind),
    ).fetchall()
