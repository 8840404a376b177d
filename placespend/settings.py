"""Settings, read from the environment when the app or CLI starts (never at import time)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the database is and how the service is served.

    ``DATABASE_URL`` points at an existing PostGIS; without it the project-local cluster is
    started (``store.cluster``).
    """

    model_config = SettingsConfigDict(env_prefix="PLACESPEND_", extra="ignore")

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    host: str = "127.0.0.1"
    port: int = 8000
    max_items: int = Field(default=10_000, description="largest page /items will serve")
    max_tile_features: int = Field(
        default=20_000, description="most features one vector tile holds (the rest dropped)"
    )
    cache_mb: int = Field(
        default=256,
        description="memory for answers already made that can never change (tiles, pages of "
        "features, downloads of a run's publication); 0: make every answer afresh",
    )
    web_modules: str | None = Field(
        default=None,
        description="the folder holding the map's browser libraries (npm ci in web/); "
        "unset: web/node_modules beside the code, where bin/setup puts them",
    )
    basemap_url: str | None = Field(
        default=None,
        description="an XYZ tile address ({z}/{x}/{y}) the map draws under the areas, for "
        "deployments that have a basemap; unset, the map needs nothing from outside",
    )
    basemap_attribution: str = Field(
        default="", description="the credit the basemap's licence asks for, shown on the map"
    )
    dask_scheduler: str | None = Field(
        default=None,
        description=(
            "dask.distributed scheduler to build atoms and apportion on: an address such as "
            "tcp://host:8786, or 'local' for two worker processes on this machine; unset, "
            "everything runs in this process"
        ),
    )
