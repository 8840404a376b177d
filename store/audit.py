"""The audit log: one row per write attempted, whatever its outcome; never changed."""

from __future__ import annotations

from store.db import Connection

COLUMNS = ("actor", "key_prefix", "role", "action", "target", "batch_sha256", "outcome",
           "status", "detail", "client")


def record(conn: Connection, entry: dict) -> int:
    """Append one entry (keys of :data:`COLUMNS`; missing ones are NULL); return its id."""
    row = conn.execute(
        f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES "
        f"({', '.join(['%s'] * len(COLUMNS))}) RETURNING id",
        tuple(entry.get(c) for c in COLUMNS),
    ).fetchone()
    return int(row["id"])


def entries(conn: Connection, *, limit: int = 100, before: int | None = None,
            action: str | None = None, outcome: str | None = None) -> list[dict]:
    """Entries newest first, ``limit`` at most, older than id ``before`` if given."""
    return conn.execute(
        "SELECT id, at, " + ", ".join(COLUMNS) + " FROM audit_log"
        " WHERE (%(before)s::bigint IS NULL OR id < %(before)s)"
        " AND (%(action)s::text IS NULL OR action = %(action)s)"
        " AND (%(outcome)s::text IS NULL OR outcome = %(outcome)s)"
        " ORDER BY id DESC LIMIT %(limit)s",
        {"before": before, "action": action, "outcome": outcome, "limit": limit},
    ).fetchall()
