"""One table from domain errors to HTTP responses, with safe messages.

Domain errors carry their own status, cause and fix; anything else becomes a 500 whose body
says nothing about the internals (the details go to the log).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from domain.errors import PlacespendError
from store.db import translate

log = logging.getLogger("placespend.api")

#: The one error shape, as the OpenAPI document describes every 4xx and 5xx body.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["code", "cause", "where", "fix"],
    "properties": {
        "code": {"type": "string", "description": "machine-readable, e.g. bad_request"},
        "cause": {"type": "string", "description": "what is wrong"},
        "where": {"type": ["string", "null"], "description": "the parameter or field at fault"},
        "fix": {"type": "string", "description": "what to do about it"},
    },
}


class RefuseNul:
    """400 for a NUL character (``%00``) in the path or the query, naming the parameter.

    PostgreSQL text cannot hold one, so such a value would otherwise fail in the database (a
    500) instead of being refused as the malformed input it is.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the 400 before routing, or pass the request on untouched."""
        where = _nul_in(scope) if scope["type"] == "http" else None
        if where is None:
            await self.app(scope, receive, send)
            return
        body = {"code": "bad_request", "cause": f"{where} holds a NUL character (%00)",
                "where": where, "fix": "remove the NUL character: no name, code or value has one"}
        await JSONResponse(body, status_code=400)(scope, receive, send)


def _nul_in(scope: Scope) -> str | None:
    """The path parameter or query parameter holding a NUL, ``path`` if no address matches."""
    path = scope.get("path", "")
    if "\x00" in path:
        app = scope.get("app")
        for template in app.openapi().get("paths", {}) if isinstance(app, FastAPI) else ():
            found = re.match(_template_pattern(template), path)
            for name, value in (found.groupdict() if found else {}).items():
                if "\x00" in value:
                    return name
        return "path"
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return None


def _template_pattern(template: str) -> str:
    """A regular expression of an OpenAPI path template, a named group per path parameter."""
    return "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]*)", re.escape(template)) + "$"


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (its OpenAPI document describes them: api.openapi)."""
    app.add_middleware(RefuseNul)

    @app.exception_handler(PlacespendError)
    async def domain_error(request: Request, exc: PlacespendError) -> JSONResponse:
        return JSONResponse(exc.as_dict(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Unknown routes and methods in the same shape as every other error."""
        if exc.status_code == 404:
            body = {"code": "not_found", "cause": f"no such address: {request.url.path}",
                    "where": request.url.path,
                    "fix": "start from the landing page, /, or see /api for every address"}
        elif exc.status_code == 405:
            body = {"code": "method_not_allowed",
                    "cause": f"{request.method} is not allowed on {request.url.path}",
                    "where": request.url.path, "fix": "see /api for the methods each address takes"}
        else:
            body = {"code": "http_error", "cause": str(exc.detail), "where": request.url.path,
                    "fix": "see /api"}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        fix = "see the API description at /api for the allowed values"
        if where.startswith("body"):
            fix = ("send a JSON body with the header Content-Type: application/json "
                   "(see /api for its shape)")
        return JSONResponse(
            {
                "code": "invalid_parameter",
                "cause": f"{where}: {first.get('msg', 'invalid')}",
                "where": where,
                "fix": fix,
            },
            status_code=400,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        known = translate(exc)  # a refused change, a lost race, a timeout, a lost connection
        if known is not None:
            log.warning("%s on %s: %s", type(exc).__name__, request.url.path, known.cause)
            return JSONResponse(known.as_dict(), status_code=known.status)
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(
            {
                "code": "internal",
                "cause": "the server failed to answer this request",
                "where": None,
                "fix": "try again; if it persists, report it with the time and the URL",
            },
            status_code=500,
        )
