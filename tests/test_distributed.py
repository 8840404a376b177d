"""The atom build and the apportionment on a dask.distributed LocalCluster: the same pence.

Every check compares the cluster's answer with the single-machine path, frame for frame: atoms
with :func:`geo.atoms.build_atoms` (geometry coordinate for coordinate), runs with
:func:`allocation.pipeline.compute` (product, slices, outcomes). No database is needed.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from distributed import Client, LocalCluster
from geopandas.testing import assert_geodataframe_equal

from allocation import pipeline
from allocation.apportion import line_spread
from domain.errors import InputError
from geo.atoms import build_atoms
from geo.crosswalk import build_crosswalk_via_cuts, nested_crosswalk
from placespend import distributed as dist
from placespend.load import embedded_boundaries
from placespend.settings import Settings

X0, Y0 = 533_000.0, 184_000.0
BNG = 27700
PROXIES = ("residents-all", "residents-0-15", "residents-65-plus")


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _boxes(nx: int, ny: int, w: float, h: float, prefix: str, *, dx: float = 0.0,
           dy: float = 0.0, wobble: float = 0.0, seed: int = 0) -> gpd.GeoDataFrame:
    """A grid of boxes (as MultiPolygons), corners moved up to ``wobble`` m (shared corners
    move together, so the grid still tiles)."""
    rng = np.random.default_rng(seed)
    xs = X0 + dx + np.arange(nx + 1) * w
    ys = Y0 + dy + np.arange(ny + 1) * h
    jx = rng.uniform(-wobble, wobble, (nx + 1, ny + 1))
    jy = rng.uniform(-wobble, wobble, (nx + 1, ny + 1))
    jx[[0, -1], :] = 0
    jy[:, [0, -1]] = 0
    codes, geoms = [], []
    for i in range(nx):
        for j in range(ny):
            ring = [(xs[a] + jx[a, b], ys[b] + jy[a, b])
                    for a, b in ((i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1))]
            geoms.append(shapely.MultiPolygon([shapely.Polygon(ring)]))
            codes.append(f"{prefix}{i:02d}{j:02d}")
    return gpd.GeoDataFrame({"code": codes}, geometry=geoms, crs=BNG)


@pytest.fixture(scope="module")
def layout() -> dict[str, gpd.GeoDataFrame]:
    """~380 wobbly zones; wards that straddle them, reach past them (gaps) and one no zone
    touches; zones missing in the middle (a hole); boroughs straddling the wards."""
    zones = _boxes(20, 20, 100.0, 100.0, "Z", wobble=20.0, seed=1)
    hole = zones["code"].isin([f"Z{i:02d}{j:02d}" for i in (9, 10) for j in (9, 10, 11)])
    zones = zones.loc[~hole].reset_index(drop=True)
    wards = _boxes(7, 7, 310.0, 310.0, "W", dx=-70.0, dy=-45.0, wobble=15.0, seed=2)
    lonely = gpd.GeoDataFrame(
        {"code": ["WX"]},
        geometry=[shapely.MultiPolygon([shapely.box(X0 + 5000, Y0, X0 + 5100, Y0 + 100)])],
        crs=BNG,
    )
    wards = pd.concat([wards, lonely], ignore_index=True)
    boroughs = _boxes(3, 2, 750.0, 1100.0, "B", dx=-70.0, dy=-45.0, seed=3)
    return {"zones": zones, "wards": wards, "boroughs": boroughs}


def _same_atoms(got: gpd.GeoDataFrame, want: gpd.GeoDataFrame) -> None:
    assert_geodataframe_equal(got, want, check_less_precise=False)
    assert shapely.equals_identical(got.geometry.to_numpy(), want.geometry.to_numpy()).all()


def test_atoms_on_the_cluster_equal_the_single_build(client, layout) -> None:
    zones, wards = layout["zones"], layout["wards"]
    want = build_atoms(zones, wards)
    assert want["zone_code"].isna().sum() >= 2  # gap atoms: the hole, the edges, the lonely ward
    assert "WX" in set(want.loc[want["zone_code"].isna(), "cut_code"])
    assert (want["zone_share"] < 1).sum() > 100  # straddling pieces
    for partitions in (None, 1, 3, 17):
        _same_atoms(dist.build_atoms(client, zones, wards, partitions=partitions), want)


def test_spatial_runs_hold_every_zone_once_in_compact_runs(layout) -> None:
    zones = layout["zones"]
    runs = dist.spatial_runs(zones, 4)
    assert len(runs) == 4 and all(len(r) for r in runs)
    assert sorted(pd.concat(runs)["code"]) == sorted(zones["code"])
    spread = [shapely.area(shapely.box(*r.total_bounds)) for r in runs]
    assert max(spread) < 0.6 * shapely.area(shapely.box(*zones.total_bounds))


def _london() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    return embedded_boundaries("london-lsoa-2011"), embedded_boundaries("london-wards-2014")


def test_london_atoms_on_the_cluster_equal_the_single_build(client) -> None:
    lsoas, wards = _london()  # 4,835 LSOAs, 630 wards: about a second to read
    want = build_atoms(lsoas, wards)
    assert len(want) > 12_000
    _same_atoms(dist.build_atoms(client, lsoas, wards), want)


# ------------------------------------------------------------------------ apportionment


@pytest.fixture(scope="module")
def inputs(layout) -> pipeline.Inputs:
    zones, wards, boroughs = layout["zones"], layout["wards"], layout["boroughs"]
    atoms = build_atoms(zones, wards)
    region = gpd.GeoDataFrame(
        {"code": ["R"]}, geometry=[shapely.MultiPolygon([shapely.box(*wards.total_bounds)])],
        crs=BNG,
    )
    membership = pd.concat(
        [
            nested_crosswalk(atoms).assign(set="wards"),
            build_crosswalk_via_cuts(atoms, wards, boroughs).assign(set="boroughs"),
            build_crosswalk_via_cuts(atoms, wards, region).assign(set="region"),
        ],
        ignore_index=True,
    ).rename(columns={"target_code": "code"})
    rng = np.random.default_rng(7)
    codes = zones["code"].tolist()
    everyone = rng.integers(0, 3_000, len(codes)).astype(float)
    young = np.where(np.arange(len(codes)) % 2, np.round(everyone * 0.2), 0.0)
    old = np.where(zones.geometry.centroid.x.to_numpy() < X0 + 1200, 0.0, everyone * 0.15)
    proxy_values = pd.DataFrame({
        "proxy": np.repeat(PROXIES, len(codes)),
        "unit_code": codes * 3,
        "value": np.r_[everyone, young, old],
    })
    n = 600
    areas = ([("wards", c) for c in wards["code"]] + [("boroughs", c) for c in boroughs["code"]]
             + [("region", "R"), ("boroughs", "B-NOWHERE")])
    pick = rng.integers(0, len(areas), n)
    amount = rng.integers(-5_000_000, 50_000_000, n)
    amount[rng.random(n) < 0.05] = 0
    amount[:3] = [1, -1, 987_654_321_012]
    lines = pd.DataFrame({
        "line_id": rng.permutation(np.arange(10, 10 + n)),
        "body": rng.choice(["council", "gla", "nhs", "police", "fire"], n),
        "line": [f"line {i}" for i in range(n)],
        "cofog_code": rng.choice(["01", "03", "04", "07", "09", "10"], n),
        "amount_pence": amount,
        "area_set": [areas[i][0] for i in pick],
        "area_code": [areas[i][1] for i in pick],
        "proxy": rng.choice(PROXIES, n),
    })
    return pipeline.Inputs(lines, atoms, proxy_values, membership, "wards")


def _same_run(got: pipeline.Run, want: pipeline.Run) -> None:
    g, w = got.apportionment, want.apportionment
    pd.testing.assert_frame_equal(g.product, w.product, check_exact=True)
    pd.testing.assert_frame_equal(g.slices, w.slices, check_exact=True)
    pd.testing.assert_frame_equal(g.outcomes, w.outcomes, check_exact=True)
    pd.testing.assert_frame_equal(got.proxies, want.proxies, check_exact=True)
    assert got.report.summary() == want.report.summary()


def test_compute_on_the_cluster_equals_the_single_pass(client, inputs) -> None:
    want = pipeline.compute(inputs)
    out = want.apportionment.outcomes
    # The layout exercises every method and every reason a line may fall short.
    assert set(out["method"].dropna()) == {"direct", "proxy", "area"}
    assert (out["area"] == "boroughs:B-NOWHERE").any() and (out["amount_pence"] == 0).any()
    assert out["reason"].notna().any() and (out["amount_pence"] < 0).any()
    for partitions in (None, 1, 2, 5, 40):
        _same_run(dist.compute(client, inputs, partitions=partitions), want)


def test_categorical_lines_on_the_cluster_equal_the_single_pass(client, inputs) -> None:
    # Text columns may be Categorical (categories here in reverse order): slices are still
    # numbered in sorted order, and the outcomes' text columns are the single pass's.
    lines = inputs.lines.copy()
    for col in ("body", "cofog_code", "area_set", "area_code", "proxy", "line"):
        lines[col] = pd.Categorical(lines[col], categories=sorted(set(lines[col]), reverse=True))
    coded = pipeline.Inputs(lines, inputs.atoms, inputs.proxy_values, inputs.membership,
                            inputs.cut_set)
    want = pipeline.compute(coded)
    for partitions in (None, 7):
        _same_run(dist.compute(client, coded, partitions=partitions), want)


def test_every_line_adds_back_on_the_cluster(client, inputs) -> None:
    run = dist.compute(client, inputs, partitions=3)
    a = run.apportionment
    lines = a.outcomes
    covered = lines["area"] != "boroughs:B-NOWHERE"
    assert (lines.loc[covered, "allocated_pence"] == lines.loc[covered, "amount_pence"]).all()
    assert (lines.loc[~covered, "allocated_pence"] == 0).all()
    assert lines.loc[~covered, "reason"].str.contains("has no atoms").all()
    assert int(a.product["amount_pence"].sum()) == int(lines["allocated_pence"].sum())
    run.report.check()
    # A few lines, derived one by one from the inputs, add back to their own pence.
    proxies = run.proxies
    for line_id in lines.loc[covered & (lines["amount_pence"] != 0), "line_id"].head(5):
        spread = line_spread(inputs.lines, inputs.atoms, proxies, inputs.membership,
                             cut_set=inputs.cut_set, line_id=int(line_id))
        amount = int(lines.loc[lines["line_id"] == line_id, "amount_pence"].iloc[0])
        assert int(spread["amount_pence"].sum()) == amount


def test_line_partitions_never_split_a_group(inputs) -> None:
    lines = inputs.lines
    parts = dist.line_partitions(lines, inputs.membership, 4)
    assert len(parts) == 4
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(lines)))
    owner = np.empty(len(lines), dtype=int)
    for p, rows in enumerate(parts):
        owner[rows] = p
    per_group = pd.Series(owner).groupby(
        [lines["area_set"].to_numpy(), lines["area_code"].to_numpy(), lines["proxy"].to_numpy()]
    ).nunique()
    assert (per_group == 1).all()


def test_cluster_raises_the_single_path_errors(client, inputs) -> None:
    unknown = inputs.lines.assign(proxy=np.where(np.arange(len(inputs.lines)) == 5,
                                                 "residents-unknown", inputs.lines["proxy"]))
    bad = pipeline.Inputs(unknown, inputs.atoms, inputs.proxy_values, inputs.membership,
                          inputs.cut_set)
    with pytest.raises(InputError) as single:
        pipeline.compute(bad)
    with pytest.raises(InputError) as cluster:
        dist.compute(client, bad)
    assert cluster.value.as_dict() == single.value.as_dict()
    twice = pd.concat([inputs.lines, inputs.lines.iloc[[0]]], ignore_index=True)
    with pytest.raises(InputError, match="appears twice"):
        dist.compute(client, pipeline.Inputs(twice, inputs.atoms, inputs.proxy_values,
                                             inputs.membership, inputs.cut_set))


def test_connect_follows_the_setting(client, monkeypatch) -> None:
    assert dist.connect(None) is None
    monkeypatch.setenv("PLACESPEND_DASK_SCHEDULER", client.scheduler.address)
    address = Settings().dask_scheduler
    assert address == client.scheduler.address
    other = dist.connect(address)
    try:
        assert sum(other.nthreads().values()) == 2
    finally:
        other.close()


def test_domain_errors_keep_their_fix_across_processes() -> None:
    import pickle

    from domain.errors import InputError

    err = pickle.loads(pickle.dumps(InputError("cause", "the fix", where="row 3")))
    assert (type(err), err.cause, err.fix, err.where) == (InputError, "cause", "the fix", "row 3")
