"""store/cluster.py for real: initdb, pg_ctl, ports and PostGIS, in throw-away state dirs.

Every test points PLACESPEND_STATE_DIR at a fresh folder under /var/tmp (pytest's own tmp
folders are mode 700 under /tmp/pytest-of-root, which the postgres user cannot enter), so the
project's own cluster is never touched. Each temporary cluster is stopped in a finalizer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from domain.errors import SetupError
from store import cluster as pgc


def _fresh_dir(mode: int = 0o755) -> Path:
    path = Path(tempfile.mkdtemp(prefix="placespend-test-", dir="/var/tmp"))
    path.chmod(mode)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("PLACESPEND_STATE_DIR", "PLACESPEND_PG_PORT", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def fresh_state(clean_env: pytest.MonkeyPatch) -> Iterator[Path]:
    """A new, empty state dir for one test; its cluster is stopped and removed afterwards."""
    state = _fresh_dir()
    clean_env.setenv("PLACESPEND_STATE_DIR", str(state))
    try:
        yield state
    finally:
        try:
            pgc.stop()
        finally:
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_state() -> Iterator[Path]:
    """One temporary cluster shared by the tests that only read or add databases."""
    state = _fresh_dir()
    patch = pytest.MonkeyPatch()
    for name in ("PLACESPEND_PG_PORT", "DATABASE_URL"):
        patch.delenv(name, raising=False)
    patch.setenv("PLACESPEND_STATE_DIR", str(state))
    try:
        yield state
    finally:
        try:
            pgc.stop()
        finally:
            patch.undo()
            shutil.rmtree(state, ignore_errors=True)


def _postmaster_pid(cluster: pgc.Cluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])


def _listening_socket() -> socket.socket:
    """A socket listening on a free loopback port, as another program's server would."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_port_is_persisted_and_reused_after_a_restart(fresh_state: Path) -> None:
    first = pgc.ensure_running()
    assert (fresh_state / "port").read_text().strip() == str(first.port)
    assert first.data_dir == fresh_state / "pgdata"

    assert pgc.stop() is True
    assert pgc.stop() is False  # already stopped

    second = pgc.ensure_running()
    assert second == first
    assert (fresh_state / "port").read_text().strip() == str(first.port)
    with psycopg.connect(second.url("postgres"), connect_timeout=10) as conn:
        assert conn.execute("SHOW port").fetchone() == (str(first.port),)


def test_second_ensure_running_is_a_no_op(shared_state: Path) -> None:
    first = pgc.ensure_running()
    pid = _postmaster_pid(first)
    starts = first.log_file.read_text().count("starting PostgreSQL")

    second = pgc.ensure_running()

    assert second == first
    assert _postmaster_pid(second) == pid
    assert second.log_file.read_text().count("starting PostgreSQL") == starts
    with psycopg.connect(first.url("postgres"), connect_timeout=10) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == (str(first.socket_dir),)
    assert (first.socket_dir / f".s.PGSQL.{first.port}").is_socket()


def test_create_database_has_working_postgis(shared_state: Path) -> None:
    cluster = pgc.ensure_running()
    url = pgc.create_database(cluster, "ps_cluster_test")
    assert url == cluster.url("ps_cluster_test")
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            (version,) = conn.execute("SELECT postgis_version()").fetchone() or ("",)
            assert version.startswith("3.")
            area = conn.execute("SELECT ST_Area(ST_MakeEnvelope(0, 0, 10, 20, 27700))").fetchone()
            assert area == (200.0,)
            conn.execute("CREATE TABLE kept (id int)")

        # Idempotent: a second call keeps what is there.
        assert pgc.create_database(cluster, "ps_cluster_test") == url
        with psycopg.connect(url, connect_timeout=10) as conn:
            assert conn.execute("SELECT to_regclass('kept')").fetchone() == ("kept",)

        # drop_first gives an empty database, with PostGIS again.
        pgc.create_database(cluster, "ps_cluster_test", drop_first=True)
        with psycopg.connect(url, connect_timeout=10) as conn:
            assert conn.execute("SELECT to_regclass('kept')").fetchone() == (None,)
            assert conn.execute("SELECT postgis_version()").fetchone()
    finally:
        pgc.drop_database(cluster, "ps_cluster_test")
    with psycopg.connect(cluster.url("postgres"), connect_timeout=10) as conn:
        gone = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'ps_cluster_test'")
        assert gone.fetchone() is None


