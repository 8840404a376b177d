"""What the OGC API endpoints read: layers, and GeoJSON and vector tiles built inside PostGIS.

A *layer* is anything served as a collection: a publication of a run (``collection``: the
figures of one run summed into one boundary set) or a boundary set itself (its codes, names
and shapes, no figures). A publication id resolves to the run it currently serves
(``collection_current``) unless a run is asked for; every layer has a ``version`` (the run, or
what the boundary set holds) so that (layer id, version, parameters) is a safe cache key.

Geometry is stored in British National Grid (EPSG:27700) and reprojected here, in SQL, to the
SRID the caller asks for; features come back as GeoJSON text (never parsed in Python) and tiles
as Mapbox Vector Tile bytes from ``ST_AsMVT``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from domain.errors import NotFound
from store.db import Connection, remembered

#: Web Mercator's half-width in metres (tile sizes per zoom).
_MERCATOR_HALF = 20037508.342789244
#: Tile extent in MVT units, and the buffer around it (pixels at 256 px a tile: 4).
MVT_EXTENT = 4096
MVT_BUFFER = 64

_PUBLICATION = """
SELECT c.id, c.run_id, c.target_set_id AS set_id, c.title, c.description, c.properties,
       c.fit, r.financial_year, r.params ->> 'basis' AS basis, s.slug AS set_slug,
       s.licence, s.attribution
  FROM collection c
  JOIN run r ON r.id = c.run_id
  JOIN boundary_set s ON s.id = c.target_set_id
"""
_BOUNDARY_SET = """
SELECT s.id AS set_id, s.slug, s.name, s.kind, s.vintage, s.licence, s.attribution,
       count(b.id) AS n, coalesce(max(b.id), 0) AS last_id
  FROM boundary_set s LEFT JOIN boundary b ON b.set_id = s.id
"""
#: Each layer kind's rows: code, properties (json), geometry (27700) and enclosing unit's code.
_SOURCE = {
    "publication": (
        "SELECT f.code, f.properties, b.geom, b.parent_code FROM collection_feature f"
        " JOIN boundary b ON b.set_id = %(set)s AND b.code = f.code"
        " WHERE f.collection_id = %(cid)s AND f.run_id = %(run)s"
    ),
    "boundaries": (
        "SELECT b.code, json_build_object('code', b.code, 'name', b.name, 'parent_code',"
        " b.parent_code) AS properties, b.geom, b.parent_code FROM boundary b"
        " WHERE b.set_id = %(set)s"
    ),
}
#: The properties of a boundary-set layer, in the shape a publication stores its schema.
_BOUNDARY_PROPERTIES = [
    {"name": "code", "type": "string", "nullable": False,
     "description": "The unit's code (an ONS GSS code for official boundaries)"},
    {"name": "name", "type": "string", "nullable": False, "description": "The unit's name"},
    {"name": "parent_code", "type": "string", "nullable": True,
     "description": "The code of the unit it lies in (a ward's borough), if known"},
]
#: The box a request selects by, in 27700: a lon/lat box clamped to British National Grid's
#: area of use (EPSG's, with a little margin: -9.01..2.01 E, 49.75..61.01 N) and
#: densified before reprojecting (its edges stay where they are in lon/lat), or a 27700 box.
#: Each corner is clamped into the area, so even a box far outside it is a valid envelope
#: inside the projection's domain (PostgreSQL may fold it while planning, before the WHERE
#: that drops a box missing the area); such a box selects nothing.
_ENV = """
env AS (
    SELECT CASE WHEN %(bbox_srid)s = 27700
                THEN ST_MakeEnvelope(b[1], b[2], b[3], b[4], 27700)
                ELSE ST_Transform(ST_Segmentize(ST_MakeEnvelope(
                       least(greatest(b[1], -9.01), 2.01), least(greatest(b[2], 49.75), 61.01),
                       least(greatest(b[3], -9.01), 2.01), least(greatest(b[4], 49.75), 61.01),
                       4326), 0.05), 27700) END AS g
      FROM (SELECT %(bbox)s::float8[] AS b) x
     WHERE %(bbox)s::float8[] IS NOT NULL
       AND (%(bbox_srid)s = 27700 OR (greatest(b[1], -9.01) < least(b[3], 2.01)
                                      AND greatest(b[2], 49.75) < least(b[4], 61.01)))
)"""


@dataclass(frozen=True)
class Layer:
    """One served collection: a publication of a run, or a boundary set."""

    id: str
    kind: str  # "publication" or "boundaries"
    set_id: int
    set_slug: str
    title: str
    description: str
    licence: str
    attribution: str
    properties: list[dict[str, Any]] = field(hash=False, compare=False)
    run_id: int | None = None
    financial_year: str | None = None
    fit: str = "split"
    #: Where money paid to a site is placed: "served" (default) or "delivered" (a run's basis).
    basis: str | None = None
    #: What the content depends on: the run, or the boundary set's rows. Part of cache keys.
    version: str = ""


@dataclass(frozen=True)
class Page:
    """One page of features as GeoJSON text, with the counts OGC API Features reports."""

    features_json: str  # a JSON array of Feature objects
    number_matched: int
    number_returned: int
    run_id: int | None


@dataclass(frozen=True)
class Filter:
    """``property = value`` on one of a layer's properties (its type from the schema)."""

    name: str
    type: str  # integer, number or string
    value: str


