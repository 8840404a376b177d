"""A polygon sent by a user (a drawn neighbourhood): GeoJSON in, British National Grid out.

The result is a valid MultiPolygon in EPSG:27700, or an :class:`~domain.errors.InputError` that
says what is wrong and how to fix it.

Accepted: a bare Polygon or MultiPolygon, a Feature holding one, or a FeatureCollection of
exactly one such Feature. Coordinates are lon/lat (EPSG:4326, as RFC 7946 says) unless declared
otherwise: ``crs=EPSG:27700`` on the request, or the old GeoJSON ``crs`` member naming
EPSG:27700. The same checks as for boundary files apply (:func:`geo.prepare.to_bng`):
coordinates that contradict their declared CRS are refused, invalid rings are repaired.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from domain.errors import InputError
from geo.prepare import make_valid_polygons, to_bng

_FIX_SHAPE = ("send a GeoJSON Polygon or MultiPolygon, bare or as a Feature, e.g. "
              '{"type": "Polygon", "coordinates": [[[-0.08, 51.55], ...]]}')


def parse_crs(text: str | None) -> CRS:
    """The CRS a user declared (``EPSG:27700``, an OGC URI, ...), or EPSG:4326 when none."""
    if text is None or not str(text).strip():
        return CRS.from_epsg(4326)
    value = str(text).strip()
    if value.endswith("/OGC/1.3/CRS84") or value in ("CRS84", "OGC:CRS84"):
        return CRS.from_epsg(4326)
    try:
        return CRS.from_user_input(value)
    except CRSError:
        raise InputError(
            f"the coordinate reference system {value!r} is not known", "use EPSG:4326 "
            "(longitude, latitude) or EPSG:27700 (British National Grid metres)", where="crs",
        ) from None


def polygon_from_geojson(obj: Any, crs: str | None = None) -> tuple[shapely.Geometry, str]:
    """Return (MultiPolygon in EPSG:27700, name given in the Feature's properties or "").

    ``crs`` is the CRS declared on the request; a ``crs`` member inside the GeoJSON also counts.
    """
    if not isinstance(obj, dict) or "type" not in obj:
        raise InputError("the body is not a GeoJSON object", _FIX_SHAPE, where="body")
    declared = crs
    member = obj.get("crs")
    if declared is None and isinstance(member, dict):
        named = _mapping(member.get("properties")).get("name")
        declared = None if named is None else str(named)
    name = ""
    geometry: Any = obj
    if obj["type"] == "FeatureCollection":
        features = obj.get("features") or []
        if len(features) != 1:
            raise InputError(
                f"the FeatureCollection holds {len(features)} features; one is needed",
                "send one neighbourhood at a time", where="features",
            )
        geometry = features[0]
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        name = str(_mapping(geometry.get("properties")).get("name") or "")
        geometry = geometry.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        kind = geometry.get("type") if isinstance(geometry, dict) else type(geometry).__name__
        raise InputError(f"the geometry is a {kind}, not a Polygon or MultiPolygon", _FIX_SHAPE,
                         where="geometry")
    try:
        shape = shapely.geometry.shape(_flat(geometry))
    except Exception as exc:  # noqa: BLE001 - shapely raises several kinds for bad coordinates
        raise InputError(f"the polygon's coordinates cannot be read ({exc})", _FIX_SHAPE,
                         where="geometry.coordinates") from None
    if shape.is_empty:
        raise InputError("the polygon is empty", _FIX_SHAPE, where="geometry.coordinates")
    if not np.isfinite(shapely.get_coordinates(shape)).all():
        raise InputError("the polygon has coordinates that are not finite numbers", _FIX_SHAPE,
                         where="geometry.coordinates")
    frame = gpd.GeoDataFrame(geometry=[shape], crs=parse_crs(declared))
    projected = to_bng(frame, source="the polygon")
    fixed, _ = make_valid_polygons(projected.geometry.to_numpy())
    if shapely.area(fixed[0]) <= 0:
        raise InputError("the polygon has no area (its rings collapse)",
                         "draw a polygon with at least three distinct corners",
                         where="geometry.coordinates")
    return fixed[0], name


def _mapping(value: Any) -> dict:
    """A GeoJSON member that should be an object: itself, or {} (``null``, ``true``...)."""
    return value if isinstance(value, dict) else {}


def _flat(obj: Any) -> Any:
    """The GeoJSON with every position cut to [x, y]: a neighbourhood is a 2D footprint.

    Heights are not stored (the boundary geometry column is 2D, so saving one with heights
    failed in PostGIS), and they would only shift the reprojection.
    """
    if isinstance(obj, dict):
        return {k: _positions(v) if k == "coordinates" else _flat(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_flat(v) for v in obj]
    return obj


def _positions(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        return value[:2]
    if isinstance(value, list):
        return [_positions(v) for v in value]
    return value  # not coordinates: left for the reader to refuse
