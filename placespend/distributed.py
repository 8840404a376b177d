"""The atom build and the apportionment on a dask.distributed cluster, to the same penny.

Both steps split into independent parts, so a cluster can do the parts and this machine puts
them together. Nothing is approximated on the way: the answer is the one the single-machine
path (:func:`geo.atoms.build_atoms`, :func:`allocation.pipeline.compute`) gives, frame for frame.

**Atoms.** A zone's pieces depend on that zone and the cuts only (:func:`geo.atoms.atom_pieces`),
so the zones are split into spatial partitions: sorted along the Hilbert curve of their bounding
boxes' centres (the curve ``dask_geopandas``' ``spatial_shuffle`` sorts by) and cut into runs of
about equal vertex count, so neighbouring zones meet the same few wards and every partition costs
about the same. The runs are scattered to the workers and wrapped as one ``dask_geopandas``
GeoDataFrame; the cuts are broadcast to every worker once. Each worker cuts its partitions on one
thread; the pieces are gathered and :func:`geo.atoms.finish_atoms` adds the gap atoms, sorts and
numbers them here, exactly as the single path does. (``spatial_shuffle`` itself was measured
and rejected: it ships the whole zone frame through the scheduler once per eager step and then
shuffles it between workers, ten times slower than the atom build it was meant to spread.)

**Apportionment.** A line's pence depend only on the lines of its group (same reporting area and
proxy), through the group's weights, and on its key (group, body, function), through running
-total rounding. So the lines are partitioned by group, never splitting one: groups are dealt
to partitions, largest first, each to the partition with the least work so far (work: the
group's membership rows times its keys). Every partition is apportioned on a worker by the
public :func:`allocation.apportion.apportion` (atoms, proxies and memberships are broadcast to
the workers once). Then, here:

- the slices (body, function, method) of all partitions are numbered afresh in sorted order,
  as the single path numbers them;
- the partitions' products are summed per (atom, slice): whole pence, summed exactly;
- the outcomes are put back in line order, and the conservation report is built and checked.

A group's weights and a key's rounding do not depend on which other groups share its pass, so
the result does not depend on the number of partitions, nor on the workers.

:func:`connect` turns the ``dask_scheduler`` setting into a client: ``None`` for no cluster,
``"local"`` for two worker processes on this machine, else a scheduler address
(``tcp://host:8786``). See ``docs/scaling.md``.
"""

from __future__ import annotations

import dataclasses
import heapq
from dataclasses import dataclass

import dask.dataframe as dd
import dask_geopandas  # noqa: F401  (registers the GeoDataFrame backend for dask frames)
import distributed
import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from allocation import estimates
from allocation.apportion import Apportionment, apportion, atom_proxy_values, check_lines
from allocation.conservation import ConservationReport
from allocation.money import group_sum
from allocation.pipeline import Inputs, Run
from domain.errors import ConservationError, PlacespendError
from geo.atoms import atom_pieces, finish_atoms

#: Partitions per worker thread when none are asked for: a few each, so a slow one evens out.
PARTITIONS_PER_THREAD = 4
#: Line partitions per worker thread (an apportionment part is cheap; fewer parts, less merging).
LINE_PARTITIONS_PER_THREAD = 1
#: The partitions' products are summed in a dense (atom x slice) table up to this many cells
#: (or four per product row), else by sorting.
DENSE_CELLS = 1_000_000
#: Precision of the Hilbert curve (as ``dask_geopandas``' default).
HILBERT_LEVEL = 16
#: Slice columns, in the order slices are sorted and numbered.
SLICE_KEY = ["body", "cofog_code", "method"]


