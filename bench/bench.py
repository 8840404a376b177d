"""Placespend against its peers, in one run, on the real embedded London data.

Run through ``bash bench/run london`` (which builds ``bench/.venv`` with the peers). Writes
``bench/results/london.json`` (every figure) and ``bench/results/london.md`` (the tables). See
bench/README.md; the national benchmark on a synthetic geography is ``bench/national.py``.

1. Apportionment LSOA -> London wards 2014 of the 2014-15 spend lines (GLA over London, Hackney
   over Hackney), population-weighted with the proxy each line is given by the default proxy
   table: Placespend (from scratch: atoms + crosswalks + ``allocation.pipeline`` compute and
   publish; and with cached atoms/crosswalks), tobler ``area_interpolate``, two geopandas
   overlays by hand, and one PostGIS query. Wall time, ratio to Placespend, and conservation
   (do each line's ward pence add back to the line, to the penny?).
2. Serving the 630 ward features as GeoJSON: the Placespend API (uvicorn, one worker) against
   tipg on a view of the same rows, and geopandas ``to_json`` of the same frame.

No assertion is timed; every figure is written down, whatever it is.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import importlib.metadata
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT))

from allocation import pipeline  # noqa: E402
from allocation.apportion import choose_proxies, line_spread  # noqa: E402
from boundaries import catalog  # noqa: E402
from geo.atoms import build_atoms  # noqa: E402
from geo.crosswalk import build_crosswalk_via_cuts, nested_crosswalk  # noqa: E402
from intake.reference import read_proxy_table  # noqa: E402
from intake.spend import SpendOptions, read_spend  # noqa: E402
from placespend.load import embedded_boundaries  # noqa: E402

YEAR = "2014-15"
ZONE_SET = "london-lsoa-2011"
WARD_SET = "london-wards-2014"
COLLECTION = f"{WARD_SET}-spend-{YEAR}"
DB_NAME = "placespend_bench"
T0 = time.perf_counter()


def save_results(res: dict[str, Any], name: str,
                 write_markdown: Callable[[dict[str, Any], Path], None]) -> None:
    """Write ``bench/results/<name>.json`` (every figure) and ``<name>.md``, then print the md."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    write_markdown(res, RESULTS / f"{name}.md")
    say(f"wrote bench/results/{name}.md and bench/results/{name}.json")
    print((RESULTS / f"{name}.md").read_text())


