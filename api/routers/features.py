"""OGC API - Features - Part 1 (core, GeoJSON, OpenAPI 3.0) over published runs.

Thin: parameters are checked here, every row comes from :mod:`store.features`, and the
GeoJSON of the features arrives as text built by PostGIS, which is spliced into the response
unparsed. A collection id resolves to its newest run; runs never change, so (collection, run,
parameters) is a safe cache key (``ETag``) and pages may be cached for a while.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.deps import ConnDep, SettingsDep
from api.http import base_url, cached, check_known, etag, json_response, link, not_modified
from domain.errors import BadRequest, NotFound, SetupError
from store import features as store
from store.db import pooled

log = logging.getLogger("placespend.api")

router = APIRouter(tags=["OGC API Features"])

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: Spellings of CRS84 accepted in ``bbox-crs`` and ``crs``.
CRS84_NAMES = frozenset({CRS84, "https://www.opengis.net/def/crs/OGC/1.3/CRS84", "[OGC:CRS84]"})
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    # No oas30 class: FastAPI describes the API in OpenAPI 3.1, and OGC has no class for that.
    # Part 5: a JSON Schema per collection, so clients know total_pence is a 64-bit integer
    # rather than guessing 32 bits from a first page of small values.
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/schemas",
]
GEOJSON = "application/geo+json"
JSON = "application/json"
JSON_SCHEMA = "application/schema+json"
REL_SCHEMA = "http://www.opengis.net/def/rel/ogc/1.0/schema"
#: Query parameters /items understands; anything else is refused (OGC: unknown -> 400).
ITEMS_PARAMS = frozenset({"limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "f", "run",
                          "parent"})
FEATURE_PARAMS = frozenset({"crs", "f", "run"})
#: ``?run=N`` pins the figures to one run, so a figure cited in a report can be fetched again.
RunPin = Annotated[int | None, Query(
    ge=1, le=2**31 - 1,
    description="Serve the figures of this run (default: the run the collection serves "
                "now). Every run stays addressable, published or not; see /runs.",
)]
#: Licence names in boundary sets -> the licence text on the web, for ``license`` links.
_LICENCE_URLS = {
    "Open Government Licence v3.0": (
        "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/"
    ),
}
_FINANCIAL_YEAR = re.compile(r"^(\d{4})-(\d{2})$")


# ---- parameters -------------------------------------------------------------------------


def _check_crs(value: str | None, name: str) -> None:
    """Only CRS84 (lon/lat, WGS 84) is served for now."""
    if value is not None and value.strip() not in CRS84_NAMES:
        raise BadRequest(
            f"{name} {value!r} is not supported",
            f"omit {name}, or use {CRS84} (longitude, latitude in WGS 84)",
            where=name,
        )


def _check_format(f: str | None) -> None:
    if f is not None and f.lower() not in {"json", "geojson"}:
        raise BadRequest(
            f"format f={f!r} is not offered", "omit f, or use f=json", where="f"
        )


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """Parse ``minlon,minlat,maxlon,maxlat`` (CRS84); six numbers (with heights) drop the heights.

    Raises :class:`BadRequest` naming what is wrong and the form that works.
    """
    fix = "give bbox=minlon,minlat,maxlon,maxlat in degrees, e.g. bbox=-0.11,51.53,-0.02,51.58"
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 6):
        raise BadRequest(
            f"bbox has {len(parts)} value(s); it needs 4 (or 6 with heights)", fix, where="bbox"
        )
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise BadRequest(f"bbox {text!r} holds something that is not a number", fix,
                         where="bbox") from None
    if not all(math.isfinite(n) for n in numbers):
        raise BadRequest(f"bbox {text!r} holds a value that is not finite", fix, where="bbox")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    minx, miny, maxx, maxy = numbers
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90
            and -90 <= maxy <= 90):
        raise BadRequest(
            f"bbox {text!r} lies outside longitude -180..180 / latitude -90..90",
            fix + " (longitude first)",
            where="bbox",
        )
    if minx > maxx or miny > maxy:
        raise BadRequest(
            f"bbox {text!r} has a minimum larger than its maximum",
            fix + " (minimum values first)",
            where="bbox",
        )
    return minx, miny, maxx, maxy


def _instant(text: str, *, end: bool) -> datetime | None:
    """One end of a ``datetime`` value; ``..`` or empty is open. Dates mean the whole day."""
    text = text.strip()
    if text in ("", ".."):
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if end and len(text) == 10:  # a plain date: up to the end of that day
        value += timedelta(days=1) - timedelta(microseconds=1)
    return value


def parse_datetime(text: str) -> tuple[datetime | None, datetime | None]:
    """Parse an RFC 3339 instant or interval (``start/end``, ``..`` open) to (start, end)."""
    fix = ("give an RFC 3339 date-time or interval, e.g. datetime=2015-01-01T00:00:00Z or "
           "datetime=2014-04-01/2015-03-31 or datetime=2014-04-01/..")
    try:
        if "/" in text:
            first, _, second = text.partition("/")
            start, stop = _instant(first, end=False), _instant(second, end=True)
            if first.strip() in ("", "..") and second.strip() in ("", ".."):
                raise ValueError("both ends open")
        else:
            start, stop = _instant(text, end=False), _instant(text, end=True)
            if start is None:
                raise ValueError("empty")
    except ValueError:
        raise BadRequest(f"datetime {text!r} is not a date-time or interval", fix,
                         where="datetime") from None
    if start and stop and start > stop:
        raise BadRequest(f"datetime {text!r} ends before it starts", fix, where="datetime")
    return start, stop


def financial_year_interval(year: str) -> tuple[datetime, datetime] | None:
    """UK financial year ``2014-15`` -> 1 April 2014 00:00Z .. 31 March 2015 23:59:59Z."""
    m = _FINANCIAL_YEAR.match(year)
    if not m:
        return None
    first = int(m.group(1))
    return (datetime(first, 4, 1, tzinfo=UTC),
            datetime(first + 1, 4, 1, tzinfo=UTC) - timedelta(seconds=1))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---- endpoints ---------------------------------------------------------------------------


@router.get("/", summary="Landing page")
def landing(request: Request) -> JSONResponse:
    """The landing page: what this service is and where everything is."""
    base = base_url(request)
    return json_response({
        "title": request.app.title,
        "description": request.app.description,
        "links": [
            link(f"{base}/", "self", JSON, "This document"),
            link(f"{base}/api", "service-desc", "application/vnd.oai.openapi+json;version=3.1",
                  "The API definition (OpenAPI)"),
            link(f"{base}/api.html", "service-doc", "text/html", "The API documentation"),
            link(f"{base}/conformance", "conformance", JSON,
                  "OGC API conformance classes implemented by this server"),
            link(f"{base}/collections", "data", JSON, "Collections of apportioned spend"),
            link(f"{base}/runs", "related", JSON, "Runs and their conservation reports"),
            link(f"{base}/map", "alternate", "text/html", "Map of spend per ward"),
        ],
    })


@router.get("/conformance", summary="Conformance classes")
def conformance() -> JSONResponse:
    """The OGC API Features Part 1 conformance classes this server implements."""
    return json_response({"conformsTo": CONFORMANCE})


def _collection(base: str, row: dict[str, Any], pinned: bool = False) -> dict[str, Any]:
    """One collection's metadata, from a :func:`store.features.get_collection` row.

    With ``pinned`` every link carries ``?run=N`` (the figures of that run, not the current).
    """
    cid = row["id"]
    pin = f"?run={row['run_id']}" if pinned else ""
    extent: dict[str, Any] = {}
    if row["bbox"] and all(v is not None for v in row["bbox"]):
        extent["spatial"] = {"bbox": [[float(v) for v in row["bbox"]]], "crs": CRS84}
    interval = financial_year_interval(row["financial_year"])
    if interval:
        extent["temporal"] = {
            "interval": [[_iso(interval[0]), _iso(interval[1])]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    links = [
        link(f"{base}/collections/{cid}{pin}", "self", JSON, "This collection"),
        link(f"{base}/collections/{cid}/items{pin}", "items", GEOJSON, "Features as GeoJSON"),
        link(f"{base}/collections/{cid}/schema{pin}", REL_SCHEMA, JSON_SCHEMA,
              "Feature properties and their types (JSON Schema)"),
        link(f"{base}/runs/{row['run_id']}", "related", JSON,
              "The run that produced these figures, with its conservation report"),
    ]
    if not pinned:
        links.append(link(f"{base}/collections/{cid}?run={row['run_id']}", "related",
                          JSON, "These figures, pinned to their run (a citable address)"))
    licence_url = _LICENCE_URLS.get(row["licence"])
    if licence_url:
        links.append(link(licence_url, "license", "text/html", row["licence"]))
    return {
        "id": cid,
        "title": row["title"],
        "description": row["description"],
        "extent": extent,
        "itemType": "feature",
        "crs": [CRS84],
        "run": row["run_id"],
        "financial_year": row["financial_year"],
        "boundary_set": row["target_set"],
        "features": row["features"],
        "attribution": row["attribution"],
        "licence": row["licence"],
        "links": links,
    }


@router.get("/collections", summary="Collections")
def collections(request: Request, conn: ConnDep) -> JSONResponse:
    """Every collection, each at its newest run."""
    base = base_url(request)
    return json_response({
        "links": [link(f"{base}/collections", "self", JSON, "This document")],
        "collections": [_collection(base, row) for row in store.list_collections(conn)],
    })


@router.get("/collections/{collectionId}", summary="One collection")
def collection(
    request: Request, conn: ConnDep, collectionId: str, run: RunPin = None  # noqa: N803
) -> JSONResponse:
    """One collection's metadata (as served now, or of ``run``); 404 if there is none."""
    row = store.get_collection(conn, collectionId, run)
    return json_response(_collection(base_url(request), row, pinned=run is not None))


