"""Layers written to files for download: GeoPackage, through pyogrio."""

from __future__ import annotations

import io
import json
from typing import Any

import geopandas as gpd
import pyogrio


def geopackage(features_json: str, *, layer: str, columns: list[str], description: str,
               metadata: dict[str, str]) -> bytes:
    """A GeoPackage of GeoJSON features in British National Grid (EPSG:27700).

    ``features_json`` is a JSON array of Features whose coordinates are already in 27700;
    ``columns`` is the property order; ``description`` becomes the layer's DESCRIPTION and
    ``metadata`` (attribution, run, licence...) the dataset's metadata, which QGIS shows in
    the layer properties and ``ogrinfo`` prints.
    """
    features: list[dict[str, Any]] = json.loads(features_json)
    frame = gpd.GeoDataFrame.from_features(features, crs=27700)
    if frame.empty:
        frame = gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=27700)
    frame = frame[[c for c in columns if c in frame.columns] + ["geometry"]]
    out = io.BytesIO()
    pyogrio.write_dataframe(
        frame, out, driver="GPKG", layer=layer, promote_to_multi=True,
        layer_options={"DESCRIPTION": description, "IDENTIFIER": layer},
        dataset_metadata=metadata,
    )
    return out.getvalue()
