"""``GET /map``: the budget teams' web map, and the two small answers it reads beside the tiles.

The page is a folium (Leaflet) map whose every script, style and image is served by this
service: Leaflet from the installed ``xstatic-leaflet`` package (``/static/leaflet/``), the
plugins (Leaflet.VectorGrid, Leaflet.draw) and d3 / d3-sankey / html-to-image from
``web/node_modules`` (``npm ci`` at set-up; ``/static/vendor/``), and the page's own
JavaScript and CSS from ``api/static/`` (``/static/placespend/``). Nothing is fetched from
outside unless a deployment configures a basemap (``PLACESPEND_BASEMAP_URL``).

- Outlines come from the vector tiles of the layer's boundary set (and its parent set's, for
  borough outlines), so a 7,000-ward layer loads as fast as a 21-ward one; colours come from
  ``GET /map/values`` (one measure for every area, classified by :mod:`placespend.mapview`).
- A click asks the items endpoint which area is there (a point as a bbox) and shows its
  published figures; a drawn or uploaded polygon asks ``POST /neighbourhoods/budget``; the
  flow view asks ``GET /collections/{id}/flows``.
- ``GET /map/labels`` gives a point inside each area in view, for its name.

The router holds no domain logic: it reads the layer, hands the page its configuration as
JSON, and answers the two small reads from :mod:`placespend.mapview` and the store.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Annotated, Any

import folium
from branca.element import Element, MacroElement
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from folium.plugins import Draw, VectorGridProtobuf
from folium.template import Template
from folium.utilities import JsCode
from xstatic.pkg import leaflet as xstatic_leaflet

from api.cache import keep_answer, remembered
from api.deps import ConnDep
from api.http import base_url, cached, check_known, etag, json_response
from api.openapi import ERRORS
from api.query import BBOX_PATTERN, RunPin, parse_bbox
from domain.errors import BadRequest, NotFound, SetupError
from placespend import mapview
from placespend.downloads import attribution_text
from store import features, reference
from store.db import Connection

router = APIRouter(tags=["Map"])

#: The collection shown when ``?collection=`` is not given.
DEFAULT_COLLECTION = "hackney-wards-2014-spend-2014-15"
#: Where Leaflet's own files (leaflet.js, leaflet.css, images/) are served.
LEAFLET_PREFIX = "/static/leaflet"
#: Where the page's own CSS and JavaScript (api/static/) are served.
STATIC_PREFIX = "/static/placespend"
#: Where the browser libraries installed by ``npm ci`` (web/node_modules) are served.
VENDOR_PREFIX = "/static/vendor"
_STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_VENDOR_DIR = Path(__file__).resolve().parents[2] / "web" / "node_modules"
#: The browser libraries the page loads, under VENDOR_PREFIX: the plugins folium's script
#: needs at once, then those loaded when first used (the flow view, a PNG), in order.
VENDOR_JS = (
    "leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js",
    "leaflet-draw/dist/leaflet.draw.js",
)
VENDOR_LATER = {
    "flows": ("d3/dist/d3.min.js", "d3-sankey/dist/d3-sankey.min.js"),
    "png": ("html-to-image/dist/html-to-image.js",),
}
VENDOR_CSS = ("leaflet-draw/dist/leaflet.draw.css",)
#: Most label points one /map/labels answer holds (the largest areas first).
MAX_LABELS = 400

#: How the allocation methods read in a popup; unknown methods show their own name.
METHOD_LABELS = {
    "direct": "Reported for the place (direct)",
    "agency_estimate": "Agency estimate",
    "proxy": "Population proxy",
    "area": "Area share",
    "best_fit": "Best fit",
}
#: What each confidence grade tells a reader (allocation.summary.confidence makes them).
CONFIDENCE_LABELS = {
    "A": "A: at least three quarters placed by what the bodies said about the place",
    "B": "B: at least half placed by what the bodies said about the place",
    "C": "C: at least a quarter placed by what the bodies said about the place",
    "D": "D: an estimate, mostly spread by a population proxy",
    "E": "E: a rough estimate, mostly spread by land area",
}
BASIS_LABELS = {
    "served": "Money paid to a GP practice is spread over the residents it serves",
    "delivered": "Money paid to a site (a GP practice) is placed where the site is",
}


def _vendor_dir(app: FastAPI) -> Path:
    configured = app.state.settings.web_modules
    return Path(configured) if configured else _VENDOR_DIR


#: The measure's query parameters, shared by the page and /map/values.
BodyParam = Annotated[str | None, Query(
    description="colour by one body's spending (its slug, as in the layer's body_<slug> "
                "properties), or leave it out for all bodies",
    max_length=100, json_schema_extra={"pattern": "^[a-z0-9_]+$"}, examples=["hackney"])]
FunctionParam = Annotated[str | None, Query(
    description="colour by one COFOG division (01-10), or leave it out for all",
    json_schema_extra={"enum": [f"{i:02d}" for i in range(1, 11)]}, examples=["09"])]
PerParam = Annotated[str | None, Query(
    description="head (default): pounds a resident; total: pounds",
    json_schema_extra={"enum": ["head", "total"]})]
ClassesParam = Annotated[str | None, Query(
    description="steps (default): equal round steps; quantiles: about equal counts",
    json_schema_extra={"enum": list(mapview.SCHEMES)})]


def mount_static(app: FastAPI) -> None:
    """Serve Leaflet, the npm-installed libraries and the page's own files.

    None of them is copied into git. A checkout whose ``web/node_modules`` is missing still
    starts (the API works); the map page then answers 503 with the fix.
    """
    app.mount(LEAFLET_PREFIX, StaticFiles(directory=xstatic_leaflet.BASE_DIR),
              name="static-leaflet")
    app.mount(VENDOR_PREFIX, StaticFiles(directory=_vendor_dir(app), check_dir=False),
              name="static-vendor")
    app.mount(STATIC_PREFIX, StaticFiles(directory=_STATIC_DIR), name="static-placespend")


def _check_vendor(app: FastAPI) -> None:
    folder = _vendor_dir(app)
    later = [p for paths in VENDOR_LATER.values() for p in paths]
    missing = [p for p in (*VENDOR_JS, *later, *VENDOR_CSS) if not (folder / p).is_file()]
    if missing:
        raise SetupError(f"the map's browser libraries are not installed ({folder / missing[0]})",
                         "run: bash bin/setup (it runs npm ci in web/), or point "
                         "PLACESPEND_WEB_MODULES at an installed node_modules",
                         where="web/node_modules")


class Panel(MacroElement):
    """A Leaflet control holding an empty element the page's JavaScript fills."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var panel = L.control({position: {{ this.position|tojson }}});
            panel.onAdd = function () {
                var div = L.DomUtil.create("div", {{ this.css_class|tojson }});
                div.id = {{ this.element_id|tojson }};
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                return div;
            };
            panel.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
        """
    )

    def __init__(self, element_id: str, *, css_class: str, position: str = "topright") -> None:
        super().__init__()
        self._name = "Panel"
        self.element_id = element_id
        self.css_class = css_class
        self.position = position


def _script_json(value: Any) -> str:
    """JSON safe to place inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


