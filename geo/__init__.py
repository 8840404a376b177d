"""Geometry: everything that needs shapely, pyproj or geopandas.

- ``prepare``: CRS normalisation to British National Grid (EPSG:27700), validity repair,
  code checks, dissolving wards into boroughs.
- ``atoms``: small areas cut by a target geography (the units the core allocates to).
- ``crosswalk``: the share of each atom inside each unit of another boundary set.
"""
