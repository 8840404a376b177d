"""HTTP helpers shared by the routers: links, JSON responses and ETag caching.

Published runs never change, so a response is identified by what determines it (collection,
run, parameters): :func:`etag` hashes those, and :func:`cached` answers ``If-None-Match`` with 304.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from domain.errors import BadRequest
from domain.version import ALGORITHM_VERSION

CACHE_CONTROL = "public, max-age=300"
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


def etag(*parts: object) -> str:
    """A weak validator: the hash of what determines the body (the timeStamp aside)."""
    digest = hashlib.sha256(
        json.dumps([_ETAG_FORMAT, ALGORITHM_VERSION, *parts], default=str).encode()
    ).hexdigest()
    return f'W/"{digest[:32]}"'


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


def cached(request: Request, tag: str, body: str, media_type: str) -> Response:
    """``body`` with its ETag and cache headers, or a bare 304 when the client has it."""
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
