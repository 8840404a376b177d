"""Postcode points (e.g. OS Code-Point Open), and the coordinate checks every point file shares.

:func:`read_postcode_file` reads a CSV of postcodes with eastings/northings (EPSG:27700) or
longitudes/latitudes (WGS 84) into one row per postcode, normalised (``e1  0aa`` is ``E1 0AA``)
and placed in British National Grid. Every row at fault is a :class:`~domain.errors.Problem`
(a malformed postcode, blank or non-numeric coordinates, coordinates outside Great Britain or in
the other system, a postcode twice) and the file is refused whole.

:func:`parse_coordinates` and :func:`project_points` are the checks on coordinates that site
files share: columns are checked as text, then projected to EPSG:27700 on whole arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import CRS, Transformer

from domain.errors import InputError, Problem, Rejected
from intake import files
from intake.tables import read_rows
from intake.values import BadValue

__all__ = ["BNG_BOX", "GB_LONLAT", "Fault", "PostcodeFields", "normalise_postcode",
           "normalise_postcodes", "parse_coordinates", "project_points", "read_postcode_file"]

#: Generous envelope of Great Britain in British National Grid metres (minx, miny, maxx, maxy).
BNG_BOX = (-100_000.0, -100_000.0, 800_000.0, 1_300_000.0)
#: Generous envelope of Great Britain in longitude, latitude degrees.
GB_LONLAT = (-9.5, 49.0, 2.5, 61.5)
BNG = CRS.from_epsg(27700)
WGS84 = CRS.from_epsg(4326)

#: A UK postcode with its spaces removed: outward code (area letters, district) and inward
#: code (sector digit, unit letters); ``GIR 0AA`` is the one postcode of another shape.
_COMPACT = re.compile(r"^(?:GIR|[A-Z]{1,2}[0-9][A-Z0-9]?)[0-9][A-Z]{2}$")
_POSTCODE_FIX = ("write a UK postcode: outward code, a space, inward code, e.g. E8 1DY or "
                 "EC2A 4NE")
#: A coordinate: a plain decimal, optionally signed (no separators, no exponent).
_NUMBER = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$"


def normalise_postcode(text: str) -> str:
    """One postcode in its canonical form (upper case, one space before the inward code).

    Refuses with :class:`~intake.values.BadValue` a blank and anything that is not a UK postcode.
    """
    compact = re.sub(r"\s+", "", text or "").upper()
    if not compact:
        raise BadValue("postcode is blank", _POSTCODE_FIX)
    if not _COMPACT.match(compact):
        raise BadValue(f"{text.strip()!r} is not a UK postcode", _POSTCODE_FIX)
    return f"{compact[:-3]} {compact[-3:]}"


def normalise_postcodes(texts: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Postcodes in canonical form, vectorised, and a mask of those that are not postcodes.

    Blank cells are ``None`` and not refused (the caller says whether a postcode is needed).
    """
    compact = texts.fillna("").astype(str).str.replace(r"\s+", "", regex=True).str.upper()
    blank = (compact == "").to_numpy()
    good = compact.str.match(_COMPACT.pattern).to_numpy()
    norm = (compact.str[:-3] + " " + compact.str[-3:]).where(good & ~blank, None)
    return norm, ~good & ~blank


@dataclass(frozen=True)
class Fault:
    """One point at fault: its position in the arrays checked, the field, value, reason, fix."""

    index: int
    field: str
    value: str
    reason: str
    fix: str


