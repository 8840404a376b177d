"""The pure pipeline (geo + allocation, no database) on hand-computed and random layouts."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from allocation import pipeline
from allocation.apportion import choose_proxies, line_spread
from allocation.crosswalk import target_values
from allocation.summary import SHARE_METHODS, confidence, method_shares
from geo.atoms import build_atoms
from geo.crosswalk import build_crosswalk, nested_crosswalk
from tests import world
from tests.reference import reference


def _membership(atoms: gpd.GeoDataFrame, areas: dict[str, gpd.GeoDataFrame],
                cut_set: str) -> pd.DataFrame:
    return pd.concat(
        [
            (nested_crosswalk(atoms) if slug == cut_set else build_crosswalk(atoms, frame))
            .assign(set=slug)
            .rename(columns={"target_code": "code"})
            for slug, frame in areas.items()
        ],
        ignore_index=True,
    )


def _world_inputs(lines: pd.DataFrame = world.LINES) -> tuple[pipeline.Inputs, gpd.GeoDataFrame]:
    atoms = build_atoms(world.zones(), world.wards())
    areas = {"fx-borough": world.borough(), "fx-wards": world.wards()}
    inputs = pipeline.Inputs(lines, atoms, world.PROXY_VALUES,
                             _membership(atoms, areas, "fx-wards"), "fx-wards")
    return inputs, atoms


def _spreads_by_ward(inputs: pipeline.Inputs, run: pipeline.Run, atoms) -> dict:
    ward_of = dict(zip(atoms["atom_id"], atoms["cut_code"], strict=True))
    names = dict(zip(inputs.lines["line_id"], inputs.lines["line"], strict=True))
    out: dict[tuple[str, str], int] = {}
    for line_id in inputs.lines["line_id"]:
        spread = line_spread(inputs.lines, inputs.atoms, run.proxies, inputs.membership,
                             cut_set=inputs.cut_set, line_id=int(line_id))
        for r in spread.itertuples():
            key = (names[line_id], ward_of[r.atom_id])
            out[key] = out.get(key, 0) + int(r.amount_pence)
    return out


def test_hand_computed_world_to_the_penny() -> None:
    inputs, atoms = _world_inputs()
    run = pipeline.compute(inputs)
    assert len(atoms) == 3  # Z1|W1, Z2|W1, Z2|W2; no gaps
    pub = pipeline.publish(run, "fx-wards", nested_crosswalk(atoms), world.wards(), ["council"])
    assert pub.outside_pence == 0
    by_ward = pub.target_alloc.groupby("target_code")["amount_pence"].sum().to_dict()
    assert by_ward == world.EXPECTED_WARD_PENCE
    assert _spreads_by_ward(inputs, run, atoms) == world.EXPECTED_WARD_PENCE_BY_LINE
    outcomes = run.report.lines.set_index("line")
    assert outcomes["method"].to_dict() == {
        "A": "proxy", "B": "proxy", "C": "proxy", "D": "area", "E": "direct"}
    assert run.report.unallocated_pence == 0
    assert run.report.total_pence == 100_034

    population = target_values(run.proxies[["residents-all"]], nested_crosswalk(atoms))
    assert population["residents-all"].round(9).to_dict() == {"W1": 350.0, "W2": 50.0}
    props = pub.features.set_index("code")
    assert props.loc["W1", "total_pence"] == 87_251
    assert props.loc["W1", "total"] == 872.51
    assert props.loc["W1", "per_head"] == round(872.51 / 350, 2)
    assert props.loc["W2", "cofog_07"] == 7.00
    assert props.loc["W2", "share_direct"] == round(700 / 12_783, 6)
    assert props.loc["W1", "share_area"] == round(250 / 87_251, 6)
    assert props.loc["W1", "body_council"] == 872.51


def test_lines_of_one_key_are_summed_once_and_each_still_adds_back() -> None:
    # Three lines for the same area, proxy, body and function: one key, split once.
    lines = pd.concat([world.LINES.iloc[[0]]] * 3, ignore_index=True).assign(
        line_id=[1, 2, 3], amount_pence=[1, 1, 1])
    inputs, atoms = _world_inputs(lines)
    run = pipeline.compute(inputs)
    product = run.apportionment.product
    assert int(product["amount_pence"].sum()) == 3
    total = {}
    for line_id in (1, 2, 3):
        spread = line_spread(lines, atoms, run.proxies, inputs.membership, cut_set="fx-wards",
                             line_id=line_id)
        assert int(spread["amount_pence"].sum()) == 1
        for r in spread.itertuples():
            total[r.atom_id] = total.get(r.atom_id, 0) + r.amount_pence
    assert total == dict(zip(product["atom_id"], product["amount_pence"], strict=True))


def test_choose_proxies_uses_the_star_row_for_unnamed_lines() -> None:
    table = pd.DataFrame({"line": ["Education services", "*"],
                          "proxy": ["residents-0-15", "residents-all"]})
    lines = pd.DataFrame({"line": ["Education services", "Police services"]})
    assert choose_proxies(lines, table).tolist() == ["residents-0-15", "residents-all"]


def test_the_most_specific_proxy_table_row_wins() -> None:
    """A body's own rows beat the any-body rows; a line's name beats its group, its division."""
    table = pd.DataFrame({
        "body": ["*", "*", "*", "gla", "gla", "hackney"],
        "line": ["*", "Education services", "10", "*", "09", "10.2"],
        "proxy": ["all", "kids", "old", "gla-all", "gla-edu", "hackney-old-age"],
    })
    lines = pd.DataFrame({
        "body": ["hackney", "gla", "gla", "hackney", "hackney", "camden"],
        "line": ["Education services", "Education services", "Police services",
                 "Adult Social Care", "Children Social Care", "Adult Social Care"],
        "cofog_code": ["09", "09", "03", "10", "10", "10"],
        "source_code": ["Education services", "Education services", "Police services",
                        "10.2", "10.4", "10.2"],
    })
    assert choose_proxies(lines, table).tolist() == [
        "kids",             # hackney has no row of its own for it: the any-body line name
        "gla-edu",          # the GLA's own division row beats the any-body line name
        "gla-all",          # the GLA's own '*' beats the any-body '*'
        "hackney-old-age",  # hackney's own group row
        "old",              # 10.4 is not hackney's 10.2: the any-body division row
        "old",              # camden has no rows: the any-body division row
    ]


def test_gap_atoms_cover_what_no_zone_covers() -> None:
    zones = world.zones().iloc[[0]]  # only Z1: the rest of W1 and all of W2 are gaps
    atoms = build_atoms(zones, world.wards())
    assert sorted(zip(atoms["cut_code"], atoms["zone_code"].fillna("-"), strict=True)) == [
        ("W1", "-"), ("W1", "Z1"), ("W2", "-")
    ]
    assert atoms["area_m2"].sum() == 20_000.0


def test_a_line_over_an_area_with_no_atoms_is_reported_not_lost() -> None:
    lines = world.LINES.iloc[[0]].assign(area_code="NOWHERE")
    inputs, _ = _world_inputs(lines)
    run = pipeline.compute(inputs)
    assert run.apportionment.product.empty
    (outcome,) = run.report.lines.itertuples()
    assert outcome.allocated_pence == 0 and outcome.amount_pence == 100_000
    assert "has no atoms" in outcome.reason
    assert run.report.unallocated_pence == 100_000


# ---- random layouts: straddling areas, pieces outside, signed amounts, many keys -------------

SIZE = 1000.0


def _frame(rects: list[tuple[float, float, float, float]], prefix: str) -> gpd.GeoDataFrame:
    codes = [f"{prefix}{i}" for i in range(len(rects))]
    geoms = [box(world.X0 + x1, world.Y0 + y1, world.X0 + x2, world.Y0 + y2)
             for x1, y1, x2, y2 in rects]
    return gpd.GeoDataFrame({"code": codes, "name": codes, "parent_code": None},
                            geometry=geoms, crs=27700)


def _grid(draw, prefix: str, extent: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
    x0, y0, x1, y1 = extent

    def cuts(lo: float, hi: float) -> list[float]:
        inner = draw(st.lists(st.integers(int(lo) + 1, int(hi) - 1), max_size=3, unique=True))
        return [lo, *sorted(float(v) for v in inner), hi]

    xs, ys = cuts(x0, x1), cuts(y0, y1)
    return _frame([(a, c, b, d) for a, b in zip(xs[:-1], xs[1:], strict=True)
                   for c, d in zip(ys[:-1], ys[1:], strict=True)], prefix)


@st.composite
def layouts(draw):
    """Zones tile the square; wards tile only part of it (zone pieces outside every ward);
    agency areas and target neighbourhoods are free rectangles that straddle both, may overlap
    the edge of the wards and may lie partly outside everything."""
    zones = _grid(draw, "Z", (0.0, 0.0, SIZE, SIZE))
    wx = float(draw(st.integers(400, 1000)))
    wy = float(draw(st.integers(400, 1000)))
    wards = _grid(draw, "W", (0.0, 0.0, wx, wy))

    def rect() -> tuple[float, float, float, float]:
        x1, x2 = sorted(draw(st.lists(st.integers(-100, 1100), min_size=2, max_size=2,
                                      unique=True)))
        y1, y2 = sorted(draw(st.lists(st.integers(-100, 1100), min_size=2, max_size=2,
                                      unique=True)))
        return (float(x1), float(y1), float(x2), float(y2))

    agencies = _frame([rect() for _ in range(draw(st.integers(1, 3)))], "A")
    hoods = _frame([rect() for _ in range(draw(st.integers(1, 3)))], "N")
    pops = draw(st.lists(st.integers(0, 5000), min_size=len(zones), max_size=len(zones)))
    kids = [draw(st.integers(0, p)) for p in pops]
    areas = [("fx-agency", c) for c in agencies["code"]] + [("fx-wards", c) for c in
                                                           wards["code"]]
    n_lines = draw(st.integers(1, 12))
    lines = pd.DataFrame({
        "line_id": draw(st.lists(st.integers(1, 10_000), min_size=n_lines, max_size=n_lines,
                                 unique=True)),
        "body": draw(st.lists(st.sampled_from(["b1", "b2"]), min_size=n_lines,
                              max_size=n_lines)),
        "line": "x",
        "cofog_code": draw(st.lists(st.sampled_from(["01", "09.1"]), min_size=n_lines,
                                    max_size=n_lines)),
        "amount_pence": draw(st.lists(st.integers(-(10**12), 10**12), min_size=n_lines,
                                      max_size=n_lines)),
        "proxy": draw(st.lists(st.sampled_from(["residents-all", "residents-0-15"]),
                               min_size=n_lines, max_size=n_lines)),
    })
    picked = draw(st.lists(st.sampled_from(areas), min_size=n_lines, max_size=n_lines))
    lines["area_set"] = [a for a, _ in picked]
    lines["area_code"] = [c for _, c in picked]
    values = pd.concat([
        pd.DataFrame({"proxy": "residents-all", "unit_code": zones["code"],
                      "value": np.array(pops, dtype=float)}),
        pd.DataFrame({"proxy": "residents-0-15", "unit_code": zones["code"],
                      "value": np.array(kids, dtype=float)}),
    ], ignore_index=True)
    return zones, wards, agencies, hoods, values, lines


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_random_layouts_conserve_every_penny_and_match_the_reference(layout) -> None:
    zones, wards, agencies, hoods, values, lines = layout
    atoms = build_atoms(zones, wards)
    membership = _membership(atoms, {"fx-agency": agencies, "fx-wards": wards}, "fx-wards")
    inputs = pipeline.Inputs(lines, atoms, values, membership, "fx-wards")
    run = pipeline.compute(inputs)
    a = run.apportionment

    # The vectorised pass equals the plain per-line reference, to the penny.
    want, outcomes, spreads = reference(lines, atoms, values, membership, "fx-wards")
    got = a.product.merge(a.slices, on="slice_id")
    got = {(int(r.atom_id), r.body, r.cofog_code, r.method): int(r.amount_pence)
           for r in got.itertuples()}
    assert got == want
    report = run.report.lines.set_index("line_id")
    for line_id, o in outcomes.items():
        assert report.loc[line_id, "allocated_pence"] == o["allocated"]
        method = report.loc[line_id, "method"]
        assert (None if pd.isna(method) else method) == o["method"]

    # Every line adds back exactly, or says why not.
    short = report[report["allocated_pence"] != report["amount_pence"]]
    assert short["reason"].notna().all()
    for line_id, row in report.iterrows():
        spread = line_spread(lines, atoms, run.proxies, membership, cut_set="fx-wards",
                             line_id=int(line_id))
        assert int(spread["amount_pence"].sum()) == row["allocated_pence"]
        assert dict(zip(spread["atom_id"], spread["amount_pence"], strict=True)) == spreads.get(
            line_id, {})

    # Any target set: inside + outside = allocated.
    for slug, units, xw in (("fx-wards", wards, nested_crosswalk(atoms)),
                            ("fx-hoods", hoods, build_crosswalk(atoms, hoods))):
        pub = pipeline.publish(run, slug, xw, units, ["b1", "b2"])
        inside = int(pub.target_alloc["amount_pence"].sum())
        assert inside + pub.outside_pence == run.report.allocated_pence
        assert int(pub.features["total_pence"].sum()) == inside


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(-10**9, 10**9), min_size=5, max_size=5), min_size=1,
                max_size=20))
def test_method_shares_always_add_to_one(rows) -> None:
    per_method = np.array(rows, dtype=np.int64)
    shares = method_shares(per_method, per_method.sum(axis=1))
    assert (np.round(shares.sum(axis=1), 6) == 1.0).all()
    nothing = per_method.sum(axis=1) == 0
    assert (shares[nothing, SHARE_METHODS.index("area")] == 1.0).all()


def test_confidence_grades_follow_the_evidence_share() -> None:
    # direct, agency_estimate, proxy, area, best_fit
    shares = np.array([[0.8, 0.0, 0.2, 0.0, 0.0],   # A: 80 % said by the body
                       [0.3, 0.3, 0.4, 0.0, 0.0],   # B: 60 %
                       [0.0, 0.25, 0.75, 0.0, 0.0],  # C: exactly 25 %
                       [0.0, 0.0, 1.0, 0.0, 0.0],   # D: all proxy (today's demo)
                       [0.1, 0.0, 0.3, 0.6, 0.0],   # E: mostly land area
                       [0.0, 0.0, 0.0, 0.0, 0.0]])  # nothing at all: E
    assert confidence(shares).tolist() == ["A", "B", "C", "D", "E", "E"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(-10**9, 10**9),
                          st.lists(st.floats(0, 0.5), min_size=0, max_size=3)),
                min_size=1, max_size=8))
def test_agency_estimate_parts_add_back_to_their_line(rows) -> None:
    from allocation.estimates import expand

    lines = pd.DataFrame({
        "line_id": np.arange(1, len(rows) + 1), "body": "b", "line": "l", "cofog_code": "09",
        "amount_pence": [a for a, _ in rows], "area_set": "s", "area_code": "c",
        "proxy": "p", "x": np.nan, "y": np.nan,
        "shares": [({"set": "w", "shares": {f"u{i}": v / 2 for i, v in enumerate(sh)}}
                    if sh else None) for _, sh in rows]})
    parts = expand(lines)
    if all(not sh for _, sh in rows):
        assert parts is None
        return
    summed = pd.Series(parts.lines["amount_pence"].to_numpy()).groupby(parts.source).sum()
    assert summed.to_dict() == dict(zip(lines["line_id"], lines["amount_pence"], strict=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(1.0, 1000.0), min_size=3, max_size=3))
def test_best_fit_gives_every_small_area_wholly_to_one_target(people) -> None:
    from allocation.crosswalk import best_fit

    atoms = pd.DataFrame({"atom_id": [1, 2, 3], "zone_code": ["Z1", "Z2", "Z2"],
                          "cut_code": ["W1", "W1", "W2"]})
    exact = pd.DataFrame({"atom_id": [1, 2, 3], "target_code": ["W1", "W1", "W2"],
                          "weight": 1.0})
    fit = best_fit(atoms, exact, pd.Series(people, index=[1, 2, 3]))
    zone_of = atoms.set_index("atom_id")["zone_code"]
    targets = fit.assign(zone=fit["atom_id"].map(zone_of)).groupby("zone")["target_code"]
    assert (targets.nunique() == 1).all() and (fit["weight"] == 1.0).all()
    z2 = fit.loc[fit["atom_id"] == 2, "target_code"].iloc[0]
    assert z2 == ("W1" if people[1] >= people[2] else "W2")  # most residents (ties: lower code)
