"""Runs and publications, end to end: store -> geo -> allocation -> store.

The CLI and the API call these; neither holds logic of its own.

- :func:`make_run` computes a run once from its inputs (lines, proxy table, proxies, atoms):
  the atom product and the conservation report, through the one pure pipeline
  (:mod:`allocation.pipeline`). The same inputs give back the same run. Making a run changes no
  public collection: a what-if run (another proxy table) is addressable by its id
  (``/collections/{id}?run=N``) but the public figures stay as they were.
- :func:`publish` makes a run the one a set of public collections serves, first deriving any
  publication it lacks (a sum of the atom product through a stored crosswalk; no re-run).
- :func:`line_spread` derives one line's pence per atom on request.

Atoms and crosswalks are derived data: built once per pair of boundary sets, stored, reused.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from allocation import pipeline
from allocation.apportion import AT_POINT, ESTIMATE_PREFIX, atom_proxy_values, choose_proxies
from allocation.apportion import line_spread as spread_one_line
from allocation.crosswalk import unit_crosswalk as crosswalk_of_units
from allocation.estimates import estimate_sets
from allocation.estimates import expand as expand_estimates
from allocation.summary import property_schema
from allocation.transfers import count_once, net_of_transfers, passed_on_reason
from boundaries import catalog
from domain.errors import BadRequest, InputError, NotFound, Problem, Rejected
from domain.version import ALGORITHM_VERSION
from geo.atoms import build_atoms
from geo.crosswalk import build_crosswalk_via_cuts, nested_crosswalk
from intake.reference import read_proxy_table
from placespend import __version__
from placespend.progress import Step, quiet
from store import atoms as store_atoms
from store import boundaries as store_boundaries
from store import reference, runs, spend
from store import transfers as store_transfers
from store.db import Connection

if TYPE_CHECKING:
    from distributed import Client

RESIDENTS = pipeline.RESIDENTS
#: Target sets a run is published to when none are named.
DEFAULT_TARGETS = ("hackney-wards-2014", "london-wards-2014")


@dataclass(frozen=True)
class RunRequest:
    """What to apportion, over which geography, with which proxy table."""

    financial_year: str = "2014-15"
    zone_set: str = "london-lsoa-2011"
    cut_set: str = "london-wards-2014"
    proxy_table: Path = field(default_factory=lambda: catalog.path(catalog.DEFAULT_PROXIES_PATH))
    #: Publications derived with the run (not made current: see :func:`publish`).
    target_sets: tuple[str, ...] = DEFAULT_TARGETS


@dataclass(frozen=True)
class RunResult:
    """The run that holds the answer, whether it was made now, and its totals."""

    run_id: int
    created: bool
    collections: tuple[str, ...]
    conservation: dict


def collection_id(target_set: str, financial_year: str) -> str:
    """The published id: ``hackney-wards-2014-spend-2014-15`` (no dots, for QGIS)."""
    return f"{target_set}-spend-{financial_year}"


def ensure_atoms(conn: Connection, zone_set: str, cut_set: str, step: Step = quiet,
                 client: Client | None = None) -> int:
    """Id of the atom set cutting ``zone_set`` by ``cut_set``, building and storing it once.

    With a dask ``client`` the atoms are cut on its cluster (the same atoms, to the bit).
    """
    zone_meta = store_boundaries.get_set(conn, zone_set)
    cut_meta = store_boundaries.get_set(conn, cut_set)
    found = store_atoms.find_atom_set(conn, int(zone_meta["id"]), int(cut_meta["id"]))
    if found is not None:
        return int(found["id"])
    for meta in (zone_meta, cut_meta):
        if meta["tiles"] is False:
            raise InputError(
                f"boundary set {meta['slug']} (version {meta['version']}) has units that "
                f"overlap ({meta['overlap_m2']:,.0f} m² in all), so it cannot be cut into atoms: "
                "the overlap would be counted twice",
                f"load a corrected version of {meta['slug']} whose units do not overlap "
                f"(its load report lists each overlapping pair)",
            )
    with step(f"Cutting {zone_set} by {cut_set} into atoms"):
        zones = store_boundaries.read_boundaries(conn, int(zone_meta["id"]))
        cuts = store_boundaries.read_boundaries(conn, int(cut_meta["id"]))
        if client is None:
            atoms = build_atoms(zones, cuts)
        else:
            from placespend import distributed

            atoms = distributed.build_atoms(client, zones, cuts)
    with step(f"Storing {len(atoms):,} atoms"), conn.transaction():
        return store_atoms.save_atoms(
            conn,
            slug=f"{zone_set}@{zone_meta['version']}--{cut_set}@{cut_meta['version']}",
            zone_set_id=int(zone_meta["id"]),
            cut_set_id=int(cut_meta["id"]),
            atoms=atoms,
        )


def ensure_crosswalk(
    conn: Connection, atom_set_id: int, target_set: str, step: Step = quiet
) -> pd.DataFrame:
    """The crosswalk from an atom set to ``target_set``, building and storing it once."""
    target_id = store_boundaries.set_id(conn, target_set)
    found = store_atoms.find_crosswalk(conn, atom_set_id, target_id)
    if found is not None:
        return store_atoms.read_crosswalk(conn, found)
    meta = store_atoms.get_atom_set(conn, atom_set_id)
    with step(f"Crosswalk atoms -> {target_set}"):
        if target_id == meta["cut_set_id"]:
            weights = nested_crosswalk(store_atoms.read_atoms(conn, atom_set_id))
        else:
            weights = build_crosswalk_via_cuts(
                store_atoms.read_atoms(conn, atom_set_id, geometry=True),
                store_boundaries.read_boundaries(conn, int(meta["cut_set_id"])),
                store_boundaries.read_boundaries(conn, target_id),
            )
    with conn.transaction():
        store_atoms.save_crosswalk(conn, atom_set_id, target_id, weights)
    return weights


def _inputs_sha(lines: pd.DataFrame, request: RunRequest, atom_set: int,
                proxies: pd.DataFrame, flows: pd.DataFrame) -> str:
    """The fingerprint of what decides a run's figures.

    That is the lines (net of what was passed on) with their proxies, the transfers counted,
    the proxy values, the atom set and the algorithm version; never the target sets
    (publications are derived from a run).
    """
    h = hashlib.sha256()
    h.update(lines[["line_id", "amount_pence", "proxy"]].to_csv(index=False).encode())
    if len(flows):
        h.update(flows.drop(columns="transfer_ids").to_csv(index=False).encode())
    if estimate_sets(lines):  # a body's own shares change where its pence go
        h.update(json.dumps([s if isinstance(s, dict) else None for s in lines["shares"]],
                            sort_keys=True).encode())
    h.update(proxies.sort_values(["proxy", "unit_code"]).to_csv(index=False).encode())
    h.update(json.dumps([request.cut_set, request.zone_set, atom_set,
                         ALGORITHM_VERSION]).encode())
    return h.hexdigest()


def _membership(conn: Connection, atom_set_id: int, lines: pd.DataFrame, step: Step = quiet
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Which atoms each line's area holds: (lines, membership atom_id, set, code, weight).

    A line reported for an area reaches the atoms of that area (a stored crosswalk); a line
    reported at a point (a site, a postcode, coordinates) reaches the one atom its point falls
    in, and is placed there directly (area set :data:`AT_POINT`, code the atom id).
    """
    at_point = lines["area_set"].isna() & lines["x"].notna()
    lines = lines.copy()
    parts = [
        ensure_crosswalk(conn, atom_set_id, area_set, step).assign(set=area_set)
        .rename(columns={"target_code": "code"})
        for area_set in sorted(map(str, lines.loc[~at_point, "area_set"].unique()))
    ]
    for share_set in estimate_sets(lines):  # parts placed by a body's own shares
        parts.append(ensure_crosswalk(conn, atom_set_id, share_set, step)
                     .assign(set=ESTIMATE_PREFIX + share_set)
                     .rename(columns={"target_code": "code"}))
    if at_point.any():
        found = np.asarray(store_atoms.atoms_at(
            conn, atom_set_id, lines.loc[at_point, "x"].astype(float).tolist(),
            lines.loc[at_point, "y"].astype(float).tolist()))
        lines.loc[at_point, "area_set"] = AT_POINT
        lines.loc[at_point, "area_code"] = np.where(found >= 0, found.astype(str), "outside")
        used = np.unique(found[found >= 0])
        parts.append(pd.DataFrame({"atom_id": used.astype(np.int64), "set": AT_POINT,
                                   "code": used.astype(str), "weight": 1.0}))
    return lines, pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class _Gathered:
    """What a run is computed from, read from the store."""

    inputs: pipeline.Inputs
    atom_set_id: int
    table: pd.DataFrame
    #: The transfers counted once, with what was taken off the payers' lines.
    flows: pd.DataFrame


