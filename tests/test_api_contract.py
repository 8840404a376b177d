"""Schemathesis over the whole OpenAPI document, every operation, on the real PostGIS.

The document is the one ``GET /api`` serves; each operation is one test, fed schema-valid
requests (positive mode: the explicit examples, the coverage phase's boundary values, then
``MAX_EXAMPLES`` generated ones, derandomized) and sent in-process to the ``app`` fixture over
the published London demo. Every response must pass:

- ``not_a_server_error``: never a 5xx;
- ``status_code_conformance``: every status is documented for its operation;
- ``positive_data_acceptance``: a request the schema admits is not refused (no 400/422);
- ``content_type_conformance`` and ``response_headers_conformance``.

A few constraints cannot be written in OpenAPI; :func:`_fit` makes the generated requests meet
them (and says which below), so that what is left is what the schema promises. It also steers a
share of the generated identifiers to ones the demo holds, so that not every request is a 404.
"""

from __future__ import annotations

import calendar
import copy
import itertools
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pyproj import Transformer
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    status_code_conformance,
)

from api.app import create_app
from boundaries import catalog
from placespend import load
from placespend.settings import Settings

MAX_EXAMPLES = 50
#: Schema-invalid requests per operation (the negative test below).
MAX_NEGATIVE_EXAMPLES = 20
HACKNEY = "hackney-wards-2014-spend-2014-15"
#: Identifiers the demo holds, which a share of the generated ones is replaced by.
COLLECTIONS = (HACKNEY, "hackney-wards-2014-spend-2013-14", "london-wards-2014-spend-2014-15",
               "hackney-wards-2014", "hackney-wards-2013")
FEATURES = ("E05009367", "E05009380", "E09000012")
CROSSWALK_SETS = ("hackney-wards-2013", "hackney-wards-2014")
BODIES = ("hackney", "gla", "nhs_england")
RUNS = (1, 2, 3)
#: The one neighbourhood set the saves go to (see _fit).
NEIGHBOURHOOD_SET = "contract-neighbourhoods"
#: Requests sent per operation, schema-valid and not (printed by the last test).
SENT: Counter[str] = Counter()
SENT_INVALID: Counter[str] = Counter()


def _served_document() -> dict[str, Any]:
    """The OpenAPI document as ``GET /api`` serves it (it needs no database, so no lifespan)."""
    return TestClient(create_app(Settings(database_url="postgresql://unused"))).get("/api").json()


def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx and 5xx body is the one error shape: exactly code, cause, where and fix."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"code", "cause", "where", "fix"}, body
    assert body["cause"] and body["fix"], body
    return True


CHECKS = [not_a_server_error, status_code_conformance, positive_data_acceptance,
          content_type_conformance, response_headers_conformance, error_shape]
DOCUMENT = _served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict({
    "seed": 201415,
    "generation": {"mode": "positive", "max-examples": MAX_EXAMPLES, "deterministic": True,
                   # PostgreSQL text cannot hold NUL: the server refuses it with a 400 naming the
                   # parameter (tests/test_api_errors.py), which no OpenAPI pattern says.
                   "allow-x00": False, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
    # Each POST /runs asks again for the demo's 2014-15 run (_run_write): a reuse that gathers
    # every London input (seconds each), so a few requests, not 50, keep the file quick.
    "operations": [{"include-path": "/runs", "include-method": "POST",
                    "generation": {"max-examples": 3}, "phases": {"coverage": {"enabled": False}}}],
}))
#: Operations with nothing to get wrong (no parameter, no body): no negative case exists.
_BARE = {f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items()
         for method, op in item.items() if not (op.get("parameters") or op.get("requestBody"))}
#: The same document, for requests the schema does not admit (no hooks: sent as generated).
negative = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict({
    "seed": 201415,
    "generation": {"mode": "negative", "max-examples": MAX_NEGATIVE_EXAMPLES,
                   "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}, "coverage": {"enabled": False}},
})).exclude(name=sorted(_BARE))


