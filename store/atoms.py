"""Atom sets (small areas cut by a target geography) and crosswalks from atoms to any set."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from domain.errors import NotFound
from store.boundaries import ewkb_hex
from store.db import Connection


def lock_building(conn: Connection, what: str) -> None:
    """Hold a lock on building ``what`` (atoms or a crosswalk) to the end of the transaction.

    Two processes asked for the same atoms at once: the second waits for the first's
    transaction, then finds what it stored instead of building it again and failing.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (7_311_946, what))


def find_atom_set(conn: Connection, zone_set_id: int, cut_set_id: int,
                  fine_set_id: int | None = None, fine_proxy: str | None = None) -> dict | None:
    """The atom set cutting one boundary set version by another, or None.

    ``fine_set_id`` (and ``fine_proxy``): the set whose finer units share each straddling
    small area between its atoms (None: shared by land area).
    """
    return conn.execute(
        "SELECT * FROM atom_set WHERE zone_set_id = %s AND cut_set_id = %s"
        " AND fine_set_id IS NOT DISTINCT FROM %s AND fine_proxy IS NOT DISTINCT FROM %s",
        (zone_set_id, cut_set_id, fine_set_id, fine_proxy),
    ).fetchone()


def get_atom_set(conn: Connection, atom_set_id: int) -> dict:
    """An atom set with the slugs of its zone and cut sets, or NotFound."""
    row = conn.execute(
        "SELECT a.*, z.slug AS zone_slug, c.slug AS cut_slug FROM atom_set a"
        " JOIN boundary_set z ON z.id = a.zone_set_id JOIN boundary_set c ON c.id = a.cut_set_id"
        " WHERE a.id = %s",
        (atom_set_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no atom set {atom_set_id}", "run `placespend run` to build atoms")
    return row


def save_atoms(
    conn: Connection, *, slug: str, zone_set_id: int, cut_set_id: int, atoms: gpd.GeoDataFrame,
    fine_set_id: int | None = None, fine_proxy: str | None = None,
) -> int:
    """Insert an atom set and its atoms (atom_id, zone_code, cut_code, zone_share, area_m2)."""
    aid = conn.execute(
        "INSERT INTO atom_set (slug, zone_set_id, cut_set_id, fine_set_id, fine_proxy)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (slug, zone_set_id, cut_set_id, fine_set_id, fine_proxy),
    ).fetchone()["id"]
    wkb = ewkb_hex(atoms.geometry.to_numpy())
    with conn.cursor().copy(
        "COPY atom (atom_set_id, atom_id, zone_code, cut_code, zone_share, area_m2, geom)"
        " FROM STDIN"
    ) as copy:
        for r, g in zip(atoms.itertuples(index=False), wkb, strict=True):
            zone = r.zone_code if isinstance(r.zone_code, str) else None
            copy.write_row(
                (aid, int(r.atom_id), zone, r.cut_code, float(min(r.zone_share, 1.0)),
                 float(r.area_m2), g)
            )
    return int(aid)


def read_atoms(
    conn: Connection, atom_set_id: int, *, geometry: bool = False,
    cut_codes: list[str] | None = None,
) -> pd.DataFrame:
    """Atoms of a set, ordered by atom_id; with ``geometry`` a GeoDataFrame (EPSG:27700).

    ``cut_codes``: only the atoms of these cut units (e.g. the wards a drawn polygon touches).
    """
    geom = ", ST_AsBinary(geom) AS wkb" if geometry else ""
    rows = conn.execute(
        "SELECT atom_id, zone_code, cut_code, zone_share, area_m2" + geom +
        " FROM atom WHERE atom_set_id = %s AND (%s::text[] IS NULL OR cut_code = ANY(%s::text[]))"
        " ORDER BY atom_id",
        (atom_set_id, cut_codes, cut_codes),
    ).fetchall()
    frame = pd.DataFrame(
        rows, columns=["atom_id", "zone_code", "cut_code", "zone_share", "area_m2"]
        + (["wkb"] if geometry else [])
    )
    if not geometry:
        return frame
    geoms = gpd.GeoSeries.from_wkb([bytes(b) for b in frame.pop("wkb")], crs=27700)
    return gpd.GeoDataFrame(frame, geometry=geoms.to_numpy(), crs=27700)


def drop_crosswalks(conn: Connection, target_set_id: int) -> int:
    """Forget every crosswalk to a set whose units changed (they are rebuilt when needed)."""
    return conn.execute(
        "DELETE FROM crosswalk WHERE target_set_id = %s", (target_set_id,)
    ).rowcount


def find_crosswalk(conn: Connection, atom_set_id: int, target_set_id: int) -> int | None:
    """Id of the stored crosswalk between an atom set and a target set, or None."""
    row = conn.execute(
        "SELECT id FROM crosswalk WHERE atom_set_id = %s AND target_set_id = %s"
        " AND basis = 'area'",
        (atom_set_id, target_set_id),
    ).fetchone()
    return None if row is None else int(row["id"])


def save_crosswalk(
    conn: Connection, atom_set_id: int, target_set_id: int, weights: pd.DataFrame
) -> int:
    """Insert a crosswalk (atom_id, target_code, weight)."""
    cid = conn.execute(
        "INSERT INTO crosswalk (atom_set_id, target_set_id) VALUES (%s, %s) RETURNING id",
        (atom_set_id, target_set_id),
    ).fetchone()["id"]
    with conn.cursor().copy(
        "COPY crosswalk_weight (crosswalk_id, atom_id, target_code, weight) FROM STDIN"
    ) as copy:
        for a, t, w in weights[["atom_id", "target_code", "weight"]].itertuples(
            index=False, name=None
        ):
            copy.write_row((cid, int(a), t, float(min(w, 1.0))))
    return int(cid)


def read_crosswalk(conn: Connection, crosswalk_id: int) -> pd.DataFrame:
    """A crosswalk's weights: atom_id, target_code, weight."""
    rows = conn.execute(
        "SELECT atom_id, target_code, weight FROM crosswalk_weight WHERE crosswalk_id = %s"
        " ORDER BY atom_id, target_code",
        (crosswalk_id,),
    ).fetchall()
    return pd.DataFrame(rows, columns=["atom_id", "target_code", "weight"])


def atoms_at(conn: Connection, atom_set_id: int, xs: list[float], ys: list[float]) -> list[int]:
    """The atom each point (EPSG:27700) falls in, or -1 where it falls in none.

    A point on the edge between atoms goes to the lowest atom id that touches it.
    """
    rows = conn.execute(
        "SELECT p.i, (SELECT a.atom_id FROM atom a WHERE a.atom_set_id = %s"
        "   AND a.geom && ST_SetSRID(ST_MakePoint(p.x, p.y), 27700)"
        "   AND ST_Intersects(a.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 27700))"
        "   ORDER BY a.atom_id LIMIT 1) AS atom_id"
        " FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS p(x, y, i) ORDER BY p.i",
        (atom_set_id, xs, ys),
    ).fetchall()
    return [-1 if r["atom_id"] is None else int(r["atom_id"]) for r in rows]


def atom_points(conn: Connection, atom_set_id: int) -> pd.DataFrame:
    """A point inside each atom (EPSG:27700), by atom_id: atom_id, x, y.

    ``ST_PointOnSurface``, so the point is inside the atom even when the atom is a crescent.
    """
    rows = conn.execute(
        "SELECT atom_id, ST_X(p) AS x, ST_Y(p) AS y FROM (SELECT atom_id,"
        " ST_PointOnSurface(geom) AS p FROM atom WHERE atom_set_id = %s) q ORDER BY atom_id",
        (atom_set_id,),
    ).fetchall()
    return pd.DataFrame(rows, columns=["atom_id", "x", "y"])
