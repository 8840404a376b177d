"""Check that a boundary set tiles its area: no two units overlap and no hole is left uncovered.

Spend is apportioned by area, so two units that overlap would both claim the area they share,
and a hole no unit covers would be claimed by nobody. :func:`check_tiling` finds both:

- overlaps: every pair of units whose intersection is larger than ``tolerance_m2``. Candidate
  pairs come from an STRtree (``predicate="intersects"``), and their intersections and areas are
  computed in vectorised shapely calls, shared out over threads (GEOS releases the GIL).
- gaps: holes inside the union of all units that no unit covers, larger than ``tolerance_m2``.
  The outside of the set (the sea, the next county) is not a gap: only holes enclosed by the
  set are. A unit lying inside a hole (an island) is taken out of the hole.

Real data digitised twice along shared edges leaves slivers of 1e-6 m² or less, both as
overlaps and as holes; the tolerance keeps them out of the report. London's 4,835 LSOAs are
checked in about a second on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from domain.errors import InputError, Problem
from geo.atoms import THREADS, chunk_bounds, chunk_count, intersecting_pairs, run_chunks

#: Columns of :attr:`Tiling.overlaps` and :attr:`Tiling.gaps`.
OVERLAP_COLUMNS = ("code_a", "code_b", "area_m2", "x", "y")
GAP_COLUMNS = ("gap_id", "area_m2", "x", "y", "neighbours")


@dataclass(frozen=True)
class Tiling:
    """What :func:`check_tiling` found.

    ``overlaps``: one row per pair of units overlapping by more than the tolerance, with columns
    code_a, code_b (code_a is the unit earlier in the frame), area_m2 and x, y (a point inside
    the overlap, EPSG:27700), sorted by area, largest first.

    ``gaps``: one row per hole inside the set that no unit covers, larger than the tolerance,
    with columns gap_id (1, 2, ... in the order of the rows), area_m2, x, y (a point inside the
    gap) and neighbours (tuple of the codes of the units around it), sorted by area, largest
    first.
    """

    overlaps: pd.DataFrame
    gaps: pd.DataFrame
    tolerance_m2: float

    @property
    def tiles(self) -> bool:
        """True when no two units overlap by more than the tolerance (gaps are not counted)."""
        return self.overlaps.empty

    def as_problems(self, source: str) -> list[Problem]:
        """One :class:`Problem` per overlap (naming both codes) and per gap (where, how big)."""
        problems = [
            Problem(
                where=f"units {r.code_a} and {r.code_b}", field="geometry",
                value=f"{r.area_m2:.1f} m²",
                reason=f"in {source}, units {r.code_a} and {r.code_b} overlap by "
                f"{r.area_m2:,.1f} m² (around x={r.x:.0f}, y={r.y:.0f} in EPSG:27700), so that "
                "area would be counted twice",
                fix=f"redraw the shared edge of {r.code_a} and {r.code_b} so that each place "
                "belongs to one unit only (snap both to the same line)",
            )
            for r in self.overlaps.itertuples(index=False)
        ]
        for r in self.gaps.itertuples(index=False):
            around = ", ".join(r.neighbours[:6]) + (" ..." if len(r.neighbours) > 6 else "")
            problems.append(Problem(
                where=f"gap {r.gap_id} at x={r.x:.0f}, y={r.y:.0f}", field="geometry",
                value=f"{r.area_m2:.1f} m²",
                reason=f"in {source}, a hole of {r.area_m2:,.1f} m² at x={r.x:.0f}, y={r.y:.0f} "
                f"(EPSG:27700) is covered by no unit" + (f" (it lies between {around})"
                                                          if around else ""),
                fix="extend the units around it to cover the hole, or add the missing unit",
            ))
        return problems


def _valid(geoms: np.ndarray) -> np.ndarray:
    geoms = np.asarray(geoms, dtype=object).copy()
    bad = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if bad.any():
        geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
    return geoms


def _overlaps(geoms: np.ndarray, codes: np.ndarray, tolerance_m2: float,
              threads: int) -> pd.DataFrame:
    a, b = intersecting_pairs(geoms, geoms, threads)
    keep = a < b
    a, b = a[keep], b[keep]

    def area(start: int, stop: int) -> np.ndarray:
        return shapely.area(shapely.intersection(geoms[a[start:stop]], geoms[b[start:stop]]))

    bounds = chunk_bounds(np.arange(len(a)), chunk_count(len(a), threads))
    areas = np.concatenate(run_chunks(area, bounds, threads)) if len(a) else np.empty(0)
    big = areas > tolerance_m2
    a, b, areas = a[big], b[big], areas[big]
    points = shapely.point_on_surface(shapely.intersection(geoms[a], geoms[b]))
    out = pd.DataFrame({
        "code_a": pd.Series(codes[a], dtype=object), "code_b": pd.Series(codes[b], dtype=object),
        "area_m2": areas, "x": shapely.get_x(points), "y": shapely.get_y(points),
    }, columns=list(OVERLAP_COLUMNS))
    return out.sort_values(["area_m2", "code_a", "code_b"], ascending=[False, True, True],
                           ignore_index=True, kind="stable")


def _gaps(geoms: np.ndarray, codes: np.ndarray, tolerance_m2: float) -> pd.DataFrame:
    parts = shapely.get_parts(shapely.union_all(geoms[~shapely.is_empty(geoms)]))
    parts = parts[shapely.get_type_id(parts) == shapely.GeometryType.POLYGON.value]
    rings, owner = shapely.get_rings(parts, return_index=True)
    exterior = np.r_[True, owner[1:] != owner[:-1]] if len(owner) else np.empty(0, dtype=bool)
    holes = shapely.polygons(rings[~exterior])
    holes = holes[shapely.area(holes) > tolerance_m2]  # a hole's area bounds its gap's
    if len(holes):
        # Parts of the union lying in a hole (islands) are covered: take them out of it.
        hole_i, part_i = shapely.STRtree(parts).query(holes, predicate="contains")
        if len(hole_i):
            order = np.argsort(hole_i, kind="stable")
            hole_i, part_i = hole_i[order], part_i[order]
            with_islands, group = np.unique(hole_i, return_inverse=True)
            islands = shapely.multipolygons(parts[part_i], indices=group)
            holes[with_islands] = shapely.difference(holes[with_islands], islands)
    gaps = shapely.get_parts(holes)
    gaps = gaps[(shapely.get_type_id(gaps) == shapely.GeometryType.POLYGON.value)
                & (shapely.area(gaps) > tolerance_m2)]
    areas = shapely.area(gaps)
    order = np.argsort(-areas, kind="stable")
    gaps, areas = gaps[order], areas[order]
    points = shapely.point_on_surface(gaps)
    gap_i, unit_i = shapely.STRtree(geoms).query(gaps, predicate="intersects")
    around = pd.Series(codes[unit_i]).groupby(gap_i).agg(lambda c: tuple(sorted(set(c))))
    neighbours = around.reindex(range(len(gaps))).tolist()
    return pd.DataFrame({
        "gap_id": np.arange(1, len(gaps) + 1), "area_m2": areas,
        "x": shapely.get_x(points), "y": shapely.get_y(points),
        "neighbours": pd.Series(neighbours, dtype=object),
    }, columns=list(GAP_COLUMNS))


def check_tiling(frame: gpd.GeoDataFrame, *, tolerance_m2: float = 1.0,
                 threads: int = THREADS) -> Tiling:
    """Find the overlaps between units and the gaps between them, larger than ``tolerance_m2``.

    ``frame`` is a boundary set in EPSG:27700 (as :func:`geo.prepare.prepare_boundaries`
    returns it) with a ``code`` column. Invalid geometries are repaired (``make_valid``) before
    they are compared. Raises :class:`InputError` if the frame is not in EPSG:27700 or has no
    ``code`` column.
    """
    if frame.crs is None or CRS.from_user_input(frame.crs) != CRS.from_epsg(27700):
        raise InputError(
            f"tiling can only be checked in EPSG:27700 metres, not {frame.crs}",
            "prepare the boundaries first (prepare_boundaries projects them to EPSG:27700)",
        )
    if "code" not in frame.columns:
        raise InputError("the boundary set has no code column", "prepare the boundaries first")
    geoms = _valid(frame.geometry.to_numpy())
    codes = frame["code"].astype(str).to_numpy(dtype=object)
    return Tiling(
        overlaps=_overlaps(geoms, codes, tolerance_m2, threads),
        gaps=_gaps(geoms, codes, tolerance_m2),
        tolerance_m2=tolerance_m2,
    )
