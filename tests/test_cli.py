"""The command line: bad input gives one line with the cause and the fix, and exit status 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from placespend.cli import main


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_port_in_use_names_the_port_and_the_fix(
    capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"port {port} on 127.0.0.1 is in use" in line
    assert f"--port {port + 1}" in line and "Fix:" in line


def test_database_that_does_not_answer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/nope")
    assert main(["run"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "cannot connect to PostgreSQL" in line and "Fix:" in line
    assert "postgres@" not in line  # the user part of the URL is not echoed


def test_missing_proxy_table_file(
    capsys: pytest.CaptureFixture[str], db_url: str, demo: object,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    missing = tmp_path / "my-proxies.csv"
    assert main(["run", "--proxy-table", str(missing)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "my-proxies.csv" in line and "does not exist" in line and "Fix:" in line


def test_run_again_reports_the_same_run(
    capsys: pytest.CaptureFixture[str], db_url: str, demo: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["run", "--report"]) == 0
    err = capsys.readouterr().err
    assert "already computed (same inputs)" in err
    flat = " ".join(err.split())  # the console wraps long lines
    public = flat.split("already public: ", 1)[1].split(" ✓")[0].split(" total")[0]
    for cid in ("hackney-wards-2014-spend-2014-15", "london-wards-2014-spend-2014-15",
                "hackney-wards-2014-spend-2014-15-best-fit",
                "london-wards-2014-spend-2014-15-best-fit"):
        assert cid in public, public
    assert ("total 8,452,687,200,000p = allocated 8,452,687,200,000p + unallocated 0p"
            in err)