# ---- layers ------------------------------------------------------------------------------


def publication_version(run_id: int) -> str:
    """The version of a publication of ``run_id``: the run itself (runs never change)."""
    return f"run:{run_id}"


def _publication(row: dict) -> Layer:
    return Layer(
        id=row["id"], kind="publication", set_id=row["set_id"], set_slug=row["set_slug"],
        title=row["title"], description=row["description"], licence=row["licence"],
        attribution=row["attribution"], properties=list(row["properties"]),
        run_id=int(row["run_id"]), financial_year=row["financial_year"], fit=row["fit"],
        basis=row["basis"] or "served", version=publication_version(int(row["run_id"])),
    )


_KIND_NAMES = {"lsoa": "LSOA", "msoa": "MSOA", "oa": "Output Area", "agency_area": "agency area"}


def _boundary_layer(row: dict) -> Layer:
    return Layer(
        id=row["slug"], kind="boundaries", set_id=row["set_id"], set_slug=row["slug"],
        title=f"{row['name']} (boundaries)",
        description=(f"{row['name']} ({row['vintage']}): the codes, names and shapes of its "
                     f"{'one' if row['n'] == 1 else row['n']} "
                     f"{_KIND_NAMES.get(row['kind'], row['kind'])}"
                     f"{'' if row['n'] == 1 else 's'}, no figures."),
        licence=row["licence"], attribution=row["attribution"],
        properties=_BOUNDARY_PROPERTIES, version=f"set:{row['n']}:{row['last_id']}",
    )


def list_layers(conn: Connection) -> list[Layer]:
    """Every public layer: each publication as served now, then every boundary set."""
    pubs = conn.execute(
        _PUBLICATION + " JOIN collection_current cur ON cur.id = c.id AND cur.run_id = c.run_id"
        " ORDER BY c.id"
    ).fetchall()
    sets = conn.execute(_BOUNDARY_SET + " GROUP BY s.id ORDER BY s.slug").fetchall()
    taken = {r["id"] for r in pubs}
    return [_publication(r) for r in pubs] + [
        _boundary_layer(r) for r in sets if r["slug"] not in taken
    ]


def get_layer(conn: Connection, layer_id: str, run_id: int | None = None) -> Layer:
    """One layer: a publication (as served now, or from ``run_id``), else a boundary set.

    NotFound, naming what exists, when there is neither.
    """
    if run_id is None:
        row = conn.execute(
            _PUBLICATION + " JOIN collection_current cur ON cur.id = c.id"
            " AND cur.run_id = c.run_id WHERE c.id = %s", (layer_id,),
        ).fetchone()
    else:  # a publication of a run never changes: asked for by run, it is read once
        row = remembered(conn, ("publication", layer_id, run_id), lambda: conn.execute(
            _PUBLICATION + " WHERE c.id = %s AND c.run_id = %s", (layer_id, run_id)
        ).fetchone())
    if row is not None:
        return _publication(row)
    if run_id is None:
        found = conn.execute(
            _BOUNDARY_SET + " WHERE s.slug = %s GROUP BY s.id", (layer_id,)
        ).fetchone()
        if found is not None:
            return _boundary_layer(found)
    raise _not_found(conn, layer_id, run_id)


