"""Seeded synthetic spend lines, and a timing of the cached step on a national-sized atom table.

``random_lines`` makes any number of spend lines over a given list of reporting areas, with the
columns :func:`allocation.apportion.apportion` expects. Run as a script, it builds a synthetic
atom table of England's size (80,000 atoms cut from 35,000 zones by 7,000 wards, 300 agency
areas of about 267 atoms each, three proxies), then times the *cached step* — ``apportion`` of
the lines over those atoms plus ``to_targets`` into the wards — for 300, 10,000 and 1,000,000
lines. Every run is checked: each line adds back to its own pence, the product holds exactly
the allocated pence, and inside + outside the wards equals the allocated pence. It prints the
minimum and median wall time of the repeats, and the step's peak memory::

    .venv/bin/python bench/lines.py                 # 300, 10k, 1M lines
    .venv/bin/python bench/lines.py --sizes 300 10000 --repeats 9 --categorical
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from allocation.apportion import Apportionment, apportion, atom_proxy_values  # noqa: E402
from allocation.crosswalk import to_targets  # noqa: E402

PROXIES = ("residents-all", "residents-0-15", "residents-65-plus")
#: Columns that are text (made Categorical with ``categorical=True``).
TEXT_COLUMNS = ("body", "line", "cofog_code", "area_set", "area_code", "proxy")
LINE_NAMES = 20


def random_lines(
    n: int,
    areas: list[tuple[str, str]],
    *,
    bodies: int = 10,
    functions: int = 10,
    proxies: tuple[str, ...] = PROXIES,
    seed: int = 1,
    categorical: bool = False,
) -> pd.DataFrame:
    """``n`` seeded spend lines spread over ``areas`` (a list of (area_set, area_code) pairs).

    Columns: line_id (1..n), body (``body-00`` ...), line (one of a few names), cofog_code (the
    first ``functions`` COFOG divisions, ``01``-``10``), amount_pence (int64; magnitudes
    log-uniform from 1p to about 1e10p, one line in twenty negative), area_set, area_code
    (uniform over ``areas``) and proxy (uniform over ``proxies``). With ``categorical`` the text
    columns are pandas Categoricals, as a caller reading dictionary-encoded data would pass.
    """
    if not areas:
        raise ValueError("random_lines needs at least one reporting area")
    if not 1 <= functions <= 10:
        raise ValueError("functions must be between 1 and 10 (the COFOG divisions)")
    rng = np.random.default_rng(seed)
    body_names = np.array([f"body-{i:02d}" for i in range(bodies)])
    cofog = np.array([f"{i:02d}" for i in range(1, functions + 1)])
    line_names = np.array([f"line {i:02d}" for i in range(LINE_NAMES)])
    area_sets = np.array([a for a, _ in areas])
    area_codes = np.array([c for _, c in areas])
    pick = rng.integers(0, len(areas), n)
    magnitude = np.rint(10.0 ** rng.uniform(0.0, 10.0, n)).astype(np.int64)
    sign = np.where(rng.random(n) < 0.05, -1, 1)
    lines = pd.DataFrame({
        "line_id": np.arange(1, n + 1, dtype=np.int64),
        "body": body_names[rng.integers(0, bodies, n)],
        "line": line_names[rng.integers(0, LINE_NAMES, n)],
        "cofog_code": cofog[rng.integers(0, functions, n)],
        "amount_pence": magnitude * sign,
        "area_set": area_sets[pick],
        "area_code": area_codes[pick],
        "proxy": np.array(proxies)[rng.integers(0, len(proxies), n)],
    })
    if categorical:
        for column in TEXT_COLUMNS:
            lines[column] = pd.Categorical(lines[column])
    return lines


def synthetic_atoms(
    n_atoms: int = 80_000, n_zones: int = 35_000, n_areas: int = 300, n_wards: int = 7_000,
    seed: int = 1,
) -> dict[str, Any]:
    """A seeded national-sized atom table: atoms, proxies, membership and a ward crosswalk.

    Atoms are numbered 0..n-1 and sorted by ward; each agency area is a run of consecutive
    atoms (about ``n_atoms / n_areas`` of them); every zone has a value for every proxy.
    """
    rng = np.random.default_rng(seed)
    atoms = pd.DataFrame({
        "atom_id": np.arange(n_atoms),
        "zone_code": [f"Z{i}" for i in rng.integers(0, n_zones, n_atoms)],
        "zone_share": rng.random(n_atoms),
        "area_m2": rng.random(n_atoms) * 1e6,
    })
    atoms["cut_code"] = [f"W{i}" for i in np.sort(rng.integers(0, n_wards, n_atoms))]
    values = pd.concat([
        pd.DataFrame({"proxy": p, "unit_code": [f"Z{i}" for i in range(n_zones)],
                      "value": rng.random(n_zones) * 1000})
        for p in PROXIES
    ])
    area_of = np.sort(rng.integers(0, n_areas, n_atoms))
    membership = pd.DataFrame({"set": "agency", "code": [f"A{i}" for i in area_of],
                               "atom_id": np.arange(n_atoms), "weight": 1.0})
    crosswalk = pd.DataFrame({"atom_id": atoms["atom_id"], "target_code": atoms["cut_code"],
                              "weight": 1.0})
    return {
        "atoms": atoms,
        "proxies": atom_proxy_values(atoms, values),
        "membership": membership,
        "crosswalk": crosswalk,
        "areas": [("agency", f"A{i}") for i in range(n_areas)],
    }


def check(lines: pd.DataFrame, result: Apportionment, inside: pd.DataFrame, outside: int) -> None:
    """Every line adds back, the product holds the allocated pence, and so do the wards."""
    outcomes = result.outcomes
    allocated = int(outcomes["allocated_pence"].sum())
    if not (outcomes["allocated_pence"] == outcomes["amount_pence"]).all():
        raise AssertionError("a line did not add back to its own pence")
    if allocated != int(lines["amount_pence"].sum()):
        raise AssertionError("the allocated pence differ from the lines' pence")
    if int(result.product["amount_pence"].sum()) != allocated:
        raise AssertionError("the product does not hold exactly the allocated pence")
    if int(inside["amount_pence"].sum()) + outside != allocated:
        raise AssertionError("inside + outside the wards differs from the allocated pence")


def _rss_bytes() -> int:
    """The process's resident memory now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    """The process's peak resident memory so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(world: dict[str, Any], lines: pd.DataFrame, repeats: int) -> dict[str, Any]:
    """Time apportion and to_targets on ``lines``; check every repeat; measure peak memory."""
    atoms, proxies, membership = world["atoms"], world["proxies"], world["membership"]
    crosswalk = world["crosswalk"]
    rss_before = _rss_bytes()
    times: dict[str, list[float]] = {"apportion": [], "to_targets": [], "step": []}
    for _ in range(repeats):
        start = time.perf_counter()
        result = apportion(lines, atoms, proxies, membership, cut_set="wards")
        middle = time.perf_counter()
        inside, outside = to_targets(result.product, crosswalk, len(result.slices))
        t_a, t_t = middle - start, time.perf_counter() - middle
        check(lines, result, inside, outside)
        times["apportion"].append(t_a)
        times["to_targets"].append(t_t)
        times["step"].append(t_a + t_t)
        del result, inside
    peak_rss = _peak_rss_bytes()
    tracemalloc.start()
    result = apportion(lines, atoms, proxies, membership, cut_set="wards")
    to_targets(result.product, crosswalk, len(result.slices))
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "times": times,
        "product_rows": len(result.product),
        "slices": len(result.slices),
        "rss_before": rss_before,
        "peak_rss": peak_rss,
        "traced_peak": traced_peak,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 10_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=0,
                        help="repeats per size (default: 9 up to 10k lines, 5 beyond)")
    parser.add_argument("--categorical", action="store_true",
                        help="pass the text columns as pandas Categoricals")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    world = synthetic_atoms()
    print(f"synthetic atoms: {len(world['atoms']):,} atoms, {len(world['areas'])} agency areas, "
          f"{world['crosswalk']['target_code'].nunique():,} wards "
          f"({time.perf_counter() - start:.1f} s to build)")
    print(f"{'lines':>10} {'step':>20} {'apportion':>20} {'to_targets':>20} "
          f"{'product':>10} {'peak RSS':>9} {'step RSS':>9} {'traced':>8}")
    print(f"{'':>10} {'min / median s':>20} {'min / median s':>20} {'min / median s':>20}")
    for n in args.sizes:
        lines = random_lines(n, world["areas"], categorical=args.categorical)
        repeats = args.repeats or (9 if n <= 10_000 else 5)
        got = measure(world, lines, repeats)

        def cell(name: str, got: dict[str, Any] = got) -> str:
            t = got["times"][name]
            return f"{min(t):.3f} / {statistics.median(t):.3f}"

        print(f"{n:>10,} {cell('step'):>20} {cell('apportion'):>20} {cell('to_targets'):>20} "
              f"{got['product_rows']:>10,} {got['peak_rss'] / 1e9:>7.2f}GB "
              f"{(got['peak_rss'] - got['rss_before']) / 1e9:>7.2f}GB "
              f"{got['traced_peak'] / 1e9:>6.2f}GB")
    print("checked: every line adds back; product = allocated; inside + outside = allocated. "
          "Peak RSS is the process's; step RSS its rise over the RSS before the step; traced "
          "is tracemalloc's peak for one step (numpy and Python memory, not Arrow's).")


if __name__ == "__main__":
    main()
