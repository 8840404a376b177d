"""HTTP helpers shared by the routers: links, JSON responses and ETag caching.

Published runs never change, so a response is identified by what determines it (collection,
run, parameters): :func:`etag` hashes those, and :func:`cached` answers ``If-None-Match`` with 304.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from domain.errors import BadRequest
from domain.version import ALGORITHM_VERSION

CACHE_CONTROL = "public, max-age=300"
#: For addresses pinned to a run (``?run=N``): what they answer can never change.
CACHE_CONTROL_PINNED = "public, max-age=31536000, immutable"
#: Bump when a response format changes, so cached answers are not revalidated as current.
_ETAG_FORMAT = "1"


def check_known(request: Request, allowed: frozenset[str]) -> None:
    """Refuse query parameters this operation does not define (OGC core asks for 400)."""
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise BadRequest(
            f"unknown query parameter {', '.join(unknown)}",
            f"use only {', '.join(sorted(allowed)) or 'no parameters'} (see /api)",
            where=unknown[0],
        )


def link(href: str, rel: str, type_: str, title: str) -> dict[str, str]:
    """One OGC-style link object."""
    return {"href": href, "rel": rel, "type": type_, "title": title}


def base_url(request: Request) -> str:
    """The service root as clients reached it (host, port and any root path)."""
    return str(request.base_url).rstrip("/")


def json_response(content: Any, *, headers: dict[str, str] | None = None,
                  status_code: int = 200) -> JSONResponse:
    """A JSON response of anything FastAPI can encode (datetimes, decimals...)."""
    return JSONResponse(jsonable_encoder(content), headers=headers, status_code=status_code)


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [type(value).__name__, dataclasses.asdict(value)]
    return str(value)


def etag(*parts: object) -> str:
    """A weak validator: the hash of what determines the body (the timeStamp aside).

    Parameter objects (:mod:`api.query`) are hashed whole, every field, so a parameter added
    to one changes the key with no list to keep up to date.
    """
    digest = hashlib.sha256(
        json.dumps([_ETAG_FORMAT, ALGORITHM_VERSION, *parts], default=_plain).encode()
    ).hexdigest()
    return f'W/"{digest[:32]}"'


def layer_etag(layer: Any, what: str, query: object = None) -> str:
    """The ETag of ``what`` (items, schema, a tile...) of a layer at its version, for ``query``."""
    return etag(layer.id, layer.version, what, query)


def not_modified(request: Request, tag: str) -> bool:
    """Whether ``If-None-Match`` names ``tag`` (weak comparison) or is ``*``."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True

    def bare(t: str) -> str:
        t = t.strip()
        return t[2:] if t.startswith("W/") else t

    return any(bare(t) == bare(tag) for t in header.split(","))


def cached(request: Request, tag: str, body: str | bytes, media_type: str, *,
           pinned: bool = False, headers: dict[str, str] | None = None) -> Response:
    """``body`` with its ETag and cache headers, or a bare 304 when the client has it.

    ``pinned``: the address names its run, so the answer may be cached for a year.
    """
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL_PINNED if pinned else CACHE_CONTROL,
               **(headers or {})}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
