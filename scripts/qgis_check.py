#!/usr/bin/env python3
r"""Add a Placespend collection to real QGIS and GDAL the way GIS staff add any OGC service.

Run under the system Python, where Debian's ``python3-qgis`` lives (not the project's .venv)::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/qgis_check.py \
        http://127.0.0.1:8765 hackney-wards-2014-spend-2014-15 2 --png /tmp/tiles.png

It checks, with nothing a GIS user could not do by hand in QGIS or with ``ogrinfo``:

1. QGIS's OGC API Features provider (``OAPIF``) opens the collection with ``srsname`` EPSG:27700
   and EPSG:4326: the layer is valid, has the API's feature count, the spend fields are numeric,
   the sum of ``total_pence`` equals the API's, and the wards sit where the API's EPSG:27700
   geometries put them. (QGIS before 3.30 does not implement OGC API Features Part 2: it
   ignores ``srsname``, always asks for CRS84 and labels the layer EPSG:4326. That is accepted,
   and reported as ``srsname_honoured: false``.)
2. QGIS's vector tile layer (``type=xyz``, the run-pinned tile URL) is valid and, rendered
   offscreen over the collection's extent, paints pixels (the PNG is saved with ``--png``).
3. GDAL: ``ogrinfo OAPIF:...`` lists the features with numeric spend fields and the same sum;
   ``ogrinfo MVT:...`` reads one tile over the collection's centre, with numeric
   ``total_pence``. GDAL 3.6's MVT driver takes a URL whose last path segment is a number
   (``.../12/2047/1361``) for a tile *directory* and fails to open it, so the tile is read
   through its run-pinned URL ``.../12/2047/1361?run=N``, which opens as one tile; with the
   query string GDAL cannot parse z/x/y from the path, so the documented ``-oo Z= -oo X=
   -oo Y=`` open options georeference it (in EPSG:3857).

Prints one JSON object with everything measured on stdout (diagnostics go to stderr); exits 0
when every check passes, 1 when one fails, 2 when it cannot check at all (QGIS or ogrinfo
missing, the API not answering), with the cause in ``error``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from array import array
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

SPEND_FIELDS = ("total_pence", "total", "per_head", "cofog_07", "body_hackney")
CRSES = ("EPSG:27700", "EPSG:4326")
BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"
TMS = "WebMercatorQuad"
PART2_QGIS = 33000  # QGIS 3.30 added OGC API Features Part 2 to OAPIF (qgis/QGIS#50051)
POSITION_TOLERANCE_M = 5.0  # metres; server and QGIS transform with PROJ, they agree to ~1 cm
SETUP_HINT = "run: bash bin/setup --with-qgis"
_OGR_FIELD = re.compile(r"^(\w+): (\w+) \(\d+\.\d+\)$")
_OGR_VALUE = re.compile(r"^\s+(\w+) \((\w+)\) = (.*)$")
_OGR_NUMERIC = {"Integer", "Integer64", "Real"}


def log(message: str) -> None:
    """Write a diagnostic line to stderr (stdout carries only the JSON report)."""
    print(f"qgis_check: {message}", file=sys.stderr, flush=True)


# --- the API's own answers, for comparison ---------------------------------------------------


def fetch_json(url: str, timeout: float) -> Any:
    """GET a JSON document."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def whole_pence(value: Any) -> int:
    """A total_pence value as an exact int (it must be a whole number, int or float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"total_pence {value!r} is not a number")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"total_pence {value!r} is not a whole number of pence")
    return int(value)


def bbox_of(geometries: list[dict[str, Any]]) -> list[float]:
    """The [minx, miny, maxx, maxy] of GeoJSON (Multi)Polygon geometries."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(coords: Any) -> None:
        if coords and isinstance(coords[0], int | float):
            xs.append(coords[0])
            ys.append(coords[1])
        else:
            for c in coords:
                walk(c)

    for g in geometries:
        walk(g["coordinates"])
    return [min(xs), min(ys), max(xs), max(ys)]


