"""Which format a client gets (``f=`` first, then ``Accept``), and the HTML views.

GeoJSON is the default: a client that sends ``Accept: application/geo+json``,
``application/json``, ``*/*`` or nothing gets it. Only a client that prefers ``text/html`` (a
browser) gets the HTML page, and every negotiated response says ``Vary: Accept``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import Request

from domain.errors import BadRequest

#: Media types that ask for each format, most specific first.
_ACCEPTS = {
    "json": ("application/geo+json", "application/json"),
    "html": ("text/html",),
    "csv": ("text/csv",),
}
_ALIASES = {"geojson": "json", "json": "json", "html": "html", "csv": "csv"}
VARY = {"Vary": "Accept"}


def _accept(header: str) -> list[tuple[str, float]]:
    out = []
    for part in header.split(","):
        kind, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if kind:
            out.append((kind.strip().lower(), q))
    return out


def choose(request: Request, f: str | None, offered: tuple[str, ...]) -> str:
    """The format to answer in: ``f`` when given (400 if not offered), else by ``Accept``."""
    if f is not None:
        fmt = _ALIASES.get(f.strip().lower())
        if fmt not in offered:
            raise BadRequest(f"format f={f!r} is not offered here",
                             f"omit f, or use f={' or f='.join(offered)}", where="f")
        return fmt
    best, best_q = offered[0], 0.0
    for kind, q in _accept(request.headers.get("accept", "")):
        for fmt in offered:
            if kind in _ACCEPTS[fmt] and q > best_q:
                best, best_q = fmt, q
        if kind in ("*/*", "application/*") and q > best_q:
            best, best_q = offered[0], q
    return best


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def page(title: str, body: str) -> str:
    """A small self-contained HTML page (no scripts, no remote assets)."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(title)}</title><style>body{{font:14px system-ui,sans-serif;margin:1.5em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
        "text-align:right}td:first-child,th:first-child,td:nth-child(2){text-align:left}"
        "</style></head>"
        f"<body><h1>{_e(title)}</h1>{body}</body></html>"
    )


def links_html(links: list[dict[str, str]]) -> str:
    """The links of a document as a list."""
    return "<ul>" + "".join(
        f'<li><a href="{_e(lk["href"])}">{_e(lk["title"])}</a> ({_e(lk["rel"])}, '
        f'{_e(lk["type"])})</li>' for lk in links) + "</ul>"


def items_html(title: str, head: dict[str, Any], features_json: str,
               columns: list[str]) -> str:
    """A page of features as an HTML table of their first properties."""
    feats = json.loads(features_json)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(f['properties'].get(c))}</td>" for c in columns) + "</tr>"
        for f in feats
    )
    table = ("<table><tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>"
             + rows + "</table>")
    counts = (f"<p>{head['numberReturned']} of {head['numberMatched']} features"
              + (f", run {head['run']}" if head.get("run") is not None else "") + ".</p>")
    return page(title, counts + links_html(head["links"]) + table)


def document_html(title: str, doc: dict[str, Any]) -> str:
    """Any JSON document (landing page, collection) as its links and its JSON."""
    return page(title, links_html(doc.get("links", []))
                + f"<pre>{_e(json.dumps(doc, indent=2, default=str))}</pre>")
