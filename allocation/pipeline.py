"""The one pure pipeline: inputs in, the atom product and its conservation report out.

The orchestrator (``placespend.runs``), the benchmarks and the tests all call these two steps,
so there is one definition of how a figure is made:

1. :func:`compute`: spread every line over the atoms (:func:`allocation.apportion.apportion`)
   and account for every penny (:class:`allocation.conservation.ConservationReport`). This is
   a *run*: it depends on the lines, the proxies, the atoms and the reporting areas only.
2. :func:`publish`: sum a run's atom product into one target geography through its crosswalk
   (:func:`allocation.crosswalk.to_targets`) and make the flat feature properties. This is a
   *publication*: any number of them can be made from one run, at any time, without re-running.

Geometry (atoms, crosswalks) is made beforehand by ``geo``; nothing here touches it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from allocation import estimates
from allocation.apportion import Apportionment, apportion, atom_proxy_values
from allocation.conservation import LINE_COLUMNS, ConservationReport, TargetOutcome
from allocation.crosswalk import best_fit, coded, target_values, text_targets, to_targets
from allocation.flows import cells_of
from allocation.summary import budget, feature_properties
from domain.errors import ConservationError

#: The proxy every population figure (``population``, ``per_head``) is taken from.
RESIDENTS = "residents-all"


@dataclass(frozen=True)
class Inputs:
    """Everything a run depends on, as plain tables.

    ``lines``: line_id, body, line, cofog_code, amount_pence, area_set, area_code, proxy.
    ``atoms``: atom_id, zone_code, zone_share, area_m2 (and cut_code).
    ``proxy_values``: proxy, unit_code, value (on the small areas the atoms were cut from).
    ``membership``: set, code, atom_id, weight (the atoms of every reporting area).
    ``cut_set``: the boundary set the atoms were cut by (its lines are ``direct``).
    ``atom_proxies``: the atoms' proxy values if already worked out
    (:func:`allocation.apportion.atom_proxy_values` of ``atoms`` and ``proxy_values``; they
    depend on no line, so a cached path keeps them with the atoms).
    """

    lines: pd.DataFrame
    atoms: pd.DataFrame
    proxy_values: pd.DataFrame
    membership: pd.DataFrame
    cut_set: str
    atom_proxies: pd.DataFrame | None = None


@dataclass(frozen=True)
class Run:
    """A computed run: the atom product, the atoms' proxy values and the report."""

    apportionment: Apportionment
    proxies: pd.DataFrame  # indexed by atom_id, one column per proxy
    report: ConservationReport

    @classmethod
    def stored(cls, product: pd.DataFrame, slices: pd.DataFrame, proxies: pd.DataFrame) -> Run:
        """A run read back from the store: its product and slices, not its line outcomes.

        That is everything :func:`publish` and :func:`area_budget` need.
        """
        outcomes = pd.DataFrame(columns=list(LINE_COLUMNS))
        return cls(Apportionment(product, slices, outcomes), proxies,
                   ConservationReport(outcomes))


@dataclass(frozen=True)
class Publication:
    """A run seen through one target set."""

    target_set: str
    target_alloc: pd.DataFrame  # target_code, slice_id, amount_pence
    outside_pence: int
    features: pd.DataFrame  # code + flat properties, one row per target unit
    outcome: TargetOutcome


def compute(inputs: Inputs) -> Run:
    """Apportion every line to atoms; the report accounts for every line's pence.

    A line with agency shares is cut into parts first (:mod:`allocation.estimates`); the
    report still has one row per source line.
    """
    proxies = inputs.atom_proxies
    if proxies is None:
        proxies = atom_proxy_values(inputs.atoms, inputs.proxy_values)
    parts = estimates.expand(inputs.lines)
    result = apportion(
        inputs.lines if parts is None else parts.lines, inputs.atoms, proxies,
        inputs.membership, cut_set=inputs.cut_set,
    )
    if parts is not None:
        result = replace(result, outcomes=estimates.join(result.outcomes, parts))
    report = ConservationReport(result.outcomes)
    report.check()
    return Run(result, proxies, report)


