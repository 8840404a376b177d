"""Settings, read from the environment when the app or CLI starts (never at import time)."""

from __future__ import annotations

from typing import Literal

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
    # ---- trust: the API's database role and time limits (issue 10) ------------------------
    api_database_url: str | None = Field(
        default=None,
        description="the connection string the API uses; unset: DATABASE_URL's server and "
        "database as the role placespend_api (granted by `placespend db migrate`), which can "
        "read everything and write only what the endpoints write",
    )
    api_db_password: str | None = Field(
        default=None,
        description="the password `placespend db migrate` gives the role placespend_api and "
        "the API connects with (the project-local cluster trusts loopback and needs none)",
    )
    statement_timeout_ms: int = Field(
        default=30_000,
        description="longest any one database statement of a read request may take, in ms; "
        "past it the request gets 503 (0: no limit)",
    )
    write_timeout_ms: int = Field(
        default=600_000,
        description="longest one statement of a write request (upload, run, publish) may "
        "take, in ms (0: no limit)",
    )
    # ---- limits and operations (api/limits.py, api/observe.py) ----------------------------
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024,
        description="largest request body, in bytes, on every address but the uploads; a "
        "larger one is refused with 413 (counted as it streams, so a chunked body without "
        "Content-Length is refused too)",
    )
    max_upload_bytes: int = Field(
        default=200 * 1024 * 1024,
        description="largest request body, in bytes, on /uploads/... (the multipart form "
        "with its file); a larger one is refused with 413",
    )
    write_rate_per_minute: int = Field(
        default=120,
        description="writes (POST, PUT, PATCH, DELETE, except POST /neighbourhoods/budget) "
        "one client may make a minute, with a burst of as many at once; past it 429 with "
        "Retry-After. A client is its API key (Authorization: Bearer or X-API-Key), else "
        "its IP address; 0: unlimited",
    )
    read_rate_per_minute: int = Field(
        default=0,
        description="reads (GET, HEAD) one client may make a minute, with a burst of as "
        "many; past it 429 with Retry-After; 0 (the default): unlimited",
    )
    budget_rate_per_minute: int = Field(
        default=600,
        description="POST /neighbourhoods/budget requests (a read, but a costly one) one "
        "client may make a minute, with a burst of as many; past it 429 with Retry-After; "
        "0: unlimited",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="how `placespend serve` writes its log lines: json (one JSON object a "
        "line, the access log included) or text",
    )
    shutdown_grace_seconds: int = Field(
        default=30,
        description="on SIGTERM or Ctrl-C, how long `placespend serve` lets requests in "
        "flight finish (new connections refused) before it closes them",
    )
    max_offset: int = Field(
        default=1_000_000,
        description="largest offset /items pages to; a larger one is refused with 400 "
        "(narrow the request with bbox, or take the whole layer from /download)",
    )