def api_reference(base: str, collection: str, timeout: float) -> dict[str, Any]:
    """What the API itself says: feature count, sum of total_pence, extent, EPSG:27700 bbox."""
    coll_url = f"{base}/collections/{urllib.parse.quote(collection)}"
    doc = fetch_json(coll_url, timeout)
    page = fetch_json(f"{coll_url}/items?limit=10000", timeout)
    bng = fetch_json(
        f"{coll_url}/items?limit=10000&crs={urllib.parse.quote(BNG, safe='')}", timeout
    )
    features = page["features"]
    return {
        "run": doc.get("run"),
        "number_matched": page.get("numberMatched"),
        "features": len(features),
        "total_pence_sum": sum(whole_pence(f["properties"]["total_pence"]) for f in features),
        "bbox_crs84": doc["extent"]["spatial"]["bbox"][0][:4],
        "bbox_27700": bbox_of([f["geometry"] for f in bng["features"] if f["geometry"]]),
    }


def tile_for(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """The WebMercatorQuad (slippy map) column and row of the tile holding lon/lat."""
    n = 2**zoom
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


# --- QGIS ------------------------------------------------------------------------------------


class NetworkLog:
    """Every reply QGIS's network manager finished (URL, HTTP status, Qt error code)."""

    def __init__(self, qgis_core: Any, qt_network: Any) -> None:
        self.replies: list[dict[str, Any]] = []
        self._status = qt_network.QNetworkRequest.HttpStatusCodeAttribute
        qgis_core.QgsNetworkAccessManager.instance().finished.connect(self._finished)

    def _finished(self, reply: Any) -> None:
        self.replies.append(
            {
                "url": reply.request().url().toString(),
                "status": reply.attribute(self._status),
                "error": int(reply.error()),
            }
        )

    def since(self, start: int, path_part: str) -> list[dict[str, Any]]:
        """Replies after index start whose URL contains path_part."""
        return [r for r in self.replies[start:] if path_part in r["url"]]


def start_qgis(profile_dir: str) -> tuple[Any, Any]:
    """Import qgis.core and start a headless QgsApplication with a throwaway profile."""
    # Keep QGIS's settings and HTTP disk cache out of the user's home: a cached tile or page
    # from an earlier server on the same URL would otherwise be served instead of a fresh one.
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_RUNTIME_DIR", "runtime"),
    ):
        path = Path(profile_dir, sub)
        path.mkdir(mode=0o700, exist_ok=True)
        os.environ[var] = str(path)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis import core

    core.QgsApplication.setPrefixPath("/usr", True)
    app = core.QgsApplication([], False, str(Path(profile_dir, "profiles")))
    app.initQgis()
    return core, app


def settle(app: Any) -> None:
    """Deliver queued cross-thread signals (network replies finished in worker threads)."""
    for _ in range(5):
        app.processEvents()


