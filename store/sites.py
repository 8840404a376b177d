"""Site sets and postcode points: written once (COPY), read back by slug or postcode.

A site set's slug names it; each load of changed content under it is a new *version* (a new
id), as boundary sets are. Postcode points come in batches; the newest batch holding a
postcode answers for it (an older batch's point stays on record).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from domain.errors import NotFound
from store.db import Connection

BNG = 27700

#: Columns of :func:`read_sites`.
SITE_COLUMNS = ["site_code", "name", "kind", "postcode", "x", "y", "attrs", "located"]


def _points_hex(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hex EWKB points with SRID 27700, as COPY reads them."""
    points = shapely.points(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return shapely.to_wkb(shapely.set_srid(points, BNG), hex=True, include_srid=True)


# --------------------------------------------------------------------------- postcodes


def save_postcodes(conn: Connection, batch_id: int, points: pd.DataFrame) -> int:
    """Insert a batch's postcode points (``postcode``, ``x``, ``y`` in EPSG:27700).

    Postcodes must be normalised (``E1 0AA``) and unique in the batch. Returns the rows written.
    """
    wkb = _points_hex(points["x"].to_numpy(), points["y"].to_numpy())
    with conn.cursor().copy("COPY postcode (batch_id, postcode, geom) FROM STDIN") as copy:
        for code, g in zip(points["postcode"], wkb, strict=True):
            copy.write_row((batch_id, code, g))
    return len(points)


def postcode_points(conn: Connection, postcodes: list[str]) -> dict[str, tuple[float, float]]:
    """The point (x, y in EPSG:27700) of each normalised postcode, from the newest batch holding it.

    Postcodes no batch holds are absent from the answer.
    """
    if not postcodes:
        return {}
    rows = conn.execute(
        "SELECT DISTINCT ON (postcode) postcode, ST_X(geom) AS x, ST_Y(geom) AS y"
        " FROM postcode WHERE postcode = ANY(%s::text[]) ORDER BY postcode, batch_id DESC",
        (sorted(set(postcodes)),),
    ).fetchall()
    return {r["postcode"]: (float(r["x"]), float(r["y"])) for r in rows}


def postcode_count(conn: Connection) -> int:
    """How many distinct postcodes any batch holds."""
    return int(conn.execute("SELECT count(DISTINCT postcode) AS n FROM postcode").fetchone()["n"])


# --------------------------------------------------------------------------- site sets


@dataclass(frozen=True)
class SiteSetMeta:
    """What is said about a site set besides its sites."""

    slug: str
    name: str
    kind: str
    source: str
    licence: str
    attribution: str
    batch_id: int


def find_site_set(conn: Connection, slug: str) -> dict | None:
    """The newest version of the site set ``slug``, or None."""
    return conn.execute(
        "SELECT * FROM site_set WHERE slug = %s ORDER BY version DESC LIMIT 1", (slug,)
    ).fetchone()


def get_site_set(conn: Connection, slug: str) -> dict:
    """The newest version of the site set ``slug``, or NotFound."""
    row = find_site_set(conn, slug)
    if row is None:
        raise NotFound(f"no site set {slug!r}", "load it first (`placespend load sites`)")
    return row


def get_site_set_by_id(conn: Connection, set_id: int) -> dict:
    """A site_set row by id (any version), or NotFound."""
    row = conn.execute("SELECT * FROM site_set WHERE id = %s", (set_id,)).fetchone()
    if row is None:
        raise NotFound(f"no site set with id {set_id}", "load one: `placespend load sites`")
    return row


def save_site_set(conn: Connection, meta: SiteSetMeta, sites: pd.DataFrame) -> int:
    """Insert a site set (the next version of its slug) and its sites; return the set's id.

    ``sites``: site_code, name, postcode (or None), located (``coordinates`` or ``postcode``),
    x, y (EPSG:27700) and attrs (a dict of JSON values per site).
    """
    row = conn.execute(
        "INSERT INTO site_set (slug, version, name, kind, source, licence, attribution,"
        " batch_id) SELECT %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s, %s, %s"
        " FROM site_set WHERE slug = %s RETURNING id",
        (meta.slug, meta.name, meta.kind, meta.source, meta.licence, meta.attribution,
         meta.batch_id, meta.slug),
    ).fetchone()
    sid = int(row["id"])
    wkb = _points_hex(sites["x"].to_numpy(), sites["y"].to_numpy())
    with conn.cursor().copy(
        "COPY site (set_id, site_code, name, kind, postcode, located, attrs, geom) FROM STDIN"
    ) as copy:
        for code, name, postcode, located, attrs, g in zip(
            sites["site_code"], sites["name"], sites["postcode"], sites["located"],
            sites["attrs"], wkb, strict=True,
        ):
            copy.write_row((sid, code, name, meta.kind,
                            postcode if isinstance(postcode, str) else None, located,
                            json.dumps(attrs, ensure_ascii=False), g))
    return sid


def read_sites(conn: Connection, slug: str | int) -> pd.DataFrame:
    """Sites of a set: site_code, name, kind, postcode, x, y (EPSG:27700), attrs, located.

    ``slug``: a slug (its newest version) or the id of one version. Ordered by site_code.
    """
    sid = slug if isinstance(slug, int) else int(get_site_set(conn, slug)["id"])
    rows = conn.execute(
        "SELECT site_code, name, kind, postcode, ST_X(geom) AS x, ST_Y(geom) AS y, attrs,"
        " located FROM site WHERE set_id = %s ORDER BY site_code", (sid,),
    ).fetchall()
    return pd.DataFrame(rows, columns=SITE_COLUMNS)


def site_points(conn: Connection, set_slug: str) -> dict[str, tuple[int, float, float]]:
    """The newest version of a site set: site code -> (site id, x, y in EPSG:27700)."""
    rows = conn.execute(
        "SELECT s.site_code, s.id, ST_X(s.geom) AS x, ST_Y(s.geom) AS y FROM site s"
        " WHERE s.set_id = (SELECT id FROM site_set WHERE slug = %s ORDER BY version DESC"
        " LIMIT 1)", (set_slug,),
    ).fetchall()
    return {r["site_code"]: (int(r["id"]), float(r["x"]), float(r["y"])) for r in rows}



def sites_with(conn: Connection, site_ids: list[int]) -> pd.DataFrame:
    """Every site of the site-set versions the given sites belong to (their competitors).

    Columns: site_id, set_slug, site_code, x, y (EPSG:27700), attrs (the file's other fields).
    """
    rows = conn.execute(
        "SELECT s.id AS site_id, ss.slug AS set_slug, s.site_code, ST_X(s.geom) AS x,"
        " ST_Y(s.geom) AS y, s.attrs FROM site s JOIN site_set ss ON ss.id = s.set_id"
        " WHERE s.set_id IN (SELECT set_id FROM site WHERE id = ANY(%s::bigint[]))"
        " ORDER BY s.id", (site_ids,),
    ).fetchall()
    return pd.DataFrame(rows, columns=["site_id", "set_slug", "site_code", "x", "y", "attrs"])
