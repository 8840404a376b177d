"""Build atoms: small areas (zones) cut by a target geography's boundaries (cuts).

Each zone (LSOA) is intersected with every cut unit (ward) it overlaps. A zone wholly inside
one ward is kept whole, with no intersection computed. The parts of a ward that no zone covers
(gaps between generalised small areas and full-resolution wards, rivers) become one extra atom
per ward with no zone, so the atoms tile every ward and areal weighting can reach them.

The work is done in two steps, so that it can be shared out:

1. :func:`atom_pieces` cuts zones into pieces. A zone's pieces depend only on that zone and the
   cuts, so the zones can be split into groups (spatial partitions, say), each group cut on its
   own, and the pieces put back together.
2. :func:`finish_atoms` takes all the pieces, adds the gap atoms, sorts the atoms by ward code
   (a ward's gap atom first) and zone code, and numbers them from 0.

Finding a ward's gap takes a union of its pieces and a difference, the slowest step of all, so
it is only done for wards that may have a gap: wards no zone reaches, and wards whose pieces'
areas add up to less or more than the ward's own area, by more than half of ``MIN_PIECE_M2``.
Where zones do not overlap, the pieces' areas add up to the area they cover, so pieces that add
up to the ward's area leave no gap worth keeping (a gap part must reach ``MIN_PIECE_M2``; the
sums' rounding error is about 1e-15 of the area). Zones that overlap inside a ward push the sum
up, which is why a sum above the ward's area is checked as well (on London, one ward's 0.55 m²
gap atom sits beside 0.73 m² of overlapping LSOAs). A gap is only missed if overlaps inside the
ward cancel it to within half of ``MIN_PIECE_M2``.

The tree queries, containment tests, intersections, unions and differences run on ``threads``
threads: GEOS releases the GIL. Each thread works on its own chunk of wards and prepares its own
copies of their geometries, as a prepared geometry must never be used by two threads. The result
is the same, bit for bit, whatever the number of threads and however the zones were split.

Output columns: atom_id (0..n-1), zone_code (None for gap atoms), cut_code, zone_share
(atom area / zone area), area_m2, geometry (MultiPolygon, EPSG:27700).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.prepare import polygonal

#: Pieces (and parts of pieces) smaller than this (m²) are noise from overlaying edges
#: digitised differently.
MIN_PIECE_M2 = 0.01

#: Threads used by default (GEOS releases the GIL; the target machines have 2 cores).
THREADS = 2

T = TypeVar("T")


def run_chunks(
    work: Callable[[int, int], T], bounds: Sequence[tuple[int, int]], threads: int
) -> list[T]:
    """``work(start, stop)`` for each chunk, on ``threads`` threads (1: in this thread)."""
    if threads <= 1 or len(bounds) <= 1:
        return [work(a, b) for a, b in bounds]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda ab: work(*ab), bounds))


def chunk_bounds(keys: np.ndarray, chunks: int) -> list[tuple[int, int]]:
    """Split sorted ``keys`` into about ``chunks`` equal runs, never splitting equal keys."""
    n = len(keys)
    if n == 0:
        return []
    cuts = np.linspace(0, n, max(1, chunks) + 1).astype(np.int64)[1:-1]
    # Move each split point back to the first of its equal keys, so a key is in one chunk.
    cuts = np.searchsorted(keys, keys[cuts], side="left") if len(cuts) else cuts
    edges = np.unique(np.r_[0, cuts, n])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def own_copies(geoms: np.ndarray) -> np.ndarray:
    """New GEOS geometries with the same coordinates, safe for one thread to prepare and use."""
    out = shapely.force_2d(geoms)
    has_z = shapely.has_z(geoms)
    if has_z.any():  # force_2d would drop Z: copy those through WKB instead
        out[has_z] = shapely.from_wkb(shapely.to_wkb(geoms[has_z], output_dimension=3))
    return out


def chunk_count(n: int, threads: int) -> int:
    """How many chunks to cut ``n`` items into: a few per thread, to even out the load."""
    return 1 if threads <= 1 or n < 8 else 4 * threads


def intersecting_pairs(
    tree_geoms: np.ndarray, geoms: np.ndarray, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into ``geoms``, into ``tree_geoms``) of every pair that intersects.

    As ``STRtree(tree_geoms).query(geoms, predicate="intersects")``, in the same order; with
    threads, each thread builds its own tree and queries its own run of ``geoms``.
    """

    def query(start: int, stop: int) -> np.ndarray:
        found = shapely.STRtree(tree_geoms).query(geoms[start:stop], predicate="intersects")
        found[0] += start
        return found

    bounds = chunk_bounds(np.arange(len(geoms)), chunk_count(len(geoms), threads))
    done = run_chunks(query, bounds, threads)
    if not done:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    found = np.concatenate(done, axis=1)
    return found[0], found[1]


