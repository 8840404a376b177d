"""Observing the service: a request id and an access log line per request, and metrics.

- :class:`Observe` (pure ASGI, the outermost middleware): gives each request an id (the
  client's ``X-Request-Id`` when it is sane, at most 64 of ``A-Za-z0-9-_``, else a new one),
  sends it back as ``X-Request-Id``, logs one line per request on ``placespend.access`` (its
  fields in the record's ``access`` attribute; :class:`JsonFormatter` writes them as one JSON
  object) and counts the request in the app's metrics.
- :class:`Metrics`: Prometheus metrics in a registry of the app's own (never the global one,
  so several apps in one process do not collide): requests by method, route template and
  status, latency by route, requests in flight, and the database pool's stats read when
  ``/metrics`` is scraped. ``api.routers.operations`` serves them.
- :func:`configure_logging`: the log format of ``placespend serve`` (``log_format``), every
  line with its URLs and DSNs redacted (:func:`store.cluster.redact_url`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.limits import presented_key
from placespend.settings import Settings
from store.cluster import redact_url

access_log = logging.getLogger("placespend.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Methods counted by name; anything else is counted as ``other`` (labels stay few).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Latency buckets, in seconds: a warm tile (1 ms) to a GeoPackage of London (1 s) and beyond.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED = "unmatched"


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-Id`` when it is sane, else a new uuid4 (32 hex digits)."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            if _REQUEST_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The route template that answered (``/collections/{collectionId}/items``).

    Never the raw path, so the labels stay few: the router leaves its route in the scope; a
    request answered before routing (a warm answer, a limit) or routed in a copy of the scope
    (``HEAD`` run as ``GET``) is matched against the app's templates; none is ``unmatched``.
    """
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return str(route.path)
    app = scope.get("app")
    if not isinstance(app, FastAPI):
        return UNMATCHED
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    for pattern, template in _templates(app):
        if pattern.match(path):
            return template
    return UNMATCHED


def _templates(app: FastAPI) -> list[tuple[re.Pattern[str], str]]:
    """The app's path templates as patterns, made once.

    The OpenAPI document's (those with fewer parameters first), then the routes and mounts
    it leaves out (``/api``, the static files).
    """
    made = getattr(app.state, "route_templates", None)
    if made is not None:
        return made
    documented = sorted(app.openapi().get("paths", {}), key=lambda t: (t.count("{"), -len(t)))
    made = [(re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"[^/]+", re.escape(t)) + "/?$"), t)
            for t in documented]
    for candidate in app.router.routes:
        regex, template = getattr(candidate, "path_regex", None), getattr(candidate, "path", "")
        if regex is not None and template and template not in documented:
            made.append((regex, template))
    app.state.route_templates = made
    return made


class _PoolStats(Collector):
    """The database pool's stats (psycopg_pool ``get_stats()``), read at each scrape."""

    _NAMES = {
        "pool_size": "connections in the pool, in use or not",
        "pool_available": "idle connections ready to be handed out",
        "requests_waiting": "requests waiting for a connection",
    }

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One gauge per stat; none before the pool is open."""
        pool = getattr(self.app.state, "pool", None)
        stats: dict[str, Any] = {}
        if pool is not None:
            try:
                stats = pool.get_stats()
            except Exception:  # noqa: BLE001 - a closed pool has no stats to report
                stats = {}
        for name, doc in self._NAMES.items():
            family = GaugeMetricFamily(f"placespend_db_{name}", f"Database pool: {doc}")
            if name in stats:
                family.add_metric([], float(stats[name]))
            yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """The families, without reading the pool (at registration)."""
        return [GaugeMetricFamily(f"placespend_db_{n}", d) for n, d in self._NAMES.items()]


class Metrics:
    """The app's metrics, in its own registry."""

    def __init__(self, app: FastAPI) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "placespend_http_requests", "HTTP requests answered, by method, route template "
            "and status", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "placespend_http_request_duration_seconds", "Time to answer a request (to its "
            "last byte), by route template", ["route"], buckets=_BUCKETS,
            registry=self.registry)
        self.in_flight = Gauge(
            "placespend_http_requests_in_flight", "Requests being answered now",
            registry=self.registry)
        self.registry.register(_PoolStats(app))


class Observe:
    """Request id, access log line and metrics of every HTTP request."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer through the app, with ``X-Request-Id``; then log and count the answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        started_at = datetime.now(UTC)
        start = time.perf_counter()
        status = 500  # if the app fails before it answers, Starlette answers 500
        header = (b"x-request-id", rid.encode("latin-1"))

        async def tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *(h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"),
                    header]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, tagged)
        finally:
            self.metrics.in_flight.dec()
            took = time.perf_counter() - start
            route = route_template(scope)
            method = scope.get("method", "GET")
            method = method if method in _METHODS else "other"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(route).observe(took)
            _log_access(scope, rid, started_at, status, took)


def _log_access(scope: Scope, rid: str, started_at: datetime, status: int, took: float) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    key = presented_key(scope)
    client = scope.get("client")
    fields = {
        "time": started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "method": scope.get("method", ""),
        "path": scope.get("path", ""),
        "status": status,
        "ms": round(took * 1e3, 2),
        "client": client[0] if client else None,
        "key_prefix": key[:10] if key else None,
        "request_id": rid,
    }
    access_log.info("%s %s %s %.2fms", fields["method"], fields["path"], status, fields["ms"],
                    extra={"access": fields})


# ---- log lines ---------------------------------------------------------------------------

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_PASSWORD = re.compile(r"(?i)\bpassword\s*=\s*('[^']*'|\"[^\"]*\"|\S+)")


def redact(text: str) -> str:
    """``text`` with every URL and DSN in it passed through :func:`store.cluster.redact_url`.

    A key/value DSN's ``password=...`` is passed through it too, and hidden here if it still
    shows a value, so no password reaches a log line.
    """
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)

    def password(m: re.Match[str]) -> str:
        safe = redact_url(m.group(0))
        return "password=***" if m.group(1) in safe else safe

    return _PASSWORD.sub(password, text)


class JsonFormatter(logging.Formatter):
    """One JSON object a line, every text redacted (:func:`redact`).

    Its time, level, logger and message, an access line's fields, the exception if any.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            doc.update({k: redact(v) if isinstance(v, str) else v for k, v in access.items()})
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """The usual ``time level logger: message`` line, redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as text, URLs and DSNs redacted."""
        return redact(super().format(record))


def configure_logging(log_format: str = "json", stream: Any = None) -> logging.Handler:
    """Send every log line to ``stream`` (stderr) as ``log_format`` (json or text).

    Warnings and worse from everything; ``placespend`` (the access log included) from info.
    Returns the handler it installed (replacing the root logger's handlers).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("placespend").setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler


def install(app: FastAPI, settings: Settings) -> None:
    """Give ``app`` its metrics (``app.state.metrics``) and the :class:`Observe` middleware."""
    del settings  # nothing to set yet: the log format is the server's (configure_logging)
    app.state.metrics = Metrics(app)
    app.add_middleware(Observe, metrics=app.state.metrics)
