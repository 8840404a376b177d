"""The web map's time to first render in headless Chromium, against inline-GeoJSON peers.

Run through ``bash bench/run map [--layer london|national|both] [--quick]`` (which builds
``bench/.venv``), or ``bench/.venv/bin/python -m bench.map_render`` from the checkout. Writes
``bench/results/map.json`` (every figure) and ``bench/results/map.md`` (the tables). See
bench/README.md.

Each layer (the real London 630 wards, the synthetic national 7,000 wards) is published into a
database of its own by ``bench.serving``'s ``prepare_london`` / ``prepare_national`` (imported,
on this benchmark's database names), and Placespend is started on it as ``bench.serving``
starts it (uvicorn, one worker, its byte cache on). Pages measured, in the same browser:

* ``placespend``: Placespend's ``/map?collection=ID``;
* ``folium``: a plain folium page, every ward inlined as GeoJSON (geopandas -> folium.GeoJson,
  a ``style_function`` choropleth on ``per_head``), Leaflet served locally, written to a temp
  dir and served by a static server in a thread (gzip-compressed once, as nginx's
  ``gzip_static`` would);
* ``folium_5m``: the same page with the wards simplified to 5 m first (what Placespend's own
  inline page did above 100 features).

Time to first render is ``window.placespendRenderMs`` (``performance.now()``, milliseconds
since navigation start) read once ``document.documentElement.dataset.psRendered == "1"``; the
peers set both two animation frames after their GeoJSON layer is added (the frame holding the
paths has been painted). A page that never sets the flag (the inline map before the
vector-tile page) is timed by an init script instead: the first animation frame in which
``.leaflet-interactive`` paths exist, plus one frame. Which of the two timed each page is
recorded (``wait_mode``): the flag wins whenever the page's HTML or its own scripts mention
``psRendered``.

Each round (``--repeats``, 7; ``--quick`` 3) takes every page in turn (the order rotates):
a new browser context (empty cache) navigates once (*cold*) and then reloads (*warm*, the same
context). Before the rounds, each page is opened once in a context that routes every request
(``context.route``): anything not on localhost is aborted and recorded, and that navigation
also warms the servers. The timed contexts do not route (routing turns Chromium's HTTP cache
off, and a warm reload would then fetch everything again); Chromium runs with every host but
localhost unresolvable (``--host-resolver-rules``) and every request is still watched, so an
attempt to leave the machine is recorded there too. Console errors, page errors, failed
requests and HTTP errors are recorded per page.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import hashlib
import html
import importlib.metadata
import json
import mimetypes
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench.bench as london  # noqa: E402
from bench import serving  # noqa: E402
from bench.bench import (  # noqa: E402
    db_versions,
    free_port,
    library_versions,
    save_results,
    say,
    start_server,
    stop_server,
)

#: Databases of this benchmark's own, so that it can run beside the other benchmarks.
DB_NAMES = {"london": "placespend_bench_map_london", "national": "placespend_bench_map_national"}
LABELS = serving.LABELS
DEFAULT_CHROMIUM = "/usr/bin/chromium"
#: The browser as the brief fixes it, plus the resolver rule that cuts off every other host.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
BLOCK_ARG = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
VIEWPORT = {"width": 1280, "height": 800}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
#: The issue's target: the national layer's first render (cold) under 2 s.
TARGET_MS = 2000.0
#: How long one page may take to render before the repeat is recorded as failed.
RENDER_TIMEOUT_MS = 180_000
#: The properties the peers inline with each ward (a plain choropleth needs only per_head;
#: the name, code, population and total are what a tooltip would show).
PEER_PROPERTIES = ["code", "name", "population", "total", "per_head"]
PAGES = {
    "placespend": "Placespend `/map` (as served now)",
    "folium": "folium, every ward inlined as GeoJSON",
    "folium_5m": "folium, inlined, simplified to 5 m",
}

# ---------------------------------------------------------------------------------- in page

#: Runs in every document before its own scripts: room for every resource timing entry, and
#: the fallback clock for a page that sets no flag (the first frame with Leaflet paths in the
#: DOM, plus one frame, so that frame has been painted).
INIT_JS = """
(() => {
  try { performance.setResourceTimingBufferSize(100000); } catch (e) {}
  const drawn = ".leaflet-interactive, .leaflet-overlay-pane canvas";
  function poll() {
    if (document.querySelector(drawn)) {
      requestAnimationFrame(() => { window.__psFallbackMs = performance.now(); });
    } else {
      requestAnimationFrame(poll);
    }
  }
  requestAnimationFrame(poll);
})();
"""
WAIT_JS = {
    "flag": "() => document.documentElement.dataset.psRendered === '1'",
    "fallback": "() => window.__psFallbackMs !== undefined"
                " || document.documentElement.dataset.psRendered === '1'",
}
#: What a navigation cost, read in the page once it has rendered, loaded and gone idle.
COLLECT_JS = """
(mode) => {
  const flag = document.documentElement.dataset.psRendered === "1";
  const flagMs = flag && typeof window.placespendRenderMs === "number"
    ? window.placespendRenderMs : null;
  const fallbackMs = window.__psFallbackMs === undefined ? null : window.__psFallbackMs;
  const renderMs = mode === "flag" ? flagMs : (flagMs !== null ? flagMs : fallbackMs);
  const nav = performance.getEntriesByType("navigation")[0];
  const res = performance.getEntriesByType("resource");
  const upTo = (ms) => res.filter((e) => ms === null || e.responseEnd <= ms);
  const sum = (list, k) => list.reduce((a, e) => a + (e[k] || 0), 0);
  const types = {};
  const statuses = {};
  for (const e of res) {
    types[e.initiatorType] = (types[e.initiatorType] || 0) + 1;
    statuses[e.responseStatus] = (statuses[e.responseStatus] || 0) + 1;
  }
  const tiles = res.filter((e) => e.name.includes("/tiles/"));
  const before = upTo(renderMs);
  return {
    render_ms: renderMs, flag: flag, flag_ms: flagMs, fallback_ms: fallbackMs,
    load_ms: nav.loadEventEnd, dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    response_end_ms: nav.responseEnd,
    document: {transfer: nav.transferSize, encoded: nav.encodedBodySize,
               decoded: nav.decodedBodySize},
    requests: 1 + res.length,
    requests_to_render: 1 + before.length,
    transfer_bytes: nav.transferSize + sum(res, "transferSize"),
    transfer_bytes_to_render: nav.transferSize + sum(before, "transferSize"),
    decoded_bytes: nav.decodedBodySize + sum(res, "decodedBodySize"),
    // Same-origin entries (every one here): nothing over the wire means the HTTP cache.
    from_cache: res.filter((e) => e.transferSize === 0).length,
    // 304: headers only over the wire, the body from the cache (a 204 has no body either).
    revalidated: [nav].concat(res).filter((e) => e.transferSize > 0 && e.encodedBodySize === 0
      && e.responseStatus !== 204).length,
    statuses: statuses,
    by_initiator: types,
    tiles: {requests: tiles.length, transfer_bytes: sum(tiles, "transferSize"),
            decoded_bytes: sum(tiles, "decodedBodySize")},
    // Where the time to first render went: the document, the tiles, the page's other reads.
    timeline: {
      document_response_end_ms: nav.responseEnd,
      first_tile_start_ms: tiles.length ? Math.min(...tiles.map((e) => e.startTime)) : null,
      last_tile_end_ms: tiles.length ? Math.max(...tiles.filter(
        (e) => renderMs === null || e.responseEnd <= renderMs).map((e) => e.responseEnd))
        : null,
      other_fetches: res.filter((e) => e.initiatorType === "fetch"
                                && !e.name.includes("/tiles/")).map((e) => ({
        path: new URL(e.name).pathname, start_ms: e.startTime, end_ms: e.responseEnd,
        transfer_bytes: e.transferSize})),
    },
    paths: document.querySelectorAll(".leaflet-interactive").length,
    canvases: document.querySelectorAll("canvas").length,
    legend_rows: document.querySelectorAll(".ps-legend li, .ps-classes li").length,
  };
}
"""
WEBGL_JS = """
() => {
  const c = document.createElement("canvas");
  const gl = c.getContext("webgl2") || c.getContext("webgl");
  if (!gl) { return {webgl: false}; }
  const ext = gl.getExtension("WEBGL_debug_renderer_info");
  return {webgl: true, version: gl.getParameter(gl.VERSION),
          renderer: ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)
                        : gl.getParameter(gl.RENDERER)};
}
"""

# ---------------------------------------------------------------------------------- peers


def peer_frame(pub: serving.Published) -> Any:
    """The published wards as a GeoDataFrame (``bench.bench.geopandas_frame``: flat properties,
    EPSG:4326 at 6 decimals) and the same wards in EPSG:27700 for simplifying."""
    with serving.bench_constants(COLLECTION=pub.collection):
        return london.geopandas_frame(pub.url)


def folium_page(frame: Any, title: str, leaflet: str, simplify_m: float = 0.0
                ) -> tuple[str, dict[str, Any]]:
    """A plain folium choropleth of ``per_head``: every ward inlined, Leaflet from ``leaflet``.

    Seven equal-width classes over per_head, ColorBrewer YlOrRd (branca), no tile layer, no
    legend (branca's needs d3 from a CDN), no tooltip: the leanest inline page, so the peer
    is as fast as an inline page gets. A script after the layer sets the render flag two
    animation frames later.
    """
    import folium
    import numpy as np
    import shapely
    from branca.colormap import linear
    from branca.element import Element, MacroElement
    from folium.template import Template

    t = time.perf_counter()
    gdf = frame[[c for c in PEER_PROPERTIES if c in frame.columns] + ["geometry"]].copy()
    if simplify_m:
        geoms = gdf.geometry.to_crs(27700).simplify(simplify_m, preserve_topology=True)
        gdf = gdf.set_geometry(geoms.to_crs(4326))
        gdf.geometry = shapely.transform(gdf.geometry.to_numpy(), lambda xy: np.round(xy, 6))
    gdf = gdf.reset_index(drop=True)
    values = gdf["per_head"].dropna()
    cmap = linear.YlOrRd_07.scale(float(values.min()), float(values.max())).to_step(7)

    def style(feature: dict) -> dict:
        v = feature["properties"].get("per_head")
        return {"fillColor": "#bdbdbd" if v is None else cmap(v), "fillOpacity": 0.85,
                "color": "#555555", "weight": 0.5}

    fmap = folium.Map(location=None, tiles=None, control_scale=True, zoom_snap=0.25)
    fmap.default_js = [("leaflet", f"{leaflet}/leaflet.js")]
    fmap.default_css = [("leaflet_css", f"{leaflet}/leaflet.css")]
    root = fmap.get_root()
    root.title = html.escape(title)
    root.header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")
    folium.GeoJson(json.loads(gdf.to_json(drop_id=True)), name=title,
                   style_function=style).add_to(fmap)

    class RenderFlag(MacroElement):
        _template = Template("""
            {% macro script(this, kwargs) %}
            requestAnimationFrame(function () { requestAnimationFrame(function () {
                window.placespendRenderMs = performance.now();
                document.documentElement.dataset.psRendered = "1";
            }); });
            {% endmacro %}
            """)

    RenderFlag().add_to(fmap)
    minx, miny, maxx, maxy = gdf.total_bounds
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    text = root.render()
    vertices = int(shapely.get_num_coordinates(gdf.geometry.to_numpy()).sum())
    flag_at, layer_at = text.find("psRendered"), text.find("L.geoJson(")
    if not 0 <= layer_at < flag_at:
        raise RuntimeError("folium peer: the render flag is not after the GeoJSON layer")
    external = sorted(set(re.findall(r'(?:src|href)="(https?://[^"]+)"', text)))
    return text, {"features": len(gdf), "vertices": vertices, "simplify_m": simplify_m,
                  "html_bytes": len(text.encode()), "external_refs": external,
                  "build_s": time.perf_counter() - t,
                  "classes": [round(float(x), 2) for x in cmap.index]}


@dataclass
class StaticFile:
    raw: bytes
    gz: bytes
    ctype: str
    mtime: float
    etag: str


class StaticServer:
    """A static server in a thread: HTTP/1.1 keep-alive, files gzipped once (nginx's
    ``gzip_static``), ETag and Last-Modified (304 on revalidation), no Cache-Control (as
    Starlette's StaticFiles serves Leaflet for Placespend)."""

    def __init__(self, mounts: dict[str, Path]) -> None:
        self.mounts = mounts
        self.files: dict[str, StaticFile] = {}
        self.lock = threading.Lock()
        handler = functools.partial(_Handler, self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="peer-static",
                                       daemon=True)
        self.thread.start()

    def lookup(self, path: str) -> StaticFile | None:
        path = unquote(urlsplit(path).path)
        with self.lock:
            if path in self.files:
                return self.files[path]
        for prefix, folder in self.mounts.items():
            if path.startswith(prefix + "/"):
                target = (folder / path[len(prefix) + 1:]).resolve()
                if folder.resolve() in target.parents and target.is_file():
                    raw = target.read_bytes()
                    st = target.stat()
                    f = StaticFile(raw, gzip.compress(raw, compresslevel=6, mtime=0),
                                   mimetypes.guess_type(target.name)[0]
                                   or "application/octet-stream", st.st_mtime,
                                   '"' + hashlib.sha1(raw).hexdigest()[:20] + '"')
                    with self.lock:
                        self.files[path] = f
                    return f
        return None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, server_: StaticServer, *args: Any) -> None:
        self.static = server_
        super().__init__(*args)

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        f = self.static.lookup(self.path)
        if f is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        lm = formatdate(f.mtime, usegmt=True)
        inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        fresh = (inm is not None and f.etag in inm) or (
            inm is None and ims is not None and _not_modified_since(ims, f.mtime))
        if fresh:
            self.send_response(304)
            self.send_header("ETag", f.etag)
            self.send_header("Last-Modified", lm)
            self.end_headers()
            return
        zipped = "gzip" in (self.headers.get("Accept-Encoding") or "")
        body = f.gz if zipped else f.raw
        self.send_response(200)
        self.send_header("Content-Type", f.ctype + ("; charset=utf-8"
                                                    if f.ctype.startswith("text/")
                                                    or f.ctype.endswith("javascript") else ""))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f.etag)
        self.send_header("Last-Modified", lm)
        self.send_header("Vary", "Accept-Encoding")
        if zipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(body)


