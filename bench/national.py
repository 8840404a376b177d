"""Placespend at national scale, on a seeded synthetic geography, against its peers, in one run.

Run through ``bash bench/run national`` (which builds ``bench/.venv`` with the peers), or
``bench/.venv/bin/python -m bench.national`` from the checkout. Writes
``bench/results/national.json`` (every figure) and ``bench/results/national.md`` (the tables).
See bench/README.md.

The layer is :func:`bench.synthetic.national_cached` (35,000 zones, 7,000 wards, 300 agency
areas that do not nest in each other, three population proxies), generated once and kept under
``bench/out/``. The spend: one line per agency area (300 lines, each £1m-£1bn in pence, spread
by ``residents-all``), and for the cached path also 1,000,000 lines from
:func:`bench.lines.random_lines`.

1. Apportionment zones -> wards, methods alternating within each repeat: Placespend from
   scratch (atoms + crosswalks + ``allocation.pipeline`` compute and publish), tobler
   ``area_interpolate``, two geopandas overlays, one PostGIS query. Then Placespend with atoms
   and crosswalks cached (300 lines, and 1,000,000 lines). Wall time (min and median), peak
   memory, exactness, and per-ward agreement with the two-overlay pipeline.
2. The same through the database: loading the layer, ``make_run`` (atoms stored with COPY,
   crosswalks, the run) and ``publish``, and the bytes a run stores.
3. ``POST /neighbourhoods/budget`` for polygons of about 50 zones, on the national layer and on
   the London demo: the server's own time (``Server-Timing: app;dur=``), median and p95.

No assertion is timed; every figure is written down, whatever it is, with the targets it is
measured against.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from allocation import pipeline  # noqa: E402
from allocation.apportion import line_spread  # noqa: E402
from bench import synthetic  # noqa: E402
from bench.bench import (  # noqa: E402
    db_versions,
    library_versions,
    machine_facts,
    percentile,
    save_results,
    say,
    targets_table,
)
from geo.atoms import build_atoms  # noqa: E402
from geo.crosswalk import build_crosswalk_via_cuts, nested_crosswalk  # noqa: E402

CACHE = BENCH / "out" / "synthetic-cache"
ZONE_SET, WARD_SET, AGENCY_SET, REGION_SET = "nat-zones", "nat-wards", "nat-agencies", "nat-region"
YEAR = "2024-25"
BODY = "national_agency"
RESIDENTS = pipeline.RESIDENTS
DB_NAME = "placespend_bench_national"
LONDON_DB_NAME = "placespend_bench_london_nbhd"
GB = 2**30


# ---------------------------------------------------------------------------------- memory


def _status_bytes(field: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


#: The largest VmHWM seen before a reset (a reset also lowers ``ru_maxrss``).
_peak_seen = [0]


def process_peak_rss() -> int:
    """The process' peak RSS since it started, across the resets :class:`Peak` makes."""
    return max(_peak_seen[0], _status_bytes("VmHWM"))


