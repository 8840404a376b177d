"""The only package that talks to PostgreSQL/PostGIS.

- ``cluster``: a project-local PostgreSQL 15 + PostGIS cluster (start, stop, create databases).
- ``db``: connections and the pool; ``migrate``: applies ``migrations/*.sql`` once each.
- ``boundaries``, ``reference``, ``spend``, ``atoms``, ``runs``: reads and writes per concern
  (bulk writes use COPY; a run is written in one transaction).
- ``features``: GeoJSON built by PostGIS for the OGC API.
"""