def _within(a: np.ndarray, b: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (a >= box[0]) & (b >= box[1]) & (a <= box[2]) & (b <= box[3])


def parse_coordinates(first: pd.Series, second: pd.Series, fields: tuple[str, str]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Fault]]:
    """Read two columns of coordinates as numbers.

    Returns the two float arrays (NaN where not read), a mask of the rows that give both, and
    the rows at fault: one coordinate without the other, or one that is not a plain number.
    Rows that give neither are not at fault here (they may be placed by a postcode).
    """
    a_text = first.fillna("").astype(str).str.strip()
    b_text = second.fillna("").astype(str).str.strip()
    a_blank, b_blank = (a_text == "").to_numpy(), (b_text == "").to_numpy()
    a_ok, b_ok = a_text.str.match(_NUMBER).to_numpy(), b_text.str.match(_NUMBER).to_numpy()
    faults: list[Fault] = []
    fix = "write each coordinate as a plain number, e.g. 535267 or 51.5125 (no commas)"
    for i in np.flatnonzero(a_blank ^ b_blank):
        gone, there = (fields[0], fields[1]) if a_blank[i] else (fields[1], fields[0])
        faults.append(Fault(int(i), gone, "", f"{gone} is blank but {there} is not",
                            "give both coordinates of the point, or neither"))
    for i in np.flatnonzero(~a_blank & ~b_blank & ~(a_ok & b_ok)):
        name, text = (fields[0], a_text.iat[i]) if not a_ok[i] else (fields[1], b_text.iat[i])
        faults.append(Fault(int(i), name, text, f"{name} {text!r} is not a number", fix))
    given = ~a_blank & ~b_blank & a_ok & b_ok
    a = np.full(len(a_text), np.nan)
    b = np.full(len(b_text), np.nan)
    a[given] = a_text[given].astype(float).to_numpy()
    b[given] = b_text[given].astype(float).to_numpy()
    faults.sort(key=lambda f: f.index)
    return a, b, given, faults


