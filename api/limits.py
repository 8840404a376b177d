"""Limits: request bodies over a size (413) and clients over a rate (429), before routing.

Both answer in the one error shape (``api.errors``) from pure ASGI middleware, so a refused
request costs no database connection and no body is read past its limit.

- :class:`BodyLimit`: ``Content-Length`` over the limit is refused before a byte is read; a
  body without one (chunked) is counted as it streams and refused once it passes the limit.
  ``max_upload_bytes`` on ``/uploads/...``, ``max_body_bytes`` everywhere else.
- :class:`RateLimit`: a token bucket per client and kind of request, in memory (one per server
  process). A client is the API key it presents (``Authorization: Bearer KEY`` or
  ``X-API-Key``; only a SHA-256 of it is kept) or else its IP address. Writes (POST, PUT, PATCH,
  DELETE) spend ``write_rate_per_minute``; ``POST /neighbourhoods/budget``, a read that happens
  to POST, spends ``budget_rate_per_minute``; reads ``read_rate_per_minute``, unlimited (0) by
  default. Each bucket holds a minute's worth (the burst) and refills continuously.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from placespend.settings import Settings

#: Methods that change something (each spends the write budget).
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The one POST that writes nothing: it answers a polygon's budget (its own budget).
BUDGET_PATH = "/neighbourhoods/budget"
UPLOADS_PREFIX = "/uploads/"
#: Probes a load balancer or Prometheus sends: never rate limited.
PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})


def _path(scope: Scope) -> str:
    """The request's path inside the app (without any root path it is mounted under)."""
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _error(status: int, code: str, cause: str, where: str | None, fix: str,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "cause": cause, "where": where, "fix": fix},
                        status_code=status, headers=headers)


# ---- body size ---------------------------------------------------------------------------


class _Overflow(Exception):
    """Raised from ``receive`` once a streamed body passes its limit."""


