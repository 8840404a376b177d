"""Serving: Placespend's OGC API Features and vector tiles against tipg and PostGIS alone.

Run through ``bash bench/run serving [--layer london|national|both] [--quick]`` (which builds
``bench/.venv`` with the peers and installs ``wrk``), or ``bench/.venv/bin/python -m
bench.serving`` from the checkout. Writes ``bench/results/serving.json`` (every figure) and
``bench/results/serving.md`` (the tables). See bench/README.md.

Each layer (the real London 630 wards, the synthetic national 7,000 wards) is published into a
database of its own, and three servers are started on it, uvicorn with one worker each (uvloop
and httptools, which uvicorn picks when installed): Placespend (its byte cache on, the default
``PLACESPEND_CACHE_MB``), Placespend with ``PLACESPEND_CACHE_MB=0`` (every answer made
afresh), and tipg on the same published rows (``bench.bench.create_tipg_view``'s view
``bench.ward_spend``, and a table copied from it with a GiST index, ``bench.ward_spend_table``,
tipg as it would be deployed; tipg keeps no answers). Measured, each ratio within the same run:

1. warm tiles: req/s at 8 connections on a fixed list of tiles over the layer (a few zooms),
   each tile already requested once; Placespend's run-pinned TileJSON address against tipg's;
2. cold tiles: Placespend with no cache against PostGIS alone running the same
   ``store.features.tile_query``, tile by tile, interleaved (sequential, and 2 connections);
3. ``/items?limit=100&bbox=...`` on small boxes: req/s at 8 connections, Placespend's
   run-pinned addresses (``&run=N``), each already requested once, against tipg; beside them
   the unpinned addresses (warm too) and the pinned ones on the no-cache server;
4. (national) all 7,000 wards as one GeoJSON page on the no-cache server against
   ``store.features.items`` alone (the ``json_agg`` query that builds the same features),
   median of a few interleaved repeats; the cached page beside it.

The load generator is ``wrk`` (C, one thread, a separate process) where installed, else a
Python client (threads, ``http.client``) in this process; the Python client also runs the
counted passes (warm-up, tipg's first pass) and a check of how far it falls behind ``wrk``.
No assertion is timed; every figure is written down, whatever it is.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench.bench as london  # noqa: E402
from bench import national, synthetic  # noqa: E402
from bench.bench import (  # noqa: E402
    create_tipg_view,
    db_versions,
    free_port,
    library_versions,
    load_test,
    machine_facts,
    percentile,
    save_results,
    say,
    start_server,
    stop_server,
)

#: Databases of this benchmark's own, so that it can run beside ``bench/run london|national``.
DB_NAMES = {"london": "placespend_bench_serving_london",
            "national": "placespend_bench_serving_national"}
TIPG_VIEW = "bench.ward_spend"
TIPG_TABLE = "bench.ward_spend_table"
#: Zoom levels of the tile list, per layer: every tile over the layer's bounds at each zoom,
#: or a seeded sample of ``--tiles-per-zoom`` of them where there are more.
ZOOMS = {"london": (10, 11, 12, 13, 14), "national": (6, 7, 8, 9, 10, 12)}
#: The targets: (what, how the ratio is formed, the bound, higher or lower is better).
TARGETS = {
    "warm_tiles": ">= 20x tipg",
    "cold_tiles": "<= 1.25x PostGIS alone",
    "items": ">= 10x tipg",
    "all_features": "<= 1.2x json_agg alone",
}
LABELS = {"london": "London (630 real wards)", "national": "national (7,000 synthetic wards)"}
#: What a browser sends: a map in one gets every tile compressed, cached or not.
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


# ---------------------------------------------------------------------------------- layers


@dataclass
class Published:
    """One layer published in a database of its own, as the servers will serve it."""

    name: str  # london / national
    url: str
    collection: str
    run_id: int
    features: int
    prepare_s: float
    facts: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def bench_constants(**values: Any) -> Iterator[None]:
    """Call ``bench.bench``'s helpers with some of its module constants set otherwise.

    ``prepare_database`` and ``create_tipg_view`` read ``DB_NAME`` and ``COLLECTION`` when
    called; this runs them on this benchmark's databases and on the national collection.
    """
    old = {k: getattr(london, k) for k in values}
    for k, v in values.items():
        setattr(london, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(london, k, v)


def feature_count(url: str, collection: str, run_id: int) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM collection_feature WHERE collection_id = %s"
                                " AND run_id = %s", (collection, run_id)).fetchone()[0])


def prepare_london() -> Published:
    """The embedded London data and its 2014-15 run, published (``bench.bench``'s database)."""
    t = time.perf_counter()
    with bench_constants(DB_NAME=DB_NAMES["london"]):
        url = london.prepare_database(None)  # type: ignore[arg-type] # it reads no input
    _, run_id = london.property_columns(url)
    return Published("london", url, london.COLLECTION, run_id,
                     feature_count(url, london.COLLECTION, run_id), time.perf_counter() - t)


def prepare_national(seed: int) -> Published:
    """The synthetic national layer, its 300 lines and their run, published to the wards."""
    from store import cluster
    from store.db import connect
    from store.migrate import migrate

    t = time.perf_counter()
    geo = synthetic.national_cached(national.CACHE, seed=seed)
    read_s = time.perf_counter() - t
    url = cluster.fresh_database(DB_NAMES["national"])
    with connect(url) as conn:
        migrate(conn)
    load_s = national.load_national(url, geo, national.agency_lines(geo, seed))
    run = national.national_run_in_db(url)
    collection = run["collections"][0]
    del geo
    return Published("national", url, collection, int(run["run_id"]),
                     feature_count(url, collection, int(run["run_id"])),
                     time.perf_counter() - t,
                     {"layer_read_s": read_s, "load_s": sum(load_s.values()),
                      "make_run_s": run["make_run"]["s"]})


def prepare_tipg(pub: Published) -> dict[str, Any]:
    """``bench.ward_spend`` (bench.bench's view) and an indexed table copied from it."""
    import psycopg

    t = time.perf_counter()
    with bench_constants(COLLECTION=pub.collection):
        columns = create_tipg_view(pub.url)
    with psycopg.connect(pub.url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TIPG_TABLE}")
        conn.execute(f"CREATE TABLE {TIPG_TABLE} AS SELECT * FROM {TIPG_VIEW}")
        conn.execute(f"ALTER TABLE {TIPG_TABLE} ADD PRIMARY KEY (id)")
        conn.execute(f"CREATE INDEX ON {TIPG_TABLE} USING gist (geom)")
        conn.execute(f"ANALYZE {TIPG_TABLE}")
        # What loading left behind (dead rows, dirty buffers, stale statistics) is dealt with
        # now, not while the first tiles are being timed.
        conn.execute("VACUUM ANALYZE")
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")  # superuser only (the project's own cluster is)
    return {"columns": len(columns), "prepare_s": time.perf_counter() - t}


# ---------------------------------------------------------------------------------- servers


@dataclass
class Server:
    label: str
    base: str
    proc: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.proc.pid


def placespend_argv(port: int) -> list[str]:
    """Placespend's API as ``bench.bench.serving`` starts it: uvicorn, one worker."""
    return [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host",
            "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning"]


def tipg_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1", "--port",
            str(port), "--workers", "1", "--log-level", "warning"]


def base_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIPG_", "PLACESPEND_"))}
    env["DATABASE_URL"] = url
    return env


def start_servers(stack: contextlib.ExitStack, pub: Published) -> dict[str, Server]:
    """Placespend (cache on), Placespend (cache 0) and tipg, on ``pub``'s database."""
    servers: dict[str, Server] = {}

    def start(key: str, label: str, argv: list[str], env: dict[str, str]) -> None:
        port = int(argv[argv.index("--port") + 1])
        base = f"http://127.0.0.1:{port}"
        say(f"{pub.name}: starting {label} on 127.0.0.1:{port}")
        proc = start_server(argv, env, f"{base}/collections",
                            OUT / f"serving-{pub.name}-{key}.log")
        stack.callback(stop_server, proc)
        servers[key] = Server(label, base, proc)

    env = base_env(pub.url)
    start("placespend", "Placespend (cache on, the default PLACESPEND_CACHE_MB)",
          placespend_argv(free_port()), env)
    start("placespend_cold", "Placespend (PLACESPEND_CACHE_MB=0)",
          placespend_argv(free_port()), env | {"PLACESPEND_CACHE_MB": "0"})
    tenv = env | {"TIPG_DB_SCHEMAS": '["bench"]',
                  "TIPG_DB_TABLES": json.dumps([TIPG_VIEW, TIPG_TABLE]),
                  "TIPG_MAX_FEATURES_PER_QUERY": "10000"}
    start("tipg", "tipg", tipg_argv(free_port()), tenv)
    listed = get_json(servers["tipg"].base + "/collections")
    ids = {c["id"] for c in listed.get("collections", [])}
    if not {TIPG_VIEW, TIPG_TABLE} <= ids:
        raise RuntimeError(f"tipg lists {sorted(ids)}, not {TIPG_VIEW} and {TIPG_TABLE}")
    return servers


