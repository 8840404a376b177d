"""Load on loopback with a run publishing at the same time: tiles, items and budgets.

Run through ``bash bench/run load [--quick]`` (the project's own ``.venv``: no peers), or
``.venv/bin/python -m bench.load`` from the checkout. Writes ``bench/results/load.json`` (every
figure) and ``bench/results/load.md`` (the table). ``tests/test_load_consistency.py`` imports
the same machinery (``prepare``, ``make_probes``, ``expect``, ``Publisher``, ``hammer``) and runs
it small, bounded by count.

1. A database of its own (``placespend_bench_load``) with the embedded data loaded and two runs
   of 2014-15 published to the same collections: **A**, the defaults, and **B**, a what-if run
   whose proxy table spreads every line by residents aged 65 and over (so every ward's figures
   differ).
2. A fixed set of *unpinned* requests (no ``?run=``): pages of ``/items`` (plain, offset,
   bbox; Hackney's 21 wards and London's 630), vector tiles over Hackney at zooms 10 to 14,
   and ``POST /neighbourhoods/budget`` for three polygons. For each, the answer of run A and of
   run B is worked out before the load (the pinned ``?run=N`` answers, checked against the
   unpinned answer with A, then B, made current), as a fingerprint: for a page, the run it
   names, ``numberMatched`` and the sha256 of its features; for a tile, the sha256 of its bytes
   (gunzipped); for a budget, the run it names, its ``total_pence`` and the sha256 of the whole
   answer. Requests whose A and B answers are the same are left out (they tell nothing).
3. A publisher thread flips the current run A, B, A... (``placespend.runs.publish`` on a
   connection of its own) every ``--interval`` seconds, counting publishes.
4. ``--clients`` threads (httpx, one keep-alive client each) go round the requests of one
   endpoint type until ``--duration`` seconds or ``--max-requests`` requests, whichever comes
   first. Every answer must be A's or B's exactly: an error is any non-2xx answer or transport
   failure, a *mix* any answer that is neither (features of two runs in one page, a tile or a
   budget from neither, a page naming one run with the other's features).

Two servers (uvicorn, one worker each, as ``bench/serving.py`` starts them): Placespend with its
byte cache on (the default ``PLACESPEND_CACHE_MB``: the unpinned answers of both runs are kept,
so under load every request is the current run looked up plus a kept answer), and with
``PLACESPEND_CACHE_MB=0`` (every page and tile made afresh from the database while publishes
land). Each endpoint type on each server: a short round without publishing (for scale), then
the round with the publisher running. The budget endpoint's per-client rate limit is turned off
(``PLACESPEND_BUDGET_RATE_PER_MINUTE=0``): all the load comes from one loopback address.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import itertools
import json
import math
import multiprocessing
import os
import platform
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "bench" / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

DB_NAME = "placespend_bench_load"
HACKNEY = "hackney-wards-2014-spend-2014-15"
LONDON = "london-wards-2014-spend-2014-15"
KINDS = ("tiles", "items", "budget")
#: Run B's proxy table: every line by residents aged 65 and over (every ward's figures move).
WHAT_IF_TABLE = ("line,proxy,rationale\n"
                 "*,residents-65-plus,what if every line followed residents aged 65 and over\n")
#: What a browser sends: tiles come gzipped (the server keeps the gzipped bytes too).
HEADERS = {"Accept-Encoding": "gzip"}
T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[load {time.perf_counter() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- runs


def prepare(url: str) -> tuple[int, int]:
    """Load the embedded data into the (migrated) database; make and publish runs A and B.

    Returns (A, B). Both are published to every collection they have (Hackney's and London's
    wards, 2014-15), B first, so A is current afterwards.
    """
    from placespend.load import load_embedded
    from placespend.runs import RunRequest, make_run, publish
    from store.db import connect

    with tempfile.TemporaryDirectory() as tmp, connect(url) as conn:
        table = Path(tmp) / "what-if-65-plus.csv"
        table.write_text(WHAT_IF_TABLE)
        load_embedded(conn)
        a = make_run(conn, RunRequest())
        b = make_run(conn, RunRequest(proxy_table=table))
        if a.run_id == b.run_id or set(a.collections) != set(b.collections):
            raise RuntimeError(f"runs A {a} and B {b} are not two runs of the same collections")
        publish(conn, b.run_id)
        publish(conn, a.run_id)
    return a.run_id, b.run_id


def publish_run(conn: Any, run_id: int) -> list[str]:
    """Make ``run_id`` current and commit (``publish`` on a connection that is not autocommit
    writes inside the connection's open transaction, seen by nobody until it commits)."""
    from placespend.runs import publish

    ids = publish(conn, run_id)
    if not conn.autocommit:
        conn.commit()
    return ids


def _flip(url: str, runs: tuple[int, int], interval: float, count: Any, ready: Any,
          halt: Any, results: Any) -> None:
    """The publisher process: publish runs[1], runs[0], runs[1]... until ``halt`` is set."""
    from store.db import connect

    ms: list[float] = []
    errors: list[str] = []
    try:
        with connect(url, autocommit=True) as conn:
            ready.set()
            for i in itertools.count(1):
                if halt.is_set():
                    break
                t = time.perf_counter()
                publish_run(conn, runs[i % 2])
                ms.append(1e3 * (time.perf_counter() - t))
                with count.get_lock():
                    count.value += 1
                halt.wait(interval)
    except Exception as exc:  # noqa: BLE001 - sent back; the caller checks
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        ready.set()
        results.put((ms, errors))


class Publisher:
    """Flip the current run between ``runs`` every ``interval`` s, counting the publishes.

    A process of its own (as ``placespend publish`` would be), so that the client threads'
    hold on this process's GIL does not slow the publishes down.
    """

    def __init__(self, url: str, runs: tuple[int, int], interval: float = 0.05) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._count = ctx.Value("q", 0)
        self._ready, self._halt, self._results = ctx.Event(), ctx.Event(), ctx.Queue()
        self._proc = ctx.Process(target=_flip, name="publisher", daemon=True, args=(
            url, runs, interval, self._count, self._ready, self._halt, self._results))
        self.ms: list[float] = []
        self.errors: list[str] = []

    @property
    def count(self) -> int:
        return int(self._count.value)

    def start_flipping(self) -> Publisher:
        self._proc.start()
        if not self._ready.wait(120):
            self.errors.append("the publisher process did not start within 120 s")
        return self

    def stop(self) -> None:
        self._halt.set()
        try:
            self.ms, errors = self._results.get(timeout=60)
            self.errors += errors
        except queue.Empty:
            self.errors.append("the publisher process sent no results")
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()


@contextmanager
def publishing(url: str | None, runs: tuple[int, int], interval: float) -> Iterator[
        Publisher | None]:
    """A publisher running for the block (none when ``url`` is None)."""
    if url is None:
        yield None
        return
    pub = Publisher(url, runs, interval).start_flipping()
    try:
        yield pub
    finally:
        pub.stop()


# ---------------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class Probe:
    """One unpinned request of the mix."""

    kind: str  # tiles / items / budget
    label: str
    path: str  # the unpinned address
    body: str | None = None  # POST body (JSON text) for a budget

    def address(self, run: int | None = None) -> str:
        if run is None:
            return self.path
        return self.path + ("&" if "?" in self.path else "?") + f"run={run}"

    def send(self, client: httpx.Client, run: int | None = None) -> httpx.Response:
        if self.body is None:
            return client.get(self.address(run))
        return client.post(self.address(run), content=self.body,
                           headers={"Content-Type": "application/json"})


def tiles_over(bbox: list[float], z: int) -> list[tuple[int, int, int]]:
    """WebMercatorQuad tiles (z, x, y) covering a lon/lat box."""
    n = 2 ** z

    def col(lon: float) -> int:
        return min(n - 1, int((lon + 180.0) / 360.0 * n))

    def row(lat: float) -> int:
        r = math.radians(lat)
        return min(n - 1, int((1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * n))

    return [(z, x, y) for x in range(col(bbox[0]), col(bbox[2]) + 1)
            for y in range(row(bbox[3]), row(bbox[1]) + 1)]


def _polygon(ring: list[tuple[float, float]], name: str | None = None) -> str:
    geometry = {"type": "Polygon", "coordinates": [[list(p) for p in [*ring, ring[0]]]]}
    if name is None:
        return json.dumps(geometry)
    return json.dumps({"type": "Feature", "properties": {"name": name}, "geometry": geometry})


def make_probes(client: httpx.Client, per_zoom: int = 4) -> list[Probe]:
    """The mix: pages, tiles over Hackney (from its extent) and three budget polygons."""
    extent = client.get(f"/collections/{HACKNEY}")
    extent.raise_for_status()
    box = extent.json()["extent"]["spatial"]["bbox"][0]  # Hackney, lon/lat
    bbox = ",".join(f"{v:.5f}" for v in box)
    inner = "-0.085,51.535,-0.06,51.55"  # Dalston and De Beauvoir
    out = [
        Probe("items", "Hackney, limit=50", f"/collections/{HACKNEY}/items?limit=50"),
        Probe("items", "Hackney, limit=10&offset=5",
              f"/collections/{HACKNEY}/items?limit=10&offset=5"),
        Probe("items", "Hackney, bbox (Dalston)",
              f"/collections/{HACKNEY}/items?limit=100&bbox={inner}"),
        Probe("items", "London, limit=50&offset=100",
              f"/collections/{LONDON}/items?limit=50&offset=100"),
        Probe("items", "London, bbox (Hackney)",
              f"/collections/{LONDON}/items?limit=100&bbox={bbox}"),
    ]
    for z in (10, 11, 12, 13, 14):
        found = tiles_over(box, z)
        step = max(1, len(found) // per_zoom)
        for t in found[::step][:per_zoom]:
            out.append(Probe("tiles", f"Hackney {t[0]}/{t[1]}/{t[2]}",
                             f"/collections/{HACKNEY}/tiles/WebMercatorQuad/{t[0]}/{t[1]}/{t[2]}"))
    for z, x, y in tiles_over(box, 12)[:2]:
        out.append(Probe("tiles", f"London {z}/{x}/{y}",
                         f"/collections/{LONDON}/tiles/WebMercatorQuad/{z}/{x}/{y}"))
    out += [
        Probe("budget", "Dalston and De Beauvoir (Feature)", "/neighbourhoods/budget",
              _polygon([(-0.085, 51.535), (-0.06, 51.535), (-0.06, 51.55), (-0.085, 51.55)],
                       "Dalston and De Beauvoir")),
        Probe("budget", "Hackney Central box (Polygon)", "/neighbourhoods/budget",
              _polygon([(-0.062, 51.54), (-0.04, 51.54), (-0.04, 51.555), (-0.062, 51.555)])),
        Probe("budget", "Stoke Newington triangle (Polygon)", "/neighbourhoods/budget",
              _polygon([(-0.085, 51.558), (-0.065, 51.562), (-0.077, 51.572)])),
    ]
    return out


FEATURES_MARK = b', "features": '


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()[:16]


def fingerprint(probe: Probe, r: httpx.Response) -> str:
    """What identifies an answer's content (see the module's docstring)."""
    if probe.kind == "tiles":
        return f"{r.status_code} {len(r.content)} bytes sha256 {_sha(r.content)}"
    if probe.kind == "items":
        # The page is its head with PostGIS's features text spliced in: the head is parsed,
        # the features hashed as sent (cheap for the client, and stricter than parsed JSON).
        cut = r.content.find(FEATURES_MARK)
        if cut < 0:
            doc = r.json()
            feats = json.dumps(doc["features"], sort_keys=True, separators=(",", ":")).encode()
        else:
            doc = json.loads(r.content[:cut] + b"}")
            feats = r.content[cut + len(FEATURES_MARK):]
        return (f"run {doc['run']} matched {doc['numberMatched']} returned "
                f"{doc['numberReturned']} features sha256 {_sha(feats)}")
    # the whole answer, its links without the server's address (so two servers compare)
    at = r.request.url
    doc = json.loads(r.text.replace(f"{at.scheme}://{at.netloc.decode()}", ""))
    whole = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return f"run {doc['run']} total_pence {doc['total_pence']} sha256 {_sha(whole)}"


@dataclass
class Expectation:
    """Each probe's answer under run A and under run B (fingerprints)."""

    runs: tuple[int, int]
    probes: list[Probe]
    answers: dict[Probe, tuple[str, str]]
    left_out: list[str] = field(default_factory=list)  # probes that cannot tell A from B

    def which(self, probe: Probe, fp: str) -> str | None:
        a, b = self.answers[probe]
        return "A" if fp == a else "B" if fp == b else None


class SetupMismatch(RuntimeError):
    """An unpinned answer differs from the pinned answer of the run that is current."""


def expect(client: httpx.Client, url: str, probes: list[Probe], runs: tuple[int, int]
           ) -> Expectation:
    """Each probe's A and B answers, pinned (``?run=N``), checked unpinned with A then B current.

    Leaves A current. Raises :class:`SetupMismatch` naming the request if an unpinned answer is
    not the pinned one of the current run, or a request fails.
    """
    from store.db import connect

    answers: dict[Probe, tuple[str, str]] = {}
    left_out: list[str] = []
    for p in probes:
        got = []
        for run in runs:
            r = p.send(client, run)
            if p.kind == "tiles" and r.status_code == 204:
                got.append("204 empty")
                continue
            if r.status_code != 200:
                raise SetupMismatch(f"{p.label}: {p.address(run)} answered {r.status_code}: "
                                    f"{r.text[:300]}")
            got.append(fingerprint(p, r))
        if got[0] == got[1]:
            left_out.append(f"{p.label} ({p.kind}): "
                            + ("empty" if got[0] == "204 empty" else "the same under both runs"))
        else:
            answers[p] = (got[0], got[1])
    with connect(url, autocommit=True) as conn:
        for i in (1, 0):  # B current, then A (left current)
            publish_run(conn, runs[i])
            for p, fps in answers.items():
                r = p.send(client)
                fp = fingerprint(p, r) if r.status_code == 200 else f"HTTP {r.status_code}"
                if fp != fps[i]:
                    raise SetupMismatch(
                        f"{p.label}: unpinned {p.path} with run {runs[i]} current answered "
                        f"{fp!r}, its pinned ?run={runs[i]} answer {fps[i]!r}")
    return Expectation(runs, list(answers), answers, left_out)


# ---------------------------------------------------------------------------------- load


@dataclass
class Tally:
    """One endpoint type's figures in one round."""

    kind: str
    requests: int = 0
    errors: int = 0
    mixes: int = 0
    seen: dict[str, int] = field(default_factory=lambda: {"A": 0, "B": 0})
    ms: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # the first few errors and mixes

    def note(self, what: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(what)


def hammer(base: str, expected: Expectation, probes: list[Probe], *, clients: int,
           max_requests: int, max_seconds: float | None = None,
           publisher: Publisher | None = None) -> dict[str, Any]:
    """``clients`` threads going round ``probes`` until ``max_requests`` or ``max_seconds``.

    Every answer is checked against A's and B's. Returns per kind (in ``kinds``) requests,
    errors, mixes, answers seen from A and from B, req/s, p50/p99 ms, and the round's wall
    time and publishes.
    """
    tallies = {k: Tally(k) for k in dict.fromkeys(p.kind for p in probes)}
    counter = itertools.count()
    lock = threading.Lock()
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds

    def worker() -> None:
        local = {k: Tally(k) for k in tallies}
        with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as client:
            while True:
                n = next(counter)
                if n >= max_requests or (deadline is not None and time.perf_counter() > deadline):
                    break
                p = probes[n % len(probes)]
                t = local[p.kind]
                s = time.perf_counter()
                try:
                    r = p.send(client)
                    body = r.content
                except httpx.HTTPError as exc:
                    t.ms.append(1e3 * (time.perf_counter() - s))
                    t.requests += 1
                    t.errors += 1
                    t.note(f"{p.label}: {p.path}: {type(exc).__name__}: {exc}")
                    continue
                t.ms.append(1e3 * (time.perf_counter() - s))
                t.requests += 1
                if not 200 <= r.status_code < 300:
                    t.errors += 1
                    t.note(f"{p.label}: {p.path}: HTTP {r.status_code}: {body[:200]!r}")
                    continue
                try:
                    fp = fingerprint(p, r)
                except (ValueError, KeyError) as exc:
                    fp = f"unreadable ({type(exc).__name__}: {exc})"
                got = expected.which(p, fp)
                if got is None:
                    t.mixes += 1
                    a, b = expected.answers[p]
                    t.note(f"MIX {p.label}: {p.path}: got {fp!r}; A {a!r}; B {b!r}")
                else:
                    t.seen[got] += 1
        with lock:
            for k, t in local.items():
                mine = tallies[k]
                mine.requests += t.requests
                mine.errors += t.errors
                mine.mixes += t.mixes
                mine.ms += t.ms
                for run, n in t.seen.items():
                    mine.seen[run] += n
                mine.examples += t.examples[: max(0, 10 - len(mine.examples))]

    published = publisher.count if publisher is not None else 0
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, name=f"client-{i}", daemon=True)
               for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - started
    published = (publisher.count - published) if publisher is not None else 0
    out: dict[str, Any] = {"wall_s": wall, "publishes": published, "clients": clients,
                           "kinds": {}}
    for k, t in tallies.items():
        ms = np.asarray(t.ms) if t.ms else np.zeros(1)
        out["kinds"][k] = {
            "requests": t.requests, "errors": t.errors, "mixes": t.mixes, "seen": t.seen,
            "req_per_s": t.requests / wall if wall else 0.0,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "examples": t.examples,
        }
    return out


# ---------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(url: str, cache_mb: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLACESPEND_")}
    env["DATABASE_URL"] = url
    env["PLACESPEND_BUDGET_RATE_PER_MINUTE"] = "0"  # all the load is one loopback client
    env["PLACESPEND_LOG_FORMAT"] = "text"
    if cache_mb is not None:
        env["PLACESPEND_CACHE_MB"] = str(cache_mb)
    return env


def start_server(stack: ExitStack, url: str, key: str, cache_mb: int | None) -> tuple[str, int]:
    """uvicorn (one worker) on the app factory on a free loopback port; (base URL, pid)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"load-{key}.log"
    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    stack.callback(handle.close)
    argv = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host",
            "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning",
            "--no-access-log"]
    proc = subprocess.Popen(argv, env=server_env(url, cache_mb), cwd=ROOT, stdout=handle,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    stack.callback(stop_server, proc)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-1500:]}")
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return base, proc.pid
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server did not answer within 90 s: {log.read_text()[-1500:]}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------- results


def machine_facts(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
        pointer = conn.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name ="
            " 'collection_current' AND table_schema = current_schema()").fetchone()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    versions = {}
    for name in ("placespend", "fastapi", "starlette", "uvicorn", "uvloop", "httptools",
                 "httpx", "psycopg"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "kernel": platform.release(),
        "python": platform.python_version(), "postgresql": pg,
        "postgis": postgis, "commit": commit, "versions": versions,
        "collection_current": pointer[0] if pointer else "missing",
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


SERVER_LABEL = {"cached": "cache on", "cold": "cache 0"}


def write_markdown(res: dict[str, Any], path: Path) -> None:
    m = res["machine"]
    a = res["args"]
    L = [
        "# Load on loopback with a run publishing at the same time",
        "",
        f"{m['date_utc']}; {m['nproc']} cores, Linux {m['kernel']}, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']}, PostGIS {m['postgis']}; commit `{m['commit']}`; "
        f"load average before {m['load_average_before']}, after "
        f"{m.get('load_average_after')}. `bash bench/run load"
        + (" --quick" if a["quick"] else "") + "` (bench/load.py).",
        "",
        f"Runs {res['runs']['A']} (A: the 2014-15 defaults) and {res['runs']['B']} (B: the same "
        "year, every line spread by residents aged 65 and over) published to the same two "
        f"collections; a publisher flipping the current run A, B, A... every "
        f"{1e3 * a['interval']:.0f} ms while {a['clients']} client threads (httpx) ask "
        "unpinned addresses (no `?run=`), each round until "
        f"{a['duration']:g} s or {a['max_requests']:,} requests. Every answer must be run A's "
        "or run B's exactly (fingerprints worked out beforehand): **mixes** counts any other.",
        "",
        "| server | endpoint | publishing | requests | req/s | p50 ms | p99 ms | errors "
        "| mixes | answers A / B | publishes in the round |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rounds"]:
        for kind, k in r["kinds"].items():
            L.append(
                f"| {SERVER_LABEL[r['server']]} | {kind} | {'yes' if r['publishing'] else 'no'} "
                f"| {k['requests']:,} | {k['req_per_s']:,.1f} | {k['p50_ms']:.1f} "
                f"| {k['p99_ms']:.1f} | {k['errors']} | {k['mixes']} "
                f"| {k['seen']['A']:,} / {k['seen']['B']:,} "
                f"| {r['publishes'] if r['publishing'] else '–'} |")
    t = res["totals"]
    L += [
        "",
        f"In all, under publishing: {t['requests']:,} requests, **{t['errors']} errors, "
        f"{t['mixes']} mixes**, {t['publishes']:,} publishes (each "
        f"{t['publish_p50_ms']:.1f} ms median, p99 {t['publish_p99_ms']:.1f} ms; "
        f"{t['publisher_errors']} publisher errors).",
        "",
        "The requests (each fingerprinted under A and under B; those the same under both left "
        "out):",
        "",
    ]
    for kind in KINDS:
        labels = [p for p in res["probes"] if p["kind"] == kind]
        L.append(f"- {kind} ({len(labels)}): " + "; ".join(
            f"`{p['path']}`" + (f" ({p['label']})" if kind == "budget" else "") for p in labels))
    if res["left_out"]:
        L.append(f"- left out: {'; '.join(res['left_out'])}")
    L += ["", "Notes:", ""]
    L += [f"- {n}" for n in res["notes"]]
    examples = [e for r in res["rounds"] for k in r["kinds"].values() for e in k["examples"]]
    if examples:
        L += ["", "First errors and mixes:", ""] + [f"- `{e}`" for e in examples[:20]]
    if res.get("error"):
        L += ["", f"**The benchmark failed:** `{res['error']}`"]
    path.write_text("\n".join(L) + "\n")


def notes(res: dict[str, Any]) -> list[str]:
    out = [
        "The machine's 2 cores are shared by the client threads, the server, PostgreSQL, the "
        "publisher and, while others work, their tests: read the figures as a floor and the "
        "rows against each other, not as capacity. Latency is the client's (request sent to "
        "body read), queueing in the Python client included.",
        "cache on: the unpinned answers of both runs are kept, per run (the key holds the "
        "run), so a request is the current run looked up in the database plus a kept answer; "
        "cache 0: every page and tile is made from the database while publishes land. A "
        "budget is always computed (its run read once, then everything from that run).",
        ("Publishing appends one `publication_event` row per collection, both in one "
         "transaction under the runs' advisory lock; `collection_current` is the view of each "
         "collection's latest event (migration 0008)"
         if res.get("machine", {}).get("collection_current") == "VIEW" else
         "Publishing moves only `collection_current` (one UPSERT of both collections' rows "
         "in one transaction, under the runs' advisory lock)")
        + "; an unpinned request reads which run is current once and answers the whole "
        "request from that run. The publisher is a process of its own (a connection in "
        "autocommit, each publish its own transaction), as `placespend publish` would be.",
    ]
    by = {(r["server"], kind, r["publishing"]): k for r in res["rounds"]
          for kind, k in r["kinds"].items()}
    for server in ("cached", "cold"):
        for kind in KINDS:
            quiet, busy = by.get((server, kind, False)), by.get((server, kind, True))
            if quiet and busy and quiet["req_per_s"]:
                q, b = quiet["req_per_s"], busy["req_per_s"]
                out.append(f"{SERVER_LABEL[server]}, {kind}: {b:,.1f} req/s publishing against "
                           f"{q:,.1f} without ({b / q:.2f}x; p99 {busy['p99_ms']:.1f} against "
                           f"{quiet['p99_ms']:.1f} ms).")
    return out


def totals(res: dict[str, Any], pub_ms: list[float], pub_errors: list[str]) -> dict[str, Any]:
    busy = [r for r in res["rounds"] if r["publishing"]]
    ks = [k for r in busy for k in r["kinds"].values()]
    ms = np.asarray(pub_ms) if pub_ms else np.zeros(1)
    return {
        "requests": sum(k["requests"] for k in ks), "errors": sum(k["errors"] for k in ks),
        "mixes": sum(k["mixes"] for k in ks), "publishes": sum(r["publishes"] for r in busy),
        "errors_without_publishing": sum(k["errors"] + k["mixes"] for r in res["rounds"]
                                         if not r["publishing"] for k in r["kinds"].values()),
        "publish_p50_ms": float(np.percentile(ms, 50)),
        "publish_p99_ms": float(np.percentile(ms, 99)),
        "publisher_errors": len(pub_errors), "publisher_error_text": pub_errors[:5],
    }


# ---------------------------------------------------------------------------------- main


def bench(args: argparse.Namespace, res: dict[str, Any]) -> None:
    from store import cluster
    from store.db import connect
    from store.migrate import migrate

    t = time.perf_counter()
    say(f"preparing database {DB_NAME}: the embedded data, runs A and B (about a minute)")
    url = cluster.fresh_database(DB_NAME)
    with ExitStack() as stack:
        if not args.keep_db:
            stack.callback(cluster.discard_database, DB_NAME)
        with connect(url) as conn:
            migrate(conn)
        runs = prepare(url)
        res["runs"] = {"A": runs[0], "B": runs[1]}
        res["prepare_s"] = time.perf_counter() - t
        res["machine"] = machine_facts(url)
        say(f"runs A {runs[0]} and B {runs[1]} published ({res['prepare_s']:.0f} s)")
        servers = {}
        for key, cache_mb in (("cached", None), ("cold", 0)):
            servers[key] = start_server(stack, url, key, cache_mb)
            say(f"server {SERVER_LABEL[key]} on {servers[key][0]}")
        with httpx.Client(base_url=servers["cached"][0], headers=HEADERS, timeout=120) as c:
            probes = make_probes(c)
        expected: dict[str, Expectation] = {}
        for key, (base, _) in servers.items():
            with httpx.Client(base_url=base, headers=HEADERS, timeout=120) as c:
                expected[key] = expect(c, url, probes, runs)
        kept = expected["cached"].probes
        if [p.label for p in expected["cold"].probes] != [p.label for p in kept]:
            raise RuntimeError("the two servers disagree on which requests tell A from B")
        if expected["cold"].answers != expected["cached"].answers:
            raise RuntimeError("the two servers' answers differ for the same run")
        res["probes"] = [{"kind": p.kind, "label": p.label, "path": p.path,
                          "A": expected["cached"].answers[p][0],
                          "B": expected["cached"].answers[p][1]} for p in kept]
        res["left_out"] = expected["cached"].left_out
        say(f"{len(kept)} requests tell A from B ({len(res['left_out'])} left out)")
        pub_ms: list[float] = []
        pub_errors: list[str] = []
        for key, (base, _) in servers.items():
            for kind in KINDS:
                mine = [p for p in kept if p.kind == kind]
                if not mine:
                    continue
                for busy, seconds in ((False, args.baseline), (True, args.duration)):
                    if seconds <= 0:
                        continue
                    with publishing(url if busy else None, runs, args.interval) as pub:
                        r = hammer(base, expected[key], mine, clients=args.clients,
                                   max_requests=args.max_requests, max_seconds=seconds,
                                   publisher=pub)
                    if pub is not None:
                        pub_ms += pub.ms
                        pub_errors += pub.errors
                    r.update(server=key, publishing=busy)
                    res["rounds"].append(r)
                    k = r["kinds"][kind]
                    say(f"{SERVER_LABEL[key]}, {kind}, publishing {busy}: "
                        f"{k['requests']:,} requests, {k['req_per_s']:,.1f} req/s, p50 "
                        f"{k['p50_ms']:.1f} ms, p99 {k['p99_ms']:.1f} ms, {k['errors']} errors, "
                        f"{k['mixes']} mixes, A/B {k['seen']['A']}/{k['seen']['B']}, "
                        f"{r['publishes']} publishes")
        res["totals"] = totals(res, pub_ms, pub_errors)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short check: 3 s rounds")
    ap.add_argument("--clients", type=int, default=8, help="client threads")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds per round with the publisher running (default 15; quick 3)")
    ap.add_argument("--baseline", type=float, default=None,
                    help="seconds per round without publishing, for scale (default 5; quick 1; "
                    "0: none)")
    ap.add_argument("--max-requests", type=int, default=None,
                    help="most requests per round (default 20,000; quick 2,000)")
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between publishes")
    ap.add_argument("--keep-db", action="store_true", help=f"leave {DB_NAME} behind")
    args = ap.parse_args()
    for name, full, quick in (("duration", 15.0, 3.0), ("baseline", 5.0, 1.0),
                              ("max_requests", 20_000, 2_000)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    res: dict[str, Any] = {"args": vars(args), "rounds": [], "probes": [], "left_out": [],
                           "runs": {}, "machine": {}}
    started = time.perf_counter()
    status = 0
    try:
        bench(args, res)
    except Exception as exc:  # noqa: BLE001 - written into the results too
        traceback.print_exc()
        res["error"] = f"{type(exc).__name__}: {exc}"
        status = 1
    res["wall_s"] = time.perf_counter() - started
    res.setdefault("machine", {})["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    res.setdefault("totals", totals(res, [], []))
    res["notes"] = notes(res)
    if not res["machine"].get("commit"):
        res["machine"].update(date_utc=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                              nproc=os.cpu_count(), kernel=platform.release(),
                              python=platform.python_version(), postgresql="?", postgis="?",
                              commit="?", load_average_before="?")
    t = res["totals"]
    if t["errors"] or t["mixes"] or t["publisher_errors"]:
        status = 1
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    write_markdown(res, RESULTS / "load.md")
    say("wrote bench/results/load.md and bench/results/load.json")
    print((RESULTS / "load.md").read_text())
    return status


if __name__ == "__main__":
    sys.exit(main())