def test_bad_database_name_is_refused(shared_state: Path) -> None:
    cluster = pgc.ensure_running()
    with pytest.raises(SetupError, match="not a usable database name"):
        pgc.create_database(cluster, 'x"; DROP DATABASE postgres; --')


def test_resolve_database_url_local_then_database_url(
    shared_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pgc.resolve_database_url("ps_resolve_test")
    cluster = pgc.ensure_running()
    assert url == cluster.url("ps_resolve_test")
    try:
        # DATABASE_URL wins and comes back as given, once it answers with PostGIS.
        given = f"postgresql://postgres@localhost:{cluster.port}/ps_resolve_test?application_name=t"
        monkeypatch.setenv("DATABASE_URL", given)
        assert pgc.resolve_database_url() == given
        with psycopg.connect(given, connect_timeout=10) as conn:
            assert conn.execute("SELECT postgis_version()").fetchone()
    finally:
        monkeypatch.delenv("DATABASE_URL")
        pgc.drop_database(cluster, "ps_resolve_test")


def test_database_url_that_does_not_answer_is_a_setup_error(
    clean_env: pytest.MonkeyPatch,
) -> None:
    with _listening_socket() as taken:
        closed_port = taken.getsockname()[1]
    clean_env.setenv("DATABASE_URL", f"postgresql://u:secret@127.0.0.1:{closed_port}/nowhere")
    with pytest.raises(SetupError) as caught:
        pgc.resolve_database_url()
    message = str(caught.value)
    assert "Cannot connect" in message and "Fix:" in message
    assert "secret" not in message  # the password is redacted


def test_persisted_port_taken_by_another_program(fresh_state: Path) -> None:
    with _listening_socket() as taken:
        port = taken.getsockname()[1]
        (fresh_state / "port").write_text(f"{port}\n")
        with pytest.raises(SetupError) as caught:
            pgc.ensure_running()
    message = str(caught.value)
    assert str(port) in message
    assert "placespend db stop" in message and "PLACESPEND_PG_PORT" in message
    assert (fresh_state / "port").read_text().strip() == str(port)  # not silently moved


def test_pg_port_env_taken_by_another_program(
    fresh_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _listening_socket() as taken:
        port = taken.getsockname()[1]
        monkeypatch.setenv("PLACESPEND_PG_PORT", str(port))
        with pytest.raises(SetupError, match=rf"Port {port} .*already in use"):
            pgc.ensure_running()


def test_pg_port_env_moves_a_running_cluster(
    fresh_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = pgc.ensure_running()
    with _listening_socket() as probe:
        new_port = probe.getsockname()[1]
    monkeypatch.setenv("PLACESPEND_PG_PORT", str(new_port))
    moved = pgc.ensure_running()
    assert moved.port == new_port != first.port
    assert (fresh_state / "port").read_text().strip() == str(new_port)
    with psycopg.connect(moved.url("postgres"), connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_start_failure_reports_the_log_tail(fresh_state: Path) -> None:
    cluster = pgc.ensure_running()
    assert pgc.stop() is True
    with open(cluster.data_dir / "postgresql.conf", "a") as conf:
        conf.write("no_such_setting_for_the_test = 1\n")
    with pytest.raises(SetupError) as caught:
        pgc.ensure_running()
    error = caught.value
    assert "failed to start" in error.cause
    assert "no_such_setting_for_the_test" in error.cause  # from the server log's last lines
    assert str(cluster.log_file) in error.fix


def test_state_dir_env_and_fallback(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("PLACESPEND_STATE_DIR", str(tmp_path / "state"))
    assert pgc.state_dir() == tmp_path / "state"
    clean_env.delenv("PLACESPEND_STATE_DIR")

    reachable = _fresh_dir(0o755)
    private = _fresh_dir(0o700)  # like a checkout under /root
    try:
        assert pgc.state_dir(reachable) == reachable.resolve() / ".placespend"
        digest = hashlib.sha256(str(private.resolve()).encode()).hexdigest()[:12]
        expected = (
            Path(f"/var/tmp/placespend-{digest}")
            if os.geteuid() == 0  # the postgres user cannot enter it
            else private.resolve() / ".placespend"  # we run the server ourselves
        )
        assert pgc.state_dir(private) == expected
    finally:
        shutil.rmtree(reachable)
        shutil.rmtree(private)
