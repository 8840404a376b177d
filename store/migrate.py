"""Apply ``migrations/NNNN_*.sql`` in order, each once, then the API role's grants.

The migrations run as the database owner (``DATABASE_URL``). After them, every time,
``store/sql/api_role.sql`` (re)grants the role the HTTP API connects as
(:data:`API_ROLE`, see :func:`store.db.api_url`), so a table added later is covered too.
"""

from __future__ import annotations

from importlib import resources

from psycopg import sql

from store.db import API_ROLE, Connection

_LOCK = 7_311_942  # advisory lock id: two processes never migrate at once


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration, in order."""
    files = resources.files("migrations")
    names = sorted(p.name for p in files.iterdir() if p.name.endswith(".sql"))
    return [(name, files.joinpath(name).read_text(encoding="utf-8")) for name in names]


def applied_migrations(conn: Connection) -> set[str] | None:
    """The migrations the database records as applied; None if it has no record at all."""
    row = conn.execute("SELECT to_regclass('schema_migration') IS NOT NULL AS present").fetchone()
    if not row["present"]:
        return None
    return {r["name"] for r in conn.execute("SELECT name FROM schema_migration")}


def migrate(conn: Connection, *, api_password: str | None = None) -> list[str]:
    """Apply the migrations this database lacks and the API role's grants; return the names.

    ``api_password`` (``PLACESPEND_API_DB_PASSWORD``) is set as the API role's password, for
    servers that do not trust loopback connections as the project-local cluster does.
    """
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in conn.execute("SELECT name FROM schema_migration")}
        for name, text in migration_files():
            if name in done:
                continue
            conn.execute(text)
            conn.execute("INSERT INTO schema_migration (name) VALUES (%s)", (name,))
            applied.append(name)
        conn.execute(resources.files("store").joinpath("sql/api_role.sql")
                     .read_text(encoding="utf-8"))
        if api_password:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(API_ROLE), sql.Literal(api_password)))
    return applied
