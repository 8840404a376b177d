"""Whole layers as files: GeoJSON, CSV and GeoPackage, each saying where its figures came from.

Every download carries the run it was made from (for publications) and the attribution of
every source its figures rest on (the boundaries, each spend dataset, each population dataset),
so a file passed on keeps its provenance:

- GeoJSON: top-level ``run``, ``sources`` and ``attribution`` members beside the features;
- CSV: one row per unit, every property in the layer's order, then ``run`` and
  ``attribution`` columns (the same on every row); no geometry, as a ward's outline would
  overflow a spreadsheet cell (join on ``code``, or take the GeoPackage);
- GeoPackage: British National Grid, the layer's DESCRIPTION, and dataset metadata
  ``attribution``, ``run``, ``licence`` and ``sources`` (JSON).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from geo.export import geopackage
from store import features as store
from store.db import Connection

FORMATS = ("geojson", "csv", "gpkg")
MEDIA = {"geojson": "application/geo+json", "csv": "text/csv; charset=utf-8",
         "gpkg": "application/geopackage+sqlite3"}


@dataclass(frozen=True)
class Download:
    """One file: its bytes, media type and the file name to save it as."""

    body: bytes
    media_type: str
    filename: str


def attribution_text(sources: list[dict[str, str]]) -> str:
    """All sources in one line: ``Boundaries: ... (licence) | Spend: ... | Population: ...``."""
    label = {"boundaries": "Boundaries", "spend": "Spend", "population": "Population"}
    return " | ".join(
        f"{label.get(s['role'], s['role'])}: {' '.join(s['attribution'].split())}"
        + (f" ({s['licence']})" if s.get("licence") else "")
        for s in sources
    )


def csv_text(layer: store.Layer, features: list[dict[str, Any]],
             sources: list[dict[str, str]]) -> str:
    """Features as CSV: the layer's properties in order, then ``run`` and ``attribution``."""
    names = [p["name"] for p in layer.properties]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*names, "run", "attribution"])
    credit = attribution_text(sources)
    for f in features:
        props = f["properties"]
        writer.writerow([_cell(props.get(n)) for n in names]
                        + [layer.run_id if layer.run_id is not None else "", credit])
    return out.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def make(conn: Connection, layer: store.Layer, fmt: str, *, srid: int = 4326,
         lat_first: bool = False, crs_member: dict | None = None) -> Download:
    """``layer`` whole as ``fmt`` (geojson in ``srid``; csv has no geometry; gpkg is 27700).

    ``crs_member``: the GeoJSON ``crs`` member naming ``srid`` when it is not CRS84.
    """
    sources = store.sources(conn, layer)
    count = store.summary(conn, layer)["features"]
    if fmt == "gpkg":
        srid, lat_first = 27700, False
    page = store.items(conn, layer, limit=max(count, 1), srid=srid, lat_first=lat_first,
                       with_geometry=fmt != "csv")
    if fmt == "csv":
        body = csv_text(layer, json.loads(page.features_json), sources).encode()
    elif fmt == "gpkg":
        body = geopackage(
            page.features_json, layer=layer.id, columns=[p["name"] for p in layer.properties],
            description=f"{layer.title}. {layer.description}",
            metadata={"attribution": attribution_text(sources), "licence": layer.licence,
                      "run": "" if layer.run_id is None else str(layer.run_id),
                      "sources": json.dumps(sources)},
        )
    else:
        head = {"type": "FeatureCollection", "name": layer.id, "title": layer.title,
                "run": layer.run_id, "attribution": attribution_text(sources),
                "sources": sources}
        if crs_member:
            head["crs"] = crs_member
        text = json.dumps(head)
        body = f'{text[:-1]}, "features": {page.features_json}}}'.encode()
    return Download(body, MEDIA[fmt], filename(layer, fmt))


def filename(layer: store.Layer, fmt: str) -> str:
    """The name to save a download as: the layer, its run, the format."""
    return layer.id + (f"-run-{layer.run_id}" if layer.run_id is not None else "") + f".{fmt}"
