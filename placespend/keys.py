"""API keys for writes over HTTP (uploads, saved neighbourhoods).

A key is 32 random bytes, shown once when it is created (``placespend keys create NAME``);
the database keeps only its SHA-256, enough for a key this long. Roles and an audit trail come
with the trust work; today every key may load data.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from domain.errors import BadRequest, DuplicateUpload, Forbidden, NotFound, Unauthorized
from store import keys as store_keys
from store.db import Connection

PREFIX = "psk_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(conn: Connection, name: str, role: str = "loader") -> str:
    """Make a key named ``name`` and return it (the only time it is ever shown)."""
    if not _NAME.match(name):
        raise BadRequest(f"key name {name!r} is not allowed",
                         "use letters, digits, spaces and . _ @ - (at most 64)")
    if store_keys.find_name(conn, name) is not None:
        raise DuplicateUpload(f"there is already a key named {name!r}",
                              "choose another name, or revoke that key first")
    key = PREFIX + secrets.token_urlsafe(32)
    store_keys.save_key(conn, name=name, prefix=key[:10], sha256=_sha(key), role=role)
    return key


def revoke(conn: Connection, name: str) -> None:
    """Revoke the key named ``name``."""
    if not store_keys.revoke(conn, name):
        raise NotFound(f"no active key named {name!r}", "list them: `placespend keys list`")


def check(conn: Connection, presented: str | None) -> dict:
    """The key row for a presented key; Unauthorized if missing or unknown, Forbidden if revoked."""
    how = ("send it as the header `Authorization: Bearer KEY` (or `X-API-Key: KEY`); an "
           "administrator makes one with `placespend keys create NAME`")
    if not presented:
        raise Unauthorized("this request changes data and needs an API key", how)
    row = store_keys.find_key(conn, _sha(presented.strip()))
    if row is None:
        raise Unauthorized("the API key is not known", how)
    if row["revoked_at"] is not None:
        raise Forbidden(f"the API key {row['name']!r} was revoked on "
                        f"{row['revoked_at']:%Y-%m-%d}", "ask for a new key")
    return row
