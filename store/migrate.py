"""Apply ``migrations/NNNN_*.sql`` in order, each once, each in its own transaction."""

from __future__ import annotations

from importlib import resources

from store.db import Connection

_LOCK = 7_311_942  # advisory lock id: two processes never migrate at once


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration, in order."""
    files = resources.files("migrations")
    names = sorted(p.name for p in files.iterdir() if p.name.endswith(".sql"))
    return [(name, files.joinpath(name).read_text(encoding="utf-8")) for name in names]


def migrate(conn: Connection) -> list[str]:
    """Apply the migrations this database lacks; return the names applied."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in conn.execute("SELECT name FROM schema_migration")}
        for name, sql in migration_files():
            if name in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migration (name) VALUES (%s)", (name,))
            applied.append(name)
    return applied