def connect(address: str | None) -> distributed.Client | None:
    """A client for the ``dask_scheduler`` setting: None (no cluster), "local", or an address.

    ``"local"`` starts a cluster of two single-threaded worker processes on this machine, closed
    with the client; an address (``tcp://host:8786``) connects to a running scheduler.
    """
    if address is None or not address.strip():
        return None
    if address.strip() == "local":
        return distributed.Client(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    return distributed.Client(address.strip())


def _threads(client: distributed.Client) -> int:
    """Worker threads in the cluster (at least 1)."""
    return max(1, sum(client.nthreads().values()))


# --------------------------------------------------------------------------- atoms


def spatial_runs(zones: gpd.GeoDataFrame, partitions: int) -> list[gpd.GeoDataFrame]:
    """Split ``zones`` into up to ``partitions`` spatially compact runs of similar cost.

    Zones are ordered along a Hilbert curve over their extent (empty or missing geometries
    first) and cut where the running vertex count crosses each equal share. Every run is
    non-empty; together they hold every zone once.
    """
    n = len(zones)
    if n == 0:
        return []
    geoms = zones.geometry.to_numpy()
    real = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    distance = np.full(n, -1, dtype=np.int64)
    if real.any():
        shown = zones.geometry[real]
        distance[real] = shown.hilbert_distance(
            total_bounds=shown.total_bounds, level=HILBERT_LEVEL
        ).to_numpy()
    order = np.argsort(distance, kind="stable")
    cost = np.cumsum(shapely.get_num_coordinates(geoms[order]).astype(np.float64) + 1.0)
    marks = cost[-1] * np.arange(1, max(1, partitions)) / max(1, partitions)
    edges = np.unique(np.r_[0, np.searchsorted(cost, marks, side="right"), n])
    return [zones.iloc[order[a:b]] for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _pieces(part: gpd.GeoDataFrame, cuts: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One partition's pieces, on one thread (the worker's thread is the parallelism)."""
    return atom_pieces(part, cuts, threads=1)


def _in_order(futures: list[distributed.Future]) -> list[object]:
    """The futures' results, in their order, each fetched as soon as it is done.

    Fetching (and unpickling) the first parts' pieces here overlaps the cutting of the rest.
    """
    where = {f.key: i for i, f in enumerate(futures)}
    done: list[object] = [None] * len(futures)
    for future, result in distributed.as_completed(futures, with_results=True):
        done[where[future.key]] = result
    return done


def build_atoms(
    client: distributed.Client,
    zones: gpd.GeoDataFrame,
    cuts: gpd.GeoDataFrame,
    *,
    partitions: int | None = None,
) -> gpd.GeoDataFrame:
    """:func:`geo.atoms.build_atoms` on the cluster: the same atoms, cut partition by partition.

    ``partitions``: how many spatial partitions of the zones (default: a few per worker thread).
    """
    if zones.crs != cuts.crs:
        raise ValueError(f"zones are in {zones.crs} but cuts in {cuts.crs}")
    zones = zones[["code", zones.geometry.name]]
    cuts_sent = cuts[["code", cuts.geometry.name]]
    runs = spatial_runs(zones, partitions or PARTITIONS_PER_THREAD * _threads(client))
    if not runs:
        return finish_atoms(_pieces(zones, cuts_sent), cuts)
    shared = client.scatter(cuts_sent, broadcast=True, hash=False)
    parts = client.scatter(runs, hash=False)
    frame = dd.from_delayed(parts, meta=zones.iloc[:0], verify_meta=False)
    meta = _pieces(zones.iloc[:0], cuts_sent.iloc[:0])
    cut = frame.map_partitions(_pieces, shared, meta=meta)
    pieces = pd.concat(_in_order(client.compute(cut.to_delayed())), ignore_index=True)
    return finish_atoms(pieces, cuts)


# --------------------------------------------------------------------------- apportionment


@dataclass(frozen=True)
class _Failed:
    """A domain error raised on a worker, carried back whole (its pickle would lose ``fix``)."""

    kind: type[PlacespendError]
    cause: str
    fix: str
    where: str | None

    def raise_it(self) -> None:
        raise self.kind(self.cause, self.fix, where=self.where)


def _apportion_part(
    lines: pd.DataFrame,
    atoms: pd.DataFrame,
    proxies: pd.DataFrame,
    membership: pd.DataFrame,
    cut_set: str,
) -> Apportionment | _Failed:
    """Apportion one partition of the lines (on a worker)."""
    try:
        done = apportion(lines, atoms, proxies, membership, cut_set=cut_set)
    except PlacespendError as exc:
        return _Failed(type(exc), exc.cause, exc.fix, exc.where)
    # Sent back in narrower integers (a third fewer bytes); :func:`combine` widens them again.
    product = done.product
    narrow = {"slice_id": np.int32}
    if len(product) and product["atom_id"].min() >= 0 and product["atom_id"].max() < 2**31:
        narrow["atom_id"] = np.int32
    return Apportionment(product.astype(narrow), done.slices, done.outcomes)


def line_partitions(
    lines: pd.DataFrame, membership: pd.DataFrame, partitions: int
) -> list[npt.NDArray[np.intp]]:
    """Row positions of ``lines`` for up to ``partitions`` parts; no (area, proxy) group split.

    A group's work is its membership rows times its keys (body, function), plus its lines;
    groups are dealt largest first, each to the part with the least work so far. Empty parts
    are dropped; each part's positions are in ascending order.
    """
    if len(lines) == 0:
        return []
    group = lines.groupby(["area_set", "area_code", "proxy"], sort=True, dropna=False).ngroup()
    group = group.to_numpy(dtype=np.intp)
    n_groups = int(group.max()) + 1
    first = np.unique(group, return_index=True)[1]
    heads = lines.iloc[first][["area_set", "area_code"]]
    rows_of = membership.groupby(["set", "code"], sort=False).size()
    rows = rows_of.reindex(pd.MultiIndex.from_frame(heads)).fillna(0).to_numpy(dtype=np.float64)
    key = lines.groupby(["area_set", "area_code", "proxy", "body", "cofog_code"],
                        sort=False, dropna=False).ngroup().to_numpy()
    keys_per_group = np.bincount(group[np.unique(key, return_index=True)[1]],
                                 minlength=n_groups)
    work = rows * np.maximum(keys_per_group, 1) + np.bincount(group, minlength=n_groups)
    n_parts = max(1, min(partitions, n_groups))
    load = [(0.0, p) for p in range(n_parts)]
    owner = np.empty(n_groups, dtype=np.intp)
    for g in np.lexsort((np.arange(n_groups), -work)):  # largest first; ties by group
        done, p = heapq.heappop(load)
        owner[g] = p
        heapq.heappush(load, (done + float(work[g]), p))
    part_of_line = owner[group]
    return [np.flatnonzero(part_of_line == p) for p in range(n_parts)
            if (part_of_line == p).any()]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate like frames, each column typed as pandas types the whole column.

    pandas gives a column of text (with or without missing values) its ``str`` dtype, but a
    column of missing values only stays ``object``; frames of one part may thus differ in a
    column's dtype while the one-pass frame would not. Such columns are re-typed from their
    values, as the one-pass frame was. Empty frames are left out (unless all are empty).
    """
    kept = [f for f in frames if len(f)] or frames[:1]
    out = pd.concat(kept, ignore_index=True)
    for col in out.columns:
        if len({str(f[col].dtype) for f in kept}) > 1:
            out[col] = pd.Series(out[col].to_numpy(dtype=object), index=out.index)
    return out


def _sorted_codes(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct rows of ``frame[columns]`` in sorted order: (code per row, firsts)."""
    combined = np.zeros(len(frame), dtype=np.int64)
    for col in columns:
        codes, uniques = pd.factorize(frame[col], sort=True)
        combined = combined * (len(uniques) + 1) + codes
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    return inverse.astype(np.intp).ravel(), first


def _positions(ids: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The distinct ``ids``, sorted, and each id's position among them.

    Atom ids are small non-negative integers (0..n-1 as atoms are numbered): then a table
    indexed by id does it in linear time; otherwise sorting does.
    """
    if len(ids) and ids.min() >= 0 and ids.max() < 4 * len(ids) + 1_000_000:
        present = np.zeros(int(ids.max()) + 1, dtype=bool)
        present[ids] = True
        rank = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present).astype(np.int64), rank[ids]
    distinct, position = np.unique(ids, return_inverse=True)
    return distinct.astype(np.int64), position.ravel().astype(np.int64)


def combine(parts: list[Apportionment]) -> Apportionment:
    """One apportionment from the apportionments of a partition of the lines by group.

    Slices are renumbered in sorted (body, function, method) order; products summed per
    (atom, slice) in exact whole pence, ordered by atom then slice, no zero rows; outcomes in
    line order.
    """
    sliced = [p.slices for p in parts]
    every = _concat(sliced)
    code, first = _sorted_codes(every, SLICE_KEY)
    slices = every.iloc[first][SLICE_KEY].reset_index(drop=True)
    slices.insert(0, "slice_id", np.arange(len(slices), dtype=np.int64))
    n_slices = len(slices)

    # Each part's own slice ids -> the new ones (``code`` runs over the parts' slices in turn).
    remap: list[npt.NDArray[np.int64]] = []
    at = 0
    for s in sliced:
        own = s["slice_id"].to_numpy(dtype=np.int64)
        table = np.full(int(own.max()) + 1 if len(own) else 0, -1, dtype=np.int64)
        table[own] = code[at:at + len(own)]
        at += len(own)
        remap.append(table)
    atom = np.concatenate([p.product["atom_id"].to_numpy(dtype=np.int64) for p in parts])
    slice_id = np.concatenate(
        [remap[i][p.product["slice_id"].to_numpy(dtype=np.int64)] for i, p in enumerate(parts)]
    )
    pence = np.concatenate([p.product["amount_pence"].to_numpy(dtype=np.int64) for p in parts])

    atom_ids, position = _positions(atom)
    width = max(n_slices, 1)
    cell = position * width + slice_id
    if len(atom_ids) * width <= max(DENSE_CELLS, 4 * len(cell)):
        # Exact in float64: the partitions' pence add up, in absolute value, to no more than
        # the lines' (each key's split has its total's sign), and those are below 2**52.
        total = np.bincount(cell, weights=pence, minlength=len(atom_ids) * width)
        where = np.flatnonzero(total)
        amount = np.rint(total[where])
    else:
        uniq, inverse = np.unique(cell, return_inverse=True)
        total = group_sum(pence, inverse.ravel().astype(np.intp), len(uniq))
        keep = total != 0
        where, amount = uniq[keep], total[keep]
    product = pd.DataFrame(
        {
            "atom_id": atom_ids[where // width],
            "slice_id": (where % width).astype(np.int64),
            "amount_pence": amount.astype(np.int64),
        },
        copy=False,
    )
    want = group_sum(pence, slice_id, n_slices)
    got = group_sum(product["amount_pence"].to_numpy(), product["slice_id"].to_numpy(), n_slices)
    outcomes = _concat([p.outcomes for p in parts])
    outcomes = outcomes.sort_values("line_id", kind="stable").reset_index(drop=True)
    if not np.array_equal(got, want) or int(want.sum()) != int(outcomes["allocated_pence"].sum()):
        raise ConservationError(
            "the atom products of the cluster's partitions do not add up to the allocated pence",
            "report this as a bug; the run was not written",
        )
    return Apportionment(product, slices, outcomes)


def compute(
    client: distributed.Client, inputs: Inputs, *, partitions: int | None = None
) -> Run:
    """:func:`allocation.pipeline.compute` on the cluster: the same run, to the penny.

    ``partitions``: how many parts to split the lines into, by (area, proxy) group (default:
    one per worker thread).
    """
    proxies = atom_proxy_values(inputs.atoms, inputs.proxy_values)
    cut = estimates.expand(inputs.lines)  # lines with agency shares, cut into their parts
    lines = inputs.lines if cut is None else cut.lines
    check_lines(lines, proxies)
    atoms = inputs.atoms
    if isinstance(atoms, gpd.GeoDataFrame):  # geometry is not needed to apportion
        atoms = pd.DataFrame(atoms.drop(columns=atoms.geometry.name))
    bounds = line_partitions(
        lines, inputs.membership,
        partitions or LINE_PARTITIONS_PER_THREAD * _threads(client),
    )
    if not bounds:
        bounds = [np.arange(len(lines))]
    shared = client.scatter([atoms, proxies, inputs.membership], broadcast=True, hash=False)
    sent = client.scatter([lines.iloc[rows] for rows in bounds], hash=False)
    futures = [
        client.submit(_apportion_part, part, *shared, inputs.cut_set, pure=False)
        for part in sent
    ]
    done = _in_order(futures)
    parts: list[Apportionment] = []
    for d in done:
        if isinstance(d, _Failed):
            d.raise_it()
        else:
            parts.append(d)
    result = combine(parts)
    if cut is not None:
        result = dataclasses.replace(result, outcomes=estimates.join(result.outcomes, cut))
    report = ConservationReport(result.outcomes)
    report.check()
    return Run(result, proxies, report)