def _inputs(conn: Connection, request: RunRequest, step: Step,
            client: Client | None) -> _Gathered:
    lines = spend.lines_for_year(conn, request.financial_year)
    if lines.empty:
        raise InputError(
            f"no spend lines are loaded for {request.financial_year}",
            "load them first (`placespend load spend FILE`, or `placespend load embedded` for "
            "the London data), or choose a year that has lines",
        )
    table = read_proxy_table(request.proxy_table)
    _check_table_lines(table, lines, request, spend.known_names(conn))
    lines["proxy"] = choose_proxies(lines, table).to_numpy()
    atom_set_id = ensure_atoms(conn, request.zone_set, request.cut_set, step, client)
    atoms = store_atoms.read_atoms(conn, atom_set_id)
    values = reference.proxy_values(conn, store_boundaries.set_id(conn, request.zone_set))
    if RESIDENTS not in set(values["proxy"]):
        raise InputError(
            f"proxy {RESIDENTS} is not loaded on {request.zone_set}",
            "load it (`placespend load proxy FILE`, or `placespend load embedded`)",
        )
    lines, membership = _membership(conn, atom_set_id, lines, step)
    counted = count_once(store_transfers.transfers_for_year(conn, request.financial_year))
    lines, flows = net_of_transfers(lines, counted)
    inputs = pipeline.Inputs(lines, atoms, values, membership, request.cut_set)
    return _Gathered(inputs, atom_set_id, table, flows)


