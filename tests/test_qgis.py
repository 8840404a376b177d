"""Placespend in real QGIS 3.22 and GDAL 3.6, added the way GIS staff add any OGC service.

A real uvicorn serves the demo data on a free loopback port; ``scripts/qgis_check.py`` runs under
the system Python (Debian's ``python3-qgis``, not the .venv) with the offscreen Qt platform and
adds Hackney's collection through QGIS's OGC API Features provider (srsname EPSG:27700 and
EPSG:4326) and as a vector tile layer (rendered to a PNG), then reads it with ``ogrinfo``'s OAPIF
and MVT drivers. The tests assert on the JSON it prints, against what the API itself serves.
Nothing is skipped: without QGIS or ogrinfo the tests fail and say how to install them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

HACKNEY = "hackney-wards-2014-spend-2014-15"
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "qgis_check.py"
SYSTEM_PYTHON = "/usr/bin/python3"
SETUP = "run `bash bin/setup --with-qgis` (apt: python3-qgis qgis-providers gdal-bin)"
SPEND_FIELDS = ("total_pence", "total", "per_head", "cofog_07", "body_hackney")
NUMERIC_QVARIANTS = {"double", "int", "qlonglong", "uint", "qulonglong"}
NUMERIC_OGR = {"Real", "Integer", "Integer64"}
PART2_QGIS = (3, 30)  # the first QGIS whose OAPIF provider honours srsname (OGC API Features 2)


def _require_qgis_and_gdal() -> None:
    """Fail (never skip) when the system QGIS bindings or ogrinfo are missing."""
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail(f"{SYSTEM_PYTHON} is missing; {SETUP}")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        tail = probe.stderr.strip().splitlines()[-1:] or ["no output"]
        pytest.fail(f"{SYSTEM_PYTHON} cannot import qgis.core ({tail[0]}); {SETUP}")
    if shutil.which("ogrinfo") is None:
        pytest.fail(f"ogrinfo (GDAL) is not on PATH; {SETUP}")


@pytest.fixture(scope="module")
def api(server: str) -> dict[str, Any]:
    """What the API serves: its run, and the features and their exact total_pence sum."""
    coll = httpx.get(f"{server}/collections/{HACKNEY}", timeout=60)
    assert coll.status_code == 200, coll.text
    page = httpx.get(f"{server}/collections/{HACKNEY}/items", params={"limit": 100}, timeout=60)
    assert page.status_code == 200, page.text
    body = page.json()
    pence = [f["properties"]["total_pence"] for f in body["features"]]
    assert all(isinstance(p, int | float) and float(p).is_integer() for p in pence), pence
    return {
        "run": coll.json()["run"],
        "number_matched": body["numberMatched"],
        "features": len(body["features"]),
        "total_pence_sum": sum(int(p) for p in pence),
    }


@pytest.fixture(scope="module")
def check(server: str, api: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run scripts/qgis_check.py once against the live server; its JSON report and more."""
    _require_qgis_and_gdal()
    png = tmp_path_factory.mktemp("qgis") / "hackney-tiles.png"
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["QT_QPA_PLATFORM"] = "offscreen"
    command = [SYSTEM_PYTHON, str(SCRIPT), server, HACKNEY, str(api["run"]), "--png", str(png)]
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=600, check=False
    )
    stderr_tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"qgis_check.py exited {proc.returncode} without a JSON report:\n"
            f"{proc.stdout[-2000:]}\n--- stderr ---\n{stderr_tail}"
        )
    if proc.returncode == 2:  # could not check at all; the error says why (and how to fix it)
        pytest.fail(f"qgis_check.py could not check: {report.get('error')}\n{stderr_tail}")
    return {
        "report": report,
        "returncode": proc.returncode,
        "stderr": stderr_tail,
        "png": png,
    }


def test_the_api_serves_hackneys_21_wards(api: dict[str, Any]) -> None:
    assert api["number_matched"] == api["features"] == 21
    assert api["total_pence_sum"] > 0


@pytest.mark.parametrize("srs", ["EPSG:27700", "EPSG:4326"])
def test_qgis_adds_the_collection_through_oapif(check: dict, api: dict[str, Any], srs: str) -> None:
    report = check["report"]
    layer = report["qgis"]["oapif"][srs]
    assert layer["valid"], layer
    assert layer["feature_count"] == layer["features_read"] == 21
    for name in SPEND_FIELDS:
        field = layer["fields"][name]
        assert field["present"] and field["qvariant"] in NUMERIC_QVARIANTS, (name, field)
    assert layer["bad_total_pence"] == []
    assert layer["total_pence_sum"] == api["total_pence_sum"]  # exact, in whole pence
    # Older QGIS ignore srsname (no OGC API Features Part 2) and read CRS84 as EPSG:4326.
    version = tuple(int(p) for p in report["qgis"]["version"].split("-")[0].split(".")[:2])
    if srs == "EPSG:4326" or version >= PART2_QGIS:
        assert layer["layer_crs"] == srs
    else:
        assert layer["layer_crs"] in (srs, "EPSG:4326")
    # Either way the wards land where the API's own EPSG:27700 geometries are.
    assert layer["position_error_m"] < 5, layer["extent_27700"]


def test_qgis_renders_the_vector_tiles(check: dict, api: dict[str, Any]) -> None:
    tiles = check["report"]["qgis"]["tiles"]
    assert tiles["valid"], tiles
    assert tiles["render_errors"] == []
    assert tiles["painted_pixels"] > 0
    assert tiles["painted_pixels"] < tiles["image_pixels"]  # wards on a background, not a wash
    assert tiles["tile_requests"] > 0 and tiles["tile_statuses"] == [200]
    assert tiles["tile_urls_pinned"], tiles["tile_example"]
    assert f"run={api['run']}" in tiles["tile_example"]
    png = Path(tiles["png"])
    assert png == check["png"] and png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ogrinfo_reads_the_collection_through_oapif(check: dict, api: dict[str, Any]) -> None:
    ogr = check["report"]["gdal"]["oapif"]
    assert ogr["returncode"] == 0
    assert "Feature Count: 21" in ogr["lines"]
    assert ogr["feature_count"] == ogr["features_read"] == 21
    for name in SPEND_FIELDS:
        assert ogr["field_types"][name] in NUMERIC_OGR, (name, ogr["field_types"][name])
    assert ogr["field_types"]["total_pence"] in ("Real", "Integer64")
    assert ogr["total_pence_sum"] == api["total_pence_sum"]


def test_ogrinfo_reads_a_vector_tile_over_hackney(check: dict) -> None:
    mvt = check["report"]["gdal"]["mvt"]
    assert mvt["tile"] == [12, 2047, 1361]  # the slippy-map tile at Hackney's centre
    assert mvt["returncode"] == 0 and mvt["opened"], mvt["command"]
    assert mvt["layer"] == HACKNEY
    assert mvt["georeferenced_3857"]
    assert mvt["feature_count"] > 0 and mvt["features_read"] == mvt["feature_count"]
    assert mvt["total_pence_type"] in NUMERIC_OGR
    assert mvt["total_pence_all_numeric"], mvt["total_pence_examples"]


def test_the_script_passes_every_check(check: dict) -> None:
    report = check["report"]
    assert report["failed"] == [] and report["ok"], (report["failed"], check["stderr"])
    assert check["returncode"] == 0, check["stderr"]
