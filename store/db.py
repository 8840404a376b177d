"""Connections: one helper to open a connection, one to open a pool for the API.

The CLI connects as the database owner (``DATABASE_URL``); the API as :data:`API_ROLE`
(:func:`api_url`), which can neither change published figures nor disable the triggers that
guard them. :func:`translate` turns a database error into the domain error a user can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from threading import Lock
from typing import Any, TypeAlias

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from domain.errors import (
    Conflict,
    Forbidden,
    ImmutableError,
    InputError,
    PlacespendError,
    SetupError,
    Unavailable,
)
from store.cluster import redact_url

Connection: TypeAlias = psycopg.Connection[Any]

#: The database role the HTTP API connects as (granted by store/sql/api_role.sql).
API_ROLE = "placespend_api"


def api_url(owner_url: str, password: str | None = None) -> str:
    """The connection string of :data:`API_ROLE` on the database ``owner_url`` names.

    Same server and database, the API role as user, with ``password`` if given (the
    project-local cluster trusts loopback connections and needs none).
    """
    params = conninfo_to_dict(owner_url)
    params.pop("password", None)
    params["user"] = API_ROLE
    if password:
        params["password"] = password
    return make_conninfo(**params)


def with_timeout(url: str, statement_timeout_ms: int) -> str:
    """``url`` with a ``statement_timeout`` for every statement (0: none)."""
    if statement_timeout_ms <= 0:
        return url
    params = conninfo_to_dict(url)
    options = params.get("options", "")
    params["options"] = f"{options} -c statement_timeout={int(statement_timeout_ms)}".strip()
    return make_conninfo(**params)


def set_local_timeout(conn: Connection, statement_timeout_ms: int) -> None:
    """Allow each statement ``statement_timeout_ms`` until the end of this transaction."""
    conn.execute(psycopg.sql.SQL("SET LOCAL statement_timeout = {}").format(
        psycopg.sql.Literal(int(statement_timeout_ms))))


def translate(exc: BaseException) -> PlacespendError | None:
    """The domain error a database error stands for, or None if it is not one we know.

    Used by the API's error handler and the CLI, so a refused change, a race lost to a
    concurrent writer, a timeout or a lost connection reach users as a status and a fix, never
    as a 500 or a traceback.
    """
    if not isinstance(exc, psycopg.Error):
        return None
    diag = exc.diag
    primary = (diag.message_primary or (str(exc).splitlines() or [""])[0]).strip()
    if isinstance(exc, pg_errors.RaiseException) and "immutable" in primary:
        return ImmutableError(primary, diag.message_hint or "start a new run instead")
    if isinstance(exc, pg_errors.RaiseException) and "record" in primary:
        return ImmutableError(primary, diag.message_hint or "")
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return Forbidden("the service may not make this change: " + primary,
                         "published figures and what they are read through never change; "
                         "start a new run or load a new version instead")
    if isinstance(exc, pg_errors.UniqueViolation):
        return Conflict(f"another request stored the same thing at the same moment "
                        f"({diag.constraint_name or 'a unique rule'})",
                        "send it again: the second attempt finds what the first stored")
    if isinstance(exc, pg_errors.IntegrityError):
        return InputError(f"the change breaks the database rule "
                          f"{diag.constraint_name or diag.sqlstate}: {primary}",
                          "check the values against the documented shape (docs/)")
    if isinstance(exc, pg_errors.QueryCanceled):
        return Unavailable("the database took longer than this request is allowed "
                           "(statement timeout)",
                           "ask for less (a smaller bbox or page, a run-pinned request), or try "
                           "again later")
    if isinstance(exc, (pg_errors.SerializationFailure, pg_errors.DeadlockDetected,
                        pg_errors.LockNotAvailable)):
        return Unavailable("the change met a concurrent one and was undone", "send it again")
    if (exc.sqlstate or "").startswith("53"):  # class 53: disk full, out of memory...
        return Unavailable("the database server is out of space or memory: nothing was stored",
                           "free disk space on the database server, then send it again")
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return Unavailable("the connection to the database was lost: nothing half-done was "
                           "kept", "try again shortly; if it persists, check the database "
                           "(`placespend db start`)")
    return None


def _setup_error(url: str, exc: Exception) -> SetupError:
    safe = redact_url(url)
    if f'role "{API_ROLE}" does not exist' in str(exc) or (
            API_ROLE in str(exc) and "password authentication failed" in str(exc)):
        return SetupError(
            f"the API cannot connect to {safe} as {API_ROLE}: "
            f"{str(exc).strip().splitlines()[0]}",
            "run `placespend db migrate` (it creates the role the API connects as, with "
            "PLACESPEND_API_DB_PASSWORD as its password when that is set), then start again")
    return SetupError(
        f"cannot connect to PostgreSQL at {safe}: {str(exc).strip().splitlines()[0]}",
        "start the project database with `placespend db start`, or set DATABASE_URL to a "
        "running PostGIS",
    )


@contextmanager
def connect(url: str, *, autocommit: bool = False) -> Iterator[Connection]:
    """Open one connection (dict rows); commit on success, roll back on error.

    ``autocommit``: each statement is its own transaction (for records that must outlive a
    failed transaction on another connection, such as a run attempt's outcome).
    """
    try:
        conn = psycopg.connect(url, row_factory=dict_row, connect_timeout=10,
                               prepare_threshold=None, autocommit=autocommit)
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


def open_pool(url: str, *, min_size: int = 1, max_size: int = 8,
              statement_timeout_ms: int = 0) -> ConnectionPool:
    """Open a connection pool (dict rows), waiting until the database answers.

    ``statement_timeout_ms`` bounds every statement of its connections (0: no bound).
    """
    safe_url = url
    url = with_timeout(url, statement_timeout_ms)
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        # No server-side prepared statements: after a few runs PostgreSQL would switch a
        # prepared features query to a generic plan, blind to the bbox and ids it is given,
        # that scans every feature of a layer (87 ms instead of 4 ms on 7,000 wards).
        kwargs={"row_factory": dict_row, "prepare_threshold": None},
        # After a database restart the pooled connections are dead: each is checked as it is
        # handed out (a round trip) and replaced if broken, so requests recover without a
        # restart of the app. Idle connections past 5 minutes are closed; a lost connection is
        # retried for a minute (with backoff) before the pool gives up on it and grows anew
        # when asked.
        check=ConnectionPool.check_connection,
        max_idle=300.0,
        reconnect_timeout=60.0,
        open=False,
    )
    try:
        pool.open(wait=True, timeout=15)
    except Exception as exc:  # noqa: BLE001 - any failure to open is a setup problem
        pool.close()
        raise _setup_error(safe_url, exc) from exc
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
