"""The pure pipeline (geo + allocation, no database) on hand-computed and random layouts."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from allocation.apportion import apportion_lines, atom_proxy_values, choose_proxies
from allocation.conservation import ConservationReport
from allocation.crosswalk import target_values, to_targets
from allocation.summary import feature_properties
from geo.atoms import build_atoms
from geo.crosswalk import build_crosswalk, nested_crosswalk
from tests import world


def _run(zones, wards, areas: dict[str, gpd.GeoDataFrame], proxy_values, lines):
    atoms = build_atoms(zones, wards)
    membership = pd.concat(
        [
            (nested_crosswalk(atoms) if slug == "fx-wards" else build_crosswalk(atoms, frame))
            .assign(set=slug)
            .rename(columns={"target_code": "code"})
            for slug, frame in areas.items()
        ],
        ignore_index=True,
    )
    proxies = atom_proxy_values(atoms, proxy_values)
    result = apportion_lines(lines, atoms, proxies, membership, cut_set="fx-wards")
    target, outside = to_targets(result.allocations, nested_crosswalk(atoms))
    return atoms, proxies, result, target, outside


def test_hand_computed_world_to_the_penny() -> None:
    areas = {"fx-borough": world.borough(), "fx-wards": world.wards()}
    atoms, proxies, result, target, outside = _run(
        world.zones(), world.wards(), areas, world.PROXY_VALUES, world.LINES
    )
    assert len(atoms) == 3  # Z1|W1, Z2|W1, Z2|W2; no gaps
    assert outside == 0
    by_ward = target.groupby("target_code")["amount_pence"].sum().to_dict()
    assert by_ward == world.EXPECTED_WARD_PENCE
    names = dict(zip(world.LINES["line_id"], world.LINES["line"], strict=True))
    by_line = {
        (names[r.line_id], r.target_code): int(r.amount_pence)
        for r in target.groupby(["line_id", "target_code"], as_index=False)["amount_pence"]
        .sum()
        .itertuples()
    }
    assert by_line == world.EXPECTED_WARD_PENCE_BY_LINE
    methods = {o.line: o.method for o in result.outcomes}
    assert methods == {"A": "proxy", "B": "proxy", "C": "proxy", "D": "area", "E": "direct"}
    report = ConservationReport(result.outcomes)
    report.check()
    assert report.unallocated_pence == 0

    population = target_values(proxies[["residents-all"]], nested_crosswalk(atoms))
    assert population["residents-all"].round(9).to_dict() == {"W1": 350.0, "W2": 50.0}
    props = feature_properties(
        target, world.LINES, world.wards(), population["residents-all"], ["council"]
    ).set_index("code")
    assert props.loc["W1", "total_pence"] == 87_251
    assert props.loc["W1", "total"] == 872.51
    assert props.loc["W1", "per_head"] == round(872.51 / 350, 2)
    assert props.loc["W2", "cofog_07"] == 7.00
    assert props.loc["W2", "share_direct"] == round(700 / 12_783, 6)
    assert props.loc["W1", "share_area"] == round(250 / 87_251, 6)
    assert props.loc["W1", "body_council"] == 872.51


def test_choose_proxies_uses_the_star_row_for_unnamed_lines() -> None:
    table = pd.DataFrame({"line": ["Education services", "*"],
                          "proxy": ["residents-0-15", "residents-all"]})
    lines = pd.DataFrame({"line": ["Education services", "Police services"]})
    assert choose_proxies(lines, table).tolist() == ["residents-0-15", "residents-all"]


def test_gap_atoms_cover_what_no_zone_covers() -> None:
    zones = world.zones().iloc[[0]]  # only Z1: the rest of W1 and all of W2 are gaps
    atoms = build_atoms(zones, world.wards())
    assert sorted(zip(atoms["cut_code"], atoms["zone_code"].fillna("-"), strict=True)) == [
        ("W1", "-"), ("W1", "Z1"), ("W2", "-")
    ]
    assert atoms["area_m2"].sum() == 20_000.0


def test_a_line_over_an_area_with_no_atoms_is_reported_not_lost() -> None:
    lines = world.LINES.iloc[[0]].assign(area_code="NOWHERE")
    areas = {"fx-borough": world.borough()}
    _, _, result, target, _ = _run(world.zones(), world.wards(), areas, world.PROXY_VALUES, lines)
    assert target.empty
    (outcome,) = result.outcomes
    assert outcome.allocated_pence == 0 and outcome.unallocated_pence == 100_000
    assert "has no atoms" in outcome.reason
    ConservationReport(result.outcomes).check()


@st.composite
def layouts(draw):
    """Random rectangles: zones on one grid, wards on another, over the same 1 km square."""
    def cuts(label: str) -> list[float]:
        inner = draw(st.lists(st.integers(1, 999), min_size=0, max_size=4, unique=True))
        return [0.0, *sorted(float(v) for v in inner), 1000.0]

    zx, zy, wx, wy = cuts("zx"), cuts("zy"), cuts("wx"), cuts("wy")

    def grid(xs, ys, prefix):
        cells = [
            box(world.X0 + x1, world.Y0 + y1, world.X0 + x2, world.Y0 + y2)
            for x1, x2 in zip(xs[:-1], xs[1:], strict=True)
            for y1, y2 in zip(ys[:-1], ys[1:], strict=True)
        ]
        codes = [f"{prefix}{i}" for i in range(len(cells))]
        return gpd.GeoDataFrame({"code": codes, "name": codes, "parent_code": None},
                                geometry=cells, crs=27700)

    zones, wards = grid(zx, zy, "Z"), grid(wx, wy, "W")
    pops = draw(st.lists(st.integers(0, 5000), min_size=len(zones), max_size=len(zones)))
    amounts = draw(st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=6))
    return zones, wards, pops, amounts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_random_layouts_conserve_every_penny(layout) -> None:
    zones, wards, pops, amounts = layout
    region = gpd.GeoDataFrame({"code": ["R"], "name": ["R"], "parent_code": [None]},
                              geometry=[box(world.X0, world.Y0, world.X0 + 1000,
                                            world.Y0 + 1000)], crs=27700)
    values = pd.DataFrame({"proxy": "residents-all", "unit_code": zones["code"],
                           "value": np.array(pops, dtype=float)})
    lines = pd.DataFrame({
        "line_id": range(1, len(amounts) + 1), "body": "b", "line": "x", "cofog_code": "01",
        "amount_pence": amounts, "area_set": "fx-region", "area_code": "R",
        "proxy": "residents-all",
    })
    _, _, result, target, outside = _run(zones, wards, {"fx-region": region}, values, lines)
    assert outside == 0
    assert int(target["amount_pence"].sum()) == sum(amounts)
    per_line = target.groupby("line_id")["amount_pence"].sum()
    for line_id, amount in zip(lines["line_id"], amounts, strict=True):
        assert int(per_line.get(line_id, 0)) == amount
    expected = "proxy" if sum(pops) > 0 else "area"
    assert {o.method for o in result.outcomes if o.amount_pence} <= {expected}
