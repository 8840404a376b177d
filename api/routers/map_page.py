"""``GET /map``: a folium choropleth of spend per head that works with no internet.

Everything the page loads is served by this service: Leaflet comes from the installed
``xstatic-leaflet`` package (mounted at ``/static/leaflet/`` by :func:`mount_static`), folium's
CDN defaults (jQuery, Bootstrap, Font Awesome...) are switched off, there is no tile layer, and
the legend is plain HTML + CSS (branca's colour-map legend needs d3 from a CDN). The page's
own CSS and JavaScript are files in ``api/static/`` (served at ``/static/placespend/``), not
strings in Python; the labels the popup needs travel in a JSON script element.

The router holds no domain logic: every figure is a feature property published by the run
(see ``allocation/summary.py``), division and body names come from the store, and the
attribution comes from the collection, the run's proxies and the spend batches the run read.
"""

from __future__ import annotations

import bisect
import html
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import folium
from branca.colormap import linear
from branca.element import Element, MacroElement
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from folium.template import Template
from folium.utilities import JsCode
from xstatic.pkg import leaflet as xstatic_leaflet

from api.deps import ConnDep
from domain.errors import NotFound
from placespend.downloads import attribution_text
from store import features, reference, runs
from store.db import Connection

router = APIRouter()

#: The collection shown when ``?collection=`` is not given.
DEFAULT_COLLECTION = "hackney-wards-2014-spend-2014-15"
#: Where Leaflet's own files (leaflet.js, leaflet.css, images/) are served.
LEAFLET_PREFIX = "/static/leaflet"
#: Where the page's own CSS and JavaScript (api/static/) are served.
STATIC_PREFIX = "/static/placespend"
_STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: Collections with more features than this are simplified (metres) to keep the page light.
SIMPLIFY_ABOVE = 100
SIMPLIFY_M = 5.0
#: Fill for wards without a per-head figure (no residents).
NO_DATA_COLOUR = "#bdbdbd"
#: How the allocation methods read in a popup; unknown methods show their own name.
#: What each confidence grade tells a reader (allocation.summary.confidence makes them).
CONFIDENCE_LABELS = {
    "A": "A: at least three quarters placed by what the bodies said about the place",
    "B": "B: at least half placed by what the bodies said about the place",
    "C": "C: at least a quarter placed by what the bodies said about the place",
    "D": "D: an estimate, mostly spread by a population proxy",
    "E": "E: a rough estimate, mostly spread by land area",
}

METHOD_LABELS = {
    "direct": "Reported for the place (direct)",
    "agency_estimate": "Agency estimate",
    "proxy": "Population proxy",
    "area": "Area share",
    "best_fit": "Best fit",
}


def mount_static(app: FastAPI) -> None:
    """Serve Leaflet (from the installed xstatic-leaflet package) and the page's own files.

    Leaflet's files are not copied into git; the page's CSS and JavaScript are api/static/.
    """
    app.mount(
        LEAFLET_PREFIX,
        StaticFiles(directory=xstatic_leaflet.BASE_DIR),
        name="static-leaflet",
    )
    app.mount(STATIC_PREFIX, StaticFiles(directory=_STATIC_DIR), name="static-placespend")


@dataclass(frozen=True)
class Classes:
    """Equal-width classes with round edges, and their colours."""

    edges: list[float]  # len(colours) + 1 ascending class edges
    colours: list[str]

    def index(self, value: float) -> int:
        """The class ``value`` falls in (edges belong to the class above; the top is closed)."""
        i = bisect.bisect_right(self.edges, value) - 1
        return min(max(i, 0), len(self.colours) - 1)

    def colour(self, value: float | None) -> str:
        """Fill colour for ``value`` (grey when there is none)."""
        return NO_DATA_COLOUR if value is None else self.colours[self.index(value)]


def class_edges(values: Sequence[float], max_classes: int = 7) -> list[float]:
    """Round class edges (steps of 1, 2, 2.5 or 5 x 10^k) giving at most ``max_classes``.

    Equal, round steps read at a glance ("£2,000 to £2,250") and keep a ward's colour
    proportional to its figure, even when the values bunch (the London collection, where
    only Hackney's council spend is loaded, has 600 wards within £3 of each other).
    """
    lo, hi = min(values), max(values)
    if math.isclose(lo, hi):  # one class
        return [lo, max(hi, lo + 1)]
    magnitude = 10 ** math.floor(math.log10((hi - lo) / max_classes))
    for factor in (1, 2, 2.5, 5, 10, 20, 25, 50):
        step = factor * magnitude
        start, end = math.floor(lo / step) * step, math.ceil(hi / step) * step
        if end == hi:  # the maximum would start a class of its own
            end += step
        n = round((end - start) / step)
        if n <= max_classes:
            return [start + i * step for i in range(n + 1)]
    raise AssertionError("unreachable: a step of 50 x magnitude always fits")