@router.get(
    "/collections/{collectionId}/schema",
    summary="Feature schema of a collection (OGC API Features Part 5)",
    response_class=Response,
    responses={200: {"content": {JSON_SCHEMA: {}}, "description": "A JSON Schema"},
               404: {"description": "No such collection"}},
)
def schema(
    request: Request, conn: ConnDep, collectionId: str, run: RunPin = None  # noqa: N803
) -> Response:
    """The properties of the collection's features with their JSON types, in order."""
    run_id = store.collection_run(conn, collectionId, run)
    tag = etag(collectionId, run_id, "schema")
    if not_modified(request, tag):
        return cached(request, tag, "", JSON_SCHEMA)
    meta = store.get_collection(conn, collectionId, run_id)
    properties: dict[str, Any] = {
        "geometry": {"format": "geometry-multipolygon", "x-ogc-role": "primary-geometry"},
    }
    for seq, prop in enumerate(store.property_types(conn, collectionId, meta["run_id"]), 1):
        # One type name, not ["number", "null"]: QGIS reads only a string here. per_head is the
        # one property that may be null (population 0); its description says so.
        entry: dict[str, Any] = {"type": prop["type"], "x-ogc-propertySeq": seq}
        if prop["type"] == "integer":
            entry["format"] = "int64"
        if prop.get("description"):
            entry["description"] = prop["description"]
        properties[prop["name"]] = entry
    body = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base_url(request)}/collections/{collectionId}/schema"
               + (f"?run={run_id}" if run is not None else ""),
        "type": "object",
        "title": meta["title"],
        "description": meta["description"],
        "properties": properties,
    }
    return cached(request, etag(collectionId, meta["run_id"], "schema"),
                   json.dumps(jsonable_encoder(body)), JSON_SCHEMA)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _limit_too_large(limit: int, maximum: int) -> RequestValidationError:
    """The same 400 the validation handler gives for ``limit < 1``, for the runtime maximum."""
    return RequestValidationError([{
        "type": "less_than_equal",
        "loc": ("query", "limit"),
        "msg": f"Input should be less than or equal to {maximum}",
        "input": limit,
        "ctx": {"le": maximum},
    }])


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection",
    response_class=Response,
    responses={
        200: {"content": {GEOJSON: {}}, "description": "A GeoJSON FeatureCollection"},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        400: {"description": "A parameter is wrong (body: code, cause, where, fix)"},
        404: {"description": "No such collection"},
    },
)
def items(
    request: Request,
    conn: ConnDep,
    settings: SettingsDep,
    collectionId: str,  # noqa: N803
    limit: Annotated[int, Query(
        ge=1, description="Features per page, 1 to the server's maximum (10,000 by default)"
    )] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1,
                                 description="Features to skip (follow `next` links)")] = 0,
    bbox: Annotated[str | None, Query(
        description="minlon,minlat,maxlon,maxlat in CRS84 (longitude first); features that "
                    "intersect it",
        examples=["-0.11,51.53,-0.02,51.58"],
    )] = None,
    bbox_crs: Annotated[str | None, Query(
        alias="bbox-crs", description=f"CRS of bbox; only {CRS84}"
    )] = None,
    crs: Annotated[str | None, Query(description=f"CRS of the response; only {CRS84}")] = None,
    datetime_: Annotated[str | None, Query(
        alias="datetime",
        description="RFC 3339 instant or interval; features whose financial year it meets",
    )] = None,
    f: Annotated[str | None, Query(description="Format: json (the only one)")] = None,
    run: RunPin = None,
    parent: Annotated[str | None, Query(
        max_length=64, description="Only the features inside this enclosing unit: one "
        "borough's wards of the London collection (its ONS code)", examples=["E09000012"],
    )] = None,
) -> Response:
    """A page of features as a GeoJSON FeatureCollection, with ``next``/``prev`` links."""
    check_known(request, ITEMS_PARAMS)
    if limit > settings.max_items:
        raise _limit_too_large(limit, settings.max_items)
    _check_format(f)
    _check_crs(bbox_crs, "bbox-crs")
    _check_crs(crs, "crs")
    box = parse_bbox(bbox) if bbox is not None else None
    when = parse_datetime(datetime_) if datetime_ is not None else None

    def tag_for(run_id: int) -> str:
        return etag(collectionId, run_id, limit, offset, box, when, parent)

    run_id = store.collection_run(conn, collectionId, run)
    if not_modified(request, tag_for(run_id)):
        return cached(request, tag_for(run_id), "", GEOJSON)

    in_time = True
    if when is not None:
        meta = store.get_collection(conn, collectionId, run_id)
        year = financial_year_interval(meta["financial_year"])
        in_time = year is None or (
            (when[0] is None or when[0] <= year[1]) and (when[1] is None or when[1] >= year[0])
        )
    if in_time:
        page = store.items(conn, collectionId, bbox=box, limit=limit, offset=offset,
                           run_id=run_id, parent=parent)
        features_json, matched, returned, run_id = (
            page.features_json, page.number_matched, page.number_returned, page.run_id
        )
    else:
        features_json, matched, returned = "[]", 0, 0

    base = base_url(request)
    here = request.url
    pin = f"?run={run_id}" if run is not None else ""
    links = [
        link(str(here), "self", GEOJSON, "This page"),
        link(f"{base}/collections/{collectionId}{pin}", "collection", JSON, "The collection"),
    ]
    if offset + returned < matched:
        links.append(link(str(here.include_query_params(offset=offset + limit)), "next",
                           GEOJSON, "Next page"))
    if offset > 0:
        links.append(link(str(here.include_query_params(offset=max(0, offset - limit))),
                           "prev", GEOJSON, "Previous page"))
    head = json.dumps({
        "type": "FeatureCollection",
        "numberMatched": matched,
        "numberReturned": returned,
        "timeStamp": _now(),
        "run": run_id,
        "links": links,
    })
    body = f'{head[:-1]}, "features": {features_json}}}'
    return cached(request, tag_for(run_id), body, GEOJSON)


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One feature",
    response_class=Response,
    responses={
        200: {"content": {GEOJSON: {}}, "description": "A GeoJSON Feature"},
        404: {"description": "No such collection or feature"},
    },
)
def feature(
    request: Request,
    conn: ConnDep,
    collectionId: str,  # noqa: N803
    featureId: str,  # noqa: N803
    crs: Annotated[str | None, Query(description=f"CRS of the response; only {CRS84}")] = None,
    f: Annotated[str | None, Query(description="Format: json (the only one)")] = None,
    run: RunPin = None,
) -> Response:
    """One feature by its code (e.g. a ward's GSS code); 404 if the collection lacks it."""
    check_known(request, FEATURE_PARAMS)
    _check_format(f)
    _check_crs(crs, "crs")
    run_id = store.collection_run(conn, collectionId, run)
    if not_modified(request, etag(collectionId, run_id, featureId)):
        return cached(request, etag(collectionId, run_id, featureId), "", GEOJSON)
    page = store.items(conn, collectionId, code=featureId, limit=1, run_id=run_id)
    if page.number_returned == 0:
        raise NotFound(
            f"collection {collectionId!r} has no feature {featureId!r}",
            f"list its features with GET /collections/{collectionId}/items",
            where=featureId,
        )
    base = base_url(request)
    pin = f"?run={run_id}" if run is not None else ""
    links = json.dumps([
        link(str(request.url), "self", GEOJSON, "This feature"),
        link(f"{base}/collections/{collectionId}{pin}", "collection", JSON, "The collection"),
    ])
    one = page.features_json.strip()
    one = one[1:-1].strip()  # the array holds exactly this feature: drop the brackets
    body = f'{one[:-1]}, "links": {links}}}'
    return cached(request, etag(collectionId, page.run_id, featureId), body, GEOJSON)


@router.get(
    "/health",
    summary="Health",
    responses={503: {"description": "The database does not answer"}},
)
def health(request: Request) -> JSONResponse:
    """``{"status": "ok", "database": "ok"}`` once the database answers ``SELECT 1``."""
    try:
        with pooled(request.app.state.pool, timeout=5) as conn:
            store.ping(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"; details to the log
        log.warning("health check: database did not answer: %s", type(exc).__name__,
                    exc_info=True)
        raise SetupError(
            "the database did not answer",
            "check that PostGIS is running and DATABASE_URL points at it, then retry",
            where="database",
        ) from None
    return json_response({"status": "ok", "database": "ok"})
