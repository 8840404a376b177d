"""Uploads over HTTP: the same load path as the CLI, behind an API key, never a 500."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from placespend import keys
from store.db import Connection
from tests import world


def _wards_file(tmp_path: Path) -> Path:
    path = tmp_path / "up-wards.geojson"
    world.wards().to_file(path, driver="GeoJSON", engine="pyogrio")
    return path


def _post(client: TestClient, what: str, path: Path, auth: dict | None, **fields: str):
    with path.open("rb") as f:
        return client.post(f"/uploads/{what}", headers=auth or {},
                           files={"file": (path.name, f)}, data=fields)


def test_a_write_needs_a_key(client: TestClient, tmp_path: Path) -> None:
    r = _post(client, "boundaries", _wards_file(tmp_path), None, slug="up-nokey")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert "placespend keys create" in r.json()["fix"]
    r = _post(client, "boundaries", _wards_file(tmp_path), {"X-API-Key": "psk_wrong"},
              slug="up-nokey")
    assert r.status_code == 401


def test_a_revoked_key_is_forbidden(client: TestClient, conn: Connection,
                                    tmp_path: Path) -> None:
    key = keys.create(conn, "revoked-in-test")
    keys.revoke(conn, "revoked-in-test")
    conn.commit()
    r = _post(client, "boundaries", _wards_file(tmp_path), {"X-API-Key": key}, slug="up-rev")
    assert r.status_code == 403 and "revoked" in r.json()["cause"]


def test_upload_boundaries_then_the_same_file_again(client: TestClient, conn: Connection,
                                                    auth: dict, tmp_path: Path) -> None:
    path = _wards_file(tmp_path)
    first = _post(client, "boundaries", path, auth, slug="up-wards", kind="ward",
                  licence="test licence")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] is True and body["features"] == 2 and body["version"] == 1
    assert body["fields"] == {"code": "code", "name": "name"}  # guessed, and said so
    assert any("guessed" in g for g in body["guesses"])
    batch = client.get(body["links"][0]["href"]).json()
    assert batch["kind"] == "boundaries" and batch["loaded_by"].startswith("tests-")
    rows = conn.execute("SELECT count(*) AS n FROM boundary").fetchone()["n"]
    again = _post(client, "boundaries", path, auth, slug="up-wards", kind="ward",
                  licence="test licence")
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["batch"] == body["batch"]
    assert conn.execute("SELECT count(*) AS n FROM boundary").fetchone()["n"] == rows


@pytest.mark.parametrize(("fields", "status", "where"), [
    ({"slug": "Bad Slug"}, 400, "slug"),
    ({}, 400, "slug"),
    ({"slug": "up-x", "kind": "planet"}, 400, "kind"),
    ({"slug": "up-x", "colour": "red"}, 400, None),
])
def test_bad_options_are_400_naming_the_field(client: TestClient, auth: dict, tmp_path: Path,
                                              fields: dict, status: int, where: str | None
                                              ) -> None:
    r = _post(client, "boundaries", _wards_file(tmp_path), auth, **fields)
    assert r.status_code == status, r.text
    if where:
        assert r.json()["where"] == where


def test_a_bad_file_is_422_with_every_problem(client: TestClient, conn: Connection, auth: dict,
                                              tmp_path: Path) -> None:
    path = tmp_path / "spend.csv"
    path.write_text("body,financial_year,amount,function,area_set,area_code\n"
                    "council,2014-15,£1.234,09,fx-none,B\n"
                    "council,15-16,12,09,fx-none,B\n")
    before = conn.execute("SELECT count(*) AS n FROM upload_batch").fetchone()["n"]
    r = _post(client, "spend", path, auth)
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "rejected" and body["total"] >= 2
    assert {p["row"] for p in body["problems"]} == {2, 3}
    assert all(p["fix"] for p in body["problems"])
    assert conn.execute("SELECT count(*) AS n FROM upload_batch").fetchone()["n"] == before


def test_an_html_page_named_geojson_is_refused(client: TestClient, auth: dict,
                                               tmp_path: Path) -> None:
    path = tmp_path / "wards.geojson"
    path.write_text("<!DOCTYPE html><html><body>Login</body></html>")
    r = _post(client, "boundaries", path, auth, slug="up-html")
    assert r.status_code == 422 and "HTML" in r.json()["cause"]
    assert "/tmp" not in json.dumps(r.json())


def test_unknown_kind_and_missing_file(client: TestClient, auth: dict) -> None:
    assert client.post("/uploads/planets", headers=auth, data={"x": "1"},
                       files={"file": ("a.csv", b"a")}).status_code == 404
    r = client.post("/uploads/spend", headers=auth, data={"unit": "pence"})
    assert r.status_code == 400 and "file" in r.json()["fix"]