def atom_pieces(
    zones: gpd.GeoDataFrame, cuts: gpd.GeoDataFrame, *, threads: int = THREADS
) -> gpd.GeoDataFrame:
    """Cut each of ``zones`` (code, geometry) by ``cuts`` (code, geometry); both EPSG:27700.

    Returns one row per piece: zone_code, cut_code, zone_share (piece area / zone area),
    area_m2, geometry (MultiPolygon). A zone's pieces depend only on that zone, so pieces of
    any split of the zones, concatenated, are the pieces of all of them.
    """
    if zones.crs != cuts.crs:
        raise ValueError(f"zones are in {zones.crs} but cuts in {cuts.crs}")
    zgeom = zones.geometry.to_numpy()
    cgeom = cuts.geometry.to_numpy()
    zcode = zones["code"].to_numpy(dtype=object)
    ccode = cuts["code"].to_numpy(dtype=object)

    zi, ci = intersecting_pairs(cgeom, zgeom, threads)
    order = np.lexsort((zi, ci))  # by ward, so each ward's geometry goes to one chunk only
    zi, ci = zi[order], ci[order]

    def cut(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        z, c = zi[start:stop], ci[start:stop]
        used, local = np.unique(c, return_inverse=True)
        mine = own_copies(cgeom[used])
        shapely.prepare(mine)
        ward = mine[local]
        zone = zgeom[z]
        whole = shapely.contains_properly(ward, zone)
        pieces = zone.copy()
        part = ~whole
        pieces[part] = shapely.intersection(zone[part], ward[part])
        pieces = polygonal(pieces, MIN_PIECE_M2)
        return pieces, shapely.area(pieces)

    done = run_chunks(cut, chunk_bounds(ci, chunk_count(len(ci), threads)), threads)
    pieces = np.concatenate([d[0] for d in done]) if done else np.empty(0, dtype=object)
    area = np.concatenate([d[1] for d in done]) if done else np.empty(0)
    keep = area >= MIN_PIECE_M2
    zi, ci, pieces, area = zi[keep], ci[keep], pieces[keep], area[keep]
    zone_area = shapely.area(zgeom)
    return gpd.GeoDataFrame(
        {
            # "str" so that an empty result (a Dask meta, say) has the same dtypes as any other
            "zone_code": pd.Series(zcode[zi], dtype="str"),
            "cut_code": pd.Series(ccode[ci], dtype="str"),
            "zone_share": area / zone_area[zi],
            "area_m2": area,
        },
        geometry=pieces,
        crs=zones.crs,
    )


def _gaps(
    cgeom: np.ndarray, piece_geoms: np.ndarray, piece_ci: np.ndarray, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each listed ward minus the union of its pieces (``piece_ci``: ward index, in runs)."""
    first = np.flatnonzero(np.diff(piece_ci, prepend=-1) != 0)
    count = np.diff(np.r_[first, len(piece_ci)])
    wards = piece_ci[first]
    # Pieces laid out as one row per ward, padded with None (ignored by union_all).
    table = np.full((len(wards), int(count.max()) if len(wards) else 0), None, dtype=object)
    rank = np.arange(len(piece_ci)) - np.repeat(first, count)
    table[np.repeat(np.arange(len(wards)), count), rank] = piece_geoms

    def gap(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        covered = shapely.union_all(table[start:stop], axis=1)
        out = polygonal(shapely.difference(cgeom[wards[start:stop]], covered), MIN_PIECE_M2)
        return out, shapely.area(out)

    bounds = chunk_bounds(np.arange(len(wards)), chunk_count(len(wards), threads))
    done = run_chunks(gap, bounds, threads)
    if not done:
        return wards, np.empty(0, dtype=object)
    return wards, np.concatenate([d[0] for d in done])


def _ranks(codes: np.ndarray) -> np.ndarray:
    """Each code's rank in sorted (code point) order: sorting by it sorts by the code."""
    return np.unique(np.asarray(codes, dtype=str), return_inverse=True)[1].ravel()


def finish_atoms(
    pieces: pd.DataFrame, cuts: gpd.GeoDataFrame, *, threads: int = THREADS
) -> gpd.GeoDataFrame:
    """Add the gap atoms to ``pieces`` (from :func:`atom_pieces`), sort them and number them.

    ``pieces`` may come from several :func:`atom_pieces` calls on parts of the zones; the
    result is the same as from one call on them all. Atoms are sorted by cut code, a ward's
    gap atom first, then by zone code, and numbered from 0 in that order.
    """
    crs = pieces.crs if isinstance(pieces, gpd.GeoDataFrame) else cuts.crs
    if crs != cuts.crs:
        raise ValueError(f"pieces are in {crs} but cuts in {cuts.crs}")
    cgeom = cuts.geometry.to_numpy()
    ccode = cuts["code"].to_numpy(dtype=object)
    cut_rank = _ranks(ccode)
    ci = pd.Index(ccode).get_indexer(pieces["cut_code"].to_numpy(dtype=object))
    if (ci < 0).any():
        raise ValueError("pieces name cut units that are not in cuts")
    zone = pieces["zone_code"].to_numpy(dtype=object)
    # By ward, then zone code: the atoms' final order, whatever the split of the zones.
    order = np.lexsort((_ranks(zone), cut_rank[ci]))
    ci, zone = ci[order], zone[order]
    geoms = np.asarray(pieces.geometry.to_numpy(), dtype=object)[order]
    area = pieces["area_m2"].to_numpy(dtype=float)[order]
    share = pieces["zone_share"].to_numpy(dtype=float)[order]

    covered = np.bincount(ci, weights=area, minlength=len(cgeom))
    has_pieces = np.bincount(ci, minlength=len(cgeom)) > 0
    maybe = has_pieces & (np.abs(shapely.area(cgeom) - covered) > MIN_PIECE_M2 / 2)
    look = maybe[ci]
    gap_ci, gaps = _gaps(cgeom, geoms[look], ci[look], threads)
    uncovered = np.flatnonzero(~has_pieces)  # wards no zone touches at all
    gap_ci = np.r_[gap_ci, uncovered].astype(np.int64)
    gaps = np.r_[gaps, cgeom[uncovered]]
    gap_area = shapely.area(gaps)
    gkeep = gap_area >= MIN_PIECE_M2
    gap_ci, gaps, gap_area = gap_ci[gkeep], gaps[gkeep], gap_area[gkeep]

    # Pieces are in order already; each ward's gap atom goes just before its pieces.
    n_gap = len(gap_ci)
    final = np.lexsort(
        (np.r_[np.arange(len(ci)), np.full(n_gap, -1)], cut_rank[np.r_[ci, gap_ci]])
    )
    frame = pd.DataFrame(
        {
            "zone_code": np.r_[zone, np.full(n_gap, None, dtype=object)][final],
            "cut_code": ccode[np.r_[ci, gap_ci]][final],
            "zone_share": np.r_[share, np.zeros(n_gap)][final],
            "area_m2": np.r_[area, gap_area][final],
        }
    )
    frame.insert(0, "atom_id", np.arange(len(frame), dtype=np.int64))
    return gpd.GeoDataFrame(frame, geometry=np.r_[geoms, gaps][final], crs=crs)


def build_atoms(
    zones: gpd.GeoDataFrame, cuts: gpd.GeoDataFrame, *, threads: int = THREADS
) -> gpd.GeoDataFrame:
    """Overlay ``zones`` (code, geometry) with ``cuts`` (code, geometry); both EPSG:27700.

    The same as ``finish_atoms(atom_pieces(zones, cuts), cuts)``; ``threads=1`` uses no pool.
    """
    return finish_atoms(atom_pieces(zones, cuts, threads=threads), cuts, threads=threads)


def refine_zone_shares(atoms: gpd.GeoDataFrame, zones: gpd.GeoDataFrame,
                       fine: gpd.GeoDataFrame, fine_values: pd.Series | None = None
                       ) -> gpd.GeoDataFrame:
    """Share each straddling zone between its atoms by a finer unit, not by land area.

    Where a ward cuts an LSOA, :func:`build_atoms` shares the LSOA's residents between the
    pieces by area (``zone_share``). Where finer units are loaded (Output Areas, drawn by ONS
    to hold similar numbers of households: 40 to 250), each piece instead gets the finer units
    it holds: ``w(a) = sum over the zone's fine units f of value(f) * area(f within a) /
    area(f)``, and the zone's share of each of its atoms becomes ``w(a) / sum of w`` (times
    the share of the zone the atoms hold together, so no resident is added or lost).
    ``value`` is ``fine_values`` (by fine code: a count on the finer units) or 1 for each unit
    (they are built to similar sizes). A fine unit belongs to the zone holding a point inside
    it; zones with no fine unit keep their area shares. Returns the atoms with ``zone_share``
    replaced.

    Worked example: an LSOA of 4 OAs, three small ones of flats (10% of its land each) and one
    big one around a park (70%). A ward boundary leaves one flats OA and half the park OA in
    ward A. By area A gets 10% + 35% = 45% of the LSOA's residents; by OAs (1 each) it gets
    1.5 of 4 = 37.5%.
    """
    out = atoms.copy()
    fine = fine[["code", "geometry"]].reset_index(drop=True)
    value = (pd.Series(1.0, index=fine["code"]) if fine_values is None
             else fine_values.reindex(fine["code"]).fillna(0.0).astype(np.float64))
    points = gpd.GeoDataFrame({"fine": fine["code"]},
                              geometry=fine.geometry.representative_point(), crs=fine.crs)
    home = gpd.sjoin(points, zones[["code", "geometry"]].rename(columns={"code": "zone"}),
                     predicate="within", how="inner").drop_duplicates("fine")
    zone_of = dict(zip(home["fine"], home["zone"], strict=True))
    mine = atoms[atoms["zone_code"].notna()]
    straddle = mine["zone_code"].duplicated(keep=False)
    cut = mine[straddle & mine["zone_code"].isin(set(zone_of.values()))]
    if cut.empty:
        return out
    left, right = shapely.STRtree(fine.geometry.to_numpy()).query(
        cut.geometry.to_numpy(), predicate="intersects")
    pairs = pd.DataFrame({"atom": cut.index.to_numpy()[left],
                          "fine": fine["code"].to_numpy()[right]})
    pairs["zone"] = cut["zone_code"].to_numpy()[left]
    same = pairs["fine"].map(zone_of) == pairs["zone"]
    pairs = pairs[same.to_numpy()].reset_index(drop=True)
    at = pd.Index(fine["code"]).get_indexer(pairs["fine"])
    inside = shapely.area(shapely.intersection(
        out.geometry.to_numpy()[out.index.get_indexer(pairs["atom"])],
        fine.geometry.to_numpy()[at]))
    whole = shapely.area(fine.geometry.to_numpy())[at]
    pairs["w"] = value.reindex(pairs["fine"]).to_numpy() * np.where(whole > 0, inside / whole, 0)
    w = pairs.groupby("atom")["w"].sum().reindex(cut.index).fillna(0.0)
    total = w.groupby(cut["zone_code"]).transform("sum")
    held = cut["zone_share"].groupby(cut["zone_code"]).transform("sum")
    ok = (total > 0).to_numpy()
    out.loc[cut.index[ok], "zone_share"] = (w[ok] / total[ok] * held[ok]).to_numpy()
    return out