def _pick(value: object, known: tuple, share: int = 3) -> object:
    """``value``, or (for about ``share`` in 4 values) one of ``known`` chosen by its hash."""
    h = zlib.crc32(repr(value).encode())
    return known[h % len(known)] if h % 4 < share else value


# ---- the constraints OpenAPI cannot express --------------------------------------------------


def _bbox(text: str, bbox_crs: str | None) -> str:
    """A bbox whose minimum comes first (and, in degrees, inside -180..180 / -90..90).

    OpenAPI's pattern says "4 or 6 numbers"; the order of the numbers and their ranges (which
    depend on bbox-crs) cannot be written in it.
    """
    numbers = [float(n) for n in text.split(",")]
    numbers = [n if abs(n) < 1e12 else 0.0 for n in numbers]  # 1e999 is a number, but not finite
    half = len(numbers) // 2
    pairs = list(zip(numbers[:half], numbers[half:], strict=True))
    low, high = [min(p) for p in pairs], [max(p) for p in pairs]
    if "27700" not in (bbox_crs or ""):
        lat_first = "4326" in (bbox_crs or "")
        limits = [(-90, 90), (-180, 180)] if lat_first else [(-180, 180), (-90, 90)]
        for values in (low, high):
            for i, (lo, hi) in enumerate(limits):
                values[i] = min(max(values[i], lo), hi)
    return ",".join(repr(n) for n in low + high)


def _instant(text: str) -> str:
    """The same instant, on a day its month has (the pattern allows 31 in every month)."""
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})", text)
    if not m:
        return text
    year, month, day = (int(g) for g in m.groups())
    day = min(day, calendar.monthrange(year, month)[1])
    return f"{year:04d}-{month:02d}-{day:02d}{text[10:]}"


def _datetime(text: str) -> str:
    """An instant or interval that is one: a day of its month, one end at least, start first."""
    if "/" not in text:
        return _instant(text)
    start, _, end = (_instant(p) for p in text.partition("/"))
    if start in ("", "..") and end in ("", ".."):
        end = "2015-03-31"  # both ends open is no interval
    if start not in ("", "..") and end not in ("", "..") and _when(start) > _when(end):
        start, end = end, start
    return f"{start}/{end}"


