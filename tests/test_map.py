"""The budget teams' map (/map), and the two small answers it reads (/map/values, /map/labels).

(a) What the service answers: the page names no outside address and every asset it names is
served; /map/values gives each ward the figure the features publish, classified with counts
that add up; /map/labels gives points inside the wards in view. (b) The page in a real
headless Chromium (Debian's, through Playwright) against a real uvicorn, with every request
that is not to the service aborted: no console error, the choropleth drawn from vector tiles,
selectors that change colours and legend, a click that shows the API's figures, a drawn
polygon whose budget is the neighbourhood endpoint's, flows whose total is the map's, a
comparison of two years, exports. With PLACESPEND_SCREENSHOT=1 the screenshots go to docs/
(map.png, map-popup.png, map-neighbourhood.png, map-flows.png, map-compare.png, map-phone.png,
map-london.png);
otherwise to the test's tmp_path, so the repository stays clean.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from placespend.mapview import Classes, class_edges, classify, quantile_edges
from store import features
from store.db import Connection

HACKNEY = "hackney-wards-2014-spend-2014-15"
HACKNEY_EARLIER = "hackney-wards-2014-spend-2013-14"
LONDON = "london-wards-2014-spend-2014-15"
HACKNEY_CENTRAL = "E05009372"
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
_ATTR_URL = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*([^"'\s>]+)""", re.I)
# A square well inside Hackney Central and Dalston's corner (lon, lat), drawn in the browser.
DRAWN = [(-0.0600, 51.5490), (-0.0500, 51.5490), (-0.0500, 51.5430), (-0.0600, 51.5430)]


def _square(name: str | None = None) -> dict:
    """DRAWN as a GeoJSON Feature (closed ring), as a file or a program would send it."""
    return {"type": "Feature", "properties": {"name": name} if name else {},
            "geometry": {"type": "Polygon",
                         "coordinates": [[[lon, lat] for lon, lat in [*DRAWN, DRAWN[0]]]]}}


def _features(conn: Connection, collection: str) -> dict[str, dict]:
    page = features.items(conn, collection, limit=10_000, with_geometry=False)
    return {f["id"]: f["properties"] for f in json.loads(page.features_json)}


def _gbp(pounds: float) -> str:
    return f"£{pounds:,.0f}"


# --- (a) what the service answers -------------------------------------------------------------


def test_map_html_names_only_assets_the_service_serves(client: TestClient) -> None:
    r = client.get("/map")  # the default collection is Hackney's
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    text = r.text
    urls = _ATTR_URL.findall(text)
    remote = [u for u in urls if re.match(r"(?:https?:)?//", u, re.I)]
    assert remote == [], f"CDN or other remote URLs in the page: {remote}"
    assert not re.search(r"https?://[^\s\"'<>]+\.(?:js|css)\b", text)
    assert "tileLayer" not in text  # no basemap unless one is configured
    for lib in ("jquery", "bootstrap", "font-awesome", "unpkg", "cdnjs", "cdn."):
        assert lib not in text.lower(), lib
    assets = [u for u in urls if u.startswith("/static/")]
    for expected in ("/static/leaflet/leaflet.js", "/static/leaflet/leaflet.css",
                     "/static/vendor/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js",
                     "/static/vendor/leaflet-draw/dist/leaflet.draw.js",
                     "/static/placespend/placespend-map.js",
                     "/static/placespend/placespend-map.css"):
        assert expected in assets, expected
    for url in assets:
        got = client.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 1000, url
    assert client.get("/static/leaflet/images/layers.png").status_code == 200
    assert client.get("/static/vendor/leaflet-draw/dist/images/spritesheet.svg").status_code == 200
    # The page's own CSS and JavaScript are files, not strings in Python.
    assert ".ps-panel {" not in text and "function figuresHtml" not in text
    config = json.loads(text.split('<script id="placespend-config" type="application/json">')[1]
                        .split("</script>")[0])
    assert config["collection"] == HACKNEY and config["run"] == 2
    assert config["place"] == "Hackney" and config["features"] == 21
    assert config["tiles"]["areas"].endswith(
        "/collections/hackney-wards-2014/tiles/WebMercatorQuad/{z}/{x}/{y}")
    assert config["tiles"]["outlinesLayer"] == "london-boroughs-2014"
    assert {s["financial_year"] for s in config["siblings"]} == {"2013-14", "2014-15"}
    assert config["functions"]["09"] == "Education"
    assert "Ordnance Survey" in config["attribution"]
    assert config["basemap"] is None
    later = [u for paths in config["urls"]["later"].values() for u in paths]  # loaded when used
    assert "/static/vendor/d3/dist/d3.min.js" in later
    assert "/static/vendor/d3-sankey/dist/d3-sankey.min.js" in later
    assert "/static/vendor/html-to-image/dist/html-to-image.js" in later
    for url in later:
        assert client.get(url).status_code == 200, url
    assert len(config["values"]["codes"]) == 21  # the first colours come with the page


