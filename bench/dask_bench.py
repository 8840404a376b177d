"""Single process against a 2-worker dask LocalCluster, on the synthetic national geography.

What is timed, on ``bench.synthetic``'s national layer (~35,000 zones, 7,000 wards, 300
agencies; cached on disk after the first generation):

1. **atoms**: ``geo.atoms.build_atoms(zones, wards)`` (2 threads, as the service runs it)
   against ``placespend.distributed.build_atoms(client, zones, wards)``.
2. **apportion**: ``allocation.pipeline.compute`` against ``placespend.distributed.compute``,
   for two sets of lines: ``national`` (one line per agency over its own area, as a national
   body's run) and ``national+random`` (those plus ``--random-lines`` lines over agencies,
   wards and the whole region, with signed amounts, 8 bodies, 10 functions, 3 proxies).
   The membership (atoms in each agency, ward and the region) is built once from the atoms
   (``geo.crosswalk.build_crosswalk_via_cuts``), outside the timings: both paths' atoms are
   identical, so both use it.

Single and cluster runs alternate, ``--repeats`` times each; min and median are reported, and
every cluster result is checked to equal the single one (atoms frame and geometry; the run's
product, slices and outcomes). The cluster's start-up is timed on its own and not counted.

The machine is shared, so each repeat waits (``--quiet-load``, ``--quiet-wait``) for the load
average to drop. And this VM hands memory that has been free for a few seconds back to its
host, which makes touching it again about 30 times slower than normal; so each path runs twice
in a row, step by step: *cold* (the step's first run) and *warm* (the same step again at once,
reusing memory the first run freed, as on a machine that keeps its memory); both are reported.

    .venv/bin/python bench/dask_bench.py [--repeats 3] [--random-lines 10000]

Writes ``bench/results/dask.json`` and ``bench/results/dask.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder comes first on the path and its bench.py would hide the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from allocation import pipeline  # noqa: E402
from bench.synthetic import national_cached  # noqa: E402
from geo.atoms import build_atoms  # noqa: E402
from geo.crosswalk import build_crosswalk_via_cuts, nested_crosswalk  # noqa: E402
from placespend import distributed as dist  # noqa: E402

PROXIES = ("residents-all", "residents-0-15", "residents-65-plus")
BODIES = tuple(f"body-{i}" for i in range(8))
MODES = ("cold", "warm")
COFOG = tuple(f"{i:02d}" for i in range(1, 11))


def lines_for(atoms: gpd.GeoDataFrame, geo, random_lines: int, seed: int = 5) -> dict:
    """The two line sets and the membership they need."""
    region = geo.region
    membership = pd.concat(
        [
            build_crosswalk_via_cuts(atoms, geo.wards, geo.agencies).assign(set="agencies"),
            nested_crosswalk(atoms).assign(set="wards"),
            build_crosswalk_via_cuts(atoms, geo.wards, region).assign(set="region"),
        ],
        ignore_index=True,
    ).rename(columns={"target_code": "code"})
    rng = np.random.default_rng(seed)
    agencies = geo.agencies["code"].tolist()
    national = pd.DataFrame({
        "line_id": np.arange(len(agencies)),
        "body": [BODIES[i % 3] for i in range(len(agencies))],
        "line": [f"agency spend {c}" for c in agencies],
        "cofog_code": rng.choice(COFOG, len(agencies)),
        "amount_pence": rng.integers(10**9, 10**11, len(agencies)),
        "area_set": "agencies",
        "area_code": agencies,
        "proxy": "residents-all",
    })
    n = random_lines
    kind = rng.choice(["agencies", "wards", "region"], n, p=[0.70, 0.29, 0.01])
    wards = geo.wards["code"].to_numpy(dtype=object)
    code = np.where(kind == "agencies", rng.choice(np.asarray(agencies, dtype=object), n),
                    np.where(kind == "wards", rng.choice(wards, n), region["code"].iloc[0]))
    extra = pd.DataFrame({
        "line_id": np.arange(len(agencies), len(agencies) + n),
        "body": rng.choice(BODIES, n),
        "line": [f"random {i}" for i in range(n)],
        "cofog_code": rng.choice(COFOG, n),
        "amount_pence": rng.integers(-10**8, 10**10, n),
        "area_set": kind,
        "area_code": code,
        "proxy": rng.choice(PROXIES, n),
    })
    both = pd.concat([national, extra], ignore_index=True)
    return {"membership": membership, "national": national, "national+random": both}


def same_atoms(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> bool:
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    return bool(shapely.equals_identical(a.geometry.to_numpy(), b.geometry.to_numpy()).all())


def same_run(a: pipeline.Run, b: pipeline.Run) -> bool:
    for name in ("product", "slices", "outcomes"):
        pd.testing.assert_frame_equal(getattr(a.apportionment, name),
                                      getattr(b.apportionment, name), check_exact=True)
    return True


def wait_quiet(threshold: float, timeout: float) -> float:
    """Wait (up to ``timeout`` s) for the 1-minute load average to fall below ``threshold``."""
    stop = time.monotonic() + timeout
    while os.getloadavg()[0] >= threshold and time.monotonic() < stop:
        time.sleep(5)
    return os.getloadavg()[0]


def stats(xs: list[float]) -> dict:
    return {"min": min(xs), "median": statistics.median(xs), "all": xs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--random-lines", type=int, default=10_000)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "out" / "synthetic-cache")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quiet-load", type=float, default=1.0,
                        help="before each repeat, wait for the load average to fall below this")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="longest wait (s) for a quiet machine before each repeat")
    args = parser.parse_args(argv)

    t = time.perf_counter()
    geo = national_cached(args.cache)
    print(f"geography: {len(geo.zones)} zones, {len(geo.wards)} wards, "
          f"{len(geo.agencies)} agencies ({time.perf_counter() - t:.1f} s to load)", flush=True)
    zones = geo.zones[["code", "geometry"]]
    wards = geo.wards[["code", "geometry"]]
    load_before = os.getloadavg()[0]

    t = time.perf_counter()
    client = dist.connect("local")
    startup = time.perf_counter() - t
    t = time.perf_counter()
    client.run(lambda: __import__("placespend.distributed") and None)  # import once
    imported = time.perf_counter() - t
    print(f"cluster: {sum(client.nthreads().values())} worker threads, started in "
          f"{startup:.2f} s, code imported in {imported:.2f} s", flush=True)

    reference = build_atoms(zones, wards)
    sets = lines_for(reference, geo, args.random_lines)
    membership = sets.pop("membership")
    inputs = {
        name: pipeline.Inputs(lines, pd.DataFrame(reference.drop(columns="geometry")),
                              geo.proxy_values, membership, "wards")
        for name, lines in sets.items()
    }
    want = {name: pipeline.compute(i) for name, i in inputs.items()}
    sizes = {
        "zones": len(zones), "wards": len(wards), "agencies": len(geo.agencies),
        "atoms": len(reference), "membership_rows": len(membership),
        **{f"lines_{k}": len(v.lines) for k, v in inputs.items()},
        **{f"product_rows_{k}": len(v.apportionment.product) for k, v in want.items()},
        **{f"slices_{k}": len(v.apportionment.slices) for k, v in want.items()},
    }
    print(json.dumps(sizes), flush=True)

    steps = ["atoms", *(f"apportion {k}" for k in inputs)]
    times = {(mode, path): {s: [] for s in steps}
             for mode in MODES for path in ("single", "dask")}
    identical: list[bool] = []
    loads: list[float] = []

    def one_run(path: str) -> None:
        """Every step once cold, then at once again (warm), checking every cluster result."""
        for step in steps:
            for mode in MODES:
                t = time.perf_counter()
                if step == "atoms":
                    got = (build_atoms(zones, wards) if path == "single"
                           else dist.build_atoms(client, zones, wards))
                else:
                    i = inputs[step.removeprefix("apportion ")]
                    got = pipeline.compute(i) if path == "single" else dist.compute(client, i)
                times[mode, path][step].append(time.perf_counter() - t)
                if path == "dask":
                    identical.append(
                        same_atoms(got, reference) if step == "atoms"
                        else same_run(got, want[step.removeprefix("apportion ")])
                    )
                del got
        print(f"{path:6s}: " + ", ".join(
            f"{s} {times['cold', path][s][-1]:.2f} / {times['warm', path][s][-1]:.2f} s"
            for s in steps), flush=True)

    for rep in range(args.repeats):
        for path in ("single", "dask") if rep % 2 == 0 else ("dask", "single"):
            loads.append(wait_quiet(args.quiet_load, args.quiet_wait))
            one_run(path)
    client.close()

    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": load_before, "load_at_each_start": loads,
                    "fresh_memory_s_per_gb": fresh_memory_cost()},
        "sizes": sizes,
        "cluster": {"workers": 2, "threads_per_worker": 1, "startup_s": startup,
                    "code_import_s": imported},
        "repeats": args.repeats,
        "quiet_load": args.quiet_load,
        "quiet_wait": args.quiet_wait,
        "identical": bool(identical) and all(identical),
        "checks": len(identical),
    }
    for mode in MODES:
        single, cluster = times[mode, "single"], times[mode, "dask"]
        for name in inputs:
            key = f"apportion {name}"
            total = f"total (atoms + {key})"
            for t in (single, cluster):
                t[total] = [a + b for a, b in zip(t["atoms"], t[key], strict=True)]
        result[mode] = {
            s: {"single": stats(single[s]), "dask": stats(cluster[s]),
                "ratio_median": statistics.median(cluster[s]) / statistics.median(single[s]),
                "ratio_min": min(cluster[s]) / min(single[s])}
            for s in single
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dask.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "dask.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def fresh_memory_cost() -> float:
    """Seconds to touch 256 MB of memory this process has not used for a few seconds, per GB.

    On this VM, memory freed for a few seconds is handed back to the host and costs a fault
    per page to touch again (a normal machine: about 0.1-0.3 s/GB).
    """
    time.sleep(5)
    t = time.perf_counter()
    block = np.ones(2**25)
    took = time.perf_counter() - t
    del block
    return took * 4


def markdown(r: dict) -> str:
    def rows(mode: str) -> str:
        return "\n".join(
            f"| {step} | {v['single']['median']:.2f} s ({v['single']['min']:.2f}) "
            f"| {v['dask']['median']:.2f} s ({v['dask']['min']:.2f}) "
            f"| {v['ratio_median']:.2f}x ({v['ratio_min']:.2f}x) |"
            for step, v in r[mode].items()
        )

    s = r["sizes"]
    c = r["cluster"]
    m = r["machine"]
    head = ("| step | single process | dask, 2 workers x 1 thread | dask / single |\n"
            "|---|---|---|---|")
    return f"""# Single process against a 2-worker dask LocalCluster

