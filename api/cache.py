"""A bounded in-process cache of bytes, for answers that can never change, and its hot path.

Keys hold a layer's id and version and the parameter object (:func:`api.http.layer_etag`), so
a kept tile or page is served only for exactly what made it; whole answers to run-pinned
requests are also kept by the request itself (:func:`answer_key`) and sent by
:class:`WarmAnswers` before any routing.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from threading import Lock

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.http import not_modified

#: Bytes an entry costs beyond its value and key (the dict slot, the objects): an estimate.
ENTRY_OVERHEAD = 200


class ByteCache:
    """Least recently used byte strings, up to ``max_bytes`` in all (0: cache nothing)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    @staticmethod
    def cost(key: str, value: bytes) -> int:
        """What an entry counts against the bound: its bytes, key and a fixed overhead.

        The overhead makes a million empty tiles cost memory too, as they do.
        """
        return len(value) + len(key) + ENTRY_OVERHEAD

    def put(self, key: str, value: bytes) -> None:
        """Store ``value``, dropping the least recently used entries to stay within bounds."""
        cost = self.cost(key, value)
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= self.cost(key, old)
            self._items[key] = value
            self._size += cost
            while self._size > self.max_bytes:
                dropped_key, dropped = self._items.popitem(last=False)
                self._size -= self.cost(dropped_key, dropped)

    @property
    def size(self) -> int:
        """What the entries count against the bound now."""
        return self._size


# ---- answers to requests that can never change ------------------------------------------

#: Request headers an answer may depend on (each negotiated response says so in ``Vary``).
_VARY_ON = (b"host", b"accept", b"accept-encoding")


def answer_key(scope: Scope) -> str:
    """A request's identity for :class:`WarmAnswers`: path, query and the headers it varies on."""
    headers = dict(scope.get("headers") or [])
    parts = [scope.get("root_path", ""), scope["path"],
             scope.get("query_string", b"").decode("latin-1")]
    parts += [headers.get(h, b"").decode("latin-1") for h in _VARY_ON]
    return "answer\x00" + "\x00".join(parts)


def keep_answer(request: Request, response: Response) -> Response:
    """Keep ``response`` whole (status, headers, body) as the answer to exactly ``request``.

    Only for answers that can never change: addresses pinned to a run (``?run=N``). The
    next identical request is answered by :class:`WarmAnswers` before any routing.
    """
    if response.status_code in (200, 204) and response.headers.get("etag"):
        head = json.dumps([response.status_code, [
            [k.decode("latin-1"), v.decode("latin-1")] for k, v in response.raw_headers
        ]]).encode()
        request.app.state.cache.put(answer_key(request.scope),
                                    len(head).to_bytes(4, "big") + head + response.body)
    return response


class WarmAnswers:
    """Answer a request whose whole answer was kept (:func:`keep_answer`) before routing.

    The hot path of a map or a report: run-pinned tiles and pages never change, so a request
    identical to one already answered (same address, same Accept and Accept-Encoding) gets the
    same bytes and headers at once, or a 304 when it holds the ETag. Anything else goes on.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the kept answer, or pass the request on."""
        if scope["type"] == "http" and scope["method"] == "GET" and b"run=" in scope.get(
                "query_string", b""):
            kept = scope["app"].state.cache.get(answer_key(scope))
            if kept is not None:
                size = int.from_bytes(kept[:4], "big")
                status, headers = json.loads(kept[4:4 + size])
                response = Response(kept[4 + size:], status_code=status)
                response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1"))
                                        for k, v in headers]
                tag = response.headers.get("etag", "")
                if not_modified(Request(scope), tag):
                    response = Response(status_code=304, headers={
                        k: v for k, v in response.headers.items()
                        if k in ("etag", "cache-control", "vary", "content-crs")})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def remembered(request: Request, key: str, make: Callable[[], bytes]) -> bytes:
    """The answer kept in the app's byte cache under ``key``, made (and kept) if not there.

    For answers that can never change under their key: a layer's id and version (a run, or
    what a boundary set holds) and the parameter object are in every key.
    """
    cache = request.app.state.cache
    body = cache.get(key)
    if body is None:
        body = make()
        cache.put(key, body)
    return body
