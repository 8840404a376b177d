"""Query parameters, checked once into one frozen object per request.

Each endpoint turns what the client sent into one of these objects (or refuses it with a 400
naming the parameter and the form that works); the object is then both what the store is asked
and, with the layer's version, the response's cache key (:func:`api.http.etag` of it), so no
parameter can change a response without changing its ETag.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Query, Request

from api import crs as crs_
from domain.errors import BadRequest
from placespend.settings import Settings
from store.features import Filter, Layer

_FINANCIAL_YEAR = re.compile(r"^(\d{4})-(\d{2})$")
_INTEGER = re.compile(r"^-?\d{1,19}$")
#: ``?run=N`` pins the figures to one run, so a figure cited in a report can be fetched again.
RunPin = Annotated[int | None, Query(
    ge=1, le=2**31 - 1,
    description="Serve the figures of this run (default: the run the collection serves "
                "now). Every run stays addressable, published or not; see /runs. Boundary "
                "sets have no run.",
)]
#: The largest zoom tiles are made for (about 2 cm a pixel in London).
MAX_ZOOM = 24
#: The largest ``offset`` of /items by default (``max_offset``; the API description says it).
DEFAULT_MAX_OFFSET: int = Settings.model_fields["max_offset"].default


def check_offset(offset: int, maximum: int, collection_id: str = "{collectionId}") -> None:
    """Refuse an ``offset`` past ``maximum`` (400 naming ``offset``).

    Paging that deep costs the database the whole skip every time; a bbox, a filter or the
    download gets there at once.
    """
    if offset > maximum:
        raise BadRequest(
            f"offset {offset:,} is over this server's maximum of {maximum:,}",
            "narrow the request with bbox (or a property filter) so fewer pages are needed, "
            f"or take every feature at once from /collections/{collection_id}/download",
            where="offset",
        )


@dataclass(frozen=True)
class ItemsQuery:
    """Everything that decides a page of ``/items`` (or a download, or one feature)."""

    limit: int = 1000
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None  # lon/lat, or metres when 27700
    bbox_srid: int = 4326
    crs: str = crs_.CRS84
    when: tuple[datetime | None, datetime | None] | None = None
    parent: str | None = None
    filters: tuple[tuple[str, str], ...] = ()
    format: str = "json"
    code: str | None = None


@dataclass(frozen=True)
class TileQuery:
    """Everything that decides one vector tile."""

    z: int
    x: int
    y: int
    cap: int


def _numbers(text: str, name: str, fix: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 6):
        raise BadRequest(f"{name} has {len(parts)} value(s); it needs 4 (or 6 with heights)",
                         fix, where=name)
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise BadRequest(f"{name} {text!r} holds something that is not a number", fix,
                         where=name) from None
    if not all(math.isfinite(n) for n in numbers):
        raise BadRequest(f"{name} {text!r} holds a value that is not finite", fix, where=name)
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    return numbers


_NUMBER = r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?"
#: Four numbers, or six with heights (a number each: parse_bbox checks ranges and order).
#: For API descriptions only: parse_bbox refuses the rest with a 400 saying why in words.
BBOX_PATTERN = rf"^ *{_NUMBER} *(, *{_NUMBER} *){{3}}((, *{_NUMBER} *){{2}})?$"


def parse_bbox(text: str, bbox_crs: crs_.Crs | None = None) -> tuple[float, float, float, float]:
    """Parse a ``bbox`` in ``bbox_crs`` (default CRS84) into (minx, miny, maxx, maxy).

    CRS84 is minlon,minlat,maxlon,maxlat; EPSG:4326 is minlat,minlon,maxlat,maxlon (returned in
    lon/lat order); EPSG:27700 is metres. Six numbers (with heights) drop the heights. Raises
    :class:`BadRequest` naming what is wrong and the form that works.
    """
    bbox_crs = bbox_crs or crs_.parse(None, "bbox-crs")
    if bbox_crs.srid == 27700:
        fix = ("give bbox=mineasting,minnorthing,maxeasting,maxnorthing in metres with "
               "bbox-crs=EPSG:27700, e.g. bbox=533000,184000,537000,187000")
        minx, miny, maxx, maxy = _numbers(text, "bbox", fix)
        if minx > maxx or miny > maxy:
            raise BadRequest(f"bbox {text!r} has a minimum larger than its maximum",
                             fix + " (minimum values first)", where="bbox")
        return minx, miny, maxx, maxy
    if bbox_crs.lat_first:
        fix = ("give bbox=minlat,minlon,maxlat,maxlon in degrees with bbox-crs EPSG:4326 "
               "(latitude first), e.g. bbox=51.53,-0.11,51.58,-0.02")
        miny, minx, maxy, maxx = _numbers(text, "bbox", fix)
    else:
        fix = ("give bbox=minlon,minlat,maxlon,maxlat in degrees, e.g. "
               "bbox=-0.11,51.53,-0.02,51.58")
        minx, miny, maxx, maxy = _numbers(text, "bbox", fix)
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90
            and -90 <= maxy <= 90):
        raise BadRequest(
            f"bbox {text!r} lies outside longitude -180..180 / latitude -90..90",
            fix + (" (latitude first)" if bbox_crs.lat_first else " (longitude first)"),
            where="bbox",
        )
    if minx > maxx or miny > maxy:
        raise BadRequest(f"bbox {text!r} has a minimum larger than its maximum",
                         fix + " (minimum values first)", where="bbox")
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
    except (ValueError, OverflowError):
        raise BadRequest(f"datetime {text!r} is not a date-time or interval", fix,
                         where="datetime") from None
    if start and stop and start > stop:
        raise BadRequest(f"datetime {text!r} ends before it starts", fix, where="datetime")
    return start, stop


def financial_year_interval(year: str | None) -> tuple[datetime, datetime] | None:
    """UK financial year ``2014-15`` -> 1 April 2014 00:00Z .. 31 March 2015 23:59:59Z."""
    m = _FINANCIAL_YEAR.match(year or "")
    if not m:
        return None
    first = int(m.group(1))
    return (datetime(first, 4, 1, tzinfo=UTC),
            datetime(first + 1, 4, 1, tzinfo=UTC) - timedelta(seconds=1))


def in_time(layer: Layer, when: tuple[datetime | None, datetime | None] | None) -> bool:
    """Whether a ``datetime`` filter meets the layer's financial year (always, when none)."""
    year = financial_year_interval(layer.financial_year)
    if when is None or year is None:
        return True
    return (when[0] is None or when[0] <= year[1]) and (when[1] is None or when[1] >= year[0])