def project_points(a: np.ndarray, b: np.ndarray, crs: CRS, fields: tuple[str, str],
                   values: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[Fault]]:
    """Project points given in ``crs`` (x first, longitude first) to EPSG:27700, checking them.

    At fault (:class:`Fault` per point): longitude and latitude swapped; British National Grid
    metres given as degrees, or degrees given as metres; anything outside Great Britain
    (:data:`BNG_BOX`) once projected. NaN points are skipped. ``values`` renders each point in
    messages (default ``"a, b"``).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    field = f"{fields[0]}, {fields[1]}" if fields[0] != fields[1] else fields[0]
    placed = ~(np.isnan(a) | np.isnan(b))
    swapped = placed & _within(b, a, GB_LONLAT) & ~_within(a, b, GB_LONLAT)
    reasons: dict[int, tuple[str, str]] = {}
    if crs.is_geographic:
        world = _within(a, b, (-180.0, -90.0, 180.0, 90.0))
        metres = placed & ~world & _within(a, b, BNG_BOX)
        for i in np.flatnonzero(swapped):
            reasons[int(i)] = ("longitude and latitude are swapped: this is inside Great "
                               "Britain as latitude, longitude",
                               "swap the two: longitude (x, about -8 to 2) comes first")
        for i in np.flatnonzero(metres):
            reasons[int(i)] = ("these look like British National Grid metres, not degrees of "
                               "longitude and latitude",
                               "give them as eastings and northings (EPSG:27700) instead")
    else:
        degrees = placed & (_within(a, b, GB_LONLAT) | swapped)
        for i in np.flatnonzero(degrees):
            reasons[int(i)] = (f"these look like longitude/latitude degrees, not {crs.name} "
                               "metres", "give them as longitude and latitude (WGS 84) instead")
    x, y = np.full(len(a), np.nan), np.full(len(a), np.nan)
    if crs.equals(BNG):
        x[placed], y[placed] = a[placed], b[placed]
    elif placed.any():
        transformer = Transformer.from_crs(crs, BNG, always_xy=True)
        x[placed], y[placed] = transformer.transform(a[placed], b[placed], errcheck=False)
    outside = placed & ~_within(x, y, BNG_BOX)
    for i in np.flatnonzero(outside):
        reasons.setdefault(int(i), ("this point is outside Great Britain",
                                    "check the coordinates, and that the file's coordinate "
                                    "system is the one declared"))
    faults = [Fault(i, field, values[i] if values else f"{a[i]:g}, {b[i]:g}", *reasons[i])
              for i in sorted(reasons)]
    bad = np.zeros(len(a), dtype=bool)
    bad[np.fromiter(reasons, dtype=int, count=len(reasons))] = True
    x[bad], y[bad] = np.nan, np.nan
    return x, y, faults


@dataclass(frozen=True)
class PostcodeFields:
    """The columns of a postcode file: eastings/northings, or longitude/latitude if named."""

    postcode_field: str = "Postcode"
    easting_field: str = "Eastings"
    northing_field: str = "Northings"
    longitude_field: str | None = None
    latitude_field: str | None = None
    encoding: str | None = None

    @property
    def coordinates(self) -> tuple[tuple[str, str], CRS]:
        """The two coordinate columns used and the CRS they are in."""
        if self.longitude_field and self.latitude_field:
            return (self.longitude_field, self.latitude_field), WGS84
        return (self.easting_field, self.northing_field), BNG


def read_postcode_file(path: Path | str, fields: PostcodeFields, *, source: str
                       ) -> pd.DataFrame:
    """Read a CSV of postcode points: columns ``postcode``, ``x``, ``y`` (EPSG:27700), ``row``.

    Refuses the whole file (:class:`~domain.errors.Rejected`, a problem per row) for a blank or
    malformed postcode, blank or non-numeric coordinates, coordinates outside Great Britain or
    given in the other system (degrees as eastings, metres as longitudes), and a postcode that
    appears twice (after normalising); an :class:`~domain.errors.InputError` for a missing
    column or a file that is not CSV.
    """
    path = Path(path)
    kind = files.sniff(path, source=source)
    if kind != "csv":
        raise InputError(f"{source} is {'a ZIP archive' if kind == 'zip' else kind.upper()}, "
                         "not CSV", "load postcodes from a CSV file (e.g. Code-Point Open's)",
                         where=source)
    (xf, yf), crs = fields.coordinates
    problems: list[Problem] = []
    lines, codes, xs, ys = [], [], [], []
    for row in read_rows(path, (fields.postcode_field, xf, yf), encoding=fields.encoding,
                         source=source, problems=problems):
        lines.append(row.line_no)
        codes.append(row.values[fields.postcode_field])
        xs.append(row.values[xf])
        ys.append(row.values[yf])
    rows = np.asarray(lines, dtype=int)
    found: list[tuple[int, Problem]] = [(p.row or 0, p) for p in problems]

    def fault(i: int, fld: str, value: str, reason: str, fix: str) -> None:
        found.append((int(rows[i]), Problem(f"row {rows[i]}", reason, fix, field=fld,
                                            value=value, row=int(rows[i]))))

    raw = pd.Series(codes, dtype=object)
    postcodes, malformed = normalise_postcodes(raw)
    for i in np.flatnonzero(malformed):
        fault(i, fields.postcode_field, raw.iat[i], f"{raw.iat[i]!r} is not a UK postcode",
              _POSTCODE_FIX)
    for i in np.flatnonzero(postcodes.isna().to_numpy() & ~malformed):
        fault(i, fields.postcode_field, "", "postcode is blank", "give every row its postcode")
    a, b, given, coord_faults = parse_coordinates(pd.Series(xs, dtype=object),
                                                  pd.Series(ys, dtype=object), (xf, yf))
    for f in coord_faults:
        fault(f.index, f.field, f.value, f.reason, f.fix)
    for i in np.flatnonzero(~given & ~np.isin(np.arange(len(rows)),
                                              [f.index for f in coord_faults])):
        fault(i, f"{xf}, {yf}", "", "the postcode has no coordinates",
              f"give every postcode its {xf} and {yf}, or leave the row out")
    x, y, point_faults = project_points(a, b, crs, (xf, yf))
    for f in point_faults:
        fault(f.index, f.field, f.value, f.reason, f.fix)
    first: dict[str, int] = {}
    for i, code in enumerate(postcodes):
        if code is None:
            continue
        if code in first:
            fault(i, fields.postcode_field, raw.iat[i], f"postcode {code} appears twice "
                  f"(first on row {first[code]})", "keep one row per postcode")
        else:
            first[code] = int(rows[i])
    if found:
        found.sort(key=lambda t: t[0])
        raise Rejected(source, [p for _, p in found])
    if not len(rows):
        raise Rejected(source, [Problem("file", "no data rows", "supply one row per postcode")])
    return pd.DataFrame({"postcode": postcodes.to_numpy(dtype=object), "x": x, "y": y,
                         "row": rows})