def classify(values: Sequence[float], max_classes: int = 7) -> Classes:
    """Classes over ``values`` coloured with ColorBrewer YlOrRd (yellow low, red high)."""
    edges = class_edges(values, max_classes)
    n = len(edges) - 1
    palette = getattr(linear, f"YlOrRd_{max(n, 3):02d}").colors
    hexes = ["#" + "".join(f"{round(c * 255):02x}" for c in rgba[:3]) for rgba in palette]
    if n < 3:
        hexes = [hexes[1]] if n == 1 else [hexes[0], hexes[2]]
    return Classes(edges, hexes)


def _money(value: float) -> str:
    return f"£{value:,.0f}"


def _legend_html(
    meta: dict,
    classes: Classes,
    counts: Counter[int],
    no_data: int,
    run_href: str,
    others: list[tuple[str, str]],
    unit: str,
    bodies: list[str],
) -> str:
    """The legend panel: title, one swatch per class, the method note, other maps."""
    e = html.escape
    rows = []
    for i, colour in enumerate(classes.colours):
        lo, hi = classes.edges[i], classes.edges[i + 1]
        n = counts.get(i, 0)
        rows.append(
            f'<li><i style="background:{colour}"></i>{_money(lo)} to {_money(hi)}'
            f'<span class="ps-n">{n} {unit if n == 1 else unit + "s"}</span></li>'
        )
    rows.reverse()  # highest at the top, like the red end of the palette
    if no_data:
        rows.append(
            f'<li><i style="background:{NO_DATA_COLOUR}"></i>no residents, no figure'
            f'<span class="ps-n">{no_data}</span></li>'
        )
    switch = ""
    if others:
        links = " · ".join(f'<a href="{e(href)}">{e(title)}</a>' for href, title in others)
        switch = f'<p class="ps-switch">Other maps: {links}</p>'
    return (
        f"<h2>Spend per head, £ ({e(meta['financial_year'])})</h2>"
        f'<p class="ps-sub">{e(meta["title"])}</p>'
        f'<ul class="ps-classes">{"".join(rows)}</ul>'
        f'<p class="ps-note">Public spend of {e(_bodies_text(bodies))}.</p>'
        f'<p class="ps-note">Figures apportioned by population proxies and catchments: see '
        f'<a href="{e(run_href)}">{e(run_href)}</a>. Click a {unit} for its breakdown.</p>'
        f"{switch}"
    )


class Panel(MacroElement):
    """A Leaflet control holding ready-made HTML (the legend), with no JS dependency."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var panel = L.control({position: {{ this.position|tojson }}});
            panel.onAdd = function () {
                var div = L.DomUtil.create("div", {{ this.css_class|tojson }});
                div.innerHTML = {{ this.html|tojson }};
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                return div;
            };
            panel.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str, *, css_class: str, position: str = "topright") -> None:
        super().__init__()
        self._name = "Panel"
        self.html = html_text
        self.css_class = css_class
        self.position = position



#: Bodies named in a popup (the largest in the feature); the rest are one "other" row.
MAP_BODIES = 8
OTHER_BODIES = "other_public_bodies"


def _top_bodies(feature: dict) -> dict:
    """The feature with only its :data:`MAP_BODIES` largest ``body_*`` figures.

    The rest are summed as ``body_other_public_bodies``: the page stays small with dozens of
    bodies.
    """
    props = feature["properties"]
    bodies = sorted(((k, v) for k, v in props.items() if k.startswith("body_") and v),
                    key=lambda kv: -abs(kv[1]))
    kept = {k: v for k, v in props.items() if not k.startswith("body_")}
    kept.update(bodies[:MAP_BODIES])
    if len(bodies) > MAP_BODIES:
        kept[f"body_{OTHER_BODIES}"] = round(sum(v for _, v in bodies[MAP_BODIES:]), 2)
    return {**feature, "properties": kept}



#: Each ward's tooltip, popup and hover outline: placespendOnEachFeature in placespend-map.js.
_ON_EACH_FEATURE = JsCode("placespendOnEachFeature")


def _bodies_text(bodies: Sequence[str]) -> str:
    """The bodies a map counts: named when few, counted when many."""
    if len(bodies) <= 3:
        return ", ".join(bodies)
    return f"{len(bodies)} public bodies (click an area for each one's share)"


def _script_json(value: Any) -> str:
    """JSON safe to place inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


