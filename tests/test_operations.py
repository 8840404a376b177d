"""Limits and operations: 413 and 429, request ids and the access log, /metrics, /ready,
bounded paging, truncated tiles, graceful shutdown and reconnecting after a database restart.

Every assertion is on a value (a status, a header, a count), never on a time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.limits import TokenBuckets, client_id
from api.observe import JsonFormatter, redact
from placespend.runs import RunResult
from placespend.settings import Settings
from store import cluster
from store.db import connect
from store.migrate import migrate, migration_files
from tests.private_cluster import free_port, private_cluster

HACKNEY = "hackney-wards-2014-spend-2014-15"
LONDON = "london-wards-2014-spend-2014-15"
ERROR_KEYS = {"code", "cause", "where", "fix"}
#: A small square in Hackney (Dalston), lon/lat.
SQUARE = {"type": "Polygon", "coordinates": [[[-0.08, 51.545], [-0.07, 51.545],
                                              [-0.07, 51.552], [-0.08, 51.552],
                                              [-0.08, 51.545]]]}
MIB = 1024 * 1024


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["cause"] and body["fix"], body
    return body


@pytest.fixture()
def make_client(db_url: str, demo: RunResult) -> Iterator:
    """Clients of apps made with settings of the test's own, over the demo database."""
    opened: list[TestClient] = []

    def make(**settings: object) -> TestClient:
        c = TestClient(create_app(Settings(database_url=db_url, **settings)))
        c.__enter__()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


# ---- 413: request bodies over their size ------------------------------------------------


def test_a_budget_body_within_the_limit_is_answered(client: TestClient) -> None:
    response = client.post("/neighbourhoods/budget", json=SQUARE)
    assert response.status_code == 200, response.text
    assert response.json()["total_pence"] > 0


