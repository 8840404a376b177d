"""What the web map shows: one measure of a publication, classified for a choropleth.

The map page (``api/routers/map_page.py``) draws each area's outline from the vector tiles of
the layer's boundary set and colours it by a *measure*: all public spending, one body's, one
function's (COFOG division), or one body's on one function, as a total or per head. This
module works the measure out for every area, in the figures the run published, and the round
class edges the legend shows, so the browser only looks colours up:

- a body's or a function's figure is the feature's ``body_<slug>`` or ``cofog_<XX>``
  property; one body on one function is summed from the run's target allocation in pence
  (features carry only the totals of each);
- per head is the published ``per_head`` for all spending, and a part divided by the
  feature's ``population`` for a body or a function (as the popup does); an area with no
  residents has no per-head figure and is drawn as *no data*;
- classes are equal steps of a round amount (1, 2, 2.5 or 5 x 10^k), at most seven, or
  (``quantiles``) five classes with about as many areas in each, edges rounded to three
  significant figures; coloured with ColorBrewer's YlOrRd, a sequential palette ColorBrewer
  marks as safe for colour-blind readers (pale yellow low, dark red high).

Worked example (Hackney's 21 wards, 2014-15, all spending per head): the figures run from
£8,560 (Dalston) to £10,876 (Stamford Hill West); steps of £500 give five classes from £8,500
to £11,000, and the legend counts the wards in each.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from branca.colormap import linear

from domain.errors import BadRequest
from placespend.downloads import attribution_text
from store import features, reference
from store.db import Connection

#: Fill for areas with no figure (no residents, for a per-head measure).
NO_DATA_COLOUR = "#bdbdbd"
#: Classes a legend has at most.
MAX_CLASSES = 7
#: A penny, in pounds: figures closer than this are the same figure.
PENNY = 0.01


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


def _pennies(lo: float, hi: float) -> tuple[float, float]:
    """The lowest and highest figure widened to whole pence (the edges are whole pence)."""
    return math.floor(round(lo * 100, 6)) / 100, math.ceil(round(hi * 100, 6)) / 100


def class_edges(values: Sequence[float], max_classes: int = MAX_CLASSES) -> list[float]:
    """Round class edges (steps of 1, 2, 2.5 or 5 x 10^k pounds) giving at most ``max_classes``.

    Equal, round steps read at a glance ("£2,000 to £2,250") and keep an area's colour
    proportional to its figure, even when the values bunch (600 London wards within £3 of
    each other when only one borough's council spend is loaded). A step is whole pence:
    figures less than a penny apart are one class.
    """
    lo, hi = _pennies(min(values), max(values))
    if hi - lo < PENNY:  # one class
        return [lo, lo + 1]
    magnitude = max(PENNY, 10 ** math.floor(math.log10((hi - lo) / max_classes)))
    for factor in (1, 2, 2.5, 5, 10, 20, 25, 50):
        step = factor * magnitude
        if abs(step / PENNY - round(step / PENNY)) > 1e-6:  # 2.5p: not whole pence
            continue
        start, end = math.floor(lo / step) * step, math.ceil(hi / step) * step
        if end <= hi:  # the maximum would start a class of its own
            end += step
        n = round((end - start) / step)
        if n <= max_classes:
            return [round(start + i * step, 2) for i in range(n + 1)]
    raise AssertionError("unreachable: a step of 50 x magnitude always fits")


def quantile_edges(values: Sequence[float], classes: int = 5) -> list[float]:
    """Edges giving about as many areas in each class, rounded (see below).

    Each edge is rounded to three significant figures of the spread between the first and
    last inner edge (and to whole pence). For skewed figures (London per head, where one City
    of London ward is far above the rest) equal steps put nearly every ward in one class;
    equal counts show the differences.
    """
    ordered = sorted(values)
    lo, hi = _pennies(ordered[0], ordered[-1])
    if hi - lo < PENNY:
        return [lo, lo + 1]
    cuts = [ordered[min(len(ordered) - 1, round(k * len(ordered) / classes))]
            for k in range(1, classes)]
    spread = cuts[-1] - cuts[0]
    if spread < PENNY:  # the bulk is one figure: round to the whole range's scale
        spread = hi - lo
    unit = max(PENNY, 10 ** (math.floor(math.log10(spread)) - 2))
    edges = [math.floor(lo / unit) * unit, *(round(c / unit) * unit for c in cuts),
             math.ceil(hi / unit) * unit]
    if edges[-1] <= hi:
        edges[-1] += unit
    out: list[float] = []
    for e in edges:  # rounding can make two edges one; a class needs two distinct edges
        e = round(e, 2)
        if not out or e > out[-1]:
            out.append(e)
    if out[-1] < hi:  # the top edge holds the maximum
        out.append(round(out[-1] + unit, 2))
    return out


SCHEMES = ("steps", "quantiles")


def classify(values: Sequence[float], max_classes: int = MAX_CLASSES,
             scheme: str = "steps") -> Classes:
    """Classes over ``values`` coloured with ColorBrewer YlOrRd (yellow low, red high).

    ``scheme``: ``steps`` (equal round steps) or ``quantiles`` (about equal counts).
    """
    edges = (quantile_edges(values, min(5, max_classes)) if scheme == "quantiles"
             else class_edges(values, max_classes))
    n = len(edges) - 1
    palette = getattr(linear, f"YlOrRd_{max(n, 3):02d}").colors
    hexes = ["#" + "".join(f"{round(c * 255):02x}" for c in rgba[:3]) for rgba in palette]
    if n < 3:
        hexes = [hexes[1]] if n == 1 else [hexes[0], hexes[2]]
    return Classes(edges, hexes)


#: The ten COFOG divisions a measure may name.
DIVISIONS = tuple(f"{i:02d}" for i in range(1, 11))


@dataclass(frozen=True)
class Measure:
    """What the map colours by: a body (slug) or all, a division ("07") or all, per head."""

    body: str | None = None
    function: str | None = None
    per_head: bool = True
    scheme: str = "steps"


def measure(layer: features.Layer, body: str | None, function: str | None,
            per: str | None, scheme: str | None = None) -> Measure:
    """The measure asked for, checked against what the layer publishes (BadRequest if not)."""
    names = {p["name"] for p in layer.properties}
    if body and f"body_{body}" not in names:
        known = sorted(n[5:] for n in names if n.startswith("body_"))
        raise BadRequest(f"{layer.id} has no figures for body {body!r}",
                         f"use one of: {', '.join(known)} (or leave body out for all bodies)",
                         where="body")
    if function and function not in DIVISIONS:  # a division the layer lacks is £0 everywhere
        raise BadRequest(f"{function!r} is not a COFOG division",
                         "use 01 to 10 (e.g. function=09 for education), or leave function "
                         "out for all spending", where="function")
    if per not in (None, "", "head", "total"):
        raise BadRequest(f"per={per!r} is not a measure", "use per=head or per=total",
                         where="per")
    if scheme not in (None, "", *SCHEMES):
        raise BadRequest(f"classes={scheme!r} is not a classification",
                         "use classes=steps (equal round steps) or classes=quantiles "
                         "(about as many areas in each class)", where="classes")
    return Measure(body or None, function or None, per in (None, "", "head"),
                   scheme or "steps")


def _figures(conn: Connection, layer: features.Layer, m: Measure) -> dict[str, list]:
    """code, name, population and the measure's figure (pounds) for every area."""
    if m.body and m.function:
        cols = features.columns(conn, layer, ["name", "population"])
        pence = features.body_function_pence(conn, layer, m.body, m.function)
        cols["figure"] = [pence.get(code, 0) / 100 for code in cols["code"]]
        return cols
    prop = (f"body_{m.body}" if m.body else f"cofog_{m.function}" if m.function else "total")
    cols = features.columns(conn, layer, ["name", "population", "per_head", prop])
    cols["figure"] = [v or 0.0 for v in cols.pop(prop)]
    if prop != "total":  # a part's per head is worked out as the popup does: part / residents
        cols.pop("per_head")
    return cols


def _label(conn: Connection, m: Measure) -> str:
    """``Education (COFOG 09) from Hackney, £ per head``."""
    what = "All public spending"
    if m.function:
        what = f"{reference.cofog_divisions(conn).get(m.function, 'COFOG ' + m.function)}" \
               f" (COFOG {m.function})"
    if m.body:
        name = reference.bodies(conn).get(m.body, {}).get("name", m.body)
        what = f"{what} by {name}" if m.function else f"All spending by {name}"
    return f"{what}, {'£ per head' if m.per_head else '£ in total'}"


def choropleth(conn: Connection, layer: features.Layer, m: Measure) -> dict:
    """Every area's value for ``m`` (pounds, or pounds a head) with the legend's classes.

    ``values[i]`` belongs to ``codes[i]``; None is *no data* (no residents, per head).
    ``classes``: ``edges`` (ascending, one more than ``colours``), ``colours`` and ``counts``
    (areas in each class), ``no_data`` (areas with no value) and its colour.
    """
    cols = _figures(conn, layer, m)
    values: list[float | None] = []
    published = cols.get("per_head")  # all spending: the per-head figure the run published
    for i, (figure, people) in enumerate(zip(cols["figure"], cols["population"], strict=True)):
        if m.per_head and published is not None:
            values.append(published[i])
        elif m.per_head:
            values.append(round(figure / people, 2) if people and people > 0 else None)
        else:
            values.append(round(figure, 2))
    known = [v for v in values if v is not None]
    classes = classify(known or [0.0], scheme=m.scheme)
    counts = [0] * len(classes.colours)
    for v in known:
        counts[classes.index(v)] += 1
    return {
        "collection": layer.id, "run": layer.run_id, "financial_year": layer.financial_year,
        "measure": {"body": m.body, "function": m.function,
                    "per": "head" if m.per_head else "total", "classes": m.scheme},
        "label": _label(conn, m), "unit": "£ per head" if m.per_head else "£",
        "codes": cols["code"], "names": cols["name"], "values": values,
        "total": round(sum(cols["figure"]), 2),
        "population": round(sum(p or 0 for p in cols["population"]), 1),
        "classes": {"edges": classes.edges, "colours": classes.colours, "counts": counts,
                    "no_data": len(values) - len(known), "no_data_colour": NO_DATA_COLOUR},
    }


def choropleth_csv(conn: Connection, layer: features.Layer, m: Measure) -> str:
    """The current view as CSV: code, name, the value, its class; run and attribution columns."""
    view = choropleth(conn, layer, m)
    classes = Classes(view["classes"]["edges"], view["classes"]["colours"])
    credit = attribution_text(features.sources(conn, layer))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "name", view["label"], "class_from", "class_to", "collection",
                     "run", "financial_year", "attribution"])
    for code, name, value in zip(view["codes"], view["names"], view["values"], strict=True):
        if value is None:
            lo = hi = ""
        else:
            i = classes.index(value)
            lo, hi = classes.edges[i], classes.edges[i + 1]
        writer.writerow([code, name, "" if value is None else f"{value:.2f}", lo, hi,
                         layer.id, layer.run_id, layer.financial_year, credit])
    return out.getvalue()


def siblings(conn: Connection, layer: features.Layer) -> list[dict]:
    """The publications a map can switch to without new outlines: same boundary set.

    Each with its id, run, financial year, basis and fit, in year order (the years the
    *year* selector offers are those with the layer's basis and fit).
    """
    return sorted(
        ({"id": p.id, "run": p.run_id, "financial_year": p.financial_year, "basis": p.basis,
          "fit": p.fit, "title": p.title}
         for p in features.publications_of_set(conn, layer.set_id)),
        key=lambda p: (p["financial_year"] or "", p["basis"] or "", p["fit"], p["id"]),
    )