@dataclass
class Peak:
    """The peak resident memory (RSS) of this process over a block.

    Linux keeps the peak as VmHWM; writing 5 to /proc/self/clear_refs resets it to the current
    RSS, so the peak of one block can be read apart from everything before it. Where the reset
    is refused, ``reset`` is False and ``peak`` is the process' peak so far.
    """

    reset: bool = False
    start: int = 0
    peak: int = 0

    def __enter__(self) -> Peak:
        gc.collect()
        _peak_seen[0] = process_peak_rss()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
        except OSError:
            self.reset = False
        self.start = _status_bytes("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = _status_bytes("VmHWM")

    def facts(self) -> dict[str, Any]:
        return {"peak_rss_bytes": self.peak, "rss_delta_bytes": self.peak - self.start,
                "rss_start_bytes": self.start, "peak_reset": self.reset}


def measure(fn: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    """Wall seconds and peak RSS of ``fn()``; returns (facts, result)."""
    with Peak() as mem:
        t = time.perf_counter()
        out = fn()
        took = time.perf_counter() - t
    return {"s": took, **mem.facts()}, out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """min / median / every repeat of the wall time, and the largest peak over the repeats."""
    times = [r["s"] for r in runs]
    return {
        "repeats": len(runs),
        "min_s": min(times),
        "median_s": statistics.median(times),
        "runs_s": times,
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "rss_delta_bytes": max(r["rss_delta_bytes"] for r in runs),
        "peak_reset": all(r["peak_reset"] for r in runs),
    }


@contextmanager
def clock(into: dict[str, float], key: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    into[key] = into.get(key, 0.0) + time.perf_counter() - t


class StepClock:
    """A ``placespend.progress.Step`` that records how long each named step took."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    @contextmanager
    def __call__(self, label: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.steps.append((label, time.perf_counter() - t))


# ---------------------------------------------------------------------------------- inputs


def agency_lines(geo: synthetic.Synthetic, seed: int) -> pd.DataFrame:
    """One line per agency area, £1m-£1bn in pence, a random COFOG division, residents-all."""
    rng = np.random.default_rng([seed, 300])
    codes = geo.agencies["code"].to_numpy(dtype=object)
    n = len(codes)
    return pd.DataFrame({
        "line_id": np.arange(1, n + 1, dtype=np.int64),
        "body": BODY,
        "line": [f"Services in {c}" for c in codes],
        "cofog_code": [f"{d:02d}" for d in rng.integers(1, 11, n)],
        "amount_pence": rng.integers(100_000_000, 100_000_000_000, n, endpoint=True),
        "area_set": AGENCY_SET,
        "area_code": codes,
        "proxy": RESIDENTS,
    })


def units(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    return pd.DataFrame(frame[["code", "name"]])


def ward_codes(geo: synthetic.Synthetic) -> pd.Index:
    return pd.Index(sorted(geo.wards["code"]))


# ---------------------------------------------------------------------------------- Placespend


@dataclass
class Built:
    """Atoms (zones x wards) and the crosswalks the runs need: what a first run builds."""

    atoms: gpd.GeoDataFrame
    membership: pd.DataFrame  # set, code, atom_id, weight
    ward_xw: pd.DataFrame  # atom_id, target_code, weight
    #: What a cached path keeps with the atoms: the table without geometry and each atom's
    #: proxy values (they depend on no line). Filled by :func:`cache_atoms`.
    atom_table: pd.DataFrame | None = None
    atom_proxies: pd.DataFrame | None = None


def cache_atoms(geo: synthetic.Synthetic, built: Built) -> Built:
    """The built atoms as a cache keeps them: no geometry, proxies worked out once, the
    reporting areas' and the wards' codes as categoricals (read once, compared by number)."""
    from allocation.apportion import atom_proxy_values
    from allocation.crosswalk import coded

    table = pd.DataFrame(built.atoms.drop(columns="geometry"))
    membership = built.membership.astype({"set": "category", "code": "category"})
    return dataclasses.replace(built, atom_table=table, membership=membership,
                               ward_xw=coded(built.ward_xw),
                               atom_proxies=atom_proxy_values(table, geo.proxy_values))


def membership_rows(crosswalk: pd.DataFrame, area_set: str) -> pd.DataFrame:
    return crosswalk.assign(set=area_set).rename(columns={"target_code": "code"})


def placespend_build(geo: synthetic.Synthetic, times: dict[str, float]) -> Built:
    with clock(times, "atoms"):
        atoms = build_atoms(geo.zones, geo.wards)
    with clock(times, "crosswalk_agencies"):
        agencies = build_crosswalk_via_cuts(atoms, geo.wards, geo.agencies)
    with clock(times, "crosswalk_wards"):
        ward_xw = nested_crosswalk(atoms)
    return Built(atoms, membership_rows(agencies, AGENCY_SET), ward_xw)


def placespend_apportion(
    geo: synthetic.Synthetic, built: Built, lines: pd.DataFrame,
    times: dict[str, float] | None = None,
) -> tuple[pipeline.Run, pipeline.Publication]:
    """``pipeline.compute`` (lines -> atoms) then ``pipeline.publish`` (atoms -> wards)."""
    times = {} if times is None else times
    atoms = built.atom_table if built.atom_table is not None else built.atoms
    inputs = pipeline.Inputs(lines, atoms, geo.proxy_values, built.membership, WARD_SET,
                             atom_proxies=built.atom_proxies)
    with clock(times, "compute"):
        run = pipeline.compute(inputs)
    with clock(times, "publish"):
        pub = pipeline.publish(run, WARD_SET, built.ward_xw, units(geo.wards),
                               sorted(map(str, lines["body"].unique())))
    return run, pub


def placespend_scratch(geo: synthetic.Synthetic, lines: pd.DataFrame,
                       times: dict[str, float]) -> tuple[Built, pipeline.Run, pipeline.Publication]:
    built = placespend_build(geo, times)
    run, pub = placespend_apportion(geo, built, lines, times)
    return built, run, pub


def ward_totals(pub: pipeline.Publication, wards: pd.Index) -> pd.Series:
    """A publication's pence per ward, every ward (0 where none), int64."""
    got = pub.target_alloc.groupby("target_code")["amount_pence"].sum()
    return got.reindex(wards).fillna(0).astype(np.int64)


def exactness(lines: pd.DataFrame, run: pipeline.Run, pub: pipeline.Publication,
              wards: pd.Index) -> dict[str, Any]:
    """Every line allocated to the penny (the run's outcome table), and every penny in a ward."""
    o = run.report.lines
    short = (o["allocated_pence"] != o["amount_pence"]).to_numpy()
    reason = o["reason"].notna().to_numpy()
    total = int(lines["amount_pence"].sum())
    in_wards = int(ward_totals(pub, wards).sum())
    return {
        "lines": int(len(o)),
        "lines_allocated_in_full": int((~short).sum()),
        "lines_short_with_reason": int((short & reason).sum()),
        "lines_short_without_reason": int((short & ~reason).sum()),
        "total_pence": total,
        "ward_pence": in_wards,
        "outside_pence": int(pub.outside_pence),
        "exact": bool(not short.any() and in_wards + int(pub.outside_pence) == total),
    }


def line_spread_sample(geo: synthetic.Synthetic, built: Built, lines: pd.DataFrame,
                       run: pipeline.Run, n: int, seed: int) -> dict[str, Any]:
    """``line_spread`` for ``n`` random lines: does each add back to its own amount?"""
    rng = np.random.default_rng([seed, 5])
    ids = rng.choice(lines["line_id"].to_numpy(), size=min(n, len(lines)), replace=False)
    amounts = lines.set_index("line_id")["amount_pence"]
    off = 0
    for line_id in ids:
        spread = line_spread(lines, built.atoms, run.proxies, built.membership,
                             cut_set=WARD_SET, line_id=int(line_id))
        off += int(int(spread["amount_pence"].sum()) != int(amounts[line_id]))
    return {"lines_checked": len(ids), "lines_not_adding_back": off}


# ---------------------------------------------------------------------------------- peers


def zone_agency(geo: synthetic.Synthetic) -> np.ndarray:
    """The agency (index) each zone is given to by the peers that spread lines over zones: the
    one its point-on-surface lies in (zones do not nest in agency areas; -1 for none)."""
    points = shapely.point_on_surface(geo.zones.geometry.to_numpy())
    zi, ai = shapely.STRtree(geo.agencies.geometry.to_numpy()).query(points,
                                                                     predicate="intersects")
    out = np.full(len(points), -1, dtype=np.int64)
    out[zi[::-1]] = ai[::-1]  # a point on a shared edge: the first agency found
    return out


def zone_line_values(geo: synthetic.Synthetic, lines: pd.DataFrame) -> pd.DataFrame:
    """Each line's pence spread over the zones of its agency by its proxy (float64, zones x
    lines): tobler's extensive input, as bench.py's ``lsoa_line_values`` is for London."""
    of_zone = zone_agency(geo)
    agency_index = pd.Index(geo.agencies["code"].to_numpy(dtype=object))
    proxies = geo.proxy_values.pivot(index="unit_code", columns="proxy", values="value")
    proxies = proxies.reindex(geo.zones["code"]).fillna(0.0)
    cols = {}
    for row in lines.itertuples(index=False):
        w = proxies[row.proxy].to_numpy() * (of_zone == agency_index.get_loc(row.area_code))
        total = w.sum()
        cols[f"l{row.line_id}"] = row.amount_pence * w / total if total > 0 else w * 0
    return pd.DataFrame(cols, index=geo.zones.index)


def tobler_run(geo: synthetic.Synthetic, lines: pd.DataFrame) -> pd.Series:
    """tobler ``area_interpolate`` of the 300 lines' zone pence to wards; float pence per ward."""
    from tobler.area_weighted import area_interpolate

    values = zone_line_values(geo, lines)
    source = gpd.GeoDataFrame(values, geometry=geo.zones.geometry.to_numpy(), crs=geo.zones.crs)
    out = area_interpolate(source, geo.wards[["code", "geometry"]],
                           extensive_variables=list(values.columns), allocate_total=True)
    if out is None:
        raise RuntimeError("tobler area_interpolate returned None (CRS mismatch?)")
    per_ward = out[list(values.columns)].sum(axis=1)
    per_ward.index = geo.wards["code"].to_numpy()
    return per_ward


def overlay_run(geo: synthetic.Synthetic, lines: pd.DataFrame) -> pd.Series:
    """Two geopandas overlays, (zone x agency) x ward, proxy x area-share weights per line,
    summed per ward: the same three-way pieces Placespend uses. Float pence per ward."""
    z = geo.zones[["code", "geometry"]].rename(columns={"code": "zone"})
    z["zone_area"] = z.geometry.area
    a = geo.agencies[["code", "geometry"]].rename(columns={"code": "agency"})
    w = geo.wards[["code", "geometry"]].rename(columns={"code": "ward"})
    p1 = gpd.overlay(z, a, how="intersection", keep_geom_type=True)
    p2 = gpd.overlay(p1, w, how="intersection", keep_geom_type=True)
    pieces = pd.DataFrame({"zone": p2["zone"].to_numpy(), "agency": p2["agency"].to_numpy(),
                           "ward": p2["ward"].to_numpy(),
                           "share": (p2.geometry.area / p2["zone_area"]).to_numpy()})
    spread = pieces.merge(lines[["line_id", "amount_pence", "area_code", "proxy"]],
                          left_on="agency", right_on="area_code")
    spread = spread.merge(geo.proxy_values, left_on=["zone", "proxy"],
                          right_on=["unit_code", "proxy"], how="left")
    weight = spread["share"].to_numpy() * spread["value"].fillna(0.0).to_numpy()
    total = pd.Series(weight).groupby(spread["line_id"].to_numpy()).transform("sum").to_numpy()
    pence = spread["amount_pence"].to_numpy() * np.divide(
        weight, total, out=np.zeros_like(weight), where=total > 0)
    return pd.Series(pence).groupby(spread["ward"].to_numpy()).sum()


POSTGIS_SQL = """
WITH za AS (
    SELECT z.code AS zone, a.code AS agency, ST_Area(z.geom) AS zone_area,
           ST_Intersection(z.geom, a.geom) AS geom
      FROM bench.zone z JOIN bench.agency a ON ST_Intersects(z.geom, a.geom)
), pieces AS (
    SELECT za.zone, za.agency, w.code AS ward,
           ST_Area(ST_Intersection(za.geom, w.geom)) / za.zone_area AS share
      FROM za JOIN bench.ward w ON ST_Intersects(za.geom, w.geom)
), weighted AS (
    SELECT l.line_id, p.ward, l.amount_pence, p.share * v.value AS w
      FROM pieces p
      JOIN bench.line l ON l.agency = p.agency
      JOIN bench.zone_proxy v ON v.code = p.zone AND v.proxy = l.proxy
)
SELECT ward, sum(amount_pence * w / nullif(total, 0)) AS pence
  FROM (SELECT *, sum(w) OVER (PARTITION BY line_id) AS total FROM weighted) x
 GROUP BY ward
"""


def postgis_load(url: str, geo: synthetic.Synthetic, lines: pd.DataFrame) -> None:
    """Scratch tables (schema ``bench``) for the plain-SQL peer, with GiST indexes."""
    import psycopg

    from store.boundaries import ewkb_hex

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
        conn.execute("CREATE SCHEMA bench")
        for table, frame in (("zone", geo.zones), ("ward", geo.wards),
                             ("agency", geo.agencies)):
            conn.execute(f"CREATE TABLE bench.{table} (code text PRIMARY KEY,"
                         " geom geometry(MultiPolygon, 27700) NOT NULL)")
            with conn.cursor().copy(f"COPY bench.{table} (code, geom) FROM STDIN") as cp:
                for row in zip(frame["code"], ewkb_hex(frame.geometry.to_numpy()), strict=True):
                    cp.write_row(row)
            conn.execute(f"CREATE INDEX ON bench.{table} USING gist (geom)")
        conn.execute("CREATE TABLE bench.zone_proxy (code text, proxy text, value float8,"
                     " PRIMARY KEY (code, proxy))")
        with conn.cursor().copy("COPY bench.zone_proxy (code, proxy, value) FROM STDIN") as cp:
            for row in geo.proxy_values[["unit_code", "proxy", "value"]].itertuples(index=False):
                cp.write_row(tuple(row))
        conn.execute("CREATE TABLE bench.line (line_id bigint PRIMARY KEY,"
                     " amount_pence bigint NOT NULL, agency text NOT NULL, proxy text NOT NULL)")
        with conn.cursor().copy(
            "COPY bench.line (line_id, amount_pence, agency, proxy) FROM STDIN"
        ) as cp:
            for row in lines.itertuples(index=False):
                cp.write_row((int(row.line_id), int(row.amount_pence), row.area_code, row.proxy))
        for table in ("zone", "ward", "agency", "zone_proxy", "line"):
            conn.execute(f"ANALYZE bench.{table}")


def postgis_run(url: str) -> pd.Series:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(POSTGIS_SQL).fetchall()
    return pd.Series([float(r[1]) for r in rows], index=[r[0] for r in rows])


def agreement(exact: pd.Series, other: pd.Series) -> dict[str, Any]:
    """Per-ward totals of a float method against Placespend's exact pence."""
    extra = sorted(set(other.index) - set(exact.index))
    o = other.reindex(exact.index).fillna(0.0).to_numpy(dtype=np.float64)
    e = exact.to_numpy(dtype=np.float64)
    diff = np.abs(o - e)
    rel = diff / np.maximum(np.abs(e), 1.0)
    worst = int(np.argmax(rel)) if len(rel) else 0
    return {
        "wards": int(len(e)),
        "max_rel_diff": float(rel.max()) if len(rel) else 0.0,
        "max_abs_diff_pence": float(diff.max()) if len(diff) else 0.0,
        "sum_abs_diff_pence": float(diff.sum()),
        "wards_over_1e-6_rel": int((rel > 1e-6).sum()),
        "worst_ward": str(exact.index[worst]) if len(rel) else None,
        "worst_ward_exact_pence": int(e[worst]) if len(e) else 0,
        "method_total_pence": float(o.sum()),
        "exact_total_pence": int(exact.sum()),
        "wards_only_in_method": extra[:10],
    }


# ---------------------------------------------------------------------------------- database


def _meta(slug: str, kind: str, name: str) -> Any:
    from store.boundaries import BoundarySetMeta

    version = f"synthetic-v{synthetic.VERSION}"
    return BoundarySetMeta(slug=slug, name=name, kind=kind, vintage=version,
                           source="bench/synthetic.py (seeded)", licence="synthetic",
                           attribution="synthetic", content_sha256=f"{slug}-{version}")


def load_national(url: str, geo: synthetic.Synthetic, lines: pd.DataFrame) -> dict[str, float]:
    """The synthetic layer, its proxies, COFOG codes, one body and the 300 lines, into a fresh
    migrated database (what ``placespend load`` does for the embedded data)."""
    from boundaries import catalog
    from intake.reference import read_cofog
    from store import boundaries as sb
    from store import reference, registry, spend
    from store.db import connect

    times: dict[str, float] = {}
    with connect(url) as conn:
        with clock(times, "cofog"):
            reference.save_cofog(conn, read_cofog(catalog.path(catalog.COFOG_PATH)))
        ids = {}
        for slug, kind, frame, name in ((ZONE_SET, "lsoa", geo.zones, "Synthetic zones"),
                                        (WARD_SET, "ward", geo.wards, "Synthetic wards"),
                                        (AGENCY_SET, "agency_area", geo.agencies,
                                         "Synthetic agency areas")):
            with clock(times, f"boundaries {slug}"):
                ids[slug] = sb.save_boundary_set(conn, _meta(slug, kind, name), frame)
        with clock(times, "proxies"):
            for slug, values in geo.proxy_values.groupby("proxy"):
                reference.save_proxy(conn, slug=str(slug), name=str(slug),
                                     unit_set_id=ids[ZONE_SET], year=2024,
                                     source="bench/synthetic.py", licence="synthetic",
                                     attribution="synthetic",
                                     values=values[["unit_code", "value"]])
        with clock(times, "spend lines"):
            body = reference.upsert_body(conn, BODY, "National agencies", "agency", None)
            batch = registry.save_batch(conn, kind="spend", filename="national-bench.csv",
                                        sha256=f"national-{len(lines)}", rows=len(lines),
                                        options={}, report={}, loaded_by="bench")
            spend.save_spend_lines(conn, batch, lines.assign(
                body_id=body, financial_year=YEAR, kind="expenditure", scheme="cofog",
                source_code=lines["cofog_code"], located_by="area",
                area_set_id=ids[AGENCY_SET], postcode=None, site_id=None, x=None, y=None,
                source_row=lines["line_id"]), supersedes={}, content={})
    return times


def national_run_in_db(url: str) -> dict[str, Any]:
    """``make_run`` (atoms stored with COPY, crosswalks, the run) and ``publish`` to the wards."""
    from placespend.runs import RunRequest, make_run, publish
    from store.db import connect
    from store.runs import stored_bytes

    table = BENCH / "out" / "national-proxies.csv"
    table.write_text("line,proxy,rationale\n*,residents-all,everyone\n")
    request = RunRequest(financial_year=YEAR, zone_set=ZONE_SET, cut_set=WARD_SET,
                         proxy_table=table, target_sets=(WARD_SET,))
    steps = StepClock()
    with connect(url) as conn:
        made, result = measure(lambda: make_run(conn, request, steps))
        published, collections = measure(lambda: publish(conn, result.run_id))
        size = stored_bytes(conn, result.run_id)
        atoms = conn.execute("SELECT count(*) AS n FROM atom").fetchone()["n"]
    return {
        "run_id": result.run_id,
        "make_run": made,
        "make_run_steps_s": dict(steps.steps),
        "publish": published,
        "collections": collections,
        "conservation": result.conservation,
        "stored_bytes": size,
        "atoms_stored": int(atoms),
    }


# ---------------------------------------------------------------------------------- neighbourhoods


def hexagon(x: float, y: float, r: float) -> shapely.Polygon:
    angles = np.arange(6) * np.pi / 3
    return shapely.Polygon(np.column_stack([x + r * np.cos(angles), y + r * np.sin(angles)]))


def polygons_of_about(zones: gpd.GeoDataFrame, centres: np.ndarray, want: int) -> tuple[
        list[shapely.Polygon], list[int], float]:
    """Hexagons around ``centres``, one radius for all, sized so that the median one touches
    about ``want`` zones. Returns the polygons, zones each touches, and the radius (m)."""
    tree = shapely.STRtree(zones.geometry.to_numpy())

    def touched(r: float, points: np.ndarray) -> list[int]:
        return [len(tree.query(hexagon(x, y, r), predicate="intersects")) for x, y in points]

    r = math.sqrt(want * float(np.median(zones.geometry.area)) / (1.5 * math.sqrt(3)))
    for _ in range(5):
        r *= math.sqrt(want / max(statistics.median(touched(r, centres[:40])), 1))
    polys = [hexagon(x, y, r) for x, y in centres]
    return polys, touched(r, centres), r


def lonlat_geojson(polygon: shapely.Polygon) -> dict[str, Any]:
    """The polygon as a GeoJSON Polygon in lon/lat (EPSG:4326), as the map sends it."""
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(27700, 4326, always_xy=True)
    ring = [list(to_lonlat.transform(x, y)) for x, y in polygon.exterior.coords]
    return {"type": "Polygon", "coordinates": [ring]}


def budget_timings(url: str, polygons: list[shapely.Polygon], warmup: int) -> dict[str, Any]:
    """POST /neighbourhoods/budget for each polygon, in-process (TestClient): server time from
    the ``Server-Timing: app;dur=`` header, client time around the call. The first ``warmup``
    polygons are sent but not counted."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from placespend.settings import Settings

    bodies = [lonlat_geojson(p) for p in polygons]
    server: list[float] = []
    client_ms: list[float] = []
    atoms: list[int] = []
    with TestClient(create_app(Settings(database_url=url))) as client:
        for i, body in enumerate(bodies):
            t = time.perf_counter()
            r = client.post("/neighbourhoods/budget", json=body)
            took = (time.perf_counter() - t) * 1000
            if r.status_code != 200:
                raise RuntimeError(f"budget answered {r.status_code}: {r.text[:300]}")
            if i < warmup:
                continue
            timing = r.headers.get("server-timing", "")
            server.append(float(timing.split("dur=")[1].split(",")[0]) if "dur=" in timing
                          else float("nan"))
            client_ms.append(took)
            atoms.append(int(r.json()["atoms"]))
    return {
        "requests": len(server),
        "warmup": warmup,
        "server_ms_median": statistics.median(server),
        "server_ms_p95": percentile(server, 95),
        "server_ms_max": max(server),
        "client_ms_median": statistics.median(client_ms),
        "client_ms_p95": percentile(client_ms, 95),
        "atoms_touched_median": statistics.median(atoms),
    }


def neighbourhoods_national(url: str, geo: synthetic.Synthetic, args: argparse.Namespace
                            ) -> dict[str, Any]:
    rng = np.random.default_rng([args.seed, 50])
    minx, miny, maxx, maxy = synthetic.EXTENT
    margin = 20_000.0
    n = args.requests + args.warmup
    centres = np.column_stack([rng.uniform(minx + margin, maxx - margin, n),
                               rng.uniform(miny + margin, maxy - margin, n)])
    polys, zones, r = polygons_of_about(geo.zones, centres, args.zones_per_polygon)
    out = budget_timings(url, polys, args.warmup)
    return {**out, "hexagon_radius_m": r,
            "zones_touched_median": statistics.median(zones[args.warmup:])}


def neighbourhoods_london(args: argparse.Namespace) -> dict[str, Any]:
    """The London demo (embedded data, the 2014-15 run published, as tests/conftest.py does)."""
    from placespend.load import load_embedded
    from placespend.runs import RunRequest, make_run, publish
    from store import boundaries as sb
    from store import cluster
    from store.db import connect
    from store.migrate import migrate

    url = cluster.fresh_database(LONDON_DB_NAME)
    t = time.perf_counter()
    with connect(url) as conn:
        migrate(conn)
        load_embedded(conn)
        result = make_run(conn, RunRequest())
        publish(conn, result.run_id)
        lsoas = sb.read_boundaries(conn, "london-lsoa-2011")
    prepared = time.perf_counter() - t
    rng = np.random.default_rng([args.seed, 51])
    picks = rng.choice(len(lsoas), size=args.requests + args.warmup, replace=True)
    points = shapely.point_on_surface(lsoas.geometry.to_numpy()[picks])
    centres = shapely.get_coordinates(points)
    polys, zones, r = polygons_of_about(lsoas, centres, args.zones_per_polygon)
    out = budget_timings(url, polys, args.warmup)
    return {**out, "hexagon_radius_m": r,
            "zones_touched_median": statistics.median(zones[args.warmup:]),
            "demo_load_and_run_s": prepared}


# ---------------------------------------------------------------------------------- report


def fmt_mb(b: float) -> str:
    return f"{b / 2**20:,.0f} MB"


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target, the figure this run measured, met or not (None: not measured)."""
    m = res["apportionment"]["methods"]
    out: list[dict[str, Any]] = []

    def add(target: str, value: float | None, limit: float, shown: str) -> None:
        out.append({"target": target, "value": value, "limit": limit,
                    "measured": "not measured" if value is None else shown,
                    "met": value is not None and value <= limit})

    def med(key: str, stat: str = "median_s") -> float | None:
        return m.get(key, {}).get("time", {}).get(stat)

    scratch, fastest = med("placespend_scratch"), med("placespend_scratch", "min_s")
    for key, label, limit in (("tobler", "tobler", 0.5),
                              ("geopandas_overlay", "the two-overlay pipeline", 0.25),
                              ("postgis_sql", "the PostGIS query", 0.15)):
        peer, peer_min = med(key), med(key, "min_s")
        ratio = scratch / peer if scratch and peer else None
        shown = (f"{ratio:.3f}x (of the fastest runs: {fastest / peer_min:.3f}x)"
                 if ratio is not None and fastest and peer_min else "")
        add(f"national from scratch at most {limit}x {label} (medians)", ratio, limit, shown)
    c300 = med("placespend_cached_300")
    add("cached, 300 lines: under 0.05 s (median)", c300, 0.05, f"{c300:.3f} s" if c300 else "")
    c1m = m.get("placespend_cached_1m", {})
    t1m = c1m.get("time", {}).get("median_s")
    add(f"cached, {res['args']['many_lines']:,} lines: under 1 s (median)", t1m, 1.0,
        f"{t1m:.2f} s" if t1m else "")
    mem1m = c1m.get("time", {}).get("rss_delta_bytes")
    add(f"cached, {res['args']['many_lines']:,} lines: under 2 GB (peak RSS above the RSS "
        "before the step)", None if mem1m is None else mem1m / GB, 2.0,
        fmt_mb(mem1m) if mem1m is not None else "")
    agree = m.get("geopandas_overlay", {}).get("agreement", {}).get("max_rel_diff")
    add("per-ward totals within 1e-6 (relative) of the two-overlay pipeline", agree, 1e-6,
        f"{agree:.1e}" if agree is not None else "")
    nb = res.get("neighbourhoods", {})
    for key, limit in (("london", 50.0), ("national", 100.0)):
        ms = nb.get(key, {}).get("server_ms_median")
        add(f"neighbourhood budget, server median under {limit:.0f} ms ({key})", ms, limit,
            f"{ms:.1f} ms" if ms is not None else "")
    peak = m.get("placespend_scratch", {}).get("fresh_process_memory", {}).get("peak_rss_bytes")
    add("peak memory of the whole national run under 3 GB (peak RSS of a fresh process that "
        "reads the layer and runs from scratch once)", None if peak is None else peak / GB, 3.0,
        fmt_mb(peak) if peak is not None else "")
    return out


def method_row(meth: dict[str, Any], base: float | None) -> str:
    if "error" in meth:
        return f"| {meth['label']} | failed: {meth['error'][:150]} | | | | | |"
    t = meth["time"]
    ratio = f"{t['median_s'] / base:.2f}x" if base else ""
    return (f"| {meth['label']} | {t['repeats']} | {t['min_s']:.3f} | {t['median_s']:.3f} | "
            f"{ratio} | {fmt_mb(t['peak_rss_bytes'])} | {fmt_mb(t['rss_delta_bytes'])} |")


def write_markdown(res: dict[str, Any], path: Path) -> None:
    m = res["machine"]
    a = res["apportionment"]
    d = a["data"]
    L: list[str] = ["# Placespend benchmark results: national (synthetic)\n"]
    L.append("Written by `bash bench/run national` (bench/national.py); every figure below comes "
             "from one run on this machine. The machine is small and shared: compare the "
             "**ratios within this run**, not absolute times across runs.\n")
    L.append("## Machine\n")
    L.append("| fact | value |\n|---|---|")
    for k in ("date_utc", "nproc", "cpu_model", "memory_gib", "os", "python", "git_commit",
              "git_tree_modified_outside_bench", "load_average_at_start",
              "load_average_at_end"):
        L.append(f"| {k} | {m.get(k)} |")
    L.append("\n| library | version |\n|---|---|")
    for k, v in res["versions"].items():
        L.append(f"| {k} | {v} |")

    L.append("\n## Targets\n")
    L.append(targets_table(res["targets"]))

    L.append("## 1. Apportionment zones -> wards\n")
    L.append(
        f"Data: `bench/synthetic.py` seed {res['args']['seed']}: {d['zones']:,} zones, "
        f"{d['wards']:,} wards, {d['agencies']} agency areas (none nests in another), "
        f"{d['proxy_values']:,} proxy values. {d['lines']} lines, one per agency area, "
        f"£1m-£1bn each (total {d['total_pence']:,} pence), spread by residents-all. The layer "
        f"is read from the cache in bench/out/ once, outside every timing "
        f"({d['layer_read_s']:.1f} s). Methods alternate within each repeat. Memory: the peak "
        "resident set (VmHWM, reset before each call through /proc/self/clear_refs) of the "
        "bench process, and that peak above the RSS just before the call; the PostGIS query's "
        "memory is the server's and is not in it.\n"
    )
    scratch = a["methods"].get("placespend_scratch", {}).get("time", {}).get("median_s")
    L.append("| method | repeats | min s | median s | ratio to Placespend from scratch | peak "
             "RSS | peak above start |")
    L.append("|---|---|---|---|---|---|---|")
    for meth in a["methods"].values():
        L.append(method_row(meth, scratch))
    br = a["methods"].get("placespend_scratch", {}).get("breakdown_median_s")
    if br:
        L.append("\nPlacespend from scratch, median of each step: "
                 + ", ".join(f"{k.replace('_', ' ')} {v:.3f} s" for k, v in br.items())
                 + f"; {a['methods']['placespend_scratch']['atoms']:,} atoms, "
                 f"{a['methods']['placespend_scratch']['agency_crosswalk_rows']:,} agency "
                 "crosswalk rows.\n")
    fm = a["methods"].get("placespend_scratch", {}).get("fresh_process_memory", {})
    if "peak_rss_bytes" in fm:
        L.append(f"Memory of the run from scratch alone: a fresh process that reads the layer "
                 f"({fmt_mb(fm['rss_after_layer_bytes'])} resident after reading it) and makes "
                 f"the run once ({fm['s']:.1f} s) peaks at {fmt_mb(fm['peak_rss_bytes'])} "
                 "resident.\n")
    elif fm:
        L.append(f"Fresh-process memory probe failed: {fm.get('error', '')[:300]}\n")
    c1m = a["methods"].get("placespend_cached_1m", {})
    if "lines" in c1m:
        L.append(f"The {c1m['lines']:,} lines ({c1m['areas']}): made by `bench.lines."
                 f"random_lines` (not timed, {c1m['made_s']:.1f} s); median step times "
                 + ", ".join(f"{k} {v:.3f} s" for k, v in c1m["breakdown_median_s"].items())
                 + f"; {c1m['product_rows']:,} atom product rows, {c1m['slices']:,} slices.\n")

    L.append("### Exactness and agreement\n")
    L.append("| method | lines allocated to the penny (outcome table) | pence in wards + "
             "outside = total | max rel. ward-total diff from Placespend | max abs ward-total "
             "diff (pence) | wards over 1e-6 |")
    L.append("|---|---|---|---|---|---|")
    for meth in a["methods"].values():
        ex, ag = meth.get("exactness"), meth.get("agreement")
        if ex:
            L.append(f"| {meth['label']} | {ex['lines_allocated_in_full']:,}/{ex['lines']:,} "
                     f"({ex['lines_short_without_reason']} short without a reason) | "
                     f"{'yes' if ex['exact'] else '**NO**'} | | | |")
        elif ag:
            L.append(f"| {meth['label']} | float | {ag['method_total_pence']:,.1f} of "
                     f"{ag['exact_total_pence']:,} | {ag['max_rel_diff']:.2e} | "
                     f"{ag['max_abs_diff_pence']:,.1f} | {ag['wards_over_1e-6_rel']:,} |")
    ls = a.get("line_spread_sample")
    if ls:
        L.append(f"\n`allocation.apportion.line_spread` on {ls['lines_checked']} random lines of "
                 f"the 300: {ls['lines_not_adding_back']} do not add back to their amount.\n")

    db = res.get("database", {})
    L.append("\n## 2. Through the database (PostGIS)\n")
    if "error" in db:
        L.append(f"Failed: {db['error'][:300]}\n")
    elif db:
        run = db["run"]
        L.append(f"Loading the layer, proxies and lines into a fresh migrated database: "
                 f"{sum(db['load_s'].values()):.1f} s ("
                 + ", ".join(f"{k} {v:.1f} s" for k, v in db["load_s"].items()) + ").\n")
        L.append("| step | s | peak RSS (bench process) |\n|---|---|---|")
        L.append(f"| `make_run` (atoms cut and stored with COPY, crosswalks, compute, store) | "
                 f"{run['make_run']['s']:.2f} | {fmt_mb(run['make_run']['peak_rss_bytes'])} |")
        for label, s in run["make_run_steps_s"].items():
            L.append(f"| &nbsp;&nbsp;{label} | {s:.2f} | |")
        L.append(f"| `publish` | {run['publish']['s']:.2f} | "
                 f"{fmt_mb(run['publish']['peak_rss_bytes'])} |")
        sb = run["stored_bytes"]
        L.append(f"\nStored bytes of the run ({run['atoms_stored']:,} atoms in the database): "
                 + ", ".join(f"{k} {v:,}" for k, v in sb.items() if k != "total")
                 + f"; **total {sb['total']:,} bytes ({fmt_mb(sb['total'])})**. "
                 f"Conservation: {run['conservation'].get('allocated_pence', 0):,} of "
                 f"{run['conservation'].get('total_pence', 0):,} pence allocated.\n")

    nb = res.get("neighbourhoods", {})
    L.append("\n## 3. POST /neighbourhoods/budget\n")
    L.append(f"In-process (FastAPI TestClient, the app's own pool), {res['args']['requests']} "
             f"random hexagons after {res['args']['warmup']} warm-ups, each sized so the median "
             f"one touches about {res['args']['zones_per_polygon']} zones, sent as lon/lat "
             "GeoJSON. Server time is the app's `Server-Timing: app;dur=` header.\n")
    L.append("| layer | requests | zones touched (median) | atoms touched (median) | hexagon "
             "radius | server median ms | server p95 ms | client median ms |")
    L.append("|---|---|---|---|---|---|---|---|")
    for key in ("london", "national"):
        r = nb.get(key)
        if not r:
            continue
        if "error" in r:
            L.append(f"| {key} | failed: {r['error'][:200]} | | | | | | |")
            continue
        L.append(f"| {key} | {r['requests']} | {r['zones_touched_median']:.0f} | "
                 f"{r['atoms_touched_median']:.0f} | {r['hexagon_radius_m']:,.0f} m | "
                 f"{r['server_ms_median']:.1f} | {r['server_ms_p95']:.1f} | "
                 f"{r['client_ms_median']:.1f} |")
    L.append(f"\nWhole benchmark: {res['wall_s']:.0f} s; bench process peak RSS "
             f"{fmt_mb(res['process_peak_rss_bytes'])}.\n")
    if res.get("notes"):
        L.append("## Notes\n")
        L.extend(f"- {n}" for n in res["notes"])
        L.append("")
    path.write_text("\n".join(L) + "\n")


# ---------------------------------------------------------------------------------- main


def random_lines_for(geo: synthetic.Synthetic, n: int, seed: int) -> pd.DataFrame:
    """``n`` lines from ``bench.lines.random_lines`` over the 300 agency areas (10 bodies, 10
    functions, the three proxies; amounts from 1p to ~1e10p, one in twenty negative)."""
    from bench.lines import random_lines

    return random_lines(n, [(AGENCY_SET, c) for c in geo.agencies["code"]], seed=seed)


def wait_for_lines_module(timeout_s: float) -> None:
    """bench/lines.py is being written by a colleague: wait for it to appear and import."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            import bench.lines  # noqa: F401

            return
        except ImportError:
            if time.monotonic() > deadline:
                raise
            say("waiting for bench/lines.py (random_lines) ...")
            time.sleep(30)


def cached_300(geo: synthetic.Synthetic, built: Built, lines: pd.DataFrame,
               scratch: pipeline.Publication, args: argparse.Namespace) -> dict[str, Any]:
    """compute + publish on built atoms and crosswalks, the 300 lines (at least 5 repeats)."""
    runs = []
    for _ in range(max(args.repeats, 5)):
        facts, (run, pub) = measure(lambda: placespend_apportion(geo, built, lines))
        runs.append(facts)
    return {
        "label": "Placespend, cached atoms/crosswalks, 300 lines (compute + publish)",
        "time": summary(runs),
        "exactness": exactness(lines, run, pub, ward_codes(geo)),
        "identical_to_scratch": bool(pub.target_alloc.equals(scratch.target_alloc)),
    }


def cached_many(geo: synthetic.Synthetic, built: Built, args: argparse.Namespace
                ) -> dict[str, Any]:
    """compute + publish of ``--many-lines`` lines from ``bench.lines.random_lines``."""
    wait_for_lines_module(args.wait_for_lines)
    say(f"cached: {args.many_lines:,} lines from bench.lines.random_lines (made untimed)")
    t = time.perf_counter()
    many = random_lines_for(geo, args.many_lines, args.seed)
    made_s = time.perf_counter() - t
    sets = sorted(set(many["area_set"]))
    steps: list[dict[str, float]] = []
    runs = []
    for i in range(args.repeats):
        times: dict[str, float] = {}
        step = lambda times=times: placespend_apportion(geo, built, many, times)  # noqa: E731
        facts, (run, pub) = measure(step)
        runs.append(facts)
        steps.append(times)
        say(f"  {args.many_lines:,} lines run {i + 1}/{args.repeats}: {facts['s']:.2f} s, peak "
            f"RSS {fmt_mb(facts['peak_rss_bytes'])} (+{fmt_mb(facts['rss_delta_bytes'])})")
    return {
        "label": f"Placespend, cached atoms/crosswalks, {args.many_lines:,} lines "
                 "(compute + publish)",
        "time": summary(runs),
        "lines": len(many),
        "areas": ", ".join(f"{int((many['area_set'] == s).sum()):,} over {s}" for s in sets),
        "made_s": made_s,
        "breakdown_median_s": {k: statistics.median(s[k] for s in steps) for k in steps[0]},
        "product_rows": len(run.apportionment.product),
        "slices": len(run.apportionment.slices),
        "exactness": exactness(many, run, pub, ward_codes(geo)),
    }


def memory_probe(seed: int) -> int:
    """Child of :func:`scratch_memory`: read the layer, make the run from scratch once, print
    the process' peak RSS as JSON."""
    geo = synthetic.national_cached(CACHE, seed=seed)
    lines = agency_lines(geo, seed)
    after_layer = _status_bytes("VmRSS")
    t = time.perf_counter()
    placespend_scratch(geo, lines, {})
    print(json.dumps({"s": time.perf_counter() - t, "rss_after_layer_bytes": after_layer,
                      "peak_rss_bytes": _status_bytes("VmHWM")}))
    return 0


def scratch_memory(seed: int) -> dict[str, Any]:
    """Peak RSS of a fresh process that reads the layer and makes the national run from scratch
    (atoms, crosswalks, compute, publish) once: the whole run's memory, nothing else's."""
    done = subprocess.run([sys.executable, "-m", "bench.national", "--memory-probe", "--seed",
                           str(seed)], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed: {done.stderr[-1000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per method")
    ap.add_argument("--postgis-repeats", type=int, default=None,
                    help="repeats of the PostGIS query (default: --repeats)")
    ap.add_argument("--overlay-repeats", type=int, default=None,
                    help="repeats of the two-overlay pipeline (default: --repeats)")
    ap.add_argument("--many-lines", type=int, default=1_000_000,
                    help="lines for the large cached run (0: skip)")
    ap.add_argument("--requests", type=int, default=60, help="budget requests per layer")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--zones-per-polygon", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1, help="seed of the layer and the lines")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--skip-database", action="store_true")
    ap.add_argument("--wait-for-lines", type=float, default=900,
                    help="seconds to wait for bench/lines.py to appear")
    ap.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        return memory_probe(args.seed)
    started = time.perf_counter()

    res: dict[str, Any] = {"args": vars(args), "machine": machine_facts(),
                           "versions": library_versions(), "notes": []}
    say(f"machine: {res['machine']['nproc']} cores, {res['machine']['cpu_model']}")
    say("reading the synthetic national layer (generated once into bench/out/)")
    t = time.perf_counter()
    geo = synthetic.national_cached(CACHE, seed=args.seed)
    layer_s = time.perf_counter() - t
    lines = agency_lines(geo, args.seed)
    wards = ward_codes(geo)
    a: dict[str, Any] = {
        "data": {"zones": len(geo.zones), "wards": len(geo.wards),
                 "agencies": len(geo.agencies), "proxy_values": len(geo.proxy_values),
                 "lines": len(lines), "total_pence": int(lines["amount_pence"].sum()),
                 "layer_read_s": layer_s},
        "methods": {},
    }
    res["apportionment"] = a
    methods = a["methods"]
    say(f"{len(geo.zones):,} zones, {len(geo.wards):,} wards, {len(geo.agencies)} agencies, "
        f"{len(lines)} lines ({a['data']['total_pence']:,} pence)")

    url = None
    if not args.skip_database:
        try:
            from store import cluster
            from store.db import connect
            from store.migrate import migrate

            say("database: a fresh migrated database; loading the layer (timed)")
            url = cluster.fresh_database(DB_NAME)
            with connect(url) as conn:
                migrate(conn)
            res["versions"] |= db_versions(url)
            res["database"] = {"load_s": load_national(url, geo, lines)}
            if not args.skip_peers:
                say("database: scratch tables for the PostGIS peer (not timed)")
                postgis_load(url, geo, lines)
        except Exception as exc:  # noqa: BLE001 - recorded in the results instead
            res["database"] = {"error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc()
            url = None

    # 1. Alternating: Placespend from scratch, tobler, two overlays, PostGIS.
    steps: list[dict[str, float]] = []
    kept: dict[str, Any] = {}

    def scratch() -> Any:
        times: dict[str, float] = {}
        out = placespend_scratch(geo, lines, times)
        steps.append(times)
        return out

    plan: list[tuple[str, str, Callable[[], Any], int]] = [
        ("placespend_scratch", "Placespend, from scratch (atoms + crosswalks + compute + "
         "publish)", scratch, args.repeats)]
    if not args.skip_peers:
        plan += [
            ("tobler", f"tobler {res['versions'].get('tobler')} area_interpolate (300 "
             "variables, zones to agencies by point-on-surface)",
             lambda: tobler_run(geo, lines), args.repeats),
            ("geopandas_overlay", f"geopandas {res['versions'].get('geopandas')} two overlays",
             lambda: overlay_run(geo, lines), args.overlay_repeats or args.repeats),
        ]
        if url is not None:
            plan.append(("postgis_sql", f"PostGIS {res['versions'].get('PostGIS')} one SQL "
                         "query (GiST)", lambda: postgis_run(url),
                         args.postgis_repeats or args.repeats))
    timings: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in plan}
    errors: dict[str, str] = {}
    for rep in range(max(n for *_, n in plan)):
        for key, _, fn, n in plan:
            if rep >= n or key in errors:
                continue
            try:
                facts, kept[key] = measure(fn)
            except Exception as exc:  # noqa: BLE001
                errors[key] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
                continue
            timings[key].append(facts)
            say(f"  {key} run {rep + 1}/{n}: {facts['s']:.2f} s, peak RSS "
                f"{fmt_mb(facts['peak_rss_bytes'])}")
    for key, label, _, _ in plan:
        methods[key] = ({"label": label, "error": errors[key]} if key in errors
                        else {"label": label, "time": summary(timings[key])})

    built, run, pub = kept["placespend_scratch"]
    exact = ward_totals(pub, wards)
    methods["placespend_scratch"] |= {
        "breakdown_median_s": {k: statistics.median(s[k] for s in steps) for k in steps[0]},
        "atoms": len(built.atoms),
        "agency_crosswalk_rows": len(built.membership),
        "product_rows": len(run.apportionment.product),
        "exactness": exactness(lines, run, pub, wards),
    }
    say("peak memory of the run from scratch, in a fresh process")
    try:
        methods["placespend_scratch"]["fresh_process_memory"] = scratch_memory(args.seed)
    except Exception as exc:  # noqa: BLE001
        methods["placespend_scratch"]["fresh_process_memory"] = {
            "error": f"{type(exc).__name__}: {exc}"}
    say("line_spread on a sample of lines (not timed)")
    a["line_spread_sample"] = line_spread_sample(geo, built, lines, run, 20, args.seed)
    for key in ("tobler", "geopandas_overlay", "postgis_sql"):
        if key in kept and "error" not in methods.get(key, {}):
            methods[key]["agreement"] = agreement(exact, kept[key])
    kept.clear()

    # 1b. Cached atoms and crosswalks: 300 lines, then many.
    built = cache_atoms(geo, built)
    say("cached: compute + publish, 300 lines")
    methods["placespend_cached_300"] = cached_300(geo, built, lines, pub, args)
    say(f"  median {methods['placespend_cached_300']['time']['median_s']:.3f} s")
    del run, pub
    if args.many_lines:
        try:
            methods["placespend_cached_1m"] = cached_many(geo, built, args)
        except Exception as exc:  # noqa: BLE001
            methods["placespend_cached_1m"] = {
                "label": f"Placespend, cached, {args.many_lines:,} lines",
                "error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc()
    del built
    gc.collect()

    # 2. The same through the database; 3. the neighbourhood endpoint.
    res["neighbourhoods"] = {}
    if url is not None:
        try:
            say("database: make_run + publish of the national run")
            res["database"]["run"] = national_run_in_db(url)
            r = res["database"]["run"]
            say(f"  make_run {r['make_run']['s']:.1f} s, publish {r['publish']['s']:.1f} s, "
                f"stored {r['stored_bytes']['total']:,} bytes")
            say("neighbourhoods: national layer")
            res["neighbourhoods"]["national"] = neighbourhoods_national(url, geo, args)
        except Exception as exc:  # noqa: BLE001
            res["database"]["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        try:
            say("neighbourhoods: London demo (load, run, publish, then requests)")
            res["neighbourhoods"]["london"] = neighbourhoods_london(args)
        except Exception as exc:  # noqa: BLE001
            res["neighbourhoods"]["london"] = {"error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc()

    res["wall_s"] = time.perf_counter() - started
    res["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    res["process_peak_rss_bytes"] = process_peak_rss()
    res["targets"] = targets(res)
    res["notes"] = notes(res)
    save_results(res, "national", write_markdown)
    return 0


def notes(res: dict[str, Any]) -> list[str]:
    m = res["apportionment"]["methods"]
    out = ["Every method is given the same 300 lines. tobler needs each line spread over zones "
           "first, and zones do not nest in agency areas, so each zone goes to the agency its "
           "point-on-surface lies in (timed with tobler). That rule, not float error, is why "
           "tobler's ward totals differ from Placespend's far more than the two overlays' or "
           "the SQL query's: a zone that straddles an agency edge takes all its residents' "
           "share of the line to one agency. The two overlays and the SQL query cut zones by "
           "the real agency boundaries, as Placespend does."]
    for key in ("tobler", "geopandas_overlay", "postgis_sql"):
        ag = m.get(key, {}).get("agreement")
        if ag:
            drift = ag["method_total_pence"] - ag["exact_total_pence"]
            out.append(f"{m[key]['label']}: float pence; all wards together hold "
                       f"{drift:+,.1f} pence against the lines' total (before any rounding).")
    for key in ("placespend_scratch", "placespend_cached_300", "placespend_cached_1m"):
        ex = m.get(key, {}).get("exactness")
        if ex and not ex["exact"]:
            out.append(f"**{m[key]['label']}: NOT exact**: {ex}")
    ov = m.get("geopandas_overlay", {}).get("agreement")
    if ov and ov["max_rel_diff"] > 1e-6:
        out.append(f"Placespend and the two-overlay pipeline differ by more than 1e-6 relative "
                   f"in {ov['wards_over_1e-6_rel']} wards (worst {ov['worst_ward']}: "
                   f"{ov['max_rel_diff']:.2e}).")
    for key, label in (("overlay_repeats", "two-overlay pipeline"),
                       ("postgis_repeats", "PostGIS query")):
        n = res["args"].get(key)
        if n and n < res["args"]["repeats"]:
            out.append(f"The {label} ran {n} time(s), fewer than the others, to keep the run "
                       "short.")
    return out


if __name__ == "__main__":
    sys.exit(main())