def _not_modified_since(value: str, mtime: float) -> bool:
    try:
        return parsedate_to_datetime(value).timestamp() >= int(mtime)
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------- browser


def chromium_path(given: str | None) -> str:
    """The Chromium to drive, or a clear error naming the fix."""
    path = given or os.environ.get("PLACESPEND_CHROMIUM") or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SystemExit(
            f"bench.map_render: no Chromium at {path}. Install Debian's (apt-get install "
            "chromium; `bash bench/run map` does it when missing), or pass --chromium PATH "
            "(or set PLACESPEND_CHROMIUM). Playwright's own browser download is not used.")
    return path


def is_local(url: str) -> bool:
    u = urlsplit(url)
    if u.scheme not in ("http", "https", "ws", "wss"):
        return True  # data:, blob:, about: never leave the machine
    return (u.hostname or "") in LOCAL_HOSTS


@dataclass
class Watch:
    """What one page's navigations asked for and said: kept over every context of the page."""

    external: list[str] = field(default_factory=list)  # non-localhost requests attempted
    blocked_by_route: list[str] = field(default_factory=list)
    console_errors: Counter = field(default_factory=Counter)
    page_errors: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    http_errors: Counter = field(default_factory=Counter)
    nav_requests: int = 0  # requests Playwright saw during the current navigation

    def attach(self, page: Any) -> None:
        def on_request(req: Any) -> None:
            self.nav_requests += 1
            if not is_local(req.url):
                self.external.append(req.url)

        def on_console(msg: Any) -> None:
            if msg.type == "error":
                self.console_errors[msg.text[:300]] += 1

        page.on("request", on_request)
        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.page_errors.update([str(exc)[:300]]))
        page.on("requestfailed", lambda req: self.failed.update(
            [f"{req.url[:200]} ({req.failure})"]))
        page.on("response", lambda r: r.status >= 400 and self.http_errors.update(
            [f"{r.status} {r.url[:200]}"]))

    def summary(self) -> dict[str, Any]:
        return {"external_requests_attempted": sorted(set(self.external)),
                "blocked_by_route": sorted(set(self.blocked_by_route)),
                "console_errors": dict(self.console_errors),
                "page_errors": dict(self.page_errors),
                "failed_requests": dict(self.failed), "http_errors": dict(self.http_errors)}


