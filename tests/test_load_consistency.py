"""Reads under a publish see the old run or the new one, never a mix, and never fail.

Issue 10: tiles, items and ``POST /neighbourhoods/budget`` asked without ``?run=`` while a
publisher flips the current run between two runs of the same collections. The machinery is
``bench/load.py``'s (``bash bench/run load`` measures it at length); here it runs small and
bounded by count only: 4 client threads, 600 requests over the three endpoint types (as many
of each as it has requests in the mix), against a
real uvicorn on a free loopback port (in a thread), once with the byte cache on and once with
it off (every page and tile made from the database while publishes land). No timing is
asserted.

A database of its own (the publisher moves which run is current, which the shared demo
database's readers must not see), dropped at the end.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from api.app import create_app
from bench.load import HEADERS, Expectation, expect, hammer, make_probes, prepare, publishing
from placespend.settings import Settings
from store import cluster
from store.db import connect
from store.migrate import migrate

CLIENTS = 4
REQUESTS = 600  # 4 threads x 150
INTERVAL_S = 0.02


@pytest.fixture(scope="module")
def two_runs() -> Iterator[tuple[str, tuple[int, int]]]:
    """The embedded data with runs A (defaults) and B (a what-if proxy table) both published."""
    name = f"placespend_test_load_{os.getpid()}"
    url = cluster.fresh_database(name)
    try:
        with connect(url) as conn:
            migrate(conn)
        yield url, prepare(url)
    finally:
        cluster.discard_database(name)


@pytest.fixture()
def serve(two_runs: tuple[str, tuple[int, int]]):
    """Start the app on uvicorn in a thread (``cache_mb`` as asked); stopped after the test."""
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(cache_mb: int) -> str:
        settings = Settings(database_url=two_runs[0], cache_mb=cache_mb,
                            budget_rate_per_minute=0)  # all the load is one loopback client
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0,
                                log_level="warning", lifespan="on")
        srv = uvicorn.Server(config)
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        started.append((srv, thread))
        deadline = time.monotonic() + 30
        while not srv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"

    yield start
    for srv, thread in started:
        srv.should_exit = True
        thread.join(timeout=15)


def _interleaved(expected: Expectation) -> list:
    """The probes with each endpoint type spread evenly through the list (each as often as it
    has probes: budgets, the costly ones, about one request in eight)."""
    by_kind: dict[str, list] = {}
    for p in expected.probes:
        by_kind.setdefault(p.kind, []).append(p)
    spread = [((i + 0.5) / len(v), kind, p) for kind, v in by_kind.items()
              for i, p in enumerate(v)]
    return [p for _, _, p in sorted(spread, key=lambda t: (t[0], t[1]))]


@pytest.mark.parametrize("cache_mb", [256, 0], ids=["cache-on", "cache-off"])
def test_reads_under_a_publish_see_one_run_or_the_other_never_a_mix(
    two_runs: tuple[str, tuple[int, int]], serve, cache_mb: int
) -> None:
    url, runs = two_runs
    base = serve(cache_mb)
    with httpx.Client(base_url=base, headers=HEADERS, timeout=120) as client:
        expected = expect(client, url, make_probes(client), runs)
    kinds = {p.kind for p in expected.probes}
    assert kinds == {"tiles", "items", "budget"}, expected.left_out

    with publishing(url, runs, INTERVAL_S) as publisher:
        got = hammer(base, expected, _interleaved(expected), clients=CLIENTS,
                     max_requests=REQUESTS, publisher=publisher)
    assert publisher is not None and not publisher.errors, publisher.errors

    found = got["kinds"]
    assert sum(k["requests"] for k in found.values()) == REQUESTS
    problems = [e for k in found.values() for e in k["examples"]]
    assert sum(k["errors"] for k in found.values()) == 0, problems
    assert sum(k["mixes"] for k in found.values()) == 0, problems
    assert got["publishes"] >= 2, got
    for kind, k in found.items():
        assert k["seen"]["A"] > 0 and k["seen"]["B"] > 0, (kind, k["seen"], got["publishes"])
