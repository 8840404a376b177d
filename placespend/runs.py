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
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from allocation import netting, pipeline
from allocation.apportion import AT_POINT, ESTIMATE_PREFIX, atom_proxy_values, choose_rows
from allocation.apportion import line_spread as spread_one_line
from allocation.catchment import CATCHMENT_PREFIX, catchment_weights
from allocation.crosswalk import unit_crosswalk as crosswalk_of_units
from allocation.estimates import estimate_sets
from allocation.estimates import expand as expand_estimates
from allocation.summary import property_schema
from allocation.transfers import count_once, net_of_transfers, passed_on_reason
from boundaries import catalog
from domain.errors import BadRequest, InputError, NotFound, PlacespendError, Problem, Rejected
from domain.version import ALGORITHM_VERSION
from geo.atoms import build_atoms, refine_zone_shares
from geo.crosswalk import build_crosswalk_via_cuts, nested_crosswalk
from intake.reference import NETTING_COLUMNS, read_netting_rules, read_proxy_table
from placespend import __version__
from placespend.progress import Step, quiet
from store import atoms as store_atoms
from store import boundaries as store_boundaries
from store import reference, runs, spend
from store import sites as store_sites
from store import transfers as store_transfers
from store.db import Connection

Basis = Literal["served", "delivered"]
Fit = Literal["split", "best_fit"]

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
    #: Which money two datasets both report, and which of them counts it (``None``: no rules).
    netting_rules: Path | None = field(
        default_factory=lambda: catalog.path(catalog.NETTING_RULES_PATH))
    #: Where a line reported at a site counts: ``served`` (over the residents its site serves,
    #: by the catchment its proxy table row names) or ``delivered`` (at the site).
    basis: Basis = "served"
    #: A set of finer units (Output Areas) sharing each straddling small area between its
    #: atoms, instead of land area; ``finer_proxy``: a proxy on it (else each unit counts 1).
    finer: str | None = None
    finer_proxy: str | None = None
    #: Publications derived with the run (not made current: see :func:`publish`).
    target_sets: tuple[str, ...] = DEFAULT_TARGETS


@dataclass(frozen=True)
class RunResult:
    """The run that holds the answer, whether it was made now, and its totals."""

    run_id: int
    created: bool
    collections: tuple[str, ...]
    conservation: dict


def collection_id(target_set: str, financial_year: str, basis: Basis = "served",
                  fit: Fit = "split") -> str:
    """The published id: ``hackney-wards-2014-spend-2014-15`` (no dots, for QGIS).

    A run on the delivered basis has ``-delivered`` after it, a best-fit publication
    ``-best-fit``.
    """
    suffix = ("" if basis == "served" else f"-{basis}") + ("" if fit == "split" else "-best-fit")
    return f"{target_set}-spend-{financial_year}{suffix}"


#: How each basis is described on a collection.
BASIS_TEXT = {
    "served": "who it serves: money paid to a site is spread over the residents its catchment "
              "serves where the proxy table names a catchment",
    "delivered": "where it is delivered: money paid to a site is counted at the site",
}


def ensure_atoms(conn: Connection, zone_set: str, cut_set: str, step: Step = quiet,
                 client: Client | None = None, finer: str | None = None,
                 finer_proxy: str | None = None) -> int:
    """Id of the atom set cutting ``zone_set`` by ``cut_set``, building and storing it once.

    With a dask ``client`` the atoms are cut on its cluster (the same atoms, to the bit). With
    ``finer`` (a boundary set of smaller units, such as Output Areas) each straddling small
    area is shared between its atoms by the finer units it holds (each counting 1, or its
    ``finer_proxy`` value) instead of by land area (:func:`geo.atoms.refine_zone_shares`).
    """
    zone_meta = store_boundaries.get_set(conn, zone_set)
    cut_meta = store_boundaries.get_set(conn, cut_set)
    fine_meta = None if finer is None else store_boundaries.get_set(conn, finer)
    fine_id = None if fine_meta is None else int(fine_meta["id"])
    with conn.transaction():
        # A second process building the same atoms waits here, then finds the first's.
        store_atoms.lock_building(conn, f"atoms:{zone_meta['id']}:{cut_meta['id']}:"
                                  f"{fine_id}:{finer_proxy}")
        found = store_atoms.find_atom_set(conn, int(zone_meta["id"]), int(cut_meta["id"]),
                                          fine_id, finer_proxy)
        if found is not None:
            return int(found["id"])
        return _build_atoms(conn, zone_set, cut_set, zone_meta, cut_meta, fine_meta,
                            finer, finer_proxy, step, client)


