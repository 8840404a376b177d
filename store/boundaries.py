"""Boundary sets and their units: write once (COPY), read back as GeoDataFrames.

A slug names a set; each load of changed content under it is a new *version* (a new id).
Lookups by slug answer the newest version; runs, atoms and crosswalks hold ids, so a new
version never changes what was made from an older one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely

from domain.errors import NotFound
from store.db import Connection

BNG = 27700


@dataclass(frozen=True)
class BoundarySetMeta:
    """What is said about a boundary set besides its features."""

    slug: str
    name: str
    kind: str
    vintage: str
    source: str
    licence: str
    attribution: str
    content_sha256: str
    batch_id: int | None = None
    #: Whether the units tile (no overlap above 1 m²); None when not checked.
    tiles: bool | None = None
    overlap_m2: float | None = None
    gap_m2: float | None = None
    #: Features made valid: code, feature, area_before_m2, area_after_m2, area_changed_m2, reason.
    repairs: list[dict] = field(default_factory=list)


def ewkb_hex(geoms: np.ndarray) -> np.ndarray:
    """Hex EWKB with SRID 27700 (Polygons promoted to MultiPolygons), as COPY reads it."""
    geoms = np.asarray(geoms, dtype=object).copy()
    single = shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON.value
    geoms[single] = [shapely.MultiPolygon([g]) for g in geoms[single]]
    return shapely.to_wkb(shapely.set_srid(geoms, BNG), hex=True, include_srid=True)


def set_id(conn: Connection, slug: str) -> int:
    """Id of a boundary set, or NotFound."""
    return int(get_set(conn, slug)["id"])


def get_set(conn: Connection, slug: str) -> dict:
    """The boundary_set row for ``slug``, or NotFound."""
    row = find_set(conn, slug)
    if row is None:
        raise NotFound(f"no boundary set {slug!r}",
                       "load it first (`placespend load boundaries FILE --slug SLUG`), or see "
                       "GET /collections for the sets there are", where=slug)
    return row


def find_set(conn: Connection, slug: str) -> dict | None:
    """The newest version of the boundary set ``slug``, or None."""
    return conn.execute(
        "SELECT * FROM boundary_set WHERE slug = %s ORDER BY version DESC LIMIT 1", (slug,)
    ).fetchone()


def get_set_by_id(conn: Connection, set_id: int) -> dict:
    """A boundary_set row by id (any version), or NotFound."""
    row = conn.execute("SELECT * FROM boundary_set WHERE id = %s", (set_id,)).fetchone()
    if row is None:
        raise NotFound(f"no boundary set with id {set_id}", "list them: `placespend sets`")
    return row


def save_boundary_set(conn: Connection, meta: BoundarySetMeta, frame: gpd.GeoDataFrame) -> int:
    """Insert a set (the next version of its slug) and its units.

    ``frame``: code, name, parent_code, geometry in EPSG:27700.
    """
    row = conn.execute(
        "INSERT INTO boundary_set (slug, version, name, kind, vintage, source, licence,"
        " attribution, content_sha256, batch_id, tiles, overlap_m2, gap_m2, repairs)"
        " SELECT %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s FROM boundary_set WHERE slug = %s RETURNING id",
        (meta.slug, meta.name, meta.kind, meta.vintage, meta.source, meta.licence,
         meta.attribution, meta.content_sha256, meta.batch_id, meta.tiles, meta.overlap_m2,
         meta.gap_m2, json.dumps(meta.repairs), meta.slug),
    ).fetchone()
    sid = int(row["id"])
    geoms = frame.geometry.to_numpy()
    wkb = ewkb_hex(geoms)
    area = shapely.area(geoms)
    parents = frame["parent_code"] if "parent_code" in frame else [None] * len(frame)
    with conn.cursor().copy(
        "COPY boundary (set_id, code, name, parent_code, geom, area_m2) FROM STDIN"
    ) as copy:
        for code, name, parent, g, a in zip(
            frame["code"], frame["name"], parents, wkb, area, strict=True
        ):
            # pandas turns a missing parent into NaN, which COPY would store as the text 'NaN'
            copy.write_row((sid, code, name, parent if isinstance(parent, str) else None, g,
                            float(a)))
    return sid


def read_boundaries(
    conn: Connection, slug: str | int, near: bytes | None = None
) -> gpd.GeoDataFrame:
    """Units of a set: code, name, parent_code, geometry (EPSG:27700), ordered by code.

    ``slug``: a slug (its newest version) or the id of one version.

    ``near``: WKB of a geometry in EPSG:27700; only the units that intersect it are read (found
    through the GiST index).
    """
    sid = slug if isinstance(slug, int) else set_id(conn, slug)
    rows = conn.execute(
        "SELECT code, name, parent_code, ST_AsBinary(geom) AS wkb FROM boundary"
        " WHERE set_id = %(sid)s AND (%(near)s::bytea IS NULL OR ("
        "   geom && ST_GeomFromWKB(%(near)s::bytea, 27700)"
        "   AND ST_Intersects(geom, ST_GeomFromWKB(%(near)s::bytea, 27700))))"
        " ORDER BY code",
        {"sid": sid, "near": near},
    ).fetchall()
    geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows])
    return gpd.GeoDataFrame(
        {
            "code": [r["code"] for r in rows],
            "name": [r["name"] for r in rows],
            "parent_code": [r["parent_code"] for r in rows],
        },
        geometry=geoms,
        crs=BNG,
    )


def add_unit(conn: Connection, set_slug: str, code: str, name: str, geom: object) -> None:
    """Add one unit to an existing set (a saved neighbourhood); the code must be new."""
    sid = set_id(conn, set_slug)
    wkb = ewkb_hex(np.array([geom], dtype=object))[0]
    conn.execute(
        "INSERT INTO boundary (set_id, code, name, parent_code, geom, area_m2)"
        " VALUES (%s, %s, %s, NULL, %s::geometry, %s)",
        (sid, code, name, wkb, float(shapely.area(geom))),
    )


def unit_codes(conn: Connection, set_id: int) -> list[str]:
    """Every unit code of one set version."""
    return [r["code"] for r in conn.execute(
        "SELECT code FROM boundary WHERE set_id = %s ORDER BY code", (set_id,))]


def has_code(conn: Connection, set_slug: str, code: str) -> bool:
    """Whether a set already has a unit with this code."""
    return conn.execute(
        "SELECT 1 FROM boundary b JOIN boundary_set s ON s.id = b.set_id"
        " WHERE s.slug = %s AND b.code = %s", (set_slug, code)
    ).fetchone() is not None


def list_sets(conn: Connection) -> list[dict]:
    """The newest version of every boundary set, with its feature count."""
    return conn.execute(
        "SELECT s.*, count(b.id) AS features FROM boundary_set s"
        " LEFT JOIN boundary b ON b.set_id = s.id"
        " WHERE s.version = (SELECT max(version) FROM boundary_set o WHERE o.slug = s.slug)"
        " GROUP BY s.id ORDER BY s.slug"
    ).fetchall()