def _publication(conn: Connection, collection: str, run: int | None) -> features.Layer:
    layer = features.get_layer(conn, collection, run)
    if layer.run_id is None:
        raise NotFound(f"{collection!r} is a boundary set: it has no figures to map",
                       "map a publication of a run instead (see GET /collections)",
                       where="collection")
    return layer


def _tiles(root: str, slug: str) -> str:
    return f"{root}/collections/{slug}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}"


def _config(conn: Connection, layer: features.Layer, m: mapview.Measure, root: str,
            request: Request) -> dict:
    """Everything the page's JavaScript needs, as one JSON object."""
    names = [p["name"] for p in layer.properties]
    all_bodies = reference.bodies(conn)
    divisions = reference.cofog_divisions(conn)
    settings = request.app.state.settings
    extent = features.summary(conn, layer)
    parent = features.parent_layer(conn, layer)
    sources = features.sources(conn, layer)
    return {
        "collection": layer.id, "run": layer.run_id, "title": layer.title,
        "financialYear": layer.financial_year, "basis": layer.basis, "fit": layer.fit,
        "basisText": BASIS_LABELS.get(layer.basis or "", layer.basis or ""),
        "place": features.place_name(conn, layer) or layer.title.split(": ", 1)[-1],
        "setSlug": layer.set_slug,
        "unit": "ward" if "ward" in layer.set_slug else "area",
        "features": extent["features"], "bbox": extent["bbox"],
        "tiles": {"areas": _tiles(root, layer.set_slug), "areasLayer": layer.set_slug,
                  "outlines": _tiles(root, parent) if parent else None,
                  "outlinesLayer": parent},
        "urls": {"root": root, "values": f"{root}/map/values", "labels": f"{root}/map/labels",
                 "collections": f"{root}/collections", "budget": f"{root}/neighbourhoods/budget",
                 "sets": f"{root}/neighbourhood-sets", "run": f"{root}/runs/{layer.run_id}",
                 "map": f"{root}/map",
                 "later": {k: [f"{root}{VENDOR_PREFIX}/{p}" for p in paths]
                           for k, paths in VENDOR_LATER.items()}},
        "siblings": mapview.siblings(conn, layer),
        "bodies": {n[5:]: all_bodies.get(n[5:], {}).get("name", n[5:])
                   for n in names if n.startswith("body_")},
        "functions": {n[6:]: divisions.get(n[6:], f"COFOG {n[6:]}")
                      for n in names if n.startswith("cofog_")},
        "measure": {"body": m.body, "function": m.function,
                    "per": "head" if m.per_head else "total", "classes": m.scheme},
        "methods": METHOD_LABELS, "confidence": CONFIDENCE_LABELS,
        "attribution": attribution_text(sources), "sources": sources,
        # The first colours travel in the page: no round trip before the tiles are asked for.
        "values": json.loads(_values_json(request, conn, layer, m)),
        "basemap": ({"url": settings.basemap_url, "attribution": settings.basemap_attribution}
                    if settings.basemap_url else None),
    }


