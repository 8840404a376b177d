"""Normalise boundary features: British National Grid, valid MultiPolygons, one row per code.

Every boundary set goes through :func:`prepare_boundaries` before it is stored, whatever file it
came from. Areas are only ever measured after this, in EPSG:27700 metres, never in degrees.

:func:`prepare_boundaries` checks the whole file before refusing it: every problem found (a
missing field, blank or duplicate codes, a missing CRS or one the coordinates contradict, null,
empty, zero-area, point, line or collection geometry, a self-intersection that cannot be
repaired safely) is collected into one :class:`~domain.errors.Rejected`, each naming the feature
by its 1-based number and code. Invalid polygons whose repair (GEOS ``make_valid``, method
``structure``) changes their area by less than :data:`MAX_REPAIR_CHANGE` are repaired, and each
repair is reported in :attr:`Prepared.repairs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from domain.errors import InputError, Problem, Rejected

BNG = CRS.from_epsg(27700)
# Generous envelopes of Great Britain, to catch coordinates labelled with the wrong CRS.
_GB_LONLAT = (-9.5, 49.0, 2.5, 61.5)
_GB_BNG = (-100_000.0, -100_000.0, 800_000.0, 1_300_000.0)

#: A repair of an invalid polygon is accepted when it changes the polygon's area by less than
#: this fraction (0.1 %); a bigger change (a bow-tie, whose shoelace area is about 0) is refused.
MAX_REPAIR_CHANGE = 0.001

#: Columns of :attr:`Prepared.repairs`.
REPAIR_COLUMNS = ("code", "feature", "area_before_m2", "area_after_m2", "area_changed_m2",
                  "reason")

_DECLARE = ("declare the CRS the coordinates are really in: EPSG:27700 (British National Grid "
            "metres) or EPSG:4326 (WGS 84 longitude, latitude)")
_REDRAW = ("redraw the boundary so that its outline never crosses itself: trace each ring in one "
           "direction (a bow-tie or figure-8 whose lobes run in opposite directions encloses "
           "area that cancels out), or split the lobes into separate polygons of a MultiPolygon")

_T = shapely.GeometryType
_POINTS = (_T.POINT.value, _T.MULTIPOINT.value)
_LINES = (_T.LINESTRING.value, _T.LINEARRING.value, _T.MULTILINESTRING.value)
_POLYGONS = (_T.POLYGON.value, _T.MULTIPOLYGON.value)


@dataclass(frozen=True)
class Prepared:
    """The normalised features and what was done to them.

    ``frame`` has columns code, name, parent_code and geometry (MultiPolygon, EPSG:27700).
    ``repairs`` has one row per feature whose invalid geometry was repaired, with columns
    :data:`REPAIR_COLUMNS`: its code, its 1-based feature number in the file, its area before
    and after the repair and the change (after - before, m²), and GEOS's reason it was invalid.
    """

    frame: gpd.GeoDataFrame
    repairs: pd.DataFrame

    @property
    def repaired(self) -> tuple[str, ...]:
        """Codes whose geometry was invalid and was repaired, in file order."""
        return tuple(self.repairs["code"])


def _inside(bounds: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    minx, miny, maxx, maxy = bounds
    return bool(minx >= box[0] and miny >= box[1] and maxx <= box[2] and maxy <= box[3])


def _read_crs(crs: object, source: str) -> CRS:
    try:
        return CRS.from_user_input(crs)
    except CRSError as err:
        raise InputError(
            f"{source} declares a coordinate reference system that cannot be read ({crs!s:.80})",
            _DECLARE,
        ) from err


def to_bng(frame: gpd.GeoDataFrame, *, source: str) -> gpd.GeoDataFrame:
    """Reproject to EPSG:27700, refusing a missing CRS or coordinates that contradict it.

    Raises :class:`InputError`, saying which CRS to declare, for: no CRS; a CRS pyproj cannot
    read, or one that is neither geographic nor projected (engineering, geocentric, vertical);
    lon/lat coordinates outside Great Britain, including latitude and longitude swapped and
    British National Grid metres labelled as degrees; degrees labelled as a projected CRS; and
    coordinates that land outside Great Britain once projected.
    """
    if frame.crs is None:
        raise InputError(
            f"{source} has no coordinate reference system",
            "save it with its CRS (GeoJSON without one is read as lon/lat; a Shapefile needs "
            "its .prj), or convert it to EPSG:27700 or EPSG:4326",
        )
    crs = _read_crs(frame.crs, source)
    if not (crs.is_geographic or crs.is_projected):
        raise InputError(
            f"{source} declares {crs.name!r}, a {crs.type_name} that is neither lon/lat degrees "
            "nor a map projection, so its coordinates cannot be placed on the map",
            _DECLARE,
        )
    if frame.empty:
        raise InputError(f"{source} has no features", "check that the right file was chosen")
    bounds = np.asarray(frame.total_bounds, dtype=float)
    swapped = _inside(bounds[[1, 0, 3, 2]], _GB_LONLAT)
    degrees_like = _inside(bounds, (-180.0, -90.0, 180.0, 90.0))
    if crs.is_geographic and not _inside(bounds, _GB_LONLAT):
        if swapped:
            raise InputError(
                f"{source} has its latitude and longitude swapped: its coordinates are outside "
                f"Great Britain as longitude, latitude but inside it the other way round "
                f"(bounds {np.round(bounds, 3).tolist()})",
                "swap the coordinates: GeoJSON is longitude, latitude (x = longitude, "
                f"y = latitude); keep the CRS as {crs.name}",
            )
        if not degrees_like and _inside(bounds, _GB_BNG):
            raise InputError(
                f"{source} says it is in lon/lat degrees ({crs.name}) but its coordinates look "
                f"like British National Grid metres (bounds {np.round(bounds).tolist()})",
                "declare the file's CRS as EPSG:27700 (British National Grid)",
            )
        raise InputError(
            f"{source} has lon/lat coordinates outside Great Britain "
            f"(bounds {np.round(bounds, 3).tolist()})",
            "check the axis order (longitude first) and the CRS",
        )
    if crs.is_projected and (_inside(bounds, _GB_LONLAT) or swapped):
        # Every coordinate is a small number that reads as lon/lat in Great Britain: metres
        # this small would put the whole file within a few metres of the grid's origin.
        if swapped:
            raise InputError(
                f"{source} says it is in {crs.name} but its coordinates look like latitude, "
                f"longitude degrees in Great Britain (bounds {np.round(bounds, 3).tolist()})",
                "declare the CRS as EPSG:4326 and swap the coordinates: GeoJSON is longitude, "
                "latitude",
            )
        raise InputError(
            f"{source} says it is in {crs.name} but its coordinates look like lon/lat degrees "
            f"in Great Britain (bounds {np.round(bounds, 3).tolist()})",
            "declare the CRS as EPSG:4326 (WGS 84 longitude, latitude), or send metres",
        )
    out = frame.to_crs(BNG)
    if not _inside(out.total_bounds, _GB_BNG):
        raise InputError(
            f"{source} lies outside Great Britain once projected from {crs.name} to EPSG:27700 "
            f"(bounds {np.round(out.total_bounds).tolist()})",
            f"check the file's declared CRS ({crs.name}); {_DECLARE}",
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


def _label(number: int, code: str | None) -> str:
    return f"feature {number} ({code})" if code else f"feature {number}"


def _numbers(numbers: Sequence[int]) -> str:
    words = [str(n) for n in numbers]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _field_problems(frame: gpd.GeoDataFrame, fields: Mapping[str, str | None]) -> list[Problem]:
    found = ", ".join(map(str, frame.columns))
    return [
        Problem(
            where="file", field=field, reason=f"there is no field {field!r} for the {role} "
            f"(fields: {found})",
            fix=f"name the field that holds the boundary {role}s, or add it to the file",
        )
        for role, field in fields.items()
        if field and field not in frame.columns
    ]


def _code_problems(codes: pd.Series, raw: pd.Series, code_field: str) -> list[Problem]:
    """Blank codes (missing, empty or only spaces) and codes used by more than one feature."""
    problems = []
    blank = (codes.isna() | codes.eq("").fillna(True)).to_numpy(dtype=bool)
    for i in np.flatnonzero(blank):
        value = raw.iloc[i]
        problems.append(Problem(
            where=_label(i + 1, None), feature=i + 1, field=code_field,
            value=None if pd.isna(value) else str(value),
            reason=f"the feature has no {code_field} (it is missing, empty or only spaces)",
            fix="give every feature its own code",
        ))
    dup = (codes.duplicated(keep=False) & ~blank).to_numpy()
    if dup.any():
        where = pd.Series(np.flatnonzero(dup) + 1, index=codes[dup].to_numpy())
        for code, numbers in where.groupby(level=0, sort=False):
            numbers = numbers.tolist()
            for n in numbers[1:]:
                problems.append(Problem(
                    where=_label(n, code), feature=n, field=code_field, value=str(code),
                    reason=f"code {code} is used by features {_numbers(numbers)} (codes are "
                    "compared without leading and trailing spaces)",
                    fix="merge the duplicate features into one, or give each its own code",
                ))
    return problems


def _geometry_problems(
    geoms: np.ndarray, codes: pd.Series, *, unit: str
) -> tuple[np.ndarray, list[Problem], pd.DataFrame]:
    """Check and repair every geometry at once: (MultiPolygons, problems, repairs).

    The checks and the repairs are vectorised; Python only loops over the features at fault to
    word their problems.
    """
    n = len(geoms)
    kind = shapely.get_type_id(geoms)  # -1 for a null geometry
    null = kind < 0
    empty = ~null & shapely.is_empty(geoms)
    shaped = ~null & ~empty
    collection = shaped & (kind == _T.GEOMETRYCOLLECTION.value)
    point = shaped & np.isin(kind, _POINTS)
    line = shaped & np.isin(kind, _LINES)
    polygon = shaped & np.isin(kind, _POLYGONS)

    fixed, invalid = make_valid_polygons(geoms)
    invalid &= polygon
    before = shapely.area(geoms)
    after = shapely.area(fixed)
    zero = polygon & (after <= 0)
    changed = after - before
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(before > 0, np.abs(changed) / before, np.inf)
    refused = invalid & ~zero & (share >= MAX_REPAIR_CHANGE)
    repaired = invalid & ~zero & ~refused
    reasons = np.full(n, "", dtype=object)
    if invalid.any():
        reasons[invalid] = shapely.is_valid_reason(geoms[invalid])

    problems: list[Problem] = []
    code_of = codes.to_numpy(dtype=object)

    def add(mask: np.ndarray, reason: str, fix: str, value: str | None = None) -> None:
        for i in np.flatnonzero(mask):
            code = code_of[i] if isinstance(code_of[i], str) and code_of[i] else None
            problems.append(Problem(
                where=_label(i + 1, code), feature=i + 1, field="geometry",
                value=value if value is not None else geoms[i].geom_type, reason=reason, fix=fix,
            ))

    add(null, "the feature has no geometry (null)", "draw its boundary or remove the feature",
        value="null")
    add(empty, "the feature's geometry is empty", "draw its boundary or remove the feature")
    add(point, "the feature is a point, not an area: a boundary set must be polygons",
        "send the boundary polygons, not their centroids or labels; remove stray points")
    add(line, "the feature is a line, not an area: a boundary set must be polygons",
        "send closed polygons (close the outline and save it as a polygon), or remove the line")
    add(collection, "the feature is a GeometryCollection, which is refused: only polygons and "
        "multipolygons can be stored", "keep only the polygon parts (save it as a MultiPolygon)")
    add(zero, "the feature has no area: its points lie on a line, or it collapses to nothing "
        "when repaired", "redraw the boundary as a polygon enclosing an area, or remove it")
    for i in np.flatnonzero(refused):
        code = code_of[i] if isinstance(code_of[i], str) and code_of[i] else None
        pct = "an infinite" if not np.isfinite(share[i]) else f"a {100 * share[i]:.3g} %"
        problems.append(Problem(
            where=_label(i + 1, code), feature=i + 1, field="geometry", value=reasons[i],
            reason=f"the outline crosses itself: as drawn it encloses {before[i]:,.1f} {unit}, "
            f"repaired {after[i]:,.1f} {unit}, {pct} change, more than the "
            f"{100 * MAX_REPAIR_CHANGE:g} % a repair may make", fix=_REDRAW,
        ))

    take = np.flatnonzero(repaired)
    repairs = pd.DataFrame({
        "code": pd.Series(code_of[take], dtype=object),
        "feature": take + 1,
        "area_before_m2": before[take],
        "area_after_m2": after[take],
        "area_changed_m2": changed[take],
        "reason": pd.Series(reasons[take], dtype=object),
    }, columns=list(REPAIR_COLUMNS))
    return fixed, problems, repairs


def _within(bounds: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    return ((bounds[:, 0] >= box[0]) & (bounds[:, 1] >= box[1]) & (bounds[:, 2] <= box[2])
            & (bounds[:, 3] <= box[3]))


def _placement_problems(frame: gpd.GeoDataFrame, codes: pd.Series) -> list[Problem]:
    """Features whose coordinates contradict a CRS that the rest of the file agrees with.

    A file with some features in lon/lat the other way round, or in the wrong units, passes or
    fails :func:`to_bng` as a whole; this names the features at fault. When every feature is
    at fault (or none), it returns nothing and the file-level check speaks.
    """
    try:
        crs = CRS.from_user_input(frame.crs) if frame.crs is not None else None
    except CRSError:
        return []
    if crs is None or not (crs.is_geographic or crs.is_projected) or frame.empty:
        return []
    bounds = shapely.bounds(np.asarray(frame.geometry.to_numpy(), dtype=object))
    placed = ~np.isnan(bounds).any(axis=1)
    swapped = placed & _within(bounds[:, [1, 0, 3, 2]], _GB_LONLAT)
    if crs.is_geographic:
        bng = placed & ~_within(bounds, (-180.0, -90.0, 180.0, 90.0)) & _within(bounds, _GB_BNG)
        bad = placed & ~_within(bounds, _GB_LONLAT)
    else:
        bng = np.zeros(len(bounds), dtype=bool)
        bad = placed & (_within(bounds, _GB_LONLAT) | swapped)
    if not bad.any() or bad.sum() == placed.sum():
        return []
    code_of = codes.to_numpy(dtype=object)
    problems = []
    for i in np.flatnonzero(bad):
        code = code_of[i] if isinstance(code_of[i], str) and code_of[i] else None
        if swapped[i]:
            reason, fix = ("its latitude and longitude are swapped (the rest of the file is "
                           "longitude, latitude)", "swap the coordinates: GeoJSON is longitude, "
                           "latitude")
        elif crs.is_projected:
            reason, fix = (f"its coordinates look like lon/lat degrees, unlike the rest of the "
                           f"file ({crs.name})", f"send this feature in {crs.name} like the rest")
        elif bng[i]:
            reason, fix = ("its coordinates look like British National Grid metres, unlike the "
                           "rest of the file (lon/lat degrees)",
                           f"send this feature in {crs.name} like the rest")
        else:
            reason, fix = ("it lies outside Great Britain", "check this feature's coordinates")
        problems.append(Problem(
            where=_label(i + 1, code), feature=i + 1, field="geometry",
            value=f"bounds {np.round(bounds[i], 3).tolist()}", reason=reason, fix=fix,
        ))
    return problems


def prepare_boundaries(
    frame: gpd.GeoDataFrame,
    *,
    code_field: str,
    name_field: str,
    parent_field: str | None = None,
    source: str,
) -> Prepared:
    """Check and normalise boundary features for storage, refusing the file if any is wrong.

    Every problem is collected before anything is refused: missing fields; blank and duplicate
    codes (leading and trailing spaces are stripped first); a missing or contradicted CRS (see
    :func:`to_bng`; features whose coordinates contradict a CRS the rest of the file agrees
    with, such as a few with latitude and longitude swapped, are named one by one); null,
    empty, zero-area, point, line and GeometryCollection geometries; and self-intersections
    whose repair would change the area by :data:`MAX_REPAIR_CHANGE` or more. If there is any,
    raises :class:`~domain.errors.Rejected` with one :class:`~domain.errors.Problem` each,
    ordered by feature (file-level problems first); otherwise returns the features, with the
    repaired ones listed in :attr:`Prepared.repairs`.
    """
    problems = _field_problems(frame, {"code": code_field, "name": name_field,
                                       "parent code": parent_field})
    if code_field in frame.columns:
        raw = frame[code_field]
        codes = raw.astype("string").str.strip()
        problems += _code_problems(codes, raw, code_field)
    else:
        codes = pd.Series(pd.NA, index=frame.index, dtype="string")
    placement = _placement_problems(frame, codes)
    try:
        projected = to_bng(frame, source=source)
        unit = "m²"
    except InputError as err:
        if not placement:  # else the features at fault are named instead
            problems.append(Problem(where="file", field="crs", reason=err.cause, fix=err.fix))
        projected, unit = frame, "square units of the declared CRS"
    problems += placement
    geoms, geometry_problems, repairs = _geometry_problems(
        np.asarray(projected.geometry.to_numpy(), dtype=object), codes, unit=unit
    )
    problems += geometry_problems
    if problems:
        problems.sort(key=lambda p: -1 if p.feature is None else p.feature)
        raise Rejected(source, problems)
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
    return Prepared(out, repairs)


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