def get_json(url: str) -> Any:
    import httpx

    r = httpx.get(url, timeout=120)
    r.raise_for_status()
    return r.json()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_stack(pid: int) -> dict[str, bool]:
    """Whether uvloop and httptools are loaded in a server process (its /proc/PID/maps)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name: f"/{name}/" in maps for name in ("uvloop", "httptools")}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------------------- clients


def modified_files() -> list[str]:
    """Files changed outside bench/ in the working tree measured (uncommitted work)."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                          ":!bench"], cwd=ROOT, capture_output=True, text=True, check=False)
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str | None:
    exe = wrk_path()
    if exe is None:
        return None
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr) else exe


#: wrk script: each request takes the next path of the list (the threads start apart), and
#: ``done`` prints the figures as one JSON line.
WRK_LUA = """
local paths = {%s}
local n = #paths
local made = 0
function setup(thread)
  thread:set("offset", made)
  made = made + 1
end
function init(args)
  i = math.floor((offset or 0) * n / 2)
end
function request()
  i = i %% n + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, '
    .. '"read": %%d, "write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, '
    .. '"p95_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max))
end
"""


def run_wrk(server: Server, paths: list[str], connections: int, duration: float,
            headers: dict[str, str] | None = None) -> dict:
    """``wrk -t1 -c N -d S`` cycling through ``paths``; req/s, latency, errors, server CPU."""
    exe = wrk_path()
    if exe is None:
        raise RuntimeError("wrk is not installed")
    OUT.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", dir=OUT, delete=False) as fh:
        fh.write(WRK_LUA % ", ".join(json.dumps(p) for p in paths))
        script = fh.name
    try:
        cpu = cpu_seconds(server.pid)
        argv = [exe, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout",
                "120s", "-s", script]
        for k, v in (headers or {}).items():
            argv += ["-H", f"{k}: {v}"]
        argv.append(server.base)
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=duration + 180)
        cpu = cpu_seconds(server.pid) - cpu
    finally:
        os.unlink(script)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]}"
                           f"{done.stderr[-500:]}")
    w = json.loads(line[len("WRKJSON "):])
    wall = w["duration_us"] / 1e6
    errors = w["connect"] + w["read"] + w["write"] + w["timeout"]
    return {
        "client": "wrk", "connections": connections, "requests": w["requests"],
        "wall_s": wall, "req_per_s": w["requests"] / wall,
        "p50_ms": w["p50_us"] / 1e3, "p95_ms": w["p95_us"] / 1e3, "p99_ms": w["p99_us"] / 1e3,
        "max_ms": w["max_us"] / 1e3, "bytes_per_request": w["bytes"] / max(w["requests"], 1),
        "socket_errors": errors, "status_errors": w["status"],
        "passes_over_list": w["requests"] / len(paths),
        "server_cpu_share": cpu / wall if wall else None,
    }


def run_python(server: Server, paths: list[str], connections: int, *, repeat: int = 1,
               duration: float | None = None, keep: bool = False,
               headers: dict[str, str] | None = None) -> dict:
    """The Python client: ``connections`` threads, one keep-alive ``http.client`` connection
    each, taking the next path of ``paths`` (``repeat`` times over, or cycling until
    ``duration`` seconds have passed). Bodies are read whole, uncompressed."""
    host = urlsplit(server.base)
    jobs = iter(range(len(paths) * repeat)) if duration is None else iter(range(10**12))
    lock = threading.Lock()
    deadline = None if duration is None else time.perf_counter() + duration
    results: list[tuple[int, int, int, float, bytes | None]] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=300)
        got = []
        try:
            while True:
                with lock:
                    i = next(jobs, None)
                if i is None or (deadline is not None and time.perf_counter() > deadline):
                    break
                s = time.perf_counter()
                conn.request("GET", paths[i % len(paths)], headers=headers or {})
                r = conn.getresponse()
                body = r.read()
                got.append((i, r.status, len(body), time.perf_counter() - s,
                            body if keep else None))
        finally:
            conn.close()
        with lock:
            results.extend(got)

    cpu_server, cpu_client = cpu_seconds(server.pid), time.process_time()
    t = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    cpu_server = cpu_seconds(server.pid) - cpu_server
    cpu_client = time.process_time() - cpu_client
    results.sort()
    lat = [r[3] for r in results]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r[1])] = statuses.get(str(r[1]), 0) + 1
    out = {
        "client": "python (http.client threads)", "connections": connections,
        "requests": len(results), "wall_s": wall, "req_per_s": len(results) / wall,
        "p50_ms": percentile(lat, 50) * 1e3, "p95_ms": percentile(lat, 95) * 1e3,
        "bytes_per_request": sum(r[2] for r in results) / max(len(results), 1),
        "statuses": statuses, "server_cpu_share": cpu_server / wall,
        "client_cpu_share": cpu_client / wall,
    }
    if keep:
        out["responses"] = [(r[1], r[4]) for r in results]
    return out


def busy_share(window: float = 0.5) -> float:
    """The share of the machine's CPU time that was busy over ``window`` seconds."""

    def read() -> tuple[int, int]:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = v[3] + v[4]
        return sum(v[:8]) - idle, sum(v[:8])

    b0, t0 = read()
    time.sleep(window)
    b1, t1 = read()
    return (b1 - b0) / max(t1 - t0, 1)


@dataclass
class Quiet:
    """What must be idle before a measurement: the layer's database and its servers."""

    url: str
    pids: list[int]


#: Set by :func:`bench_layer` for the layer being measured.
_QUIET: list[Quiet] = []


def settle(limit_s: float = 60.0) -> dict[str, float]:
    """Wait (at most ``limit_s``) until the previous run's requests are done: no query of the
    layer's database is active and its servers use no CPU (a slow tipg query goes on after
    wrk stops, and must not load the next run). Then how busy the whole machine is (the
    database, and anything else running on it) over half a second, for the record."""
    import psycopg

    t = time.perf_counter()
    active = -1
    if _QUIET:
        q = _QUIET[-1]
        with psycopg.connect(q.url, autocommit=True) as conn:
            while time.perf_counter() - t < limit_s:
                active = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state = 'active' AND pid <> pg_backend_pid()").fetchone()[0]
                cpu = sum(cpu_seconds(p) for p in q.pids)
                time.sleep(0.2)
                if active == 0 and sum(cpu_seconds(p) for p in q.pids) - cpu < 0.02:
                    break
    return {"waited_s": round(time.perf_counter() - t, 2), "active_queries": active,
            "busy_before": round(busy_share(), 3)}


def rate(server: Server, paths: list[str], args: argparse.Namespace,
         headers: dict[str, str] | None = None) -> dict:
    """Requests per second at ``--connections``: wrk where installed, else the Python client."""
    calm = settle()
    if wrk_path() and not args.python_client:
        return run_wrk(server, paths, args.connections, args.duration, headers) | calm
    return run_python(server, paths, args.connections, duration=args.duration,
                      headers=headers) | calm


