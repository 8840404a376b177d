"""The /map page: a folium choropleth that loads with no internet.

(a) The HTML as served: no CDN URL, every asset it names is served by the app, every ward is in
it, unknown collections are a JSON 404. (b) The page in a real headless Chromium (Debian's, via
Playwright) against a real uvicorn: no console error, no failed or off-host request, one path
per ward, a visible legend, tooltips and popups. With PLACESPEND_SCREENSHOT=1 the screenshots go
to docs/map.png and docs/map-popup.png; otherwise to the test's tmp_path (the repo stays clean).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from playwright.sync_api import Page, sync_playwright

from api.routers.map_page import Classes, class_edges, classify
from store import features
from store.db import Connection

HACKNEY = "hackney-wards-2014-spend-2014-15"
LONDON = "london-wards-2014-spend-2014-15"
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
_ATTR_URL = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*([^"'\s>]+)""", re.I)
_NAME = re.compile(r'"name":\s*"((?:[^"\\]|\\.)*)"')


def _ward_names(conn: Connection, collection: str) -> set[str]:
    page = features.items(conn, collection, limit=10_000)
    return {f["properties"]["name"] for f in json.loads(page.features_json)}


# --- (a) the HTML as served -------------------------------------------------------------------


def test_map_html_is_self_contained(client: TestClient, conn: Connection) -> None:
    r = client.get("/map")  # the default collection is Hackney's
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    text = r.text

    urls = _ATTR_URL.findall(text)
    assert urls, "the page should load Leaflet from the service"
    remote = [u for u in urls if re.match(r"(?:https?:)?//", u, re.I)]
    assert remote == [], f"CDN or other remote URLs in the page: {remote}"
    # Nothing a script could fetch from outside either: no remote .js/.css, no tile layer.
    assert not re.search(r"https?://[^\s\"'<>]+\.(?:js|css)\b", text)
    assert "tileLayer" not in text
    for lib in ("jquery", "bootstrap", "font-awesome", "fontawesome", "d3.min", "cdn"):
        assert lib not in text.lower(), lib

    assets = [u for u in urls if u.startswith("/static/")]
    assert "/static/leaflet/leaflet.js" in assets and "/static/leaflet/leaflet.css" in assets
    for url in assets:
        got = client.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 1000, url
    # leaflet.css points at its own images, which must be served too.
    assert client.get("/static/leaflet/images/layers.png").status_code == 200

    names = {json.loads(f'"{n}"') for n in _NAME.findall(text)}
    expected = _ward_names(conn, HACKNEY)
    assert len(expected) == 21
    assert expected <= names
    assert "Spend per head" in text
    assert "/runs/" in text


def test_map_london_collection(client: TestClient, conn: Connection) -> None:
    r = client.get("/map", params={"collection": LONDON})
    assert r.status_code == 200
    names = {json.loads(f'"{n}"') for n in _NAME.findall(r.text)}
    assert _ward_names(conn, LONDON) <= names
    # Simplified for the overview: well under the ~3.9 MB of full-resolution geometry.
    assert len(r.content) < 2_500_000
    assert not [u for u in _ATTR_URL.findall(r.text) if re.match(r"(?:https?:)?//", u)]


