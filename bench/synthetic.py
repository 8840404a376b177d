"""A seeded synthetic national geography, for measuring the geometry code at England's scale.

Three independent boundary sets tile the same rectangle, about the size of England (500 km by
600 km, British National Grid): ``zones`` (~35,000, like LSOAs), ``wards`` (~7,000) and
``agencies`` (~300 agency areas, e.g. police or NHS areas). They do not nest in each other, so
every overlay between them has straddling pieces to cut, as real boundary sets do.

How one layer is made:

1. Seeded random points in the rectangle, each moved three times to the centre of its Voronoi
   cell (Lloyd's method) so that cells have similar sizes, like real small areas.
2. The Voronoi edges of those points are clipped to the rectangle; the rectangle's own sides are
   cut where edges meet them. Every edge is stored once, so two neighbouring cells will later be
   built from the very same coordinates.
3. Each edge gets extra vertices (``shapely.segmentize``): every cell is given a seeded number
   between 150 and 270 and an edge's spacing is chosen so that neither cell beside it gets
   more than its number, so every cell has 100-300 vertices.
4. Every vertex is moved by one smooth displacement field, the same for every layer: a sum of
   waves of 40 km down to 400 m (so boundaries wiggle like digitised ones), faded to zero near
   the rectangle's sides, so every layer still covers exactly the same rectangle. The field's
   slope stays well under 1, so it never folds and never makes an edge cross another.
5. The edges are polygonised into cells. Because shared edges are identical, the cells tile the
   rectangle exactly: no gaps, no overlaps. Each cell is matched to its seed point (moved by the
   same field), which fixes its code; the result is checked (one cell per seed, validity, total
   area equal to the rectangle's).

``proxy_values`` gives each zone seeded populations: ``residents-all`` (1,000-3,000),
``residents-0-15`` and ``residents-65-plus`` (random shares of it).

``national_cached`` keeps a generated geography on disk (GeoParquet, or pickled WKB where
pyarrow is missing; keyed by the parameters), so repeated benchmark runs do not pay for
generation. ``python -m bench.synthetic`` prints counts, vertex statistics and the time taken.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, too
from geo.prepare import make_valid_polygons  # noqa: E402

#: The rectangle every layer tiles: (minx, miny, maxx, maxy), EPSG:27700 metres.
EXTENT = (100_000.0, 50_000.0, 600_000.0, 650_000.0)
BNG = 27700
#: Bump when the generator changes, so cached geographies are rebuilt.
VERSION = 1
#: Range of the (seeded, per cell) number of vertices a cell may have, about.
VERTICES = (150.0, 270.0)
#: Lloyd iterations: more makes cells more alike in size (and vertex count).
LLOYD_STEPS = 3
#: Displacement waves: (wavelength m, amplitude m), each scale as two waves of half that amplitude
#: in random directions. A wave's slope is 2*pi*amplitude/wavelength: about 0.05 each here.
WAVES = ((40_000.0, 600.0), (7_000.0, 110.0), (1_500.0, 24.0), (400.0, 6.0))
#: Distance (m) over which the displacement fades to zero at the rectangle's sides.
FADE_M = 10_000.0


@dataclass(frozen=True)
class Synthetic:
    """A synthetic national geography; every frame has code, name, parent_code, geometry."""

    zones: gpd.GeoDataFrame
    wards: gpd.GeoDataFrame
    agencies: gpd.GeoDataFrame
    region: gpd.GeoDataFrame
    #: proxy, unit_code (a zone code), value.
    proxy_values: pd.DataFrame


def _lloyd_points(rng: np.random.Generator, n: int, steps: int) -> np.ndarray:
    """``n`` seeded points in :data:`EXTENT`, relaxed ``steps`` times towards cell centroids."""
    minx, miny, maxx, maxy = EXTENT
    pts = np.column_stack([rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)])
    frame = shapely.box(*EXTENT)
    for _ in range(steps):
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame, ordered=True)
        )
        pts = shapely.get_coordinates(shapely.centroid(shapely.intersection(cells, frame)))
    return pts


def _snap_to_extent(coords: np.ndarray) -> np.ndarray:
    """Put coordinates within a millimetre of the rectangle's sides exactly on them."""
    out = coords.copy()
    for axis, (lo, hi) in enumerate(((EXTENT[0], EXTENT[2]), (EXTENT[1], EXTENT[3]))):
        col = out[:, axis]
        col[np.abs(col - lo) < 1e-3] = lo
        col[np.abs(col - hi) < 1e-3] = hi
    return out