Made by `bench/dask_bench.py`: {r['repeats']} repeats of each path, alternating; median, fastest
in brackets. Synthetic national geography (`bench/synthetic.py`): {s['zones']:,} zones,
{s['wards']:,} wards, {s['agencies']} agencies, {s['atoms']:,} atoms, {s['membership_rows']:,}
membership rows. Lines: `national` = {s['lines_national']} (one per agency over its own area;
{s['product_rows_national']:,} product rows), `national+random` = {s['lines_national+random']:,}
(plus random lines over agencies, wards and the region; {s['product_rows_national+random']:,}
product rows, {s['slices_national+random']} slices).

Identical pence: **{'yes' if r['identical'] else 'NO'}** ({r['checks']} checks: every cluster
result against the single one, atoms with their geometry, runs' product, slices and outcomes).

Machine: {m['cpus']} CPUs, Python {m['python']}, shared with other work: each repeat started
once the 1-minute load average was below {r['quiet_load']} (or after {r['quiet_wait']:.0f} s;
it was {min(m['load_at_each_start']):.1f} to {max(m['load_at_each_start']):.1f}). This VM hands
memory that has been free for a few seconds back to its host, and touching such memory again
costs {m['fresh_memory_s_per_gb']:.1f} s per GB (a normal machine: a few tenths of a second).
So each step is run twice in a row: **cold**, its first run, pays that for most of the memory
it allocates; **warm**, the same step again at once, mostly reuses memory the first run freed,
as a machine that keeps its memory would.

## Cold (each step's first run)

{head}
{rows('cold')}

## Warm (the same step again at once)

{head}
{rows('warm')}

Cluster start-up (not counted above): {c['startup_s']:.2f} s to start the scheduler and two
worker processes, {c['code_import_s']:.2f} s for the workers to import Placespend.
"""


if __name__ == "__main__":
    sys.exit(main())
