"""Normalise boundary features: British National Grid, valid MultiPolygons, one row per code.

Every boundary set goes through :func:`prepare_boundaries` before it is stored, whatever file it
came from. Areas are only ever measured after this, in EPSG:27700 metres, never in degrees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from domain.errors import InputError

BNG = CRS.from_epsg(27700)
# Generous envelopes of Great Britain, to catch coordinates labelled with the wrong CRS.
_GB_LONLAT = (-9.5, 49.0, 2.5, 61.5)
_GB_BNG = (-100_000.0, -100_000.0, 800_000.0, 1_300_000.0)


@dataclass(frozen=True)
class Prepared:
    """The normalised features and what was done to them."""

    frame: gpd.GeoDataFrame  # code, name, parent_code, geometry (MultiPolygon, EPSG:27700)
    repaired: tuple[str, ...]  # codes whose geometry was invalid and was repaired


def _inside(bounds: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    minx, miny, maxx, maxy = bounds
    return bool(minx >= box[0] and miny >= box[1] and maxx <= box[2] and maxy <= box[3])


def to_bng(frame: gpd.GeoDataFrame, *, source: str) -> gpd.GeoDataFrame:
    """Reproject to EPSG:27700, refusing a missing CRS or coordinates that contradict it."""
    if frame.crs is None:
        raise InputError(
            f"{source} has no coordinate reference system",
            "save it with its CRS (GeoJSON without one is read as lon/lat; a Shapefile needs "
            "its .prj), or convert it to EPSG:27700 or EPSG:4326",
        )
    if frame.empty:
        raise InputError(f"{source} has no features", "check that the right file was chosen")
    bounds = frame.total_bounds
    crs = CRS.from_user_input(frame.crs)
    degrees_like = _inside(bounds, (-180.0, -90.0, 180.0, 90.0))
    if crs.is_geographic and not _inside(bounds, _GB_LONLAT):
        if not degrees_like and _inside(bounds, _GB_BNG):
            raise InputError(
                f"{source} says it is in lon/lat degrees but its coordinates look like British "
                f"National Grid metres (bounds {np.round(bounds).tolist()})",
                "declare the file's CRS as EPSG:27700",
            )
        raise InputError(
            f"{source} has lon/lat coordinates outside Great Britain "
            f"(bounds {np.round(bounds, 3).tolist()})",
            "check the axis order (longitude first) and the CRS",
        )
    if crs.is_projected and _inside(bounds, _GB_LONLAT):
        # Every coordinate is a small number that reads as lon/lat in Great Britain: metres
        # this small would put the whole file within a few metres of the grid's origin.
        raise InputError(
            f"{source} says it is in {crs.name} but its coordinates look like lon/lat degrees "
            f"in Great Britain (bounds {np.round(bounds, 3).tolist()})",
            "declare the CRS as EPSG:4326 (longitude, latitude), or send metres",
        )
    out = frame.to_crs(BNG)
    if not _inside(out.total_bounds, _GB_BNG):
        raise InputError(
            f"{source} lies outside Great Britain once projected to EPSG:27700 "
            f"(bounds {np.round(out.total_bounds).tolist()})",
            "check the file's declared CRS",
        )
    return out


def polygonal(geoms: np.ndarray, min_part_m2: float = 0.0) -> np.ndarray:
    """Keep only the polygon parts of each geometry, as MultiPolygons (empty if none).

    Parts smaller than ``min_part_m2`` are dropped: overlays of edges digitised differently
    leave slivers of 1e-11 m² that make later GEOS overlays return nonsense.

    Vectorised, and copying as little as it can: a one-part MultiPolygon that is kept whole is
    returned as it is, a Polygon is wrapped in a MultiPolygon in one GEOS call, and only other
    geometries (collections, several parts) are taken apart, filtered and put together again.
    """
    geoms = np.asarray(geoms, dtype=object)
    out = np.full(len(geoms), shapely.MultiPolygon(), dtype=object)
    kind = shapely.get_type_id(geoms)
    is_polygon = kind == shapely.GeometryType.POLYGON.value
    is_multi = kind == shapely.GeometryType.MULTIPOLYGON.value
    simple = ~shapely.is_empty(geoms) & (
        is_polygon | (is_multi & (shapely.get_num_geometries(geoms) == 1))
    )
    keep = simple
    if min_part_m2 > 0:
        big = shapely.area(geoms) >= min_part_m2
        simple &= big | is_polygon  # a small Polygon is simply dropped
        keep = simple & big
    out[keep & is_multi] = geoms[keep & is_multi]
    single = np.flatnonzero(keep & is_polygon)
    if len(single):
        shapely.multipolygons(geoms[single], indices=single, out=out)
    rest = np.flatnonzero(~simple)
    if len(rest):
        parts, index = shapely.get_parts(geoms[rest], return_index=True)  # index: ascending
        ok = (shapely.get_type_id(parts) == shapely.GeometryType.POLYGON.value) & ~(
            shapely.is_empty(parts)
        )
        if min_part_m2 > 0:
            ok &= shapely.area(parts) >= min_part_m2
        if ok.any():
            shapely.multipolygons(parts[ok], indices=rest[index[ok]], out=out)
    return out


def make_valid_polygons(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repair invalid geometries (GEOS ``structure`` method); return them and a repaired mask."""
    invalid = ~shapely.is_valid(geoms)
    fixed = geoms.copy()
    if invalid.any():
        fixed[invalid] = shapely.make_valid(
            geoms[invalid], method="structure", keep_collapsed=False
        )
    return polygonal(fixed), invalid


