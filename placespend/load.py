"""Load the embedded Hackney/London data into the store: boundaries -> geo -> store.

The whole load is one transaction, and each piece is keyed by a content hash, so loading twice
changes nothing and a failure half-way leaves the database as it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd

from boundaries import catalog, readers
from domain.errors import InputError
from geo.prepare import dissolve, prepare_boundaries
from placespend.progress import Step, quiet
from store import boundaries as store_boundaries
from store import reference, spend
from store.db import Connection


@dataclass
class LoadReport:
    """What a load added (and what it found already there)."""

    added: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    repaired: dict[str, tuple[str, ...]] = field(default_factory=dict)


def sha256_of(*parts: bytes | str) -> str:
    """Hash of file contents and/or text, for idempotent loads."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\x00")
    return h.hexdigest()


def _file_sha(path: Path) -> str:
    return sha256_of(path.read_bytes())


def _meta(
    item: catalog.BoundarySource | catalog.DerivedSet, source: str, sha: str
) -> store_boundaries.BoundarySetMeta:
    """What is stored about a boundary set besides its features."""
    return store_boundaries.BoundarySetMeta(
        slug=item.slug, name=item.name, kind=item.kind, vintage=item.vintage, source=source,
        licence=item.provenance.licence, attribution=item.provenance.attribution,
        content_sha256=sha,
    )


def _source(slug: str) -> catalog.BoundarySource:
    return next(s for s in catalog.BOUNDARY_SETS if s.slug == slug)


def _prepare(
    src: catalog.BoundarySource, base: Path
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, tuple[str, ...]]:
    """Read a boundary file and normalise it: (raw features, prepared features, repaired codes)."""
    raw = readers.read_boundaries(src, base)
    done = prepare_boundaries(
        raw, code_field=src.code_field, name_field=src.name_field,
        parent_field=src.parent_field, source=src.path,
    )
    return raw, done.frame, done.repaired


def load_embedded(
    conn: Connection, *, base: Path = catalog.DATA_DIR, step: Step = quiet
) -> LoadReport:
    """Load every embedded boundary set, derived set, proxy, body and spend line."""
    report = LoadReport()
    with conn.transaction():
        with step("COFOG functions"):
            cofog = readers.read_cofog(catalog.path(catalog.COFOG_PATH))
            reference.save_cofog(conn, cofog)

        prepared: dict[str, tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]] = {}
        for src in catalog.BOUNDARY_SETS:
            sha = _file_sha(base / src.path)
            existing = store_boundaries.find_set(conn, src.slug)
            if existing is not None:
                if existing["content_sha256"] != sha:
                    raise InputError(
                        f"boundary set {src.slug} is already loaded from different content "
                        f"than {src.path}",
                        "boundary sets are versions: load the changed file under a new slug",
                    )
                report.present.append(src.slug)
                continue
            with step(f"Boundaries {src.slug}"):
                raw, frame, repaired = _prepare(src, base)
                if repaired:
                    report.repaired[src.slug] = repaired
                prepared[src.slug] = (raw, frame)
                store_boundaries.save_boundary_set(conn, _meta(src, src.path, sha), frame)
                report.added.append(src.slug)

        for d in catalog.DERIVED_SETS:
            if store_boundaries.find_set(conn, d.slug) is not None:
                report.present.append(d.slug)
                continue
            with step(f"Boundaries {d.slug} (dissolved from {d.from_slug})"):
                if d.from_slug not in prepared:
                    prepared[d.from_slug] = _prepare(_source(d.from_slug), base)[:2]
                raw, frame = prepared[d.from_slug]
                if d.group_field is None:
                    out = dissolve(frame, None, code=d.code, name=d.fixed_name)
                else:
                    groups = raw[d.group_field].astype(str).tolist()
                    names = (
                        dict(zip(groups, raw[d.name_field].astype(str), strict=True))
                        if d.name_field else None
                    )
                    out = dissolve(frame, groups, names=names)
                derived_sha = sha256_of(d.slug, d.from_slug, str(d.group_field))
                store_boundaries.save_boundary_set(
                    conn, _meta(d, f"dissolved from {d.from_slug}", derived_sha), out
                )
                report.added.append(d.slug)

        for p in catalog.PROXIES:
            if reference.find_proxy(conn, p.slug) is not None:
                report.present.append(p.slug)
                continue
            with step(f"Proxy {p.slug}"):
                values = readers.read_proxy(p, base)
                reference.save_proxy(
                    conn, slug=p.slug, name=p.name,
                    unit_set_id=store_boundaries.set_id(conn, p.unit_set), year=p.year,
                    source=p.path, licence=p.provenance.licence,
                    attribution=p.provenance.attribution, values=values,
                )
                report.added.append(p.slug)

        body_ids = {
            b.slug: reference.upsert_body(conn, b.slug, b.name, b.kind, b.area_code)
            for b in catalog.SPEND.bodies
        }
        sha = sha256_of(
            (base / catalog.SPEND.path).read_bytes(),
            ",".join(b.slug for b in catalog.SPEND.bodies),
            ",".join(catalog.SPEND.years),
            (base / catalog.RS_COFOG_PATH).read_bytes(),
        )
        if spend.find_batch(conn, "spend", sha) is not None:
            report.present.append("spend")
        else:
            with step("Spend lines (Revenue Outturn RS)"):
                mapping = readers.read_rs_cofog_mapping(catalog.path(catalog.RS_COFOG_PATH))
                lines = readers.read_spend(catalog.SPEND, base, mapping=mapping)
                set_ids = {
                    s: store_boundaries.set_id(conn, s) for s in set(lines["area_set"])
                }
                spend.save_spend_batch(
                    conn, filename=catalog.SPEND.path, sha256=sha, lines=lines,
                    body_ids=body_ids, set_ids=set_ids,
                )
                report.added.append(f"spend ({len(lines)} lines)")
    return report
