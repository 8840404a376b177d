"""The coordinate reference systems the API speaks (OGC API Features Part 2).

Geometry is stored in British National Grid (EPSG:27700) and reprojected by PostGIS; this module
only names the CRSs clients may ask for and says how each is written: its SRID and whether its
axis order is latitude first (EPSG:4326 is; CRS84 is its longitude-first twin).
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import BadRequest

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
EPSG_27700 = "http://www.opengis.net/def/crs/EPSG/0/27700"
#: Every CRS a response or a bbox may be in, the default first.
SUPPORTED = (CRS84, EPSG_4326, EPSG_27700)
STORAGE = EPSG_27700


@dataclass(frozen=True)
class Crs:
    """One CRS as the store needs it: its URI, SRID and axis order."""

    uri: str
    srid: int
    lat_first: bool = False


_BY_NAME = {
    CRS84: Crs(CRS84, 4326),
    "https://www.opengis.net/def/crs/OGC/1.3/CRS84": Crs(CRS84, 4326),
    "[OGC:CRS84]": Crs(CRS84, 4326),
    "OGC:CRS84": Crs(CRS84, 4326),
    EPSG_4326: Crs(EPSG_4326, 4326, lat_first=True),
    "https://www.opengis.net/def/crs/EPSG/0/4326": Crs(EPSG_4326, 4326, lat_first=True),
    "EPSG:4326": Crs(EPSG_4326, 4326, lat_first=True),
    "[EPSG:4326]": Crs(EPSG_4326, 4326, lat_first=True),
    EPSG_27700: Crs(EPSG_27700, 27700),
    "https://www.opengis.net/def/crs/EPSG/0/27700": Crs(EPSG_27700, 27700),
    "EPSG:27700": Crs(EPSG_27700, 27700),
    "[EPSG:27700]": Crs(EPSG_27700, 27700),
}
#: What the OpenAPI document lists as the allowed values (URIs and their short forms).
NAMES = tuple(_BY_NAME)


def parse(value: str | None, name: str) -> Crs:
    """The CRS a ``crs`` or ``bbox-crs`` value names (default CRS84); 400 naming ``name``."""
    if value is None:
        return _BY_NAME[CRS84]
    found = _BY_NAME.get(value.strip())
    if found is None:
        raise BadRequest(
            f"{name} {value!r} is not a CRS this server offers",
            f"omit {name} (CRS84, longitude/latitude), or use one of {', '.join(SUPPORTED)} "
            "(EPSG:27700 is British National Grid, in metres)",
            where=name,
        )
    return found


def header(crs: Crs) -> dict[str, str]:
    """The ``Content-Crs`` header of a response in ``crs``."""
    return {"Content-Crs": f"<{crs.uri}>"}


def geojson_member(crs: Crs) -> dict | None:
    """The 2008-style GeoJSON ``crs`` member for British National Grid, or None.

    RFC 7946 dropped it, but GDAL (and QGIS's plain GeoJSON reader) still take the CRS of a
    file or response from it, so a British National Grid response opened as a plain GeoJSON
    file is labelled EPSG:27700 rather than read as degrees. None for lon/lat: GDAL reads
    ``EPSG::4326`` in a file as longitude first, which would misplace EPSG:4326's
    latitude-first coordinates (that axis order is the ``Content-Crs`` header's to say).
    """
    if crs.srid != 27700:
        return None
    return {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs.srid}"}}