def wait_mode(url: str) -> tuple[str, list[str]]:
    """``flag`` when the page's HTML or its own scripts set ``psRendered``, else ``fallback``;
    and the same-origin scripts looked at."""
    import httpx

    page = httpx.get(url, timeout=300)
    page.raise_for_status()
    seen = [url]
    texts = [page.text]
    u = urlsplit(url)
    for src in re.findall(r'<script[^>]+src="([^"]+)"', page.text):
        full = httpx.URL(url).join(src)
        if full.host == u.hostname and full.port == u.port:
            r = httpx.get(str(full), timeout=60)
            if r.status_code == 200:
                texts.append(r.text)
                seen.append(str(full))
    return ("flag" if any("psRendered" in t for t in texts) else "fallback"), seen


def navigate(page: Any, url: str, mode: str, watch: Watch, *, reload: bool) -> dict[str, Any]:
    """One timed navigation (or reload): wait for the render, ``load`` and network idle, then
    read what it cost in the page."""
    watch.nav_requests = 0
    t0 = time.perf_counter()
    if reload:
        page.reload(wait_until="commit", timeout=RENDER_TIMEOUT_MS)
    else:
        page.goto(url, wait_until="commit", timeout=RENDER_TIMEOUT_MS)
    page.wait_for_function(WAIT_JS[mode], timeout=RENDER_TIMEOUT_MS, polling="raf")
    client_ms = 1e3 * (time.perf_counter() - t0)
    page.wait_for_function("() => performance.getEntriesByType('navigation')[0]"
                           "?.loadEventEnd > 0", timeout=RENDER_TIMEOUT_MS)
    idle = True
    try:
        page.wait_for_load_state("networkidle", timeout=15_000)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError; recorded
        idle = False
    m = page.evaluate(COLLECT_JS, mode)
    m["client_render_ms"] = client_ms
    m["network_idle"] = idle
    m["playwright_requests"] = watch.nav_requests
    if m["render_ms"] is None:
        raise RuntimeError(f"no render time ({mode}): {m}")
    return m