def test_a_body_over_the_limit_by_content_length_is_413(client: TestClient) -> None:
    body = b'{"type": "Polygon", "coordinates": [' + b" " * (5 * MIB) + b"]}"
    assert len(body) > Settings().max_body_bytes == 5 * MIB
    response = client.post("/neighbourhoods/budget", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    error = _error(response)
    assert error["code"] == "too_large"
    assert error["where"] == "body"
    assert "5,242,880 bytes" in error["cause"]


def test_a_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    sent = []

    def chunks() -> Iterator[bytes]:
        yield b'{"type": "Polygon", "coordinates": ['
        for _ in range(8):  # 8 MiB in all, past the 5 MiB limit
            sent.append(1)
            yield b" " * MIB
        yield b"]}"

    response = client.post("/neighbourhoods/budget", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    error = _error(response)
    assert (error["code"], error["where"]) == ("too_large", "body")
    assert response.headers["connection"] == "close"


def test_a_chunked_body_within_the_limit_is_answered(client: TestClient) -> None:
    text = json.dumps(SQUARE).encode()

    def chunks() -> Iterator[bytes]:
        yield text[:20]
        yield text[20:]

    response = client.post("/neighbourhoods/budget", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text


def test_uploads_have_a_limit_of_their_own(make_client) -> None:
    c = make_client(max_body_bytes=1000, max_upload_bytes=3000)
    files = {"file": ("wards.csv", b"x" * 1500)}
    # over the body limit, within the upload limit: on to the route, which wants a key
    assert c.post("/uploads/boundaries", files=files).status_code == 401
    assert c.post("/neighbourhoods/budget", content=b" " * 1500).status_code == 413
    big = c.post("/uploads/boundaries", files={"file": ("wards.csv", b"x" * 4000)})
    assert big.status_code == 413
    error = _error(big)
    assert error["where"] == "body" and "3,000 bytes" in error["cause"]
    assert "placespend load" in error["fix"]


# ---- 429: clients over their rate -------------------------------------------------------


def test_token_buckets_refill_at_their_rate() -> None:
    now = [1000.0]
    buckets = TokenBuckets(60, 3, clock=lambda: now[0])  # one a second, three at once
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(1.0)
    assert buckets.take("b") == 0.0  # another client has its own
    now[0] += 2.5
    assert [buckets.take("a") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] += 3600
    assert [buckets.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # never past burst
    assert len(buckets) == 2


def test_a_client_is_its_key_hashed_or_its_address() -> None:
    def scope(*headers: tuple[bytes, bytes]) -> dict:
        return {"headers": list(headers), "client": ("192.0.2.7", 5000)}

    bearer = client_id(scope((b"authorization", b"Bearer psk_secret")))
    assert bearer == client_id(scope((b"x-api-key", b"psk_secret")))
    assert bearer.startswith("key:") and "psk_secret" not in bearer and len(bearer) == 68
    assert client_id(scope()) == "ip:192.0.2.7"


def test_writes_past_the_budget_are_429_with_retry_after(make_client) -> None:
    c = make_client(write_rate_per_minute=2)
    save = "/neighbourhood-sets/limits-test/neighbourhoods"
    first = [c.post(save, json=SQUARE, headers={"X-API-Key": "psk_one"}).status_code
             for _ in range(2)]
    assert first == [401, 401]  # spent (an unknown key is refused, but counted)
    over = c.post(save, json=SQUARE, headers={"Authorization": "Bearer psk_one"})
    assert over.status_code == 429
    assert int(over.headers["retry-after"]) >= 1
    error = _error(over)
    assert error["code"] == "too_many_requests"
    assert "2 writes a minute" in error["cause"]
    # another key, and a client without one (its address), have budgets of their own
    assert c.post(save, json=SQUARE, headers={"X-API-Key": "psk_two"}).status_code == 401
    assert c.post(save, json=SQUARE).status_code == 401
    other = TestClient(c.app, client=("192.0.2.8", 40000))  # the same app, already started
    assert other.post(save, json=SQUARE).status_code == 401
    # reads are unlimited by default, and the budget of a polygon is not a write
    assert {c.get("/conformance").status_code for _ in range(300)} == {200}
    assert [c.post("/neighbourhoods/budget", json=SQUARE, headers={"X-API-Key": "psk_one"}
                   ).status_code for _ in range(3)] == [200, 200, 200]


def test_budgets_and_reads_have_rates_of_their_own(make_client) -> None:
    c = make_client(budget_rate_per_minute=2, read_rate_per_minute=3)
    budgets = [c.post("/neighbourhoods/budget", json=SQUARE).status_code for _ in range(3)]
    assert budgets == [200, 200, 429]
    reads = [c.get("/conformance").status_code for _ in range(4)]
    assert reads == [200, 200, 200, 429]
    assert "Retry-After" in c.get("/conformance").headers
    # probes are never limited
    assert {c.get("/health").status_code for _ in range(5)} == {200}
    assert {c.get("/metrics").status_code for _ in range(5)} == {200}


def test_the_api_description_says_413_and_429(make_client) -> None:
    doc = make_client().get("/api").json()
    budget = doc["paths"]["/neighbourhoods/budget"]["post"]["responses"]
    assert {"413", "429"} <= set(budget)
    assert "Retry-After" in budget["429"]["headers"]
    items = doc["paths"]["/collections/{collectionId}/items"]["get"]["responses"]
    assert "429" not in items  # reads are unlimited by default
    limited = make_client(read_rate_per_minute=100).get("/api").json()
    assert "429" in limited["paths"]["/collections/{collectionId}/items"]["get"]["responses"]


# ---- request ids and the access log -----------------------------------------------------


def test_a_sane_request_id_is_echoed_and_another_made(client: TestClient) -> None:
    sent = "trace-2014_15-ABC"
    assert client.get("/conformance", headers={"X-Request-Id": sent}
                      ).headers["x-request-id"] == sent
    made = [client.get("/conformance").headers["x-request-id"] for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made) and made[0] != made[1]
    for insane in ("a" * 65, "has space", "semi;colon", ""):
        got = client.get("/conformance", headers={"X-Request-Id": insane}).headers
        assert re.fullmatch(r"[0-9a-f]{32}", got["x-request-id"]), insane
    # errors and refusals carry one too
    assert client.get("/nowhere").headers["x-request-id"]
    assert client.post("/neighbourhoods/budget", content=b" " * (6 * MIB)
                       ).headers["x-request-id"]


def test_each_request_logs_one_json_access_line(client: TestClient,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="placespend.access")
    key = "psk_abcdefghijklmnopqrstuvwxyz"
    client.get(f"/collections/{HACKNEY}/items?limit=1",
               headers={"Authorization": f"Bearer {key}", "X-Request-Id": "log-test-1"})
    records = [r for r in caplog.records if r.name == "placespend.access"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    assert "\n" not in line and key not in line
    doc = json.loads(line)
    assert {"time", "method", "path", "status", "ms", "client", "key_prefix",
            "request_id"} <= set(doc)
    assert doc["method"] == "GET"
    assert doc["path"] == f"/collections/{HACKNEY}/items"
    assert doc["status"] == 200
    assert doc["key_prefix"] == "psk_abcdef"
    assert doc["request_id"] == "log-test-1"
    assert doc["client"] == "testclient"
    assert doc["ms"] >= 0
    caplog.clear()
    client.get("/conformance")
    assert json.loads(JsonFormatter().format(caplog.records[0]))["key_prefix"] is None


def test_urls_and_dsns_in_log_lines_are_redacted() -> None:
    record = logging.LogRecord(
        "placespend.api", logging.WARNING, __file__, 1,
        "cannot reach postgresql://admin:hunter2@db.internal:5432/placespend nor "
        "host=db password=hunter2 dbname=x", None, None)
    line = JsonFormatter().format(record)
    assert "hunter2" not in line and "admin" not in line
    assert "db.internal:5432/placespend" in json.loads(line)["message"]
    assert redact("see http://127.0.0.1:8000/map") == "see http://127.0.0.1:8000/map"


# ---- /metrics ---------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _count(samples: dict, method: str, route: str, status: str) -> float:
    labels = tuple(sorted({"method": method, "route": route, "status": status}.items()))
    return samples.get(("placespend_http_requests_total", labels), 0.0)


def test_metrics_count_requests_by_route_template_and_status(make_client) -> None:
    c = make_client()
    n = 7
    for _ in range(n):
        assert c.get(f"/collections/{HACKNEY}").status_code == 200
    for _ in range(3):
        assert c.get("/collections/no-such-collection").status_code == 404
    assert c.head(f"/collections/{HACKNEY}").status_code == 200
    assert c.get("/no/such/address").status_code == 404
    response = c.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(response.text)
    assert _count(samples, "GET", "/collections/{collectionId}", "200") == n
    assert _count(samples, "GET", "/collections/{collectionId}", "404") == 3
    assert _count(samples, "HEAD", "/collections/{collectionId}", "200") == 1
    assert _count(samples, "GET", "unmatched", "404") == 1
    assert not any(f"/collections/{HACKNEY}" in str(k) for k in samples)  # templates only
    histogram = ("placespend_http_request_duration_seconds_count",
                 (("route", "/collections/{collectionId}"),))
    assert samples[histogram] == n + 3 + 1
    assert samples[("placespend_http_requests_in_flight", ())] == 1  # this scrape
    assert samples[("placespend_db_pool_size", ())] >= 1
    assert samples[("placespend_db_pool_available", ())] >= 0
    assert samples[("placespend_db_requests_waiting", ())] == 0
    again = _samples(c.get("/metrics").text)
    assert _count(again, "GET", "/metrics", "200") == 1


def test_each_app_counts_its_own_requests(make_client) -> None:
    a, b = make_client(), make_client()
    for _ in range(2):
        a.get("/conformance")
    b.get("/conformance")
    assert _count(_samples(a.get("/metrics").text), "GET", "/conformance", "200") == 2
    assert _count(_samples(b.get("/metrics").text), "GET", "/conformance", "200") == 1


# ---- /ready -----------------------------------------------------------------------------


def test_ready_on_the_migrated_demo(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["migrations"] == len(migration_files())
    assert body["latest_migration"] == migration_files()[-1][0]


@pytest.fixture()
def unmigrated() -> Iterator[str]:
    """An empty database with PostGIS and no migrations, dropped after."""
    name = "placespend_test_unmigrated"
    yield cluster.fresh_database(name)
    cluster.discard_database(name)


def test_not_ready_on_a_database_without_migrations(unmigrated: str) -> None:
    # The role the API connects as exists on this server (other databases are migrated), but
    # this database has no tables: the app starts, alive but not ready.
    with TestClient(create_app(Settings(database_url=unmigrated))) as c:
        assert c.get("/health").status_code == 200  # alive, but not ready
        response = c.get("/ready")
        assert response.status_code == 503
        error = _error(response)
        assert error["where"] == "migrations"
        assert "no migrations applied" in error["cause"]
        assert "placespend db migrate" in error["fix"]


def test_not_ready_while_migrations_are_missing(unmigrated: str) -> None:
    with connect(unmigrated) as conn:
        migrate(conn)
    with TestClient(create_app(Settings(database_url=unmigrated))) as c:
        assert c.get("/ready").status_code == 200
        last = migration_files()[-1][0]
        with connect(unmigrated) as conn:
            conn.execute("DELETE FROM schema_migration WHERE name = %s", (last,))
        response = c.get("/ready")
        assert response.status_code == 503
        error = _error(response)
        assert error["where"] == "migrations" and last in error["cause"]
        assert f"1 of {len(migration_files())}" in error["cause"]
        with connect(unmigrated) as conn:
            conn.execute("DROP TABLE schema_migration")
        error = _error(c.get("/ready"))
        assert error["where"] == "migrations" and "no migrations applied" in error["cause"]
        assert c.get("/health").status_code == 200  # alive, but not ready


# ---- bounded paging, truncated tiles ----------------------------------------------------


def test_an_offset_past_the_maximum_is_400(client: TestClient) -> None:
    items = f"/collections/{HACKNEY}/items"
    assert client.get(f"{items}?offset=1000000").status_code == 200
    response = client.get(f"{items}?offset=1000001")
    assert response.status_code == 400
    error = _error(response)
    assert error["where"] == "offset"
    assert "bbox" in error["fix"] and f"/collections/{HACKNEY}/download" in error["fix"]


def test_the_maximum_offset_is_a_setting(make_client) -> None:
    c = make_client(max_offset=10)
    assert c.get(f"/collections/{HACKNEY}/items?offset=10").status_code == 200
    assert _error(c.get(f"/collections/{HACKNEY}/items?offset=11"))["where"] == "offset"


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def test_a_tile_at_its_feature_cap_says_so(make_client) -> None:
    z, x, y = _tile_of(-0.06, 51.55, 11)  # all Hackney
    address = f"/collections/{HACKNEY}/tiles/WebMercatorQuad/{z}/{x}/{y}"
    whole = make_client().get(address)
    assert whole.status_code == 200
    assert "x-placespend-truncated" not in whole.headers
    capped = make_client(max_tile_features=3)
    for headers in ({}, {"Accept-Encoding": "gzip"}, {}):  # made, gzipped, from the cache
        response = capped.get(address, headers=headers)
        assert response.status_code == 200
        assert response.headers["x-placespend-truncated"] == "true"
        assert len(response.content) < len(whole.content)


# ---- graceful shutdown ------------------------------------------------------------------


def _in_flight(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return _samples(text)[("placespend_http_requests_in_flight", ())]


def test_sigterm_lets_the_request_in_flight_finish(db_url: str, demo: RunResult,
                                                   tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": db_url, "PLACESPEND_CACHE_MB": "0",
           "PLACESPEND_LOG_FORMAT": "json", "PLACESPEND_SHUTDOWN_GRACE_SECONDS": "60"}
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "placespend.cli", "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        # the whole of London as a GeoPackage, made afresh (no cache): a slow request
        slow_url = f"{base}/collections/{LONDON}/download?f=gpkg"
        result: dict = {}
        caught = False
        for _attempt in range(10):
            result.clear()
            done = threading.Event()

            def fetch(result: dict = result, done: threading.Event = done) -> None:
                try:
                    r = httpx.get(slow_url, timeout=120)
                    result["status"], result["size"] = r.status_code, len(r.content)
                except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                    result["error"] = repr(exc)
                finally:
                    done.set()

            thread = threading.Thread(target=fetch, daemon=True)
            thread.start()
            # in flight: the scrape itself and the download
            while not done.is_set() and _in_flight(base) < 2:
                pass
            if not done.is_set():
                server.send_signal(signal.SIGTERM)
                caught = True
                break
            thread.join()
        assert caught, "the download never was in flight when looked at"
        assert done.wait(timeout=120), "the request in flight did not finish"
        assert result.get("status") == 200, (result, Path(log.name).read_text())
        assert result["size"] > 100_000
        assert server.wait(timeout=90) == 0, Path(log.name).read_text()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/health", timeout=5)
        lines = [json.loads(line) for line in Path(log.name).read_text().splitlines()
                 if line.startswith("{")]
        downloads = [d for d in lines if d.get("logger") == "placespend.access"
                     and d.get("path", "").endswith("/download")]
        assert [d["status"] for d in downloads][-1:] == [200]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
        log.close()


# ---- reconnecting after a database restart ----------------------------------------------


def _recovers(c: TestClient, address: str, tries: int = 20) -> list[int]:
    """GET ``address`` until it answers 200 (a 503 or two on the way is fine)."""
    statuses = []
    for _ in range(tries):
        statuses.append(c.get(address).status_code)
        if statuses[-1] == 200:
            break
        time.sleep(0.5)
    return statuses


def test_the_pool_reconnects_after_the_database_restarts() -> None:
    with private_cluster() as (pc, url_of):
        url = pc.create_database("placespend_restart")
        assert url == url_of("placespend_restart")
        with connect(url) as conn:
            migrate(conn)
        app: FastAPI = create_app(Settings(database_url=url))
        with TestClient(app) as c:
            assert c.get("/health").status_code == 200
            assert c.get("/collections").status_code == 200
            pool = app.state.pool
            for stop in (pc.restart, lambda: (pc.kill_immediately(), pc.start())):
                stop()
                for address in ("/health", "/collections", "/ready"):
                    statuses = _recovers(c, address)
                    assert statuses[-1] == 200, (address, statuses)
                    assert set(statuses) <= {200, 503}, (address, statuses)
            assert app.state.pool is pool  # the same pool: the app was never restarted