def _edges(points: np.ndarray) -> np.ndarray:
    """The Voronoi edges of ``points`` inside the rectangle, plus its sides cut at their ends."""
    minx, miny, maxx, maxy = EXTENT
    frame = shapely.box(*EXTENT)
    big = shapely.buffer(frame, 200_000.0, join_style="mitre")
    edges = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(points), extend_to=big, only_edges=True)
    )
    edges = shapely.get_parts(shapely.intersection(edges, frame))
    edges = edges[
        (shapely.get_type_id(edges) == shapely.GeometryType.LINESTRING.value)
        & (shapely.length(edges) > 0)
    ]
    edges = shapely.transform(edges, _snap_to_extent)
    # Where edges end on a side, cut the side there, so the linework is fully noded.
    ends = np.unique(
        np.concatenate(
            [shapely.get_coordinates(shapely.get_point(edges, i)) for i in (0, -1)]
        ),
        axis=0,
    )
    sides = []
    for axis, value, other in ((0, minx, (miny, maxy)), (0, maxx, (miny, maxy)),
                               (1, miny, (minx, maxx)), (1, maxy, (minx, maxx))):
        along = np.unique(np.r_[ends[ends[:, axis] == value, 1 - axis], other])
        fixed = np.full(len(along), value)
        xy = np.column_stack([fixed, along] if axis == 0 else [along, fixed])
        sides.extend(shapely.linestrings(np.stack([xy[:-1], xy[1:]], axis=1)))
    return np.r_[edges, np.array(sides, dtype=object)]


def _field(seed: int) -> list[tuple[np.ndarray, float, float, np.ndarray]]:
    """The displacement waves for ``seed``: (wave vector, phase, amplitude, direction)."""
    rng = np.random.default_rng([seed, 99])
    waves = []
    for wavelength, amplitude in WAVES:
        for _ in range(2):  # two waves per scale, in random directions
            angle, push = rng.uniform(0, 2 * np.pi, 2)
            k = 2 * np.pi / wavelength * np.array([np.cos(angle), np.sin(angle)])
            waves.append((k, float(rng.uniform(0, 2 * np.pi)), amplitude / 2,
                          np.array([np.cos(push), np.sin(push)])))
    return waves


def _warp(coords: np.ndarray, seed: int) -> np.ndarray:
    """Move every coordinate by the smooth field of ``seed`` (zero on the rectangle's sides)."""
    minx, miny, maxx, maxy = EXTENT
    x, y = coords[:, 0], coords[:, 1]

    def fade(d: np.ndarray) -> np.ndarray:
        t = np.clip(d / FADE_M, 0.0, 1.0)
        return t * t * (3 - 2 * t)

    envelope = fade(np.minimum(x - minx, maxx - x)) * fade(np.minimum(y - miny, maxy - y))
    shift = np.zeros_like(coords)
    for k, phase, amplitude, direction in _field(seed):
        shift += (amplitude * np.sin(coords @ k + phase))[:, None] * direction
    return coords + shift * envelope[:, None]


def _layer(seed: int, index: int, n: int, prefix: str, label: str) -> gpd.GeoDataFrame:
    """One tessellation of ``n`` cells, coded ``{prefix}{i}``, warped by the seed's field."""
    rng = np.random.default_rng([seed, index])
    points = _lloyd_points(rng, n, LLOYD_STEPS)
    edges = _edges(points)
    # Each cell is given a seeded number of vertices it may have; an edge's vertex spacing is
    # the larger of (perimeter / that number) for the cells on either side. A cell then gets at
    # most its number (+1 per edge, rounding up), fewer where a neighbour asks for fewer.
    cells = shapely.get_parts(shapely.polygonize(edges))
    allowed = rng.uniform(*VERTICES, len(cells))
    middle = shapely.line_interpolate_point(edges, 0.5, normalized=True)
    edge_i, cell_i = shapely.STRtree(cells).query(middle, predicate="dwithin", distance=1e-3)
    spacing = np.zeros(len(edges))
    np.maximum.at(spacing, edge_i, (shapely.length(cells) / allowed)[cell_i])
    edges = shapely.segmentize(edges, spacing)
    edges = shapely.transform(edges, lambda c: _warp(c, seed))
    faces = shapely.get_parts(shapely.polygonize(edges))
    seeds = shapely.points(_warp(points, seed))
    face_i, seed_i = shapely.STRtree(faces).query(seeds, predicate="within")[::-1]
    if len(faces) != n or len(np.unique(face_i)) != n or len(np.unique(seed_i)) != n:
        raise RuntimeError(f"{label}: {len(faces)} faces for {n} cells; the warp folded an edge")
    geoms = np.empty(n, dtype=object)
    geoms[seed_i] = faces[face_i]
    # Valid by construction (the field never folds); repaired as boundaries are if not.
    geoms, _ = make_valid_polygons(geoms)
    whole = (EXTENT[2] - EXTENT[0]) * (EXTENT[3] - EXTENT[1])
    if abs(shapely.area(geoms).sum() / whole - 1) > 1e-9:
        raise RuntimeError(f"{label}: the cells do not cover the rectangle exactly")
    width = len(str(n - 1))
    codes = [f"{prefix}{i:0{width}d}" for i in range(n)]
    return gpd.GeoDataFrame(
        {"code": codes, "name": [f"{label} {i}" for i in range(n)], "parent_code": None},
        geometry=geoms,
        crs=BNG,
    )