def summary(conn: Connection, layer: Layer) -> dict:
    """The layer's feature count and extent (CRS84 and 27700), worked out once per version.

    Layers never change under one version (runs are immutable; a boundary set's version moves
    when it gains a unit), so ``/collections`` does not recount every layer on every call.
    """

    def count() -> dict:
        row = conn.execute(
            f"WITH src AS ({_SOURCE[layer.kind]}), e AS (SELECT count(*) AS n,"
            " ST_SetSRID(ST_Extent(geom), 27700) AS box FROM src)"
            " SELECT n, ARRAY[ST_XMin(box), ST_YMin(box), ST_XMax(box), ST_YMax(box)] AS bng,"
            " (SELECT ARRAY[ST_XMin(g), ST_YMin(g), ST_XMax(g), ST_YMax(g)]"
            "    FROM (SELECT ST_Transform(box, 4326)::box2d AS g) t) AS lonlat FROM e",
            _params(layer),
        ).fetchone()
        return {
            "features": int(row["n"]),
            "bbox": [float(v) for v in row["lonlat"]] if row["n"] else None,
            "bbox_27700": [float(v) for v in row["bng"]] if row["n"] else None,
        }

    return remembered(conn, ("summary", layer.id, layer.version), count)


def _not_found(conn: Connection, layer_id: str, run_id: int | None) -> NotFound:
    if run_id is not None and conn.execute(
        "SELECT 1 FROM run WHERE id = %s", (run_id,)
    ).fetchone() is None:
        return NotFound(f"no run {run_id}", "list the runs with GET /runs", where="run")
    if run_id is None:
        return NotFound(
            f"no collection {layer_id!r}",
            "list the collections with GET /collections (a run that was made but not "
            "published is reached with ?run=N)",
            where=layer_id,
        )
    if conn.execute("SELECT 1 FROM boundary_set WHERE slug = %s", (layer_id,)).fetchone():
        return NotFound(
            f"{layer_id!r} is a boundary set: it has no runs",
            f"omit run (GET /collections/{layer_id}), or ask for a publication of run "
            f"{run_id} (see GET /runs/{run_id})",
            where="run",
        )
    ids = [r["id"] for r in conn.execute(
        "SELECT id FROM collection WHERE run_id = %s ORDER BY id", (run_id,))]
    named = f" (it has {', '.join(ids)})" if ids else ""
    return NotFound(
        f"run {run_id} has no publication {layer_id!r}{named}",
        f"see GET /runs/{run_id} for its collections, or publish it to that set: "
        f"`placespend publish {run_id} --to SET`",
        where="run",
    )


# ---- features ----------------------------------------------------------------------------


def _params(layer: Layer, **extra: Any) -> dict[str, Any]:
    return {"cid": layer.id, "run": layer.run_id, "set": layer.set_id, **extra}


def _filters_sql(filters: tuple[Filter, ...], params: dict[str, Any]) -> str:
    """``AND ...`` for each filter; names and values are bound parameters, never spliced."""
    out = []
    for i, f in enumerate(filters):
        params[f"fn{i}"], params[f"fv{i}"] = f.name, f.value
        if f.type in ("integer", "number"):
            out.append(f" AND (s.properties ->> %(fn{i})s)::numeric = %(fv{i})s::numeric")
        else:
            out.append(f" AND s.properties ->> %(fn{i})s = %(fv{i})s::text")
    return "".join(out)