def prepare_boundaries(
    frame: gpd.GeoDataFrame,
    *,
    code_field: str,
    name_field: str,
    parent_field: str | None = None,
    source: str,
) -> Prepared:
    """Check and normalise boundary features for storage.

    Raises :class:`InputError` naming the feature at fault for a missing field, a blank or
    duplicate code, or a feature with no area; repairs invalid geometry and says which.
    """
    for field in (code_field, name_field, parent_field):
        if field and field not in frame.columns:
            raise InputError(
                f"{source} has no field {field!r} (fields: {', '.join(map(str, frame.columns))})",
                "name the field that holds the boundary codes/names",
            )
    codes = frame[code_field].astype("string").str.strip()
    blank = codes.isna() | (codes == "")
    if blank.any():
        i = int(np.flatnonzero(blank.to_numpy())[0])
        raise InputError(
            f"{source}: feature {i + 1} has no {code_field}", "give every feature a code",
            where=f"feature {i + 1}",
        )
    dup = codes.duplicated(keep=False)
    if dup.any():
        code = codes[dup].iloc[0]
        raise InputError(
            f"{source}: code {code} appears {int((codes == code).sum())} times",
            "merge the duplicate features or give each its own code",
            where=f"code {code}",
        )
    projected = to_bng(frame, source=source)
    geoms, repaired = make_valid_polygons(projected.geometry.to_numpy())
    area = shapely.area(geoms)
    empty = area <= 0
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise InputError(
            f"{source}: feature {codes.iloc[i]} has no area (not a polygon, or collapsed "
            "when repaired)",
            "fix or remove that feature",
            where=f"code {codes.iloc[i]}",
        )
    out = gpd.GeoDataFrame(
        {
            "code": codes.to_numpy(dtype=object),
            "name": frame[name_field].astype("string").fillna("").to_numpy(dtype=object),
            "parent_code": (
                frame[parent_field].astype("string").to_numpy(dtype=object)
                if parent_field
                else None
            ),
        },
        geometry=geoms,
        crs=BNG,
    )
    return Prepared(out, tuple(out["code"][repaired]))


def dissolve(
    frame: gpd.GeoDataFrame,
    groups: Sequence[str] | None,
    *,
    names: Mapping[str, str] | None = None,
    code: str | None = None,
    name: str | None = None,
) -> gpd.GeoDataFrame:
    """Union features into larger areas (wards into boroughs, or everything into one region).

    ``groups`` gives each feature's group code (e.g. its borough code) and ``names`` each group's
    name; ``groups=None`` makes one feature with the given ``code`` and ``name``.
    """
    if groups is None:
        geom = shapely.union_all(frame.geometry.to_numpy())
        return gpd.GeoDataFrame(
            {"code": [code], "name": [name], "parent_code": [None]},
            geometry=polygonal(np.array([geom], dtype=object)),
            crs=frame.crs,
        )
    keys = np.asarray(groups, dtype=object)
    codes = sorted(set(keys))
    geoms = np.array(
        [shapely.union_all(frame.geometry.to_numpy()[keys == c]) for c in codes], dtype=object
    )
    return gpd.GeoDataFrame(
        {"code": codes, "name": [(names or {}).get(c, c) for c in codes], "parent_code": None},
        geometry=polygonal(geoms),
        crs=frame.crs,
    )