@router.get("/map", response_class=HTMLResponse, summary="The web map",
            responses={400: ERRORS[400], 404: ERRORS[404],
                       503: {"description": "Map libraries not installed"}})
def map_page(
    request: Request,
    conn: ConnDep,
    collection: Annotated[str, Query(
        description="collection id (see /collections), e.g. london-wards-2014-spend-2014-15",
        max_length=200)] = DEFAULT_COLLECTION,
    run: RunPin = None,
    body: BodyParam = None,
    function: FunctionParam = None,
    per: PerParam = None,
    classes: ClassesParam = None,
) -> HTMLResponse:
    """The map of one publication: choropleth, popups, drawing, flows, comparison, export."""
    check_known(request, frozenset({"collection", "run", "body", "function", "per", "classes"}))
    _check_vendor(request.app)
    layer = _publication(conn, collection, run)
    m = mapview.measure(layer, body, function, per, classes)  # a bad measure is a 400 now
    root = request.scope.get("root_path", "")
    config = _config(conn, layer, m, root, request)
    title = f"Public spend {layer.financial_year}: {config['place']}"

    basemap = config["basemap"]
    fmap = folium.Map(location=None, tiles=None, control_scale=True, zoom_snap=0.25,
                      prefer_canvas=True)
    if basemap:
        folium.TileLayer(basemap["url"], attr=basemap["attribution"] or "Basemap",
                         name="Basemap", control=False).add_to(fmap)
    fmap.default_js = [("leaflet", f"{root}{LEAFLET_PREFIX}/leaflet.js")]
    fmap.default_css = [("leaflet_css", f"{root}{LEAFLET_PREFIX}/leaflet.css")]
    figure = fmap.get_root()
    figure.title = html.escape(title)
    head = ['<link rel="icon" href="data:,">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">']
    head += [f'<link rel="stylesheet" href="{root}{VENDOR_PREFIX}/{p}">' for p in VENDOR_CSS]
    head.append(f'<link rel="stylesheet" href="{root}{STATIC_PREFIX}/placespend-map.css">')
    figure.header.add_child(Element("\n".join(head)), name="placespend_head")

    areas = VectorGridProtobuf(
        config["tiles"]["areas"], name="Areas", show=False, control=False,
        options={"rendererFactory": JsCode("L.canvas.tile"), "interactive": False,
                 "tileSize": 512, "zoomOffset": -1, "maxNativeZoom": 17, "maxZoom": 20,
                 "vectorTileLayerStyles": {layer.set_slug: JsCode("placespendAreaStyle")},
                 "getFeatureId": JsCode("placespendFeatureId")})
    areas.default_js = [("vector_grid", f"{root}{VENDOR_PREFIX}/{VENDOR_JS[0]}")]
    areas.add_to(fmap)
    outlines = None
    if config["tiles"]["outlines"]:
        outlines = VectorGridProtobuf(
            config["tiles"]["outlines"], name="Outlines", show=False, control=False,
            options={"rendererFactory": JsCode("L.canvas.tile"), "interactive": False,
                     "tileSize": 512, "zoomOffset": -1, "maxNativeZoom": 17, "maxZoom": 20,
                     "pane": "ps-outlines",
                     "vectorTileLayerStyles": {config["tiles"]["outlinesLayer"]:
                                               JsCode("placespendOutlineStyle")}})
        outlines.default_js = areas.default_js
        outlines.add_to(fmap)
    drawn = folium.FeatureGroup(name="Drawn neighbourhood", control=False).add_to(fmap)
    draw = Draw(
        position="topleft", feature_group=drawn, show_geometry_on_click=False,
        draw_options={"polyline": False, "circle": False, "marker": False,
                      "circlemarker": False, "rectangle": {"showArea": False},
                      "polygon": {"allowIntersection": False, "showArea": False}},
        edit_options={"edit": False, "remove": False},
    )
    draw.default_js = [("leaflet_draw_js", f"{root}{VENDOR_PREFIX}/{VENDOR_JS[1]}")]
    draw.default_css = []  # in the page's head, before the page's own CSS
    draw.add_to(fmap)
    Panel("ps-panel", css_class="ps-panel").add_to(fmap)
    Panel("ps-sheet", css_class="ps-sheet", position="bottomleft").add_to(fmap)

    config["names"] = {"map": fmap.get_name(), "areas": areas.get_name(),
                       "outlines": outlines.get_name() if outlines else None,
                       "drawn": drawn.get_name()}
    figure.header.add_child(Element(
        f'<script id="placespend-config" type="application/json">{_script_json(config)}'
        "</script>"
        f'<script src="{root}{STATIC_PREFIX}/placespend-map.js"></script>'),
        name="placespend_script")
    return HTMLResponse(figure.render())