def items(
    conn: Connection,
    collection_id: str | Layer,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    bbox_srid: int = 4326,
    limit: int = 1000,
    offset: int = 0,
    simplify_m: float = 0.0,
    code: str | None = None,
    run_id: int | None = None,
    parent: str | None = None,
    filters: tuple[Filter, ...] = (),
    srid: int = 4326,
    lat_first: bool = False,
    with_geometry: bool = True,
) -> Page:
    """Features of a layer as GeoJSON, ordered by code.

    ``srid`` is the output CRS: 4326 (lon/lat, 6 decimals; ``lat_first`` for EPSG:4326's
    latitude-first order) or 27700 (metres, 2 decimals). ``bbox`` is (minx, miny, maxx, maxy)
    in lon/lat (``bbox_srid`` 4326) or in metres (27700); ``simplify_m`` simplifies in metres
    (for overview maps); ``code`` picks one feature; ``run_id`` pins a publication's run;
    ``parent`` keeps the units whose enclosing unit (a ward's borough) has that code;
    ``filters`` keep the features whose properties equal the values; ``with_geometry``
    False gives every feature a null geometry (for tables).
    """
    layer = (collection_id if isinstance(collection_id, Layer)
             else get_layer(conn, collection_id, run_id))
    params = _params(
        layer, bbox=list(bbox) if bbox else None, bbox_srid=bbox_srid, limit=limit,
        offset=offset, tol=simplify_m, code=code, parent=parent, srid=srid, flip=lat_first,
        digits=6 if srid == 4326 else 2, geom=with_geometry,
    )
    where = _filters_sql(filters, params)
    row = conn.execute(
        f"""
        WITH {_ENV.strip()}, src AS ({_SOURCE[layer.kind]}), matched AS (
            SELECT s.code, s.properties, s.geom FROM src s
             WHERE (%(code)s::text IS NULL OR s.code = %(code)s::text)
               AND (%(parent)s::text IS NULL OR s.parent_code = %(parent)s::text)
               AND (%(bbox)s::float8[] IS NULL
                    OR (s.geom && (SELECT g FROM env)
                        AND ST_Intersects(s.geom, (SELECT g FROM env)))){where}
        ), page AS (
            SELECT * FROM matched ORDER BY code LIMIT %(limit)s OFFSET %(offset)s
        ), shaped AS (
            SELECT code, properties, CASE WHEN %(srid)s = 27700 THEN g
                                          WHEN %(flip)s THEN ST_FlipCoordinates(
                                              ST_Transform(g, 4326))
                                          ELSE ST_Transform(g, 4326) END AS g
              FROM (SELECT code, properties,
                           CASE WHEN NOT %(geom)s THEN NULL
                                WHEN %(tol)s > 0 THEN ST_SimplifyPreserveTopology(geom, %(tol)s)
                                ELSE geom END AS g FROM page) p
        )
        SELECT (SELECT count(*) FROM matched) AS matched,
               (SELECT count(*) FROM page) AS returned,
               (SELECT coalesce(json_agg(json_build_object(
                   'type', 'Feature',
                   'id', code,
                   'geometry', CASE WHEN %(geom)s THEN ST_AsGeoJSON(g, %(digits)s, 0)::json END,
                   'properties', properties) ORDER BY code), '[]'::json)::text
                  FROM shaped) AS features
        """,
        params,
    ).fetchone()
    return Page(row["features"], int(row["matched"]), int(row["returned"]), layer.run_id)


# ---- vector tiles ------------------------------------------------------------------------


def tile_bounds(z: int, x: int, y: int, margin: float = 0.0) -> tuple[float, ...]:
    """A WebMercatorQuad tile's (minlon, minlat, maxlon, maxlat), grown by ``margin`` tiles."""
    n = 2.0 ** z

    def lon(v: float) -> float:
        return v / n * 360.0 - 180.0

    def lat(v: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * v / n))))

    return (max(lon(x - margin), -180.0), max(lat(y + 1 + margin), -85.06),
            min(lon(x + 1 + margin), 180.0), min(lat(y - margin), 85.06))


def tile_tolerance_m(z: int, y: int) -> float:
    """Ground metres of one tile pixel (4096 a tile) at the tile's latitude: simplify by it."""
    n = 2.0 ** z
    lat = math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / n)))
    return 2 * _MERCATOR_HALF / n / MVT_EXTENT * math.cos(lat)


#: The one query behind every tile (bench/ runs it alone against PostGIS for comparison).
TILE_SQL_TEMPLATE = """
WITH {env}, src AS ({source}), mvt AS (
    SELECT ST_AsMVTGeom(ST_Transform(ST_Simplify(s.geom, %(tol)s, true), 3857),
                        ST_TileEnvelope(%(z)s, %(x)s, %(y)s), {extent}, {buffer}, true) AS geom,
           s.properties::jsonb AS properties
      FROM src s
     WHERE s.geom && (SELECT g FROM env)
     ORDER BY s.code
     LIMIT %(cap)s
)
SELECT ST_AsMVT(mvt.*, %(cid)s, {extent}, 'geom') AS tile FROM mvt WHERE geom IS NOT NULL
"""


