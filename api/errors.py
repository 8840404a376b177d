"""One table from domain errors to HTTP responses, with safe messages.

Domain errors carry their own status, cause and fix; anything else becomes a 500 whose body
says nothing about the internals (the details go to the log).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import PlacespendError

log = logging.getLogger("placespend.api")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

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
