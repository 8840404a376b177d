"""Any polygon answered from a run's atoms, and polygons saved as neighbourhood sets.

:func:`budget` takes a polygon (a neighbourhood drawn five seconds ago) and a run, and returns
its budget without re-running anything: the atoms the polygon touches are found through the
GiST index, their share inside the polygon is computed exactly as a stored crosswalk would
(:func:`geo.crosswalk.build_crosswalk_via_cuts`: atoms of wards wholly inside pass whole; an
atom that straddles the edge counts by the share of its area inside), and the run's atom
product is summed through those shares in whole pence (:func:`allocation.crosswalk.to_targets`).

:func:`save` keeps a polygon under a name in a neighbourhood boundary set, which then behaves
like any other boundary set: publishing a run to it gives the same figures as :func:`budget`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from allocation import pipeline
from allocation.apportion import atom_proxy_values
from domain.access import OPERATOR, Grant
from domain.errors import DuplicateUpload, InputError, NotFound
from geo.crosswalk import build_crosswalk_via_cuts
from geo.polygon import polygon_from_geojson
from placespend.flows import flows_answer
from store import atoms as store_atoms
from store import boundaries as store_boundaries
from store import reference, runs
from store.db import Connection

#: Overlaps between units of one neighbourhood set larger than this (m²) are refused; smaller
#: ones are where two hand-drawn edges meet.
OVERLAP_M2 = 1.0
#: The code the drawn polygon has inside the computation (it is not stored).
DRAWN = "drawn"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _run(conn: Connection, run_id: int | None) -> tuple[int, dict]:
    """The id and row of ``run_id`` (NotFound if absent), or of the current run."""
    if run_id is None:
        run_id = runs.current_run(conn)
        if run_id is None:
            raise NotFound("no run has been published yet",
                           "make and publish one: `placespend run --publish`")
    return run_id, runs.get_run(conn, run_id)


def budget(conn: Connection, polygon: shapely.Geometry, run_id: int | None = None, *,
           name: str | None = None) -> dict:
    """The budget inside ``polygon`` (EPSG:27700) from ``run_id`` (default: the current run).

    Returns run, area_m2, atoms (touched), atoms_split (straddling the edge), the figures
    of :func:`allocation.pipeline.area_budget` (outside_pence: of the touched atoms' pence, the
    part outside the polygon) and ``flows``: its flow view (:func:`placespend.flows.flows_answer`,
    named ``name``), from the same pence as ``by_body_pence`` and ``by_function_pence``.
    """
    run_id, run = _run(conn, run_id)
    atom_set = store_atoms.get_atom_set(conn, int(run["atom_set_id"]))
    wkb = shapely.to_wkb(polygon)
    cuts = store_boundaries.read_boundaries(conn, int(atom_set["cut_set_id"]), near=wkb)
    units = gpd.GeoDataFrame({"code": [DRAWN], "name": [DRAWN], "parent_code": [None]},
                             geometry=[polygon], crs=27700)
    slices = runs.run_slices(conn, run_id)
    atoms = store_atoms.read_atoms(conn, int(run["atom_set_id"]), geometry=True,
                                   cut_codes=list(cuts["code"]))
    if len(cuts):
        xw = build_crosswalk_via_cuts(atoms, cuts, units)
    else:  # nowhere near the run's geography: nothing inside
        xw = pd.DataFrame({"atom_id": pd.Series(dtype=np.int64), "target_code": DRAWN,
                           "weight": pd.Series(dtype=np.float64)})
    touched = atoms.loc[atoms["atom_id"].isin(xw["atom_id"])]
    product = runs.run_product(conn, run_id, atom_ids=[int(a) for a in touched["atom_id"]])
    zones = sorted({z for z in touched["zone_code"] if isinstance(z, str)})
    values = reference.proxy_values(conn, int(atom_set["zone_set_id"]), codes=zones)
    stored = pipeline.Run.stored(product, slices, atom_proxy_values(touched, values))
    figures, cells = pipeline.area_budget_and_cells(stored, xw)
    return {
        "run": run_id,
        "area_m2": round(float(shapely.area(polygon)), 1),
        "atoms": int(len(touched)),
        "atoms_split": int((xw["weight"] < 1.0).sum()),
        **figures,
        "flows": flows_answer(conn, run_id, run["financial_year"], cells, name=name),
    }


def code_for(name: str) -> str:
    """A stable code for a neighbourhood name: ``Dalston Lane North`` -> ``dalston-lane-north``."""
    code = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]
    if not code:
        raise InputError("a neighbourhood needs a name", "give it a name, e.g. \"Dalston Lane\"",
                         where="name")
    return code


def save(
    conn: Connection, set_slug: str, name: str, polygon: shapely.Geometry, *,
    description: str = "", grant: Grant = OPERATOR,
) -> dict[str, Any]:
    """Save ``polygon`` (EPSG:27700) as neighbourhood ``name`` in set ``set_slug``.

    The set is created on first use (kind ``neighbourhood``). A set that has been published is
    frozen (its figures must not move): save into a new set instead. Returns set, code, name.
    """
    if not _SLUG.match(set_slug):
        raise InputError(
            f"{set_slug!r} is not a usable set name",
            "use lower-case letters, digits and hyphens, e.g. dalston-neighbourhoods",
            where="set",
        )
    grant.need_place(set_slug, "save neighbourhoods")
    code = code_for(name)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"set:{set_slug}",))
        meta = store_boundaries.find_set(conn, set_slug)
        if meta is None:
            store_boundaries.save_boundary_set(
                conn,
                store_boundaries.BoundarySetMeta(
                    slug=set_slug, name=description or f"Neighbourhoods: {set_slug}",
                    kind="neighbourhood", vintage="drawn", source="drawn and saved by users",
                    licence="as stated by the user who drew it", attribution="",
                    content_sha256=hashlib.sha256(set_slug.encode()).hexdigest(),
                ),
                gpd.GeoDataFrame({"code": [], "name": [], "parent_code": []}, geometry=[],
                                 crs=27700),
            )
        elif meta["kind"] != "neighbourhood":
            raise InputError(f"{set_slug} is a {meta['kind']} set, not a neighbourhood set",
                             "save neighbourhoods into a set of their own", where="set")
        elif runs.set_is_published(conn, int(meta["id"])):
            raise DuplicateUpload(
                f"neighbourhood set {set_slug} is already published, so it cannot change",
                "save into a new set (published figures never move)", where="set",
            )
        if store_boundaries.has_code(conn, set_slug, code):
            raise DuplicateUpload(f"{set_slug} already has a neighbourhood {code!r}",
                                  "choose another name", where="name")
        # Units of one set must not overlap: the money of an overlap would be shared between
        # them while each counted its residents in full (per head would then mislead).
        near = store_boundaries.read_boundaries(conn, set_slug, near=shapely.to_wkb(polygon))
        overlap = shapely.area(shapely.intersection(near.geometry.to_numpy(), polygon))
        big = overlap > OVERLAP_M2
        if big.any():
            i = int(np.argmax(overlap))
            raise InputError(
                f"{name!r} overlaps neighbourhood {near['code'].iloc[i]!r} of {set_slug} by "
                f"{overlap[i]:,.0f} m²",
                "redraw it so it does not overlap, or save it into another set",
                where="geometry",
            )
        store_boundaries.add_unit(conn, set_slug, code, name, polygon)
        store_atoms.drop_crosswalks(conn, store_boundaries.set_id(conn, set_slug))
    return {"set": set_slug, "code": code, "name": name}


def budget_of_geojson(conn: Connection, obj: Any, crs: str | None = None,
                      run_id: int | None = None) -> dict[str, Any]:
    """:func:`budget` of a GeoJSON polygon (see :mod:`geo.polygon`), with its name if given."""
    polygon, name = polygon_from_geojson(obj, crs)
    return {"name": name or None, **budget(conn, polygon, run_id, name=name or None)}


def save_geojson(conn: Connection, set_slug: str, obj: Any, crs: str | None = None,
                 name: str | None = None, grant: Grant = OPERATOR) -> dict[str, Any]:
    """:func:`save` a GeoJSON polygon, named by ``name`` or its Feature's ``name`` property."""
    grant.need_place(set_slug, "save neighbourhoods")
    polygon, given = polygon_from_geojson(obj, crs)
    return save(conn, set_slug, name or given, polygon, grant=grant)