def field_types(core: Any, layer: Any, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """For each name: QGIS's type name, the QVariant type, and whether it is numeric."""
    from qgis.PyQt.QtCore import QVariant

    numeric = {QVariant.Double, QVariant.Int, QVariant.LongLong, QVariant.UInt, QVariant.ULongLong}
    out: dict[str, dict[str, Any]] = {}
    fields = layer.fields()
    for name in names:
        index = fields.indexOf(name)
        if index < 0:
            out[name] = {"present": False, "numeric": False}
            continue
        field = fields.field(index)
        out[name] = {
            "present": True,
            "type_name": field.typeName(),
            "qvariant": QVariant.typeToName(field.type()),
            "numeric": field.type() in numeric,
        }
    return out


def rect(r: Any) -> list[float]:
    """A QgsRectangle as [xmin, ymin, xmax, ymax]."""
    return [r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum()]


def check_oapif(
    core: Any, app: Any, net: NetworkLog, base: str, collection: str, srs: str, api: dict[str, Any]
) -> dict[str, Any]:
    """Add the collection through QGIS's OAPIF provider with srsname=srs and measure it."""
    start = len(net.replies)
    uri = f"url='{base}' typename='{collection}' srsname='{srs}'"
    layer = core.QgsVectorLayer(uri, f"{collection} ({srs})", "OAPIF")
    out: dict[str, Any] = {"uri": uri, "valid": layer.isValid()}
    if not layer.isValid():
        out["error"] = layer.error().summary()
        return out
    authid = layer.crs().authid()
    out["layer_crs"] = authid
    out["srsname_honoured"] = authid == srs
    out["feature_count"] = layer.featureCount()
    out["fields"] = field_types(core, layer, SPEND_FIELDS)

    bng = core.QgsCoordinateReferenceSystem("EPSG:27700")
    to_bng = core.QgsCoordinateTransform(layer.crs(), bng, core.QgsProject.instance())
    features = 0
    total = 0
    bad_values: list[str] = []
    extent = core.QgsRectangle()
    extent.setMinimal()
    extent_bng = core.QgsRectangle()
    extent_bng.setMinimal()
    for feature in layer.getFeatures():
        features += 1
        value = feature["total_pence"]
        try:
            total += whole_pence(value)
        except ValueError as exc:
            bad_values.append(str(exc))
        if feature.hasGeometry():
            geometry = core.QgsGeometry(feature.geometry())
            extent.combineExtentWith(geometry.boundingBox())
            geometry.transform(to_bng)  # as QGIS draws it on a British National Grid map
            extent_bng.combineExtentWith(geometry.boundingBox())
    settle(app)
    out["features_read"] = features
    out["total_pence_sum"] = total
    out["bad_total_pence"] = bad_values[:5]
    out["extent"] = rect(extent)
    out["extent_27700"] = rect(extent_bng)
    out["position_error_m"] = max(
        abs(a - b) for a, b in zip(out["extent_27700"], api["bbox_27700"], strict=True)
    )
    out["items_requests"] = [r["url"] for r in net.since(start, "/items")]
    return out


def tile_uri(core: Any, base: str, collection: str, run: int) -> tuple[str, str]:
    """The QgsVectorTileLayer source for the run-pinned XYZ tile URL, URL-encoded as QGIS wants."""
    template = (
        f"{base}/collections/{urllib.parse.quote(collection)}/tiles/{TMS}"
        f"/{{z}}/{{x}}/{{y}}?run={run}"
    )
    uri = core.QgsDataSourceUri()
    uri.setParam("type", "xyz")
    uri.setParam("url", template)
    uri.setParam("zmin", "0")
    uri.setParam("zmax", "18")
    return template, bytes(uri.encodedUri()).decode()


def painted_pixels(image: Any, background: int) -> int:
    """How many pixels of an ARGB32 image differ from the background colour."""
    from qgis.PyQt.QtGui import QImage

    image = image.convertToFormat(QImage.Format_ARGB32)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    pixels = array("I")
    pixels.frombytes(bytes(bits))
    return sum(1 for p in pixels if p != background)


def check_tiles(
    core: Any,
    app: Any,
    net: NetworkLog,
    base: str,
    collection: str,
    run: int,
    extent_4326: list[float],
    size: int,
    png: Path,
) -> dict[str, Any]:
    """Add the vector tiles as a QgsVectorTileLayer and render them offscreen to a PNG."""
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    template, uri = tile_uri(core, base, collection, run)
    layer = core.QgsVectorTileLayer(uri, f"{collection} (tiles)")
    out: dict[str, Any] = {"template": template, "uri": uri, "valid": layer.isValid()}
    if not layer.isValid():
        out["error"] = layer.error().summary()
        return out
    out["layer_crs"] = layer.crs().authid()
    out["source_zoom"] = [layer.sourceMinZoom(), layer.sourceMaxZoom()]

    # An XYZ tile layer's own extent is the whole WebMercatorQuad; frame the collection's.
    to_layer = core.QgsCoordinateTransform(
        core.QgsCoordinateReferenceSystem("EPSG:4326"), layer.crs(), core.QgsProject.instance()
    )
    extent = to_layer.transformBoundingBox(core.QgsRectangle(*extent_4326))
    extent.scale(1.05)
    settings = core.QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setOutputSize(QSize(size, size))
    settings.setExtent(extent)
    background = QColor(255, 255, 255)
    settings.setBackgroundColor(background)

    start = len(net.replies)
    job = core.QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    settle(app)
    image = job.renderedImage()
    png.parent.mkdir(parents=True, exist_ok=True)
    out["png"] = str(png)
    out["png_saved"] = bool(image.save(str(png), "PNG"))
    out["render_errors"] = [f"{e.layerID}: {e.message}" for e in job.errors()]
    out["map_extent_3857"] = rect(settings.visibleExtent())
    out["map_zoom"] = round(math.log2(559082264.0287178 / settings.scale()), 2)
    out["image_pixels"] = image.width() * image.height()
    out["painted_pixels"] = painted_pixels(image, background.rgba())
    tiles = net.since(start, f"/tiles/{TMS}/")
    out["tile_requests"] = len(tiles)
    out["tile_zooms"] = sorted(
        {int(r["url"].split(f"/tiles/{TMS}/")[1].split("/")[0]) for r in tiles}
    )
    out["tile_statuses"] = sorted({r["status"] for r in tiles}, key=str)
    out["tile_urls_pinned"] = bool(tiles) and all(f"run={run}" in r["url"] for r in tiles)
    out["tile_example"] = tiles[0]["url"] if tiles else None
    return out


# --- GDAL ------------------------------------------------------------------------------------


def ogrinfo(args: list[str], timeout: float) -> tuple[int, str]:
    """Run ogrinfo; its return code and stdout+stderr."""
    proc = subprocess.run(
        ["ogrinfo", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


def ogr_schema(text: str) -> tuple[int | None, dict[str, str]]:
    """Feature count and field types from ogrinfo -so output."""
    count = None
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("Feature Count: "):
            count = int(line.split(": ", 1)[1])
        elif m := _OGR_FIELD.match(line):
            types[m.group(1)] = m.group(2)
    return count, types


def ogr_values(text: str, field: str) -> tuple[int, list[tuple[str, str]]]:
    """How many features ogrinfo printed, and (type, value) of field in each."""
    features = sum(1 for line in text.splitlines() if line.startswith("OGRFeature("))
    values = [
        (m.group(2), m.group(3))
        for line in text.splitlines()
        if (m := _OGR_VALUE.match(line)) and m.group(1) == field
    ]
    return features, values


def as_number(text: str) -> Decimal | None:
    """An ogrinfo value as an exact decimal, or None when it is not a number."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def check_gdal(
    base: str, collection: str, run: int, centre: tuple[float, float], zoom: int, timeout: float
) -> dict[str, Any]:
    """GDAL's OAPIF and MVT drivers, through ogrinfo, as a user would type them."""
    out: dict[str, Any] = {"version": ogrinfo(["--version"], timeout)[1].strip()}
    coll = f"{base}/collections/{urllib.parse.quote(collection)}"

    # OGC API Features: the schema (ogrinfo -so) and every value of total_pence.
    target = f"OAPIF:{coll}"
    code, text = ogrinfo(["-ro", "-al", "-so", target], timeout)
    count, types = ogr_schema(text)
    out["oapif"] = {
        "command": f'ogrinfo -ro -al -so "{target}"',
        "returncode": code,
        "feature_count": count,
        "field_types": {n: types.get(n) for n in SPEND_FIELDS},
        "lines": [
            ln
            for ln in text.splitlines()
            if ln.startswith(("Feature Count:", "total_pence:", "Geometry:"))
        ],
    }
    code, text = ogrinfo(["-ro", "-al", "-geom=NO", target], timeout)
    features, values = ogr_values(text, "total_pence")
    numbers = [as_number(v) for _, v in values]
    out["oapif"].update(
        features_read=features,
        total_pence_value_types=sorted({t for t, _ in values}),
        total_pence_sum=(
            int(sum(numbers))
            if values and all(n is not None and n == int(n) for n in numbers)
            else None
        ),
    )

    # One vector tile over the collection's centre.
    x, y = tile_for(centre[0], centre[1], zoom)
    tile = f"{coll}/tiles/{TMS}/{zoom}/{x}/{y}"
    target = f"MVT:{tile}?run={run}"
    oo = ["-oo", f"Z={zoom}", "-oo", f"X={x}", "-oo", f"Y={y}"]
    code, text = ogrinfo(["-ro", "-al", *oo, target], timeout)
    count, types = ogr_schema(text)
    features, values = ogr_values(text, "total_pence")
    out["mvt"] = {
        "command": f'ogrinfo -ro -al {" ".join(oo)} "{target}"',
        "tile": [zoom, x, y],
        "returncode": code,
        "opened": "using driver `MVT' successful" in text,
        "layer": (re.search(r"^Layer name: (.*)$", text, re.M) or [None, None])[1],
        "georeferenced_3857": 'ID["EPSG",3857]]' in text,
        "feature_count": count,
        "features_read": features,
        "total_pence_type": types.get("total_pence"),
        "total_pence_value_types": sorted({t for t, _ in values}),
        "total_pence_all_numeric": bool(values)
        and all(as_number(v) is not None for _, v in values),
        "total_pence_examples": [v for _, v in values[:3]],
    }
    # For the record, how GDAL takes the other ways of writing it (see the module docstring).
    out["mvt_other_forms"] = {}
    for form, options in (
        (f"MVT:{tile}", []),
        (f"MVT:/vsicurl/{tile}", []),
        (f"MVT:/vsicurl/{tile}?run={run}", oo),
        (target, []),
    ):
        text = ogrinfo(["-ro", "-so", "-al", *options, form], timeout)[1]
        out["mvt_other_forms"][" ".join([*options, form])] = {
            "opened": "using driver `MVT' successful" in text,
            "georeferenced_3857": 'ID["EPSG",3857]]' in text,
        }
    return out


# --- the verdict -----------------------------------------------------------------------------


def checks_for(report: dict[str, Any], qgis_version: int) -> dict[str, bool]:
    """Every pass/fail check over the measured report."""
    api = report["api"]
    checks: dict[str, bool] = {}
    for srs, layer in report["qgis"]["oapif"].items():
        key = f"oapif[{srs}]"
        checks[f"{key}.valid"] = layer["valid"]
        if not layer["valid"]:
            continue
        checks[f"{key}.crs"] = layer["srsname_honoured"] or (
            layer["layer_crs"] == "EPSG:4326" and qgis_version < PART2_QGIS
        )
        checks[f"{key}.feature_count"] = (
            layer["feature_count"] == layer["features_read"] == api["number_matched"]
        )
        checks[f"{key}.numeric_fields"] = all(f["numeric"] for f in layer["fields"].values())
        checks[f"{key}.total_pence_sum"] = (
            not layer["bad_total_pence"] and layer["total_pence_sum"] == api["total_pence_sum"]
        )
        checks[f"{key}.position"] = layer["position_error_m"] <= POSITION_TOLERANCE_M
    tiles = report["qgis"]["tiles"]
    checks["tiles.valid"] = tiles["valid"]
    if tiles["valid"]:
        checks["tiles.rendered"] = not tiles["render_errors"] and tiles["png_saved"]
        checks["tiles.painted"] = tiles["painted_pixels"] > 0
        checks["tiles.requests"] = tiles["tile_urls_pinned"] and tiles["tile_statuses"] == [200]
    ogr = report["gdal"]["oapif"]
    checks["ogr.oapif.feature_count"] = (
        ogr["feature_count"] == ogr["features_read"] == api["number_matched"]
    )
    checks["ogr.oapif.numeric_fields"] = all(t in _OGR_NUMERIC for t in ogr["field_types"].values())
    checks["ogr.oapif.total_pence_sum"] = ogr["total_pence_sum"] == api["total_pence_sum"]
    mvt = report["gdal"]["mvt"]
    checks["ogr.mvt.opened"] = mvt["opened"] and mvt["layer"] == report["collection"]
    checks["ogr.mvt.georeferenced"] = mvt["georeferenced_3857"]
    checks["ogr.mvt.features"] = (mvt["feature_count"] or 0) > 0 and mvt["features_read"] > 0
    checks["ogr.mvt.total_pence_numeric"] = (
        mvt["total_pence_type"] in _OGR_NUMERIC
        and set(mvt["total_pence_value_types"]) <= _OGR_NUMERIC
        and mvt["total_pence_all_numeric"]
    )
    return checks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base_url", help="the service's landing page, e.g. http://127.0.0.1:8765")
    p.add_argument("collection_id", help="e.g. hackney-wards-2014-spend-2014-15")
    p.add_argument("run_id", type=int, help="the run to pin the vector tiles to")
    p.add_argument(
        "--png",
        type=Path,
        help="where to save the rendered tiles (default: a file in the temporary directory)",
    )
    p.add_argument("--size", type=int, default=512, help="rendered image side, pixels")
    p.add_argument("--tile-zoom", type=int, default=12, help="zoom of the tile ogrinfo reads")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per HTTP/ogrinfo call")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every check, print the JSON report, return the exit code."""
    args = parse_args(argv)
    base = args.base_url.rstrip("/")
    png = args.png or Path(tempfile.gettempdir(), f"placespend-qgis-{args.collection_id}.png")
    report: dict[str, Any] = {
        "base_url": base,
        "collection": args.collection_id,
        "run": args.run_id,
    }
    if shutil.which("ogrinfo") is None:
        report.update(ok=False, error=f"ogrinfo (gdal-bin) is not installed; {SETUP_HINT}")
        print(json.dumps(report, indent=2))
        return 2
    try:
        report["api"] = api_reference(base, args.collection_id, args.timeout)
    except (OSError, ValueError, KeyError, IndexError) as exc:  # URLError is an OSError
        report.update(ok=False, error=f"the API at {base} did not answer as expected: {exc!r}")
        print(json.dumps(report, indent=2))
        return 2
    lon = (report["api"]["bbox_crs84"][0] + report["api"]["bbox_crs84"][2]) / 2
    lat = (report["api"]["bbox_crs84"][1] + report["api"]["bbox_crs84"][3]) / 2

    with tempfile.TemporaryDirectory(prefix="placespend-qgis-") as profile:
        try:
            core, app = start_qgis(profile)
        except ImportError as exc:
            report.update(ok=False, error=f"cannot import qgis.core ({exc}); {SETUP_HINT}")
            print(json.dumps(report, indent=2))
            return 2
        from qgis.PyQt import QtNetwork

        net = NetworkLog(core, QtNetwork)
        report["qgis"] = {"version": core.Qgis.QGIS_VERSION, "oapif": {}}
        extent_4326 = None
        for srs in CRSES:
            log(f"OAPIF layer, srsname {srs}")
            measured = check_oapif(core, app, net, base, args.collection_id, srs, report["api"])
            report["qgis"]["oapif"][srs] = measured
            if measured.get("layer_crs") == "EPSG:4326":
                extent_4326 = measured["extent"]
        log("vector tile layer")
        report["qgis"]["tiles"] = check_tiles(
            core,
            app,
            net,
            base,
            args.collection_id,
            args.run_id,
            extent_4326 or report["api"]["bbox_crs84"],
            args.size,
            png,
        )
        qgis_version = core.Qgis.QGIS_VERSION_INT
        app.exitQgis()

    log("ogrinfo")
    report["gdal"] = check_gdal(
        base, args.collection_id, args.run_id, (lon, lat), args.tile_zoom, args.timeout
    )
    report["checks"] = checks_for(report, qgis_version)
    report["failed"] = [name for name, ok in report["checks"].items() if not ok]
    report["ok"] = not report["failed"]
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