def _proxies(seed: int, codes: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 7])
    n = len(codes)
    everyone = rng.integers(1_000, 3_001, n).astype(float)
    young = np.round(everyone * rng.uniform(0.10, 0.30, n))
    old = np.round(everyone * rng.uniform(0.05, 0.30, n))
    return pd.DataFrame(
        {
            "proxy": np.repeat(["residents-all", "residents-0-15", "residents-65-plus"], n),
            "unit_code": codes * 3,
            "value": np.r_[everyone, young, old],
        }
    )


def national(
    seed: int = 1, zones: int = 35_000, wards: int = 7_000, agencies: int = 300
) -> Synthetic:
    """Generate the synthetic geography for ``seed`` (same seed and sizes: same output)."""
    z = _layer(seed, 1, zones, "Z", "Zone")
    w = _layer(seed, 2, wards, "W", "Ward")
    a = _layer(seed, 3, agencies, "A", "Agency")
    region = gpd.GeoDataFrame(
        {"code": ["R"], "name": ["Region"], "parent_code": [None]},
        geometry=[shapely.MultiPolygon([shapely.box(*EXTENT)])],
        crs=BNG,
    )
    return Synthetic(z, w, a, region, _proxies(seed, z["code"].tolist()))


LAYERS = ("zones", "wards", "agencies", "region")


def _cache_path(cache_dir: Path, params: dict[str, int]) -> Path:
    key = "-".join(f"{k}{params[k]}" for k in ("seed", "zones", "wards", "agencies"))
    return Path(cache_dir) / f"synthetic-national-v{VERSION}-{key}"


def _has_parquet() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _write(out: Synthetic, path: Path) -> None:
    """Write ``out`` to the folder ``path`` (GeoParquet, or pickled WKB without pyarrow)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name + ".tmp"))
    if _has_parquet():
        for name in LAYERS:
            getattr(out, name).to_parquet(tmp / f"{name}.parquet")
        out.proxy_values.to_parquet(tmp / "proxy_values.parquet")
    else:
        stored = {
            name: (pd.DataFrame(getattr(out, name).drop(columns="geometry")),
                   shapely.to_wkb(getattr(out, name).geometry.to_numpy()))
            for name in LAYERS
        }
        stored["proxy_values"] = out.proxy_values
        with (tmp / "synthetic.pickle").open("wb") as f:
            pickle.dump(stored, f, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        os.replace(tmp, path)
    except OSError:  # another process wrote it first
        shutil.rmtree(tmp, ignore_errors=True)


def _read(path: Path) -> Synthetic | None:
    """The geography stored in ``path``, or None if there is none there."""
    frames: dict[str, object] = {}
    if (path / "zones.parquet").exists() and _has_parquet():
        for name in LAYERS:
            frames[name] = gpd.read_parquet(path / f"{name}.parquet")
        frames["proxy_values"] = pd.read_parquet(path / "proxy_values.parquet")
    elif (path / "synthetic.pickle").exists():
        with (path / "synthetic.pickle").open("rb") as f:
            stored = pickle.load(f)
        for name in LAYERS:
            columns, wkb = stored[name]
            frames[name] = gpd.GeoDataFrame(columns, geometry=shapely.from_wkb(wkb), crs=BNG)
        frames["proxy_values"] = stored["proxy_values"]
    else:
        return None
    for name in LAYERS:
        frames[name]["parent_code"] = None
    return Synthetic(**frames)  # type: ignore[arg-type]


def national_cached(cache_dir: Path, **kw: int) -> Synthetic:
    """:func:`national` (same keywords), kept in ``cache_dir`` after the first call.

    Stored as GeoParquet (one file per layer) when pyarrow is installed, else as pickled WKB,
    in a folder named after the generator version and the parameters.
    """
    params = {"seed": 1, "zones": 35_000, "wards": 7_000, "agencies": 300, **kw}
    path = _cache_path(Path(cache_dir), params)
    found = _read(path)
    if found is not None:
        return found
    out = national(**params)
    _write(out, path)
    return out


def main(argv: list[str] | None = None) -> int:
    """Generate a geography and print counts, vertex statistics and the time taken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--zones", type=int, default=35_000)
    parser.add_argument("--wards", type=int, default=7_000)
    parser.add_argument("--agencies", type=int, default=300)
    args = parser.parse_args(argv)
    t = time.perf_counter()
    geo = national(args.seed, args.zones, args.wards, args.agencies)
    took = time.perf_counter() - t
    whole = shapely.area(shapely.box(*EXTENT))
    for name in ("zones", "wards", "agencies"):
        frame = getattr(geo, name)
        n = shapely.get_num_coordinates(frame.geometry.to_numpy())
        area = shapely.area(frame.geometry.to_numpy()).sum()
        print(
            f"{name:9s} {len(frame):6d} features; vertices min {n.min()} median "
            f"{int(np.median(n))} max {n.max()}; area / extent - 1 = {area / whole - 1:.1e}; "
            f"valid {bool(shapely.is_valid(frame.geometry.to_numpy()).all())}"
        )
    print(f"proxy values: {len(geo.proxy_values)} rows")
    print(f"generated in {took:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
