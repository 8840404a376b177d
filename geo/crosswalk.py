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


def build_crosswalk_via_cuts(
    atoms: gpd.GeoDataFrame, cuts: gpd.GeoDataFrame, units: gpd.GeoDataFrame
) -> pd.DataFrame:
    """The same crosswalk as :func:`build_crosswalk`, decided a whole cut unit at a time first.

    Atoms lie inside the unit they were cut by (``cut_code``). Where that cut unit lies wholly in
    one target unit (wards inside their borough, or inside London), all its atoms do too: they
    get weight 1 with no geometry touched. Only atoms of cut units that straddle target units
    are intersected one by one. On London (12,312 atoms, 630 wards) this turns a borough or
    region crosswalk from seconds into a fraction of one.
    """
    by_cut = build_crosswalk(cuts.assign(atom_id=np.arange(len(cuts))), units)
    by_cut["cut_code"] = cuts["code"].to_numpy(dtype=object)[by_cut["atom_id"].to_numpy()]
    whole = by_cut.groupby("cut_code").filter(
        lambda g: len(g) == 1 and g["weight"].iloc[0] == 1.0
    )
    home = dict(zip(whole["cut_code"], whole["target_code"], strict=True))
    inside = atoms["cut_code"].isin(home.keys()).to_numpy()
    nested = pd.DataFrame(
        {
            "atom_id": atoms["atom_id"].to_numpy()[inside],
            "target_code": atoms["cut_code"].to_numpy(dtype=object)[inside],
            "weight": 1.0,
        }
    )
    nested["target_code"] = nested["target_code"].map(home)
    rest = build_crosswalk(atoms.loc[~inside], units) if (~inside).any() else nested.iloc[:0]
    out = pd.concat([nested, rest], ignore_index=True)
    return out.sort_values(["atom_id", "target_code"]).reset_index(drop=True)


def nested_crosswalk(atoms: pd.DataFrame) -> pd.DataFrame:
    """The crosswalk of atoms to the set they were cut by: each atom wholly in its cut unit."""
    return pd.DataFrame(
        {"atom_id": atoms["atom_id"].to_numpy(), "target_code": atoms["cut_code"].to_numpy(),
         "weight": 1.0}
    )