def test_unknown_collection_is_json_404(client: TestClient) -> None:
    r = client.get("/map", params={"collection": "no-such-collection"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == "not_found"
    assert "no-such-collection" in body["cause"]
    assert body["fix"]


def test_class_edges_are_round_and_cover_the_values() -> None:
    values = [1903.52, 1940.46, 2046.08, 2317.26, 2985.15, 3259.32]
    edges = class_edges(values)
    assert edges == [1750, 2000, 2250, 2500, 2750, 3000, 3250, 3500]
    bunched = [520.75] * 600 + [522.84, 1903.52, 3259.32]  # London: GLA-only wards bunch
    edges = class_edges(bunched)
    assert 4 <= len(edges) - 1 <= 7
    assert edges[0] <= min(bunched) and edges[-1] > max(bunched)
    classes = classify(bunched)
    assert isinstance(classes, Classes)
    assert classes.index(520.75) == 0 and classes.index(3259.32) == len(classes.colours) - 1
    assert classes.colour(None) != classes.colour(520.75)
    assert len(set(classes.colours)) == len(classes.colours)
    assert class_edges([5.0, 5.0]) == [5.0, 6.0]


# --- (b) the page in a real browser -----------------------------------------------------------


def _shots_dir(tmp_path: Path) -> Path:
    return ROOT / "docs" if os.environ.get("PLACESPEND_SCREENSHOT") == "1" else tmp_path


# Finds a point inside one ward's SVG path (the path itself is on top there) in page pixels.
_POINT_IN_WARD = """
(name) => {
    const map = window[document.querySelector(".folium-map").id];
    let layer = null;
    map.eachLayer((l) => { if (l.feature && l.feature.properties.name === name) layer = l; });
    if (!layer) return null;
    const path = layer.getElement();
    const c = map.latLngToContainerPoint(layer.getCenter());
    const box = map.getContainer().getBoundingClientRect();
    const r = path.getBoundingClientRect();
    const candidates = [[box.left + c.x, box.top + c.y]];
    for (let fy = 0.1; fy < 1; fy += 0.1)
        for (let fx = 0.1; fx < 1; fx += 0.1)
            candidates.push([r.left + fx * r.width, r.top + fy * r.height]);
    for (const [x, y] of candidates)
        if (document.elementFromPoint(x, y) === path) return [x, y];
    return null;
}
"""


def _point_in_ward(page: Page, name: str) -> tuple[float, float]:
    point = page.evaluate(_POINT_IN_WARD, name)
    assert point, f"no clickable point inside {name}"
    return point[0], point[1]


def test_map_renders_offline_in_chromium(server: str, tmp_path: Path) -> None:
    problems: list[str] = []
    requested: list[str] = []
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as user_data:
        context = pw.chromium.launch_persistent_context(
            user_data,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        try:
            page = context.new_page()
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "requestfailed",
                lambda r: problems.append(f"failed: {r.url} {r.failure}"),
            )
            page.on(
                "response",
                lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
            )
            page.on("request", lambda r: requested.append(r.url))

            response = page.goto(f"{server}/map", wait_until="networkidle")
            assert response is not None and response.status == 200
            page.wait_for_function("document.querySelectorAll('.leaflet-interactive').length > 0")

            assert problems == []
            offsite = [u for u in requested if not u.startswith((server, "data:"))]
            assert offsite == [], f"requests that need the internet: {offsite}"
            assert page.locator(".leaflet-tile").count() == 0  # no base tiles

            assert page.locator(".leaflet-interactive").count() == 21
            fills = page.eval_on_selector_all(
                ".leaflet-interactive", "els => els.map(e => e.getAttribute('fill'))"
            )
            assert len(set(fills)) >= 4, f"expected a choropleth, got fills {set(fills)}"

            legend = page.locator(".ps-legend")
            assert legend.is_visible()
            legend_text = legend.inner_text()
            assert "Spend per head, £ (2014-15)" in legend_text
            assert "/runs/" in legend_text
            attribution = page.locator(".leaflet-control-attribution").inner_text()
            assert "Ordnance Survey" in attribution and "Revenue Outturn" in attribution

            shots = _shots_dir(tmp_path)
            page.mouse.move(5, 795)  # nothing hovered in the overview
            page.screenshot(path=str(shots / "map.png"))

            x, y = _point_in_ward(page, "Hackney Central")
            page.mouse.move(x, y)
            tooltip = page.locator(".leaflet-tooltip")
            tooltip.wait_for(state="visible")
            assert tooltip.inner_text().strip() == "Hackney Central"

            page.mouse.click(x, y)
            popup = page.locator(".leaflet-popup-content")
            popup.wait_for(state="visible")
            text = popup.inner_text()
            for expected in (
                "Hackney Central",
                "E05009372",
                "population",
                "per head",
                "in total",
                "09 Education:",
                "10 Social protection:",
                "Hackney:",
                "Greater London Authority:",
                "Population proxy:",
                "Confidence D: an estimate, mostly spread by a population proxy",
                "by residents, land area, best fit or an alternative proxy",
                "%",
            ):
                assert expected in text, f"{expected!r} missing from the popup:\n{text}"
            assert re.search(r"09 Education:\s+£[\d,]+", text), text
            page.mouse.move(5, 795)  # leave the ward so the popup shows without hover styling
            time.sleep(0.4)  # let autoPan settle before the picture
            page.screenshot(path=str(shots / "map-popup.png"))
            assert problems == []
        finally:
            context.close()


def test_the_pages_own_css_and_javascript_are_static_files(client: TestClient) -> None:
    page = client.get("/map").text
    assert '/static/placespend/placespend-map.css"' in page
    assert '/static/placespend/placespend-map.js"' in page
    assert ".ps-legend {" not in page and "function placespendPopup" not in page
    labels = page.split('<script id="placespend-labels" type="application/json">')[1]
    assert json.loads(labels.split("</script>")[0])["methods"]["proxy"] == "Population proxy"
    css = client.get("/static/placespend/placespend-map.css")
    js = client.get("/static/placespend/placespend-map.js")
    assert css.status_code == 200 and ".ps-legend" in css.text
    assert js.status_code == 200 and "function placespendPopup" in js.text
    assert "function placespendOnEachFeature" in js.text and "layer.bindPopup" not in page
