"""API keys for writes over HTTP: roles, scopes, hashed storage.

A key is 32 random bytes, shown once when it is created (``placespend keys create NAME
--role editor --body hackney``); the database keeps only its SHA-256, enough for a key this
long. What each role and scope may do is :mod:`domain.access`.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from domain.access import ROLES, Grant
from domain.errors import BadRequest, DuplicateUpload, Forbidden, NotFound, Unauthorized
from store import keys as store_keys
from store.db import Connection

PREFIX = "psk_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")
_SCOPE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
HOW = ("send it as the header `Authorization: Bearer KEY` (or `X-API-Key: KEY`); an "
       "administrator makes one with `placespend keys create NAME --role editor`")


def sha(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create(conn: Connection, name: str, role: str = "editor", *,
           bodies: list[str] | tuple[str, ...] = (), places: list[str] | tuple[str, ...] = (),
           created_by: str = "cli") -> str:
    """Make a key named ``name`` and return it (the only time it is ever shown).

    ``bodies`` and ``places`` scope an editor (empty: every body and place).
    """
    if not _NAME.match(name):
        raise BadRequest(f"key name {name!r} is not allowed",
                         "use letters, digits, spaces and . _ @ - (at most 64)", where="name")
    if role not in ROLES:
        raise BadRequest(f"there is no role {role!r}", f"use one of: {', '.join(ROLES)}",
                         where="role")
    for where, values in (("bodies", bodies), ("places", places)):
        bad = [v for v in values if not _SCOPE.match(v)]
        if bad:
            raise BadRequest(f"{bad[0]!r} is not a body or set slug", "use slugs such as "
                             "hackney or dalston-neighbourhoods", where=where)
    if (bodies or places) and role != "editor":
        raise BadRequest(f"only an editor is scoped (a {role} has no scope)",
                         "leave the scope out, or make an editor key", where="role")
    if store_keys.find_name(conn, name) is not None:
        raise DuplicateUpload(f"there is already a key named {name!r}",
                              "choose another name (a revoked key's name stays taken)",
                              where="name")
    key = PREFIX + secrets.token_urlsafe(32)
    store_keys.save_key(conn, name=name, prefix=key[:10], sha256=sha(key), role=role,
                        bodies=sorted(set(bodies)) or None, places=sorted(set(places)) or None,
                        created_by=created_by)
    return key


def revoke(conn: Connection, name: str) -> None:
    """Revoke the key named ``name``."""
    if not store_keys.revoke(conn, name):
        raise NotFound(f"no active key named {name!r}", "list them: `placespend keys list`",
                       where="name")


def grant_of(row: dict) -> Grant:
    """The :class:`Grant` of a stored key."""
    return Grant(name=row["name"], role=row["role"],
                 bodies=None if row["bodies"] is None else frozenset(row["bodies"]),
                 places=None if row["places"] is None else frozenset(row["places"]))


def check(conn: Connection, presented: str | None) -> Grant:
    """The grant of a presented key; Unauthorized if missing or unknown, Forbidden if revoked."""
    if not presented:
        raise Unauthorized("this request changes data and needs an API key", HOW)
    row = store_keys.find_key(conn, sha(presented.strip()))
    if row is None:
        raise Unauthorized("the API key is not known", HOW)
    if row["revoked_at"] is not None:
        raise Forbidden(f"the API key {row['name']!r} was revoked on "
                        f"{row['revoked_at']:%Y-%m-%d}", "ask an administrator for a new key")
    return grant_of(row)


def listed(conn: Connection) -> list[dict]:
    """Every key as an administrator sees it (never the key itself)."""
    return [{"name": k["name"], "prefix": k["prefix"], "role": k["role"],
             "bodies": k["bodies"], "places": k["places"], "created_by": k["created_by"],
             "created_at": k["created_at"].isoformat(),
             "revoked_at": None if k["revoked_at"] is None else k["revoked_at"].isoformat()}
            for k in store_keys.list_keys(conn)]
