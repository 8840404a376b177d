"""What the OGC API Features endpoints read: collections and GeoJSON built inside PostGIS.

Each collection id resolves to its newest run; every response names that run, and since runs
never change the pair (collection, run) is a safe cache key.
"""

from __future__ import annotations

from dataclasses import dataclass

from placespend.errors import NotFound
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
    """The newest run of every collection id."""
    return conn.execute(
        _COLLECTION
        + " WHERE c.run_id = (SELECT max(run_id) FROM collection c2 WHERE c2.id = c.id)"
        " ORDER BY c.id"
    ).fetchall()


def get_collection(conn: Connection, collection_id: str) -> dict:
    """The newest run of one collection, or NotFound."""
    row = conn.execute(
        _COLLECTION + " WHERE c.id = %s ORDER BY c.run_id DESC LIMIT 1", (collection_id,)
    ).fetchone()
    if row is None:
        raise NotFound(
            f"no collection {collection_id!r}", "list the collections with GET /collections"
        )
    return row


def items(
    conn: Connection,
    collection_id: str,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    limit: int = 1000,
    offset: int = 0,
    simplify_m: float = 0.0,
    code: str | None = None,
) -> Page:
    """Features of a collection (EPSG:4326 lon/lat GeoJSON, 6 decimals), ordered by code.

    ``bbox`` is (minlon, minlat, maxlon, maxlat); ``simplify_m`` simplifies in metres (for
    overview maps); ``code`` picks one feature.
    """
    meta = get_collection(conn, collection_id)
    params = {
        "cid": collection_id,
        "run": meta["run_id"],
        "set": meta["target_set_id"],
        "bbox": list(bbox) if bbox else None,
        "limit": limit,
        "offset": offset,
        "tol": simplify_m,
        "code": code,
    }
    row = conn.execute(
        """
        WITH env AS (
            SELECT ST_Transform(ST_MakeEnvelope(b[1], b[2], b[3], b[4], 4326), 27700) AS g
              FROM (SELECT %(bbox)s::float8[] AS b) x WHERE %(bbox)s::float8[] IS NOT NULL
        ), matched AS (
            SELECT f.code, f.properties, b.geom
              FROM collection_feature f
              JOIN boundary b ON b.set_id = %(set)s AND b.code = f.code
             WHERE f.collection_id = %(cid)s AND f.run_id = %(run)s
               AND (%(code)s::text IS NULL OR f.code = %(code)s::text)
               AND (NOT EXISTS (SELECT 1 FROM env)
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


def collection_run(conn: Connection, collection_id: str) -> int:
    """The newest run id of a collection (a cheap lookup for cache validation), or NotFound."""
    row = conn.execute(
        "SELECT max(run_id) AS run_id FROM collection WHERE id = %s", (collection_id,)
    ).fetchone()
    if row is None or row["run_id"] is None:
        raise NotFound(
            f"no collection {collection_id!r}", "list the collections with GET /collections"
        )
    return int(row["run_id"])


def ping(conn: Connection) -> None:
    """Ask the database to answer ``SELECT 1``; any failure propagates."""
    conn.execute("SELECT 1").fetchone()


def property_types(conn: Connection, collection_id: str, run_id: int) -> list[dict]:
    """Each feature property of one run of a collection, in stored order, with its JSON type.

    Rows: ``name``, ``type`` (``integer`` when every value is a whole number written without a
    decimal point, ``number``, ``string`` or ``boolean``) and ``nullable``. Clients that guess
    types from a first page (QGIS, GDAL) need this: pence totals exceed 32 bits.
    """
    return conn.execute(
        """
        SELECT p.key AS name,
               CASE WHEN bool_and(t.kind = 'null') THEN 'string'
                    WHEN bool_and(t.kind IN ('number', 'null'))
                         THEN CASE WHEN bool_and(t.kind = 'null'
                                                 OR p.value::text ~ '^-?[0-9]+$')
                                   THEN 'integer' ELSE 'number' END
                    WHEN bool_and(t.kind IN ('boolean', 'null')) THEN 'boolean'
                    ELSE 'string' END AS type,
               bool_or(t.kind = 'null') AS nullable
          FROM collection_feature f
         CROSS JOIN LATERAL json_each(f.properties) WITH ORDINALITY AS p(key, value, seq)
         CROSS JOIN LATERAL (SELECT CASE json_typeof(p.value)
                                        WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean'
                                        ELSE json_typeof(p.value) END AS kind) t
         WHERE f.collection_id = %s AND f.run_id = %s
         GROUP BY p.key
         ORDER BY min(p.seq), p.key
        """,
        (collection_id, run_id),
    ).fetchall()
