"""What the OGC API Features endpoints read: collections and GeoJSON built inside PostGIS.

Each collection id resolves to the run it currently serves (``collection_current``: the
newest run published, or an earlier one asked for again with the same inputs); every response
names that run, and since runs never change the pair (collection, run) is a safe cache key.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import NotFound
from store.db import Connection

_COLLECTION = """
SELECT c.id, c.run_id, c.target_set_id, c.title, c.description, c.properties, c.created_at,
       r.financial_year, s.slug AS target_set, s.licence, s.attribution,
       (SELECT count(*) FROM collection_feature f
         WHERE f.collection_id = c.id AND f.run_id = c.run_id) AS features,
       (SELECT ARRAY[ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)]
          FROM (SELECT ST_Transform(ST_SetSRID(ST_Extent(b.geom), 27700), 4326)::box2d AS e
                  FROM boundary b WHERE b.set_id = c.target_set_id) x) AS bbox
  FROM collection c
  JOIN run r ON r.id = c.run_id
  JOIN boundary_set s ON s.id = c.target_set_id
"""


@dataclass(frozen=True)
class Page:
    """One page of features as GeoJSON text, with the counts OGC API Features reports."""

    features_json: str  # a JSON array of Feature objects
    number_matched: int
    number_returned: int
    run_id: int


def list_collections(conn: Connection) -> list[dict]:
    """Every public collection, as served now (the run it currently points at)."""
    return conn.execute(
        _COLLECTION
        + " JOIN collection_current cur ON cur.id = c.id AND cur.run_id = c.run_id"
        " ORDER BY c.id"
    ).fetchall()


def get_collection(conn: Connection, collection_id: str, run_id: int | None = None) -> dict:
    """One collection as served now, or as published from ``run_id``; NotFound if absent."""
    if run_id is None:
        row = conn.execute(
            _COLLECTION + " JOIN collection_current cur ON cur.id = c.id"
            " AND cur.run_id = c.run_id WHERE c.id = %s",
            (collection_id,),
        ).fetchone()
    else:
        row = conn.execute(
            _COLLECTION + " WHERE c.id = %s AND c.run_id = %s", (collection_id, run_id)
        ).fetchone()
    if row is None:
        raise _not_found(conn, collection_id, run_id)
    return row


def _not_found(conn: Connection, collection_id: str, run_id: int | None) -> NotFound:
    if run_id is not None and conn.execute(
        "SELECT 1 FROM run WHERE id = %s", (run_id,)
    ).fetchone() is None:
        return NotFound(f"no run {run_id}", "list the runs with GET /runs", where="run")
    if run_id is None:
        return NotFound(
            f"no public collection {collection_id!r}",
            "list the collections with GET /collections (a run that was made but not "
            "published is reached with ?run=N)",
        )
    return NotFound(
        f"run {run_id} has no publication {collection_id!r}",
        f"see GET /runs/{run_id} for its collections, or publish it to that set: "
        f"`placespend publish {run_id} --to SET`",
    )


def items(
    conn: Connection,
    collection_id: str,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    limit: int = 1000,
    offset: int = 0,
    simplify_m: float = 0.0,
    code: str | None = None,
    run_id: int | None = None,
    parent: str | None = None,
) -> Page:
    """Features of a collection (EPSG:4326 lon/lat GeoJSON, 6 decimals), ordered by code.

    ``bbox`` is (minlon, minlat, maxlon, maxlat); ``simplify_m`` simplifies in metres (for
    overview maps); ``code`` picks one feature; ``run_id`` pins the run (default: the run the
    collection serves now); ``parent`` keeps the units whose enclosing unit (a ward's borough)
    has that code.
    """
    # Not get_collection: its extent and count are metadata work no page of features needs.
    meta = _current(conn, collection_id, run_id)
    params = {
        "cid": collection_id,
        "run": meta["run_id"],
        "set": meta["target_set_id"],
        "bbox": list(bbox) if bbox else None,
        "limit": limit,
        "offset": offset,
        "tol": simplify_m,
        "code": code,
        "parent": parent,
    }
    row = conn.execute(
        """
        WITH env AS (
            -- clamped to where British National Grid is defined (a world-sized box would
            -- collapse when its corners are reprojected), and densified so that its edges
            -- stay where they are in lon/lat
            SELECT ST_Transform(ST_Segmentize(ST_MakeEnvelope(
                       greatest(b[1], -9.01), greatest(b[2], 49.75),
                       least(b[3], 2.01), least(b[4], 61.01), 4326), 0.05), 27700) AS g
              FROM (SELECT %(bbox)s::float8[] AS b) x WHERE %(bbox)s::float8[] IS NOT NULL
               AND greatest(b[1], -9.01) < least(b[3], 2.01)
               AND greatest(b[2], 49.75) < least(b[4], 61.01)
        ), matched AS (
            SELECT f.code, f.properties, b.geom
              FROM collection_feature f
              JOIN boundary b ON b.set_id = %(set)s AND b.code = f.code
             WHERE f.collection_id = %(cid)s AND f.run_id = %(run)s
               AND (%(code)s::text IS NULL OR f.code = %(code)s::text)
               AND (%(parent)s::text IS NULL OR b.parent_code = %(parent)s::text)
               AND (%(bbox)s::float8[] IS NULL
                    OR EXISTS (SELECT 1 FROM env WHERE b.geom && env.g
                                                   AND ST_Intersects(b.geom, env.g)))
        ), page AS (
            SELECT * FROM matched ORDER BY code LIMIT %(limit)s OFFSET %(offset)s
        )
        SELECT (SELECT count(*) FROM matched) AS matched,
               (SELECT count(*) FROM page) AS returned,
               coalesce(json_agg(json_build_object(
                   'type', 'Feature',
                   'id', code,
                   'geometry', ST_AsGeoJSON(ST_Transform(
                        CASE WHEN %(tol)s > 0 THEN ST_SimplifyPreserveTopology(geom, %(tol)s)
                             ELSE geom END, 4326), 6)::json,
                   'properties', properties) ORDER BY code), '[]'::json)::text AS features
          FROM page
        """,
        params,
    ).fetchone()
    return Page(row["features"], int(row["matched"]), int(row["returned"]), meta["run_id"])


def _current(conn: Connection, collection_id: str, run_id: int | None = None) -> dict:
    """The run a collection serves (or ``run_id``'s publication) and its target set."""
    if run_id is None:
        row = conn.execute(
            "SELECT cur.run_id, c.target_set_id FROM collection_current cur"
            " JOIN collection c ON c.id = cur.id AND c.run_id = cur.run_id WHERE cur.id = %s",
            (collection_id,),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT run_id, target_set_id FROM collection WHERE id = %s AND run_id = %s",
            (collection_id, run_id),
        ).fetchone()
    if row is None:
        raise _not_found(conn, collection_id, run_id)
    return row


def collection_run(conn: Connection, collection_id: str, run_id: int | None = None) -> int:
    """The run a collection serves, or ``run_id`` if it has that publication; NotFound."""
    return int(_current(conn, collection_id, run_id)["run_id"])


def ping(conn: Connection) -> None:
    """Ask the database to answer ``SELECT 1``; any failure propagates."""
    conn.execute("SELECT 1").fetchone()


def property_types(conn: Connection, collection_id: str, run_id: int) -> list[dict]:
    """Each feature property of one run of a collection, in order, as stored at publication.

    Rows: name, type (``integer``, ``number`` or ``string``), nullable, description.
    """
    row = conn.execute(
        "SELECT properties FROM collection WHERE id = %s AND run_id = %s",
        (collection_id, run_id),
    ).fetchone()
    if row is None:
        raise NotFound(
            f"no collection {collection_id!r}", "list the collections with GET /collections"
        )
    return list(row["properties"])