def _check_table_lines(table: pd.DataFrame, lines: pd.DataFrame, request: RunRequest,
                       known: dict[str, set[str]]) -> None:
    """Refuse a proxy table row that names nothing loaded (a typo would fall to ``*``).

    A row names a body (or ``*``) and a line's name, COFOG group or division (or ``*``). It
    must name a loaded body and a name some loaded line (or mapped code, or COFOG code) has:
    a general table, such as the default one, may name lines a given year does not have.
    ``known``: "bodies" and "names" loaded (:func:`store.spend.known_names`).
    """
    problems = []
    for r in table.itertuples():
        if r.body != "*" and r.body not in known["bodies"]:
            close = difflib.get_close_matches(r.body, sorted(known["bodies"]), n=1)
            problems.append(Problem(
                f"row {r.row}", "no body of this name is loaded",
                (f"did you mean {close[0]!r}? " if close else "")
                + "name a body by its slug, or '*' for every body",
                field="body", value=r.body, row=int(r.row)))
            continue
        if r.line == "*" or r.line in known["names"]:
            continue
        here = set(lines["line"]) if r.body == "*" else set(
            lines.loc[lines["body"] == r.body, "line"])
        close = difflib.get_close_matches(r.line, sorted(here or known["names"]), n=1)
        problems.append(Problem(
            f"row {r.row}", "no loaded spend line is called this or has this COFOG code",
            (f"did you mean {close[0]!r}? " if close else "")
            + "name a line exactly as loaded, a COFOG group or division, or '*'",
            field="line", value=r.line, row=int(r.row)))
    if problems:
        raise Rejected(request.proxy_table.name, problems)