def _attribution(conn: Connection, layer: features.Layer) -> str:
    """Boundary, spend and population attribution, as escaped HTML for Leaflet's control."""
    return html.escape(attribution_text(features.sources(conn, layer)))


@router.get("/map", response_class=HTMLResponse, summary="Map of spend per head",
            responses={404: {"description": "No such collection, or a boundary set (no figures)"}})
def map_page(
    request: Request,
    conn: ConnDep,
    collection: str = Query(
        DEFAULT_COLLECTION,
        description="collection id (see /collections), e.g. london-wards-2014-spend-2014-15",
        max_length=200,
    ),
) -> HTMLResponse:
    """A self-contained choropleth of a collection's ``per_head``, with popups per feature."""
    layer = features.get_layer(conn, collection)
    if layer.run_id is None:
        raise NotFound(f"{collection!r} is a boundary set: it has no figures to map",
                       "map a publication of a run instead (see GET /collections)",
                       where="collection")
    extent = features.summary(conn, layer)
    count = extent["features"]
    meta = {"id": layer.id, "title": layer.title, "financial_year": layer.financial_year,
            "run_id": layer.run_id, "target_set": layer.set_slug, "bbox": extent["bbox"]}
    page = features.items(
        conn,
        layer,
        limit=max(count, 1),
        simplify_m=SIMPLIFY_M if count > SIMPLIFY_ABOVE else 0.0,
    )
    feats: list[dict] = [_top_bodies(f) for f in json.loads(page.features_json)]
    run = runs.get_run(conn, meta["run_id"])
    root = request.scope.get("root_path", "")

    values = [f["properties"]["per_head"] for f in feats]
    known = [v for v in values if v is not None]
    classes = classify(known or [0.0])
    counts = Counter(classes.index(v) for v in known)

    unit = "ward" if count and "ward" in meta["target_set"] else "area"
    others = [
        (f"{root}/map?collection={c.id}", c.title)
        for c in features.list_layers(conn)
        if c.id != collection and c.run_id is not None
    ]
    title = f"Spend per head ({meta['financial_year']}): {meta['title']}"

    fmap = folium.Map(location=None, tiles=None, control_scale=True, zoom_snap=0.25)
    # Only Leaflet itself, served by this app: none of folium's CDN defaults.
    fmap.default_js = [("leaflet", f"{root}{LEAFLET_PREFIX}/leaflet.js")]
    fmap.default_css = [("leaflet_css", f"{root}{LEAFLET_PREFIX}/leaflet.css")]
    figure = fmap.get_root()
    figure.title = html.escape(title)
    figure.header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")
    figure.header.add_child(Element(
        f'<link rel="stylesheet" href="{root}{STATIC_PREFIX}/placespend-map.css">'),
        name="placespend_css")
    body_names = {slug: b["name"] for slug, b in reference.bodies(conn).items()}
    body_names[OTHER_BODIES] = "Other public bodies"
    labels = {
        "divisions": reference.cofog_divisions(conn),
        "bodies": body_names,
        "methods": METHOD_LABELS,
        "confidence": CONFIDENCE_LABELS,
        "foot": f"{meta['id']}, run {meta['run_id']}. Public spend in pounds; "
        "per head = total / residents. Divisions with no spend are not listed; the "
        f"{MAP_BODIES} largest bodies are named, the rest summed as other public bodies "
        "(every body is in the API's properties).",
    }
    figure.header.add_child(Element(
        '<script id="placespend-labels" type="application/json">'
        f"{_script_json(labels)}</script>"
        f'<script src="{root}{STATIC_PREFIX}/placespend-map.js"></script>'),
        name="placespend_popup")

    folium.GeoJson(
        {"type": "FeatureCollection", "features": feats},
        name=meta["title"],
        style_function=lambda f: {
            "fillColor": classes.colour(f["properties"]["per_head"]),
            "fillOpacity": 0.85,
            "color": "#555555",
            "weight": 1 if count <= SIMPLIFY_ABOVE else 0.5,
        },
        on_each_feature=_ON_EACH_FEATURE,
        attribution=_attribution(conn, layer),
    ).add_to(fmap)
    run_href = f"{root}/runs/{meta['run_id']}"
    bodies = [body_names.get(b, b) for b in run["params"].get("bodies", [])]
    Panel(
        _legend_html(
            meta, classes, counts, len(values) - len(known), run_href, others, unit, bodies
        ),
        css_class="ps-legend",
    ).add_to(fmap)
    if meta["bbox"]:  # keep the wards clear of the legend on the right
        minx, miny, maxx, maxy = meta["bbox"]
        fmap.fit_bounds(
            [[miny, minx], [maxy, maxx]], padding_top_left=(10, 10), padding_bottom_right=(300, 10)
        )
    return HTMLResponse(figure.render())