def tile_query(layer: Layer, z: int, x: int, y: int, cap: int) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of one tile of ``layer`` (features beyond ``cap`` are dropped)."""
    sql = TILE_SQL_TEMPLATE.format(env=_ENV.strip(), source=_SOURCE[layer.kind],
                                   extent=MVT_EXTENT, buffer=MVT_BUFFER)
    margin = MVT_BUFFER / MVT_EXTENT
    return sql, _params(layer, bbox=list(tile_bounds(z, x, y, margin)), bbox_srid=4326,
                        z=z, x=x, y=y, tol=tile_tolerance_m(z, y), cap=cap)


def tile(conn: Connection, layer: Layer, z: int, x: int, y: int, *, cap: int) -> bytes:
    """One Mapbox Vector Tile of ``layer`` (layer name = its id); empty bytes for no features.

    Each feature carries all the layer's properties with their JSON types (pence as integers,
    pounds as numbers), geometry simplified to the tile's pixel and clipped to it.
    """
    sql, params = tile_query(layer, z, x, y, cap)
    row = conn.execute(sql, params).fetchone()
    return bytes(row["tile"] or b"")


# ---- what a map needs beside the tiles ---------------------------------------------------


def columns(conn: Connection, layer: Layer, names: list[str]) -> dict[str, list[Any]]:
    """Some of a layer's properties for every feature, as columns ordered by code.

    ``{"code": [...], name: [...], ...}``: a map colours its tiles by these. Names are quoted
    as SQL identifiers (never spliced as text); a name the layer lacks gives None.
    """
    kinds = {p["name"]: p["type"] for p in layer.properties}
    # Each feature's properties read once (json_to_record parses the text a single time;
    # ``->`` would parse it once a name, ``::jsonb`` would convert every number), and the
    # columns sent as one JSON text, not a value at a time. Names the layer lacks are None.
    record = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(
            "float8" if kinds.get(n) in ("number", "integer") else "text"))
        for n in names)
    picked = sql.SQL("").join(
        sql.SQL(", {}, json_agg(r.{} ORDER BY s.code)").format(
            sql.Literal(f"p{i}"), sql.Identifier(n)) for i, n in enumerate(names))
    query = sql.SQL(
        "WITH src AS (" + _SOURCE[layer.kind] + ") SELECT json_build_object("
        "'code', coalesce(json_agg(s.code ORDER BY s.code), '[]'){picked})::text AS cols"
        " FROM src s, json_to_record(s.properties) AS r({record})",
    ).format(picked=picked, record=record)
    row = conn.execute(query, _params(layer)).fetchone()
    cols = json.loads(row["cols"])
    return {"code": cols["code"], **{n: cols[f"p{i}"] or [] for i, n in enumerate(names)}}


def body_function_pence(conn: Connection, layer: Layer, body: str,
                        division: str) -> dict[str, int]:
    """Each unit's pence from one body for one COFOG division (``"07"``) in a publication.

    Read from the run's target allocation, so a body's spend on one function is exact even
    though features carry only each body's and each function's totals.
    """
    rows = conn.execute(
        "SELECT t.target_code AS code, sum(t.amount_pence)::bigint AS pence"
        "  FROM target_allocation t"
        "  JOIN run_slice s ON s.run_id = t.run_id AND s.slice_id = t.slice_id"
        "  JOIN body b ON b.id = s.body_id"
        " WHERE t.run_id = %(run)s AND t.target_set_id = %(set)s AND t.fit = %(fit)s"
        "   AND b.slug = %(body)s AND left(s.cofog_code, 2) = %(division)s"
        " GROUP BY t.target_code",
        {"run": layer.run_id, "set": layer.set_id, "fit": layer.fit, "body": body,
         "division": division},
    ).fetchall()
    return {r["code"]: int(r["pence"]) for r in rows}


def label_points(conn: Connection, layer: Layer, bbox: tuple[float, float, float, float],
                 limit: int) -> list[dict[str, Any]]:
    """Where to write each unit's name: a point inside it (lon/lat) and its area, in ``bbox``.

    The largest units first, at most ``limit`` (a map labels what has room for a label).
    """
    rows = conn.execute(
        f"""
        WITH {_ENV.strip()}
        SELECT b.code, b.name, ST_X(p) AS lon, ST_Y(p) AS lat, ST_Area(b.geom) AS area
          FROM boundary b,
               LATERAL (SELECT ST_Transform(ST_PointOnSurface(b.geom), 4326) AS p) pt
         WHERE b.set_id = %(set)s AND b.geom && (SELECT g FROM env)
           AND ST_Intersects(ST_PointOnSurface(b.geom), (SELECT g FROM env))
         ORDER BY ST_Area(b.geom) DESC, b.code
         LIMIT %(limit)s
        """,
        _params(layer, bbox=list(bbox), bbox_srid=4326, limit=limit),
    ).fetchall()
    return [{"code": r["code"], "name": r["name"], "lon": round(float(r["lon"]), 6),
             "lat": round(float(r["lat"]), 6), "area_m2": round(float(r["area"]))}
            for r in rows]


def publications_of_set(conn: Connection, set_id: int) -> list[Layer]:
    """Every publication served now whose units are boundary set ``set_id``."""
    rows = conn.execute(
        _PUBLICATION + " JOIN collection_current cur ON cur.id = c.id AND cur.run_id = c.run_id"
        " WHERE c.target_set_id = %s ORDER BY c.id", (set_id,),
    ).fetchall()
    return [_publication(r) for r in rows]


def parent_layer(conn: Connection, layer: Layer) -> str | None:
    """The boundary set holding the units this layer's units lie in (wards' boroughs), if any."""
    def find() -> str | None:
        row = conn.execute(
            "SELECT s.slug FROM boundary p JOIN boundary_set s ON s.id = p.set_id"
            " WHERE p.set_id <> %(set)s AND p.code = (SELECT b.parent_code FROM boundary b"
            "   WHERE b.set_id = %(set)s AND b.parent_code IS NOT NULL ORDER BY b.code LIMIT 1)"
            " ORDER BY s.slug LIMIT 1", {"set": layer.set_id},
        ).fetchone()
        return row["slug"] if row else ""

    found = remembered(conn, ("parent", layer.set_id, layer.version), find)
    return found or None


def place_name(conn: Connection, layer: Layer) -> str | None:
    """The name of the one unit all the layer's units lie in (Hackney; Greater London), if any.

    The units' parent, or failing one, their parents' parent.
    """
    def find() -> str:
        row = conn.execute(
            """
            WITH up AS (SELECT DISTINCT parent_code AS code FROM boundary
                         WHERE set_id = %(set)s AND parent_code IS NOT NULL),
                 up2 AS (SELECT DISTINCT p.parent_code AS code FROM boundary p
                          JOIN up ON up.code = p.code
                         WHERE p.set_id <> %(set)s AND p.parent_code IS NOT NULL),
                 one AS (SELECT code FROM up WHERE (SELECT count(*) FROM up) = 1
                         UNION ALL
                         SELECT code FROM up2 WHERE (SELECT count(*) FROM up) > 1
                            AND (SELECT count(*) FROM up2) = 1)
            SELECT b.name FROM boundary b JOIN one ON one.code = b.code
             WHERE b.set_id <> %(set)s ORDER BY b.set_id LIMIT 1
            """, {"set": layer.set_id},
        ).fetchone()
        return row["name"] if row else ""

    found = remembered(conn, ("place", layer.set_id, layer.version), find)
    return found or None


# ---- provenance --------------------------------------------------------------------------


def sources(conn: Connection, layer: Layer) -> list[dict[str, str]]:
    """Every source a layer's figures rest on, with its licence where known.

    Its boundaries, each spend dataset the run read, and each population (proxy) dataset of
    its proxy table.
    """
    from store import reference, spend

    out = [{"role": "boundaries", "attribution": layer.attribution, "licence": layer.licence}]
    if layer.run_id is None:
        return out
    for text in spend.attributions(conn, layer.run_id):
        out.append({"role": "spend", "attribution": text, "licence": ""})
    params = conn.execute("SELECT params FROM run WHERE id = %s", (layer.run_id,)).fetchone()
    seen = set()
    for slug in sorted({p["proxy"] for p in params["params"].get("proxy_table", [])}):
        found = reference.find_proxy(conn, slug)
        if found and found["attribution"] not in seen:
            seen.add(found["attribution"])
            out.append({"role": "population", "attribution": found["attribution"],
                        "licence": found["licence"]})
    return out


def ping(conn: Connection) -> None:
    """Ask the database to answer ``SELECT 1``; any failure propagates."""
    conn.execute("SELECT 1").fetchone()


# ---- kept for the callers that know a publication's id ----------------------------------


def collection_run(conn: Connection, collection_id: str, run_id: int | None = None) -> int:
    """The run a publication serves, or ``run_id`` if it has that publication; NotFound."""
    layer = get_layer(conn, collection_id, run_id)
    if layer.run_id is None:
        raise NotFound(f"{collection_id!r} is a boundary set, not a publication of a run",
                       "list the publications with GET /collections", where=collection_id)
    return layer.run_id
