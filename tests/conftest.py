"""Shared fixtures: a real PostGIS (the project-local cluster, or DATABASE_URL), never a mock.

- ``db_url``: a fresh, migrated test database for the session.
- ``demo``: that database with the embedded data loaded and the 2013-14 and 2014-15 runs
  published (the 2014-15 run is the fixture's value).
- ``conn``: a connection to it, per test.
- ``fresh_db``: a new empty migrated database for one test (hand-built fixtures).
- ``app`` / ``client``: the API over ``demo``, with its lifespan (pool) running.
- ``api_key`` / ``auth``: an API key for writes over HTTP, and headers carrying it.
- ``server``: the app served by a real uvicorn on a free loopback port (for browsers, QGIS).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from placespend.load import load_embedded
from placespend.runs import DEFAULT_TARGETS, RunRequest, RunResult, make_run, publish
from placespend.settings import Settings
from store import cluster
from store.db import Connection, connect
from store.migrate import migrate

_counter = itertools.count()


def _new_database(name: str) -> str:
    """Create (or recreate) a migrated database and return its URL."""
    url = cluster.fresh_database(name)
    with connect(url) as conn:
        migrate(conn)
    return url


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    name = f"placespend_test_{os.getpid()}"
    yield _new_database(name)
    cluster.discard_database(name)  # a whole-pound demo database is ~0.7 GB: leave none


@pytest.fixture(scope="session")
def demo(db_url: str) -> RunResult:
    with connect(db_url) as conn:
        load_embedded(conn)
        earlier = make_run(conn, RunRequest(financial_year="2013-14"))
        publish(conn, earlier.run_id)
        result = make_run(conn, RunRequest())
        publish(conn, result.run_id)
        publish(conn, result.run_id, DEFAULT_TARGETS, fit="best_fit")
        delivered = make_run(conn, RunRequest(basis="delivered"))
        publish(conn, delivered.run_id)
        return result


@pytest.fixture(scope="session")
def delivered(demo: RunResult, db_url: str) -> RunResult:
    """The demo's 2014-15 run on the delivered basis (GP payments at each practice)."""
    with connect(db_url) as conn:
        return make_run(conn, RunRequest(basis="delivered"))


@pytest.fixture()
def conn(db_url: str) -> Iterator[Connection]:
    with connect(db_url) as c:
        yield c


@pytest.fixture(scope="module")
def app(db_url: str, demo: RunResult) -> FastAPI:
    # One test key sends every suite's writes, hundreds a minute: the rate limits have tests
    # of their own (tests/test_operations.py), so this app does not apply them.
    return create_app(Settings(database_url=db_url, write_rate_per_minute=0,
                               budget_rate_per_minute=0))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture()
def fresh_db() -> Iterator[str]:
    name = f"placespend_test_{os.getpid()}_{next(_counter)}"
    yield _new_database(name)
    cluster.discard_database(name)


@pytest.fixture(scope="session")
def api_key(db_url: str, demo: RunResult) -> str:
    """A key for writes over HTTP, made as an administrator would (`placespend keys create`)."""
    from placespend import keys

    with connect(db_url) as conn:
        return keys.create(conn, f"tests-{os.getpid()}")


@pytest.fixture(scope="session")
def auth(api_key: str) -> dict[str, str]:
    """Headers that carry the test API key."""
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture(scope="module")
def server(app: FastAPI) -> Iterator[str]:
    """Serve the app with uvicorn on a free loopback port, in a background thread."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