def queryables(layer: Layer) -> dict[str, str]:
    """The properties a client may filter on (``?name=value``), with their JSON types."""
    return {p["name"]: p["type"] for p in layer.properties
            if p["type"] in ("string", "integer", "number")}


def parse_filters(request: Request, layer: Layer, known: frozenset[str]
                  ) -> tuple[tuple[str, str], ...]:
    """``?property=value`` pairs on the layer's queryables; anything else unknown is a 400."""
    allowed = queryables(layer)
    out = []
    for name in sorted(set(request.query_params.keys()) - known):
        if name not in allowed:
            raise BadRequest(
                f"unknown query parameter {name}",
                f"use {', '.join(sorted(known))}, or filter on a property listed at "
                f"/collections/{layer.id}/queryables",
                where=name,
            )
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise BadRequest(f"{name} is given {len(values)} times",
                             f"give {name} once (one value to match)", where=name)
        value = values[0]
        if len(value) > 200:
            raise BadRequest(f"the value of {name} is {len(value)} characters long",
                             "give at most 200 characters", where=name)
        kind = allowed[name]
        if kind == "integer" and not _INTEGER.match(value.strip()):
            raise BadRequest(f"{name}={value!r} is not a whole number",
                             f"{name} holds whole numbers, e.g. {name}=0", where=name)
        if kind == "number":
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                raise BadRequest(f"{name}={value!r} is not a number",
                                 f"{name} holds numbers, e.g. {name}=1.5", where=name)
        out.append((name, value.strip() if kind != "string" else value))
    return tuple(out)


def store_filters(layer: Layer, filters: tuple[tuple[str, str], ...]) -> tuple[Filter, ...]:
    """The filters as the store takes them (each with its property's type)."""
    types = queryables(layer)
    return tuple(Filter(name, types[name], value) for name, value in filters)


def check_tile(z: int, x: int, y: int) -> None:
    """A WebMercatorQuad tile address: 0 <= z <= MAX_ZOOM, 0 <= x, y < 2**z; else 400."""
    if not 0 <= z <= MAX_ZOOM:
        raise BadRequest(f"zoom {z} is outside 0..{MAX_ZOOM}",
                         f"ask for a zoom level from 0 to {MAX_ZOOM}", where="z")
    n = 2 ** z
    for name, value in (("x", x), ("y", y)):
        if not 0 <= value < n:
            raise BadRequest(f"{name} {value} is outside 0..{n - 1} at zoom {z}",
                             f"at zoom {z} give {name} from 0 to {n - 1}", where=name)