def _when(text: str) -> datetime:
    """The instant without its offset (near enough to order two; at year 1 or 9999 an offset
    would take the UTC time out of datetime's range)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=None) if value.tzinfo else value


def _ring(n: int, centre: tuple[float, float], radius: float, sample: list) -> list[list[float]]:
    """A closed regular polygon of ``n`` positions (n - 1 corners) keeping any heights."""
    corners = max(n - 1, 3)
    out = []
    for i in range(corners):
        angle = 2 * math.pi * i / corners
        x, y = centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle)
        extra = list(sample[i][2:3]) if i < len(sample) and isinstance(sample[i], list) else []
        out.append([x, y, *extra])
    return [*out, out[0]]


def _polygon(rings: list, centre: tuple[float, float], radius: float) -> list:
    """Rings of a polygon as regular polygons: the outer one, then smaller holes inside it."""
    return [_ring(len(r), centre, radius / (1 + 2 * k), r) for k, r in enumerate(rings)]


def _geometry(geometry: dict, centre: tuple[float, float], radius: float) -> None:
    if geometry.get("type") == "Polygon":
        geometry["coordinates"] = _polygon(geometry["coordinates"], centre, radius)
    else:  # MultiPolygon: its polygons side by side, together as wide as three radii
        parts = geometry["coordinates"]
        small = radius / len(parts)
        geometry["coordinates"] = [
            _polygon(p, (centre[0] + 3 * small * j, centre[1]), small) for j, p in enumerate(parts)
        ]


_SAVES = itertools.count()


def _neighbourhood(case: Any) -> None:
    """A polygon inside Great Britain with area, in the request's CRS; a name when saving.

    The schema gives the GeoJSON structure; that the polygon lies in Great Britain (its range
    depends on the crs query parameter), that its rings enclose an area, and (when saving) that
    it has a name from the query or the Feature and overlaps no other of its set are not
    expressible in OpenAPI. The structure generated (Feature or not, MultiPolygon, holes,
    heights, foreign members, properties) is kept; only the positions are replaced.
    """
    metres = "27700" in str((case.query or {}).get("crs") or "")  # else lon/lat, as GeoJSON is
    saving = case.method.upper() == "POST" and "neighbourhood-sets" in case.path
    if saving:  # each saved polygon in its own cell of a grid over Hackney: no overlaps
        # (a MultiPolygon's parts reach up to 3 radii, 300 m, east of its centre: 400 m cells)
        i = next(_SAVES)
        x, y = 533_000.0 + 400.0 * (i % 30), 184_000.0 + 400.0 * (i // 30)
    else:
        x, y = 533_000.0, 184_000.0
    centre, radius = ((x, y), 100.0) if metres else (_lon_lat(x, y), 0.001)
    body = case.body
    features = body.get("features") if body.get("type") == "FeatureCollection" else [body]
    for feature in features or []:
        geometry = feature.get("geometry") if feature.get("type") == "Feature" else feature
        if isinstance(geometry, dict):
            _geometry(geometry, centre, radius)
    if saving:
        case.path_parameters["set_id"] = NEIGHBOURHOOD_SET
        named = any(isinstance(f.get("properties"), dict) and f["properties"].get("name")
                    for f in features or [] if f.get("type") == "Feature")
        if not (case.query or {}).get("name") and not named:
            case.query = {**(case.query or {}), "name": f"contract {i}"}


_TO_LON_LAT = Transformer.from_crs(27700, 4326, always_xy=True)


def _lon_lat(x: float, y: float) -> tuple[float, float]:
    """British National Grid to lon/lat, exactly: a polygon sent in either CRS lands in its
    own grid cell (a linear guess was 600 m out, so a lon/lat save could overlap a metres one).
    """
    lon, lat = _TO_LON_LAT.transform(x, y)
    return float(lon), float(lat)


def _upload(kind: str) -> dict[str, Any]:
    """A file of ``kind`` the demo already loaded, with its options: a 200, nothing new.

    A file's content and the options its kind takes (a path parameter) cannot be written in
    OpenAPI, and a new file of spend or transfers would change what later runs in the session
    compute, so each upload sends the smallest embedded file of its kind again (or, for the two
    kinds the demo does not load, a tiny file that no run reads).
    """
    tiny = {
        "postcodes": (b"Postcode,Eastings,Northings\nZZ9 9ZZ,533000,184000\n", {}),
        "transfers": (b"payer,payee,financial_year,amount,function,recorded_by\n"
                      b"hackney,gla,2030-31,1.00,10,payer\n", {}),
    }
    if kind in tiny:
        data, fields = tiny[kind]
        return {"file": data, **fields}
    items = sorted((i for i in catalog.EMBEDDED if i.kind == kind),
                   key=lambda i: (_embedded(i).stat().st_size, i.path))
    item = items[0]
    fields: dict[str, Any] = {}
    options = {**item.options, **load._provenance(item)}  # as load_embedded gives them
    for name, value in options.items():
        if isinstance(value, dict):
            fields[name] = [f"{k}={v}" for k, v in value.items()]
        elif isinstance(value, tuple | list):
            fields[name] = list(value)
        else:
            fields[name] = str(value)
    return {"file": _embedded(item).read_bytes(), **fields}


def _embedded(item: catalog.Embedded) -> Path:
    return catalog.path(item.path)


def _fit(case: Any) -> Any:
    """The generated request, meeting what OpenAPI cannot say, some identifiers the demo's.

    It works on copies: the coverage phase shares one body (or query) between its cases.
    """
    path, query = dict(case.path_parameters or {}), dict(case.query or {})
    case.path_parameters, case.query = path, query
    if isinstance(case.body, dict):
        case.body = copy.deepcopy(case.body)
    if "collectionId" in path:
        path["collectionId"] = _pick(path["collectionId"], COLLECTIONS)
    if "featureId" in path:
        path["featureId"] = _pick(path["featureId"], FEATURES)
    if "run_id" in path:
        path["run_id"] = _pick(path["run_id"], RUNS)
    for name in ("source", "target"):
        if name in path:
            path[name] = _pick(path[name], CROSSWALK_SETS)
    tile = [path.get(k) for k in ("z", "x", "y")]
    if all(re.fullmatch(r"\d+", str(v)) for v in tile):  # in the matrix: x, y < 2**z
        z, x, y = (int(v) for v in tile)  # (OpenAPI bounds each alone)
        path["z"], path["x"], path["y"] = z, x % 2**z, y % 2**z
    if query.get("run") is not None:
        query["run"] = _pick(query["run"], RUNS, share=2)
    if query.get("collection") is not None:  # /map: the small collections (it draws them all)
        query["collection"] = _pick(query["collection"], (HACKNEY, "hackney-wards-2014"))
    if query.get("body") is not None:  # /map: a body the layer publishes (data, not schema)
        query["body"] = _pick(query["body"], BODIES, share=4)
    if query.get("bbox") is not None:
        query["bbox"] = _bbox(query["bbox"], query.get("bbox-crs"))
    if query.get("datetime") is not None:
        query["datetime"] = _datetime(query["datetime"])
    if case.method.upper() == "POST" and case.path.startswith("/runs"):
        _run_write(case, path)
    elif case.method.upper() == "POST" and case.path.startswith("/keys"):
        pass  # the test key is an editor's: 403 before anything is read
    elif case.method.upper() == "POST" and isinstance(case.body, dict):
        if "kind" in path:
            case.body = _upload(path["kind"])
        else:
            _neighbourhood(case)
    return case


def _run_write(case: Any, path: dict) -> None:
    """A run request the demo already answered, or a republish of its 2014-15 run.

    Which options make a new run (minutes of London work, and figures other tests of the
    session would then read) is data, not schema: so every ``POST /runs`` asks again for the
    demo's own 2014-15 run (a 200, reused) and every publish republishes run 2, which serves
    its collections already (nothing moves).
    """
    if "run_id" in path:
        path["run_id"] = 2
        case.body = {}
    else:
        case.body = {"financial_year": "2014-15"}


@schema.hook
def map_case(context: schemathesis.HookContext, case: Any) -> Any:
    return _fit(case)


@schema.hook
def before_add_examples(context: schemathesis.HookContext, examples: list) -> None:
    for case in examples:
        _fit(case)


@pytest.fixture(scope="module")
def served(app: FastAPI) -> Iterator[FastAPI]:
    """The app, its lifespan (pool) started by schemathesis's ASGI transport and ended here."""
    yield app
    asgi.shutdown_lifespans()