def make_run(conn: Connection, request: RunRequest, step: Step = quiet,
             client: Client | None = None) -> RunResult:
    """Compute the year's run once (or find it), with its publications to ``target_sets``.

    No public collection changes: call :func:`publish` for that. With a dask ``client``
    (``placespend.distributed.connect``) atoms are cut and lines apportioned on its cluster;
    the run is the same to the penny (and so is its fingerprint).
    """
    got = _inputs(conn, request, step, client)
    inputs, atom_set_id, table = got.inputs, got.atom_set_id, got.table
    sha = _inputs_sha(inputs.lines, request, atom_set_id, inputs.proxy_values, got.flows)
    existing = runs.find_run(conn, sha)
    if existing is not None:
        run_id = int(existing["id"])
        created = False
    else:
        where = "" if client is None else " on the dask cluster"
        with step(f"Apportioning {len(inputs.lines):,} lines over {len(inputs.atoms):,} atoms"
                  f"{where}"):
            if client is None:
                result = pipeline.compute(inputs)
            else:
                from placespend import distributed

                result = distributed.compute(client, inputs)
        bodies = sorted(map(str, inputs.lines["body"].unique()))
        params = {
            "financial_year": request.financial_year,
            "zone_set": request.zone_set,
            "cut_set": request.cut_set,
            "proxy_table": table[["body", "line", "proxy"]].to_dict(orient="records"),
            "bodies": bodies,
        }
        a = result.apportionment
        outcomes, conservation = _with_transfers(a.outcomes, inputs.lines, got.flows,
                                                 result.report.summary())
        body_ids = {slug: int(row["id"]) for slug, row in reference.bodies(conn).items()}
        with step(f"Storing the run ({len(a.product):,} atom amounts)"), conn.transaction():
            runs.lock_runs(conn)
            again = runs.find_run(conn, sha)
            if again is not None:
                run_id, created = int(again["id"]), False
            else:
                run_id = runs.save_run(
                    conn, financial_year=request.financial_year, atom_set_id=atom_set_id,
                    inputs_sha256=sha, params=params, algorithm_version=ALGORITHM_VERSION,
                    code_version=__version__, conservation=conservation,
                    outcomes=outcomes, slices=a.slices, product=a.product,
                    body_ids=body_ids,
                )
                store_transfers.save_flows(conn, run_id, got.flows, body_ids)
                created = True
    made = derive_publications(conn, run_id, request.target_sets, step)
    got = runs.get_run(conn, run_id)
    return RunResult(run_id, created, tuple(made), got["conservation"])


def _with_transfers(outcomes: pd.DataFrame, lines: pd.DataFrame, flows: pd.DataFrame,
                    summary: dict) -> tuple[pd.DataFrame, dict]:
    """Line outcomes and totals that say what each payer passed on (and each payee got)."""
    passed = lines.set_index("line_id")["passed_on_pence"]
    out = outcomes.copy()
    out["passed_on_pence"] = out["line_id"].map(passed).fillna(0).astype("int64")
    notes = passed_on_reason(lines, flows).set_axis(lines["line_id"].to_numpy())
    note = out["line_id"].map(notes)
    out["reason"] = note.where(note.notna(), out["reason"])
    by_body = lines.assign(placed=outcomes.set_index("line_id")["allocated_pence"].reindex(
        lines["line_id"]).to_numpy()).groupby("body").agg(
        placed_pence=("placed", "sum"), passed_on_pence=("passed_on_pence", "sum"),
        net_pence=("amount_pence", "sum"))
    received = (flows.groupby("payee")["deducted_pence"].sum() if len(flows)
                else pd.Series(dtype="int64"))
    summary = {**summary,
               "passed_on_pence": int(passed.sum()),
               "reported_pence": int(summary["total_pence"] + passed.sum()),
               "bodies": {str(b): {"reported_pence": int(r.net_pence + r.passed_on_pence),
                                   "passed_on_pence": int(r.passed_on_pence),
                                   "received_pence": int(received.get(b, 0)),
                                   "placed_pence": int(r.placed_pence)}
                          for b, r in by_body.iterrows()},
               "transfers": int(len(flows))}
    return out, summary