class OneConnection:
    """One keep-alive HTTP connection, timing each GET (and reading Server-Timing)."""

    def __init__(self, base: str) -> None:
        u = urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)

    def get(self, path: str) -> tuple[float, int, bytes, float | None]:
        for attempt in range(2):
            s = time.perf_counter()
            try:
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                body = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # uvicorn closes a keep-alive connection idle for 5 s; the retry is timed anew.
                self.conn.close()
                if attempt:
                    raise
        took = time.perf_counter() - s
        timing = r.getheader("server-timing") or ""
        app = float(timing.split("dur=")[1].split(",")[0]) / 1e3 if "dur=" in timing else None
        return took, r.status, body, app

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------- tiles


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    lat = max(min(lat, 85.0511), -85.0511)
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def tile_list(bounds: list[float], zooms: tuple[int, ...], per_zoom: int,
              seed: int) -> list[tuple[int, int, int]]:
    """Every tile over ``bounds`` at each zoom, or a seeded sample of ``per_zoom`` of them."""
    rng = random.Random(seed)
    out = []
    for z in zooms:
        x0, y0 = lonlat_to_tile(bounds[0], bounds[3], z)
        x1, y1 = lonlat_to_tile(bounds[2], bounds[1], z)
        every = [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
        out += sorted(rng.sample(every, per_zoom)) if len(every) > per_zoom else every
    return out


def use_view(pub: Published, args: argparse.Namespace) -> bool:
    """Runs against tipg's view: London only (nationally a request takes seconds)."""
    return pub.name == "london" and not args.skip_view


def tiles_section(pub: Published, servers: dict[str, Server], args: argparse.Namespace
                  ) -> dict[str, Any]:
    """Targets 1 (warm tiles, Placespend vs tipg) and 2 (cold tiles vs PostGIS alone)."""
    ps, tipg = servers["placespend"], servers["tipg"]
    tj = get_json(f"{ps.base}/collections/{pub.collection}/tiles/WebMercatorQuad/tilejson.json")
    template = urlsplit(tj["tiles"][0])
    tiles = tile_list(tj["bounds"], ZOOMS[pub.name], args.tiles_per_zoom, args.seed)
    query = f"?{template.query}" if template.query else ""

    def ps_path(t: tuple[int, int, int]) -> str:
        return (template.path.replace("{z}", str(t[0])).replace("{x}", str(t[1]))
                .replace("{y}", str(t[2]))) + query

    ps_paths = [ps_path(t) for t in tiles]
    peer = {key: [f"/collections/{name}/tiles/WebMercatorQuad/{z}/{x}/{y}" for z, x, y in tiles]
            for key, name in (("table", TIPG_TABLE), ("view", TIPG_VIEW))}
    zooms = {str(z): sum(1 for t in tiles if t[0] == z) for z in ZOOMS[pub.name]}
    out: dict[str, Any] = {"tilejson_template": tj["tiles"][0], "tiles": len(tiles),
                           "tiles_per_zoom": zooms, "tile_list": [list(t) for t in tiles]}
    say(f"{pub.name}: {len(tiles)} tiles ({zooms}); warming Placespend (each tile once, "
        f"{args.connections} connections)")
    first = run_python(ps, ps_paths, args.connections, keep=True)
    sizes = [len(b or b"") for _, b in first.pop("responses")]
    out["placespend_first_pass"] = first
    out["placespend_tile_bytes"] = {"empty (204)": first["statuses"].get("204", 0),
                                    "median": statistics.median(sizes), "max": max(sizes),
                                    "total": sum(sizes)}
    out["placespend_rss_after_warming_bytes"] = rss_bytes(ps.pid)
    bad = {k: v for k, v in first["statuses"].items() if k not in ("200", "204")}
    if bad:
        raise RuntimeError(f"Placespend tiles answered {bad}")
    say(f"{pub.name}: tipg's first pass over the same tiles (indexed table)")
    tfirst = run_python(tipg, peer["table"], args.connections, keep=True)
    tsizes = [len(b or b"") for _, b in tfirst.pop("responses")]
    out["tipg_first_pass"] = tfirst
    out["tipg_tile_bytes"] = {"empty": sum(1 for s in tsizes if s == 0),
                              "median": statistics.median(tsizes), "max": max(tsizes),
                              "total": sum(tsizes)}
    out["nonempty_agree"] = sum((a > 0) == (b > 0) for a, b in zip(sizes, tsizes, strict=True))

    # 1. Warm: the same list, rounds alternating Placespend and tipg.
    warm: dict[str, list[dict]] = {"placespend": [], "tipg_table": []}
    for r in range(args.rounds):
        for key, server, paths in (("placespend", ps, ps_paths),
                                   ("tipg_table", tipg, peer["table"])):
            got = rate(server, paths, args)
            warm[key].append(got)
            say(f"  warm tiles round {r + 1}/{args.rounds} {key}: {got['req_per_s']:,.1f} "
                f"req/s ({got['client']}, p50 {got['p50_ms']:.1f} ms, server CPU "
                f"{got['server_cpu_share']:.0%})")
    if use_view(pub, args):
        got = rate(tipg, peer["view"], args)
        warm["tipg_view"] = [got]
        say(f"  warm tiles tipg on the view: {got['req_per_s']:,.1f} req/s")
    # As a browser's map asks: both servers compress each answer when asked to.
    for key, server, paths in (("placespend_gzip", ps, ps_paths),
                               ("tipg_table_gzip", tipg, peer["table"])):
        got = rate(server, paths, args, GZIP)
        warm[key] = [got]
        say(f"  warm tiles {key} (Accept-Encoding: gzip): {got['req_per_s']:,.1f} req/s, "
            f"{got['bytes_per_request']:,.0f} bytes a response")
    out["warm"] = warm
    out["warm_median_req_per_s"] = {k: statistics.median(g["req_per_s"] for g in v)
                                    for k, v in warm.items()}
    out["warm_bytes_per_request"] = {k: statistics.median(g["bytes_per_request"] for g in v)
                                     for k, v in warm.items()}
    if wrk_path() and not args.python_client:
        say(f"{pub.name}: the Python client on Placespend's warm tiles (is it the bottleneck?)")
        calm = settle()
        out["python_client_check"] = run_python(ps, ps_paths, args.connections,
                                                duration=args.duration) | calm
    # 2. Cold.
    nonempty = [t for t, s in zip(tiles, sizes, strict=True) if s > 0]
    out["cold"] = cold_tiles(pub, servers["placespend_cold"], nonempty, template.path, query,
                             args)
    return out


def cold_tiles(pub: Published, server: Server, tiles: list[tuple[int, int, int]],
               template: str, query: str, args: argparse.Namespace) -> dict[str, Any]:
    """Placespend without its cache against PostGIS alone on the same (non-empty) tiles.

    Sequential: tile by tile, the two in turn (which goes first alternates), ``--repeats``
    passes. Two connections: two threads each, the two methods in turn per pass.
    """
    from store import features
    from store.db import connect

    rng = random.Random(args.seed + 1)
    if len(tiles) > args.cold_tiles:
        tiles = sorted(rng.sample(tiles, args.cold_tiles))
    paths = [template.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))
             + query for z, x, y in tiles]
    say(f"{pub.name}: cold tiles, {len(tiles)} non-empty tiles x {args.repeats} passes, "
        "Placespend (no cache) and PostGIS alone in turn")
    out: dict[str, Any] = {"tiles": len(tiles), "passes": args.repeats, "settle": settle()}
    with connect(pub.url) as conn:
        layer = features.get_layer(conn, pub.collection)
        queries = [features.tile_query(layer, z, x, y, cap=20000) for z, x, y in tiles]
        client = OneConnection(server.base)
        # One untimed pass of each: plans, the database's own caches, connections.
        for (sql, params), path in zip(queries, paths, strict=True):
            conn.execute(sql, params).fetchone()
            client.get(path)
        pg_s: list[list[float]] = []
        ps_s: list[list[float]] = []
        app_s: list[list[float]] = []
        identical = 0
        for rep in range(args.repeats):
            pg_row, ps_row, app_row = [], [], []
            for i, ((sql, params), path) in enumerate(zip(queries, paths, strict=True)):
                order = ("pg", "ps") if (i + rep) % 2 == 0 else ("ps", "pg")
                for who in order:
                    if who == "pg":
                        s = time.perf_counter()
                        tile = bytes(conn.execute(sql, params).fetchone()["tile"] or b"")
                        pg_row.append(time.perf_counter() - s)
                    else:
                        took, status, body, app = client.get(path)
                        if status != 200:
                            raise RuntimeError(f"cold tile {path} answered {status}")
                        ps_row.append(took)
                        app_row.append(app if app is not None else float("nan"))
                identical += tile == body
            pg_s.append(pg_row)
            ps_s.append(ps_row)
            app_s.append(app_row)
            say(f"  cold pass {rep + 1}/{args.repeats}: PostGIS alone "
                f"{1e3 * statistics.mean(pg_row):.1f} ms/tile, Placespend "
                f"{1e3 * statistics.mean(ps_row):.1f} ms/tile")
        client.close()
        # What Placespend asks the database before each cold tile: the layer.
        lookups = []
        for _ in range(50):
            s = time.perf_counter()
            features.get_layer(conn, pub.collection)
            lookups.append(time.perf_counter() - s)
    per_pass = {"postgis": [statistics.mean(r) for r in pg_s],
                "placespend": [statistics.mean(r) for r in ps_s],
                "placespend_server_timing": [statistics.mean(r) for r in app_s]}
    out["sequential"] = {
        "mean_ms_per_tile_by_pass": {k: [1e3 * v for v in vs] for k, vs in per_pass.items()},
        "mean_ms_per_tile": {k: 1e3 * statistics.median(vs) for k, vs in per_pass.items()},
        "median_ms_per_tile": {
            "postgis": 1e3 * statistics.median(v for r in pg_s for v in r),
            "placespend": 1e3 * statistics.median(v for r in ps_s for v in r)},
        "tile_ratio_median": statistics.median(
            b / a for ra, rb in zip(pg_s, ps_s, strict=True)
            for a, b in zip(ra, rb, strict=True)),
        "identical_bytes": f"{identical}/{len(tiles) * args.repeats}",
    }
    out["get_layer_ms_median"] = 1e3 * statistics.median(lookups)
    by_zoom: dict[str, dict[str, float]] = {}
    for z in sorted({t[0] for t in tiles}):
        idx = [i for i, t in enumerate(tiles) if t[0] == z]
        by_zoom[str(z)] = {
            "tiles": len(idx),
            "postgis_ms": 1e3 * statistics.median(pg_s[r][i] for r in range(args.repeats)
                                                  for i in idx),
            "placespend_ms": 1e3 * statistics.median(ps_s[r][i] for r in range(args.repeats)
                                                     for i in idx)}
    out["sequential"]["median_ms_by_zoom"] = by_zoom
    out["two_connections"] = cold_two_connections(pub, server, queries, paths, args)
    return out