@router.get("/map/values", summary="One measure of a publication for every area, classified",
            responses={200: {"content": {"application/json": {}, "text/csv": {}}},
                       **{k: ERRORS[k] for k in (400, 404)}})
def map_values(
    request: Request,
    conn: ConnDep,
    collection: Annotated[str, Query(description="a publication's id (see /collections)",
                                     max_length=200)],
    run: RunPin = None,
    body: BodyParam = None,
    function: FunctionParam = None,
    per: PerParam = None,
    classes: ClassesParam = None,
    f: Annotated[str | None, Query(description="json (default) or csv",
                                   json_schema_extra={"enum": ["json", "csv"]})] = None,
) -> Response:
    """Each area's value (pounds, or pounds a head) and the legend's classes and counts.

    With ``f=csv``: the view as a table (code, name, value, its class) with the run and the
    attribution of every source, for a spreadsheet.
    """
    check_known(request, frozenset({"collection", "run", "body", "function", "per", "classes",
                                    "f"}))
    if f not in (None, "json", "csv"):
        raise BadRequest(f"f={f!r} is not a format here", "use f=json or f=csv", where="f")
    layer = _publication(conn, collection, run)
    m = mapview.measure(layer, body, function, per, classes)
    tag = etag(layer.id, layer.version, "map-values", m, f or "json")
    if f == "csv":
        text = mapview.choropleth_csv(conn, layer, m)
        response = cached(request, tag, text, "text/csv; charset=utf-8", pinned=run is not None)
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{layer.id}-run{layer.run_id}-map.csv"')
        return response
    response = cached(request, tag, _values_json(request, conn, layer, m), "application/json",
                      pinned=run is not None)
    return keep_answer(request, response) if run is not None else response


def _values_json(request: Request, conn: Connection, layer: features.Layer,
                 m: mapview.Measure) -> bytes:
    """The measure's values as JSON, made once per publication and measure."""
    return remembered(request, etag(layer.id, layer.version, "map-values-body", m),
                      lambda: json.dumps(mapview.choropleth(conn, layer, m),
                                         separators=(",", ":")).encode())


@router.get("/map/labels", summary="Where to write each area's name",
            responses={k: ERRORS[k] for k in (400, 404)})
def map_labels(
    request: Request,
    conn: ConnDep,
    collection: Annotated[str, Query(description="a layer's id (see /collections)",
                                     max_length=200)],
    bbox: Annotated[str, Query(description="minlon,minlat,maxlon,maxlat (CRS84)",
                               json_schema_extra={"pattern": BBOX_PATTERN},
                               examples=["-0.11,51.53,-0.02,51.58"])],
    limit: Annotated[int, Query(ge=1, le=MAX_LABELS)] = 200,
) -> Response:
    """A point inside each area in ``bbox`` (lon/lat), its code, name and area, largest first."""
    check_known(request, frozenset({"collection", "bbox", "limit"}))
    layer = features.get_layer(conn, collection)
    points = features.label_points(conn, layer, parse_bbox(bbox), limit)
    return json_response({"collection": layer.id, "labels": points},
                         headers={"Link": f'<{base_url(request)}/collections/{layer.id}>; '
                                          'rel="collection"'})