def say(msg: str) -> None:
    print(f"[bench {time.perf_counter() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any], repeats: int, label: str) -> tuple[dict[str, Any], Any]:
    """Run ``fn`` ``repeats`` times; return min/median/all wall times and the last result."""
    times: list[float] = []
    result = None
    for i in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
        say(f"  {label} run {i + 1}/{repeats}: {times[-1]:.3f} s")
    return {"min_s": min(times), "median_s": statistics.median(times), "runs_s": times}, result


# ---------------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    wards: gpd.GeoDataFrame  # code, name, parent_code, geometry (EPSG:27700)
    lsoas: gpd.GeoDataFrame  # code, name, parent_code (LAD11CD), geometry
    area_sets: dict[str, gpd.GeoDataFrame]  # reporting-area sets (boroughs, region)
    area_kind: dict[str, str]  # slug -> borough / region
    lines: pd.DataFrame  # line_id, body, line, amount_pence, area_set, area_code, proxy
    proxy_long: pd.DataFrame  # proxy, unit_code, value
    proxy_wide: pd.DataFrame  # index LSOA code, one column per proxy


#: The bodies the London benchmark apportions: Hackney and the GLA (the lines the peers were
#: first measured on; the demo itself carries all 34 London bodies).
BODIES = ("hackney", "gla")
AREA_SET_OF = {"gla": "london-region-2014"}  # every other body reports for its borough


def load_inputs() -> Inputs:
    """Read and normalise the embedded data as ``placespend load embedded`` does (not timed)."""
    wards = embedded_boundaries(WARD_SET)
    lsoas = embedded_boundaries(ZONE_SET)
    area_kind = {"london-boroughs-2014": "borough", "london-region-2014": "region"}
    area_sets = {slug: embedded_boundaries(slug) for slug in area_kind}

    spend_item = next(e for e in catalog.EMBEDDED if e.kind == "spend")
    mapping = pd.read_csv(catalog.DATA_DIR / "rs_line_cofog.csv", dtype=str)
    division = dict(zip(mapping["line"], mapping["cofog_division"], strict=True))
    read = read_spend(catalog.DATA_DIR / spend_item.path, source=spend_item.path,
                      options=SpendOptions(format="rs"), function_maps={"rs": division})
    lines = read.lines
    lines = lines[(lines["financial_year"] == YEAR) & lines["body"].isin(BODIES)]
    lines = lines.reset_index(drop=True)
    lines["cofog_code"] = lines["function"].map(division)
    lines["area_set"] = lines["body"].map(AREA_SET_OF).fillna("london-boroughs-2014")
    lines["area_code"] = np.where(lines["body"] == "gla", "E12000007", lines["area_code"])
    lines = lines[["body", "line", "cofog_code", "amount_pence", "area_set", "area_code",
                   "source_row"]]
    lines.insert(0, "line_id", np.arange(1, len(lines) + 1, dtype=np.int64))
    table = read_proxy_table(catalog.path(catalog.DEFAULT_PROXIES_PATH))
    lines["proxy"] = choose_proxies(lines, table)

    proxy_long = pd.concat([
        read_proxy_csv(e) for e in catalog.EMBEDDED if e.kind == "proxy"], ignore_index=True)
    proxy_wide = proxy_long.pivot(index="unit_code", columns="proxy", values="value")
    return Inputs(wards, lsoas, area_sets, area_kind, lines, proxy_long, proxy_wide)


def read_proxy_csv(item: catalog.Embedded) -> pd.DataFrame:
    """One embedded proxy as proxy, unit_code, value (the load path checks it; this reads it)."""
    raw = pd.read_csv(catalog.DATA_DIR / item.path, dtype={item.options["code_field"]: str})
    return pd.DataFrame({"proxy": item.options["slug"],
                         "unit_code": raw[item.options["code_field"]],
                         "value": raw[item.options["value_field"]].astype("float64")})


def lsoa_in_area(inp: Inputs, area_set: str, area_code: str) -> np.ndarray:
    """Which LSOAs a peer spreads a line over: by the LSOA's borough code (LSOAs nest in LADs)."""
    kind = inp.area_kind[area_set]
    if kind == "region":
        return np.ones(len(inp.lsoas), dtype=bool)
    if kind == "borough":
        return (inp.lsoas["parent_code"].to_numpy() == area_code)
    raise ValueError(f"no rule for reporting areas of kind {kind}")


def lsoa_line_values(inp: Inputs) -> pd.DataFrame:
    """Each line's pence spread over LSOAs by its proxy (float64): the peers' extensive input."""
    cols = {}
    for row in inp.lines.itertuples(index=False):
        p = inp.proxy_wide[row.proxy].reindex(inp.lsoas["code"]).fillna(0.0).to_numpy()
        w = p * lsoa_in_area(inp, row.area_set, row.area_code)
        cols[f"l{row.line_id}"] = (
            row.amount_pence * w / w.sum() if w.sum() > 0 else np.zeros(len(w))
        )
    return pd.DataFrame(cols, index=inp.lsoas.index)


# ---------------------------------------------------------------------------------- methods


def placespend_build(inp: Inputs) -> dict[str, Any]:
    """Atoms (LSOA x ward) and the crosswalks a run needs, as ``placespend.runs`` builds them."""
    t = time.perf_counter()
    atoms = build_atoms(inp.lsoas, inp.wards)
    t_atoms = time.perf_counter() - t
    t = time.perf_counter()
    membership = pd.concat(
        [
            build_crosswalk_via_cuts(atoms, inp.wards, inp.area_sets[s]).assign(set=s)
            for s in sorted(set(inp.lines["area_set"]))
        ],
        ignore_index=True,
    ).rename(columns={"target_code": "code"})
    ward_xw = nested_crosswalk(atoms)
    t_xw = time.perf_counter() - t
    return {"atoms": atoms, "membership": membership, "ward_xw": ward_xw,
            "t_atoms": t_atoms, "t_crosswalks": t_xw}


def placespend_inputs(inp: Inputs, built: dict[str, Any]) -> pipeline.Inputs:
    return pipeline.Inputs(inp.lines, built["atoms"], inp.proxy_long, built["membership"],
                           WARD_SET)


def placespend_apportion(
    inp: Inputs, built: dict[str, Any], times: dict[str, float] | None = None
) -> tuple[pipeline.Run, pipeline.Publication]:
    """Lines -> atoms (``pipeline.compute``) -> wards (``pipeline.publish``), exact pence."""
    t = time.perf_counter()
    run = pipeline.compute(placespend_inputs(inp, built))
    t_compute = time.perf_counter() - t
    pub = pipeline.publish(run, WARD_SET, built["ward_xw"], inp.wards[["code", "name"]],
                           sorted(set(inp.lines["body"])))
    if times is not None:
        times |= {"compute": t_compute, "publish": time.perf_counter() - t - t_compute}
    return run, pub


def tobler_table(source: gpd.GeoDataFrame, target: gpd.GeoDataFrame, dtype: Any) -> Any:
    """tobler's own area table (``_area_tables_binning``), with a chosen dtype."""
    from scipy.sparse import coo_matrix

    ids_tgt, ids_src = source.sindex.query(target.geometry, predicate="intersects")
    areas = source.geometry.values[ids_src].intersection(target.geometry.values[ids_tgt]).area
    return coo_matrix((areas, (ids_src, ids_tgt)), shape=(len(source), len(target)),
                      dtype=dtype).tocsr()


def tobler_run(inp: Inputs, table: Any = None) -> pd.DataFrame:
    """tobler area_interpolate of every line's LSOA pence to wards (float pence)."""
    from tobler.area_weighted import area_interpolate

    values = lsoa_line_values(inp)
    source = gpd.GeoDataFrame(values, geometry=inp.lsoas.geometry.to_numpy(), crs=inp.lsoas.crs)
    target = inp.wards[["code", "geometry"]]
    out = area_interpolate(source, target, extensive_variables=list(values.columns),
                           allocate_total=True, table=table)
    if out is None:
        raise RuntimeError("tobler area_interpolate returned None (CRS mismatch?)")
    out.index = inp.wards["code"].to_numpy()
    return out[list(values.columns)]


def overlay_run(inp: Inputs) -> pd.DataFrame:
    """Two geopandas overlays by hand: (LSOA x reporting area) x ward, population weights."""
    boroughs = next(f for s, f in inp.area_sets.items() if inp.area_kind[s] == "borough")
    z = inp.lsoas[["code", "geometry"]].rename(columns={"code": "lsoa"})
    z["zone_area"] = z.geometry.area
    b = boroughs[["code", "geometry"]].rename(columns={"code": "borough"})
    w = inp.wards[["code", "geometry"]].rename(columns={"code": "ward"})
    p1 = gpd.overlay(z, b, how="intersection", keep_geom_type=True)
    p2 = gpd.overlay(p1, w, how="intersection", keep_geom_type=True)
    share = (p2.geometry.area / p2["zone_area"]).to_numpy()
    proxies = inp.proxy_wide.reindex(p2["lsoa"]).fillna(0.0)
    cols = {}
    for row in inp.lines.itertuples(index=False):
        if inp.area_kind[row.area_set] == "region":
            inside = np.ones(len(p2), dtype=bool)
        else:
            inside = (p2["borough"] == row.area_code).to_numpy()
        weight = proxies[row.proxy].to_numpy() * share * inside
        total = weight.sum()
        cols[f"l{row.line_id}"] = row.amount_pence * weight / total if total > 0 else weight * 0
    pence = pd.DataFrame(cols)
    pence["ward"] = p2["ward"].to_numpy()
    return pence.groupby("ward").sum()


POSTGIS_SQL = """
WITH pieces AS (
    SELECT z.code AS lsoa, w.code AS ward, ST_Area(ST_Intersection(z.geom, w.geom)) AS a
      FROM bench.lsoa z JOIN bench.ward w ON ST_Intersects(z.geom, w.geom)
), share AS (
    SELECT lsoa, ward, a / nullif(sum(a) OVER (PARTITION BY lsoa), 0) AS s FROM pieces
), spread AS (
    SELECT l.line_id, z.code AS lsoa,
           l.amount_pence * p.value / nullif(sum(p.value) OVER (PARTITION BY l.line_id), 0) AS v
      FROM bench.line l
      JOIN bench.lsoa z ON l.area_lad IS NULL OR z.lad = l.area_lad
      JOIN bench.lsoa_proxy p ON p.code = z.code AND p.proxy = l.proxy
)
SELECT sp.line_id, sh.ward, sum(sp.v * sh.s) AS pence
  FROM spread sp JOIN share sh USING (lsoa)
 GROUP BY sp.line_id, sh.ward
"""


def postgis_load(url: str, inp: Inputs) -> None:
    """Scratch tables for the plain-SQL peer, in schema ``bench`` of the bench database."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
        conn.execute("CREATE SCHEMA bench")
        conn.execute("CREATE TABLE bench.lsoa (code text PRIMARY KEY, lad text NOT NULL,"
                     " geom geometry(MultiPolygon, 27700) NOT NULL)")
        conn.execute("CREATE TABLE bench.ward (code text PRIMARY KEY,"
                     " geom geometry(MultiPolygon, 27700) NOT NULL)")
        conn.execute("CREATE TABLE bench.lsoa_proxy (code text, proxy text, value float8,"
                     " PRIMARY KEY (code, proxy))")
        conn.execute("CREATE TABLE bench.line (line_id bigint PRIMARY KEY,"
                     " amount_pence bigint NOT NULL, area_lad text, proxy text NOT NULL)")

        def hexwkb(geoms: np.ndarray) -> list[str]:
            return list(shapely.to_wkb(shapely.set_srid(geoms, 27700), hex=True,
                                       include_srid=True))

        with conn.cursor().copy("COPY bench.lsoa (code, lad, geom) FROM STDIN") as cp:
            for row in zip(inp.lsoas["code"], inp.lsoas["parent_code"],
                           hexwkb(inp.lsoas.geometry.to_numpy()), strict=True):
                cp.write_row(row)
        with conn.cursor().copy("COPY bench.ward (code, geom) FROM STDIN") as cp:
            for row in zip(inp.wards["code"], hexwkb(inp.wards.geometry.to_numpy()),
                           strict=True):
                cp.write_row(row)
        with conn.cursor().copy("COPY bench.lsoa_proxy (code, proxy, value) FROM STDIN") as cp:
            for row in inp.proxy_long[["unit_code", "proxy", "value"]].itertuples(index=False):
                cp.write_row(tuple(row))
        with conn.cursor().copy(
            "COPY bench.line (line_id, amount_pence, area_lad, proxy) FROM STDIN"
        ) as cp:
            for row in inp.lines.itertuples(index=False):
                lad = None if inp.area_kind[row.area_set] == "region" else row.area_code
                cp.write_row((int(row.line_id), int(row.amount_pence), lad, row.proxy))
        conn.execute("CREATE INDEX ON bench.lsoa USING gist (geom)")
        conn.execute("CREATE INDEX ON bench.ward USING gist (geom)")
        conn.execute("ANALYZE bench.lsoa; ANALYZE bench.ward; ANALYZE bench.lsoa_proxy;"
                     " ANALYZE bench.line")


def postgis_run(url: str) -> pd.DataFrame:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(POSTGIS_SQL).fetchall()
    frame = pd.DataFrame(rows, columns=["line_id", "ward", "pence"])
    frame["pence"] = frame["pence"].astype(float)
    wide = frame.pivot(index="ward", columns="line_id", values="pence")
    wide.columns = [f"l{c}" for c in wide.columns]
    return wide


# ---------------------------------------------------------------------------------- checks


def as_matrix(inp: Inputs, frame: pd.DataFrame) -> pd.DataFrame:
    """Wards (all 630, in code order) x lines (l1..ln), missing cells 0."""
    cols = [f"l{i}" for i in inp.lines["line_id"]]
    return frame.reindex(index=sorted(inp.wards["code"]), columns=cols).fillna(0)


def placespend_matrix(inp: Inputs, built: dict[str, Any], run: pipeline.Run) -> pd.DataFrame:
    """Wards x lines of Placespend's exact pence: each line's spread over the atoms as the run
    placed it (``allocation.apportion.line_spread``), summed per ward (atoms nest in the ward
    they were cut by). The run itself stores pence per (atom, body, function, method)."""
    ins = placespend_inputs(inp, built)
    ward_of = built["atoms"].set_index("atom_id")["cut_code"]
    cols = {}
    for line_id in inp.lines["line_id"]:
        spread = line_spread(ins.lines, ins.atoms, run.proxies, ins.membership,
                             cut_set=ins.cut_set, line_id=int(line_id))
        wards = ward_of.reindex(spread["atom_id"]).to_numpy()
        cols[f"l{line_id}"] = spread["amount_pence"].groupby(wards).sum()
    return as_matrix(inp, pd.DataFrame(cols)).astype(np.int64)


def ward_totals(pub: pipeline.Publication) -> pd.Series:
    """A publication's pence per ward (int64), from its (target, slice) table."""
    return pub.target_alloc.groupby("target_code")["amount_pence"].sum().astype(np.int64)


def outcome_check(run: pipeline.Run) -> dict[str, Any]:
    """The run's own account of every line: allocated in full, or short with a reason."""
    o = run.report.lines
    short = (o["allocated_pence"] != o["amount_pence"]).to_numpy()
    reason = o["reason"].notna().to_numpy()
    return {
        "lines": int(len(o)),
        "lines_allocated_in_full": int((~short).sum()),
        "lines_short_with_reason": int((short & reason).sum()),
        "lines_short_without_reason": int((short & ~reason).sum()),
        "unallocated_pence": int(run.report.unallocated_pence),
        "exact": bool(not (short & ~reason).any()),
    }


def assess(inp: Inputs, pence: pd.DataFrame, exact: pd.DataFrame | None) -> dict[str, Any]:
    """Conservation (rounded to whole pence per line and ward) and difference from Placespend."""
    amounts = inp.lines.set_index("line_id")["amount_pence"]
    amounts.index = [f"l{i}" for i in amounts.index]
    is_int = pd.api.types.is_integer_dtype(pence.dtypes.iloc[0]) and all(
        pd.api.types.is_integer_dtype(t) for t in pence.dtypes
    )
    rounded = pence.astype(np.int64) if is_int else np.rint(pence).astype(np.int64)
    line_sums = rounded.sum(axis=0)
    drift = line_sums - amounts
    float_drift = pence.astype(float).sum(axis=0) - amounts
    out: dict[str, Any] = {
        "integer_pence_output": bool(is_int),
        "lines": int(len(amounts)),
        "lines_exact": int((drift == 0).sum()),
        "lines_off": int((drift != 0).sum()),
        "line_max_abs_drift_pence": int(drift.abs().max()),
        "total_pence": int(line_sums.sum()),
        "total_drift_pence": int(line_sums.sum() - amounts.sum()),
        "unrounded_line_max_abs_drift_pence": float(float_drift.abs().max()),
        "exact": bool((drift == 0).all()),
    }
    if exact is not None:
        ward_diff = rounded.sum(axis=1) - exact.sum(axis=1)
        cell_diff = (rounded - exact).abs()
        out |= {
            "ward_total_max_abs_diff_pence": int(ward_diff.abs().max()),
            "ward_total_sum_abs_diff_pence": int(ward_diff.abs().sum()),
            "wards_differing": int((ward_diff != 0).sum()),
            "cell_max_abs_diff_pence": int(cell_diff.to_numpy().max()),
            "cells_differing": int((cell_diff.to_numpy() != 0).sum()),
            "ward_total_max_abs_diff_pence_by_body": {},
        }
        # Pence of lines reported for a borough that land in wards of another borough.
        ward_borough = inp.wards.set_index("code")["parent_code"].reindex(rounded.index)
        leaked, leaked_wards = 0, set()
        for row in inp.lines.itertuples(index=False):
            if inp.area_kind[row.area_set] != "borough":
                continue
            col = rounded[f"l{row.line_id}"]
            away = (ward_borough != row.area_code).to_numpy() & (col != 0).to_numpy()
            leaked += int(col[away].sum())
            leaked_wards |= set(col.index[away])
        out["borough_lines_pence_outside_borough"] = leaked
        out["borough_lines_wards_outside_borough"] = len(leaked_wards)
        for body, ids in inp.lines.groupby("body")["line_id"]:
            cols = [f"l{i}" for i in ids]
            d = rounded[cols].sum(axis=1) - exact[cols].sum(axis=1)
            out["ward_total_max_abs_diff_pence_by_body"][body] = int(d.abs().max())
    return out


# ---------------------------------------------------------------------------------- serving


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(argv: list[str], env: dict[str, str], probe: str, log: Path) -> subprocess.Popen:
    """Start a server process and wait (<= 90 s) until ``probe`` answers 200."""
    import httpx

    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log: "
                               + log.read_text()[-1500:])
        try:
            if httpx.get(probe, timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError(f"server did not answer {probe} within 90 s; log: "
                       + log.read_text()[-1500:])


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def load_test(url: str, sequential: int, connections: int, per_conn: int) -> dict[str, Any]:
    """Bounded request loops: ``sequential`` requests on one connection, then ``connections``
    connections doing ``per_conn`` each. Bodies are asked for uncompressed."""
    import httpx

    headers = {"Accept-Encoding": "identity"}
    with httpx.Client(headers=headers, timeout=60) as client:
        first = client.get(url)
        first.raise_for_status()
        body = first.json()
        size = len(first.content)
        for _ in range(2):
            client.get(url).raise_for_status()
        lat: list[float] = []
        t = time.perf_counter()
        for _ in range(sequential):
            s = time.perf_counter()
            r = client.get(url)
            r.raise_for_status()
            _ = r.content
            lat.append(time.perf_counter() - s)
        wall = time.perf_counter() - t

    def worker(_: int) -> list[float]:
        out = []
        with httpx.Client(headers=headers, timeout=60) as c:
            for _ in range(per_conn):
                s = time.perf_counter()
                r = c.get(url)
                r.raise_for_status()
                out.append(time.perf_counter() - s)
        return out

    clat: list[float] = []
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        for got in pool.map(worker, range(connections)):
            clat.extend(got)
    cwall = time.perf_counter() - t
    return {
        "url": url,
        "features": len(body.get("features", [])),
        "content_type": first.headers.get("content-type"),
        "response_bytes": size,
        "sequential": {"requests": sequential, "req_per_s": sequential / wall,
                       "p50_ms": percentile(lat, 50) * 1000, "p95_ms": percentile(lat, 95) * 1000},
        "concurrent": {"connections": connections, "requests": len(clat),
                       "req_per_s": len(clat) / cwall,
                       "p50_ms": percentile(clat, 50) * 1000,
                       "p95_ms": percentile(clat, 95) * 1000},
        "sample_properties": sorted((body.get("features") or [{}])[0].get("properties", {}))[:8],
        "sample_coordinate": _first_coord(body),
    }


def _first_coord(body: dict[str, Any]) -> Any:
    try:
        c = body["features"][0]["geometry"]["coordinates"]
        while isinstance(c[0], list):
            c = c[0]
        return c
    except (KeyError, IndexError, TypeError):
        return None


def prepare_database(inp: Inputs) -> str:
    """A fresh bench database: migrated, embedded data loaded, the 2014-15 run published."""
    from placespend.load import load_embedded
    from placespend.runs import RunRequest, make_run, publish
    from store import cluster
    from store.db import connect
    from store.migrate import migrate

    url = cluster.fresh_database(DB_NAME)
    with connect(url) as conn:
        migrate(conn)
        load_embedded(conn)
        result = make_run(conn, RunRequest(financial_year=YEAR))
        collections = publish(conn, result.run_id)
    say(f"bench database ready (run {result.run_id}: {', '.join(collections)})")
    return url


def property_columns(url: str) -> tuple[list[tuple[str, str]], int]:
    """The flat property names of the published ward features and an SQL type for each."""
    import psycopg

    with psycopg.connect(url) as conn:
        run_id = conn.execute("SELECT max(run_id) FROM collection WHERE id = %s",
                              (COLLECTION,)).fetchone()[0]
        rows = conn.execute("SELECT properties::text FROM collection_feature"
                            " WHERE collection_id = %s AND run_id = %s", (COLLECTION, run_id))
        props = [json.loads(r[0]) for r in rows.fetchall()]
    names = list(props[0])
    out = []
    for name in names:
        values = [p.get(name) for p in props if p.get(name) is not None]
        if values and all(isinstance(v, bool) for v in values):
            sql = "boolean"
        elif values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            sql = "bigint"
        elif values and all(isinstance(v, int | float) for v in values):
            sql = "double precision"
        else:
            sql = "text"
        out.append((name, sql))
    return out, int(run_id)


def create_tipg_view(url: str) -> list[str]:
    """View ``bench.ward_spend``: the published ward features, flat columns, EPSG:4326 geometry
    snapped to 1e-6 degrees (the 6 decimals Placespend prints), for tipg to serve."""
    import psycopg
    from psycopg import sql

    cols, run_id = property_columns(url)
    select = [
        sql.SQL("(f.properties->>{})::{} AS {}").format(
            sql.Literal(name), sql.SQL(kind), sql.Identifier(name)
        )
        for name, kind in cols
        if name != "id"
    ]
    query = sql.SQL(
        "CREATE VIEW bench.ward_spend AS SELECT f.code AS id, {cols}, "
        "ST_SnapToGrid(ST_Transform(b.geom, 4326), 1e-6)::geometry(MultiPolygon, 4326) AS geom "
        "FROM collection_feature f JOIN collection c ON c.id = f.collection_id "
        "AND c.run_id = f.run_id JOIN boundary b ON b.set_id = c.target_set_id "
        "AND b.code = f.code WHERE f.collection_id = {cid} AND f.run_id = {run}"
    ).format(cols=sql.SQL(", ").join(select), cid=sql.Literal(COLLECTION),
             run=sql.Literal(run_id))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        conn.execute("DROP VIEW IF EXISTS bench.ward_spend")
        conn.execute(query)
    return [name for name, _ in cols]


def geopandas_frame(url: str) -> gpd.GeoDataFrame:
    """The same 630 features as a GeoDataFrame: flat properties + EPSG:4326 geometry at 6 dp."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT f.properties::text, ST_AsBinary(b.geom) FROM collection_feature f "
            "JOIN collection c ON c.id = f.collection_id AND c.run_id = f.run_id "
            "JOIN boundary b ON b.set_id = c.target_set_id AND b.code = f.code "
            "WHERE f.collection_id = %s AND f.run_id = (SELECT max(run_id) FROM collection "
            "WHERE id = %s) ORDER BY f.code", (COLLECTION, COLLECTION)
        ).fetchall()
    props = pd.DataFrame([json.loads(r[0]) for r in rows])
    geoms = shapely.from_wkb([bytes(r[1]) for r in rows])
    frame = gpd.GeoDataFrame(props, geometry=geoms, crs=27700).to_crs(4326)
    frame.geometry = shapely.transform(frame.geometry.to_numpy(), lambda xy: np.round(xy, 6))
    frame.index = frame["code"].to_numpy()
    return frame


def serving(inp: Inputs, args: argparse.Namespace, versions: dict[str, str],
            url: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if url is None:
        say("serving: preparing the bench database (migrate, load embedded data, publish run)")
        url = prepare_database(inp)
    out["database"] = url.split("@")[-1]
    py = sys.executable
    logs = BENCH / "out"
    logs.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIPG_", "PLACESPEND_"))}
    env["DATABASE_URL"] = url
    items = "/collections/{}/items?limit=1000"

    # Placespend API
    port = free_port()
    try:
        say(f"serving: starting the Placespend API (uvicorn, 1 worker) on 127.0.0.1:{port}")
        proc = start_server(
            [py, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1", "--log-level", "warning"],
            env, f"http://127.0.0.1:{port}/collections", logs / "placespend-api.log",
        )
        try:
            import httpx

            say("serving: load test against the Placespend API")
            out["placespend_api"] = load_test(
                f"http://127.0.0.1:{port}" + items.format(COLLECTION),
                args.requests, args.connections, args.per_connection,
            )
            crs = httpx.get(f"http://127.0.0.1:{port}" + items.format(COLLECTION)
                            + "&crs=http://www.opengis.net/def/crs/EPSG/0/27700", timeout=60)
            out["placespend_api"]["crs_27700_request"] = {
                "status": crs.status_code,
                "content_crs": crs.headers.get("content-crs"),
                "body": crs.text[:300] if crs.status_code != 200 else None,
                "first_coordinate": _first_coord(crs.json()) if crs.status_code == 200 else None,
            }
        finally:
            stop_server(proc)
    except Exception as exc:  # noqa: BLE001 - recorded in the results instead
        out["placespend_api"] = {"error": f"{type(exc).__name__}: {exc}"}
        say(f"serving: Placespend API failed: {exc}")

    # tipg on a view of the same rows
    try:
        say("serving: creating view bench.ward_spend for tipg")
        create_tipg_view(url)
        port = free_port()
        tenv = dict(env)
        tenv["TIPG_DB_SCHEMAS"] = '["bench"]'
        tenv["TIPG_DB_TABLES"] = '["bench.ward_spend"]'
        tenv["TIPG_MAX_FEATURES_PER_QUERY"] = "10000"
        say(f"serving: starting tipg {versions.get('tipg')} (uvicorn, 1 worker) on "
            f"127.0.0.1:{port}")
        proc = start_server(
            [py, "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--log-level", "warning"],
            tenv, f"http://127.0.0.1:{port}/collections", logs / "tipg.log",
        )
        try:
            import httpx

            listed = httpx.get(f"http://127.0.0.1:{port}/collections", timeout=30).json()
            ids = [c["id"] for c in listed.get("collections", [])]
            if "bench.ward_spend" not in ids:
                raise RuntimeError(f"tipg does not list bench.ward_spend (it lists {ids})")
            say("serving: load test against tipg")
            out["tipg"] = load_test(
                f"http://127.0.0.1:{port}" + items.format("bench.ward_spend"),
                args.requests, args.connections, args.per_connection,
            )
            crs = httpx.get(f"http://127.0.0.1:{port}" + items.format("bench.ward_spend")
                            + "&crs=http://www.opengis.net/def/crs/EPSG/0/27700", timeout=60)
            out["tipg"]["crs_27700_request"] = {
                "status": crs.status_code,
                "content_crs": crs.headers.get("content-crs"),
                "first_coordinate": _first_coord(crs.json()) if crs.status_code == 200 else None,
            }
        finally:
            stop_server(proc)
    except Exception as exc:  # noqa: BLE001
        out["tipg"] = {"error": f"{type(exc).__name__}: {exc}"}
        say(f"serving: tipg failed: {exc}")

    # geopandas to_json of the same frame (no HTTP)
    try:
        frame = geopandas_frame(url)
        say(f"serving: geopandas to_json of {len(frame)} features x {args.to_json_repeats}")
        lat = []
        text = ""
        for _ in range(args.to_json_repeats):
            s = time.perf_counter()
            text = frame.to_json()
            lat.append(time.perf_counter() - s)
        out["geopandas_to_json"] = {
            "features": len(frame),
            "response_bytes": len(text.encode()),
            "calls": len(lat),
            "per_s": len(lat) / sum(lat),
            "p50_ms": percentile(lat, 50) * 1000,
            "p95_ms": percentile(lat, 95) * 1000,
        }
    except Exception as exc:  # noqa: BLE001
        out["geopandas_to_json"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


# ---------------------------------------------------------------------------------- report


def machine_facts() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":!bench"], cwd=ROOT, capture_output=True, text=True,
                               check=False).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "git_commit": commit,
        "git_tree_modified_outside_bench": bool(dirty),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "openblas_env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                         if k in os.environ},
    }


def library_versions() -> dict[str, str]:
    names = ["placespend", "numpy", "pandas", "geopandas", "shapely", "pyproj", "scipy",
             "tobler", "libpysal", "tipg", "fastapi", "starlette", "uvicorn", "asyncpg",
             "psycopg", "httpx", "pydantic"]
    out = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = "not installed"
    out["GEOS (shapely)"] = shapely.geos_version_string
    return out


def db_versions(url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
        geos = conn.execute("SELECT postgis_geos_version()").fetchone()[0]
    return {"PostgreSQL": pg, "PostGIS": postgis, "GEOS (PostGIS)": geos}


def fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def fmt_p(x: int | float) -> str:
    return f"{int(x):,}"


def placespend_exactness(methods: dict[str, Any]) -> str:
    """One paragraph: the run's outcome table, and the line spreads against the publication."""
    p = methods["placespend_full"]
    o = p["outcomes"]
    return (
        f"Placespend's exactness, from the run itself: its outcome table has "
        f"{o['lines_allocated_in_full']}/{o['lines']} lines allocated to the penny "
        f"({o['lines_short_with_reason']} short with a reason, "
        f"{o['lines_short_without_reason']} short without one); the run stores pence per "
        "(atom, body, function, method), and each line's pence per ward above come from "
        "`allocation.apportion.line_spread` (as the run placed them), which add up to the "
        "published ward totals: "
        + ("yes" if p["line_spreads_add_to_publication"] else "**NO**")
        + f". Pence outside every ward: {p['outside_pence']:,}.\n"
    )


def london_targets(methods: dict[str, Any]) -> list[dict[str, Any]]:
    full = methods["placespend_full"]["time"]
    tob = methods.get("tobler", {}).get("time")
    ratio = full["median_s"] / tob["median_s"] if tob else None
    shown = ("tobler failed" if ratio is None else
             f"{ratio:.2f}x (of the fastest runs: {full['min_s'] / tob['min_s']:.2f}x)")
    return [{"target": "from scratch (atoms + crosswalks + compute + publish) at most 1.0x "
                       "tobler, same inputs (medians)",
             "measured": shown, "met": ratio is not None and ratio <= 1.0}]


def targets_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of targets, the figure measured in this run, met or not."""
    out = ["| target | measured | met |", "|---|---|---|"]
    out += [f"| {r['target']} | {r['measured']} | {'met' if r['met'] else 'not met'} |"
            for r in rows]
    return "Targets (ratios within this run; nothing here is a timed test):\n\n" + (
        "\n".join(out) + "\n")


def serving_markdown(res: dict[str, Any]) -> list[str]:
    s = res.get("serving", {})
    L = ["\n## 2. Serving GeoJSON: all 630 London ward features\n"]
    if not s:
        return [*L, "Not measured in this run (`--skip-serving`)."]
    L.append(
        f"`GET /collections/{{id}}/items?limit=1000` on 127.0.0.1, uvicorn with one worker per "
        f"server, client (httpx, `Accept-Encoding: identity`) in the bench process on the same "
        f"2 cores. Sequential: {res['args']['requests']} requests on one connection after 3 "
        f"warm-ups. Concurrent: {res['args']['connections']} connections x "
        f"{res['args']['per_connection']} requests. geopandas `to_json` is the same frame "
        "serialised in-process (no HTTP, no database), for scale.\n"
    )
    L.append("| server | features | response bytes | seq req/s | seq p50 ms | seq p95 ms | "
             "conc req/s | conc p50 ms | conc p95 ms |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for key, label in (("placespend_api", "Placespend API"), ("tipg", "tipg (view)")):
        r = s.get(key)
        if not r:
            continue
        if "error" in r:
            L.append(f"| {label} | failed: {r['error'][:200]} | | | | | | | |")
            continue
        q, c = r["sequential"], r["concurrent"]
        L.append(f"| {label} | {r['features']} | {r['response_bytes']:,} | {q['req_per_s']:.1f} "
                 f"| {q['p50_ms']:.0f} | {q['p95_ms']:.0f} | {c['req_per_s']:.1f} | "
                 f"{c['p50_ms']:.0f} | {c['p95_ms']:.0f} |")
    g = s.get("geopandas_to_json")
    if g and "error" not in g:
        L.append(f"| geopandas to_json (in-process) | {g['features']} | {g['response_bytes']:,} "
                 f"| {g['per_s']:.1f} calls/s | {g['p50_ms']:.0f} | {g['p95_ms']:.0f} | | | |")
    elif g:
        L.append(f"| geopandas to_json | failed: {g['error'][:200]} | | | | | | | |")
    return L


def write_markdown(res: dict[str, Any], path: Path) -> None:
    m = res["machine"]
    a = res["apportionment"]
    L: list[str] = []
    L.append("# Placespend benchmark results: real London\n")
    L.append("Written by `bash bench/run` (bench/bench.py); every figure below comes from one "
             "run on this machine. The machine is small and shared (2 cores, noisy): compare "
             "the **ratios within this run**, not absolute times across runs.\n")
    L.append("## Machine\n")
    L.append("| fact | value |\n|---|---|")
    for k in ("date_utc", "nproc", "cpu_model", "memory_gib", "os", "python", "git_commit",
              "git_tree_modified_outside_bench", "load_average_at_start", "openblas_env"):
        L.append(f"| {k} | {m.get(k)} |")
    L.append("\n| library | version |\n|---|---|")
    for k, v in res["versions"].items():
        L.append(f"| {k} | {v} |")

    d = a["data"]
    L.append("\n## 1. Apportionment to wards (LSOA -> London wards 2014, population-weighted)\n")
    L.append(
        f"Data: {d['lsoas']:,} LSOAs (2011, with mid-2020 residents), {d['wards']} wards (May "
        f"2014), {d['lines']} spend lines for {YEAR} ({d['lines_nonzero']} non-zero): GLA "
        f"{fmt_p(d['gla_pence'])} pence over London, Hackney {fmt_p(d['hackney_pence'])} pence "
        f"over Hackney; total {fmt_p(d['total_pence'])} pence. Each line is spread by the proxy "
        "the default proxy table gives it (all residents; 0-15 for education and children's "
        "social care; 65+ for adult social care), the same for every method. Inputs are read "
        f"and normalised once, outside the timings. Times: {a['repeats']} repeats, wall "
        "seconds.\n"
    )
    base = a["methods"]["placespend_full"]["time"]["median_s"]
    cached = a["methods"]["placespend_cached"]["time"]["median_s"]
    L.append("| method | min s | median s | ratio to Placespend from scratch | ratio to Placespend "
             "(cached) | lines exact to the penny | total drift (pence) | max line drift "
             "(pence) | exact |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for meth in a["methods"].values():
        if "error" in meth:
            L.append(f"| {meth['label']} | failed | | | | | | | {meth['error'][:120]} |")
            continue
        t = meth["time"]
        c = meth["conservation"]
        L.append(
            f"| {meth['label']} | {fmt_s(t['min_s'])} | {fmt_s(t['median_s'])} | "
            f"{t['median_s'] / base:.2f}x | {t['median_s'] / cached:.1f}x | "
            f"{c['lines_exact']}/{c['lines']} | "
            f"{c['total_drift_pence']:+,} | {c['line_max_abs_drift_pence']:,} | "
            f"{'yes' if c['exact'] else 'no'} |"
        )
    br = a["methods"]["placespend_full"].get("breakdown_median_s", {})
    if br:
        L.append(
            f"\nPlacespend from scratch, median of each step: atoms {br['atoms']:.3f} s, "
            f"crosswalks to the reporting areas (boroughs, region) {br['crosswalks']:.3f} s, "
            f"`pipeline.compute` (lines -> atoms) {br['compute']:.3f} s, `pipeline.publish` "
            f"(atoms -> wards) {br['publish']:.3f} s. The cached path is what a new year, body "
            "or re-run costs once atoms and crosswalks are stored.\n"
        )
    L.append(placespend_exactness(a["methods"]))
    L.append(targets_table(london_targets(a["methods"])))
    L.append("### Difference from Placespend's exact pence, per ward\n")
    L.append("Peers' float results are rounded to whole pence per (line, ward) before any "
             "comparison, as anyone publishing money must.\n")
    L.append("| method | wards differing | max abs ward-total diff (pence) | of which GLA lines "
             "/ Hackney lines | sum abs ward-total diff (pence) | max abs (line, ward) diff "
             "(pence) | (line, ward) cells differing | Hackney pence in non-Hackney wards "
             "(wards) |")
    L.append("|---|---|---|---|---|---|---|---|")
    for key, meth in a["methods"].items():
        if "error" in meth or key.startswith("placespend"):
            continue
        c = meth["conservation"]
        byb = c["ward_total_max_abs_diff_pence_by_body"]
        L.append(f"| {meth['label']} | {c['wards_differing']}/{d['wards']} | "
                 f"{c['ward_total_max_abs_diff_pence']:,} | "
                 f"{byb.get('gla', 0):,} / {byb.get('hackney', 0):,} | "
                 f"{c['ward_total_sum_abs_diff_pence']:,} | "
                 f"{c['cell_max_abs_diff_pence']:,} | {c['cells_differing']:,} | "
                 f"{c['borough_lines_pence_outside_borough']:,} "
                 f"({c['borough_lines_wards_outside_borough']}) |")
    f32 = a.get("tobler_float32_vs_float64")
    if f32:
        L.append(
            f"\ntobler's float32 area table alone (same call with a float64 table, same "
            f"geometry): ward totals move by up to {f32['ward_total_max_abs_diff_pence']:.1f} "
            f"pence (sum over wards {f32['ward_total_sum_abs_diff_pence']:.1f}); a (line, ward) "
            f"cell by up to {f32['cell_max_abs_diff_pence']:.1f} pence; "
            f"{f32['cells_differing_after_rounding']} cells round to a different penny. With the "
            f"float64 table, lines exact to the penny after rounding: "
            f"{f32['float64_lines_exact']}/{d['lines']}.\n"
        )

    L.extend(serving_markdown(res))
    L.append("\n## 3. Correctness differences seen\n")
    for note in res.get("notes", []):
        L.append(f"- {note}")
    L.append("")
    path.write_text("\n".join(L) + "\n")


def notes(res: dict[str, Any]) -> list[str]:
    a = res["apportionment"]["methods"]
    out = []
    p = a.get("placespend_full", {}).get("conservation")
    pc = a.get("placespend_cached", {})
    if p:
        out.append(f"Placespend: integer pence; {p['lines_exact']}/{p['lines']} lines add back "
                   f"to the penny (total drift {p['total_drift_pence']:+,} pence); the cached "
                   "path gives the "
                   + ("identical" if pc.get("identical_to_full") else "a DIFFERENT")
                   + " atom product and ward table. Hackney's lines stay in Hackney's 21 wards.")
    t = a.get("tobler")
    if t and "conservation" in t:
        c = t["conservation"]
        out.append(
            f"tobler: float output; after rounding to pence {c['lines_exact']}/{c['lines']} lines "
            f"add back (total drift {c['total_drift_pence']:+,} pence, worst line "
            f"{c['line_max_abs_drift_pence']:,}); unrounded, the worst line is off by "
            f"{c['unrounded_line_max_abs_drift_pence']:.2f} pence. Its area table is float32 "
            "(see the float32/float64 line above). It spreads each line over the LSOAs whose "
            "borough code matches the reporting area; Placespend cuts LSOAs by the full-"
            "resolution ward/borough boundaries, so slivers of generalised LSOAs that cross a "
            "borough edge go to the borough they lie in. That, not float32, is most of the "
            "per-ward difference for Hackney's wards and their neighbours: "
            f"{c['borough_lines_pence_outside_borough']:,} pence of Hackney's lines land in "
            f"{c['borough_lines_wards_outside_borough']} wards of other boroughs."
        )
    o = a.get("geopandas_overlay")
    if o and "conservation" in o:
        c = o["conservation"]
        out.append(
            f"geopandas two overlays (same three-way pieces as Placespend's atoms, float64): "
            f"ward totals within {c['ward_total_max_abs_diff_pence']:,} pence of Placespend; "
            f"after rounding, {c['lines_exact']}/{c['lines']} lines add back to the penny."
        )
    g = a.get("postgis_sql")
    if g and "conservation" in g:
        c = g["conservation"]
        out.append(
            f"PostGIS query (float8, LSOA-in-borough by code like tobler): after rounding, "
            f"{c['lines_exact']}/{c['lines']} lines add back; ward totals up to "
            f"{c['ward_total_max_abs_diff_pence']:,} pence from Placespend."
        )
    s = res.get("serving", {})
    tp = s.get("tipg", {})
    if "crs_27700_request" in tp:
        r = tp["crs_27700_request"]
        out.append(
            f"tipg: asked for `crs=EPSG:27700` it answered HTTP {r['status']}"
            + (f" with first coordinate {r['first_coordinate']} and Content-Crs "
               f"{r.get('content_crs')}: it serves CRS84 only and ignores the parameter"
               if r["status"] == 200 else "")
            + ". tipg needs flat columns, so the view casts each JSON property; it serves the "
            "view's geometry at PostGIS' default 9 decimals (snapped to 1e-6 here to match "
            "Placespend's 6), and property order is its own."
        )
    pa = s.get("placespend_api", {})
    if "crs_27700_request" in pa:
        r = pa["crs_27700_request"]
        out.append(
            f"Placespend API: asked for `crs=EPSG:27700` it answered HTTP {r['status']}"
            + (f" with first coordinate {r['first_coordinate']}" if r["status"] == 200 else
               " (it serves CRS84 only for now and says so instead of ignoring the parameter)")
            + "."
        )
    if "features" in pa and "tipg" in s and "features" in tp:
        out.append(f"Both servers returned {pa['features']} and {tp['features']} features; "
                   f"response bytes {pa['response_bytes']:,} vs {tp['response_bytes']:,}.")
    return out


# ---------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per method (>= 3)")
    ap.add_argument("--requests", type=int, default=50, help="sequential requests per server")
    ap.add_argument("--connections", type=int, default=8, help="concurrent connections")
    ap.add_argument("--per-connection", type=int, default=5, help="requests per connection")
    ap.add_argument("--to-json-repeats", type=int, default=10)
    ap.add_argument("--skip-serving", action="store_true")
    args = ap.parse_args()
    args.repeats = max(3, args.repeats)

    res: dict[str, Any] = {"args": vars(args), "machine": machine_facts(),
                           "versions": library_versions(), "notes": []}
    say(f"machine: {res['machine']['nproc']} cores, {res['machine']['cpu_model']}")
    say("reading and normalising the embedded data (not timed)")
    inp = load_inputs()
    amounts = inp.lines.groupby("body")["amount_pence"].sum()
    a: dict[str, Any] = {
        "repeats": args.repeats,
        "data": {
            "lsoas": len(inp.lsoas), "wards": len(inp.wards), "lines": len(inp.lines),
            "lines_nonzero": int((inp.lines["amount_pence"] != 0).sum()),
            "gla_pence": int(amounts.get("gla", 0)),
            "hackney_pence": int(amounts.get("hackney", 0)),
            "total_pence": int(inp.lines["amount_pence"].sum()),
        },
        "methods": {},
    }
    res["apportionment"] = a
    say(f"{len(inp.lsoas)} LSOAs, {len(inp.wards)} wards, {len(inp.lines)} lines; "
        f"pence by body: {amounts.to_dict()}")
    methods = a["methods"]

    # 1a. Placespend from scratch (atoms + crosswalks + compute + publish) and cached.
    say("1a. Placespend from scratch: build_atoms + crosswalks + pipeline.compute + publish")
    steps: list[dict[str, float]] = []

    def full() -> tuple[pipeline.Run, pipeline.Publication]:
        built = placespend_build(inp)
        times = {"atoms": built["t_atoms"], "crosswalks": built["t_crosswalks"]}
        out = placespend_apportion(inp, built, times)
        steps.append(times)
        full.built = built  # type: ignore[attr-defined]
        return out

    t_full, (run, pub) = timed(full, args.repeats, "placespend full")
    built = full.built  # type: ignore[attr-defined]
    say("1a. Placespend: each line's pence per ward (line_spread, not timed)")
    exact = placespend_matrix(inp, built, run)
    spreads_match = bool(
        exact.sum(axis=1).equals(ward_totals(pub).reindex(exact.index).fillna(0).astype(np.int64))
    )
    methods["placespend_full"] = {
        "label": "Placespend, from scratch (atoms + crosswalks + compute + publish)",
        "time": t_full,
        "breakdown_median_s": {k: statistics.median(s[k] for s in steps) for k in steps[0]},
        "atoms": len(built["atoms"]),
        "product_rows": len(run.apportionment.product),
        "outcomes": outcome_check(run),
        "outside_pence": int(pub.outside_pence),
        "line_spreads_add_to_publication": spreads_match,
        "conservation": assess(inp, exact, None),
    }
    say("1a. Placespend cached path: pipeline.compute + publish on stored atoms/crosswalks")
    t_cached, (run_c, pub_c) = timed(lambda: placespend_apportion(inp, built),
                                     max(args.repeats, 5), "placespend cached")
    methods["placespend_cached"] = {
        "label": "Placespend, cached atoms/crosswalks (compute + publish)",
        "time": t_cached,
        "outcomes": outcome_check(run_c),
        "conservation": assess(inp, placespend_matrix(inp, built, run_c), exact),
        "identical_to_full": bool(
            run_c.apportionment.product.equals(run.apportionment.product)
            and pub_c.target_alloc.equals(pub.target_alloc)
        ),
    }

    # 1b. tobler
    say("1b. tobler area_interpolate (extensive: each line's LSOA pence)")
    try:
        t_tob, tob = timed(lambda: tobler_run(inp), args.repeats, "tobler")
        tob_m = as_matrix(inp, tob)
        methods["tobler"] = {
            "label": f"tobler {res['versions'].get('tobler')} area_interpolate",
            "time": t_tob,
            "conservation": assess(inp, tob_m, exact),
        }
        say("1b. tobler again with a float64 area table (not timed), to isolate float32")
        source = gpd.GeoDataFrame(geometry=inp.lsoas.geometry.to_numpy(), crs=inp.lsoas.crs)
        table64 = tobler_table(source, inp.wards[["code", "geometry"]], np.float64)
        tob64 = as_matrix(inp, tobler_run(inp, table=table64))
        diff = tob_m - tob64
        a["tobler_float32_vs_float64"] = {
            "ward_total_max_abs_diff_pence": float(diff.sum(axis=1).abs().max()),
            "ward_total_sum_abs_diff_pence": float(diff.sum(axis=1).abs().sum()),
            "cell_max_abs_diff_pence": float(diff.abs().to_numpy().max()),
            "cells_differing_after_rounding": int(
                (np.rint(tob_m).to_numpy() != np.rint(tob64).to_numpy()).sum()
            ),
            "float64_lines_exact": assess(inp, tob64, None)["lines_exact"],
        }
    except Exception as exc:  # noqa: BLE001
        methods["tobler"] = {"label": "tobler area_interpolate",
                             "error": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc()

    # 1c. geopandas overlays
    say("1c. geopandas: overlay(LSOA, boroughs) then overlay(pieces, wards), weights by hand")
    try:
        t_ov, ov = timed(lambda: overlay_run(inp), args.repeats, "geopandas overlay")
        methods["geopandas_overlay"] = {
            "label": f"geopandas {res['versions'].get('geopandas')} two overlays",
            "time": t_ov,
            "conservation": assess(inp, as_matrix(inp, ov), exact),
        }
    except Exception as exc:  # noqa: BLE001
        methods["geopandas_overlay"] = {"label": "geopandas two overlays",
                                        "error": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc()

    # 1d. PostGIS (and the database for part 2)
    url = None
    try:
        say("1d. PostGIS: preparing the bench database and scratch tables (not timed)")
        url = prepare_database(inp)
        res["versions"] |= db_versions(url)
        postgis_load(url, inp)
        t_pg, pg = timed(lambda: postgis_run(url), args.repeats, "postgis sql")
        methods["postgis_sql"] = {
            "label": f"PostGIS {res['versions'].get('PostGIS')} one SQL query",
            "time": t_pg,
            "conservation": assess(inp, as_matrix(inp, pg), exact),
            "sql": POSTGIS_SQL.strip(),
        }
    except Exception as exc:  # noqa: BLE001
        methods["postgis_sql"] = {"label": "PostGIS one SQL query",
                                  "error": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc()

    for meth in methods.values():
        if "time" in meth:
            meth["ratio_to_placespend_full"] = (
                meth["time"]["median_s"] / methods["placespend_full"]["time"]["median_s"]
            )
            meth["ratio_to_placespend_cached"] = (
                meth["time"]["median_s"] / methods["placespend_cached"]["time"]["median_s"]
            )

    # 2. Serving
    if not args.skip_serving:
        res["serving"] = serving(inp, args, res["versions"], url)

    res["notes"] = notes(res)
    res["targets"] = london_targets(methods)
    save_results(res, "london", write_markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