def cold_two_connections(pub: Published, server: Server, queries: list, paths: list[str],
                         args: argparse.Namespace) -> dict[str, Any]:
    """Two threads, each with its own connection, sharing the tile list; passes alternate."""
    from store.db import connect

    def run(method: str) -> float:
        lock = threading.Lock()
        jobs = iter(range(len(paths)))

        def worker() -> None:
            with contextlib.ExitStack() as stack:
                if method == "pg":
                    conn = stack.enter_context(connect(pub.url))
                else:
                    client = OneConnection(server.base)
                    stack.callback(client.close)
                while True:
                    with lock:
                        i = next(jobs, None)
                    if i is None:
                        return
                    if method == "pg":
                        conn.execute(*queries[i]).fetchone()
                    else:
                        client.get(paths[i])

        threads = [threading.Thread(target=worker) for _ in range(2)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return time.perf_counter() - t

    walls: dict[str, list[float]] = {"pg": [], "ps": []}
    for rep in range(args.repeats):
        for method in (("pg", "ps") if rep % 2 == 0 else ("ps", "pg")):
            walls[method].append(run(method))
    n = len(paths)
    return {"connections": 2,
            "ms_per_tile_by_pass": {"postgis": [1e3 * w / n for w in walls["pg"]],
                                    "placespend": [1e3 * w / n for w in walls["ps"]]},
            "ms_per_tile": {"postgis": 1e3 * statistics.median(walls["pg"]) / n,
                            "placespend": 1e3 * statistics.median(walls["ps"]) / n}}


# ---------------------------------------------------------------------------------- items


def small_boxes(pub: Published, n: int, seed: int) -> tuple[list[str], float]:
    """``n`` lon/lat boxes, each about one median ward in size, around seeded wards' points."""
    import psycopg

    with psycopg.connect(pub.url) as conn:
        side = float(conn.execute(
            f"SELECT sqrt(percentile_cont(0.5) WITHIN GROUP (ORDER BY ST_Area(geom)))"
            f" FROM {TIPG_TABLE}").fetchone()[0])
        points = conn.execute(f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom)"
                              f" AS p FROM {TIPG_TABLE} ORDER BY id) t").fetchall()
    rng = random.Random(seed + 2)
    half = side / 2
    out = []
    for x, y in rng.sample(points, min(n, len(points))):
        x, y = x + rng.uniform(-half, half), y + rng.uniform(-half, half)
        out.append(f"{x - half:.6f},{y - half:.6f},{x + half:.6f},{y + half:.6f}")
    return out, side


#: The /items rates in the order each round runs them: (key, server, addresses). The target is
#: the first against the second; the no-cache server is asked for the pinned addresses too, so
#: that the cache is all that differs from the target's figure.
ITEMS_RUNS = (("placespend_pinned", "placespend", "pinned"), ("tipg_table", "tipg", "table"),
              ("placespend_unpinned", "placespend", "unpinned"),
              ("placespend_cold", "placespend_cold", "pinned"))


def feature_ids(doc: dict[str, Any]) -> list[str]:
    return sorted(str(f["id"]) for f in doc["features"])


