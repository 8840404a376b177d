"""Connections: one helper to open a connection, one to open a pool for the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from threading import Lock
from typing import Any, TypeAlias

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from domain.errors import SetupError
from store.cluster import redact_url

Connection: TypeAlias = psycopg.Connection[Any]


def _setup_error(url: str, exc: Exception) -> SetupError:
    safe = redact_url(url)
    return SetupError(
        f"cannot connect to PostgreSQL at {safe}: {str(exc).strip().splitlines()[0]}",
        "start the project database with `placespend db start`, or set DATABASE_URL to a "
        "running PostGIS",
    )


@contextmanager
def connect(url: str) -> Iterator[Connection]:
    """Open one connection (dict rows); commit on success, roll back on error."""
    try:
        conn = psycopg.connect(url, row_factory=dict_row, connect_timeout=10,
                               prepare_threshold=None)
    except psycopg.OperationalError as exc:
        raise _setup_error(url, exc) from exc
    try:
        with conn:
            yield conn
    finally:
        conn.close()


@contextmanager
def pooled(pool: ConnectionPool, *, timeout: float = 10.0) -> Iterator[Connection]:
    """A connection from ``pool``; a busy or unreachable database becomes a SetupError (503)."""
    try:
        with pool.connection(timeout=timeout) as conn:
            yield conn
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise SetupError(
            "the database did not answer in time",
            "try again shortly; if it persists, check the database (`placespend db start`)",
        ) from exc


def open_pool(url: str, *, min_size: int = 1, max_size: int = 8) -> ConnectionPool:
    """Open a connection pool (dict rows), waiting until the database answers."""
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        # No server-side prepared statements: after a few runs PostgreSQL would switch a
        # prepared features query to a generic plan, blind to the bbox and ids it is given,
        # that scans every feature of a layer (87 ms instead of 4 ms on 7,000 wards).
        kwargs={"row_factory": dict_row, "prepare_threshold": None},
        open=False,
    )
    try:
        pool.open(wait=True, timeout=15)
    except Exception as exc:  # noqa: BLE001 - any failure to open is a setup problem
        pool.close()
        raise _setup_error(url, exc) from exc
    return pool


_MEMO_LOCK = Lock()
_MEMO: dict[tuple, Any] = {}


def remembered(conn: Connection, key: tuple, make: Callable[[], Any]) -> Any:
    """``make()``, worked out once per database and ``key``, for what can never change.

    For facts of a run or of a boundary set's version (a key must name what fixes them). None
    is not kept (what is not there yet may be made later: a run published to a new set).
    """
    info = conn.info
    full = (info.host, info.port, info.dbname, *key)
    with _MEMO_LOCK:
        if full in _MEMO:
            return _MEMO[full]
    value = make()
    if value is None:
        return None
    with _MEMO_LOCK:
        if len(_MEMO) > 10_000:
            _MEMO.clear()
        _MEMO[full] = value
    return value
