"""Routers: ``features`` (OGC API Features), ``runs`` (runs and conservation), ``map_page``."""