@schema.parametrize()
def test_every_operation_keeps_its_contract(case: Any, served: FastAPI,
                                            auth: dict[str, str]) -> None:
    SENT[case.operation.label] += 1
    headers = auth if case.method.upper() == "POST" else None
    case.call_and_validate(app=served, headers=headers, checks=CHECKS)


@negative.parametrize()
def test_every_operation_refuses_what_its_schema_does_not_admit(case: Any,
                                                                served: FastAPI) -> None:
    """Schema-invalid requests: a documented 4xx in the error shape, never a 5xx.

    Sent without an API key, so that no write can happen (a write answers 401 first).
    """
    SENT_INVALID[case.operation.label] += 1
    case.call_and_validate(app=served, checks=[not_a_server_error, status_code_conformance,
                                               content_type_conformance, error_shape])


def test_every_operation_was_exercised() -> None:
    """Each operation got requests (the parametrized test above ran first, in this module)."""
    operations = [r.ok().label for r in schema.get_all_operations()]
    print("\nschemathesis requests per operation (schema-valid, schema-invalid):")
    for label in operations:
        print(f"  {SENT[label]:4d} {SENT_INVALID[label]:4d}  {label}")
    print(f"  {sum(SENT.values()):4d} {sum(SENT_INVALID.values()):4d}  in all, over "
          f"{len(operations)} operations")
    assert all(SENT[label] > 0 for label in operations), SENT
    assert len(operations) >= 29
