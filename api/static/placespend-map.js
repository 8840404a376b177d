// The budget teams' map (api/routers/map_page.py), served at /static/placespend/.
//
// The page hands this script its configuration in <script id="placespend-config">: the
// publication, the tile addresses of its boundary set (and the parent set, for outlines), the
// API addresses, the bodies and functions it publishes, and the labels. Every figure shown
// comes from the API as published: colours from /map/values, a clicked area from the items
// endpoint, a drawn area from POST /neighbourhoods/budget, flows from /collections/{id}/flows.
// Nothing here computes money: it looks figures up and formats them.
(function () {
    "use strict";
    var config = JSON.parse(document.getElementById("placespend-config").textContent);
    var urls = config.urls;
    var NO_DATA = "#bdbdbd";
    var BODIES_NAMED = 8; // a popup names the largest bodies, then "Other public bodies"
    var STORE_KEY = "placespend.neighbourhoods";

    var state = {
        layer: {id: config.collection, run: config.run, financial_year: config.financialYear,
                basis: config.basis, fit: config.fit, title: config.title},
        measure: {body: config.measure.body, function: config.measure.function,
                  per: config.measure.per, classes: config.measure.classes},
        colours: {}, view: null, drawing: false, selected: null, budget: null,
        compare: [], added: false,
    };

    // ---- formatting ------------------------------------------------------------------------
    var gbp = new Intl.NumberFormat("en-GB", {style: "currency", currency: "GBP",
                                              maximumFractionDigits: 0});
    var gbp2 = new Intl.NumberFormat("en-GB", {style: "currency", currency: "GBP",
                                               minimumFractionDigits: 2,
                                               maximumFractionDigits: 2});
    var int = new Intl.NumberFormat("en-GB", {maximumFractionDigits: 0});
    function esc(s) {
        return String(s).replace(/[&<>"']/g, function (c) {
            return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
        });
    }
    function money(v) { return v === null || v === undefined ? "–" : gbp.format(v); }
    function el(html) {
        var t = document.createElement("template");
        t.innerHTML = html.trim();
        return t.content.firstChild;
    }
    function query(params) {
        return Object.keys(params).filter(function (k) {
            return params[k] !== null && params[k] !== undefined && params[k] !== "";
        }).map(function (k) {
            return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]);
        }).join("&");
    }
    function status(text) {
        var s = document.getElementById("ps-status");
        if (s) { s.textContent = text || ""; }
    }
    // A JSON answer, or an Error carrying the API's cause and fix.
    function getJSON(url, options) {
        return fetch(url, options).then(function (r) {
            return r.json().catch(function () { return {}; }).then(function (body) {
                if (!r.ok) {
                    var e = new Error((body.cause || ("HTTP " + r.status)) +
                                      (body.fix ? ". Fix: " + body.fix : ""));
                    e.body = body;
                    throw e;
                }
                return body;
            });
        });
    }
    function measureParams(extra) {
        var m = state.measure;
        return query(Object.assign({collection: state.layer.id, run: state.layer.run,
                                    body: m.body, "function": m.function, per: m.per,
                                    classes: m.classes}, extra || {}));
    }
    function classIndex(edges, v) { // the class of v: edges belong to the class above
        var i = 0;
        while (i < edges.length - 2 && v >= edges[i + 1]) { i++; }
        return i;
    }

    // ---- styles the vector tile layers call (named in the folium page) ---------------------
    window.placespendFeatureId = function (f) { return f.properties.code; };
    window.placespendAreaStyle = function (props, zoom) {
        return {fill: true, fillColor: state.colours[props.code] || NO_DATA, fillOpacity: 0.85,
                color: "#4d4d4d", weight: zoom >= 13 ? 1 : 0.5, opacity: 0.9};
    };
    window.placespendOutlineStyle = function () {
        return {fill: false, color: "#111111", weight: 2, opacity: 0.85};
    };

    // The first colours came with the page.
    var firstValues = Promise.resolve(config.values);

    // Libraries only some views need (d3 for the flows, html-to-image for a PNG), loaded
    // from the service the first time they are wanted.
    var loading = {};
    function later(what) {
        if (!loading[what]) {
            loading[what] = urls.later[what].reduce(function (done, src) {
                return done.then(function () {
                    return new Promise(function (resolve, reject) {
                        var s = document.createElement("script");
                        s.src = src;
                        s.onload = resolve;
                        s.onerror = function () { reject(new Error("could not load " + src)); };
                        document.head.appendChild(s);
                    });
                });
            }, Promise.resolve());
        }
        return loading[what];
    }

    // ---- figures of one place, from a feature or from a neighbourhood budget --------------
    function figuresFromFeature(p, layer) { // layer: the publication it is from (default: shown)
        layer = layer || state.layer;
        var f = {kind: "area", code: p.code, name: p.name, collection: layer.id,
                 run: layer.run, year: layer.financial_year,
                 basis: layer.basis, population: p.population, total: p.total,
                 per_head: p.per_head, range_low: p.range_low, range_high: p.range_high,
                 functions: [], bodies: [], shares: {}, confidence: p.confidence};
        Object.keys(p).forEach(function (k) {
            var m;
            if ((m = /^cofog_(\d\d)$/.exec(k)) && p[k]) { f.functions.push([m[1], p[k]]); }
            else if ((m = /^body_(.+)$/.exec(k)) && p[k]) { f.bodies.push([m[1], p[k]]); }
            else if ((m = /^share_(.+)$/.exec(k)) && p[k]) { f.shares[m[1]] = p[k]; }
        });
        return f;
    }
    function figuresFromBudget(b, name) {
        function pounds(obj) {
            return Object.keys(obj || {}).filter(function (k) { return obj[k]; })
                .map(function (k) { return [k, obj[k] / 100]; });
        }
        var shares = {};
        Object.keys(b.method_shares || {}).forEach(function (k) {
            if (b.method_shares[k]) { shares[k] = b.method_shares[k]; }
        });
        return {kind: "drawn", code: null, name: name || "Your neighbourhood",
                collection: state.layer.id, run: b.run, year: state.layer.financial_year,
                basis: state.layer.basis, population: b.population,
                total: b.total_pence / 100, total_pence: b.total_pence, per_head: b.per_head,
                functions: pounds(b.by_function_pence), bodies: pounds(b.by_body_pence),
                shares: shares, confidence: b.confidence, area_m2: b.area_m2,
                atoms: b.atoms, atoms_split: b.atoms_split, flows: b.flows};
    }

    function figuresHtml(f) {
        var people = f.population;
        function perHead(v) { return people > 0 ? gbp.format(v / people) : "–"; }
        function section(title, rows) {
            if (!rows.length) { return ""; }
            return "<h4>" + esc(title) + "</h4><table><tr class='ps-hd'><td></td>" +
                "<td class='ps-num'>total</td><td class='ps-num'>per head</td></tr>" +
                rows.join("") + "</table>";
        }
        function row(label, v) {
            return "<tr><td>" + esc(label) + ":</td><td class='ps-num'>" + gbp.format(v) +
                "</td><td class='ps-num'>" + perHead(v) + "</td></tr>";
        }
        var functions = f.functions.slice().sort().map(function (d) {
            return row(d[0] + " " + (config.functions[d[0]] || "COFOG " + d[0]), d[1]);
        });
        var bodies = f.bodies.slice().sort(function (a, b) { return Math.abs(b[1]) - Math.abs(a[1]); });
        var named = bodies.slice(0, BODIES_NAMED).map(function (b) {
            return row(config.bodies[b[0]] || b[0], b[1]);
        });
        if (bodies.length > BODIES_NAMED) {
            var rest = bodies.slice(BODIES_NAMED).reduce(function (s, b) { return s + b[1]; }, 0);
            named.push(row("Other public bodies (" + (bodies.length - BODIES_NAMED) + ")", rest));
        }
        var methods = Object.keys(config.methods);
        Object.keys(f.shares).forEach(function (m) { if (methods.indexOf(m) < 0) { methods.push(m); } });
        var shares = methods.filter(function (m) { return f.shares[m]; }).map(function (m) {
            return "<tr><td>" + esc(config.methods[m] || m) + ":</td><td class='ps-num'>" +
                (100 * f.shares[m]).toFixed(1) + "%</td></tr>";
        });
        var meta = f.kind === "area" ? esc(f.code) + " · " :
            (f.area_m2 ? (f.area_m2 / 1e6).toFixed(2) + " km² · " : "");
        return "<div class='ps-figures'><h3>" + esc(f.name) + "</h3>" +
            "<p class='ps-meta'>" + meta + esc(f.year) + " · population " +
            (people === null || people === undefined ? "–" : int.format(people)) + "</p>" +
            "<p class='ps-head'><b data-ps-per-head>" + (f.per_head === null ? "no per-head figure" :
                gbp2.format(f.per_head) + " per head") + "</b> · <span data-ps-total>" +
            gbp.format(f.total) + "</span> in total</p>" +
            (f.range_low !== undefined && f.range_low !== f.range_high ?
                "<p class='ps-meta'>" + gbp.format(f.range_low) + " to " +
                gbp.format(f.range_high) + " by residents, land area, best fit or an " +
                "alternative proxy</p>" : "") +
            section("By function (COFOG division)", functions) +
            section("By public body", named) +
            (shares.length ? "<h4>How it was apportioned</h4><table>" + shares.join("") +
                "</table>" : "") +
            (f.confidence ? "<p class='ps-conf'>Confidence " +
                esc(config.confidence[f.confidence] || f.confidence) + "</p>" : "") + "</div>";
    }

    // ---- the panel: place, selectors, legend, actions ----------------------------------------
    function siblingsLike(pred) { return config.siblings.filter(pred); }
    function panelHtml() {
        var years = {}, bases = [];
        config.siblings.forEach(function (s) {
            if (s.basis === state.layer.basis && s.fit === state.layer.fit) { years[s.financial_year] = s; }
            if (s.financial_year === state.layer.financial_year) { bases.push(s); }
        });
        function options(pairs, chosen) {
            return pairs.map(function (p) {
                return "<option value='" + esc(p[0]) + "'" + (p[0] === (chosen || "") ? " selected" : "") +
                    ">" + esc(p[1]) + "</option>";
            }).join("");
        }
        var bodyPairs = [["", "All public bodies"]].concat(Object.keys(config.bodies).sort(function (a, b) {
            return config.bodies[a].localeCompare(config.bodies[b]);
        }).map(function (k) { return [k, config.bodies[k]]; }));
        var fnPairs = [["", "All functions"]].concat(Object.keys(config.functions).sort().map(function (k) {
            return [k, k + " " + config.functions[k]];
        }));
        var basisName = function (s) {
            return (s.basis === "delivered" ? "Delivered" : "Served") + (s.fit === "best_fit" ? ", best fit" : "");
        };
        var unitName = config.unit === "ward" ? "wards" : "areas";
        return "<details class='ps-details' open><summary>Map options and legend</summary>" +
            "<h1 class='ps-place'>" + esc(config.place || state.layer.title) + "</h1>" +
            "<p class='ps-sub'>Public spend " + esc(state.layer.financial_year) + " · " +
            int.format(config.features) + " " + unitName + "</p>" +
            "<p class='ps-basis'><b>" + esc(basisName(state.layer)) + " basis.</b> " +
            esc(config.basisText) + ".</p>" +
            "<div class='ps-controls'>" +
            "<label>Year <select id='ps-year'>" + options(Object.keys(years).sort().map(function (y) {
                return [years[y].id, y]; }), state.layer.id) + "</select></label>" +
            "<label>Basis <select id='ps-basis-select'>" + options(bases.map(function (s) {
                return [s.id, basisName(s)]; }), state.layer.id) + "</select></label>" +
            "<label>Body <select id='ps-body'>" + options(bodyPairs, state.measure.body) + "</select></label>" +
            "<label>Function <select id='ps-function'>" + options(fnPairs, state.measure.function) +
            "</select></label>" +
            "<fieldset class='ps-per'><legend>Show</legend>" +
            "<label><input type='radio' name='ps-per' value='head'" + (state.measure.per !== "total" ? " checked" : "") +
            "> per head</label><label><input type='radio' name='ps-per' value='total'" +
            (state.measure.per === "total" ? " checked" : "") + "> total</label></fieldset>" +
            "<label>Classes <select id='ps-classes'>" + options([["steps", "Equal round steps"],
                ["quantiles", "About equal counts"]], state.measure.classes) + "</select></label>" +
            "</div>" +
            "<div id='ps-legend' class='ps-legend' aria-live='polite'></div>" +
            "<label class='ps-find'>Find a " + esc(config.unit) + " <input id='ps-find' list='ps-names' " +
            "autocomplete='off' placeholder='type a name'></label><datalist id='ps-names'></datalist>" +
            "<div class='ps-actions'>" +
            "<button type='button' data-ps-action='draw'>Draw a neighbourhood</button>" +
            "<button type='button' data-ps-action='upload'>Upload a GeoJSON polygon</button>" +
            "<input type='file' id='ps-upload' accept='.geojson,.json,application/geo+json,application/json' hidden>" +
            "<button type='button' data-ps-action='flows-all'>Follow the money</button>" +
            "<button type='button' data-ps-action='print'>Print</button>" +
            "<button type='button' data-ps-action='png'>Save as PNG</button>" +
            "<a class='ps-button' id='ps-csv' download>Download CSV</a>" +
            "</div>" +
            "<div id='ps-saved'></div>" +
            "<p id='ps-status' class='ps-status' role='status'></p>" +
            "<details class='ps-sources'><summary>Where the figures come from</summary><p>" +
            esc(config.attribution) + "</p><p>Run <a id='ps-run' href='" + esc(urls.run) + "'>" +
            esc(urls.run) + "</a>: its proxies, netting and conservation report. " +
            "Methods: docs/methods.md.</p></details>" +
            "</details>";
    }

    function legendHtml(view) {
        var c = view.classes, unitName = config.unit === "ward" ? "ward" : "area";
        // As many decimals as the class step needs (£182.40 to £182.60, not £182 to £183).
        var step = c.edges.length > 1 ? c.edges[1] - c.edges[0] : 1;
        var digits = step >= 1 ? 0 : Math.min(2, Math.ceil(-Math.log10(step) - 1e-9));
        var edge = new Intl.NumberFormat("en-GB", {style: "currency", currency: "GBP",
            minimumFractionDigits: digits, maximumFractionDigits: digits});
        var rows = c.colours.map(function (colour, i) {
            var n = c.counts[i];
            return "<li data-ps-class='" + i + "'><i style='background:" + colour + "'></i>" +
                edge.format(c.edges[i]) + " to " + edge.format(c.edges[i + 1]) +
                "<span class='ps-n'>" + n + " " + unitName + (n === 1 ? "" : "s") + "</span></li>";
        }).reverse();
        if (c.no_data) {
            rows.push("<li data-ps-class='none'><i style='background:" + c.no_data_colour +
                      "'></i>no figure (no residents)<span class='ps-n'>" + c.no_data + "</span></li>");
        }
        return "<h2 class='ps-legend-title'>" + esc(view.label) + "</h2>" +
            "<p class='ps-note'>" + esc(view.financial_year) + " · " + esc(view.unit) +
            " · colours: ColorBrewer YlOrRd (colour-blind safe)</p>" +
            "<ul class='ps-classes'>" + rows.join("") + "</ul>" +
            "<p class='ps-note'>In all: " + money(view.total) + " for " +
            int.format(view.population) + " residents. Click a " + unitName +
            " for its figures.</p>";
    }

    function applyValues(view) {
        state.view = view;
        var colours = {}, edges = view.classes.edges, palette = view.classes.colours;
        view.codes.forEach(function (code, i) {
            var v = view.values[i];
            colours[code] = v === null ? view.classes.no_data_colour : palette[classIndex(edges, v)];
        });
        state.colours = colours;
        document.getElementById("ps-legend").innerHTML = legendHtml(view);
        document.getElementById("ps-names").innerHTML = view.names.map(function (n) {
            return "<option value='" + esc(n) + "'>";
        }).join("");
        document.getElementById("ps-csv").href = urls.values + "?" + measureParams({f: "csv"});
        document.getElementById("ps-csv").setAttribute(
            "download", state.layer.id + "-run" + state.layer.run + "-map.csv");
        if (state.added) { // re-added, not redraw(): Leaflet 1.9 redraws at a fractional zoom
            map.removeLayer(areas);
            areas.addTo(map);
        }
    }

    function viewAddress(collection) { // the page's address for the measure shown
        var m = state.measure;
        return urls.map + "?" + query({collection: collection, body: m.body,
            "function": m.function, per: m.per === "head" ? null : m.per,
            classes: m.classes === "steps" ? null : m.classes});
    }
    function rememberView() { history.replaceState(null, "", viewAddress(state.layer.id)); }

    function refresh() {
        status("Loading…");
        return getJSON(urls.values + "?" + measureParams()).then(function (view) {
            applyValues(view);
            rememberView();
            status("");
        }).catch(function (e) { status(e.message); });
    }

    // Another year or basis is another publication: its own bodies, functions, run and
    // credits, so the page is opened afresh for it (the outlines come from the browser's cache).
    function switchLayer(id) {
        var next = config.siblings.filter(function (s) { return s.id === id; })[0];
        if (!next) { return; }
        if (!state.measure.body) { location.assign(viewAddress(next.id)); return; }
        // A body the other publication has no figures for is dropped (all bodies instead).
        getJSON(urls.values + "?" + query({collection: next.id, run: next.run,
                                           body: state.measure.body, per: "total"}))
            .catch(function () { state.measure.body = null; })
            .then(function () { location.assign(viewAddress(next.id)); });
    }

    function wirePanel() {
        document.getElementById("ps-year").addEventListener("change", function (e) { switchLayer(e.target.value); });
        document.getElementById("ps-basis-select").addEventListener("change", function (e) { switchLayer(e.target.value); });
        document.getElementById("ps-body").addEventListener("change", function (e) {
            state.measure.body = e.target.value || null; refresh();
        });
        document.getElementById("ps-function").addEventListener("change", function (e) {
            state.measure.function = e.target.value || null; refresh();
        });
        document.querySelectorAll("input[name='ps-per']").forEach(function (r) {
            r.addEventListener("change", function (e) { state.measure.per = e.target.value; refresh(); });
        });
        document.getElementById("ps-classes").addEventListener("change", function (e) {
            state.measure.classes = e.target.value; refresh();
        });
        document.getElementById("ps-find").addEventListener("change", function (e) {
            var i = state.view ? state.view.names.indexOf(e.target.value) : -1;
            if (i >= 0) { openArea(state.view.codes[i]); }
        });
        document.getElementById("ps-upload").addEventListener("change", uploadPolygon);
        if (state.view) {
            document.getElementById("ps-legend").innerHTML = legendHtml(state.view);
        }
        listSaved();
        foldPanelOnPhone();
    }

    // ---- a clicked area -------------------------------------------------------------------------
    var highlight = null;
    function itemsUrl(extra) {
        return urls.collections + "/" + encodeURIComponent(state.layer.id) + "/items?" +
            query(Object.assign({run: state.layer.run}, extra));
    }
    function featureUrl(code, f) {
        return urls.collections + "/" + encodeURIComponent(state.layer.id) + "/items/" +
            encodeURIComponent(code) + "?" + query({run: state.layer.run, f: f});
    }
    function showArea(feature, latlng) {
        var figs = figuresFromFeature(feature.properties);
        state.selected = figs;
        if (highlight) { map.removeLayer(highlight); }
        highlight = L.geoJSON(feature.geometry, {interactive: false, pane: "ps-outlines",
            style: {color: "#111111", weight: 3.5, fill: false}}).addTo(map);
        var links = "<p class='ps-links'>The same figures as " +
            "<a href='" + esc(featureUrl(figs.code, "json")) + "'>GeoJSON</a> or " +
            "<a href='" + esc(itemsUrl({code: figs.code, f: "csv"})) + "'>CSV</a> · " +
            "<a href='" + esc(urls.root + "/runs/" + state.layer.run) + "'>run " + state.layer.run + "</a></p>" +
            "<p class='ps-popup-actions'><button type='button' data-ps-action='flows-area'>Follow the money</button> " +
            "<button type='button' data-ps-action='compare-area'>Compare</button></p>";
        foldPanelOnPhone();
        var narrow = window.innerWidth < 700; // a phone: no panel at the right to keep clear of
        L.popup({maxWidth: Math.min(400, window.innerWidth - 110),
                 minWidth: Math.min(300, window.innerWidth - 110),
                 autoPanPaddingTopLeft: [narrow ? 50 : 60, narrow ? 40 : 10],
                 autoPanPaddingBottomRight: [narrow ? 10 : 330, 10], className: "ps-popup"})
            .setLatLng(latlng || highlight.getBounds().getCenter())
            .setContent("<div class='ps-popup-body'>" + figuresHtml(figs) + links + "</div>")
            .on("remove", function () { if (highlight) { map.removeLayer(highlight); highlight = null; } })
            .openOn(map);
    }
    function areaAt(latlng) {
        var d = 1e-7; // a box of about a centimetre around the point
        var box = [latlng.lng - d, latlng.lat - d, latlng.lng + d, latlng.lat + d].join(",");
        return getJSON(itemsUrl({bbox: box, limit: 5})).then(function (doc) {
            return doc.features && doc.features.length ? doc.features[0] : null;
        });
    }
    function onMapClick(e) {
        if (state.drawing) { return; }
        areaAt(e.latlng).then(function (feature) {
            if (feature) { showArea(feature, e.latlng); }
            else { status("No " + config.unit + " of this map there."); }
        }).catch(function (err) { status(err.message); });
    }
    function openArea(code) {
        return getJSON(featureUrl(code)).then(function (feature) {
            var bounds = L.geoJSON(feature.geometry).getBounds();
            map.fitBounds(bounds, {maxZoom: 15, paddingBottomRight: [320, 0]});
            showArea(feature, bounds.getCenter());
        }).catch(function (err) { status(err.message); });
    }

    // ---- the sheet: neighbourhood budget, flows, comparison ------------------------------
    function foldPanelOnPhone() {
        if (window.matchMedia && window.matchMedia("(max-width: 640px)").matches) {
            var d = document.querySelector("#ps-panel .ps-details");
            if (d) { d.open = false; }
        }
    }
    function openSheet(title, html, view) {
        foldPanelOnPhone();
        map.closePopup();
        var sheet = document.getElementById("ps-sheet");
        sheet.innerHTML = "<div class='ps-sheet-head'><h2 tabindex='-1'>" + esc(title) + "</h2>" +
            "<button type='button' class='ps-close' data-ps-action='close' aria-label='Close'>×</button></div>" +
            "<div class='ps-sheet-body'></div>";
        sheet.querySelector(".ps-sheet-body").appendChild(typeof html === "string" ? el("<div>" + html + "</div>") : html);
        sheet.dataset.view = view;
        sheet.classList.add("ps-open");
        sheet.querySelector("h2").focus();
        return sheet.querySelector(".ps-sheet-body");
    }
    function closeSheet() {
        var sheet = document.getElementById("ps-sheet");
        sheet.classList.remove("ps-open");
        sheet.innerHTML = "";
        delete sheet.dataset.view;
    }

    // ---- draw or upload a neighbourhood --------------------------------------------------
    function budgetOf(geojson, name) {
        status("Working out the budget…");
        return getJSON(urls.budget + "?" + query({run: state.layer.run}), {
            method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify(geojson),
        }).then(function (b) {
            status("");
            state.budget = figuresFromBudget(b, name);
            state.drawnGeojson = geojson;
            showBudget(state.budget);
            return b;
        }).catch(function (e) { status(e.message); throw e; });
    }
    function showBudget(figs) {
        var body = openSheet(figs.name + ": its budget", "<div>" + figuresHtml(figs) +
            "<p class='ps-meta'>From run " + figs.run + ": " + figs.atoms + " small areas touched, " +
            figs.atoms_split + " split by the edge (counted by the share of their area inside).</p>" +
            "<p class='ps-popup-actions'><button type='button' data-ps-action='flows-drawn'>Follow the money</button> " +
            "<button type='button' data-ps-action='compare-drawn'>Compare</button></p>" +
            "<form class='ps-save' data-ps-form='save'><label>Name <input name='name' required " +
            "value='" + esc(figs.name === "Your neighbourhood" ? "" : figs.name) + "' placeholder='e.g. Dalston Lane'></label>" +
            "<button type='submit'>Save in this browser</button>" +
            "<details><summary>Save to Placespend (needs an API key)</summary>" +
            "<label>Set <input name='set' value='community-neighbourhoods' pattern='[a-z0-9][a-z0-9\\-]{0,62}'></label>" +
            "<label>API key <input name='key' type='password' autocomplete='off'></label>" +
            "<button type='button' data-ps-action='save-server'>Save to Placespend</button></details>" +
            "<p class='ps-save-status' role='status'></p></form></div>", "budget");
        return body;
    }
    function onDrawn(e) {
        drawn.clearLayers();
        drawn.addLayer(e.layer);
        state.drawing = false;
        budgetOf(e.layer.toGeoJSON()).catch(function () {});
    }
    function uploadPolygon(e) {
        var file = e.target.files[0];
        if (!file) { return; }
        file.text().then(function (text) {
            var obj;
            try { obj = JSON.parse(text); } catch (err) {
                status(file.name + " is not JSON: " + err.message + ". Fix: save the polygon as GeoJSON.");
                return;
            }
            drawn.clearLayers();
            var shape = L.geoJSON(obj, {style: {color: "#3388ff", weight: 3}});
            drawn.addLayer(shape);
            if (shape.getBounds().isValid()) { map.fitBounds(shape.getBounds(), {paddingBottomRight: [320, 0]}); }
            var name = obj.properties && obj.properties.name ||
                (obj.features && obj.features[0] && obj.features[0].properties &&
                 obj.features[0].properties.name) || file.name.replace(/\.(geo)?json$/i, "");
            budgetOf(obj, name).catch(function () {});
        });
        e.target.value = "";
    }
    function savedList() {
        try { return JSON.parse(localStorage.getItem(STORE_KEY) || "[]"); } catch (err) { return []; }
    }
    function listSaved() {
        var box = document.getElementById("ps-saved");
        if (!box) { return; }
        var saved = savedList();
        box.innerHTML = saved.length ? "<h3>Saved neighbourhoods</h3><ul>" + saved.map(function (s, i) {
            return "<li><button type='button' data-ps-action='open-saved' data-ps-index='" + i + "'>" +
                esc(s.name) + "</button></li>";
        }).join("") + "</ul>" : "";
    }
    function saveLocal(form) {
        var name = form.elements.name.value.trim();
        if (!name || !state.drawnGeojson) { return; }
        var saved = savedList().filter(function (s) { return s.name !== name; });
        saved.push({name: name, geojson: state.drawnGeojson, saved: new Date().toISOString()});
        localStorage.setItem(STORE_KEY, JSON.stringify(saved));
        state.budget.name = name;
        form.querySelector(".ps-save-status").textContent = "Saved in this browser as " + name + ".";
        listSaved();
    }
    function saveServer(form) {
        var name = form.elements.name.value.trim(), set = form.elements.set.value.trim();
        var out = form.querySelector(".ps-save-status");
        if (!name) { out.textContent = "Give it a name first."; return; }
        getJSON(urls.sets + "/" + encodeURIComponent(set) + "/neighbourhoods?" + query({name: name}), {
            method: "POST", body: JSON.stringify(state.drawnGeojson),
            headers: {"Content-Type": "application/json", "X-API-Key": form.elements.key.value},
        }).then(function (saved) {
            out.textContent = "Saved in " + saved.set + " as " + saved.code + ". Publish a run to it: " +
                saved.publish;
        }).catch(function (err) { out.textContent = err.message; });
    }

    // ---- follow the money ----------------------------------------------------------------
    function flowsUrl(code) {
        return urls.collections + "/" + encodeURIComponent(state.layer.id) + "/flows?" +
            query({code: code, run: state.layer.run});
    }
    function showFlows(doc, title) {
        return later("flows").then(function () { drawFlows(doc, title); })
            .catch(function (e) { status(e.message); });
    }
    function drawFlows(doc, title) {
        // A node's figure is its net pence as the map has it (doc.nodes[].pence); a Sankey
        // draws the positive links only, so negative ones (net income) are listed below it.
        var nodes = doc.nodes.map(function (n) {
            return {id: n.id, name: n.name, kind: n.kind, pence: n.pence};
        });
        // Bodies under 1% of the place's total are drawn as one node (the table lists each).
        var OTHER = "body:other", small = {};
        var placeTotal = doc.total_pence || 0;
        nodes.forEach(function (n) {
            if (n.kind === "body" && placeTotal > 0 && Math.abs(n.pence) < 0.01 * placeTotal) {
                small[n.id] = true;
            }
        });
        if (Object.keys(small).length > 1) {
            var otherPence = nodes.filter(function (n) { return small[n.id]; })
                .reduce(function (t, n) { return t + n.pence; }, 0);
            nodes = nodes.filter(function (n) { return !small[n.id]; });
            nodes.push({id: OTHER, kind: "body", pence: otherPence,
                        name: Object.keys(small).length + " other bodies, each under 1%"});
        } else { small = {}; }
        var merged = {};
        doc.links.filter(function (l) { return l.pence > 0; }).forEach(function (l) {
            var source = small[l.source] ? OTHER : l.source, target = small[l.target] ? OTHER : l.target;
            var key = source + "\u0000" + target;
            merged[key] = merged[key] || {source: source, target: target, value: 0};
            merged[key].value += l.pence;
        });
        var links = Object.keys(merged).map(function (k) { return merged[k]; });
        var totalPence = doc.links.filter(function (l) {
            return nodes.some(function (n) { return n.id === l.target && n.kind === "function"; });
        }).reduce(function (s, l) { return s + l.pence; }, 0);
        var box = el("<div class='ps-flows'></div>");
        box.appendChild(el("<p class='ps-flow-total'>" + esc(doc.name || title) + ", " +
            esc(doc.financial_year || state.layer.financial_year) + ": <b data-ps-flow-total='" +
            totalPence + "'>" + gbp.format(totalPence / 100) + "</b> from funders through the " +
            "bodies that spend it to what it is spent on (COFOG divisions).</p>"));
        var used = {};
        links.forEach(function (l) { used[l.source] = used[l.target] = true; });
        nodes = nodes.filter(function (n) { return used[n.id]; });
        var width = Math.min(760, window.innerWidth - 40), height = Math.max(240, 17 * nodes.length);
        var svg = d3.create("svg").attr("viewBox", [0, 0, width, height]).attr("width", width)
            .attr("height", height).attr("role", "img")
            .attr("aria-label", "Flows of " + gbp.format(totalPence / 100));
        if (links.length) {
            var layout = d3.sankey().nodeId(function (d) { return d.id; }).nodeWidth(12)
                .nodePadding(8).extent([[1, 1], [width - 250, height - 6]]); // room for the names
            var graph = layout({nodes: nodes.map(function (d) { return Object.assign({}, d); }),
                                links: links.map(function (d) { return Object.assign({}, d); })});
            var colour = {funder: "#1b9e77", body: "#7570b3", function: "#d95f02"};
            svg.append("g").selectAll("path").data(graph.links).join("path")
                .attr("d", d3.sankeyLinkHorizontal()).attr("fill", "none")
                .attr("stroke", function (d) { return colour[d.source.kind] || "#999"; })
                .attr("stroke-opacity", 0.35)
                .attr("stroke-width", function (d) { return Math.max(1, d.width); })
                .append("title").text(function (d) {
                    return d.source.name + " → " + d.target.name + ": " + gbp.format(d.value / 100);
                });
            svg.append("g").selectAll("rect").data(graph.nodes).join("rect")
                .attr("x", function (d) { return d.x0; }).attr("y", function (d) { return d.y0; })
                .attr("height", function (d) { return Math.max(1, d.y1 - d.y0); })
                .attr("width", function (d) { return d.x1 - d.x0; })
                .attr("fill", function (d) { return colour[d.kind] || "#999"; })
                .append("title").text(function (d) { return d.name + ": " + gbp.format(d.pence / 100); });
            svg.append("g").attr("font-size", 11).selectAll("text").data(graph.nodes).join("text")
                .attr("x", function (d) { return d.x1 + 6; })
                .attr("y", function (d) { return (d.y1 + d.y0) / 2; }).attr("dy", "0.35em")
                .attr("text-anchor", "start")
                .text(function (d) {
                    var name = d.name.length > 38 ? d.name.slice(0, 36) + "…" : d.name;
                    return name + " " + gbp.format(d.pence / 100);
                });
        }
        box.appendChild(svg.node());
        var negative = doc.links.filter(function (l) { return l.pence < 0; });
        if (negative.length) {
            box.appendChild(el("<p class='ps-note'>" + negative.length + " net income flow" +
                (negative.length === 1 ? "" : "s") + " (a service taking in more than it cost) " +
                "cannot be drawn as a band; they are in the table, and every figure counts them.</p>"));
        }
        var rows = doc.links.map(function (l) {
            var name = function (id) { var n = doc.nodes.filter(function (x) { return x.id === id; })[0]; return n ? n.name : id; };
            return "<tr><td>" + esc(name(l.source)) + "</td><td>" + esc(name(l.target)) +
                "</td><td class='ps-num' data-ps-pence='" + l.pence + "'>" + gbp2.format(l.pence / 100) + "</td></tr>";
        });
        box.appendChild(el("<details class='ps-flow-table'><summary>Every flow as a table</summary><table>" +
            "<tr class='ps-hd'><td>from</td><td>to</td><td class='ps-num'>£</td></tr>" + rows.join("") +
            "</table></details>"));
        (doc.notes || []).forEach(function (n) { box.appendChild(el("<p class='ps-note'>" + esc(n) + "</p>")); });
        openSheet("Follow the money: " + (doc.name || title), box, "flows");
    }
    function flowsOfArea(code, name) {
        return getJSON(flowsUrl(code)).then(function (doc) { showFlows(doc, name); return doc; })
            .catch(function (e) { status(e.message); });
    }

    // ---- compare two years or two areas --------------------------------------------------
    function compare(figs) {
        if (state.compare.length >= 2) { state.compare = []; }
        state.compare.push(figs);
        map.closePopup();
        showCompare();
    }
    function showCompare() {
        var a = state.compare[0], b = state.compare[1];
        if (!a) { return; }
        var sameArea = b && a.kind === "area" && b.kind === "area" && a.code === b.code;
        if (sameArea && b.year < a.year) { var t = a; a = b; b = t; } // earlier year first
        var label = function (f) { return f.name + ", " + f.year + (f.basis === "delivered" ? " (delivered)" : ""); };
        if (!b) {
            var years = a.kind === "area" ? config.siblings.filter(function (s) {
                return s.id !== a.collection && s.fit === "split";
            }) : [];
            openSheet("Compare", "<p>First: <b>" + esc(label(a)) + "</b>.</p>" +
                "<p>Now click another " + esc(config.unit) + " (or draw one) and press <b>Compare</b>" +
                (years.length ? ", or compare it with another year or basis:" : ".") + "</p>" +
                (years.length ? "<p><select id='ps-compare-year'>" + years.map(function (s) {
                    return "<option value='" + esc(s.id) + "'>" + esc(s.financial_year + ", " + s.basis) + "</option>";
                }).join("") + "</select> <button type='button' data-ps-action='compare-year'>Compare</button></p>" : ""),
                "compare");
            return;
        }
        var keys = function (list) { return list.map(function (d) { return d[0]; }); };
        var get = function (list, k) { var d = list.filter(function (x) { return x[0] === k; })[0]; return d ? d[1] : 0; };
        var fns = keys(a.functions).concat(keys(b.functions)).filter(function (k, i, all) { return all.indexOf(k) === i; }).sort();
        var bds = keys(a.bodies).concat(keys(b.bodies)).filter(function (k, i, all) { return all.indexOf(k) === i; })
            .sort(function (x, y) { return Math.abs(get(b.bodies, y) + get(a.bodies, y)) - Math.abs(get(b.bodies, x) + get(a.bodies, x)); });
        function row(name, va, vb, fmt, attr) {
            fmt = fmt || money;
            var diff = (va === null || vb === null || va === undefined || vb === undefined) ? "–" :
                (vb - va >= 0 ? "+" : "−") + fmt(Math.abs(vb - va));
            return "<tr" + (attr ? " " + attr : "") + "><td>" + esc(name) + "</td><td class='ps-num'>" + fmt(va) +
                "</td><td class='ps-num'>" + fmt(vb) + "</td><td class='ps-num'>" + diff + "</td></tr>";
        }
        var num = function (v) { return v === null || v === undefined ? "–" : int.format(v); };
        var ph = function (v) { return v === null || v === undefined ? "–" : gbp2.format(v); };
        var html = "<table class='ps-compare'><tr class='ps-hd'><td></td><td class='ps-num'>" + esc(label(a)) +
            "</td><td class='ps-num'>" + esc(label(b)) + "</td><td class='ps-num'>" +
            (sameArea ? "change" : "second − first") + "</td></tr>" +
            row("Total", a.total, b.total, null, "data-ps-row='total'") +
            row("Population", a.population, b.population, num) +
            row("Per head", a.per_head, b.per_head, ph) +
            "<tr class='ps-hd'><td colspan='4'>By function</td></tr>" +
            fns.map(function (k) { return row(k + " " + (config.functions[k] || ""), get(a.functions, k), get(b.functions, k)); }).join("") +
            "<tr class='ps-hd'><td colspan='4'>By public body</td></tr>" +
            bds.map(function (k) { return row(config.bodies[k] || k, get(a.bodies, k), get(b.bodies, k)); }).join("") +
            "<tr><td>Confidence</td><td class='ps-num'>" + esc(a.confidence || "–") + "</td><td class='ps-num'>" +
            esc(b.confidence || "–") + "</td><td></td></tr></table>" +
            "<p class='ps-note'>Pounds as published by each run (not adjusted for inflation).</p>";
        openSheet(sameArea ? "Compare: " + a.name + ", " + a.year + " and " + b.year :
                  "Compare: " + a.name + " and " + b.name, html, "compare");
    }
    function compareYear() {
        var a = state.compare[0], id = document.getElementById("ps-compare-year").value;
        var s = config.siblings.filter(function (x) { return x.id === id; })[0];
        var url = urls.collections + "/" + encodeURIComponent(s.id) + "/items/" + encodeURIComponent(a.code) +
            "?" + query({run: s.run});
        getJSON(url).then(function (feature) {
            state.compare[1] = figuresFromFeature(feature.properties, s);
            showCompare();
        }).catch(function (e) { status(e.message); });
    }

    // ---- print and export ---------------------------------------------------------------
    function savePng() {
        status("Making the picture…");
        var node = map.getContainer(), was = node.querySelector(".ps-attr-open") !== null;
        showCredits(true);
        later("png").then(function () { return htmlToImage.toPng(node, {
            pixelRatio: 1, cacheBust: false,
            filter: function (n) { return !(n.classList && (n.classList.contains("leaflet-draw") ||
                                                             n.classList.contains("ps-actions"))); },
        }); }).then(function (url) {
            var a = document.createElement("a");
            a.href = url;
            a.download = state.layer.id + "-run" + state.layer.run + "-map.png";
            document.body.appendChild(a);
            a.click();
            a.remove();
            status("Saved " + a.download + " (the credits are in the picture).");
        }).catch(function (e) { status("Could not make the picture: " + e.message); })
            .then(function () { showCredits(was); });
    }

    // ---- labels: names where they fit ---------------------------------------------------
    var labels = null, labelTimer = null;
    function updateLabels() {
        clearTimeout(labelTimer);
        labelTimer = setTimeout(function () {
            var b = map.getBounds(), zoom = map.getZoom();
            var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) {
                return v.toFixed(5);
            }).join(",");
            getJSON(urls.labels + "?" + query({collection: config.setSlug, bbox: bbox, limit: 200}))
                .then(function (doc) {
                    labels.clearLayers();
                    var placed = [];
                    doc.labels.forEach(function (l) {
                        var mpp = 40075016.686 * Math.cos(l.lat * Math.PI / 180) / Math.pow(2, zoom + 8);
                        var across = Math.sqrt(l.area_m2) / mpp, width = 5.8 * l.name.length + 8;
                        if (across < width * 0.75) { return; } // the name would spill far outside
                        var p = map.latLngToContainerPoint([l.lat, l.lon]);
                        var box = [p.x - width / 2, p.y - 8, p.x + width / 2, p.y + 8];
                        if (placed.some(function (q) { return box[0] < q[2] && q[0] < box[2] && box[1] < q[3] && q[1] < box[3]; })) { return; }
                        placed.push(box);
                        L.marker([l.lat, l.lon], {interactive: false, keyboard: false, pane: "ps-labels",
                            icon: L.divIcon({className: "ps-label", html: esc(l.name), iconSize: null})}).addTo(labels);
                    });
                }).catch(function () {});
        }, 150);
    }

    // The credits: short on screen (a button shows them all); whole in a print or a PNG.
    function attributionHtml() {
        var roles = {boundaries: "Boundaries", spend: "Spend", population: "Population"};
        var short = config.sources.map(function (s) {
            var first = s.attribution.split(/(?<=\.)\s/)[0];
            return (roles[s.role] || s.role) + ": " + (first.length > 48 ? first.slice(0, 46) + "…" : first);
        }).filter(function (t, i, all) { return all.indexOf(t) === i; });
        return "<span class='ps-attr-short'>" + esc(short.join(" | ")) + "</span>" +
            "<span class='ps-attr-full'>" + esc(config.attribution) + "</span> " +
            "<button type='button' class='ps-attr-toggle' data-ps-action='credits' " +
            "aria-expanded='false'>all credits</button>";
    }
    function showCredits(open) {
        var box = map.attributionControl.getContainer();
        box.classList.toggle("ps-attr-open", open);
        var b = box.querySelector(".ps-attr-toggle");
        if (b) { b.setAttribute("aria-expanded", String(open)); b.textContent = open ? "fewer" : "all credits"; }
    }

    // ---- start ----------------------------------------------------------------------------
    var map, areas, outlines, drawn;
    function rendered() {
        requestAnimationFrame(function () {
            requestAnimationFrame(function () {
                window.placespendRenderMs = performance.now();
                document.documentElement.dataset.psRendered = "1";
            });
        });
    }
    // Tiles of 512 pixels drawn from the vector tile one zoom out (zoomOffset -1): a quarter of
    // the requests for the same picture (Leaflet.VectorGrid has no zoomOffset of its own).
    function withZoomOffset(layer) {
        var fetchTile = layer._getVectorTilePromise;
        layer._getVectorTilePromise = function (coords) {
            var z = coords.z + (layer.options.zoomOffset || 0);
            return fetchTile.call(layer, {x: coords.x, y: coords.y, z: z});
        };
        return layer;
    }
    function init() {
        map = window[config.names.map];
        areas = withZoomOffset(window[config.names.areas]);
        outlines = config.names.outlines ? withZoomOffset(window[config.names.outlines]) : null;
        drawn = window[config.names.drawn];
        map.createPane("ps-outlines").style.zIndex = 450;
        map.createPane("ps-labels").style.zIndex = 460;
        map.getPane("ps-outlines").style.pointerEvents = "none";
        map.getPane("ps-labels").style.pointerEvents = "none";
        labels = L.layerGroup().addTo(map);
        map.attributionControl.setPrefix(false);
        map.attributionControl.addAttribution(attributionHtml());
        document.getElementById("ps-panel").innerHTML = panelHtml();
        wirePanel();
        var narrow = window.innerWidth < 700;
        if (config.bbox) {
            map.fitBounds([[config.bbox[1], config.bbox[0]], [config.bbox[3], config.bbox[2]]],
                          {paddingTopLeft: [10, 10], paddingBottomRight: [narrow ? 10 : 330, 10]});
        }
        map.on("click", onMapClick);
        map.on("draw:drawstart", function () { state.drawing = true; map.closePopup(); });
        map.on("draw:drawstop", function () { setTimeout(function () { state.drawing = false; }, 0); });
        map.on("draw:created", onDrawn);
        map.getContainer().addEventListener("keydown", function (e) {
            if (e.key === "Enter" && e.target === map.getContainer()) { onMapClick({latlng: map.getCenter()}); }
        });
        document.addEventListener("click", onAction);
        document.addEventListener("submit", function (e) {
            if (e.target.dataset.psForm === "save") { e.preventDefault(); saveLocal(e.target); }
        });
        window.addEventListener("beforeprint", function () {
            document.querySelectorAll(".ps-sources").forEach(function (d) { d.open = true; });
        });
        window.addEventListener("afterprint", function () { document.body.classList.remove("ps-printing"); });
        window.placespend.ready = firstValues.then(function (view) {
            applyValues(view);
            areas.once("load", function () {
                rendered();
                // Borough outlines and names once the colours are drawn: they wait their turn.
                if (outlines) { outlines.addTo(map); }
                map.on("moveend", updateLabels);
                updateLabels();
            });
            areas.on("load", function () { // each full drawing, counted (tests wait for it)
                var html = document.documentElement;
                html.dataset.psDrawn = String(Number(html.dataset.psDrawn || 0) + 1);
            });
            areas.addTo(map);
            state.added = true;
            return view;
        }).catch(function (e) { status(e.message); });
    }
    function onAction(e) {
        var t = e.target.closest("[data-ps-action]");
        if (!t) { return; }
        var action = t.dataset.psAction;
        if (action === "close") { closeSheet(); }
        else if (action === "draw") { new L.Draw.Polygon(map, {allowIntersection: false, showArea: false}).enable(); }
        else if (action === "upload") { document.getElementById("ps-upload").click(); }
        else if (action === "flows-all") {
            getJSON(flowsUrl(null)).then(function (doc) { showFlows(doc, config.place || state.layer.title); })
                .catch(function (err) { status(err.message); });
        }
        else if (action === "flows-area" && state.selected) { flowsOfArea(state.selected.code, state.selected.name); }
        else if (action === "flows-drawn" && state.budget) {
            if (state.budget.flows) { showFlows(Object.assign({name: state.budget.name}, state.budget.flows), state.budget.name); }
            else { status("This answer has no flows."); }
        }
        else if (action === "compare-area" && state.selected) { compare(state.selected); }
        else if (action === "compare-drawn" && state.budget) { compare(state.budget); }
        else if (action === "compare-year") { compareYear(); }
        else if (action === "print") { document.body.classList.add("ps-printing"); window.print(); }
        else if (action === "png") { savePng(); }
        else if (action === "credits") {
            showCredits(!map.attributionControl.getContainer().classList.contains("ps-attr-open"));
        }
        else if (action === "save-server") { saveServer(t.closest("form")); }
        else if (action === "open-saved") {
            var s = savedList()[Number(t.dataset.psIndex)];
            if (s) {
                drawn.clearLayers();
                var shape = L.geoJSON(s.geojson, {style: {color: "#3388ff", weight: 3}});
                drawn.addLayer(shape);
                map.fitBounds(shape.getBounds(), {paddingBottomRight: [320, 0]});
                budgetOf(s.geojson, s.name).catch(function () {});
            }
        }
    }

    window.placespend = {config: config, state: state, budgetOf: budgetOf, openArea: openArea,
                         colourOf: function (code) { return state.colours[code]; }};
    document.addEventListener("DOMContentLoaded", init);
})();