def new_context(browser: Any) -> Any:
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.add_init_script(INIT_JS)
    return ctx


def audit(browser: Any, url: str, mode: str, watch: Watch, shot: Path) -> dict[str, Any]:
    """One untimed navigation in a context routing every request: non-localhost aborted and
    recorded. It also warms the server (tiles and pages kept, plans made) before the rounds."""
    ctx = new_context(browser)

    def route(r: Any) -> None:
        if is_local(r.request.url):
            r.continue_()
        else:
            watch.blocked_by_route.append(r.request.url)
            r.abort("blockedbyclient")

    ctx.route("**/*", route)
    try:
        page = ctx.new_page()
        watch.attach(page)
        got = navigate(page, url, mode, watch, reload=False)
        page.screenshot(path=str(shot))
        return got
    finally:
        ctx.close()


def stats(rows: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("render_ms", "client_render_ms", "load_ms", "dom_content_loaded_ms",
            "transfer_bytes", "transfer_bytes_to_render", "decoded_bytes", "requests",
            "requests_to_render", "from_cache", "revalidated")
    return {k: stats(rows, k) for k in keys}


# ---------------------------------------------------------------------------------- layers


@contextlib.contextmanager
def map_databases() -> Iterator[None]:
    """``bench.serving``'s preparation functions on this benchmark's own database names."""
    old = dict(serving.DB_NAMES)
    serving.DB_NAMES.update(DB_NAMES)
    try:
        yield
    finally:
        serving.DB_NAMES.clear()
        serving.DB_NAMES.update(old)


def bench_layer(name: str, browser: Any, args: argparse.Namespace, versions: dict[str, str]
                ) -> dict[str, Any]:
    import xstatic.pkg.leaflet as xleaflet

    say(f"{name}: publishing the layer into {DB_NAMES[name]}")
    with map_databases():
        pub = serving.prepare_london() if name == "london" else serving.prepare_national(args.seed)
    versions |= db_versions(pub.url)
    out: dict[str, Any] = {"collection": pub.collection, "run_id": pub.run_id,
                           "features": pub.features, "database": DB_NAMES[name],
                           "prepare_s": pub.prepare_s, **pub.facts, "pages": {}}
    say(f"{name}: {pub.collection} (run {pub.run_id}, {pub.features:,} features) ready in "
        f"{pub.prepare_s:.1f} s")
    with contextlib.ExitStack() as stack:
        # Placespend, as bench.serving starts it (cache on: the default PLACESPEND_CACHE_MB).
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        say(f"{name}: starting Placespend on 127.0.0.1:{port}")
        proc = start_server(serving.placespend_argv(port), serving.base_env(pub.url),
                            f"{base}/collections", OUT / f"map-{name}-placespend.log")
        stack.callback(stop_server, proc)
        urls = {"placespend": f"{base}/map?collection={pub.collection}"}
        # The peers: written to a temp dir, served with Leaflet from xstatic-leaflet.
        if not args.no_peers:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="map-peers-")))
            static = StaticServer({"/leaflet": Path(xleaflet.BASE_DIR), "/pages": tmp})
            stack.callback(static.close)
            frame = peer_frame(pub)
            peers = [("folium", 0.0)] + ([] if args.no_simplified else [("folium_5m", 5.0)])
            for key, tol in peers:
                say(f"{name}: building the {key} peer page")
                text, facts = folium_page(frame, f"{LABELS[name]}: spend per head",
                                          "/leaflet", tol)
                (tmp / f"{key}.html").write_text(text)
                facts["gzip_bytes"] = len(gzip.compress(text.encode(), 6, mtime=0))
                out["pages"][key] = {"built": facts}
                urls[key] = f"{static.base}/pages/{key}.html"
                say(f"  {key}: {facts['features']:,} features, {facts['vertices']:,} vertices, "
                    f"{facts['html_bytes'] / 1e6:.1f} MB HTML ({facts['gzip_bytes'] / 1e6:.1f} MB "
                    "gzipped)")
            del frame
        watches = {k: Watch() for k in urls}
        for key, url in urls.items():
            page = out["pages"].setdefault(key, {})
            page["url"] = url
            try:
                mode, looked = wait_mode(url)
                if args.wait != "auto":
                    mode = args.wait
                page["wait_mode"] = mode
                page["scripts_looked_at_for_flag"] = looked
                say(f"{name}: {key}: audit navigation (routed, non-localhost aborted); "
                    f"timed by {'the psRendered flag' if mode == 'flag' else 'the fallback'}")
                page["audit"] = audit(browser, url, mode, watches[key],
                                      OUT / f"map-{name}-{key}.png")
                say(f"  {key}: first render {page['audit']['render_ms']:,.0f} ms, "
                    f"{page['audit']['transfer_bytes'] / 1e6:.2f} MB, "
                    f"{page['audit']['requests']} requests")
            except Exception as exc:  # noqa: BLE001 - recorded instead
                page["error"] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
        live = [k for k in urls if "error" not in out["pages"][k]]
        for key in live:
            out["pages"][key].update(cold=[], warm=[], errors=[])
        for r in range(args.repeats):
            order = live[r % len(live):] + live[:r % len(live)] if live else []
            for key in order:
                page = out["pages"][key]
                ctx = new_context(browser)
                try:
                    tab = ctx.new_page()
                    watches[key].attach(tab)
                    cold = navigate(tab, urls[key], page["wait_mode"], watches[key], reload=False)
                    warm = navigate(tab, urls[key], page["wait_mode"], watches[key], reload=True)
                    page["cold"].append(cold | {"round": r + 1})
                    page["warm"].append(warm | {"round": r + 1})
                    say(f"  round {r + 1}/{args.repeats} {key}: cold {cold['render_ms']:,.0f} ms "
                        f"({cold['transfer_bytes'] / 1e6:.2f} MB, {cold['requests']} requests), "
                        f"warm {warm['render_ms']:,.0f} ms "
                        f"({warm['transfer_bytes'] / 1e6:.2f} MB)")
                except Exception as exc:  # noqa: BLE001 - recorded instead
                    page["errors"].append({"round": r + 1, "error": f"{type(exc).__name__}: "
                                                                    f"{exc}"[:2000]})
                    traceback.print_exc()
                finally:
                    ctx.close()
        for key in urls:
            page = out["pages"][key]
            page["watch"] = watches[key].summary()
            for kind in ("cold", "warm"):
                if page.get(kind):
                    page[f"{kind}_summary"] = summarise(page[kind])
        out["placespend_server_rss_bytes"] = serving.rss_bytes(proc.pid)
        out["ratios"] = ratios(out["pages"])
    return out


