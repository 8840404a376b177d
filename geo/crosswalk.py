"""Build crosswalks: the share of each atom inside each unit of another boundary set.

``weight = area(atom ∩ unit) / area(atom)``. Atoms cut by the set's own boundaries, or by
boundaries that nest inside it (wards inside boroughs), come out at weight 1 for one unit. An
atom lying properly inside a unit is recognised without computing an intersection; the rest are
intersected. Shares below ``MIN_SHARE`` are dropped as digitising noise and an atom whose kept
shares add to within ``MIN_SHARE`` of 1 is treated as wholly inside (shares rescaled to sum to 1).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

MIN_SHARE = 1e-6


def build_crosswalk(atoms: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> pd.DataFrame:
    """Return (atom_id, target_code, weight) for ``atoms`` against ``units`` (both EPSG:27700)."""
    if atoms.crs != units.crs:
        raise ValueError(f"atoms are in {atoms.crs} but units in {units.crs}")
    ageom = atoms.geometry.to_numpy()
    ugeom = units.geometry.to_numpy()
    tree = shapely.STRtree(ugeom)
    ai, ui = tree.query(ageom, predicate="intersects")
    shapely.prepare(ugeom)
    inside = shapely.contains_properly(ugeom[ui], ageom[ai])
    share = np.ones(len(ai))
    rest = ~inside
    if rest.any():
        overlap = shapely.area(shapely.intersection(ageom[ai][rest], ugeom[ui][rest]))
        share[rest] = overlap / shapely.area(ageom[ai][rest])
    # GEOS can return an overlap larger than the atom on awkward slivers; retry on a 1 cm grid.
    odd = share > 1.0 + MIN_SHARE
    if odd.any():
        snapped = shapely.intersection(ageom[ai][odd], ugeom[ui][odd], grid_size=0.01)
        share[odd] = shapely.area(snapped) / shapely.area(ageom[ai][odd])
    share = np.minimum(share, 1.0)
    keep = share >= MIN_SHARE
    out = pd.DataFrame(
        {
            "atom_id": atoms["atom_id"].to_numpy()[ai[keep]],
            "target_code": units["code"].to_numpy(dtype=object)[ui[keep]],
            "weight": share[keep],
        }
    )
    total = out.groupby("atom_id")["weight"].transform("sum")
    snap = (total - 1.0).abs() < MIN_SHARE
    out.loc[snap, "weight"] = out.loc[snap, "weight"] / total[snap]
    return out.sort_values(["atom_id", "target_code"]).reset_index(drop=True)


def nested_crosswalk(atoms: pd.DataFrame) -> pd.DataFrame:
    """The crosswalk of atoms to the set they were cut by: each atom wholly in its cut unit."""
    return pd.DataFrame(
        {"atom_id": atoms["atom_id"].to_numpy(), "target_code": atoms["cut_code"].to_numpy(),
         "weight": 1.0}
    )