def items_section(pub: Published, servers: dict[str, Server], args: argparse.Namespace
                  ) -> dict[str, Any]:
    """Target 3: ``/items?limit=100&bbox=...`` req/s at 8 connections, Placespend vs tipg.

    Placespend's figure is on its run-pinned addresses (``&run=N``, the citable address the
    collection's pinned links hand out), each asked for once first, so every page is in its
    byte cache; beside it the unpinned addresses (kept too, per address, but the collection's
    current run is looked up in the database on every request) and the pinned addresses on the
    no-cache server (every page made afresh). tipg keeps nothing: every request is a query.
    """
    boxes, side = small_boxes(pub, args.boxes, args.seed)
    items = f"/collections/{pub.collection}/items?limit=100&bbox="
    paths = {
        "pinned": [f"{items}{b}&run={pub.run_id}" for b in boxes],
        "unpinned": [f"{items}{b}" for b in boxes],
        "table": [f"/collections/{TIPG_TABLE}/items?limit=100&bbox={b}" for b in boxes],
        "view": [f"/collections/{TIPG_VIEW}/items?limit=100&bbox={b}" for b in boxes],
    }
    out: dict[str, Any] = {"boxes": len(boxes), "box_side_degrees": side, "box_list": boxes,
                           "first_address": {k: v[0] for k, v in paths.items()}}
    say(f"{pub.name}: items, {len(boxes)} small boxes ({side:.4f} degrees a side); each "
        "address once (Placespend keeps every page it makes)")
    # Each address once, one connection: this pass is what puts the pages in the cache.
    docs: dict[str, list[dict[str, Any]]] = {}
    sizes: dict[str, list[int]] = {}
    for key, server, which in ITEMS_RUNS:
        one = OneConnection(servers[server].base)
        docs[key], sizes[key] = [], []
        for path in paths[which]:
            _, status, body, _ = one.get(path)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")
            docs[key].append(json.loads(body))
            sizes[key].append(len(body))
        one.close()
    ps, tp = docs["placespend_pinned"], docs["tipg_table"]
    counts = {k: [len(d["features"]) for d in v] for k, v in docs.items()}
    out["features_per_box"] = {k: {"median": statistics.median(n), "min": min(n),
                                   "max": max(n)} for k, n in counts.items()}
    out["boxes_with_same_count"] = sum(
        len(a["features"]) == len(b["features"]) for a, b in zip(ps, tp, strict=True))
    out["boxes_with_same_features"] = sum(
        feature_ids(a) == feature_ids(b) for a, b in zip(ps, tp, strict=True))
    out["boxes_with_same_number_matched"] = sum(
        a.get("numberMatched") == b.get("numberMatched") for a, b in zip(ps, tp, strict=True))
    # The kept pages are the pages made afresh: the same features from all three.
    out["boxes_placespend_pages_agree"] = sum(
        a["features"] == b["features"] == c["features"] for a, b, c in
        zip(ps, docs["placespend_unpinned"], docs["placespend_cold"], strict=True))
    out["response_bytes_median"] = {k: statistics.median(v) for k, v in sizes.items()}
    del docs
    runs: dict[str, list[dict]] = {key: [] for key, _, _ in ITEMS_RUNS}
    for r in range(args.rounds):
        for key, server, which in ITEMS_RUNS:
            got = rate(servers[server], paths[which], args)
            runs[key].append(got)
            say(f"  items round {r + 1}/{args.rounds} {key}: {got['req_per_s']:,.1f} req/s "
                f"(p50 {got['p50_ms']:.1f} ms, server CPU {got['server_cpu_share']:.0%})")
    if use_view(pub, args):
        got = rate(servers["tipg"], paths["view"], args)
        runs["tipg_view"] = [got]
        say(f"  items tipg on the view: {got['req_per_s']:,.1f} req/s")
    out["runs"] = runs
    out["median_req_per_s"] = {k: statistics.median(g["req_per_s"] for g in v)
                               for k, v in runs.items()}
    say(f"{pub.name}: items, bench.bench.load_test (httpx) on the first box, both servers")
    n = 10 if args.quick else 40
    out["httpx_load_test_first_box"] = {
        key: load_test(servers[server].base + paths[which][0], n, args.connections,
                       max(2, n // 8))
        for key, server, which in ITEMS_RUNS[:2]}
    return out


# ---------------------------------------------------------------------------------- all features


def all_features_section(pub: Published, servers: dict[str, Server], args: argparse.Namespace
                         ) -> dict[str, Any]:
    """Target 4: every ward in one GeoJSON page against ``store.features.items`` alone.

    On the no-cache server, where every request makes the page: with the cache on, a repeat is
    the kept bytes, which says nothing of making it. That cached page is timed beside it.
    """
    from store import features
    from store.db import connect

    limit = pub.features
    path = f"/collections/{pub.collection}/items?limit={limit}"
    say(f"{pub.name}: all {limit:,} features as GeoJSON, {args.all_repeats} repeats, "
        "Placespend (no cache; and cached) and store.features.items alone in turn")
    sql_s: list[float] = []
    times: dict[str, list[float]] = {"placespend_cold": [], "placespend_cold_server_timing": [],
                                     "placespend_warm": [], "placespend_warm_server_timing": []}
    out: dict[str, Any] = {"features": limit, "path": path, "settle": settle()}

    def fetch(client: OneConnection, key: str) -> None:
        took, status, _, app = client.get(path)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
        times[key].append(took)
        times[f"{key}_server_timing"].append(app if app is not None else float("nan"))

    with connect(pub.url) as conn:
        layer = features.get_layer(conn, pub.collection)
        cold = OneConnection(servers["placespend_cold"].base)
        warm = OneConnection(servers["placespend"].base)
        page = features.items(conn, layer, limit=limit)  # untimed: the database's caches warm
        warm.get(path)  # untimed: the page made and kept
        _, status, body, _ = cold.get(path)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")
        doc = json.loads(body)
        out["placespend_features"] = len(doc["features"])
        out["placespend_bytes"] = len(body)
        out["json_agg_chars"] = len(page.features_json)
        out["same_features_text"] = (json.dumps(doc["features"], separators=(",", ":"))
                                     == json.dumps(json.loads(page.features_json),
                                                   separators=(",", ":")))
        del doc, body
        for rep in range(args.all_repeats):
            order = ["sql", "cold", "warm"]
            for who in order[rep % 3:] + order[:rep % 3]:
                if who == "sql":
                    s = time.perf_counter()
                    page = features.items(conn, layer, limit=limit)
                    sql_s.append(time.perf_counter() - s)
                else:
                    fetch(cold if who == "cold" else warm, f"placespend_{who}")
            say(f"  repeat {rep + 1}/{args.all_repeats}: json_agg alone {sql_s[-1]:.2f} s, "
                f"Placespend without cache {times['placespend_cold'][-1]:.2f} s (server's own "
                f"{times['placespend_cold_server_timing'][-1]:.2f} s), cached "
                f"{times['placespend_warm'][-1]:.3f} s")
        cold.close()
        warm.close()
    out |= {"json_agg_s": sql_s, **{f"{k}_s": v for k, v in times.items()},
            "median_s": {"json_agg": statistics.median(sql_s),
                         **{k: statistics.median(v) for k, v in times.items()}}}
    if args.tipg_all_repeats:
        say(f"{pub.name}: tipg, all features from the indexed table (for scale)")
        client = OneConnection(servers["tipg"].base)
        tipg_s = []
        tpath = f"/collections/{TIPG_TABLE}/items?limit={limit}"
        for _ in range(args.tipg_all_repeats):
            took, status, body, _ = client.get(tpath)
            if status != 200:
                raise RuntimeError(f"{tpath} answered {status}: {body[:300]!r}")
            tipg_s.append(took)
        client.close()
        out["tipg_table_s"] = tipg_s
        out["tipg_table_bytes"] = len(body)
        out["median_s"]["tipg_table"] = statistics.median(tipg_s)
    return out


# ---------------------------------------------------------------------------------- a layer


def bench_layer(name: str, args: argparse.Namespace, versions: dict[str, str]
                ) -> dict[str, Any]:
    say(f"{name}: publishing the layer into {DB_NAMES[name]}")
    pub = prepare_london() if name == "london" else prepare_national(args.seed)
    versions |= db_versions(pub.url)
    out: dict[str, Any] = {"collection": pub.collection, "run_id": pub.run_id,
                           "features": pub.features, "database": DB_NAMES[name],
                           "prepare_s": pub.prepare_s, **pub.facts}
    say(f"{name}: {pub.collection} (run {pub.run_id}, {pub.features:,} features) ready in "
        f"{pub.prepare_s:.1f} s; tipg's view and indexed table")
    out["tipg_sources"] = prepare_tipg(pub)
    with contextlib.ExitStack() as stack:
        servers = start_servers(stack, pub)
        _QUIET.append(Quiet(pub.url, [s.pid for s in servers.values()]))
        stack.callback(_QUIET.pop)
        out["servers"] = {k: s.label for k, s in servers.items()}
        sections = [("tiles", tiles_section), ("items", items_section)]
        if name == "national":
            sections.append(("all_features", all_features_section))
        for key, fn in sections:
            try:
                out[key] = fn(pub, servers, args)
            except Exception as exc:  # noqa: BLE001 - recorded in the results instead
                out[key] = {"error": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
        out["server_rss_bytes_at_end"] = {k: rss_bytes(s.pid) for k, s in servers.items()}
        out["server_http_stack"] = {k: http_stack(s.pid) for k, s in servers.items()}
    return out


# ---------------------------------------------------------------------------------- report


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (layer, target): Placespend, peer, ratio, bound, met."""
    rows: list[dict[str, Any]] = []

    def add(layer: str, key: str, what: str, ps: float | None, peer: float | None,
            peer_label: str, unit: str, higher_better: bool, bound: float,
            error: str | None = None, pairs: list[tuple[float, float]] = ()) -> None:
        """``pairs``: (Placespend, peer) measured in the same round, pass or repeat; the ratio
        is the median of their ratios (the load on the machine changes between rounds)."""
        ratio = statistics.median(a / b for a, b in pairs) if pairs else None
        met = ratio is not None and (ratio >= bound if higher_better else ratio <= bound)
        rows.append({"layer": layer, "target": key, "what": what, "placespend": ps,
                     "peer": peer, "peer_label": peer_label, "unit": unit, "ratio": ratio,
                     "ratio_of_medians": ps / peer if ps is not None and peer else None,
                     "pair_ratios": [a / b for a, b in pairs], "bound": TARGETS[key],
                     "bound_value": bound, "met": met, "error": error})

    for layer, lay in res["layers"].items():
        if "error" in lay:
            for key in TARGETS:
                if key != "all_features" or layer == "national":
                    add(layer, key, key, None, None, "", "", True, 0, lay["error"])
            continue
        t = lay.get("tiles", {})
        if "error" in t:
            add(layer, "warm_tiles", "warm tiles", None, None, "", "", True, 20, t["error"])
            add(layer, "cold_tiles", "cold tiles", None, None, "", "", False, 1.25, t["error"])
        elif t:
            w = t["warm_median_req_per_s"]
            client = t["warm"]["placespend"][0]["client"]
            add(layer, "warm_tiles",
                f"warm tiles: req/s at {res['args']['connections']} connections ({client}), "
                f"{t['tiles']} tiles z={'/'.join(t['tiles_per_zoom'])}",
                w["placespend"], w["tipg_table"], "tipg (indexed table)", "req/s", True, 20,
                pairs=[(a["req_per_s"], b["req_per_s"]) for a, b in
                       zip(t["warm"]["placespend"], t["warm"]["tipg_table"], strict=True)])
            c = t["cold"]["sequential"]
            by_pass = c["mean_ms_per_tile_by_pass"]
            add(layer, "cold_tiles",
                f"cold tiles: mean ms per tile, sequential, {t['cold']['tiles']} non-empty "
                "tiles (cache 0)", c["mean_ms_per_tile"]["placespend"],
                c["mean_ms_per_tile"]["postgis"], "PostGIS alone (same tile_query)", "ms", False,
                1.25, pairs=list(zip(by_pass["placespend"], by_pass["postgis"], strict=True)))
        i = lay.get("items", {})
        if "error" in i:
            add(layer, "items", "items", None, None, "", "", True, 10, i["error"])
        elif i:
            m = i["median_req_per_s"]
            add(layer, "items",
                f"items?limit=100&bbox&run (small boxes, run-pinned, warm): req/s at "
                f"{res['args']['connections']} connections, {i['boxes']} boxes",
                m["placespend_pinned"], m["tipg_table"], "tipg (indexed table)", "req/s", True,
                10, pairs=[(a["req_per_s"], b["req_per_s"]) for a, b in
                           zip(i["runs"]["placespend_pinned"], i["runs"]["tipg_table"],
                               strict=True)])
        if layer == "national":
            a = lay.get("all_features", {})
            if "error" in a:
                add(layer, "all_features", "all features", None, None, "", "", False, 1.2,
                    a["error"])
            elif a:
                m = a["median_s"]
                add(layer, "all_features",
                    f"all {a['features']:,} wards as one GeoJSON page (cache 0): median s of "
                    f"{len(a['placespend_cold_s'])}", m["placespend_cold"], m["json_agg"],
                    "store.features.items alone (json_agg)", "s", False, 1.2,
                    pairs=list(zip(a["placespend_cold_s"], a["json_agg_s"], strict=True)))
    return rows


def fmt(x: float | None, unit: str) -> str:
    if x is None:
        return "–"
    if unit == "req/s":
        return f"{x:,.1f}"
    if unit == "ms":
        return f"{x:.2f}"
    return f"{x:.3f}"


def write_markdown(res: dict[str, Any], path: Path) -> None:
    m, ver = res["machine"], res["versions"]
    stacks = [x for lay in res["layers"].values()
              for x in lay.get("server_http_stack", {}).values()]
    stack = bool(stacks) and all(all(x.values()) for x in stacks)
    L: list[str] = ["# Placespend benchmark results: serving (tiles and features)\n"]
    L.append(
        "Written by `bash bench/run serving` (bench/serving.py); every figure below comes from "
        "one run on this machine (2 noisy cores shared by the servers, PostgreSQL and the load "
        "generator): compare the **ratios within this run**, not absolute rates across runs."
        + (" **Quick run** (`--quick`): few tiles, short runs; not the figures to quote."
           if res["args"]["quick"] else "") + "\n")
    L.append("## Targets\n")
    L.append("| layer | target | Placespend | peer | peer figure | ratio | each round's ratio "
             "| target | met |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for r in res["targets"]:
        if r["error"]:
            L.append(f"| {r['layer']} | {r['target']} | failed: {r['error'][:150]} | | | | | "
                     f"{r['bound']} | not measured |")
            continue
        ratio = "–" if r["ratio"] is None else (
            # Three decimals where two would hide which side of the bound it falls.
            f"{r['ratio']:.3f}x" if abs(r["ratio"] - r["bound_value"]) < 0.01
            else f"{r['ratio']:.2f}x")
        L.append(f"| {r['layer']} | {r['what']} | {fmt(r['placespend'], r['unit'])} "
                 f"{r['unit']} | {r['peer_label']} | {fmt(r['peer'], r['unit'])} {r['unit']} | "
                 f"{ratio} | {', '.join(f'{x:.2f}' for x in r['pair_ratios'])} | {r['bound']} | "
                 f"{'met' if r['met'] else 'not met'} |")
    L.append("")
    L.append(
        f"Load generator: {res['client']}. Servers: uvicorn {ver.get('uvicorn')} with one "
        f"worker each on 127.0.0.1, on uvloop {ver.get('uvloop')} with httptools "
        f"{ver.get('httptools')} (uvicorn's `auto` picks them when installed; both are in "
        "bench/.venv, so tipg runs on them too; loaded in every server process: "
        f"{'yes' if stack else 'NO'}). Per layer: Placespend with its byte cache on (the "
        "default `PLACESPEND_CACHE_MB`; it keeps every answer that cannot change under its key: "
        "tiles, pages of `/items` per address, downloads), Placespend with "
        "`PLACESPEND_CACHE_MB=0` (every answer made afresh: the cold tiles and the all-features "
        "target), and tipg, which keeps no answers. An earlier run of this bench found "
        "PostgreSQL keeping a slow generic plan for psycopg's prepared `/items` statement, and "
        "Placespend has prepared no statements since. "
        "Placespend and peer figures are medians over the rounds (passes, repeats); the ratio "
        "is the median of each round's own ratio (each round measures Placespend and then its "
        "peer on the same addresses, so the two see the same load on the machine). tipg serves "
        "two sources made from the same published rows: "
        f"`{TIPG_VIEW}` (bench.bench's view, geometry computed per row, so no spatial index) "
        f"and `{TIPG_TABLE}` (the same rows copied into a table with a GiST index). The "
        "targets are against the indexed table, tipg's stronger setup; the view's figures "
        "are in the tables below.\n")
    for layer, lay in res["layers"].items():
        L += layer_markdown(layer, lay, res)
    L.append("## Notes\n")
    for note in res.get("notes", []):
        L.append(f"- {note}")
    L.append("\n## Machine\n")
    L.append("| fact | value |\n|---|---|")
    for k in ("date_utc", "nproc", "cpu_model", "memory_gib", "os", "python", "git_commit",
              "git_tree_modified_outside_bench", "load_average_at_start", "load_average_at_end"):
        L.append(f"| {k} | {m.get(k)} |")
    if m.get("modified_outside_bench"):
        L.append(f"| uncommitted files measured | {', '.join(m['modified_outside_bench'])} |")
    L.append(f"| wall time of this run | {res.get('wall_s', 0):.0f} s |")
    L.append("\n| software | version |\n|---|---|")
    for k, v in res["versions"].items():
        L.append(f"| {k} | {v} |")
    path.write_text("\n".join(L) + "\n")


def layer_markdown(layer: str, lay: dict[str, Any], res: dict[str, Any]) -> list[str]:
    L = [f"## {LABELS[layer]}\n"]
    if "error" in lay:
        return [*L, f"Failed: {lay['error']}\n"]
    L.append(f"Collection `{lay['collection']}` (run {lay['run_id']}, {lay['features']:,} "
             f"features) in database `{lay['database']}`, published in {lay['prepare_s']:.0f} s "
             f"(not timed against anything). Server RSS at the end: " + ", ".join(
                 f"{k} {v / 2**20:,.0f} MB" for k, v in lay["server_rss_bytes_at_end"].items())
             + ".\n")
    t = lay.get("tiles", {})
    if t and "error" not in t:
        b, tb = t["placespend_tile_bytes"], t["tipg_tile_bytes"]
        L.append(f"### Tiles\n\n{t['tiles']} tiles over the layer's TileJSON bounds, per zoom "
                 f"{t['tiles_per_zoom']} (every tile at a zoom, or a seeded sample). Placespend's "
                 f"address is its TileJSON's `{t['tilejson_template']}`; tipg's is "
                 f"`/collections/{TIPG_TABLE}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}`. "
                 f"Placespend: {b['empty (204)']} empty (204), median {b['median']:,.0f} bytes, "
                 f"largest {b['max']:,}; tipg: {tb['empty']} empty, median {tb['median']:,.0f} "
                 f"bytes, largest {tb['max']:,} (tipg does not simplify; Placespend simplifies to "
                 f"the tile's pixel). Empty/non-empty agree on {t['nonempty_agree']}/{t['tiles']}"
                 ".\n")
        fp, tf = t["placespend_first_pass"], t["tipg_first_pass"]
        L.append(f"First pass, each tile once, {fp['connections']} connections (Python client): "
                 f"Placespend making and caching each tile {fp['req_per_s']:,.1f} req/s "
                 f"(p50 {fp['p50_ms']:.0f} ms); tipg {tf['req_per_s']:,.1f} req/s (p50 "
                 f"{tf['p50_ms']:.0f} ms). Placespend's RSS after it: "
                 f"{t['placespend_rss_after_warming_bytes'] / 2**20:,.0f} MB.\n")
        L.append(f"| warm tiles | {RATE_HEAD}")
        L.append(RATE_RULE)
        for key, label in (("placespend", "Placespend"), ("tipg_table", "tipg, indexed table"),
                           ("tipg_view", "tipg, view"),
                           ("placespend_gzip", "Placespend, Accept-Encoding: gzip"),
                           ("tipg_table_gzip", "tipg, indexed table, Accept-Encoding: gzip")):
            for n, g in enumerate(t["warm"].get(key, []), 1):
                L.append(rate_row(label, n, g))
        pc = t.get("python_client_check")
        if pc:
            wrk = t["warm_median_req_per_s"]["placespend"]
            L.append(rate_row("Placespend, Python client", 1, pc))
            L.append(f"\nThe Python client (8 threads, `http.client`) on the same warm tiles "
                     f"reaches {pc['req_per_s']:,.0f} req/s against wrk's {wrk:,.0f} "
                     f"({pc['req_per_s'] / wrk:.0%}; its process' CPU "
                     f"{pc['client_cpu_share']:.0%} of a core, the server's "
                     f"{pc['server_cpu_share']:.0%}): "
                     + ("at this rate the Python client is what limits, so wrk's figure is the "
                        "one to read." if pc["req_per_s"] < 0.8 * wrk else
                        "close to wrk's, so at this rate the client is not what limits.")
                     + "\n")
        c = t["cold"]
        s = c["sequential"]
        L.append(f"\nCold tiles: {c['tiles']} non-empty tiles, {c['passes']} passes, tile by "
                 "tile Placespend (cache 0, one keep-alive connection) and PostGIS alone "
                 "(`store.features.tile_query` on one psycopg connection) in turn. Same bytes: "
                 f"{s['identical_bytes']}. Placespend looks the layer up before each cold tile "
                 f"(`get_layer`, {c['get_layer_ms_median']:.2f} ms alone).\n")
        two = c["two_connections"]["ms_per_tile"]
        L.append("| cold tiles | PostGIS alone | Placespend | ratio |")
        L.append("|---|---|---|---|")
        mm = s["mean_ms_per_tile"]
        bp = s["mean_ms_per_tile_by_pass"]
        each = ", ".join(f"{a / b:.2f}" for a, b in zip(bp["placespend"], bp["postgis"],
                                                       strict=True))
        L.append(f"| sequential, mean ms per tile (median of passes) | {mm['postgis']:.2f} | "
                 f"{mm['placespend']:.2f} | {mm['placespend'] / mm['postgis']:.2f}x (each "
                 f"pass: {each}) |")
        md = s["median_ms_per_tile"]
        L.append(f"| sequential, median ms of one tile | {md['postgis']:.2f} | "
                 f"{md['placespend']:.2f} | median of per-tile ratios "
                 f"{s['tile_ratio_median']:.2f}x |")
        L.append(f"| 2 connections, wall ms per tile | {two['postgis']:.2f} | "
                 f"{two['placespend']:.2f} | {two['placespend'] / two['postgis']:.2f}x |")
        for z, v in s["median_ms_by_zoom"].items():
            L.append(f"| z={z} ({v['tiles']} tiles), median ms | {v['postgis_ms']:.2f} | "
                     f"{v['placespend_ms']:.2f} | {v['placespend_ms'] / v['postgis_ms']:.2f}x |")
        L.append(f"\nPlacespend's own time (Server-Timing) per cold tile: "
                 f"{mm['placespend_server_timing']:.2f} ms (mean).\n")
    elif t:
        L.append(f"### Tiles\n\nFailed: {t['error']}\n")
    i = lay.get("items", {})
    if i and "error" not in i:
        f = i["features_per_box"]
        n, bpm = i["boxes"], i["response_bytes_median"]
        L.append(
            f"### Items in small boxes\n\n{n} boxes of {i['box_side_degrees']:.4f} degrees a "
            "side (the median ward's area, in square degrees), around seeded wards; "
            f"`limit=100`. Placespend's target figure is on the run-pinned address "
            f"(`{i['first_address']['pinned']}` for the first box: the citable address its "
            "collection's pinned links hand out, pinned to the run its TileJSON's tiles are), "
            "each address asked for once "
            "first, so every page is served from its byte cache. Beside it: the unpinned "
            "addresses (warm too: each page is kept per address, but the collection's current "
            "run is looked up in the database on each request) and the pinned addresses on the "
            "server with `PLACESPEND_CACHE_MB=0` (every page made afresh). tipg keeps no "
            "answers: every request queries PostGIS.\n")
        L.append(
            f"Features per box: Placespend median {f['placespend_pinned']['median']} "
            f"({f['placespend_pinned']['min']}-{f['placespend_pinned']['max']}), tipg "
            f"{f['tipg_table']['median']}; against tipg, the same count in "
            f"{i['boxes_with_same_count']}/{n} boxes, the same features (ids) in "
            f"{i['boxes_with_same_features']}/{n}, the same `numberMatched` in "
            f"{i['boxes_with_same_number_matched']}/{n}; Placespend's pinned, unpinned and "
            f"no-cache pages hold the same features in {i['boxes_placespend_pages_agree']}/{n}. "
            f"Median response bytes: Placespend {bpm['placespend_pinned']:,.0f}, tipg "
            f"{bpm['tipg_table']:,.0f}.\n")
        L.append(f"| items | {RATE_HEAD}")
        L.append(RATE_RULE)
        for key, label in (("placespend_pinned", "Placespend, run-pinned, cached (target)"),
                           ("tipg_table", "tipg, indexed table"),
                           ("placespend_unpinned", "Placespend, unpinned, cached"),
                           ("placespend_cold", "Placespend, run-pinned, cache 0"),
                           ("tipg_view", "tipg, view")):
            for r, g in enumerate(i["runs"].get(key, []), 1):
                L.append(rate_row(label, r, g))
        h = i["httpx_load_test_first_box"]
        L.append("\n`bench.bench.load_test` (httpx in this process) on the first box alone: "
                 + "; ".join(f"{k} sequential {v['sequential']['req_per_s']:,.1f} req/s, "
                             f"{v['concurrent']['connections']} connections "
                             f"{v['concurrent']['req_per_s']:,.1f} req/s" for k, v in h.items())
                 + ".\n")
    elif i:
        L.append(f"### Items in small boxes\n\nFailed: {i['error']}\n")
    a = lay.get("all_features", {})
    if a and "error" not in a:
        m = a["median_s"]

        def row(label: str, key: str) -> str:
            return (f"| {label} | {m[key]:.3f} | "
                    + ", ".join(f"{v:.3f}" for v in a[f"{key}_s"]) + " |")

        L.append(f"### All {a['features']:,} wards as one GeoJSON page\n")
        L.append(f"`GET {a['path']}` on one keep-alive connection to the server with "
                 f"`PLACESPEND_CACHE_MB=0`, which makes the page on every request "
                 f"({a['placespend_bytes']:,} bytes, {a['placespend_features']:,} features; the "
                 "features are the same text as `store.features.items` returns: "
                 f"{'yes' if a['same_features_text'] else 'NO'}) against "
                 "`store.features.items(conn, layer, limit=N)` alone on a psycopg connection "
                 "(the `json_agg` query and its text fetched), in turn; and the same address on "
                 "the server with its cache on, where every repeat is the page kept from the "
                 "first (so it does not measure making the page).\n")
        L.append("| all features | median s | every repeat (s) |")
        L.append("|---|---|---|")
        L.append(row("json_agg alone (store.features.items)", "json_agg"))
        L.append(row("Placespend, cache 0, HTTP (target)", "placespend_cold"))
        L.append(row("Placespend, cache 0, its own time (Server-Timing)",
                     "placespend_cold_server_timing"))
        L.append(row("Placespend, cached, HTTP", "placespend_warm"))
        L.append(row("Placespend, cached, its own time (Server-Timing)",
                     "placespend_warm_server_timing"))
        if "tipg_table" in m:
            L.append(row(f"tipg, indexed table (for scale; {a['tipg_table_bytes']:,} bytes)",
                         "tipg_table"))
        L.append("")
    elif a:
        L.append(f"### All wards as one GeoJSON page\n\nFailed: {a['error']}\n")
    return L


RATE_HEAD = ("round | client | req/s | p50 ms | p95 ms | bytes a response | passes over the list "
             "| errors | server CPU | machine busy before |")
RATE_RULE = "|---|---|---|---|---|---|---|---|---|---|---|"


def rate_row(label: str, n: int, g: dict[str, Any]) -> str:
    errors = g.get("socket_errors", 0) + g.get("status_errors", 0)
    if "statuses" in g:
        errors = sum(v for k, v in g["statuses"].items() if k not in ("200", "204"))
    passes = g.get("passes_over_list")
    return (f"| {label} | {n} | {g['client'].split(' ')[0]} | {g['req_per_s']:,.1f} | "
            f"{g['p50_ms']:.1f} | {g['p95_ms']:.1f} | {g['bytes_per_request']:,.0f} | "
            f"{'–' if passes is None else f'{passes:.1f}'} | {errors} | "
            f"{g['server_cpu_share']:.0%} | "
            f"{'–' if 'busy_before' not in g else format(g['busy_before'], '.0%')} |")


def notes(res: dict[str, Any]) -> list[str]:
    """What the figures of this run say about why a target is or is not met."""
    out = []
    for layer, lay in res["layers"].items():
        t = lay.get("tiles", {})
        if t and "error" not in t:
            w = t["warm_median_req_per_s"]
            warm = t["warm"]["placespend"]
            cpu = statistics.median(g["server_cpu_share"] for g in warm)
            out.append(f"{layer}, warm tiles: Placespend's one uvicorn worker used {cpu:.0%} of a "
                       f"core at {w['placespend']:,.0f} req/s, about "
                       f"{1e3 * cpu / w['placespend']:.2f} ms of CPU a cached tile: the rate is "
                       "the Python HTTP stack's (uvicorn on uvloop and httptools, Starlette's "
                       "middleware, the socket write; a cached pinned tile is answered before "
                       "routing), not the cache's. tipg's rate is its database queries' (it "
                       "keeps no tiles: PostGIS builds every tile it is asked for).")
            if "placespend_gzip" in w:
                b = t["warm_bytes_per_request"]
                out.append(
                    f"{layer}, warm tiles as a browser asks for them (`Accept-Encoding: gzip`): "
                    f"Placespend {w['placespend_gzip']:,.1f} req/s ({b['placespend_gzip']:,.0f} "
                    f"bytes a response) against {w['placespend']:,.1f} uncompressed "
                    f"({b['placespend']:,.0f} bytes), tipg {w['tipg_table_gzip']:,.1f} "
                    f"({w['placespend_gzip'] / w['tipg_table_gzip']:.1f}x): "
                    + ("Placespend compresses the cached tile again for every request."
                       if w["placespend_gzip"] < 0.5 * w["placespend"] else
                       "the compressed tile is kept too, so compression costs little."))
            if "tipg_view" in w:
                out.append(f"{layer}: tipg on bench.bench's view serves warm tiles at "
                           f"{w['tipg_view']:,.1f} req/s against {w['tipg_table']:,.1f} from the "
                           "indexed table: the view computes every row's geometry before it can "
                           "filter by the tile, so it is no fair peer for tiles or boxes.")
            c = t["cold"]["sequential"]["mean_ms_per_tile"]
            extra = c["placespend"] - c["postgis"]
            out.append(
                f"{layer}, cold tiles: Placespend adds {extra:.2f} ms to a tile on average "
                f"(PostGIS alone {c['postgis']:.2f} ms), roughly the same for every tile (see the "
                f"rows by zoom; a little more for the largest): the HTTP stack, a pooled "
                f"connection, and the layer looked up "
                f"({t['cold']['get_layer_ms_median']:.2f} ms alone) before the tile query. "
                f"Within 1.25x only for tiles PostGIS takes over {extra / 0.25:.1f} ms to make.")
        i = lay.get("items", {})
        if i and "error" not in i:
            m = i["median_req_per_s"]
            cpu = {k: statistics.median(g["server_cpu_share"] for g in v)
                   for k, v in i["runs"].items()}
            pin, cold = m["placespend_pinned"], m["placespend_cold"]
            t = lay.get("tiles", {})
            tile_cpu_ms = None if not t or "error" in t else 1e3 * statistics.median(
                g["server_cpu_share"] for g in t["warm"]["placespend"]
            ) / t["warm_median_req_per_s"]["placespend"]
            out.append(
                f"{layer}, items: Placespend on its run-pinned addresses, every page kept, "
                f"{pin:,.1f} req/s (its worker {cpu['placespend_pinned']:.0%} of a core, "
                f"{1e3 * cpu['placespend_pinned'] / pin:.2f} ms of CPU a page); unpinned "
                f"{m['placespend_unpinned']:,.1f} req/s (kept too, but the collection's current "
                f"run is looked up in the database on each request: "
                f"{1e3 * cpu['placespend_unpinned'] / m['placespend_unpinned']:.2f} ms of CPU a "
                f"page); with no cache {cold:,.1f} req/s (every page made: the query and its "
                f"JSON; {1e3 * cpu['placespend_cold'] / cold:.2f} ms of CPU a page), so the kept "
                f"page is {pin / cold:.1f}x the made one. tipg {m['tipg_table']:,.1f} req/s "
                f"(its worker {cpu['tipg_table']:.0%} of a core): it keeps nothing, so every "
                "request is a PostGIS query. "
                + (f"A kept page costs {1e3 * cpu['placespend_pinned'] / pin:.2f} ms of CPU, a "
                   f"kept tile {tile_cpu_ms:.2f} ms: " if tile_cpu_ms else "")
                + "a kept tile is answered by middleware before routing, while a kept page "
                "still takes the endpoint's path: FastAPI's routing and validation of the "
                "query, the sync endpoint and its connection dependency on the thread pool, a "
                "pooled connection checked out, the page's key worked out.")
            if i["boxes_with_same_features"] < i["boxes"]:
                out.append(f"{layer}, items: Placespend's features differ from tipg's in "
                           f"{i['boxes'] - i['boxes_with_same_features']} of {i['boxes']} "
                           "boxes (see the ids in serving.json's box list).")
        a = lay.get("all_features", {})
        if a and "error" not in a:
            m = a["median_s"]
            out.append(
                f"{layer}, all features with no cache: Placespend's own time "
                f"{m['placespend_cold_server_timing']:.3f} s of its {m['placespend_cold']:.3f} s; "
                f"json_agg alone {m['json_agg']:.3f} s: the page is the query's text with a "
                "header put in front, so nearly all of it is the database's. The kept page on "
                f"the cached server: {m['placespend_warm']:.3f} s, "
                f"{1e3 * m['placespend_warm_server_timing']:.1f} ms of it the server's own; the "
                f"rest is {a['placespend_bytes'] / 1e6:.0f} MB through the loopback socket and "
                "read by the client.")
    return out


# ---------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", choices=("london", "national", "both"), default="both")
    ap.add_argument("--quick", action="store_true",
                    help="a short check: few tiles and boxes, 2 s runs, one round")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--duration", type=float, default=None, help="seconds per rate run")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of Placespend then tipg")
    ap.add_argument("--repeats", type=int, default=None, help="passes over the cold tiles")
    ap.add_argument("--tiles-per-zoom", type=int, default=None)
    ap.add_argument("--cold-tiles", type=int, default=None, help="most cold tiles")
    ap.add_argument("--boxes", type=int, default=None, help="small boxes for /items")
    ap.add_argument("--all-repeats", type=int, default=None, help="repeats of all features")
    ap.add_argument("--tipg-all-repeats", type=int, default=None)
    ap.add_argument("--skip-view", action="store_true", help="no runs against tipg's view")
    ap.add_argument("--python-client", action="store_true", help="no wrk, even if installed")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    quick = {"duration": 2.0, "rounds": 1, "repeats": 2, "tiles_per_zoom": 6,
             "cold_tiles": 16, "boxes": 8, "all_repeats": 2, "tipg_all_repeats": 1}
    full = {"duration": 8.0, "rounds": 3, "repeats": 3, "tiles_per_zoom": 30,
            "cold_tiles": 60, "boxes": 24, "all_repeats": 7, "tipg_all_repeats": 2}
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    started = time.perf_counter()
    res: dict[str, Any] = {"args": vars(args), "machine": machine_facts(),
                           "versions": library_versions(), "layers": {}}
    for name in ("uvloop", "httptools"):
        try:
            res["versions"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            res["versions"][name] = "not installed"
    res["versions"]["wrk"] = wrk_version() or "not installed"
    res["machine"]["modified_outside_bench"] = modified_files()
    res["client"] = ("wrk (one thread, a separate process) for the rates; a Python client "
                     "(http.client threads) for the counted passes"
                     if wrk_path() and not args.python_client else
                     "the Python client (http.client threads, in the bench process): wrk is "
                     "not installed" + (" (--python-client)" if args.python_client else ""))
    say(f"machine: {res['machine']['nproc']} cores, {res['machine']['cpu_model']}; "
        f"load generator: {res['versions']['wrk']}")
    OUT.mkdir(exist_ok=True)
    for name in (("london", "national") if args.layer == "both" else (args.layer,)):
        try:
            res["layers"][name] = bench_layer(name, args, res["versions"])
        except Exception as exc:  # noqa: BLE001 - recorded in the results instead
            res["layers"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc()
    res["wall_s"] = time.perf_counter() - started
    res["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    res["targets"] = targets(res)
    res["notes"] = notes(res)
    save_results(res, "serving", write_markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
