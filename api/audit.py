"""Every write request in the audit log, after its answer is known, whatever the answer.

A pure ASGI middleware: for POST, PUT, PATCH and DELETE (except ``POST /neighbourhoods/budget``,
which only reads) it watches the response's status and, for an error, the cause in its body,
then appends one entry (:mod:`placespend.audit`) on a pool connection of its own, so a write
that was refused or rolled back keeps its entry. Who: the key's name and role when the key
was known (``request.state.grant``, set by :func:`api.deps.require_key`), else the first
characters of whatever key was presented. What: the method and the route's template (``POST
/uploads/{kind}``), the same whether the write was allowed or not; handlers add what only
they know on ``request.state``: ``audit_target`` (else the path), ``audit_sha256`` (the
batch's hash) and ``audit_created`` (False: nothing new was stored).
"""

from __future__ import annotations

import json
import logging

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.limits import BUDGET_PATH, WRITE_METHODS, presented_key
from api.observe import route_template
from placespend import audit
from store.db import pooled

log = logging.getLogger("placespend.audit")



class AuditWrites:
    """Append an audit entry for each write request once it has been answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, watching its answer; then record it."""
        if (scope["type"] != "http" or scope["method"] not in WRITE_METHODS
                or scope.get("path") == BUDGET_PATH):
            await self.app(scope, receive, send)
            return
        seen: dict = {"status": 500, "body": b""}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
            elif message["type"] == "http.response.body" and seen["status"] >= 400:
                seen["body"] += message.get("body", b"")[:4096]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            await run_in_threadpool(_record, scope, seen["status"], seen["body"])


def _record(scope: Scope, status: int, body: bytes) -> None:
    state = scope.get("state") or {}
    grant = state.get("grant")
    detail = None
    if status >= 400:
        try:
            detail = json.loads(body or b"{}").get("cause")
        except (ValueError, AttributeError):
            detail = None
    action = f"{scope['method']} {route_template(scope)}"
    client = scope.get("client")
    prefix = state.get("key_prefix")
    if prefix is None:  # refused before the key was looked at (a 413, a 429, a bad body)
        prefix = (presented_key(scope) or "")[:10] or None
    try:
        with pooled(scope["app"].state.pool, timeout=5) as conn:
            audit.record(
                conn, action=action, outcome=audit.outcome_of(
                    status, created=state.get("audit_created")),
                actor=None if grant is None else grant.name,
                key_prefix=prefix,
                role=None if grant is None else grant.role,
                target=state.get("audit_target") or scope.get("path"),
                batch_sha256=state.get("audit_sha256"), status=status, detail=detail,
                client=None if client is None else str(client[0]))
    except Exception:  # noqa: BLE001 - the answer is sent; say loudly that its entry is lost
        log.exception("could not write the audit entry of %s %s (status %s)",
                      scope["method"], scope.get("path"), status)
