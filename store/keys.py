"""API keys: only the SHA-256 of a key is stored; a key is revoked, never deleted."""

from __future__ import annotations

from store.db import Connection


def save_key(conn: Connection, *, name: str, prefix: str, sha256: str, role: str,
             bodies: list[str] | None = None, places: list[str] | None = None,
             created_by: str = "cli") -> int:
    """Insert a key's hash, role and scope; return its id."""
    row = conn.execute(
        "INSERT INTO api_key (name, prefix, sha256, role, bodies, places, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (name, prefix, sha256, role, bodies, places, created_by),
    ).fetchone()
    return int(row["id"])


def find_key(conn: Connection, sha256: str) -> dict | None:
    """The key with this hash, or None."""
    return conn.execute("SELECT * FROM api_key WHERE sha256 = %s", (sha256,)).fetchone()


def find_name(conn: Connection, name: str) -> dict | None:
    """The key with this name, or None."""
    return conn.execute("SELECT * FROM api_key WHERE name = %s", (name,)).fetchone()


def revoke(conn: Connection, name: str) -> bool:
    """Revoke a key by name; False if there is no such unrevoked key."""
    return conn.execute(
        "UPDATE api_key SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,)
    ).rowcount == 1


def list_keys(conn: Connection) -> list[dict]:
    """Every key (never the key itself): name, prefix, role, scope, created, revoked."""
    return conn.execute(
        "SELECT name, prefix, role, bodies, places, created_by, created_at, revoked_at"
        " FROM api_key ORDER BY id"
    ).fetchall()