def test_a_configured_basemap_is_drawn_under_the_areas(app, client: TestClient) -> None:
    settings = app.state.settings
    old = settings.basemap_url, settings.basemap_attribution
    settings.basemap_url = "http://tiles.example.org/{z}/{x}/{y}.png"
    settings.basemap_attribution = "Example basemap"
    try:
        text = client.get("/map").text
    finally:
        settings.basemap_url, settings.basemap_attribution = old
    assert "tiles.example.org/{z}/{x}/{y}.png" in text and "Example basemap" in text


def test_without_the_browser_libraries_the_map_says_how_to_install_them(
        db_url: str, tmp_path: Path) -> None:
    from api.app import create_app
    from placespend.settings import Settings

    app = create_app(Settings(database_url=db_url, web_modules=str(tmp_path / "none")))
    with TestClient(app) as c:
        r = c.get("/map")
        assert r.status_code == 503
        assert "bin/setup" in r.json()["fix"]
        assert c.get("/collections").status_code == 200  # the API works without them


@pytest.mark.parametrize(("params", "status", "where"), [
    ({"collection": "no-such-collection"}, 404, "no-such-collection"),
    ({"collection": "hackney-wards-2014"}, 404, "collection"),  # a boundary set: no figures
    ({"function": "11"}, 400, "function"),
    ({"function": "9"}, 400, "function"),
    ({"body": "no-such-body"}, 400, "body"),
    ({"per": "ward"}, 400, "per"),
    ({"classes": "jenks"}, 400, "classes"),
    ({"colour": "red"}, 400, "colour"),
])
def test_map_refuses_what_it_cannot_show(client: TestClient, params: dict, status: int,
                                         where: str) -> None:
    r = client.get("/map", params=params)
    assert r.status_code == status
    body = r.json()
    assert body["fix"] and where in (body.get("where") or "") + body["cause"]


def test_values_are_the_published_figures(client: TestClient, conn: Connection) -> None:
    props = _features(conn, HACKNEY)
    r = client.get("/map/values", params={"collection": HACKNEY, "run": 2})
    assert r.status_code == 200
    assert "immutable" in r.headers["cache-control"]
    view = r.json()
    assert view["label"] == "All public spending, £ per head"
    assert len(view["codes"]) == 21 and sum(view["classes"]["counts"]) == 21
    for code, value in zip(view["codes"], view["values"], strict=True):
        assert value == pytest.approx(props[code]["per_head"], abs=0.006)
    assert view["total"] == pytest.approx(sum(p["total"] for p in props.values()), abs=0.01)

    edu = client.get("/map/values", params={"collection": HACKNEY, "function": "09",
                                            "per": "total"}).json()
    assert edu["label"] == "Education (COFOG 09), £ in total"
    for code, value in zip(edu["codes"], edu["values"], strict=True):
        assert value == pytest.approx(props[code]["cofog_09"], abs=0.006)
    assert edu["classes"] != view["classes"]

    # One body on one function is summed from the run's target allocation; over the ten
    # divisions it gives the body's published total in every ward.
    by_division: dict[str, float] = {}
    for division in [f"{i:02d}" for i in range(1, 11)]:
        got = client.get("/map/values", params={"collection": HACKNEY, "body": "hackney",
                                                "function": division, "per": "total"})
        assert got.status_code == 200  # a division the layer lacks is £0 everywhere
        for code, value in zip(got.json()["codes"], got.json()["values"], strict=True):
            by_division[code] = by_division.get(code, 0.0) + value
    for code, total in by_division.items():
        assert total == pytest.approx(props[code]["body_hackney"], abs=0.05)


