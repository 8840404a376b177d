"""Site files (schools, GP practices, stations...): one point per site, with its other fields.

:func:`read_site_file` reads either

- a vector file (GeoJSON, GeoPackage, zipped Shapefile, opened with
  :func:`intake.files.open_vector`) of Point features in any declared CRS, or
- a CSV whose points are eastings/northings (EPSG:27700), longitudes/latitudes (WGS 84), or
  only postcodes, which the orchestrator resolves against the loaded postcode points (a row
  with coordinates and a postcode is placed by its coordinates; one with blank coordinates and
  a postcode, by the postcode).

Every site needs an id (unique in the file) and a name; every other field is kept as
``attrs``: numbers as numbers (``1187``, ``12.5``; not ``0123``, which stays text), anything
else as text, blanks as null. Every row or feature at fault is a
:class:`~domain.errors.Problem` appended to the caller's list, so the orchestrator can add its
own (unknown postcodes) before refusing the file whole.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from domain.errors import InputError, Problem
from intake import files
from intake.postcodes import (
    BNG,
    WGS84,
    Fault,
    normalise_postcodes,
    parse_coordinates,
    project_points,
)
from intake.tables import read_rows
from intake.values import BadValue, parse_code

__all__ = ["COLUMNS", "SiteFields", "SitesRead", "attr_value", "read_site_file"]

#: Columns of :attr:`SitesRead.sites`. ``located`` is ``coordinates`` or ``postcode``; a site
#: located by postcode has NaN ``x``/``y`` until the orchestrator resolves it.
COLUMNS = ["row", "feature", "where", "site_code", "name", "postcode", "located", "x", "y",
           "attrs"]

_INT = re.compile(r"^-?(?:0|[1-9][0-9]{0,14})$")
_FLOAT = re.compile(r"^-?(?:0|[1-9][0-9]{0,14})\.[0-9]+$")


@dataclass(frozen=True)
class SiteFields:
    """Which fields of a site file hold what (coordinates: CSV only; a pair, or none)."""

    id_field: str
    name_field: str
    postcode_field: str | None = None
    easting_field: str | None = None
    northing_field: str | None = None
    longitude_field: str | None = None
    latitude_field: str | None = None
    layer: str | None = None
    encoding: str | None = None

    @property
    def coordinates(self) -> tuple[tuple[str, str], CRS] | None:
        """The two coordinate columns named and their CRS, or None."""
        if self.easting_field and self.northing_field:
            return (self.easting_field, self.northing_field), BNG
        if self.longitude_field and self.latitude_field:
            return (self.longitude_field, self.latitude_field), WGS84
        return None


@dataclass
class SitesRead:
    """The sites a file holds, before postcodes are resolved against the store."""

    sites: pd.DataFrame
    #: ``csv``, ``geojson``, ``gpkg`` or ``shapefile``.
    format: str
    attr_fields: list[str]
    declared_crs: str | None = None
    notes: tuple[str, ...] = field(default=())


def attr_value(value: object) -> object:
    """A field's value as stored in ``attrs``: a JSON number, text, or None for a blank."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if not math.isfinite(f) else (int(f) if f.is_integer() else f)
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    text = str(value).strip()
    if not text:
        return None
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def _text(value: object) -> str:
    """A vector field's value as text (an integral float, as pandas gives nullable ints, as int)."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _missing(wanted: list[str], have: list[str], source: str, where: str) -> None:
    absent = [w for w in wanted if w not in have]
    if absent:
        raise InputError(f"{source} has no field {', '.join(map(repr, absent))} (fields: "
                         f"{', '.join(map(repr, have)) or 'none'})",
                         "name the fields the file has with --id-field, --name-field and "
                         "--postcode-field", where=where)


def read_site_file(path: Path | str, fields: SiteFields, *, source: str,
                   problems: list[Problem]) -> SitesRead:
    """Read a site file, appending every row or feature at fault to ``problems``.

    Returns the sites that are not at fault (columns :data:`COLUMNS`). Raises
    :class:`~domain.errors.InputError` for what is wrong with the file as a whole: not a kind
    read here, a named field it does not have, coordinate fields named for a vector file (its
    points are its geometry), a CSV with neither coordinate nor postcode fields named, no CRS.
    """
    path = Path(path)
    kind = files.sniff(path, source=source)
    if kind == "csv":
        return _read_csv(path, fields, source, problems)
    if fields.coordinates or fields.easting_field or fields.longitude_field \
            or fields.northing_field or fields.latitude_field:
        raise InputError(f"{source} is a vector file: its sites are placed by their geometry, "
                         "not by coordinate fields", "leave out --easting-field, "
                         "--northing-field, --longitude-field and --latitude-field",
                         where=source)
    return _read_vector(path, fields, source, problems)


def _read_csv(path: Path, fields: SiteFields, source: str, problems: list[Problem]) -> SitesRead:
    coords = fields.coordinates
    if coords is None and not fields.postcode_field:
        raise InputError(f"{source} is a CSV, and no coordinate or postcode fields are named",
                         "name them: --easting-field and --northing-field, --longitude-field "
                         "and --latitude-field, or --postcode-field", where=source)
    used = [fields.id_field, fields.name_field]
    used += [fields.postcode_field] if fields.postcode_field else []
    used += list(coords[0]) if coords else []
    records: list[dict[str, str]] = []
    lines: list[int] = []
    for row in read_rows(path, tuple(used), encoding=fields.encoding, source=source,
                         problems=problems):
        records.append(row.values)
        lines.append(row.line_no)
    table = pd.DataFrame.from_records(records)
    if table.empty:
        table = pd.DataFrame(columns=used)
    others = [c for c in table.columns if c not in used]
    attrs = [{c: attr_value(r[c]) for c in others} for r in records]
    n = len(table)
    if coords:
        a, b, given, faults = parse_coordinates(table[coords[0][0]], table[coords[0][1]],
                                                coords[0])
        x, y, point_faults = project_points(a, b, coords[1], coords[0])
        faults += point_faults
    else:
        x = y = np.full(n, np.nan)
        given, faults = np.zeros(n, dtype=bool), []
    frame = pd.DataFrame({
        "row": lines, "feature": [None] * n, "where": [f"row {r}" for r in lines],
        "site_code": table[fields.id_field], "name": table[fields.name_field],
        "postcode": table[fields.postcode_field] if fields.postcode_field else [""] * n,
        "x": x, "y": y, "attrs": attrs})
    if coords and fields.postcode_field:
        nowhere = (f"{', '.join(coords[0])}, {fields.postcode_field}",
                   "the site has neither coordinates nor a postcode",
                   f"give its {' and '.join(coords[0])}, or its postcode")
    elif coords:
        nowhere = (", ".join(coords[0]), "the site has no coordinates",
                   f"give its {' and '.join(coords[0])}")
    else:
        nowhere = (str(fields.postcode_field), "the postcode is blank",
                   "give every site its postcode")
    return SitesRead(_checked(frame, given, faults, fields, problems, nowhere), "csv", others)


def _read_vector(path: Path, fields: SiteFields, source: str,
                 problems: list[Problem]) -> SitesRead:
    vector = files.open_vector(path, files.UploadLimits(), source=source, layer=fields.layer)
    raw = vector.frame
    geom_name = raw.geometry.name
    have = [str(c) for c in raw.columns if c != geom_name]
    wanted = [fields.id_field, fields.name_field] + ([fields.postcode_field]
                                                     if fields.postcode_field else [])
    _missing(wanted, have, source, source)
    if raw.crs is None:
        raise InputError(f"{source} has no coordinate reference system",
                         "save it with its CRS, or convert it to EPSG:27700 or EPSG:4326",
                         where=source)
    try:
        crs = CRS.from_user_input(raw.crs)
    except CRSError:
        raise InputError(f"{source} declares a coordinate reference system that cannot be read",
                         "declare EPSG:27700 or EPSG:4326", where=source) from None
    if not (crs.is_geographic or crs.is_projected):
        raise InputError(f"{source} declares {crs.name!r}, which is neither longitude/latitude "
                         "nor a map projection", "declare EPSG:27700 or EPSG:4326",
                         where=source)
    n = len(raw)
    codes = [_text(v) for v in raw[fields.id_field]]
    geoms = np.asarray(raw.geometry.to_numpy(), dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    points = ~missing & (shapely.get_type_id(geoms) == shapely.GeometryType.POINT.value)
    faults: list[Fault] = []
    for i in np.flatnonzero(~missing & ~points):
        kind = geoms[i].geom_type
        faults.append(Fault(int(i), "geometry", kind, f"the site is a {kind}, not a Point",
                            "give every site one Point (e.g. a polygon's representative "
                            "point), or leave it out"))
    a = np.where(points, shapely.get_x(np.where(points, geoms, None)), np.nan)
    b = np.where(points, shapely.get_y(np.where(points, geoms, None)), np.nan)
    values = [f"POINT ({a[i]:g} {b[i]:g})" for i in range(n)]
    x, y, point_faults = project_points(a, b, crs, ("geometry", "geometry"), values)
    faults += point_faults
    others = [c for c in have if c not in wanted]
    records = raw[others].to_dict(orient="records") if others else [{}] * n
    features = list(range(1, n + 1))
    frame = pd.DataFrame({
        "row": [None] * n, "feature": features,
        "where": [f"feature {k} ({c})" if c else f"feature {k}"
                  for k, c in zip(features, codes, strict=True)],
        "site_code": codes, "name": [_text(v) for v in raw[fields.name_field]],
        "postcode": [_text(v) for v in raw[fields.postcode_field]] if fields.postcode_field
        else [""] * n, "x": x, "y": y,
        "attrs": [{str(k): attr_value(v) for k, v in r.items()} for r in records]})
    nowhere = ("geometry", "the feature has no geometry", "give it a Point"
               + (" or a postcode" if fields.postcode_field else ""))
    read = _checked(frame, points, faults, fields, problems, nowhere)
    return SitesRead(read, {"GeoJSON": "geojson", "GPKG": "gpkg"}.get(vector.driver,
                                                                      "shapefile"),
                     others, vector.declared_crs.to_string() if vector.declared_crs else None,
                     vector.notes)


def _checked(frame: pd.DataFrame, given: np.ndarray, faults: list[Fault], fields: SiteFields,
             problems: list[Problem], nowhere: tuple[str, str, str]) -> pd.DataFrame:
    """Check ids, names and postcodes, choose how each site is located; drop the faulty."""
    bad = np.zeros(len(frame), dtype=bool)

    def problem(i: int, fld: str, value: str | None, reason: str, fix: str) -> None:
        bad[i] = True
        r = frame.iloc[i]
        problems.append(Problem(r["where"], reason, fix, field=fld, value=value,
                                row=None if pd.isna(r["row"]) else int(r["row"]),
                                feature=None if pd.isna(r["feature"]) else int(r["feature"])))

    seen: dict[str, str] = {}
    codes = []
    for i, raw in enumerate(frame["site_code"]):
        try:
            code = parse_code(raw, fields.id_field)
        except BadValue as exc:
            problem(i, fields.id_field, raw, exc.reason, exc.fix)
            codes.append(raw)
            continue
        if code in seen:
            problem(i, fields.id_field, code, f"id {code} appears twice (first at "
                    f"{seen[code]})", "give every site its own id, or keep one row per site")
        else:
            seen[code] = frame["where"].iat[i]
        codes.append(code)
    names = frame["name"].fillna("").astype(str).str.strip()
    for i in np.flatnonzero((names == "").to_numpy()):
        problem(int(i), fields.name_field, "", "the site has no name",
                f"give every site its name in {fields.name_field} (the id is not used as a "
                "name)")
    postcodes, malformed = normalise_postcodes(frame["postcode"])
    for i in np.flatnonzero(malformed):
        problem(int(i), str(fields.postcode_field), str(frame["postcode"].iat[i]),
                f"{frame['postcode'].iat[i]!r} is not a UK postcode",
                "write it as a UK postcode (e.g. E8 1DY), or leave it blank")
    for f in faults:
        problem(f.index, f.field, f.value, f.reason, f.fix)
    faulted = np.zeros(len(frame), dtype=bool)
    faulted[np.fromiter((f.index for f in faults), dtype=int, count=len(faults))] = True
    by_postcode = ~given & ~faulted & postcodes.notna().to_numpy()
    for i in np.flatnonzero(~given & ~faulted & ~by_postcode & ~malformed):
        problem(int(i), nowhere[0], "", nowhere[1], nowhere[2])
    out = frame.assign(site_code=codes, name=names, postcode=postcodes.to_numpy(dtype=object),
                       located=np.where(by_postcode, "postcode", "coordinates"))
    return out.loc[~bad, COLUMNS].reset_index(drop=True)
