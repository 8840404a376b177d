"""Operations: health (``/health``), readiness (``/ready``) and metrics (``/metrics``).

``/health`` says the process and its database answer (liveness); ``/ready`` says the database
also holds every migration this code has, so traffic may come.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from api.http import json_response
from domain.errors import SetupError
from store.db import Connection, pooled
from store.features import ping
from store.migrate import applied_migrations, migration_files

log = logging.getLogger("placespend.api")
T = TypeVar("T")

router = APIRouter(tags=["Operations"])

#: The exposition format /metrics answers in (Prometheus text, version 0.0.4).
METRICS_MEDIA = "text/plain; version=0.0.4"


def _ask_database(request: Request, what: str, question: Callable[[Connection], T]) -> T:
    """``question(conn)`` on a pool connection; a database that does not answer is a 503."""
    try:
        with pooled(request.app.state.pool, timeout=5) as conn:
            return question(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"; details to the log
        log.warning("%s: database did not answer: %s", what, type(exc).__name__, exc_info=True)
        raise SetupError(
            "the database did not answer",
            "check that PostGIS is running and DATABASE_URL points at it, then retry",
            where="database",
        ) from None


@router.get(
    "/health",
    summary="Health",
    responses={503: {"description": "The database does not answer"}},
)
def health(request: Request) -> JSONResponse:
    """``{"status": "ok", "database": "ok"}`` once the database answers ``SELECT 1``."""
    _ask_database(request, "health check", ping)
    return json_response({"status": "ok", "database": "ok"})


@router.get(
    "/ready",
    summary="Readiness",
    responses={
        200: {"description": "The database answers and holds every migration",
              "content": {"application/json": {"example": {
                  "status": "ready", "database": "ok", "migrations": 12,
                  "latest_migration": "0012_example.sql"}}}},
        503: {"description": "The database does not answer, or lacks migrations "
                             "(where: database or migrations)"},
    },
)
def ready(request: Request) -> JSONResponse:
    """``{"status": "ready", ...}`` once the database answers and is fully migrated; else 503.

    For a load balancer or an orchestrator's readiness probe; ``/health`` is the liveness one.
    """
    wanted = [name for name, _ in migration_files()]
    applied = _ask_database(request, "readiness check", applied_migrations)
    missing = [name for name in wanted if name not in (applied or set())]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                          else "")
        cause = ("the database has no migrations applied (no schema_migration table)"
                 if applied is None else
                 f"the database lacks {len(missing)} of {len(wanted)} migrations: {shown}")
        raise SetupError(cause, "apply them: `placespend db migrate` (with the same "
                         "DATABASE_URL), then retry", where="migrations")
    return json_response({"status": "ready", "database": "ok", "migrations": len(wanted),
                          "latest_migration": wanted[-1] if wanted else None})


_METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus metrics (text exposition format 0.0.4): requests by "
                         "method, route and status, latency by route, requests in flight, "
                         "the database pool",
          "content": {METRICS_MEDIA: {"schema": {"type": "string"}}}},
}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses=_METRICS_RESPONSES)
def metrics(request: Request) -> Response:
    """The service's metrics, for Prometheus to scrape (the pool's read now)."""
    body = generate_latest(request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
