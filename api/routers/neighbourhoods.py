"""Neighbourhoods: the budget of any polygon, answered from a run's atoms, and saving one.

Thin: the polygon is read and answered by :mod:`placespend.neighbourhoods`.
The work is CPU and database work, so these are plain ``def`` endpoints (run in a thread pool,
never blocking the event loop).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse

from api.deps import ConnDep, KeyDep
from api.http import base_url, check_known, json_response, link
from domain.errors import InputError
from placespend import neighbourhoods

router = APIRouter(tags=["Neighbourhoods"])

JSON = "application/json"
_EXAMPLE = {
    "type": "Feature",
    "properties": {"name": "Dalston and De Beauvoir"},
    "geometry": {"type": "Polygon", "coordinates": [[
        [-0.085, 51.535], [-0.06, 51.535], [-0.06, 51.55], [-0.085, 51.55], [-0.085, 51.535],
    ]]},
}
# The GeoJSON shapes the body may take (RFC 7946), for the API description only: the polygon
# is read by placespend.neighbourhoods, which refuses anything else with a 422 naming the fault.
# A position is [x, y] or [x, y, height] (heights are dropped: see geo.polygon).
_RINGS = {"type": "array", "minItems": 1, "items": {"type": "array", "minItems": 4, "items": {
    "type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "number"}}}}
_POLYGON = {"type": "object", "required": ["type", "coordinates"], "properties": {
    "type": {"const": "Polygon"}, "coordinates": _RINGS}}
_MULTIPOLYGON = {"type": "object", "required": ["type", "coordinates"], "properties": {
    "type": {"const": "MultiPolygon"},
    "coordinates": {"type": "array", "minItems": 1, "items": _RINGS}}}
_FEATURE = {"type": "object", "required": ["type", "geometry"], "properties": {
    "type": {"const": "Feature"},
    "geometry": {"oneOf": [_POLYGON, _MULTIPOLYGON]},
    "properties": {"type": ["object", "null"], "properties": {
        "name": {"type": "string", "pattern": "[A-Za-z0-9]"}}}}}
_FEATURE_COLLECTION = {"type": "object", "required": ["type", "features"], "properties": {
    "type": {"const": "FeatureCollection"},
    "features": {"type": "array", "minItems": 1, "maxItems": 1, "items": _FEATURE}}}
GeoJSONBody = Annotated[dict[str, Any], Body(
    description="A GeoJSON Polygon or MultiPolygon, bare, as a Feature or as a FeatureCollection "
                "of one Feature (lon/lat, EPSG:4326, unless crs says otherwise), inside Great "
                "Britain, with at least three distinct corners",
    examples=[_EXAMPLE],
    json_schema_extra={"oneOf": [_POLYGON, _MULTIPOLYGON, _FEATURE, _FEATURE_COLLECTION]},
)]
#: The CRSs a polygon may be sent in, as the OpenAPI document lists them.
CRS_NAMES = ("EPSG:4326", "EPSG:27700", "OGC:CRS84",
             "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
             "http://www.opengis.net/def/crs/EPSG/0/4326",
             "http://www.opengis.net/def/crs/EPSG/0/27700")
CrsParam = Annotated[str | None, Query(
    description="CRS of the coordinates: EPSG:4326 (default) or EPSG:27700",
    examples=["EPSG:27700"], json_schema_extra={"enum": list(CRS_NAMES)},
)]


def _has_nul(obj: Any) -> bool:
    """Whether any text of a JSON value (a key or a string) holds a NUL character."""
    if isinstance(obj, str):
        return "\x00" in obj
    if isinstance(obj, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_nul(v) for v in obj)
    return False


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON"},
    404: {"description": "No such run, or nothing published yet"},
    422: {"description": "The polygon is wrong (body: code, cause, where, fix)"},
}


@router.post("/neighbourhoods/budget", summary="The budget of any polygon", responses=ERRORS)
def neighbourhood_budget(
    request: Request,
    conn: ConnDep,
    body: GeoJSONBody,
    run: Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                     description="Run to answer from (default: current)")] = None,
    crs: CrsParam = None,
) -> JSONResponse:
    """Total, population, per head, by body, by function and by method, in exact pence.

    Atoms wholly inside count whole; an atom that straddles the edge counts by the share of its
    area inside (see docs/methods.md).
    """
    check_known(request, frozenset({"run", "crs"}))
    out = neighbourhoods.budget_of_geojson(conn, body, crs, run)
    base = base_url(request)
    return json_response({
        **out,
        "links": [link(f"{base}/runs/{out['run']}", "related", JSON,
                       "The run these figures come from")],
    })


@router.post(
    "/neighbourhood-sets/{set_id}/neighbourhoods",
    summary="Save a polygon as a named neighbourhood",
    status_code=201,
    responses={**ERRORS, 401: {"description": "No API key, or an unknown one"},
               403: {"description": "The key was revoked, or may not write in this set"},
               409: {"description": "The name is taken or the set is published"},
               429: {"description": "Too many writes from this key: wait as Retry-After says"}},
)
def save_neighbourhood(
    request: Request,
    conn: ConnDep,
    key: KeyDep,
    set_id: Annotated[str, Path(
        description="The neighbourhood set: lower-case letters, digits and hyphens",
        json_schema_extra={"pattern": r"^[a-z0-9][a-z0-9-]{0,62}$"},
        examples=["dalston-neighbourhoods"],
    )],
    body: GeoJSONBody,
    name: Annotated[str | None, Query(
        description="Name (default: the Feature's name); one is needed, with a letter or digit",
        json_schema_extra={"pattern": "[A-Za-z0-9]"},
    )] = None,
    crs: CrsParam = None,
) -> JSONResponse:
    """Keep the polygon in a neighbourhood set (created on first use).

    Publish a run to the set with ``placespend publish RUN --to SET`` and it is served like any
    other collection.
    """
    check_known(request, frozenset({"name", "crs"}))
    if _has_nul(body):  # PostgreSQL text cannot hold one (the name is stored)
        raise InputError("the body holds a NUL character (\\u0000)",
                         "remove it: no name holds one", where="body")
    request.state.audit_target = f"{set_id}/{name or ''}".rstrip("/")
    saved = neighbourhoods.save_geojson(conn, set_id, body, crs, name, grant=key)
    base = base_url(request)
    response = json_response({
        **saved,
        "publish": f"placespend publish RUN --to {saved['set']}",
        "links": [link(f"{base}/neighbourhoods/budget", "related", JSON,
                       "Ask for the budget of any polygon")],
    })
    response.status_code = 201
    return response
