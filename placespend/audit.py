"""Who wrote what, when, and how it ended: one audit entry per write attempted.

The API records every write request (api/audit.py, after the answer is known, on a
connection of its own so a refused or failed write keeps its entry); the CLI records its
loads, runs, publications and key changes. Entries are append-only (the schema refuses
UPDATE, DELETE and TRUNCATE); administrators read them (``GET /audit``).
"""

from __future__ import annotations

from typing import Any

from store import audit as store_audit
from store.db import Connection


def outcome_of(status: int, *, created: bool | None = None) -> str:
    """The outcome an HTTP status stands for.

    ``ok``, ``unchanged`` (nothing new stored), ``denied`` (401/403), ``refused`` (other 4xx)
    or ``failed`` (5xx).
    """
    if status in (401, 403):
        return "denied"
    if status >= 500:
        return "failed"
    if status >= 400:
        return "refused"
    return "unchanged" if created is False else "ok"


def record(conn: Connection, *, action: str, outcome: str, actor: str | None = None,
           key_prefix: str | None = None, role: str | None = None, target: str | None = None,
           batch_sha256: str | None = None, status: int | None = None,
           detail: str | None = None, client: str | None = None) -> int:
    """Append one entry; return its id."""
    return store_audit.record(conn, {
        "actor": actor, "key_prefix": key_prefix, "role": role, "action": action,
        "target": target, "batch_sha256": batch_sha256, "outcome": outcome, "status": status,
        "detail": None if detail is None else detail[:2000], "client": client,
    })


def listed(conn: Connection, *, limit: int = 100, before: int | None = None,
           action: str | None = None, outcome: str | None = None) -> list[dict[str, Any]]:
    """Entries newest first, as JSON-ready dicts."""
    rows = store_audit.entries(conn, limit=limit, before=before, action=action,
                               outcome=outcome)
    return [{**r, "at": r["at"].isoformat()} for r in rows]