def ratios(pages: dict[str, Any]) -> dict[str, Any]:
    """Placespend against each peer, per kind (cold, warm) and figure: the median of the
    per-round ratios (the two measured in the same round) and the ratio of the medians."""
    out: dict[str, Any] = {}
    ps = pages.get("placespend", {})
    for peer in ("folium", "folium_5m"):
        pr = pages.get(peer, {})
        if not ps.get("cold") or not pr.get("cold"):
            continue
        for kind in ("cold", "warm"):
            a = {r["round"]: r for r in ps[kind]}
            b = {r["round"]: r for r in pr[kind]}
            both = sorted(set(a) & set(b))
            for fig in ("render_ms", "load_ms", "transfer_bytes"):
                pairs = [(a[n][fig], b[n][fig]) for n in both
                         if a[n].get(fig) is not None and b[n].get(fig)]
                if not pairs:
                    continue
                out[f"{kind}_{fig}_vs_{peer}"] = {
                    "median_of_round_ratios": statistics.median(x / y for x, y in pairs),
                    "ratio_of_medians": (statistics.median(x for x, _ in pairs)
                                         / statistics.median(y for _, y in pairs)),
                    "rounds": len(pairs)}
    return out


# ---------------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    """The machine, as ``bench.bench.machine_facts`` says it, less what needs git to run:
    the commit is read from .git's files."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "nproc": os.cpu_count(), "cpu_model": cpu,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                / 2**30, 1),
            "os": platform.platform(), "python": platform.python_version(),
            "git_commit": git_head(), "load_average_at_start": [round(x, 2)
                                                                for x in os.getloadavg()]}