def by_area(inputs: Inputs) -> Inputs:
    """The same inputs with every proxy replaced by land area: the **area method**'s run.

    Lines placed directly, or by a body's own estimate, still go where they were reported;
    what a proxy spread is spread by land instead. Published beside the run's own figures it
    gives each figure a range (:func:`publish`'s ``alternative``): a figure that barely moves
    does not hang on the choice of proxy.
    """
    area = inputs.atoms.set_index("atom_id")["area_m2"].astype("float64")
    names = sorted({*map(str, inputs.lines["proxy"].unique()), RESIDENTS})
    proxies = pd.DataFrame({n: area.to_numpy() for n in names}, index=area.index.to_numpy())
    return replace(inputs, atom_proxies=proxies)


def _through(run: Run, crosswalk: pd.DataFrame, label: str) -> tuple[pd.DataFrame, int,
                                                                     pd.Series]:
    """A run through a crosswalk: (target pence per slice, outside pence, residents per target).

    The target pence are :func:`to_targets`' table with target_code as a Categorical (the
    crosswalk is coded once for both sums). Checks that inside + outside is every penny the
    atoms hold.
    """
    a = run.apportionment
    crosswalk = coded(crosswalk)
    target_alloc, outside = to_targets(a.product, crosswalk, n_slices=len(a.slices),
                                       categorical=True)
    if RESIDENTS in run.proxies.columns:
        population = target_values(run.proxies[[RESIDENTS]], crosswalk)[RESIDENTS]
    else:
        population = pd.Series(dtype=float)
    inside = int(target_alloc["amount_pence"].sum())
    held = int(a.product["amount_pence"].sum())
    if inside + outside != held:
        raise ConservationError(
            f"{label}: {inside}p inside + {outside}p outside != {held}p in the atoms",
            "report this as a bug; nothing was published",
        )
    return target_alloc, outside, population


#: How a publication gives small areas to targets: ``split`` (each atom by the share of it in
#: each target, the default) or ``best_fit`` (each small area wholly to one target, as ONS
#: best-fit tables do; :func:`allocation.crosswalk.best_fit`).
FITS = ("split", "best_fit")