def _by_area(conn: Connection, run: dict, atoms: pd.DataFrame, proxies: pd.DataFrame
             ) -> pipeline.Run:
    """The run's own lines apportioned by the area method (no proxy): each figure's range."""
    lines = spend.read_lines(conn, run_id=int(run["id"]))
    lines, membership = _membership(conn, int(run["atom_set_id"]), lines)
    cut = store_atoms.get_atom_set(conn, int(run["atom_set_id"]))["cut_slug"]
    inputs = pipeline.Inputs(lines, atoms, pd.DataFrame(columns=["proxy", "unit_code", "value"]),
                             membership, cut, atom_proxies=proxies)
    return pipeline.compute(pipeline.by_area(inputs))


def derive_publications(
    conn: Connection, run_id: int, target_sets: tuple[str, ...] | list[str], step: Step = quiet
) -> list[str]:
    """Publish ``run_id`` through each target set it is not yet published to (no re-run).

    Returns the collection ids of the run in those target sets. Nothing becomes current.
    """
    run = runs.get_run(conn, run_id)
    have = runs.published_sets(conn, run_id)
    wanted = [(s, store_boundaries.get_set(conn, s)) for s in target_sets]
    missing = [(s, meta) for s, meta in wanted if int(meta["id"]) not in have]
    if missing:
        product = runs.run_product(conn, run_id)
        slices = runs.run_slices(conn, run_id)
        atoms = store_atoms.read_atoms(conn, int(run["atom_set_id"]))
        zone_set_id = store_atoms.get_atom_set(conn, int(run["atom_set_id"]))["zone_set_id"]
        proxies = atom_proxy_values(atoms, reference.proxy_values(conn, zone_set_id))
        computed = pipeline.Run.stored(product, slices, proxies)
        with step(f"Run {run_id} by the area method (for each figure's range)"):
            alternative = _by_area(conn, run, atoms, proxies)
        bodies = list(run["params"]["bodies"])
        divisions = reference.cofog_divisions(conn)
        body_names = {slug: row["name"] for slug, row in reference.bodies(conn).items()}
        writes = []
        for target_set, meta in missing:
            xw = ensure_crosswalk(conn, int(run["atom_set_id"]), target_set, step)
            with step(f"Summing run {run_id} into {target_set}"):
                units = store_boundaries.read_boundaries(conn, int(meta["id"]))
                pub = pipeline.publish(computed, target_set, xw, units, bodies,
                                       alternative=pipeline.Alternative(alternative, atoms))
            year = run["financial_year"]
            writes.append(runs.CollectionWrite(
                collection_id=collection_id(target_set, year),
                target_set_id=int(meta["id"]),
                title=f"Public spend {year}: {meta['name']}",
                description=(
                    f"Net current expenditure {year} of {', '.join(bodies)} apportioned to "
                    f"{meta['name']} ({len(units)} features), run {run_id}. Pounds; per_head "
                    f"uses {RESIDENTS}."
                ),
                target_alloc=pub.target_alloc,
                allocated_pence=pub.outcome.allocated_pence,
                outside_pence=pub.outcome.outside_pence,
                features=pub.features,
                schema=property_schema(pub.features, divisions, body_names),
            ))
        with step(f"Storing {len(writes)} publication(s) of run {run_id}"), conn.transaction():
            runs.lock_runs(conn)
            have = runs.published_sets(conn, run_id)
            for w in writes:
                if w.target_set_id not in have:
                    runs.save_publication(conn, run_id, w)
    have = runs.published_sets(conn, run_id)
    return [have[int(meta["id"])] for _, meta in wanted]


def publish(
    conn: Connection, run_id: int, target_sets: tuple[str, ...] | list[str] | None = None,
    step: Step = quiet,
) -> list[str]:
    """Make ``run_id`` the run its collections serve (deriving any that are missing).

    ``target_sets`` default to every set the run is already published to. Returns the
    collection ids now serving the run.
    """
    run = runs.get_run(conn, run_id)
    if target_sets is None:
        ids = [c["id"] for c in run["collections"]]
    else:
        ids = derive_publications(conn, run_id, target_sets, step)
    if not ids:
        raise NotFound(f"run {run_id} has no publications",
                       "name a target set: `placespend publish RUN --to SET`")
    with conn.transaction():
        runs.lock_runs(conn)
        return runs.point_collections(conn, run_id, ids)


