"""Uploads: the same loads as ``placespend load KIND FILE``, as multipart POSTs with an API key.

Thin: the file is streamed to a temporary file (refused past the size limit), the form fields
become the load's options (the same names as the CLI flags, with ``_``), and
:mod:`placespend.load` does the rest. 201 when something new was stored, 200 when the same
file was already loaded (nothing new), 422 with every row or feature at fault otherwise.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from api.deps import ConnDep, KeyDep
from api.http import base_url, json_response
from domain.errors import BadRequest, NotFound, TooLarge
from placespend import load
from store import registry
from store.db import set_local_timeout

router = APIRouter(tags=["Uploads"])

#: Largest upload accepted (the same limit the file checks apply).
MAX_BYTES = 200 * 1024 * 1024

_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The same file was already loaded: nothing new was stored"},
    400: {"description": "An option is malformed, or the form has no file"},
    401: {"description": "No API key, or an unknown one"},
    403: {"description": "The API key was revoked, or its role or scope does not allow this"},
    409: {"description": "A concurrent upload stored the same thing at the same moment"},
    429: {"description": "Too many writes from this key: wait as Retry-After says"},
    404: {"description": "No such kind of upload"},
    413: {"description": "The file is over the size limit"},
    422: {"description": "The file was refused: every row or feature at fault, with its fix"},
}


async def _save(upload: UploadFile, folder: Path) -> Path:
    """Stream an uploaded file to ``folder``, refusing it past :data:`MAX_BYTES`."""
    path = folder / "upload"
    size = 0
    with path.open("wb") as out:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > MAX_BYTES:
                raise TooLarge(
                    f"{upload.filename} is over the upload limit of {MAX_BYTES:,} bytes",
                    "split the file (e.g. one file per year or area), or load it on the server"
                    " with `placespend load`", where="file")
            out.write(chunk)
    return path


#: The form, for the API description (the route reads it itself, to stream the file).
_FORM: dict[str, Any] = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary",
                                "description": "The file (CSV, GeoJSON, GeoPackage, ZIP...)"}},
        "additionalProperties": {"type": "string"},
        "description": "The file, and the options of `placespend load KIND` as form fields "
                       "(--code-field is code_field; repeat a field to give several values)",
    },
}}}}


@router.post("/uploads/{kind}", responses=_ERRORS, status_code=201, openapi_extra=_FORM,
             summary="Load a file: boundaries, proxy, functions, spend, transfers, "
                     "postcodes or sites")
async def upload(
    kind: Annotated[str, PathParam(description="What the file holds",
                                   json_schema_extra={"enum": list(load.LOADERS)})],
    request: Request, conn: ConnDep, key: KeyDep,
) -> JSONResponse:
    """Load one file (multipart field ``file``) with the options as form fields.

    The options are those of ``placespend load KIND --help`` (``--code-field`` is the form
    field ``code_field``; repeat ``area_sets`` for several).
    """
    if kind not in load.LOADERS:
        raise NotFound(f"no upload kind {kind!r}", f"use one of: {', '.join(load.LOADERS)}")
    async with request.form(max_files=1, max_fields=100) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile) or not file.filename:
            raise BadRequest("the form has no file", "send the file as the multipart field "
                             "`file` (curl -F file=@wards.geojson)")
        loader = load.LOADERS[kind]
        opts = load.options_from_text(loader.options, {
            k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form if k != "file"})
        with tempfile.TemporaryDirectory(prefix="placespend-upload-") as tmp:
            path = await _save(file, Path(tmp))
            name = Path(file.filename).name
            request.state.audit_target = name
            request.state.audit_sha256 = await run_in_threadpool(
                load.batch_sha256, load.Upload(path, name), opts)
            set_local_timeout(conn, request.app.state.settings.write_timeout_ms)
            done = await run_in_threadpool(
                loader.load, conn, load.Upload(path, name), opts, loaded_by=key.name,
                grant=key)
    request.state.audit_created = done.created
    body = {**done.as_dict(), "links": [
        {"rel": "self", "href": f"{base_url(request)}/uploads/batches/{done.batch_id}",
         "type": "application/json"}]}
    return json_response(body, status_code=201 if done.created else 200)


@router.get("/uploads/batches", summary="Every upload batch, newest first")
def batches(conn: ConnDep, kind: str | None = None) -> JSONResponse:
    """What has been loaded: one row per batch, with what it stored."""
    rows = registry.list_batches(conn, kind)
    return json_response({"batches": [_batch(r) for r in rows]})


@router.get("/uploads/batches/{batch_id}", responses={404: {"description": "No such batch"}},
            summary="One upload batch and what it stored")
def batch(batch_id: int, conn: ConnDep) -> JSONResponse:
    """One batch: its file, hash, who loaded it, and its report."""
    row = registry.get_batch(conn, batch_id)
    if row is None:
        raise NotFound(f"no upload batch {batch_id}", "list them: GET /uploads/batches")
    return json_response(_batch(row))


def _batch(r: dict) -> dict:
    return {"batch": r["id"], "kind": r["kind"], "filename": r["filename"],
            "sha256": r["sha256"], "rows": r["rows"], "loaded_at": r["loaded_at"].isoformat(),
            "loaded_by": r["loaded_by"], "report": r["report"]}
