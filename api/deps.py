"""Typed dependencies: a pooled connection per request, and the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from api.limits import presented_key
from domain.access import Grant
from placespend.settings import Settings
from store.db import Connection, pooled


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


def get_conn(request: Request) -> Iterator[Connection]:
    """A connection from the pool, returned after the request."""
    with pooled(request.app.state.pool) as conn:
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
#: Ends (commits, or rolls back) before the answer is sent ("function" scope): a client told
#: 201 can read what it wrote at once, and a commit that fails is a 503, not a 201 for a
#: write that was then lost (tests/test_faults.py found the latter with the default scope).
ConnDep = Annotated[Connection, Depends(get_conn, scope="function")]


def require_key(request: Request, conn: ConnDep) -> Grant:
    """The grant of a write request's key (401 without a known key, 403 if revoked).

    The grant is kept on the request for the audit entry (api/audit.py); what the role and
    scope allow is checked where the write is made (:mod:`domain.access`).
    """
    from placespend import keys

    presented = presented_key(request.scope)
    request.state.key_prefix = presented[:10] if presented else None
    grant = keys.check(conn, presented)
    request.state.grant = grant
    return grant


KeyDep = Annotated[Grant, Depends(require_key)]
