// The map page's popup (api/routers/map_page.py), served at /static/placespend/.
// Builds a popup from a feature's flat properties.
// Labels (divisions, bodies, methods, confidence, foot) from the page's JSON script element.
var placespendLabels = JSON.parse(document.getElementById("placespend-labels").textContent);
function placespendEscape(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
        return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
}
function placespendPopup(p) {
    var gbp = new Intl.NumberFormat("en-GB", {style: "currency", currency: "GBP",
                                              maximumFractionDigits: 0});
    var gbp2 = new Intl.NumberFormat("en-GB", {style: "currency", currency: "GBP",
                                               minimumFractionDigits: 2});
    var int = new Intl.NumberFormat("en-GB");
    var L_ = placespendLabels, e = placespendEscape, people = p.population;
    function perHead(v) { return people > 0 ? gbp.format(v / people) : "–"; }
    function section(title, rows) {
        if (!rows.length) { return ""; }
        return "<h4>" + e(title) + "</h4><table><tr class='ps-hd'><td></td>" +
            "<td class='ps-num'>total</td><td class='ps-num'>per head</td></tr>" +
            rows.join("") + "</table>";
    }
    function row(label, v) {
        return "<tr><td>" + e(label) + ":</td><td class='ps-num'>" + gbp.format(v) +
            "</td><td class='ps-num'>" + perHead(v) + "</td></tr>";
    }
    var keys = Object.keys(p), divisions = [], bodies = [], shares = [];
    keys.forEach(function (k) {
        var m;
        if ((m = /^cofog_(\d\d)$/.exec(k)) && p[k] !== 0 && p[k] !== null) {
            divisions.push(row(m[1] + " " + (L_.divisions[m[1]] || "COFOG " + m[1]), p[k]));
        } else if ((m = /^body_(.+)$/.exec(k)) && p[k] !== null && p[k] !== 0) {
            bodies.push([m[1], p[k]]);
        }
    });
    // Largest body first; "other public bodies" (the rest, summed) last.
    bodies.sort(function (a, b) {
        return (a[0] === "other_public_bodies") - (b[0] === "other_public_bodies") ||
            Math.abs(b[1]) - Math.abs(a[1]);
    });
    bodies = bodies.map(function (b) { return row(L_.bodies[b[0]] || b[0], b[1]); });
    // Methods in the order of the labels (strongest evidence first), then any others.
    var methods = Object.keys(L_.methods);
    keys.forEach(function (k) {
        var m = /^share_(.+)$/.exec(k);
        if (m && methods.indexOf(m[1]) < 0) { methods.push(m[1]); }
    });
    methods.forEach(function (m) {
        var v = p["share_" + m];
        if (v === undefined || v === null || v === 0) { return; }
        shares.push("<tr><td>" + e(L_.methods[m] || m) + ":</td><td class='ps-num'>" +
            (100 * v).toFixed(1) + "%</td></tr>");
    });
    return "<div class='ps-popup'><h3>" + e(p.name) + "</h3>" +
        "<p class='ps-meta'>" + e(p.code) + " · population " +
        (people === null ? "–" : int.format(people)) + "</p>" +
        "<p class='ps-head'><b>" + (p.per_head === null ? "no per-head figure" :
            gbp2.format(p.per_head) + " per head") + "</b> · " + gbp.format(p.total) +
        " in total</p>" +
        (p.range_low !== undefined && p.range_low !== p.range_high ?
            "<p class='ps-meta'>" + gbp.format(p.range_low) + " to " +
            gbp.format(p.range_high) + " by residents, land area, best fit or an " +
            "alternative proxy</p>" : "") +
        section("By function (COFOG division)", divisions) +
        section("By public body", bodies) +
        (shares.length ? "<h4>How it was apportioned</h4><table>" + shares.join("") +
            "</table>" : "") +
        (p.confidence ? "<p class='ps-conf'>Confidence " +
            e(L_.confidence[p.confidence] || p.confidence) + "</p>" : "") +
        "<p class='ps-foot'>" + e(L_.foot) + "</p></div>";
}

// Each ward: its name as a tooltip, its popup, and an outline on hover and while open.
function placespendOnEachFeature(feature, layer) {
    // Hover and the open popup outline the ward; the style it had comes back after.
    var base = null;
    function outline() {
        if (!base) {
            base = {color: layer.options.color, weight: layer.options.weight,
                    fillOpacity: layer.options.fillOpacity};
        }
        layer.setStyle({color: "#111111", weight: 3, fillOpacity: 0.95});
        layer.bringToFront();
    }
    function restore() { if (base) { layer.setStyle(base); } }
    layer.bindTooltip(placespendEscape(feature.properties.name), {sticky: true});
    layer.bindPopup(function () { return placespendPopup(feature.properties); },
                    {maxWidth: 380, minWidth: 300});
    layer.on({
        mouseover: outline,
        mouseout: function () { if (!layer.isPopupOpen()) { restore(); } },
        popupopen: outline,
        popupclose: restore,
    });
}
