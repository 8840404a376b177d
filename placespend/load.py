"""Load what users bring: one code path for every kind of file.

Boundary sets, proxies, function maps, spend, transfers, postcodes and sites (``LOADERS``).

The CLI (``placespend load KIND FILE``), the HTTP upload endpoints and the embedded default
data (:func:`load_embedded`) all call the ``load_*`` functions here. Each one:

1. hashes the file's bytes with the options that change its meaning: the same file twice is
   found, nothing new is made, and the answer says so (``created: false``);
2. reads the file with :mod:`intake` (safe opening, strict values), normalises geometry with
   :mod:`geo`, and checks it against what is loaded (codes in their set, known bodies...);
3. refuses the whole file with every row or feature at fault
   (:class:`~domain.errors.Rejected`), or stores the batch and its rows in one transaction,
   under a lock per kind, so a failure or a concurrent upload stores nothing twice.

A boundary set, proxy or site set loaded again with changed content is a new version; a spend
file for a body, year and dataset already loaded supersedes the earlier batch for the body-years
whose lines changed, for the next run (the earlier batch and the runs made on it stay as they
were).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_origin

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pyproj import CRS

from boundaries import catalog
from domain.access import OPERATOR, Grant
from domain.errors import BadRequest, InputError, Problem, Rejected
from domain.money import format_pounds
from geo.prepare import Prepared, dissolve, prepare_boundaries
from geo.tiling import check_tiling
from intake import files
from intake.postcodes import (
    PostcodeFields,
    normalise_postcodes,
    project_points,
    read_postcode_file,
)
from intake.reference import read_cofog
from intake.sites import SiteFields, read_site_file
from intake.spend import SpendOptions, read_spend
from intake.tables import read_rows
from intake.transfers import read_transfers
from intake.values import BadValue, parse_cofog
from placespend.progress import Step, quiet
from store import boundaries as store_boundaries
from store import reference, registry, spend
from store import sites as store_sites
from store import transfers as store_transfers
from store.db import Connection

BoundaryKind = Literal["ward", "lsoa", "oa", "msoa", "small_area", "borough", "region",
                       "constituency", "agency_area", "neighbourhood", "other"]
SLUG = r"^[a-z0-9][a-z0-9-]*$"
BNG_CRS = CRS.from_epsg(27700)
WGS84 = CRS.from_epsg(4326)
#: A proxy value: a plain non-negative decimal (no separators, no exponent).
_COUNT = re.compile(r"^\d+(\.\d+)?$")


@dataclass(frozen=True)
class Upload:
    """A file to load: where it is on this machine, and the name its owner gave it.

    Messages only ever use ``name``: an uploaded file lives in a temporary folder whose path
    means nothing to its owner (and should not be shown to them).
    """

    path: Path
    name: str


@dataclass
class Loaded:
    """What a load stored (or found already stored)."""

    kind: str
    batch_id: int
    created: bool
    summary: str
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Render for a JSON answer."""
        return {"kind": self.kind, "batch": self.batch_id, "created": self.created,
                "summary": self.summary, **self.details}


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def identity(self) -> str:
        """The options as canonical JSON, hashed with the file's bytes."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


class BoundaryOptions(_Options):
    """How to read and register a boundary file."""

    slug: str = Field(pattern=SLUG, max_length=80, description="the set's name in URLs")
    name: str | None = Field(None, description="a title (default: the slug)")
    kind: BoundaryKind = "other"
    vintage: str = Field("", max_length=40, description="e.g. 2014-05")
    source: str | None = Field(None, description="where the file came from")
    licence: str = Field("not stated", description="e.g. Open Government Licence v3.0")
    attribution: str = Field("", description="the attribution the licence asks for")
    layer: str | None = Field(None, description="GeoPackage layer")
    code_field: str | None = Field(None, description="field holding unit codes (else guessed)")
    name_field: str | None = Field(None, description="field holding unit names (guessed)")
    parent_field: str | None = Field(None, description="field holding the enclosing unit's code")
    dissolve_by: str | None = Field(None, description="union the features by this field")
    dissolve_name_field: str | None = None
    dissolve_code: str | None = Field(None, description="union all features into one, this code")
    dissolve_name: str | None = None


class ProxyOptions(_Options):
    """How to read a proxy (a small-area indicator) keyed by unit code."""

    slug: str = Field(pattern=SLUG, max_length=80)
    name: str | None = None
    unit_set: str = Field(description="the boundary set whose codes the file carries")
    year: int = Field(ge=1900, le=2100)
    code_field: str | None = None
    value_field: str = Field(description="the field holding each unit's value")
    also_add: tuple[str, ...] = Field((), description="further fields added to value_field "
                                      "(e.g. Persons_30-44 and Persons_45-64 to Persons_16-29)")
    measure: str = Field("residents", description="residents, households, pupils, patients...")
    source: str | None = None
    licence: str = "not stated"
    attribution: str = ""
    encoding: str | None = None


class FunctionMapOptions(_Options):
    """How to read a mapping of another scheme's function codes to COFOG."""

    scheme: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="e.g. rs, cipfa")
    code_field: str = "source_code"
    cofog_field: str = "cofog"
    encoding: str | None = None


class SpendLoadOptions(_Options):
    """How to read a spend file (see :mod:`intake.spend` for the two formats)."""

    format: Literal["auto", "rs", "lines"] = "auto"
    unit: Literal["pounds", "thousands", "pence"] = "pounds"
    area_sets: tuple[str, ...] = Field((), description="sets area codes are looked up in")
    #: RS: the area of a body whose rows carry no ONS code, by E-code or slug (the GLA's rows
    #: have none: E5100 -> E12000007, London).
    body_areas: dict[str, str] = Field(default_factory=dict)
    scheme: str = "cofog"
    encoding: str | None = None
    total_tolerance_pence: int = Field(1_000_000, ge=0)
    source: str | None = None
    licence: str = "not stated"
    attribution: str = ""
    #: Accept totals that look like pence typed into a pounds column (checked against the
    #: body's previous year).
    allow_jump: bool = False
    #: Lines format: our column -> the file's (``amount=2014-15``, ``function=COFOG Level 1``).
    columns: dict[str, str] = Field(default_factory=dict)
    #: Lines format: a value for every row where the file has no such column (``body=gla``).
    constants: dict[str, str] = Field(default_factory=dict)
    #: Site set whose ids a ``site_id`` column names.
    site_set: str | None = None
    #: Boundary set whose codes a ``shares`` column names (agency-supplied shares).
    share_set: str | None = None
    #: Which of a body's returns for a year the file is: a file supersedes only the same
    #: dataset's earlier file (a body's payments to GP practices never replace its RS return).
    dataset: str = Field("main", pattern=r"^[a-z0-9][a-z0-9_-]*$")


