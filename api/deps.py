"""Typed dependencies: a pooled connection per request, and the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

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
ConnDep = Annotated[Connection, Depends(get_conn)]


def require_key(request: Request, conn: ConnDep) -> dict:
    """The API key of a write request (``Authorization: Bearer KEY`` or ``X-API-Key``)."""
    from placespend import keys

    auth = request.headers.get("authorization", "")
    presented = auth[7:] if auth.lower().startswith("bearer ") else None
    return keys.check(conn, presented or request.headers.get("x-api-key"))


KeyDep = Annotated[dict, Depends(require_key)]