def unit_crosswalk(conn: Connection, source_set: str, target_set: str, *,
                   basis: str = "population", zone_set: str = "london-lsoa-2011",
                   step: Step = quiet) -> pd.DataFrame:
    """Each source unit's share in each target unit, by residents or by area.

    Source units are cut into atoms with ``zone_set`` (stored, reused) and the atoms crossed
    to ``target_set`` (exact three-way pieces where the sets do not nest). Returns
    source_code, target_code, weight (see :func:`allocation.crosswalk.unit_crosswalk`).
    """
    if basis not in ("population", "area"):
        raise BadRequest(f"no crosswalk basis {basis!r}", "use population or area")
    atom_set_id = ensure_atoms(conn, zone_set, source_set, step)
    atoms = store_atoms.read_atoms(conn, atom_set_id)
    weights = ensure_crosswalk(conn, atom_set_id, target_set, step)
    if basis == "area":
        values = atoms.set_index("atom_id")["area_m2"]
    else:
        zone_set_id = store_atoms.get_atom_set(conn, atom_set_id)["zone_set_id"]
        per_atom = atom_proxy_values(atoms, reference.proxy_values(conn, zone_set_id))
        if RESIDENTS not in per_atom:
            raise InputError(f"proxy {RESIDENTS} is not loaded on {zone_set}",
                             "load it, or use basis area")
        values = per_atom[RESIDENTS]
    return crosswalk_of_units(atoms, weights, values)


def crosswalk_table(conn: Connection, source_set: str, target_set: str, *,
                    basis: str = "population", zone_set: str = "london-lsoa-2011",
                    step: Step = quiet) -> pd.DataFrame:
    """:func:`unit_crosswalk` as it is handed out (CSV, API).

    Weights to 9 dp, with the basis and both sets' vintages on every row.
    """
    src = store_boundaries.get_set(conn, source_set)
    dst = store_boundaries.get_set(conn, target_set)
    weights = unit_crosswalk(conn, source_set, target_set, basis=basis, zone_set=zone_set,
                             step=step)
    return weights.assign(weight=weights["weight"].round(9), basis=basis,
                          source_vintage=src["vintage"], target_vintage=dst["vintage"])


def line_spread(conn: Connection, run_id: int, line_id: int) -> pd.DataFrame:
    """One line's pence per atom (atom_id, zone_code, cut_code, amount_pence).

    Derived from the run's stored inputs exactly as the run placed it.
    """
    run = runs.get_run(conn, run_id)
    lines = spend.read_lines(conn, run_id=run_id)
    if not (lines["line_id"] == line_id).any():
        raise NotFound(f"line {line_id} is not in run {run_id}",
                       f"list the run's lines: GET /runs/{run_id}/lines")
    atom_set = store_atoms.get_atom_set(conn, int(run["atom_set_id"]))
    atoms = store_atoms.read_atoms(conn, int(run["atom_set_id"]))
    me = lines.loc[lines["line_id"] == line_id].iloc[0]
    if not estimate_sets(lines):  # only the lines that can share a split with this one
        lines = lines.loc[(lines["area_set"] == me["area_set"])
                          | (lines["area_set"].isna() & pd.isna(me["area_set"]))]
    lines, membership = _membership(conn, int(run["atom_set_id"]), lines)
    proxies = atom_proxy_values(atoms, reference.proxy_values(conn, int(atom_set["zone_set_id"])))
    parts = expand_estimates(lines)
    ids = [line_id] if parts is None else parts.lines["line_id"][parts.source == line_id]
    spread = pd.concat([spread_one_line(
        lines if parts is None else parts.lines, atoms, proxies, membership,
        cut_set=atom_set["cut_slug"], line_id=int(i)) for i in ids], ignore_index=True)
    spread = spread.groupby("atom_id", as_index=False)["amount_pence"].sum()
    return spread.merge(atoms[["atom_id", "zone_code", "cut_code"]], on="atom_id")[
        ["atom_id", "zone_code", "cut_code", "amount_pence"]]
