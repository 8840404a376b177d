"""The OpenAPI document (``/api``): FastAPI's, with what it cannot say by itself.

- Every error status is described in the one error shape (``api.errors``), and FastAPI's
  automatic 422 "Validation Error", which this server never sends (invalid parameters are
  answered 400), is removed; an operation's own 422 (a refused polygon or file) stays.
- ``limit`` of ``/items`` is a shared component: QGIS (3.22) learns a server's page size only
  from ``components.parameters.limit`` (``schema.default`` and ``schema.maximum``); with it
  inline it pages by 100.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.errors import ERROR_SCHEMA

#: The error statuses of the OGC routes (each body in the one error shape, ``ERROR_SCHEMA``).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A parameter is wrong (body: code, cause, where, fix)"},
    404: {"description": "No such collection, feature or run"},
}
#: The statuses every write (a request with an API key) may add to its own.
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API key, or an unknown one"},
    403: {"description": "The key was revoked, or its role or scope does not allow this"},
    409: {"description": "A concurrent request stored the same thing, or it would change "
                         "what is published"},
    429: {"description": "Too many writes from this key: wait as Retry-After says"},
    503: {"description": "The database is out of reach or took too long: nothing was kept"},
}
#: The answer to ``If-None-Match`` with the current ETag.
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, built once."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = FastAPI.openapi(app)
    _describe_errors(doc)
    _share_limit(doc)
    app.openapi_schema = doc
    return doc


def _describe_errors(doc: dict[str, Any]) -> None:
    ref = {"$ref": "#/components/schemas/Error"}
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            auto = responses.get("422", {}).get("description") == "Validation Error"
            if auto:
                del responses["422"]
            if auto or operation.get("parameters") or operation.get("requestBody"):
                responses.setdefault("400", {"description": "A parameter is malformed"})
            for status, response in responses.items():
                if status[0] in "45":  # every error body is the one shape, in JSON
                    response["content"] = {"application/json": {"schema": ref}}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA


def _share_limit(doc: dict[str, Any]) -> None:
    op = doc["paths"].get("/collections/{collectionId}/items", {}).get("get")
    for i, param in enumerate((op or {}).get("parameters", [])):
        if param.get("name") == "limit" and param.get("in") == "query":
            doc.setdefault("components", {}).setdefault("parameters", {})["limit"] = param
            op["parameters"][i] = {"$ref": "#/components/parameters/limit"}