def _build_atoms(conn: Connection, zone_set: str, cut_set: str, zone_meta: dict,
                 cut_meta: dict, fine_meta: dict | None, finer: str | None,
                 finer_proxy: str | None, step: Step, client: Client | None) -> int:
    """Cut, share and store an atom set (see :func:`ensure_atoms`); return its id."""
    fine_id = None if fine_meta is None else int(fine_meta["id"])
    if finer_proxy is not None and fine_meta is None:
        raise BadRequest("a finer proxy needs its finer set", "name the set with --finer")
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
    slug = f"{zone_set}@{zone_meta['version']}--{cut_set}@{cut_meta['version']}"
    if fine_meta is not None:
        with step(f"Sharing straddling {zone_set} units by {finer}"):
            values = None
            if finer_proxy is not None:
                known = reference.proxy_values(conn, fine_id)
                values = known[known["proxy"] == finer_proxy].set_index("unit_code")["value"]
                if values.empty:
                    raise InputError(f"proxy {finer_proxy} is not loaded on {finer}",
                                     "load it, or leave the finer proxy out (each finer unit "
                                     "then counts 1)")
            atoms = refine_zone_shares(atoms, zones, store_boundaries.read_boundaries(
                conn, fine_id), values)
        slug += f"--by-{finer}@{fine_meta['version']}" + (
            f":{finer_proxy}" if finer_proxy else "")
    with step(f"Storing {len(atoms):,} atoms"):
        return store_atoms.save_atoms(
            conn, slug=slug, zone_set_id=int(zone_meta["id"]), cut_set_id=int(cut_meta["id"]),
            atoms=atoms, fine_set_id=fine_id, fine_proxy=finer_proxy,
        )


def ensure_crosswalk(
    conn: Connection, atom_set_id: int, target_set: str, step: Step = quiet
) -> pd.DataFrame:
    """The crosswalk from an atom set to ``target_set``, building and storing it once."""
    target_id = store_boundaries.set_id(conn, target_set)
    with conn.transaction():
        # A second process building the same crosswalk waits here, then reads the first's.
        store_atoms.lock_building(conn, f"crosswalk:{atom_set_id}:{target_id}")
        found = store_atoms.find_crosswalk(conn, atom_set_id, target_id)
        if found is not None:
            return store_atoms.read_crosswalk(conn, found)
        return _build_crosswalk(conn, atom_set_id, target_set, target_id, step)


def _build_crosswalk(conn: Connection, atom_set_id: int, target_set: str, target_id: int,
                     step: Step) -> pd.DataFrame:
    """Build and store a crosswalk (see :func:`ensure_crosswalk`); return its weights."""
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
    store_atoms.save_crosswalk(conn, atom_set_id, target_id, weights)
    return weights


def _inputs_sha(lines: pd.DataFrame, request: RunRequest, atom_set: int,
                proxies: pd.DataFrame, flows: pd.DataFrame, netted: pd.DataFrame) -> str:
    """The fingerprint of what decides a run's figures.

    That is the lines (net of what was passed on and netted) with their proxies, the
    transfers counted, the netting rules' outcome, the proxy values, the atom set, the basis
    and the algorithm version; never the target sets (publications are derived from a run).
    """
    h = hashlib.sha256()
    h.update(lines[["line_id", "amount_pence", "proxy"]].to_csv(index=False).encode())
    if "alternative" in lines and (lines["alternative"] != "").any():
        h.update(lines["alternative"].to_csv(index=False).encode())  # the figures' ranges
    if request.basis == "served" and lines["area_set"].astype(str).str.startswith(
            CATCHMENT_PREFIX).any():  # which lines are spread over a site's catchment
        h.update(lines[["area_set", "area_code"]].to_csv(index=False).encode())
    if len(flows):
        h.update(flows.drop(columns="transfer_ids").to_csv(index=False).encode())
    if estimate_sets(lines):  # a body's own shares change where its pence go
        h.update(json.dumps([s if isinstance(s, dict) else None for s in lines["shares"]],
                            sort_keys=True).encode())
    h.update(proxies.sort_values(["proxy", "unit_code"]).to_csv(index=False).encode())
    if len(netted):
        h.update(netted.to_csv(index=False).encode())
    h.update(json.dumps([request.cut_set, request.zone_set, atom_set, request.basis,
                         ALGORITHM_VERSION]).encode())
    return h.hexdigest()