def publish(
    run: Run, target_set: str, crosswalk: pd.DataFrame, units: pd.DataFrame, bodies: list[str],
    alternative: Alternative | None = None, fit: str = "split",
) -> Publication:
    """Sum a run's atom product into ``target_set`` (units: code, name) through ``crosswalk``.

    Needs only the product, its slices and the atoms' proxies (:meth:`Run.stored`), so a stored
    run can be published to any boundary set later without re-running. Inside + outside always
    equals the product. With ``alternative`` (the same lines by the area method,
    :func:`by_area`, and the atoms), each feature also says what it would be by land area
    (``total_by_area``), by ONS-style best fit of whole small areas (``total_best_fit``,
    :func:`allocation.crosswalk.best_fit`) and, where the proxy table names alternative
    proxies, by those (``total_by_alternative_proxy``), and the range they span with the total
    (``range_low``, ``range_high``).

    With ``fit="best_fit"`` (figures comparable with official best-fit tables) what a proxy or
    land area spread goes to each target by whole small areas, residents too; money reported
    for a place stays where it was reported. The money the population proxy spread then shows
    as ``share_best_fit`` (land-area money stays ``share_area``). Needs ``alternative``'s atoms.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}")
    whole = None
    if alternative is not None and alternative.atoms is not None \
            and RESIDENTS in run.proxies:
        whole = best_fit(alternative.atoms, crosswalk, run.proxies[RESIDENTS])
    slices = run.apportionment.slices
    if fit == "best_fit":
        if whole is None:
            raise ValueError("a best-fit publication needs the atoms (alternative.atoms)")
        target_alloc, outside = _through_best_fit(run, crosswalk, whole)
        population = target_values(run.proxies[[RESIDENTS]], coded(whole))[RESIDENTS]
        slices = slices.assign(method=slices["method"].replace({"proxy": "best_fit"}))
    else:
        target_alloc, outside, population = _through(run, crosswalk, f"target {target_set}")
    features = feature_properties(target_alloc, slices, units, population, bodies)
    if alternative is not None:
        other = alternative.by_alternative_proxy
        features = with_range(
            features, _through(alternative.run, crosswalk, "the area method")[0],
            None if whole is None else _best_fit_alloc(run, crosswalk, whole),
            None if other is None else _through(other, crosswalk, "the alternative proxies")[0])
    target_alloc = text_targets(target_alloc)
    outcome = TargetOutcome(
        target_set=target_set,
        features=len(units),
        allocated_pence=int(target_alloc["amount_pence"].sum()),
        outside_pence=outside,
        reason="allocated to atoms outside every unit of this set" if outside else None,
    )
    return Publication(target_set, target_alloc, outside, features, outcome)


def _through_best_fit(run: Run, crosswalk: pd.DataFrame, whole: pd.DataFrame
                      ) -> tuple[pd.DataFrame, int]:
    """Target pence by best fit (:func:`_best_fit_alloc`) and the pence outside every target.

    Inside and outside add up to every penny the atoms hold by construction.
    """
    alloc = _best_fit_alloc(run, crosswalk, whole)
    alloc = alloc.groupby(["target_code", "slice_id"], as_index=False, observed=True)[
        "amount_pence"].sum()
    alloc["target_code"] = pd.Categorical(alloc["target_code"].astype(str))
    held = int(run.apportionment.product["amount_pence"].sum())
    inside = int(alloc["amount_pence"].sum())
    return alloc, held - inside


def _best_fit_alloc(run: Run, crosswalk: pd.DataFrame, fit: pd.DataFrame) -> pd.DataFrame:
    """Target pence with what a proxy or land area spread moved by best fit, the rest exact.

    Money reported for a place (direct) or by the body's own estimate stays where it was put;
    best fit only re-expresses what was spread over small areas.
    """
    a = run.apportionment
    spread = a.slices.loc[a.slices["method"].isin(["proxy", "area"]), "slice_id"]
    moved = a.product["slice_id"].isin(spread.to_numpy())
    parts = [to_targets(a.product.loc[rows], xw, n_slices=len(a.slices))[0]
             for rows, xw in ((moved, fit), (~moved, crosswalk)) if rows.any()]
    if not parts:
        return pd.DataFrame(columns=["target_code", "slice_id", "amount_pence"])
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class Alternative:
    """What a figure's range is made from.

    The run by the area method, the atoms, and the run with each line's alternative proxy
    where the proxy table names one.
    """

    run: Run
    atoms: pd.DataFrame | None = None
    by_alternative_proxy: Run | None = None


def with_range(features: pd.DataFrame, by_area_alloc: pd.DataFrame,
               best_fit_alloc: pd.DataFrame | None = None,
               alternative_alloc: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add each feature's total by each other method, and the range they span.

    The other methods: the area method, best fit, and the alternative proxies (where any).
    """
    codes = features["code"].to_numpy()

    def totals(alloc: pd.DataFrame) -> np.ndarray:
        summed = alloc.groupby("target_code", observed=True)["amount_pence"].sum()
        return summed.reindex(codes).fillna(0).to_numpy(dtype="int64")

    total = features["total_pence"].to_numpy(dtype="float64").astype("int64")
    columns = [("total_by_area", totals(by_area_alloc))]
    if best_fit_alloc is not None:
        columns.append(("total_best_fit", totals(best_fit_alloc)))
    if alternative_alloc is not None:
        columns.append(("total_by_alternative_proxy", totals(alternative_alloc)))
    every = np.column_stack([total, *(v for _, v in columns)])
    columns += [("range_low", every.min(axis=1)), ("range_high", every.max(axis=1))]
    position = list(features.columns).index("share_direct")
    out = features.copy()
    for offset, (name, value) in enumerate(columns):
        out.insert(position + offset, name, value / 100)
    return out


def area_budget(run: Run, crosswalk: pd.DataFrame) -> dict[str, object]:
    """The budget of one area (a drawn polygon) whose crosswalk has one target code.

    ``run`` needs to hold only the atoms the crosswalk touches. Returns the figures of
    :func:`allocation.summary.budget` and ``outside_pence``: the touched atoms' pence that lie
    outside the area.
    """
    return area_budget_and_cells(run, crosswalk)[0]


def area_budget_and_cells(run: Run, crosswalk: pd.DataFrame
                          ) -> tuple[dict[str, object], pd.DataFrame]:
    """:func:`area_budget`, and the area's pence by body and COFOG division (its flow view's).

    Both from the one target allocation, so the cells (body, division, pence:
    :func:`allocation.flows.cells_of`) add up to the budget's ``by_body_pence`` and
    ``by_function_pence`` exactly.
    """
    target_alloc, outside, population = _through(run, crosswalk, "the area")
    amounts = target_alloc[["slice_id", "amount_pence"]]
    figures = budget(amounts, run.apportionment.slices, float(population.sum()))
    return {"outside_pence": outside, **figures}, cells_of(amounts, run.apportionment.slices)
