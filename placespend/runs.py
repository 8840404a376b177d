"""One apportionment, end to end: store -> geo -> allocation -> store.

The CLI and the API both call :func:`apportion`; neither holds logic of its own. Atoms and
crosswalks are derived data: built once per pair of boundary sets, stored, and reused. The run
itself is written in one transaction and never changed; the same inputs give back the same run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from allocation.apportion import apportion_lines, atom_proxy_values, choose_proxies
from allocation.conservation import ConservationReport, TargetOutcome
from allocation.crosswalk import target_values, to_targets
from allocation.summary import feature_properties, property_schema
from boundaries import catalog, readers
from geo.atoms import build_atoms
from geo.crosswalk import build_crosswalk_via_cuts, nested_crosswalk
from placespend import __version__
from placespend.errors import InputError
from placespend.progress import Step, quiet
from store import atoms as store_atoms
from store import boundaries as store_boundaries
from store import reference, runs, spend
from store.db import Connection

#: The proxy every population figure (``population``, ``per_head``) is taken from.
RESIDENTS = "residents-all"


@dataclass(frozen=True)
class RunRequest:
    """What to apportion, over which geography, published through which target sets."""

    financial_year: str = "2014-15"
    zone_set: str = "london-lsoa-2011"
    cut_set: str = "london-wards-2014"
    target_sets: tuple[str, ...] = ("hackney-wards-2014", "london-wards-2014")
    proxy_table: Path = field(default_factory=lambda: catalog.path(catalog.DEFAULT_PROXIES_PATH))


@dataclass(frozen=True)
class RunResult:
    """The run that holds the answer, whether it was made now, and its conservation report."""

    run_id: int
    created: bool
    collections: tuple[str, ...]
    conservation: dict


def collection_id(target_set: str, financial_year: str) -> str:
    """The published id: ``hackney-wards-2014-spend-2014-15`` (no dots, for QGIS)."""
    return f"{target_set}-spend-{financial_year}"


def ensure_atoms(conn: Connection, zone_set: str, cut_set: str, step: Step = quiet) -> int:
    """Id of the atom set cutting ``zone_set`` by ``cut_set``, building and storing it once."""
    slug = f"{zone_set}--{cut_set}"
    found = store_atoms.find_atom_set(conn, slug)
    if found is not None:
        return int(found["id"])
    with step(f"Cutting {zone_set} by {cut_set} into atoms"):
        zones = store_boundaries.read_boundaries(conn, zone_set)
        cuts = store_boundaries.read_boundaries(conn, cut_set)
        atoms = build_atoms(zones, cuts)
    with step(f"Storing {len(atoms):,} atoms"), conn.transaction():
        return store_atoms.save_atoms(
            conn,
            slug=slug,
            zone_set_id=store_boundaries.set_id(conn, zone_set),
            cut_set_id=store_boundaries.set_id(conn, cut_set),
            atoms=atoms,
        )


def ensure_crosswalk(
    conn: Connection, atom_set_id: int, cut_set: str, target_set: str, step: Step = quiet
) -> pd.DataFrame:
    """The crosswalk from an atom set to ``target_set``, building and storing it once."""
    target_id = store_boundaries.set_id(conn, target_set)
    found = store_atoms.find_crosswalk(conn, atom_set_id, target_id)
    if found is not None:
        return store_atoms.read_crosswalk(conn, found)
    with step(f"Crosswalk atoms -> {target_set}"):
        if target_set == cut_set:
            weights = nested_crosswalk(store_atoms.read_atoms(conn, atom_set_id))
        else:
            weights = build_crosswalk_via_cuts(
                store_atoms.read_atoms(conn, atom_set_id, geometry=True),
                store_boundaries.read_boundaries(conn, cut_set),
                store_boundaries.read_boundaries(conn, target_set),
            )
    with conn.transaction():
        store_atoms.save_crosswalk(conn, atom_set_id, target_id, weights)
    return weights


def _inputs_sha(lines: pd.DataFrame, table: pd.DataFrame, request: RunRequest, atom_set: int,
                proxies: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(lines.to_csv(index=False).encode())
    h.update(table[["line", "proxy"]].to_csv(index=False).encode())
    h.update(proxies.sort_values(["proxy", "unit_code"]).to_csv(index=False).encode())
    h.update(json.dumps([request.cut_set, request.zone_set, list(request.target_sets),
                         atom_set, __version__]).encode())
    return h.hexdigest()


def _republish(conn: Connection, run_id: int) -> RunResult:
    """Serve an earlier run with the same inputs again (its figures never changed)."""
    with conn.transaction():
        runs.point_collections(conn, run_id)
    got = runs.get_run(conn, run_id)
    return RunResult(run_id, False, tuple(got["collections"]), got["conservation"])


def apportion(conn: Connection, request: RunRequest, step: Step = quiet) -> RunResult:
    """Apportion every spend line of the year and publish one collection per target set."""
    lines = spend.lines_for_year(conn, request.financial_year)
    if lines.empty:
        raise InputError(
            f"no spend lines are loaded for {request.financial_year}",
            "load them first (`placespend load`), or choose a year that has lines",
        )
    table = readers.read_proxy_table(request.proxy_table)
    lines["proxy"] = choose_proxies(lines, table)

    atom_set_id = ensure_atoms(conn, request.zone_set, request.cut_set, step)
    atoms = store_atoms.read_atoms(conn, atom_set_id)
    zone_set_id = store_boundaries.set_id(conn, request.zone_set)
    values = reference.proxy_values(conn, zone_set_id)
    if RESIDENTS not in set(values["proxy"]):
        raise InputError(
            f"proxy {RESIDENTS} is not loaded on {request.zone_set}",
            "load the embedded data (`placespend load`)",
        )

    sha = _inputs_sha(lines, table, request, atom_set_id, values)
    existing = runs.find_run(conn, sha)
    if existing is not None:
        return _republish(conn, existing["id"])

    membership = pd.concat(
        [
            ensure_crosswalk(conn, atom_set_id, request.cut_set, area_set, step).assign(
                set=area_set
            ).rename(columns={"target_code": "code"})
            for area_set in sorted(set(lines["area_set"]))
        ],
        ignore_index=True,
    )
    with step(f"Apportioning {len(lines)} lines over {len(atoms):,} atoms"):
        proxies = atom_proxy_values(atoms, values)
        result = apportion_lines(lines, atoms, proxies, membership, cut_set=request.cut_set)
    report = ConservationReport(result.outcomes)

    writes: list[runs.CollectionWrite] = []
    bodies = sorted(set(lines["body"]))
    divisions = reference.cofog_divisions(conn)
    body_names = {slug: row["name"] for slug, row in reference.bodies(conn).items()}
    for target_set in request.target_sets:
        xw = ensure_crosswalk(conn, atom_set_id, request.cut_set, target_set, step)
        with step(f"Summing into {target_set}"):
            target_alloc, outside = to_targets(result.allocations, xw)
            population = target_values(proxies[[RESIDENTS]], xw)[RESIDENTS]
            units = store_boundaries.read_boundaries(conn, target_set)
            features = feature_properties(target_alloc, lines, units, population, bodies)
        cid = collection_id(target_set, request.financial_year)
        report.targets.append(
            TargetOutcome(
                target_set=target_set,
                features=len(units),
                allocated_pence=int(target_alloc["amount_pence"].sum()),
                outside_pence=outside,
                reason=(
                    "allocated to atoms outside every unit of this set" if outside else None
                ),
            )
        )
        meta = store_boundaries.get_set(conn, target_set)
        writes.append(
            runs.CollectionWrite(
                collection_id=cid,
                target_set_id=int(meta["id"]),
                title=f"Public spend {request.financial_year}: {meta['name']}",
                description=(
                    f"Net current expenditure {request.financial_year} of "
                    f"{', '.join(bodies)} apportioned to {meta['name']} "
                    f"({len(units)} features). Pounds; per_head uses {RESIDENTS}."
                ),
                target_alloc=target_alloc,
                features=features,
                schema=property_schema(features, divisions, body_names),
            )
        )
    report.check()

    params = {
        "financial_year": request.financial_year,
        "zone_set": request.zone_set,
        "cut_set": request.cut_set,
        "target_sets": list(request.target_sets),
        "proxy_table": table[["line", "proxy"]].to_dict(orient="records"),
        "bodies": bodies,
    }
    with step("Publishing the run"), conn.transaction():
        runs.lock_runs(conn)
        again = runs.find_run(conn, sha)
        if again is not None:
            return _republish(conn, again["id"])
        run_id = runs.save_run(
            conn,
            financial_year=request.financial_year,
            atom_set_id=atom_set_id,
            inputs_sha256=sha,
            params=params,
            code_version=__version__,
            conservation=report.as_dict(),
            allocations=result.allocations,
            collections=writes,
        )
    return RunResult(run_id, True, tuple(w.collection_id for w in writes), report.as_dict())
