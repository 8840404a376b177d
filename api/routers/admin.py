"""Administration over HTTP: API keys and the audit log (an admin's key).

Thin: :mod:`placespend.keys` makes, lists and revokes keys; :mod:`placespend.audit` reads
the log. A new key is shown once, in the answer that made it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ConnDep, KeyDep
from api.http import json_response
from api.openapi import WRITE_ERRORS
from placespend import audit, keys

router = APIRouter(tags=["Administration"])

_SLUG = r"^[a-z0-9][a-z0-9_-]{0,79}$"
_ADMIN_READ = {401: WRITE_ERRORS[401], 403: WRITE_ERRORS[403]}


class KeyBody(BaseModel):
    """A key to make: its name, role and (for an editor) scope."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$",
                      examples=["hackney-finance"])
    role: Literal["viewer", "editor", "admin"] = "editor"
    bodies: list[Annotated[str, Field(pattern=_SLUG)]] = Field(default_factory=list,
                                                               max_length=100)
    places: list[Annotated[str, Field(pattern=_SLUG)]] = Field(default_factory=list,
                                                               max_length=100)


@router.get("/keys", summary="Every API key (never the key itself)", responses=_ADMIN_READ)
def list_keys(request: Request, conn: ConnDep, key: KeyDep) -> JSONResponse:
    """Name, first characters, role, scope, who made it, when, and when it was revoked."""
    key.need("admin", "list keys")
    return json_response({"keys": keys.listed(conn)})


@router.post("/keys", summary="Make an API key (shown only in this answer)", status_code=201,
             responses={**WRITE_ERRORS, 409: {"description": "A key of that name exists"}})
def create_key(request: Request, conn: ConnDep, key: KeyDep, body: KeyBody) -> JSONResponse:
    """Make a key; its value is in this answer only (the server keeps its SHA-256)."""
    request.state.audit_target = body.name
    key.need("admin", "make keys")
    made = keys.create(conn, body.name, body.role, bodies=body.bodies, places=body.places,
                       created_by=key.name)
    return json_response({"name": body.name, "role": body.role, "key": made,
                          "bodies": body.bodies or None, "places": body.places or None},
                         status_code=201)


@router.post("/keys/{name}/revoke", summary="Revoke an API key",
             responses={**WRITE_ERRORS, 404: {"description": "No active key of that name"}})
def revoke_key(request: Request, conn: ConnDep, key: KeyDep,
               name: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")]
               ) -> JSONResponse:
    """Revoke a key: from now on it is refused (403). Keys are never deleted."""
    request.state.audit_target = name
    key.need("admin", "revoke keys")
    keys.revoke(conn, name)
    return json_response({"name": name, "revoked": True})


@router.get("/audit", summary="The audit log, newest first", responses=_ADMIN_READ)
def audit_log(
    conn: ConnDep, key: KeyDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="entries older than this id")
                      ] = None,
    action: Annotated[str | None, Query(max_length=80)] = None,
    outcome: Literal["ok", "unchanged", "denied", "refused", "failed"] | None = None,
) -> JSONResponse:
    """Every write attempted: who, what, when, the batch hash, the outcome and its cause."""
    key.need("admin", "read the audit log")
    return json_response({"entries": audit.listed(conn, limit=limit, before=before,
                                                  action=action, outcome=outcome)})
