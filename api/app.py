"""The app factory: settings in, a FastAPI app out, with the pool opened in the lifespan."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors, limits, observe, openapi
from api.audit import AuditWrites
from api.cache import ByteCache, WarmAnswers
from api.routers import (
    admin,
    crosswalks,
    features,
    flows,
    map_page,
    neighbourhoods,
    operations,
    runs,
    tiles,
    uploads,
)
from placespend import __version__
from placespend.settings import Settings
from store.db import api_url, open_pool, pooled
from store.runs import reap_attempts

log = logging.getLogger("placespend.api")


class HeadAsGet:
    """Answer ``HEAD`` on every address that answers ``GET``.

    The same status and headers, no body: clients and caches probe with ``HEAD``, and
    FastAPI's routes list only ``GET``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a ``HEAD`` request as ``GET`` and send its status and headers only."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class ServerTiming:
    """Say how long the server took (``Server-Timing: app;dur=ms``), for clients and bench."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the header to the response's start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = f"app;dur={(time.perf_counter() - start) * 1e3:.2f}".encode()
                message["headers"] = [*message.get("headers", []), (b"server-timing", took)]
            await send(message)

        await self.app(scope, receive, timed)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. ``settings.database_url`` must point at a migrated PostGIS."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            from store.cluster import resolve_database_url

            app.state.settings = settings.model_copy(
                update={"database_url": resolve_database_url()}
            )
        current = app.state.settings
        # Never as the owner: the role that can read all and write only what endpoints write.
        url = current.api_database_url or api_url(current.database_url,
                                                  current.api_db_password)
        app.state.pool = open_pool(url, statement_timeout_ms=current.statement_timeout_ms)
        try:
            with pooled(app.state.pool) as conn:
                reap_attempts(conn)  # runs a stopped process left 'running' are marked failed
        except Exception:  # noqa: BLE001 - an unmigrated database: /ready says so, with the fix
            log.warning("could not look for interrupted runs (is the database migrated?)",
                        exc_info=True)
        try:
            yield
        finally:
            app.state.pool.close()

    app = FastAPI(
        title="Placespend",
        version=__version__,
        description=(
            "How much public money, from every public body, goes into each ward or "
            "neighbourhood, and on what. OGC API Features over apportioned spend."
        ),
        lifespan=lifespan,
        openapi_url="/api",
        docs_url="/api.html",
        redoc_url=None,
    )
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.cache = ByteCache(settings.cache_mb * 1024 * 1024)
    errors.install(app)
    # Outermost last. Every request gets its id, access log line and metrics first (so they
    # see every answer, refusals included, and HEAD as HEAD); HEAD runs as GET through
    # everything else (CORS, gzip) and only its body is dropped, so its headers are the GET's;
    # CORS answers preflights (and its headers reach the refusals below); clients over their
    # rate (429) and bodies over their size (413) are refused, and every write attempt, refusals
# included, is audited once answered; gzip when asked (not
    # already-encoded bodies); the timing of everything inside; answers to run-pinned requests
    # already made sent before routing.
    app.add_middleware(WarmAnswers)
    app.add_middleware(ServerTiming)
    app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=6)
    limits.install(app, settings)
    app.add_middleware(AuditWrites)
    app.add_middleware(
        CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
        allow_headers=["*"], expose_headers=["ETag", "Content-Crs", "Server-Timing",
                                             "Content-Disposition", "Retry-After",
                                             "X-Request-Id", "X-Placespend-Truncated"],
    )
    app.add_middleware(HeadAsGet)
    observe.install(app, settings)
    app.include_router(features.router)
    app.include_router(tiles.router)
    app.include_router(flows.router)
    app.include_router(runs.router)
    app.include_router(neighbourhoods.router)
    app.include_router(uploads.router)
    app.include_router(crosswalks.router)
    app.include_router(map_page.router)
    app.include_router(operations.router)
    app.include_router(admin.router)
    map_page.mount_static(app)
    return app