class BodyLimit:
    """413 for a request body over its limit, by ``Content-Length`` or as it streams."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit(self, scope: Scope) -> int:
        """The limit of this request's body, in bytes."""
        upload = _path(scope).startswith(UPLOADS_PREFIX)
        return self.max_upload_bytes if upload else self.max_body_bytes

    def refusal(self, limit: int, scope: Scope) -> JSONResponse:
        """The 413 (with ``Connection: close``: the rest of the body is never read)."""
        upload = _path(scope).startswith(UPLOADS_PREFIX)
        fix = ("split the file (e.g. one file per year or area), or load it on the server with "
               "`placespend load`") if upload else (
               "send a smaller body: simplify the polygon (fewer points), or send fewer at once")
        return _error(413, "too_large", f"the request body is over the limit of {limit:,} bytes",
                      "body", fix, headers={"Connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse by ``Content-Length`` at once, or count the body as the app reads it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self.refusal(limit, scope)(scope, receive, send)
            return
        seen = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal seen, over
            if over:
                raise _Overflow
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise _Overflow
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over and not started:  # what the app makes of the cut-off body is dropped:
                return                    # the 413 goes instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _Overflow:
            if started:
                raise
        if over and not started:
            await self.refusal(limit, scope)(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# ---- rates -------------------------------------------------------------------------------


class TokenBuckets:
    """Token buckets by key: ``rate_per_minute`` tokens a minute, ``burst`` at most held.

    Thread and task safe (one lock; each take is a few arithmetic steps). Idle buckets, full
    again, are dropped when there are more than ``max_keys``, so memory stays bounded.
    """

    def __init__(self, rate_per_minute: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst if burst is not None else rate_per_minute)
        self.clock = clock
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: str) -> float:
        """Spend one token of ``key``: 0.0 if it had one, else the seconds until it will."""
        now = self.clock()
        with self._lock:
            tokens, when = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - when) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > self.max_keys:
                    self._prune(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = self.burst / self.rate
        for key, (tokens, when) in list(self._buckets.items()):
            if tokens + (now - when) * self.rate >= self.burst or now - when > full:
                del self._buckets[key]

    def __len__(self) -> int:
        """How many clients have a bucket."""
        return len(self._buckets)


def presented_key(scope: Scope) -> str | None:
    """The API key the request presents (``Authorization: Bearer KEY`` or ``X-API-Key``)."""
    bearer = api_key = None
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer " and text[7:].strip():
                bearer = text[7:].strip()
        elif name == b"x-api-key" and value.strip():
            api_key = value.decode("latin-1").strip()
    return bearer or api_key


def client_id(scope: Scope) -> str:
    """Who is asking: a hash of the API key presented, else the client's IP address."""
    key = presented_key(scope)
    if key is not None:
        return "key:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


class RateLimit:
    """429 with ``Retry-After`` when a client has spent its budget of this kind of request."""

    def __init__(self, app: ASGIApp, *, write_rate_per_minute: int, read_rate_per_minute: int,
                 budget_rate_per_minute: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app

        def buckets(rate: int) -> TokenBuckets | None:
            return TokenBuckets(rate, rate, clock=clock) if rate > 0 else None

        self.rates = {"write": write_rate_per_minute, "read": read_rate_per_minute,
                      "budget": budget_rate_per_minute}
        self.buckets = {kind: buckets(rate) for kind, rate in self.rates.items()}

    @staticmethod
    def kind(scope: Scope) -> str | None:
        """``write``, ``budget`` (POST /neighbourhoods/budget), ``read``, or None (a probe)."""
        method = scope.get("method", "GET")
        path = _path(scope).rstrip("/") or "/"
        if method == "POST" and path == BUDGET_PATH:
            return "budget"
        if method in WRITE_METHODS:
            return "write"
        return None if path in PROBE_PATHS else "read"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Spend a token, or answer 429 without calling the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = self.kind(scope)
        buckets = self.buckets[kind] if kind is not None else None
        wait = buckets.take(client_id(scope)) if buckets is not None else 0.0
        if kind is None or wait <= 0.0:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        what = {"write": "writes", "read": "reads",
                "budget": "neighbourhood budgets (POST /neighbourhoods/budget)"}[kind]
        await _error(
            429, "too_many_requests",
            f"this client has made more than its {self.rates[kind]:,} {what} a minute",
            None, f"wait {retry} second{'s' if retry != 1 else ''} (Retry-After) and send it "
            "again; a client is its API key, or its IP address without one",
            headers={"Retry-After": str(retry)},
        )(scope, receive, send)


_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
#: What an operation may answer besides its own statuses (for the OpenAPI document).
LIMIT_RESPONSES: dict[str, dict[str, Any]] = {
    "413": {"description": "The request body is over the size limit", "content": _ERROR_BODY},
    "429": {"description": "Too many requests from this client: wait Retry-After seconds",
            "headers": {"Retry-After": {"description": "Seconds to wait before sending again",
                                        "schema": {"type": "integer", "minimum": 1}}},
            "content": _ERROR_BODY},
}


def _document(app: FastAPI, settings: Settings) -> None:
    """Say 413 on each operation with a body and 429 on each one a rate applies to."""
    rates = {"write": settings.write_rate_per_minute, "read": settings.read_rate_per_minute,
             "budget": settings.budget_rate_per_minute}
    previous = app.openapi

    def document() -> dict[str, Any]:
        doc = previous()
        for path, item in doc.get("paths", {}).items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                if "requestBody" in operation:
                    responses.setdefault("413", LIMIT_RESPONSES["413"])
                kind = RateLimit.kind({"method": method.upper(), "path": path})
                if kind is not None and rates[kind] > 0:
                    responses.setdefault("429", LIMIT_RESPONSES["429"])
        return doc

    app.openapi = document  # type: ignore[method-assign]


def install(app: FastAPI, settings: Settings) -> None:
    """Add the body limit and the rate limit to ``app`` (the rate limit outside).

    Their statuses are said in its OpenAPI document too.
    """
    _document(app, settings)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes,
                       max_upload_bytes=settings.max_upload_bytes)
    app.add_middleware(RateLimit, write_rate_per_minute=settings.write_rate_per_minute,
                       read_rate_per_minute=settings.read_rate_per_minute,
                       budget_rate_per_minute=settings.budget_rate_per_minute)