def test_values_as_csv_carry_the_run_and_the_sources(client: TestClient) -> None:
    r = client.get("/map/values", params={"collection": HACKNEY, "run": 2, "f": "csv",
                                          "function": "07"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 21
    assert {row["run"] for row in rows} == {"2"}
    assert "Ordnance Survey" in rows[0]["attribution"]
    assert float(rows[0]["class_from"]) <= float(rows[0]["Health (COFOG 07), £ per head"])


def test_values_refuse_bad_parameters(client: TestClient) -> None:
    assert client.get("/map/values").status_code == 400  # no collection
    assert client.get("/map/values", params={"collection": HACKNEY, "f": "xml"}).status_code == 400
    assert client.get("/map/values", params={"collection": HACKNEY, "run": 99}).status_code == 404


def test_labels_are_points_inside_the_wards_in_view(client: TestClient) -> None:
    r = client.get("/map/labels", params={"collection": "hackney-wards-2014",
                                          "bbox": "-0.08,51.535,-0.04,51.56", "limit": 5})
    assert r.status_code == 200
    labels = r.json()["labels"]
    assert 1 <= len(labels) <= 5
    areas = [lab["area_m2"] for lab in labels]
    assert areas == sorted(areas, reverse=True)  # the largest first
    for lab in labels:
        assert -0.08 <= lab["lon"] <= -0.04 and 51.535 <= lab["lat"] <= 51.56
    assert client.get("/map/labels", params={"collection": "hackney-wards-2014",
                                             "bbox": "1,2,3"}).status_code == 400


def test_class_edges_are_round_and_cover_the_values() -> None:
    values = [1903.52, 1940.46, 2046.08, 2317.26, 2985.15, 3259.32]
    assert class_edges(values) == [1750, 2000, 2250, 2500, 2750, 3000, 3250, 3500]
    bunched = [520.75] * 600 + [522.84, 1903.52, 3259.32]
    edges = class_edges(bunched)
    assert 4 <= len(edges) - 1 <= 7
    assert edges[0] <= min(bunched) and edges[-1] > max(bunched)
    classes = classify(bunched)
    assert isinstance(classes, Classes)
    assert classes.index(520.75) == 0 and classes.index(3259.32) == len(classes.colours) - 1
    assert classes.colour(None) != classes.colour(520.75)
    assert len(set(classes.colours)) == len(classes.colours)
    assert class_edges([5.0, 5.0]) == [5.0, 6.0]


def test_quantile_classes_share_the_areas_out() -> None:
    skewed = [9000.0 + i for i in range(600)] + [23505.0]  # London: the City far above
    edges = quantile_edges(skewed)
    assert len(edges) == 6 and edges[0] <= 9000 and edges[-1] > 23505
    classes = classify(skewed, scheme="quantiles")
    counts = [0] * len(classes.colours)
    for v in skewed:
        counts[classes.index(v)] += 1
    assert max(counts) - min(counts) <= 10, counts  # equal steps put 600 in one class


# The figures a map classifies are pounds to the penny (the run publishes them so).
@given(st.lists(st.integers(min_value=-10**11, max_value=10**11).map(lambda p: p / 100),
                min_size=1, max_size=300), st.sampled_from(["steps", "quantiles"]))
@settings(max_examples=300, deadline=None)
def test_every_value_falls_in_a_class_of_the_legend(values: list[float], scheme: str) -> None:
    classes = classify(values, scheme=scheme)
    edges = classes.edges
    assert all(a < b for a, b in zip(edges, edges[1:], strict=False))  # ascending, distinct
    assert len(classes.colours) == len(edges) - 1 <= 7
    assert edges[0] <= min(values) and max(values) <= edges[-1]
    for v in values:  # the class a value is drawn in holds it
        i = classes.index(v)
        assert edges[i] <= v and (v < edges[i + 1] or (i == len(edges) - 2 and v <= edges[-1]))


# --- (b) the page in a real browser -----------------------------------------------------------


def _shots(tmp_path: Path) -> Path:
    return ROOT / "docs" if os.environ.get("PLACESPEND_SCREENSHOT") == "1" else tmp_path


def _picture(page: Page, tmp_path: Path, name: str) -> None:
    """The view as a screenshot, with nothing hovered and pans and fades settled."""
    page.mouse.move(5, page.viewport_size["height"] - 5)
    time.sleep(0.4)
    page.screenshot(path=str(_shots(tmp_path) / name))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                               args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page whose console errors, failed requests and off-service requests are recorded."""

    def __init__(self, context: BrowserContext, server: str) -> None:
        self.problems: list[str] = []
        self.offsite: list[str] = []

        def route(r):  # the network is cut off from everything but the service
            if r.request.url.startswith((server, "data:", "blob:")):
                r.continue_()
            else:
                self.offsite.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        self.page = context.new_page()
        p = self.page
        p.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
             if m.type == "error" else None)
        p.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        p.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        p.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}")
             if r.status >= 400 else None)

    def open(self, url: str) -> Page:
        response = self.page.goto(url)
        assert response is not None and response.status == 200
        self.page.wait_for_function("document.documentElement.dataset.psRendered === '1'",
                                    timeout=30_000)
        return self.page

    def clean(self) -> None:
        assert self.problems == [] and self.offsite == [], (self.problems, self.offsite)


@pytest.fixture()
def watched(browser: Browser, server: str) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 800},
                                  accept_downloads=True)
    try:
        yield Watched(context, server)
    finally:
        context.close()


def _pixel(page: Page, lon: float, lat: float) -> tuple[float, float]:
    """Page pixel of a lon/lat on the map."""
    return tuple(page.evaluate(
        """([lon, lat]) => {
            const m = window[placespend.config.names.map];
            const p = m.latLngToContainerPoint([lat, lon]);
            const r = m.getContainer().getBoundingClientRect();
            return [r.left + p.x, r.top + p.y];
        }""", [lon, lat]))


def _label_point(client: TestClient, code: str) -> tuple[float, float]:
    labels = client.get("/map/labels", params={"collection": "hackney-wards-2014",
                                               "bbox": "-0.11,51.52,-0.01,51.58",
                                               "limit": 400}).json()["labels"]
    found = next(lab for lab in labels if lab["code"] == code)
    return found["lon"], found["lat"]


def _click_ward(page: Page, client: TestClient, code: str) -> str:
    # A closed popup fades out for 200 ms before Leaflet removes it: wait until it has gone.
    page.wait_for_function("document.querySelectorAll('.leaflet-popup').length === 0")
    x, y = _pixel(page, *_label_point(client, code))
    page.mouse.click(x, y)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(state="visible")
    # The popup pans the map into view: a click during the pan can land on the moving map.
    page.evaluate("""() => new Promise((done) => {
        const m = window[placespend.config.names.map];
        if (m._panAnim && m._panAnim._inProgress) m.once("moveend", () => done());
        else done();
    })""")
    return popup.inner_text()


def test_map_loads_offline_and_draws_the_choropleth_from_tiles(
        watched: Watched, server: str, tmp_path: Path) -> None:
    tiles: list[str] = []
    watched.page.on("request", lambda r: tiles.append(r.url) if "/tiles/" in r.url else None)
    page = watched.open(f"{server}/map")
    assert any("/collections/hackney-wards-2014/tiles/WebMercatorQuad/" in u for u in tiles)
    assert any("/collections/london-boroughs-2014/tiles/" in u for u in tiles)  # outlines
    assert page.locator("canvas.leaflet-tile").count() >= 1
    assert page.locator(".leaflet-tile-container img").count() == 0  # no basemap
    legend = page.locator("#ps-legend").inner_text()
    assert "All public spending, £ per head" in legend
    counts = [int(n) for n in re.findall(r"(\d+) wards?\b", legend)]
    assert sum(counts) == 21
    assert page.locator(".ps-place").inner_text() == "Hackney"
    assert "Served basis" in page.locator(".ps-basis").inner_text()
    assert page.locator(".leaflet-control-scale").is_visible()
    page.wait_for_function("document.querySelectorAll('.ps-label').length >= 10")
    names = page.eval_on_selector_all(".ps-label", "els => els.map(e => e.textContent)")
    assert "Hackney Central" in names and "Dalston" in names
    credits = page.locator(".leaflet-control-attribution")
    assert "Boundaries:" in credits.inner_text()
    page.click(".ps-attr-toggle")
    assert "Ordnance Survey" in credits.inner_text()
    assert "Revenue Outturn" in credits.inner_text()
    page.click(".ps-attr-toggle")
    _picture(page, tmp_path, "map.png")
    watched.clean()


def test_switching_function_and_per_head_changes_colours_and_legend(
        watched: Watched, server: str) -> None:
    page = watched.open(f"{server}/map")
    codes = page.evaluate("placespend.state.view.codes")
    drawn = [0]  # how many times the tiles have been drawn in full

    def look() -> tuple[str, list[str], bytes]:
        page.wait_for_function(f"Number(document.documentElement.dataset.psDrawn) > {drawn[0]}")
        drawn[0] = int(page.evaluate("document.documentElement.dataset.psDrawn"))
        return (page.locator("#ps-legend").inner_text(),
                [page.evaluate(f"placespend.colourOf('{c}')") for c in codes],
                page.locator("canvas.leaflet-tile").first.screenshot())

    before = look()
    with page.expect_response(lambda r: "/map/values" in r.url and "function=09" in r.url):
        page.select_option("#ps-function", "09")
    page.wait_for_function("placespend.state.view.measure.function === '09'")
    education = look()
    assert "Education (COFOG 09), £ per head" in education[0]
    assert education[0] != before[0] and education[1] != before[1]
    assert education[2] != before[2]  # the drawn tile changed
    with page.expect_response(lambda r: "/map/values" in r.url and "per=total" in r.url):
        page.check("input[name='ps-per'][value='total']")
    page.wait_for_function("placespend.state.view.measure.per === 'total'")
    total = look()
    assert "Education (COFOG 09), £ in total" in total[0]
    assert total[0] != education[0]
    assert re.search(r"£[\d,]{9,} to £[\d,]{9,}", total[0]), total[0]  # millions, not £ a head
    assert "function=09" in page.url and "per=total" in page.url  # the view has an address
    watched.clean()


def test_the_year_selector_opens_the_other_years_figures(watched: Watched, server: str,
                                                         client: TestClient) -> None:
    page = watched.open(f"{server}/map?function=07")
    page.wait_for_load_state("networkidle")  # leaving sooner aborts the outlines' requests
    with page.expect_navigation():
        page.select_option("#ps-year", HACKNEY_EARLIER)
    page.wait_for_function("document.documentElement.dataset.psRendered === '1'")
    assert f"collection={HACKNEY_EARLIER}" in page.url and "function=07" in page.url
    legend = page.locator("#ps-legend").inner_text()
    assert "2013-14" in legend and "Health (COFOG 07), £ per head" in legend
    earlier = client.get("/map/values", params={"collection": HACKNEY_EARLIER,
                                                "function": "07"}).json()
    assert page.evaluate("placespend.state.view.values") == earlier["values"]
    assert page.locator("#ps-run").get_attribute("href").endswith("/runs/1")
    watched.clean()


def test_clicking_a_ward_shows_the_apis_figures(watched: Watched, server: str,
                                                client: TestClient, tmp_path: Path) -> None:
    page = watched.open(f"{server}/map")
    text = _click_ward(page, client, HACKNEY_CENTRAL)
    api = client.get(f"/collections/{HACKNEY}/items/{HACKNEY_CENTRAL}").json()["properties"]
    assert "Hackney Central" in text and HACKNEY_CENTRAL in text
    assert f"£{api['per_head']:,.2f} per head" in text
    assert f"{_gbp(api['total'])} in total" in text
    assert f"population {api['population']:,.0f}" in text
    for division, name in (("07", "Health"), ("09", "Education"), ("10", "Social protection")):
        assert f"{division} {name}:\n{_gbp(api['cofog_' + division])}" in text.replace("\t", "\n")
    assert f"Hackney:\n{_gbp(api['body_hackney'])}" in text.replace("\t", "\n")
    assert "Population proxy:" in text and "Confidence D" in text
    links = page.eval_on_selector_all(".leaflet-popup-content a", "els => els.map(a => a.href)")
    geojson = next(u for u in links if f"/items/{HACKNEY_CENTRAL}" in u)
    csv_link = next(u for u in links if "f=csv" in u)
    assert client.get(geojson.replace(server, "")).json()["properties"]["total"] == api["total"]
    rows = list(csv.DictReader(io.StringIO(client.get(csv_link.replace(server, "")).text)))
    assert [r["code"] for r in rows] == [HACKNEY_CENTRAL]
    _picture(page, tmp_path, "map-popup.png")
    watched.clean()


def test_drawing_a_polygon_shows_the_neighbourhood_endpoints_budget(
        watched: Watched, server: str, client: TestClient, tmp_path: Path) -> None:
    page = watched.open(f"{server}/map")
    page.click(".leaflet-draw-draw-polygon")
    points = [_pixel(page, lon, lat) for lon, lat in DRAWN]
    for x, y in points:
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        page.wait_for_timeout(150)
    page.mouse.click(*points[0])  # closing the ring finishes the polygon
    sheet = page.locator("#ps-sheet[data-view='budget']")
    sheet.wait_for(state="visible")
    drawn = page.evaluate("placespend.state.drawnGeojson")
    assert drawn["geometry"]["type"] == "Polygon"
    api = client.post("/neighbourhoods/budget", params={"run": 2}, json=drawn).json()
    text = sheet.inner_text()
    assert f"{_gbp(api['total_pence'] / 100)} in total" in text
    if api["per_head"] is not None:
        assert f"£{api['per_head']:,.2f} per head" in text
    for division, pence in api["by_function_pence"].items():
        assert _gbp(pence / 100) in text, division
    assert api["atoms"] > 0 and f"{api['atoms']} small areas touched" in text
    page.fill(".ps-save input[name='name']", "Dalston Lane square")
    page.click(".ps-save button[type='submit']")
    assert "Saved in this browser as Dalston Lane square" in sheet.inner_text()
    assert "Dalston Lane square" in page.locator("#ps-saved").inner_text()
    _picture(page, tmp_path, "map-neighbourhood.png")
    watched.clean()


def test_uploading_a_polygon_shows_its_budget_and_a_bad_file_says_why(
        watched: Watched, server: str, client: TestClient, tmp_path: Path) -> None:
    page = watched.open(f"{server}/map")
    shape = _square("Mare Street strip")
    good = tmp_path / "mare-street.geojson"
    good.write_text(json.dumps(shape))
    page.set_input_files("#ps-upload", str(good))
    sheet = page.locator("#ps-sheet[data-view='budget']")
    sheet.wait_for(state="visible")
    api = client.post("/neighbourhoods/budget", params={"run": 2}, json=shape).json()
    assert "Mare Street strip: its budget" in sheet.inner_text()
    assert f"{_gbp(api['total_pence'] / 100)} in total" in sheet.inner_text()
    bad = tmp_path / "broken.geojson"
    bad.write_text('{"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]')
    page.set_input_files("#ps-upload", str(bad))
    page.wait_for_function("document.getElementById('ps-status').textContent.includes('JSON')")
    assert "broken.geojson is not JSON" in page.locator("#ps-status").inner_text()
    watched.clean()


def test_saving_a_drawn_neighbourhood_to_placespend_needs_a_key(
        watched: Watched, server: str, api_key: str) -> None:
    page = watched.open(f"{server}/map")
    page.evaluate("g => placespend.budgetOf(g, 'Key test square')", _square())
    page.locator("#ps-sheet[data-view='budget']").wait_for(state="visible")
    page.click(".ps-save summary")
    page.fill(".ps-save input[name='name']", f"Key test square {os.getpid()}")
    page.fill(".ps-save input[name='set']", "browser-tests")
    page.fill(".ps-save input[name='key']", api_key)
    page.click("[data-ps-action='save-server']")
    page.wait_for_function("document.querySelector('.ps-save-status').textContent.length > 0")
    assert "Saved in browser-tests" in page.locator(".ps-save-status").inner_text()
    watched.clean()


def test_the_flow_views_total_is_the_maps(watched: Watched, server: str, client: TestClient,
                                          tmp_path: Path) -> None:
    page = watched.open(f"{server}/map")
    _click_ward(page, client, HACKNEY_CENTRAL)
    page.click("[data-ps-action='flows-area']")
    sheet = page.locator("#ps-sheet[data-view='flows']")
    sheet.wait_for(state="visible")
    api = client.get(f"/collections/{HACKNEY}/items/{HACKNEY_CENTRAL}").json()["properties"]
    shown = int(page.get_attribute("[data-ps-flow-total]", "data-ps-flow-total"))
    assert shown == api["total_pence"]  # to the penny
    assert _gbp(api["total"]) in sheet.inner_text()
    assert page.locator(".ps-flows svg path").count() >= 5
    _picture(page, tmp_path, "map-flows.png")

    # The whole map's flows add up to the legend's total too.
    page.click("[data-ps-action='close']")
    page.click("[data-ps-action='flows-all']")
    page.locator("#ps-sheet[data-view='flows']").wait_for(state="visible")
    everything = int(page.get_attribute("[data-ps-flow-total]", "data-ps-flow-total"))
    wards = client.get(f"/collections/{HACKNEY}/items", params={"limit": 100}).json()
    assert everything == sum(f["properties"]["total_pence"] for f in wards["features"])
    assert f"In all: {_gbp(everything / 100)}" in page.locator("#ps-legend").inner_text()
    watched.clean()


def test_comparing_two_years_of_a_ward(watched: Watched, server: str, client: TestClient,
                                       tmp_path: Path) -> None:
    page = watched.open(f"{server}/map")
    _click_ward(page, client, HACKNEY_CENTRAL)
    page.click("[data-ps-action='compare-area']")
    page.locator("#ps-compare-year").wait_for(state="visible")
    page.select_option("#ps-compare-year", HACKNEY_EARLIER)
    page.click("[data-ps-action='compare-year']")
    row = page.locator("tr[data-ps-row='total']")
    row.wait_for(state="visible")
    now = client.get(f"/collections/{HACKNEY}/items/{HACKNEY_CENTRAL}").json()["properties"]
    then = client.get(f"/collections/{HACKNEY_EARLIER}/items/{HACKNEY_CENTRAL}").json()
    cells = row.locator("td").all_inner_texts()  # the earlier year first
    assert cells[1] == _gbp(then["properties"]["total"]) and cells[2] == _gbp(now["total"])
    change = now["total"] - then["properties"]["total"]
    assert cells[3] == ("+" if change >= 0 else "−") + _gbp(abs(change))
    heads = page.locator(".ps-compare tr.ps-hd").first.inner_text()
    assert "2014-15" in heads and "2013-14" in heads
    _picture(page, tmp_path, "map-compare.png")

    # Two areas: the comparison starts again with the next two chosen.
    page.click("[data-ps-action='close']")
    _click_ward(page, client, HACKNEY_CENTRAL)
    page.click("[data-ps-action='compare-area']")
    page.click("[data-ps-action='close']")
    _click_ward(page, client, "E05009370")  # Dalston
    page.click("[data-ps-action='compare-area']")
    heads = page.locator(".ps-compare tr.ps-hd").first.inner_text()
    assert "Hackney Central" in heads and "Dalston" in heads
    watched.clean()


def test_exports_carry_the_sources(watched: Watched, server: str) -> None:
    page = watched.open(f"{server}/map")
    with page.expect_download() as got:
        page.click("[data-ps-action='png']")
    png = Path(got.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert got.value.suggested_filename == f"{HACKNEY}-run2-map.png"
    with page.expect_download() as got:
        page.click("#ps-csv")
    rows = list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text())))
    assert len(rows) == 21 and "Ordnance Survey" in rows[0]["attribution"]
    page.emulate_media(media="print")
    assert not page.locator(".ps-actions").is_visible()
    assert page.locator(".ps-attr-full").is_visible()
    assert "Ordnance Survey" in page.locator(".ps-attr-full").inner_text()
    watched.clean()


def test_keyboard_and_a_phone_sized_screen(browser: Browser, server: str,
                                           tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True)
    try:
        watched = Watched(context, server)
        page = watched.open(f"{server}/map")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.evaluate("document.querySelector('#ps-panel .ps-details').open") is False
        page.click("#ps-panel summary")
        assert page.locator("#ps-function").is_visible()
        # Keyboard only: focus the function selector, choose with the arrow keys.
        page.focus("#ps-function")
        with page.expect_response(lambda r: "/map/values" in r.url and "function=" in r.url):
            page.keyboard.press("ArrowDown")
        page.wait_for_function("placespend.state.view.measure.function !== null")
        # Find a ward by name, with the keyboard, and get its figures.
        page.focus("#ps-find")
        page.keyboard.type("Hackney Central")
        page.keyboard.press("Tab")
        page.locator(".leaflet-popup-content").wait_for(state="visible")
        assert "E05009372" in page.locator(".leaflet-popup-content").inner_text()
        page.screenshot(path=str(_shots(tmp_path) / "map-phone.png"))
        watched.clean()
    finally:
        context.close()


def test_london_wards_from_tiles(watched: Watched, server: str, tmp_path: Path) -> None:
    page = watched.open(f"{server}/map?collection={LONDON}&classes=quantiles")
    legend = page.locator("#ps-legend").inner_text()
    counts = [int(n) for n in re.findall(r"(\d+) wards?\b", legend)]
    assert sum(counts) == 630 and max(counts) < 200  # equal counts, not one crowded class
    assert page.locator("select#ps-classes").input_value() == "quantiles"
    page.wait_for_function("document.querySelectorAll('.ps-label').length >= 3")
    _picture(page, tmp_path, "map-london.png")
    watched.clean()