def _choose(lines: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The lines with the proxy the table gives them.

    Also the catchment (for a site's lines) and any alternative proxy (for the range).
    """
    rows = choose_rows(lines, table).to_numpy(dtype=np.intp)

    def column(name: str) -> np.ndarray:
        values = table[name] if name in table else pd.Series("", index=table.index)
        return values.fillna("").astype(str).to_numpy()[rows]

    return lines.assign(proxy=table["proxy"].astype(str).to_numpy()[rows],
                        catchment=column("catchment"), alternative=column("alternative"))


def _membership(conn: Connection, atom_set_id: int, lines: pd.DataFrame, step: Step = quiet,
                *, basis: Basis = "delivered") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Which atoms each line's area holds: (lines, membership atom_id, set, code, weight).

    A line reported for an area reaches the atoms of that area (a stored crosswalk); a line
    reported at a point (a site, a postcode, coordinates) reaches the one atom its point falls
    in, and is placed there directly (area set :data:`AT_POINT`, code the atom id) on the
    *delivered* basis. On the *served* basis a line reported at a site whose proxy table row
    names a catchment reaches the atoms its site's catchment covers
    (:mod:`allocation.catchment`), weighted by the share of their residents it serves.
    """
    at_point = lines["area_set"].isna() & lines["x"].notna()
    lines = lines.copy()
    if basis == "served" and "catchment" in lines and "site_id" in lines:
        served = (at_point & lines["site_id"].notna()
                  & (lines["catchment"].fillna("").astype(str) != "")).to_numpy().copy()
    else:
        served = np.zeros(len(lines), dtype=bool)
    lines["basis_note"] = None
    catchment_parts = _catchments(conn, atom_set_id, lines, served, step) if served.any() else []
    at_point &= ~served
    parts = [
        ensure_crosswalk(conn, atom_set_id, area_set, step).assign(set=area_set)
        .rename(columns={"target_code": "code"})
        for area_set in sorted(map(str, lines.loc[~at_point & ~served, "area_set"].unique()))
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
    return lines, pd.concat([*parts, *catchment_parts], ignore_index=True)


def _catchments(conn: Connection, atom_set_id: int, lines: pd.DataFrame, served: np.ndarray,
                step: Step) -> list[pd.DataFrame]:
    """Point the ``served`` lines at their site's catchment; return the membership rows.

    One membership set per site set and size attribute.

    ``lines`` and ``served`` are changed in place: a line whose site has size 0 (a practice
    with no registered patients serves no list) stays at its site, with a note saying so.
    """
    sites = store_sites.sites_with(conn, sorted({int(v) for v in lines.loc[served, "site_id"]}))
    by_id = sites.set_index("site_id")
    with step(f"Catchments of {int(served.sum()):,} sites' lines"):
        points = store_atoms.atom_points(conn, atom_set_id)
        parts = []
        keys = pd.DataFrame({"set": by_id.loc[lines.loc[served, "site_id"].astype(np.int64),
                                              "set_slug"].to_numpy(),
                             "attr": lines.loc[served, "catchment"].to_numpy()},
                            index=lines.index[served])
        for (set_slug, attr), mine in keys.groupby(["set", "attr"]):
            rivals = sites[sites["set_slug"] == set_slug]
            size = pd.to_numeric(rivals["attrs"].map(lambda a, k=attr: a.get(k)),
                                 errors="coerce")
            own = by_id.loc[lines.loc[mine.index, "site_id"].astype(np.int64)]
            own_size = pd.to_numeric(own["attrs"].map(lambda a, k=attr: a.get(k)),
                                     errors="coerce").to_numpy()
            if np.isnan(own_size).any():
                raise InputError(
                    f"site {own['site_code'].to_numpy()[np.isnan(own_size)][0]} of {set_slug} "
                    f"has no number in {attr!r}, which sizes its catchment",
                    f"load the site set with a {attr} field for every site, or name another "
                    "field in the proxy table's catchment column")
            empty = mine.index[own_size <= 0]
            lines.loc[empty, "basis_note"] = (f"its site has no {attr}: it serves no list, so "
                                              "it is counted at the site, where it is delivered")
            served[lines.index.get_indexer(empty)] = False
            mine, own = mine.loc[own_size > 0], own.loc[own_size > 0]
            weights = catchment_weights(points, pd.DataFrame({
                "code": rivals["site_code"].to_numpy(), "x": rivals["x"].to_numpy(),
                "y": rivals["y"].to_numpy(), "size": size.fillna(0).to_numpy()}))
            area_set = f"{CATCHMENT_PREFIX}{set_slug}/{attr}"
            lines.loc[mine.index, "area_set"] = area_set
            lines.loc[mine.index, "area_code"] = own["site_code"].to_numpy()
            lines.loc[mine.index, ["x", "y"]] = np.nan
            wanted = weights["code"].isin(set(own["site_code"]))
            parts.append(weights.loc[wanted].assign(set=area_set)[
                ["atom_id", "set", "code", "weight"]])
    return parts


@dataclass(frozen=True)
class _Gathered:
    """What a run is computed from, read from the store."""

    inputs: pipeline.Inputs
    atom_set_id: int
    table: pd.DataFrame
    #: The transfers counted once, with what was taken off the payers' lines.
    flows: pd.DataFrame
    #: What each netting rule took off (:class:`allocation.netting.Netted`'s report).
    netting: pd.DataFrame


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
    known = spend.known_names(conn)
    _check_table_lines(table, lines, request, known)
    lines = _choose(lines, table)
    atom_set_id = ensure_atoms(conn, request.zone_set, request.cut_set, step, client,
                               request.finer, request.finer_proxy)
    atoms = store_atoms.read_atoms(conn, atom_set_id)
    values = reference.proxy_values(conn, store_boundaries.set_id(conn, request.zone_set))
    if RESIDENTS not in set(values["proxy"]):
        raise InputError(
            f"proxy {RESIDENTS} is not loaded on {request.zone_set}",
            "load it (`placespend load proxy FILE`, or `placespend load embedded`)",
        )
    missing = sorted(set(lines["alternative"]) - {""} - set(values["proxy"]))
    if missing:
        raise InputError(
            f"alternative proxy {missing[0]!r} is named in the proxy table but not loaded",
            "load that proxy or change the table's alternative column to one of: "
            + ", ".join(sorted(set(values["proxy"]))))
    lines, membership = _membership(conn, atom_set_id, lines, step, basis=request.basis)
    netted = _netting(lines, request, known)
    counted = count_once(store_transfers.transfers_for_year(conn, request.financial_year))
    lines, flows = net_of_transfers(netted.lines, counted)
    inputs = pipeline.Inputs(lines, atoms, values, membership, request.cut_set)
    return _Gathered(inputs, atom_set_id, table, flows, netted.report)


def _netting(lines: pd.DataFrame, request: RunRequest, known: dict[str, set[str]]
             ) -> netting.Netted:
    """The lines net of the request's netting rules (none: every line counts whole)."""
    if request.netting_rules is None:
        rules = pd.DataFrame(columns=list(NETTING_COLUMNS))
    else:
        rules = read_netting_rules(request.netting_rules)
        _check_rule_names(rules, known, request.netting_rules.name)
    return netting.apply_rules(lines, rules)


def _check_rule_names(rules: pd.DataFrame, known: dict[str, set[str]], source: str) -> None:
    """Refuse a rule naming a dataset or body that looks like a typo of a loaded one.

    A name close to a loaded one but not it would silently net nothing, so it is refused
    with the name it is close to. A name like nothing loaded is kept (a general table, such as
    the default one, may name datasets this database does not have): the rule then nets
    nothing and the conservation report says so.
    """
    problems = []
    for i, r in enumerate(rules.itertuples(index=False)):
        for fld, kind in (("dataset", "datasets"), ("body", "bodies"),
                          ("within_dataset", "datasets"), ("within_body", "bodies")):
            value = getattr(r, fld)
            if not value or value == "*" or value in known[kind]:
                continue
            close = difflib.get_close_matches(value, sorted(known[kind]), n=1, cutoff=0.8)
            if close:
                problems.append(Problem(
                    f"rule {r.rule}", f"no {'dataset' if kind == 'datasets' else 'body'} of "
                    "this name is loaded", f"did you mean {close[0]!r}? name it as loaded, "
                    "or '*'", field=fld, value=value, row=i + 2))
    if problems:
        raise Rejected(source, problems)


def _check_table_lines(table: pd.DataFrame, lines: pd.DataFrame, request: RunRequest,
                       known: dict[str, set[str]]) -> None:
    """Refuse a proxy table row that names nothing loaded (a typo would fall to ``*``).

    A row names a body (or ``*``) and a line's name, COFOG group or division (or ``*``). It
    must name a loaded body and a name some loaded line (or mapped code, or COFOG code) has:
    a general table, such as the default one, may name lines a given year does not have, and
    the default table's rows for an embedded body that is not loaded fit nothing and are let be.
    ``known``: "bodies" and "names" loaded (:func:`store.spend.known_names`).
    """
    problems = []
    general = Path(request.proxy_table) == catalog.path(catalog.DEFAULT_PROXIES_PATH)
    for r in table.itertuples():
        if general and r.body != "*" and r.body not in known["bodies"]:
            continue  # the default table's rows for embedded bodies this database lacks
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
    inputs, atom_set_id = got.inputs, got.atom_set_id
    sha = _inputs_sha(inputs.lines, request, atom_set_id, inputs.proxy_values, got.flows,
                      got.netting)
    with conn.transaction():
        # A concurrent run of the same inputs waits here for the first, then reuses its run.
        runs.lock_inputs(conn, sha)
        run_id, created = _run_once(conn, request, sha, got, step, client)
    made = derive_publications(conn, run_id, request.target_sets, step)
    got_run = runs.get_run(conn, run_id)
    return RunResult(run_id, created, tuple(made), got_run["conservation"])


def _run_once(conn: Connection, request: RunRequest, sha: str, got: _Gathered, step: Step,
              client: Client | None) -> tuple[int, bool]:
    """The run of inputs ``sha``, computed and stored (sealed) unless it exists already."""
    inputs, atom_set_id, table = got.inputs, got.atom_set_id, got.table
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
            "finer": request.finer,
            "finer_proxy": request.finer_proxy,
            "proxy_table": table[["body", "line", "proxy", "catchment", "alternative"]].to_dict(
                orient="records"),
            "bodies": bodies,
            "basis": request.basis,
        }
        a = result.apportionment
        outcomes, conservation = _with_transfers(a.outcomes, inputs.lines, got.flows,
                                                 got.netting, result.report.summary())
        conservation["location_basis"] = _basis_summary(inputs.lines, request.basis)
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
                runs.seal_run(conn, run_id)
                created = True
    return run_id, created


def make_run_recorded(
    open_conn: Callable[[], AbstractContextManager[Connection]], request: RunRequest, *,
    by: str, step: Step = quiet, client: Client | None = None, then_publish: bool = False,
) -> RunResult:
    """:func:`make_run` (and, with ``then_publish``, :func:`publish`) as a recorded attempt.

    The attempt is recorded as running on a connection of its own (``open_conn()``, committed
    at once), the run made on another, and the attempt then marked complete with its run, or
    failed with the reason. The run's own transaction leaves nothing if it fails; a process
    that dies mid-run leaves its attempt for :func:`store.runs.reap_attempts` to mark failed.
    """
    with open_conn() as log:
        attempt = runs.start_attempt(log, request_summary(request), by)
        log.commit()
        try:
            with open_conn() as conn:
                result = make_run(conn, request, step, client)
                if then_publish:
                    publish(conn, result.run_id, list(request.target_sets), step=step, by=by)
        except BaseException as exc:
            reason = exc.one_line() if isinstance(exc, PlacespendError) else (
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}")
            try:
                runs.end_attempt(log, attempt, reason=reason[:2000])
                log.commit()
            except Exception:  # noqa: BLE001 - the log connection is gone too: reaped later
                pass
            raise
        runs.end_attempt(log, attempt, run_id=result.run_id)
        log.commit()
    return result


def request_summary(request: RunRequest) -> dict:
    """A run request as JSON (what an attempt records)."""
    return {"financial_year": request.financial_year, "zone_set": request.zone_set,
            "cut_set": request.cut_set, "proxy_table": str(request.proxy_table),
            "netting_rules": None if request.netting_rules is None
            else str(request.netting_rules),
            "basis": request.basis, "finer": request.finer, "finer_proxy": request.finer_proxy,
            "target_sets": list(request.target_sets)}


def _basis_summary(lines: pd.DataFrame, basis: Basis) -> dict:
    """What the run's location basis did, in lines and pence.

    How many were reported at a point and counted there, and how many were spread over a
    site's catchment.
    """
    area_set = lines["area_set"].astype(str)
    at_point = (area_set == AT_POINT).to_numpy()
    by_catchment = area_set.str.startswith(CATCHMENT_PREFIX).to_numpy()
    pence = lines["amount_pence"].to_numpy(dtype=np.int64)
    return {"basis": basis, "text": BASIS_TEXT[basis],
            "at_point_lines": int(at_point.sum()), "at_point_pence": int(pence[at_point].sum()),
            "catchment_lines": int(by_catchment.sum()),
            "catchment_pence": int(pence[by_catchment].sum())}


def _with_transfers(outcomes: pd.DataFrame, lines: pd.DataFrame, flows: pd.DataFrame,
                    netted: pd.DataFrame, summary: dict) -> tuple[pd.DataFrame, dict]:
    """Line outcomes and totals that say what was passed on, received and netted.

    What each payer passed on (and each payee got), and what each netting rule took off which
    line.
    """
    by_id = lines.set_index("line_id")
    passed, net_off = by_id["passed_on_pence"], by_id["netted_pence"]
    out = outcomes.copy()
    out["passed_on_pence"] = out["line_id"].map(passed).fillna(0).astype("int64")
    out["netted_pence"] = out["line_id"].map(net_off).fillna(0).astype("int64")
    own = outcomes.set_index("line_id")["reason"].reindex(by_id.index)
    # a line the rules took whole is not "£0": its note says where its pence are counted
    own = own.where(~((by_id["netted_pence"] != 0) & (by_id["amount_pence"] == 0)), None)
    notes = pd.concat([by_id["netting"], by_id["basis_note"],
                       passed_on_reason(lines, flows).set_axis(by_id.index), own], axis=1)
    joined = notes.apply(lambda r: "; ".join(str(v) for v in r if isinstance(v, str)) or None,
                         axis=1)
    out["reason"] = out["line_id"].map(joined)
    by_body = lines.assign(placed=outcomes.set_index("line_id")["allocated_pence"].reindex(
        lines["line_id"]).to_numpy()).groupby("body").agg(
        placed_pence=("placed", "sum"), passed_on_pence=("passed_on_pence", "sum"),
        netted_pence=("netted_pence", "sum"), net_pence=("amount_pence", "sum"))
    received = (flows.groupby("payee")["deducted_pence"].sum() if len(flows)
                else pd.Series(dtype="int64"))
    summary = {**summary,
               "passed_on_pence": int(passed.sum()),
               "netted_pence": int(net_off.sum()),
               "reported_pence": int(summary["total_pence"] + passed.sum() + net_off.sum()),
               "bodies": {str(b): {"reported_pence": int(r.net_pence + r.passed_on_pence
                                                         + r.netted_pence),
                                   "passed_on_pence": int(r.passed_on_pence),
                                   "netted_pence": int(r.netted_pence),
                                   "received_pence": int(received.get(b, 0)),
                                   "placed_pence": int(r.placed_pence)}
                          for b, r in by_body.iterrows()},
               "transfers": int(len(flows)),
               "netting": netted.to_dict(orient="records")}
    return out, summary


def _alternatives(conn: Connection, run: dict, atoms: pd.DataFrame, proxies: pd.DataFrame
                  ) -> pipeline.Alternative:
    """The run's own lines spread the other ways each figure's range shows.

    By the area method (no proxy), and with each line's alternative proxy where its proxy table
    row names one (the rest as the run spread them; None when no row names one). The lines are
    read and placed once for both.
    """
    lines, membership = _placed_as_run(conn, run, spend.read_lines(conn, run_id=int(run["id"])))
    cut = store_atoms.get_atom_set(conn, int(run["atom_set_id"]))["cut_slug"]
    inputs = pipeline.Inputs(lines, atoms, pd.DataFrame(columns=["proxy", "unit_code", "value"]),
                             membership, cut, atom_proxies=proxies)
    other = lines["alternative"] != ""
    by_other = None
    if other.any():
        by_other = pipeline.compute(replace(inputs, lines=lines.assign(
            proxy=lines["proxy"].where(~other, lines["alternative"]))))
    return pipeline.Alternative(pipeline.compute(pipeline.by_area(inputs)), atoms, by_other)


def _placed_as_run(conn: Connection, run: dict, lines: pd.DataFrame
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A run's own lines (or some of them) with the membership the run placed them by.

    That is its location basis, and each site's catchment as its proxy table named it.
    """
    table = pd.DataFrame(run["params"]["proxy_table"])
    chosen = _choose(lines, table)
    lines = lines.assign(catchment=chosen["catchment"].to_numpy(),
                         alternative=chosen["alternative"].to_numpy())
    return _membership(conn, int(run["atom_set_id"]), lines,
                       basis=run["params"].get("basis", "served"))


def derive_publications(
    conn: Connection, run_id: int, target_sets: tuple[str, ...] | list[str], step: Step = quiet,
    *, fit: Fit = "split",
) -> list[str]:
    """Publish ``run_id`` through each target set it is not yet published to (no re-run).

    ``fit="best_fit"`` makes ONS-style best-fit publications (each small area wholly in one
    target; ids end ``-best-fit``) beside the default ones. Returns the collection ids of the
    run in those target sets. Nothing becomes current.
    """
    run = runs.get_run(conn, run_id)
    have = runs.published_sets(conn, run_id, fit)
    wanted = [(s, store_boundaries.get_set(conn, s)) for s in target_sets]
    missing = [(s, meta) for s, meta in wanted if int(meta["id"]) not in have]
    if missing:
        product = runs.run_product(conn, run_id)
        slices = runs.run_slices(conn, run_id)
        atoms = store_atoms.read_atoms(conn, int(run["atom_set_id"]))
        zone_set_id = store_atoms.get_atom_set(conn, int(run["atom_set_id"]))["zone_set_id"]
        proxies = atom_proxy_values(atoms, reference.proxy_values(conn, zone_set_id))
        computed = pipeline.Run.stored(product, slices, proxies)
        with step(f"Run {run_id} by the area method and any alternative proxies (for each "
                  "figure's range)"):
            alternative = _alternatives(conn, run, atoms, proxies)
        bodies = list(run["params"]["bodies"])
        divisions = reference.cofog_divisions(conn)
        body_names = {slug: row["name"] for slug, row in reference.bodies(conn).items()}
        writes = []
        for target_set, meta in missing:
            xw = ensure_crosswalk(conn, int(run["atom_set_id"]), target_set, step)
            with step(f"Summing run {run_id} into {target_set}"):
                units = store_boundaries.read_boundaries(conn, int(meta["id"]))
                pub = pipeline.publish(computed, target_set, xw, units, bodies,
                                       alternative=alternative, fit=fit)
            year = run["financial_year"]
            basis = run["params"].get("basis", "served")
            how = "" if fit == "split" else (
                " Best fit: each small area (LSOA) wholly in the unit holding most of its "
                "residents, as in ONS best-fit tables, instead of split by share.")
            writes.append(runs.CollectionWrite(
                collection_id=collection_id(target_set, year, basis, fit),
                target_set_id=int(meta["id"]),
                title=f"Public spend {year} ({basis} basis"
                + ("" if fit == "split" else ", best fit") + f"): {meta['name']}",
                description=(
                    f"Public spend {year} of {len(bodies)} bodies ({', '.join(bodies)}) "
                    f"apportioned to {meta['name']} ({len(units)} features), run {run_id}, "
                    f"on one location basis, {BASIS_TEXT[basis]}.{how} Pounds; per_head uses "
                    f"{RESIDENTS}."
                ),
                fit=fit,
                target_alloc=pub.target_alloc,
                allocated_pence=pub.outcome.allocated_pence,
                outside_pence=pub.outcome.outside_pence,
                features=pub.features,
                schema=property_schema(pub.features, divisions, body_names),
            ))
        with step(f"Storing {len(writes)} publication(s) of run {run_id}"), conn.transaction():
            runs.lock_runs(conn)
            have = runs.published_sets(conn, run_id, fit)
            for w in writes:
                if w.target_set_id not in have:
                    runs.save_publication(conn, run_id, w)
                    runs.seal_collection(conn, w.collection_id, run_id)
    have = runs.published_sets(conn, run_id, fit)
    return [have[int(meta["id"])] for _, meta in wanted]


def publish(
    conn: Connection, run_id: int, target_sets: tuple[str, ...] | list[str] | None = None,
    step: Step = quiet, *, fit: Fit = "split", by: str = "cli",
) -> list[str]:
    """Make ``run_id`` the run its collections serve (deriving any that are missing).

    ``target_sets`` default to every set the run is already published to (every fit). With
    ``fit="best_fit"`` the named sets' best-fit publications are derived and made current.
    Returns the collection ids now serving the run.
    """
    run = runs.get_run(conn, run_id)
    if target_sets is None:
        ids = [c["id"] for c in run["collections"]]
    else:
        ids = derive_publications(conn, run_id, target_sets, step, fit=fit)
    if not ids:
        raise NotFound(f"run {run_id} has no publications",
                       "name a target set: `placespend publish RUN --to SET`")
    with conn.transaction():
        runs.lock_runs(conn)
        return runs.point_collections(conn, run_id, ids, by)


def verify(conn: Connection, run_ids: list[int] | None = None) -> list[dict]:
    """Each run's and publication's results hash recomputed against its seal.

    ``state``: ``ok`` (the same), ``changed`` (the stored figures differ from what was sealed
    when they were written) or ``unsealed`` (made before seals existed). Also marks failed
    any run attempt whose process has gone (:func:`store.runs.reap_attempts`).
    """
    runs.reap_attempts(conn)
    out = []
    for row in runs.seals(conn, run_ids):
        run_id, cid = int(row["run_id"]), row["collection_id"]
        now = (runs.results_hash(conn, run_id) if cid is None
               else runs.collection_hash(conn, cid, run_id))
        sealed = row["results_sha256"]
        out.append({"run_id": run_id, "collection_id": cid, "sealed": sealed, "now": now,
                    "state": "unsealed" if sealed is None else "ok" if sealed == now
                    else "changed"})
    return out


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
    lines, membership = _placed_as_run(conn, run, lines)
    proxies = atom_proxy_values(atoms, reference.proxy_values(conn, int(atom_set["zone_set_id"])))
    parts = expand_estimates(lines)
    ids = [line_id] if parts is None else parts.lines["line_id"][parts.source == line_id]
    spread = pd.concat([spread_one_line(
        lines if parts is None else parts.lines, atoms, proxies, membership,
        cut_set=atom_set["cut_slug"], line_id=int(i)) for i in ids], ignore_index=True)
    spread = spread.groupby("atom_id", as_index=False)["amount_pence"].sum()
    return spread.merge(atoms[["atom_id", "zone_code", "cut_code"]], on="atom_id")[
        ["atom_id", "zone_code", "cut_code", "amount_pence"]]
