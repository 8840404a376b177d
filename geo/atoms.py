"""Build atoms: small areas (zones) cut by a target geography's boundaries (cuts).

Each zone (LSOA) is intersected with every cut unit (ward) it overlaps. A zone wholly inside
one ward is kept whole, with no intersection computed. The parts of a ward that no zone covers
(gaps between generalised small areas and full-resolution wards, rivers) become one extra atom
per ward with no zone, so the atoms tile every ward and areal weighting can reach them.

Output columns: atom_id (0..n-1), zone_code (None for gap atoms), cut_code, zone_share
(atom area / zone area), area_m2, geometry (MultiPolygon, EPSG:27700).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.prepare import polygonal

#: Pieces (and parts of pieces) smaller than this (m²) are noise from overlaying edges
#: digitised differently.
MIN_PIECE_M2 = 0.01


def build_atoms(zones: gpd.GeoDataFrame, cuts: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Overlay ``zones`` (code, geometry) with ``cuts`` (code, geometry); both EPSG:27700."""
    if zones.crs != cuts.crs:
        raise ValueError(f"zones are in {zones.crs} but cuts in {cuts.crs}")
    zgeom = zones.geometry.to_numpy()
    cgeom = cuts.geometry.to_numpy()
    zcode = zones["code"].to_numpy(dtype=object)
    ccode = cuts["code"].to_numpy(dtype=object)

    tree = shapely.STRtree(cgeom)
    zi, ci = tree.query(zgeom, predicate="intersects")
    shapely.prepare(cgeom)
    whole = shapely.contains_properly(cgeom[ci], zgeom[zi])
    pieces = zgeom[zi].copy()
    cut = ~whole
    pieces[cut] = shapely.intersection(zgeom[zi][cut], cgeom[ci][cut])
    pieces = polygonal(pieces, MIN_PIECE_M2)
    area = shapely.area(pieces)
    keep = area >= MIN_PIECE_M2
    zi, ci, pieces, area = zi[keep], ci[keep], pieces[keep], area[keep]
    zone_area = shapely.area(zgeom)

    covered = pd.Series(pieces).groupby(ci).agg(lambda g: shapely.union_all(g.to_numpy()))
    gap_ci = covered.index.to_numpy()
    gaps = polygonal(shapely.difference(cgeom[gap_ci], covered.to_numpy()), MIN_PIECE_M2)
    uncovered = np.setdiff1d(np.arange(len(cgeom)), gap_ci)  # wards no zone touches at all
    gap_ci = np.r_[gap_ci, uncovered]
    gaps = np.r_[gaps, cgeom[uncovered]]
    gap_area = shapely.area(gaps)
    gkeep = gap_area >= MIN_PIECE_M2

    frame = pd.DataFrame(
        {
            "zone_code": np.r_[zcode[zi], np.full(int(gkeep.sum()), None, dtype=object)],
            "cut_code": np.r_[ccode[ci], ccode[gap_ci[gkeep]]],
            "zone_share": np.r_[area / zone_area[zi], np.zeros(int(gkeep.sum()))],
            "area_m2": np.r_[area, gap_area[gkeep]],
        }
    )
    geoms = np.r_[pieces, gaps[gkeep]]
    order = np.lexsort((frame["zone_code"].fillna("").to_numpy(), frame["cut_code"].to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)
    frame.insert(0, "atom_id", np.arange(len(frame), dtype=np.int64))
    return gpd.GeoDataFrame(frame, geometry=geoms[order], crs=zones.crs)
