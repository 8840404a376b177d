"""The app factory: settings in, a FastAPI app out, with the pool opened in the lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from api import errors
from api.routers import crosswalks, features, map_page, neighbourhoods, runs, uploads
from placespend import __version__
from placespend.settings import Settings
from store.db import open_pool


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
        app.state.pool = open_pool(app.state.settings.database_url)
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
    app.state.settings = settings
    errors.install(app)

    @app.middleware("http")
    async def server_timing(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                            ) -> Response:
        """Say how long the server took (``Server-Timing: app;dur=ms``), for clients and bench."""
        start = time.perf_counter()
        response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - start) * 1e3:.2f}"
        return response

    app.include_router(features.router)
    app.include_router(runs.router)
    app.include_router(neighbourhoods.router)
    app.include_router(uploads.router)
    app.include_router(crosswalks.router)
    app.include_router(map_page.router)
    map_page.mount_static(app)
    return app