def options(model: type[BaseModel], **values: object) -> BaseModel:
    """Build load options, turning a validation error into a BadRequest naming the field."""
    try:
        return model(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        raise BadRequest(f"option {where}: {first['msg']}",
                         "see `placespend load --help` or /api for the allowed values",
                         where=where) from None


def field_shape(model: type[BaseModel], name: str) -> str:
    """How a field of load options is written as text: list, pairs, switch or value.

    A list field (``area_sets``) is given once per item; a pairs field (``columns``) once per
    ``NAME=VALUE``; a switch (``allow_jump``) is on or off; anything else is one value.
    """
    annotation = model.model_fields[name].annotation
    origin = get_origin(annotation)
    if origin is tuple:
        return "list"
    if origin is dict:
        return "pairs"
    return "switch" if annotation is bool else "value"


def options_from_text(model: type[BaseModel], given: dict[str, list[str]]) -> BaseModel:
    """Load options from text, as CLI flags and HTTP form fields give them.

    ``given``: field -> the texts given for it (a repeated flag or form field gives several).
    Unknown fields and a pair without ``=`` are a BadRequest naming them.
    """
    unknown = sorted(k for k in given if k not in model.model_fields)
    if unknown:
        raise BadRequest(f"unknown option(s) {', '.join(unknown)}",
                         f"the options are: {', '.join(model.model_fields)}",
                         where=unknown[0])
    values: dict[str, object] = {}
    for name, texts in given.items():
        if not texts:
            continue
        shape = field_shape(model, name)
        if shape == "list":
            values[name] = tuple(texts)
        elif shape == "pairs":
            pairs = [t.partition("=") for t in texts]
            if any(not sep or not key.strip() for key, sep, _ in pairs):
                raise BadRequest(f"option {name} takes NAME=VALUE pairs",
                                 "e.g. --body-area E5100=E12000007 (form field "
                                 "body_areas=E5100=E12000007)", where=name)
            values[name] = {k.strip(): v.strip() for k, _, v in pairs}
        elif shape == "switch":
            values[name] = texts[-1].strip().lower() in ("1", "true", "yes", "on")
        else:
            values[name] = texts[-1]
    return options(model, **values)


def batch_sha256(upload: Upload, opts: _Options) -> str:
    """The hash a batch of this file with these options is stored (and audited) under."""
    h = hashlib.sha256()
    with upload.path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    h.update(b"\x00" + opts.identity().encode())
    return h.hexdigest()


def _already(kind: str, batch: dict) -> Loaded:
    return Loaded(kind, int(batch["id"]), False,
                  f"{batch['filename']} was already loaded as batch {batch['id']} on "
                  f"{batch['loaded_at']:%Y-%m-%d %H:%M}: nothing new was stored",
                  dict(batch["report"]))


def _once(conn: Connection, kind: str, upload: Upload, opts: _Options, loaded_by: str,
          store: Callable[[str], Loaded], grant: Grant = OPERATOR) -> Loaded:
    """Run ``store(sha)`` in one transaction, unless the same content is already loaded.

    ``grant`` is who asks: reference data of everyone (proxies, function maps, postcodes,
    sites) needs an unscoped editor; a boundary set an editor of that place; spend and
    transfers an editor of their bodies (checked by ``store`` once the bodies are read, so a
    refusal stores nothing).
    """
    if kind == "boundaries":
        grant.need_place(opts.slug, "load boundaries")  # type: ignore[attr-defined]
    elif kind in ("spend", "transfers"):
        grant.need("editor", f"load {kind}")
    else:
        grant.need_unscoped(f"load {kind}")
    if not upload.path.is_file():
        raise InputError(f"{upload.name} does not exist (or is not a file)",
                         "check the file name and path")
    files.check_size(upload.path, files.UploadLimits(), upload.name)
    sha = batch_sha256(upload, opts)
    with conn.transaction():
        registry.lock(conn, kind)
        seen = registry.find_batch(conn, kind, sha)
        if seen is not None:
            return _already(kind, seen)
        return store(sha)


# --------------------------------------------------------------------------- boundaries

_CODE_NAME = re.compile(r"(^|_)(code|cd|gss_code|id)$|cd$", re.IGNORECASE)
_NAME_NAME = re.compile(r"(^|_)(name|nm)$|nm$", re.IGNORECASE)
_GSS = re.compile(r"^[EWSNK]\d{8}$")


def guess_fields(frame: pd.DataFrame, code_field: str | None, name_field: str | None
                 ) -> tuple[str, str, list[str]]:
    """The code and name fields (given, or guessed from names and values) and what was guessed."""
    cols = [c for c in frame.columns if c != frame.geometry.name]
    guesses: list[str] = []

    def unique_text(c: str) -> bool:
        s = frame[c].astype("string").str.strip()
        return bool(s.notna().all() and (s != "").all() and s.is_unique)

    if code_field is None:
        named = [c for c in cols if _CODE_NAME.search(str(c)) and unique_text(c)]
        gss = [c for c in cols if unique_text(c)
               and frame[c].astype(str).str.match(_GSS.pattern).all()]
        pick = (gss + named)[:1]
        if not pick:
            raise Rejected("the boundary file", [Problem(
                "file", "no field looks like a unit code (unique, never blank)",
                f"name it with --code-field; the fields are: {', '.join(map(str, cols))}",
                field="code_field")])
        code_field = str(pick[0])
        guesses.append(f"codes from field {code_field!r} (guessed: pass --code-field to choose)")
    if name_field is None:
        named = [c for c in cols if _NAME_NAME.search(str(c)) and c != code_field]
        name_field = str(named[0]) if named else code_field
        guesses.append(f"names from field {name_field!r} (guessed: pass --name-field to choose)")
    return code_field, name_field, guesses


@dataclass(frozen=True)
class BoundaryFile:
    """A boundary file read and normalised: what :func:`load_boundaries` stores."""

    frame: gpd.GeoDataFrame
    prepared: Prepared
    vector: files.Vector
    code_field: str
    name_field: str
    guesses: list[str]


def read_boundary_file(upload: Upload, opts: BoundaryOptions) -> BoundaryFile:
    """Open, check and normalise a boundary file (EPSG:27700, valid, dissolved if asked)."""
    vector = files.open_vector(upload.path, files.UploadLimits(), source=upload.name,
                               layer=opts.layer)
    raw = vector.frame
    code_field, name_field, guesses = guess_fields(raw, opts.code_field, opts.name_field)
    prepared = prepare_boundaries(raw, code_field=code_field, name_field=name_field,
                                  parent_field=opts.parent_field, source=upload.name)
    frame = prepared.frame
    if opts.dissolve_by or opts.dissolve_code:
        frame = _dissolved(raw, frame, opts, upload.name)
    return BoundaryFile(frame, prepared, vector, code_field, name_field, guesses)


def embedded_boundaries(slug: str, base: Path = catalog.DATA_DIR) -> gpd.GeoDataFrame:
    """An embedded boundary set read and normalised as a load would store it (for tests)."""
    item = next(e for e in catalog.EMBEDDED if e.kind == "boundaries"
                and e.options["slug"] == slug)
    upload = Upload(catalog.existing_file(base, item.path), item.path)
    return read_boundary_file(upload, BoundaryOptions(**item.options)).frame  # type: ignore[arg-type]


def load_boundaries(conn: Connection, upload: Upload, opts: BoundaryOptions, *,
                    loaded_by: str = "cli", step: Step = quiet,
                grant: Grant = OPERATOR) -> Loaded:
    """Load a boundary file (GeoJSON, GeoPackage, zipped Shapefile) as a new set version."""

    def store(sha: str) -> Loaded:
        with step(f"Boundaries {opts.slug}"):
            read = read_boundary_file(upload, opts)
        frame, prepared, vector = read.frame, read.prepared, read.vector
        code_field, name_field, guesses = read.code_field, read.name_field, read.guesses
        tiling = check_tiling(frame)
        overlap = float(tiling.overlaps["area_m2"].sum())
        gap = float(tiling.gaps["area_m2"].sum())
        repairs = prepared.repairs.to_dict(orient="records")
        report = {
            "set": opts.slug, "features": len(frame), "fields": {"code": code_field,
                                                                 "name": name_field},
            "guesses": guesses, "declared_crs": None if vector.declared_crs is None
            else vector.declared_crs.to_string(), "notes": list(vector.notes),
            "layer": vector.layer,
            "repairs": repairs, "tiles": tiling.tiles, "overlap_m2": round(overlap, 1),
            "gap_m2": round(gap, 1),
            "overlaps": tiling.overlaps.head(20).to_dict(orient="records"),
            "gaps": tiling.gaps.head(20).to_dict(orient="records"),
        }
        batch = registry.save_batch(conn, kind="boundaries", filename=upload.name, sha256=sha,
                                    rows=len(frame), options=opts.model_dump(mode="json"),
                                    report=report, loaded_by=loaded_by)
        meta = store_boundaries.BoundarySetMeta(
            slug=opts.slug, name=opts.name or opts.slug, kind=opts.kind, vintage=opts.vintage,
            source=opts.source or upload.name, licence=opts.licence,
            attribution=opts.attribution, content_sha256=sha, batch_id=batch,
            tiles=tiling.tiles, overlap_m2=overlap, gap_m2=gap, repairs=repairs)
        set_id = store_boundaries.save_boundary_set(conn, meta, frame)
        version = store_boundaries.get_set_by_id(conn, set_id)["version"]
        report["version"] = version
        notes = []
        if repairs:
            notes.append(f"{len(repairs)} repaired")
        if not tiling.tiles:
            notes.append(f"units overlap by {overlap:,.0f} m²: not usable for cutting atoms")
        if gap > 0:
            notes.append(f"gaps of {gap:,.0f} m² inside the set")
        summary = (f"boundary set {opts.slug} version {version}: {len(frame):,} units"
                   + (f" ({'; '.join(notes)})" if notes else ""))
        return Loaded("boundaries", batch, True, summary, report)

    return _once(conn, "boundaries", upload, opts, loaded_by, store, grant)


def _dissolved(raw: gpd.GeoDataFrame, frame: gpd.GeoDataFrame, opts: BoundaryOptions,
               source: str) -> gpd.GeoDataFrame:
    if opts.dissolve_code:
        return dissolve(frame, None, code=opts.dissolve_code,
                        name=opts.dissolve_name or opts.dissolve_code)
    fieldname = str(opts.dissolve_by)
    if fieldname not in raw.columns or (opts.dissolve_name_field
                                        and opts.dissolve_name_field not in raw.columns):
        missing = fieldname if fieldname not in raw.columns else opts.dissolve_name_field
        raise Rejected(source, [Problem("file", f"there is no field {missing!r} to dissolve by",
                                        "name one of: " + ", ".join(map(str, raw.columns)),
                                        field="dissolve_by", value=missing)])
    groups = raw[fieldname].astype("string")
    blank = groups.isna() | (groups.str.strip() == "")
    if blank.any():
        bad = [Problem(f"feature {i + 1}", f"{fieldname} is blank, so it belongs to no group",
                       "fill it in, or dissolve by another field", field=fieldname, value="",
                       feature=i + 1) for i in np.flatnonzero(blank.to_numpy())]
        raise Rejected(source, bad)
    keys = groups.str.strip().tolist()
    names = (dict(zip(keys, raw[opts.dissolve_name_field].astype(str), strict=True))
             if opts.dissolve_name_field else None)
    return dissolve(frame, keys, names=names)


# --------------------------------------------------------------------------- proxies


def load_proxy(conn: Connection, upload: Upload, opts: ProxyOptions, *,
               loaded_by: str = "cli", step: Step = quiet,
                grant: Grant = OPERATOR) -> Loaded:
    """Load a proxy CSV (one value per unit of a boundary set) as a new proxy version."""

    def store(sha: str) -> Loaded:
        unit_set = store_boundaries.get_set(conn, opts.unit_set)
        known = set(store_boundaries.unit_codes(conn, int(unit_set["id"])))
        code_field = opts.code_field or "code"
        problems: list[Problem] = []
        codes: list[str] = []
        values: list[float] = []
        seen: dict[str, int] = {}
        with step(f"Proxy {opts.slug}"):
            fields = (opts.value_field, *opts.also_add)
            for row in read_rows(upload.path, (code_field, *fields),
                                 encoding=opts.encoding, source=upload.name,
                                 problems=problems):
                code = row.values[code_field]
                where = f"row {row.line_no}"
                if not code:
                    problems.append(Problem(where, "no unit code", "give every row its code",
                                            field=code_field, value="", row=row.line_no))
                    continue
                if code in seen:
                    problems.append(Problem(where, f"code appears twice (first on row "
                                            f"{seen[code]})", "keep one row per unit",
                                            field=code_field, value=code, row=row.line_no))
                    continue
                seen[code] = row.line_no
                if code not in known:
                    problems.append(Problem(where, f"no unit {code} in {opts.unit_set}",
                                            "check the code, or name the set its codes "
                                            "belong to", field=code_field, value=code,
                                            row=row.line_no))
                    continue
                value = 0.0
                for fld in fields:
                    text = row.values[fld]
                    one = float(text) if _COUNT.match(text) else float("nan")
                    if not np.isfinite(one) or one < 0:
                        problems.append(Problem(where, "not a number of zero or more",
                                                f"put a count in {fld}", field=fld,
                                                value=text, row=row.line_no))
                        break
                    value += one
                else:
                    codes.append(code)
                    values.append(value)
        if problems:
            raise Rejected(upload.name, problems)
        if not codes:
            raise Rejected(upload.name, [Problem("file", "no data rows",
                                                 "supply one row per unit")])
        missing = sorted(known - set(codes))
        report = {"proxy": opts.slug, "unit_set": opts.unit_set, "units": len(codes),
                  "total": float(sum(values)), "units_without_a_value": len(missing),
                  "first_units_without_a_value": missing[:10]}
        batch = registry.save_batch(conn, kind="proxy", filename=upload.name, sha256=sha,
                                    rows=len(codes), options=opts.model_dump(mode="json"),
                                    report=report, loaded_by=loaded_by)
        reference.save_proxy(
            conn, slug=opts.slug, name=opts.name or opts.slug, unit_set_id=int(unit_set["id"]),
            year=opts.year, source=opts.source or upload.name, licence=opts.licence,
            attribution=opts.attribution, measure=opts.measure, batch_id=batch,
            values=pd.DataFrame({"unit_code": codes, "value": values}))
        note = f"; {len(missing):,} units of the set have no value" if missing else ""
        return Loaded("proxy", batch, True,
                      f"proxy {opts.slug}: {len(codes):,} units of {opts.unit_set}, total "
                      f"{sum(values):,.0f}{note}", report)

    return _once(conn, "proxy", upload, opts, loaded_by, store, grant)


# --------------------------------------------------------------------------- function maps


def load_functions(conn: Connection, upload: Upload, opts: FunctionMapOptions, *,
                   loaded_by: str = "cli", step: Step = quiet,
                grant: Grant = OPERATOR) -> Loaded:
    """Load a mapping of a scheme's function codes to COFOG (``source_code, cofog, rationale``).

    A code already mapped to the same COFOG code is kept; one mapped to another is refused (a
    mapping, once used by a run, must not move).
    """

    def store(sha: str) -> Loaded:
        have = reference.function_map(conn, opts.scheme)
        known = reference.cofog_codes(conn)
        problems: list[Problem] = []
        rows: list[dict] = []
        seen: dict[str, int] = {}
        for row in read_rows(upload.path, (opts.code_field, opts.cofog_field, "rationale"),
                             encoding=opts.encoding, source=upload.name, problems=problems):
            v = row.values
            where = f"row {row.line_no}"
            code = v[opts.code_field]
            try:
                cofog = parse_cofog(v[opts.cofog_field])[:2]
            except BadValue as exc:
                problems.append(exc.problem(where=where, field=opts.cofog_field,
                                            value=v[opts.cofog_field], row=row.line_no))
                continue
            if not code or code in seen:
                reason = f"already on row {seen[code]}" if code else "no code"
                problems.append(Problem(where, reason, "one row per code",
                                        field=opts.code_field, value=code, row=row.line_no))
                continue
            seen[code] = row.line_no
            if cofog not in known:
                problems.append(Problem(where, f"COFOG {cofog} is not loaded",
                                        "load the COFOG list first", field=opts.cofog_field,
                                        value=cofog, row=row.line_no))
                continue
            if not v["rationale"]:
                problems.append(Problem(where, "no rationale", "say in a sentence why the code "
                                        "belongs to that function", field="rationale",
                                        value="", row=row.line_no))
                continue
            if code in have and have[code] != cofog:
                problems.append(Problem(where, f"already mapped to {have[code]}",
                                        "a mapping used by runs cannot move; use a new scheme "
                                        "name for a new mapping", field=opts.cofog_field,
                                        value=cofog, row=row.line_no))
                continue
            if code not in have:
                rows.append({"source_code": code, "cofog_code": cofog,
                             "rationale": v["rationale"]})
        if not problems and not seen:
            problems.append(Problem("file", "the file has no mappings",
                                    "supply one row per code: code, COFOG code, rationale"))
        if problems:
            raise Rejected(upload.name, problems)
        report = {"scheme": opts.scheme, "added": len(rows),
                  "already_mapped": len(seen) - len(rows)}
        batch = registry.save_batch(conn, kind="functions", filename=upload.name, sha256=sha,
                                    rows=len(rows), options=opts.model_dump(mode="json"),
                                    report=report, loaded_by=loaded_by)
        reference.save_function_map(conn, opts.scheme, pd.DataFrame(
            rows, columns=["source_code", "cofog_code", "rationale"]), batch)
        return Loaded("functions", batch, True,
                      f"function map {opts.scheme}: {len(rows)} codes added", report)

    return _once(conn, "functions", upload, opts, loaded_by, store, grant)


# --------------------------------------------------------------------------- spend

#: A year's total this many times the body's previous year looks like pence typed as pounds.
JUMP = 20


def load_spend(conn: Connection, upload: Upload, opts: SpendLoadOptions, *,
               loaded_by: str = "cli", step: Step = quiet,
                grant: Grant = OPERATOR) -> Loaded:
    """Load a spend file; a (body, year) already loaded is superseded for the next run."""

    def store(sha: str) -> Loaded:
        maps = {s: reference.function_map(conn, s) for s in _schemes(conn)}
        with step(f"Spend {upload.name}"):
            read = read_spend(upload.path, source=upload.name, options=SpendOptions(
                format=opts.format, unit=opts.unit,
                area_set=opts.area_sets[0] if opts.area_sets else None, scheme=opts.scheme,
                encoding=opts.encoding, total_tolerance_pence=opts.total_tolerance_pence,
                columns=dict(opts.columns), constants=dict(opts.constants)),
                function_maps=maps)
            lines = _resolve(conn, read.lines, read.format, opts, upload.name, maps)
        for body in sorted(set(map(str, lines["body"]))):
            grant.need_body(body, "load spend")
        content = _fingerprints(lines)
        pairs = sorted(content)
        current = spend.current_scopes(conn, pairs, opts.dataset)
        same = {k for k in pairs if k in current and current[k]["content_sha256"] == content[k]}
        if same:  # a pair whose lines are exactly those already counting is not loaded again
            keep = [(int(b), y) not in same for b, y in zip(lines["body_id"],
                                                             lines["financial_year"], strict=True)]
            lines = lines.loc[keep]
        if lines.empty:
            batches = sorted({int(current[k]["batch_id"]) for k in same})
            return Loaded("spend", batches[-1], False,
                          f"{upload.name} holds the same lines as batch(es) "
                          f"{', '.join(map(str, batches))} for all its {len(same)} body-year(s): "
                          "nothing new was stored", {"unchanged": len(same)})
        scopes = (lines.groupby(["body_id", "body", "financial_year"], sort=True)
                  .agg(lines=("amount_pence", "size"),
                       total=("amount_pence", lambda s: int(s[lines.loc[s.index, "kind"]
                                                              == "expenditure"].sum())))
                  .reset_index())
        if not opts.allow_jump:
            _check_jumps(conn, scopes, upload.name, opts.dataset)
        supersedes = {k: int(v["batch_id"]) for k, v in current.items() if k not in same}
        covered = []
        for s in scopes.itertuples(index=False):
            old = current.get((int(s.body_id), s.financial_year))
            covered.append({"body": s.body, "financial_year": s.financial_year,
                            "lines": int(s.lines), "total_pence": int(s.total),
                            "supersedes_batch": None if old is None else int(old["batch_id"]),
                            "previous_total_pence": None if old is None
                            else int(old["total_pence"])})
        report = {"format": read.format, "lines": len(lines), "scopes": covered,
                  "unchanged_body_years": len(same),
                  "checks": read.checks, "skipped": read.skipped,
                  "income_lines": int((lines["kind"] == "income").sum()),
                  "located_by": lines["located_by"].value_counts().sort_index().to_dict()}
        batch = registry.save_batch(conn, kind="spend", filename=upload.name, sha256=sha,
                                    rows=len(lines), options=opts.model_dump(mode="json"),
                                    report=report, loaded_by=loaded_by)
        spend.save_spend_lines(conn, batch, lines, supersedes, content, opts.dataset,
                               opts.share_set)
        replaced = sum(1 for c in covered if c["supersedes_batch"] is not None)
        note = (f"; supersedes {replaced} earlier body-year(s) of dataset {opts.dataset!r}"
                if replaced else "")
        if same:
            note += f"; {len(same)} body-year(s) unchanged, not loaded again"
        return Loaded("spend", batch, True,
                      f"spend: {len(lines):,} lines for {len(covered)} body-year(s){note}",
                      report)

    return _once(conn, "spend", upload, opts, loaded_by, store, grant)


def _fingerprints(lines: pd.DataFrame) -> dict[tuple[int, str], str]:
    """A hash of each (body id, year)'s lines: what they say, not where they sat in the file."""
    cols = ["line", "cofog_code", "source_code", "amount_pence", "kind", "located_by",
            "area_set_id", "area_code", "shares"]
    out = {}
    for (body, year), group in lines.groupby(["body_id", "financial_year"], sort=True):
        text = group[cols].astype(str).sort_values(cols).to_csv(index=False)
        out[(int(body), str(year))] = hashlib.sha256(text.encode()).hexdigest()
    return out


def _schemes(conn: Connection) -> list[str]:
    return [r["scheme"] for r in conn.execute("SELECT DISTINCT scheme FROM function_map")]


def _resolve(conn: Connection, lines: pd.DataFrame, fmt: str, opts: SpendLoadOptions,
             source: str, maps: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Check a read file against the store: bodies, functions and where each line was."""
    problems: list[Problem] = []
    bodies = reference.bodies(conn)
    sets = {s: store_boundaries.find_set(conn, s) for s in
            {*opts.area_sets, *lines["area_set"].dropna().unique()}}
    codes = {s: set(store_boundaries.unit_codes(conn, int(m["id"]))) for s, m in sets.items()
             if m is not None}
    out = lines.copy()
    out["body_id"] = 0
    out["cofog_code"] = ""
    out["source_code"] = out["function"]
    out["located_by"] = "area"
    out["area_set_id"] = None
    for col in ("x", "y"):
        out[col] = np.nan
    out["postcode"] = out["postcode"].where(out["postcode"].notna(), None)
    out["site_id"] = out["site_id"].astype(object)
    points = _points(conn, lines, opts)
    for i, r in enumerate(lines.itertuples(index=False)):
        where = f"row {r.source_row}"

        def bad(fld: str, value: object, reason: str, fix: str, _r: object = r,
                _where: str = where) -> None:
            problems.append(Problem(_where, reason, fix, field=fld,
                                    value=None if value is None else str(value),
                                    row=int(_r.source_row)))  # type: ignore[attr-defined]

        # the function, as COFOG
        if r.scheme == "cofog":
            out.iat[i, out.columns.get_loc("cofog_code")] = str(r.function)[:2]
        else:
            out.iat[i, out.columns.get_loc("cofog_code")] = maps[r.scheme][r.function][:2]
        # the area a line was reported for
        area_set = None if pd.isna(r.area_set) else r.area_set
        area_code = None if pd.isna(r.area_code) else r.area_code
        if fmt == "rs":
            area_code = area_code or opts.body_areas.get(r.body_code) or \
                opts.body_areas.get(r.body)
            found = [s for s in opts.area_sets if area_code in codes.get(s, ())]
            if not found:
                bad("ons_code", area_code, f"no area {area_code} in "
                    f"{', '.join(opts.area_sets) or 'any set named'}",
                    "name the set the body's area belongs to with --area-set "
                    "(e.g. london-boroughs-2014)")
                continue
            area_set = found[0]
        body = bodies.get(r.body)
        if body is None:
            if fmt != "rs" and pd.isna(r.body_name):
                bad("body", r.body, "no such body is known",
                    "add a body_name column (and body_kind) to create it, or check the slug")
                continue
            area_id = None if area_set is None or sets.get(area_set) is None \
                else int(sets[area_set]["id"])
            body_id = reference.upsert_body(
                conn, r.body, r.body if pd.isna(r.body_name) else r.body_name,
                "other" if pd.isna(r.body_kind) else r.body_kind,
                area_code if fmt == "rs" else None,
                area_set_id=area_id if fmt == "rs" else None,
                area_code=area_code if fmt == "rs" else None,
                source_code=None if pd.isna(r.body_code) else r.body_code)
            bodies[r.body] = body = {"id": body_id, "slug": r.body, "area_set_id": area_id,
                                     "area_code": area_code if fmt == "rs" else None}
        out.iat[i, out.columns.get_loc("body_id")] = int(body["id"])
        if area_set is not None:
            meta = sets.get(area_set)
            if meta is None:
                bad("area_set", area_set, "no boundary set of that name is loaded",
                    "load it first (`placespend load boundaries`), or correct the name")
                continue
            if area_code not in codes[area_set]:
                bad("area_code", area_code, f"no area {area_code} in {area_set}",
                    "check the code against the set's units")
                continue
            out.iat[i, out.columns.get_loc("area_set_id")] = int(meta["id"])
            out.iat[i, out.columns.get_loc("area_code")] = area_code
        elif i in points:
            if points[i][0] == "fault":
                bad(*points[i][1:])  # field, value, reason, fix
                continue
            how, x, y, postcode, site = points[i]
            out.iat[i, out.columns.get_loc("located_by")] = how
            out.iat[i, out.columns.get_loc("x")] = x
            out.iat[i, out.columns.get_loc("y")] = y
            out.iat[i, out.columns.get_loc("postcode")] = postcode
            out.iat[i, out.columns.get_loc("site_id")] = site
        else:
            if body.get("area_set_id") is None:
                bad("area_code", "", f"the line gives no area and {r.body}'s whole area is "
                    "not known", "give an area_set and area_code")
                continue
            out.iat[i, out.columns.get_loc("located_by")] = "body_area"
            out.iat[i, out.columns.get_loc("area_set_id")] = int(body["area_set_id"])
            out.iat[i, out.columns.get_loc("area_code")] = body["area_code"]
    _check_shares(conn, lines, opts, problems)
    if problems:
        raise Rejected(source, problems)
    return out


def _check_shares(conn: Connection, lines: pd.DataFrame, opts: SpendLoadOptions,
                  problems: list[Problem]) -> None:
    """Agency-supplied shares must name units of ``share_set``."""
    given = lines["shares"].notna()
    if not given.any():
        return
    meta = store_boundaries.find_set(conn, opts.share_set) if opts.share_set else None
    if meta is None:
        problems.append(Problem("file", "shares name area codes, but of which set?",
                                "pass --share-set SET (a loaded boundary set)",
                                field="share_set", value=opts.share_set))
        return
    known = set(store_boundaries.unit_codes(conn, int(meta["id"])))
    for r in lines.loc[given].itertuples(index=False):
        unknown = sorted(set(r.shares) - known)
        if unknown:
            problems.append(Problem(f"row {r.source_row}", f"no area {unknown[0]} in "
                                    f"{opts.share_set}", "check the codes of the shares",
                                    field="shares", value=unknown[0], row=int(r.source_row)))


def _points(conn: Connection, lines: pd.DataFrame, opts: SpendLoadOptions) -> dict[int, tuple]:
    """Where each line reported at a point is: row -> (how, x, y, postcode, site id).

    ``how`` is point (coordinates), postcode or site; or "fault", with (field, value, reason,
    fix) in the other four places. Coordinates are checked and projected as site files are.
    """
    out: dict[int, tuple] = {}
    bng = lines["easting"].notna().to_numpy()
    lonlat = lines["longitude"].notna().to_numpy()
    for mask, cols, crs in ((bng, ("easting", "northing"), BNG_CRS),
                            (lonlat, ("longitude", "latitude"), WGS84)):
        idx = np.flatnonzero(mask)
        if not len(idx):
            continue
        x, y, faults = project_points(lines[cols[0]].to_numpy(dtype=float)[idx],
                                      lines[cols[1]].to_numpy(dtype=float)[idx], crs, cols)
        for f in faults:
            out[int(idx[f.index])] = ("fault", f.field, f.value, f.reason, f.fix)
        for j, i in enumerate(idx):
            out.setdefault(int(i), ("point", float(x[j]), float(y[j]), None, None))
    given = lines["postcode"].notna().to_numpy()
    if given.any():
        norm, bad = normalise_postcodes(lines["postcode"])
        found = store_sites.postcode_points(conn, sorted(set(norm.dropna())))
        for i in np.flatnonzero(given):
            pc = norm.iat[i]
            if bad[i] or pc not in found:
                out[int(i)] = ("fault", "postcode", lines["postcode"].iat[i],
                               "not a UK postcode" if bad[i] else "no loaded postcode file has "
                               "this postcode", "load a postcode file that has it "
                               "(`placespend load postcodes`), or give coordinates")
            else:
                out[int(i)] = ("postcode", *found[pc], pc, None)
    wanted = lines["site_id"].notna().to_numpy()
    if wanted.any():
        sites = store_sites.site_points(conn, opts.site_set) if opts.site_set else None
        for i in np.flatnonzero(wanted):
            code = str(lines["site_id"].iat[i])
            if sites is None:
                out[int(i)] = ("fault", "site_id", code, "a site id needs its site set",
                               "pass --site-set SET (a loaded site set)")
            elif code not in sites:
                out[int(i)] = ("fault", "site_id", code, f"no site {code} in {opts.site_set}",
                               "check the id, or load the site set that has it")
            else:
                site_id, x, y = sites[code]
                out[int(i)] = ("site", x, y, None, site_id)
    return out


def _check_jumps(conn: Connection, scopes: pd.DataFrame, source: str, dataset: str) -> None:
    """Refuse a year JUMP times bigger than the body's previous year (pence typed as pounds)."""
    problems = []
    for s in scopes.itertuples(index=False):
        start = int(s.financial_year[:4])
        prev_year = f"{start - 1}-{start % 100:02d}"
        prev = spend.body_year_total(conn, int(s.body_id), prev_year, dataset)
        if prev is not None and prev > 0 and abs(int(s.total)) > JUMP * prev:
            problems.append(Problem(
                f"{s.body} {s.financial_year}", f"totals {format_pounds(int(s.total))}, "
                f"{abs(int(s.total)) / prev:,.0f} times {prev_year} ({format_pounds(prev)}): "
                "were pence typed into a pounds column (or pounds into £ thousand)?",
                "load it with --unit pence if the amounts are pence (--unit thousands for £ "
                "thousand), or --allow-jump if the figures are right", field="amount"))
    if problems:
        raise Rejected(source, problems)


# --------------------------------------------------------------------------- transfers


class TransferOptions(_Options):
    """How to read transfers between bodies (grants passed on)."""

    unit: Literal["pounds", "thousands", "pence"] = "pounds"
    recorded_by: Literal["payer", "payee", "other"] | None = Field(
        None, description="whose records the file is, where it has no recorded_by column")
    encoding: str | None = None
    source: str | None = None
    licence: str = "not stated"
    attribution: str = ""


def load_transfers(conn: Connection, upload: Upload, opts: TransferOptions, *,
                   loaded_by: str = "cli", step: Step = quiet,
                grant: Grant = OPERATOR) -> Loaded:
    """Load transfers; a run takes each off its payer's lines (counted once, at the payee).

    The payer and payee must be known bodies. The same grant recorded by payer and payee is
    counted once (:mod:`allocation.transfers`); a body's newer transfers file for a year
    replaces its earlier one.
    """

    def store(sha: str) -> Loaded:
        with step(f"Transfers {upload.name}"):
            rows = read_transfers(upload.path, source=upload.name, unit=opts.unit,
                                  recorded_by=opts.recorded_by, encoding=opts.encoding)
        bodies = reference.bodies(conn)
        problems = [Problem(f"row {r.source_row}", "no such body is known",
                            "load the body's spend first, or check the slug", field=fld,
                            value=slug, row=int(r.source_row))
                    for r in rows.itertuples(index=False)
                    for fld, slug in (("payer", r.payer), ("payee", r.payee))
                    if slug not in bodies]
        if problems:
            raise Rejected(upload.name, problems)
        for payer, payee in sorted(set(zip(rows["payer"], rows["payee"], strict=True))):
            if not (grant.covers_body(payer) or grant.covers_body(payee)):
                grant.need_body(payer, "load transfers")
        rows["payer_id"] = rows["payer"].map(lambda b: int(bodies[b]["id"]))
        rows["payee_id"] = rows["payee"].map(lambda b: int(bodies[b]["id"]))
        flows = rows.groupby(["financial_year", "payer", "payee"])["amount_pence"].sum()
        report = {"transfers": len(rows), "total_pence": int(rows["amount_pence"].sum()),
                  "flows": [{"financial_year": y, "payer": a, "payee": b, "pence": int(v)}
                            for (y, a, b), v in flows.items()]}
        batch = registry.save_batch(conn, kind="transfers", filename=upload.name, sha256=sha,
                                    rows=len(rows), options=opts.model_dump(mode="json"),
                                    report=report, loaded_by=loaded_by)
        store_transfers.save_transfers(conn, batch, rows)
        return Loaded("transfers", batch, True,
                      f"transfers: {len(rows):,} rows, {format_pounds(rows['amount_pence'].sum())}"
                      f" in {len(flows)} flow(s)", report)

    return _once(conn, "transfers", upload, opts, loaded_by, store, grant)


# --------------------------------------------------------------------------- postcodes and sites


def _pair(first: str | None, second: str | None, names: str) -> None:
    if bool(first) != bool(second):
        raise ValueError(f"give both {names}, or neither")


class PostcodeOptions(_Options):
    """How to read a CSV of postcode points (e.g. OS Code-Point Open)."""

    postcode_field: str = Field("Postcode", description="field holding the postcode")
    easting_field: str = Field("Eastings", description="field of eastings (EPSG:27700 metres)")
    northing_field: str = Field("Northings", description="field of northings")
    longitude_field: str | None = Field(None, description="field of WGS 84 longitudes (used "
                                        "instead of eastings/northings if given)")
    latitude_field: str | None = Field(None, description="field of WGS 84 latitudes")
    encoding: str | None = None
    source: str | None = Field(None, description="where the file came from")
    licence: str = Field("not stated", description="e.g. Open Government Licence v3.0")
    attribution: str = Field("", description="the attribution the licence asks for")

    @model_validator(mode="after")
    def _lonlat(self) -> PostcodeOptions:
        _pair(self.longitude_field, self.latitude_field, "longitude_field and latitude_field")
        return self


class SiteOptions(_Options):
    """How to read a file of sites (schools, GP practices, stations...) as points."""

    slug: str = Field(pattern=SLUG, max_length=80, description="the set's name in URLs")
    name: str | None = Field(None, description="a title (default: the slug)")
    kind: str = Field(min_length=1, max_length=40,
                      description="what the sites are: school, gp_practice, station...")
    id_field: str = Field(description="field holding each site's id (unique, never blank)")
    name_field: str = Field(description="field holding each site's name (never blank)")
    postcode_field: str | None = Field(None, description="field holding postcodes (CSV: places "
                                       "a site whose coordinates are blank)")
    easting_field: str | None = Field(None, description="CSV: field of eastings (EPSG:27700)")
    northing_field: str | None = Field(None, description="CSV: field of northings")
    longitude_field: str | None = Field(None, description="CSV: field of WGS 84 longitudes")
    latitude_field: str | None = Field(None, description="CSV: field of WGS 84 latitudes")
    layer: str | None = Field(None, description="GeoPackage layer")
    encoding: str | None = Field(None, description="CSV text encoding (default UTF-8)")
    source: str | None = Field(None, description="where the file came from")
    licence: str = Field("not stated", description="e.g. Open Government Licence v3.0")
    attribution: str = Field("", description="the attribution the licence asks for")

    @model_validator(mode="after")
    def _coordinates(self) -> SiteOptions:
        _pair(self.easting_field, self.northing_field, "easting_field and northing_field")
        _pair(self.longitude_field, self.latitude_field, "longitude_field and latitude_field")
        if self.easting_field and self.longitude_field:
            raise ValueError("give eastings/northings or longitudes/latitudes, not both")
        if not self.kind.strip():
            raise ValueError("kind is blank")
        return self


def load_postcodes(conn: Connection, upload: Upload, opts: PostcodeOptions, *,
                   loaded_by: str = "cli", step: Step = quiet,
                grant: Grant = OPERATOR) -> Loaded:
    """Load a CSV of postcode points; the newest batch holding a postcode answers for it."""

    def store(sha: str) -> Loaded:
        with step(f"Postcodes {upload.name}"):
            points = read_postcode_file(upload.path, PostcodeFields(
                postcode_field=opts.postcode_field, easting_field=opts.easting_field,
                northing_field=opts.northing_field, longitude_field=opts.longitude_field,
                latitude_field=opts.latitude_field, encoding=opts.encoding), source=upload.name)
        codes = points["postcode"].tolist()
        before = store_sites.postcode_points(conn, codes)
        moved = [c for c, x, y in zip(codes, points["x"], points["y"], strict=True)
                 if c in before and before[c] != (float(x), float(y))]
        report = {
            "postcodes": len(points),
            "districts": int(points["postcode"].str.split(" ").str[0].nunique()),
            "coordinates": "longitude/latitude (WGS 84)" if opts.longitude_field
            else "eastings/northings (EPSG:27700)",
            "already_loaded": len(before), "moved": len(moved), "first_moved": moved[:10],
            "source": opts.source or upload.name, "licence": opts.licence,
        }
        batch = registry.save_batch(conn, kind="postcodes", filename=upload.name, sha256=sha,
                                    rows=len(points), options=opts.model_dump(mode="json"),
                                    report=report, loaded_by=loaded_by)
        store_sites.save_postcodes(conn, batch, points)
        note = (f"; {len(before):,} were loaded before ({len(moved):,} moved): this batch now "
                "answers for them" if before else "")
        return Loaded("postcodes", batch, True,
                      f"postcodes: {len(points):,} points in {report['districts']:,} "
                      f"districts{note}", report)

    return _once(conn, "postcodes", upload, opts, loaded_by, store, grant)


def load_sites(conn: Connection, upload: Upload, opts: SiteOptions, *,
               loaded_by: str = "cli", step: Step = quiet,
                grant: Grant = OPERATOR) -> Loaded:
    """Load a site file (points, or postcodes resolved against those loaded) as a set version.

    Content identical to the newest version of the slug (the same sites and metadata, from a
    file that differs only in its bytes) stores nothing new.
    """

    def store(sha: str) -> Loaded:
        problems: list[Problem] = []
        with step(f"Sites {opts.slug}"):
            read = read_site_file(upload.path, SiteFields(
                id_field=opts.id_field, name_field=opts.name_field,
                postcode_field=opts.postcode_field, easting_field=opts.easting_field,
                northing_field=opts.northing_field, longitude_field=opts.longitude_field,
                latitude_field=opts.latitude_field, layer=opts.layer, encoding=opts.encoding),
                source=upload.name, problems=problems)
            sites = _placed_by_postcode(conn, read.sites, opts, problems)
        if problems:
            raise Rejected(upload.name, sorted(problems, key=lambda p: p.row or p.feature or 0))
        if sites.empty:
            raise Rejected(upload.name, [Problem("file", "no sites", "supply one row or "
                                                 "feature per site")])
        meta = store_sites.SiteSetMeta(
            slug=opts.slug, name=opts.name or opts.slug, kind=opts.kind.strip(),
            source=opts.source or upload.name, licence=opts.licence,
            attribution=opts.attribution, batch_id=0)
        content = _site_content(meta, opts.source, sites)
        newest = store_sites.find_site_set(conn, opts.slug)
        if newest is not None:
            prior = registry.get_batch(conn, int(newest["batch_id"]))
            if prior is not None and prior["report"].get("content_sha256") == content:
                return Loaded("sites", int(newest["batch_id"]), False,
                              f"{upload.name} holds the same sites as {opts.slug} version "
                              f"{newest['version']}: nothing new was stored",
                              dict(prior["report"]))
        located = sites["located"].value_counts().sort_index().to_dict()
        report = {"set": opts.slug, "sites": len(sites), "kind": meta.kind,
                  "format": read.format, "located_by": {k: int(v) for k, v in located.items()},
                  "fields": {"id": opts.id_field, "name": opts.name_field,
                             "postcode": opts.postcode_field},
                  "attrs": read.attr_fields, "declared_crs": read.declared_crs,
                  "notes": list(read.notes), "content_sha256": content}
        batch = registry.save_batch(conn, kind="sites", filename=upload.name, sha256=sha,
                                    rows=len(sites), options=opts.model_dump(mode="json"),
                                    report=report, loaded_by=loaded_by)
        meta = store_sites.SiteSetMeta(**{**meta.__dict__, "batch_id": batch})
        set_id = store_sites.save_site_set(conn, meta, sites)
        version = int(store_sites.get_site_set_by_id(conn, set_id)["version"])
        report["version"] = version
        how = ", ".join(f"{n:,} by {k}" for k, n in report["located_by"].items())
        return Loaded("sites", batch, True, f"site set {opts.slug} version {version}: "
                      f"{len(sites):,} {meta.kind} sites ({how})", report)

    return _once(conn, "sites", upload, opts, loaded_by, store, grant)


def _placed_by_postcode(conn: Connection, sites: pd.DataFrame, opts: SiteOptions,
                        problems: list[Problem]) -> pd.DataFrame:
    """Give the sites located by postcode their postcode's point; the unknown are problems."""
    wanted = (sites["located"] == "postcode").to_numpy()
    if not wanted.any():
        return sites
    points = store_sites.postcode_points(conn, sites.loc[wanted, "postcode"].tolist())
    out = sites.copy()
    unknown = []
    for i in np.flatnonzero(wanted):
        r = out.iloc[i]
        point = points.get(r["postcode"])
        if point is None:
            unknown.append(i)
            problems.append(Problem(
                r["where"], f"postcode {r['postcode']} is not among the loaded postcodes",
                "load a postcode file that has it, or give coordinates",
                field=opts.postcode_field, value=r["postcode"],
                row=None if pd.isna(r["row"]) else int(r["row"]),
                feature=None if pd.isna(r["feature"]) else int(r["feature"])))
            continue
        out.iat[i, out.columns.get_loc("x")] = point[0]
        out.iat[i, out.columns.get_loc("y")] = point[1]
    return out.drop(index=out.index[unknown]).reset_index(drop=True)


def _site_content(meta: store_sites.SiteSetMeta, source: str | None, sites: pd.DataFrame
                  ) -> str:
    """A hash of what a site set says (metadata and sites), not of how its file was laid out."""
    rows = sorted(
        json.dumps([r.site_code, r.name, r.postcode, r.located, float(r.x), float(r.y),
                    r.attrs], sort_keys=True, ensure_ascii=False)
        for r in sites.itertuples(index=False))
    # the source as given: a file name standing in for it is not what the sites say
    head = json.dumps([meta.slug, meta.name, meta.kind, source, meta.licence, meta.attribution])
    return sha256_of(head, *rows)


# --------------------------------------------------------------------------- embedded data


def load_embedded(conn: Connection, *, base: Path = catalog.DATA_DIR, step: Step = quiet
                  ) -> list[Loaded]:
    """Load every embedded file through the same load path as a user's file."""
    with conn.transaction():
        with step("COFOG functions"):
            reference.save_cofog(conn, read_cofog(catalog.existing_file(base, catalog.COFOG_PATH)))
        done = []
        for item in catalog.EMBEDDED:
            upload = Upload(catalog.existing_file(base, item.path), item.path)
            loader = LOADERS[item.kind]
            opts = loader.options(**item.options, **_provenance(item))
            done.append(loader.load(conn, upload, opts, loaded_by="embedded", step=step))
    return done


def _provenance(item: catalog.Embedded) -> dict:
    if item.kind == "functions":
        return {}
    return {"licence": item.provenance.licence, "attribution": item.provenance.attribution,
            "source": f"boundaries/data/{item.path}"}


@dataclass(frozen=True)
class Loader:
    """A kind of file: its options and its load function."""

    options: type[_Options]
    load: Callable[..., Loaded]


LOADERS: dict[str, Loader] = {
    "boundaries": Loader(BoundaryOptions, load_boundaries),
    "proxy": Loader(ProxyOptions, load_proxy),
    "functions": Loader(FunctionMapOptions, load_functions),
    "spend": Loader(SpendLoadOptions, load_spend),
    "transfers": Loader(TransferOptions, load_transfers),
    "postcodes": Loader(PostcodeOptions, load_postcodes),
    "sites": Loader(SiteOptions, load_sites),
}


def sha256_of(*parts: bytes | str) -> str:
    """Hash of file contents and/or text."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\x00")
    return h.hexdigest()


__all__ = ["BoundaryOptions", "FunctionMapOptions", "InputError", "LOADERS", "Loaded",
           "PostcodeOptions", "ProxyOptions", "SiteOptions", "SpendLoadOptions",
           "TransferOptions", "Upload", "load_boundaries", "load_embedded", "load_functions",
           "load_postcodes", "load_proxy", "load_sites", "load_spend", "load_transfers",
           "options"]