def git_head() -> str:
    try:
        head = (ROOT / ".git" / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:7]
        ref = head[5:]
        loose = ROOT / ".git" / ref
        if loose.is_file():
            return loose.read_text().strip()[:7]
        for line in (ROOT / ".git" / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:7]
    except OSError:
        pass
    return "unknown"


def versions_of(browser_version: str) -> dict[str, str]:
    import xstatic.pkg.leaflet as xleaflet

    v = library_versions()
    for name in ("playwright", "folium", "branca", "XStatic-Leaflet"):
        try:
            v[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            v[name] = "not installed"
    v["Leaflet (xstatic)"] = xleaflet.VERSION
    v["chromium"] = browser_version
    return v


def fmt_ms(s: dict[str, float] | None) -> str:
    return "–" if not s else f"{s['median']:,.0f} ({s['min']:,.0f})"


def fmt_mb(s: dict[str, float] | None) -> str:
    return "–" if not s else f"{s['median'] / 1e6:,.2f}"


def fmt_n(s: dict[str, float] | None) -> str:
    return "–" if not s else f"{s['median']:,.0f}"


def timeline(page: dict[str, Any]) -> str:
    """Placespend's cold navigations, medians: document, load, tiles, other reads, render."""
    rows = [r for r in page.get("cold", []) if "timeline" in r]
    if not rows:
        return ""

    def med(f: Any) -> float | None:
        vals = [v for v in (f(r) for r in rows) if v is not None]
        return statistics.median(vals) if vals else None

    parts = [("document received", med(lambda r: r["timeline"]["document_response_end_ms"])),
             ("DOMContentLoaded", med(lambda r: r["dom_content_loaded_ms"])),
             ("load", med(lambda r: r["load_ms"])),
             ("first tile asked", med(lambda r: r["timeline"]["first_tile_start_ms"])),
             ("last tile in", med(lambda r: r["timeline"]["last_tile_end_ms"]))]
    paths = sorted({f["path"] for r in rows for f in r["timeline"]["other_fetches"]})
    for path in paths:
        def of(r: dict[str, Any], path: str = path) -> list[dict[str, Any]]:
            return [f for f in r["timeline"]["other_fetches"] if f["path"] == path]
        start = med(lambda r, of=of: min((f["start_ms"] for f in of(r)), default=None))
        end = med(lambda r, of=of: max((f["end_ms"] for f in of(r)), default=None))
        if start is not None and end is not None:
            parts.append((f"`{path}` {start:,.0f} to", end))
    parts.append(("first render", med(lambda r: r["render_ms"])))
    return ", ".join(f"{k} {v:,.0f}" for k, v in parts if v is not None)


def write_markdown(res: dict[str, Any], path: Path) -> None:
    m, v, b = res["machine"], res["versions"], res["browser"]
    L = ["# The web map's time to first render (headless Chromium)\n",
         f"Measured {m['date_utc']} on {m['nproc']} cores ({m['cpu_model']}, "
         f"{m['memory_gib']} GiB), commit {m['git_commit']}; Chromium {v['chromium']} "
         f"(headless, `{' '.join(b['args'])}`, viewport {VIEWPORT['width']}x"
         f"{VIEWPORT['height']}; WebGL: {webgl_text(b['webgl'])}), Playwright "
         f"{v['playwright']}, folium {v['folium']}, Leaflet {v['Leaflet (xstatic)']}, "
         f"PostgreSQL {v.get('PostgreSQL', '?')}"
         f" / PostGIS {v.get('PostGIS', '?')}. {res['args']['repeats']} rounds"
         f"{' (--quick)' if res['args']['quick'] else ''}; the wall time "
         f"{res['wall_s'] / 60:.1f} min; load average {m['load_average_at_start'][0]:.1f} at "
         f"the start, {m['load_average_at_end'][0]:.1f} at the end. Rerun: `bash bench/run map` "
         "(bench/map_render.py).\n",
         "**First render** is the page's own `performance.now()` when the choropleth is drawn "
         "(ms from navigation start): `window.placespendRenderMs` once `psRendered` is set "
         "(the peers set it two animation frames after their GeoJSON layer is added), or, for "
         "a page without that flag, the first frame with Leaflet paths in the DOM plus one "
         "frame (*fallback*). **Load**: `loadEventEnd`. **MB**: bytes over the wire "
         "(`transferSize` of the document and every resource, gzip where served so, after "
         "the network went idle). Each round opens every page in a new browser context "
         "(*cold*: empty cache; the servers warmed by one navigation before the rounds) and "
         "reloads it in that context (*warm*). Figures are median (min) of the rounds; a "
         "ratio is the median of the per-round ratios, Placespend over the peer (under 1: "
         "Placespend faster). Read ratios, not milliseconds: 2 noisy cores shared by the "
         "browser, the servers and the database.\n"]
    tgt = res.get("target")
    if tgt:
        L.append(f"**Target** (the issue): national first render, cold, under "
                 f"{TARGET_MS / 1e3:.0f} s: "
                 + ("not measured" if tgt["cold_render_median_ms"] is None else
                    f"{tgt['cold_render_median_ms']:,.0f} ms median, "
                    f"**{'met' if tgt['met'] else 'not met'}**")
                 + f" (Placespend's page timed by the {tgt['wait_mode']}"
                 + ("; the page does not yet set `psRendered`: this is the inline page "
                    "before the vector-tile map" if tgt["wait_mode"] == "fallback" else "")
                 + ").\n")
    for layer, lay in res["layers"].items():
        L.append(f"## {LABELS[layer]}\n")
        if "error" in lay:
            L.append(f"Failed: {lay['error']}\n")
            continue
        L.append(f"`{lay['collection']}`, run {lay['run_id']}, {lay['features']:,} features.\n")
        L.append("| page | timed by | cold first render ms | cold load ms | cold MB | cold "
                 "requests | warm first render ms | warm load ms | warm MB | warm requests "
                 "(from cache) |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for key, label in PAGES.items():
            p = lay["pages"].get(key)
            if not p:
                continue
            if "cold_summary" not in p:
                err = p.get("error") or "; ".join(e["error"] for e in p.get("errors", []))
                L.append(f"| {label} | – | failed: {err[:300]} | | | | | | | |")
                continue
            c, w = p["cold_summary"], p["warm_summary"]
            L.append(f"| {label} | {p['wait_mode']} | {fmt_ms(c['render_ms'])} | "
                     f"{fmt_ms(c['load_ms'])} | {fmt_mb(c['transfer_bytes'])} | "
                     f"{fmt_n(c['requests'])} | {fmt_ms(w['render_ms'])} | "
                     f"{fmt_ms(w['load_ms'])} | {fmt_mb(w['transfer_bytes'])} | "
                     f"{fmt_n(w['requests'])} ({fmt_n(w['from_cache'])}) |")
        rat = lay.get("ratios", {})
        if rat:
            L.append("\n| Placespend / peer | cold first render | cold load | cold bytes | "
                     "warm first render | warm load |")
            L.append("|---|---|---|---|---|---|")
            for peer in ("folium", "folium_5m"):
                def r(k: str, peer: str = peer, rat: dict = rat) -> str:
                    x = rat.get(f"{k}_vs_{peer}")
                    return "–" if not x else f"{x['median_of_round_ratios']:.2f}x"
                if f"cold_render_ms_vs_{peer}" in rat:
                    L.append(f"| vs {PAGES[peer]} | {r('cold_render_ms')} | {r('cold_load_ms')} "
                             f"| {r('cold_transfer_bytes')} | {r('warm_render_ms')} | "
                             f"{r('warm_load_ms')} |")
        tl = timeline(lay["pages"].get("placespend", {}))
        if tl:
            L.append(f"\nWhere Placespend's cold first render goes (medians, ms from navigation "
                     f"start): {tl}.")
        built = [(k, lay["pages"][k]["built"]) for k in ("folium", "folium_5m")
                 if "built" in lay["pages"].get(k, {})]
        if built:
            L.append("\nPeer pages: " + "; ".join(
                f"{k} {f['html_bytes'] / 1e6:.1f} MB of HTML ({f['gzip_bytes'] / 1e6:.1f} MB "
                f"gzipped, as served), {f['vertices']:,} vertices" for k, f in built) + ".")
        clean = []
        for key, p in lay["pages"].items():
            w = p.get("watch", {})
            bad = {k: v for k, v in w.items() if v}
            clean.append(f"{key}: " + ("no request left localhost, no console or page error, "
                                       "no failed request" if not bad else
                                       json.dumps(bad)[:600]))
        L.append("\nChecks: " + "; ".join(clean) + ".\n")
    L.append("## Notes\n")
    L += [f"- {n}" for n in res["notes"]]
    path.write_text("\n".join(L) + "\n")


def notes(res: dict[str, Any]) -> list[str]:
    out = [
        "Peers: folium "
        f"{res['versions']['folium']} pages, every ward inlined as GeoJSON with only "
        f"{', '.join(PEER_PROPERTIES)} (coordinates at 6 decimals), a `style_function` "
        "choropleth of per_head in 7 equal classes, no legend, tooltip or popup: the leanest "
        "inline page, so as fast as that design gets. Served by a static server in the bench "
        "process (a thread; HTTP/1.1 keep-alive; files gzipped once beforehand, ETag and "
        "Last-Modified, no Cache-Control, as Starlette serves Leaflet to Placespend's page).",
        "Cold: a new browser context each round (its own empty HTTP cache); the servers were "
        "warmed by one navigation of each page before the rounds (Placespend's byte cache "
        "then holds the tiles and pages). Warm: the same context reloaded (Chromium "
        "revalidates the document; subresources come from its cache where their headers "
        "allow).",
        "Non-localhost requests: the untimed first navigation of each page routes every "
        "request through `context.route` and aborts any that leaves localhost; the timed "
        "contexts do not route, because routing turns Chromium's HTTP cache off (a warm "
        "reload would fetch everything again), but every other host is unresolvable "
        "(`--host-resolver-rules`) and every request is watched.",
    ]
    for layer, lay in res["layers"].items():
        p = lay.get("pages", {}).get("placespend", {})
        if p.get("wait_mode") == "fallback" and "cold_summary" in p:
            out.append(f"{layer}: Placespend's `/map` does not set `psRendered` yet (the inline "
                       "folium page, every ward in the HTML): timed by the fallback, the first "
                       "frame with its Leaflet paths drawn.")
        if p.get("cold") and p.get("warm"):
            med = lambda rows, f: statistics.median(f(r) for r in rows)  # noqa: E731
            tiles = med(p["cold"], lambda r: r["tiles"]["requests"])
            if tiles:
                out.append(
                    f"{layer}: Placespend's page made {med(p['cold'], lambda r: r['requests']):.0f}"
                    f" requests cold (median), {tiles:.0f} of them tiles "
                    f"({med(p['cold'], lambda r: r['tiles']['transfer_bytes']) / 1e3:,.0f} kB "
                    "over the wire); on reload "
                    f"{med(p['warm'], lambda r: r['from_cache']):.0f} came from the browser's "
                    f"cache, {med(p['warm'], lambda r: r['revalidated']):.0f} were revalidated "
                    f"(304), and the tiles took "
                    f"{med(p['warm'], lambda r: r['tiles']['transfer_bytes']) / 1e3:,.1f} kB over "
                    "the wire.")
        for key in ("folium", "folium_5m"):
            q = lay.get("pages", {}).get(key, {})
            c, w = q.get("cold_summary"), q.get("warm_summary")
            if c and w and w["transfer_bytes"]["median"] > 0.5 * c["transfer_bytes"]["median"]:
                out.append(
                    f"{layer}, {key}: the reload fetched the page again "
                    f"({w['transfer_bytes']['median'] / 1e6:.1f} MB): its "
                    f"{q['built']['html_bytes'] / 1e6:.0f} MB document is more than the "
                    "browser context's in-memory HTTP cache keeps, so *warm* is close to cold "
                    "for this peer.")
    return out


def webgl_text(w: dict[str, Any]) -> str:
    if not w.get("webgl"):
        return "none"
    r = w.get("renderer", "")
    return f"{w.get('version', 'WebGL')}, " + ("SwiftShader (software)" if "SwiftShader" in r
                                                else r)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", choices=("london", "national", "both"), default="both")
    ap.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    ap.add_argument("--repeats", type=int, default=None, help="rounds (default 7, --quick 3)")
    ap.add_argument("--chromium", default=None,
                    help="Chromium executable (default $PLACESPEND_CHROMIUM or "
                    f"{DEFAULT_CHROMIUM})")
    ap.add_argument("--wait", choices=("auto", "flag", "fallback"), default="auto",
                    help="how Placespend's page is timed (auto: the flag when the page sets it)")
    ap.add_argument("--no-peers", action="store_true", help="Placespend's page alone")
    ap.add_argument("--no-simplified", action="store_true", help="no 5 m folium peer")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    exe = chromium_path(args.chromium)
    # SIGTERM unwinds like Ctrl-C: the servers, the static server and the browser are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    OUT.mkdir(exist_ok=True)
    res: dict[str, Any] = {"args": vars(args), "machine": machine(), "layers": {}}
    launch_args = CHROMIUM_ARGS + [BLOCK_ARG]
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=launch_args)
        except Exception as exc:
            raise SystemExit(f"bench.map_render: Chromium at {exe} did not start: {exc}") from exc
        try:
            res["versions"] = versions_of(browser.version)
            probe = browser.new_page()
            res["browser"] = {"executable": exe, "args": launch_args, "viewport": VIEWPORT,
                              "webgl": probe.evaluate(WEBGL_JS)}
            probe.close()
            say(f"Chromium {browser.version} ({exe}); WebGL: {res['browser']['webgl']}")
            for name in (("london", "national") if args.layer == "both" else (args.layer,)):
                try:
                    res["layers"][name] = bench_layer(name, browser, args, res["versions"])
                except Exception as exc:  # noqa: BLE001 - recorded in the results instead
                    res["layers"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                    traceback.print_exc()
        finally:
            browser.close()
    res["wall_s"] = time.perf_counter() - started
    res["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    nat = res["layers"].get("national", {}).get("pages", {}).get("placespend", {})
    if "national" in res["layers"]:
        med = (nat.get("cold_summary") or {}).get("render_ms")
        res["target"] = {"what": "national, Placespend /map, cold first render median",
                         "bound_ms": TARGET_MS, "wait_mode": nat.get("wait_mode", "?"),
                         "cold_render_median_ms": med["median"] if med else None,
                         "met": bool(med and med["median"] < TARGET_MS)}
    res["notes"] = notes(res)
    save_results(res, "map", write_markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
