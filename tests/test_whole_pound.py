"""The whole Hackney Pound on real data: GP payments where they are delivered and who they
serve, each checked against an independent computation in the test; method shares and
confidence on every figure; the pilots' per-head range.

Independent checks: a geopandas spatial join of the practices to the 2014 wards (delivered),
and a numpy gravity model over the LSOAs (served), summed to boroughs.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from allocation.catchment import DECAY_M, REACH_M
from boundaries import catalog
from placespend.load import embedded_boundaries
from placespend.runs import RunResult
from store import features
from store.db import Connection, connect

YEAR = "2014-15"
SERVED = {s: f"{s}-spend-{YEAR}" for s in ("hackney-wards-2014", "london-wards-2014")}
DELIVERED = {s: f"{c}-delivered" for s, c in SERVED.items()}
GP_DIR = catalog.DATA_DIR / "nhs-payments-gp-practices-london"
POPULATION = catalog.DATA_DIR / "london-lsoa-msoa-2011" / "london_lsoa11_population_mid2020.csv"


def _props(conn: Connection, cid: str) -> pd.DataFrame:
    page = features.items(conn, cid, limit=10_000)
    return pd.DataFrame([f["properties"] for f in json.loads(page.features_json)]
                        ).set_index("code")


@pytest.fixture(scope="module")
def gp() -> dict[str, pd.DataFrame]:
    """The embedded GP lines (pence) and sites (points, registered patients)."""
    lines = pd.read_csv(GP_DIR / "gp_payments_2014-15_lines.csv", dtype=str,
                        keep_default_na=False)
    lines["pence"] = lines["amount"].astype(int) * 100
    sites = pd.read_csv(GP_DIR / "gp_practices_2014-15_sites.csv", dtype={"practice_code": str})
    return {"lines": lines, "sites": sites}


@pytest.fixture(scope="module")
def wards(db_url: str, demo: RunResult, delivered: RunResult) -> dict[str, pd.DataFrame]:
    with connect(db_url) as conn:
        return {"served": _props(conn, SERVED["london-wards-2014"]),
                "delivered": _props(conn, DELIVERED["london-wards-2014"])}


def _practice_wards(gp: dict[str, pd.DataFrame]) -> pd.Series:
    """Pence of the practices placed at a site, by the 2014 ward their point is in."""
    at_site = gp["lines"][gp["lines"]["site_id"] != ""].merge(
        gp["sites"], left_on="site_id", right_on="practice_code")
    points = gpd.GeoDataFrame({"pence": at_site["pence"].to_numpy()}, crs=27700,
                              geometry=gpd.points_from_xy(at_site["easting"],
                                                          at_site["northing"]))
    london = embedded_boundaries("london-wards-2014")[["code", "geometry"]].to_crs(27700)
    joined = gpd.sjoin(points, london, predicate="intersects", how="left")
    joined = joined[~joined.index.duplicated()]
    return joined.groupby("code")["pence"].sum()


def test_both_bases_count_the_same_money(wards: dict[str, pd.DataFrame]) -> None:
    served, delivered = wards["served"], wards["delivered"]
    assert served["total_pence"].sum() == delivered["total_pence"].sum() == 8_452_687_200_000
    # only NHS England's money moves between the bases (its GP payments)
    moved = (served["total_pence"] - delivered["total_pence"]).abs()
    nhs = (served["body_nhs_england"] - delivered["body_nhs_england"]).abs() * 100
    assert (moved - nhs).abs().max() <= 2  # pence rounding of the two pounds figures


def test_delivered_gp_payments_are_at_each_practice(wards: dict, gp: dict) -> None:
    """Delivered minus served is, ward by ward, the practices' pence where they stand less
    what their catchments serve there; the practices' pence come from a spatial join."""
    at_practice = _practice_wards(gp)
    delta = ((wards["delivered"]["body_nhs_england"] - wards["served"]["body_nhs_england"])
             * 100).round()
    served_gp = at_practice.reindex(delta.index).fillna(0) - delta
    by_site = int(gp["lines"].loc[gp["lines"]["site_id"] != "", "pence"].sum())
    assert abs(served_gp.sum() - by_site) <= len(delta)  # a penny of rounding a ward
    # two practices with no registered patients stay where they are on both bases, so no
    # catchment pence is negative anywhere beyond rounding
    assert served_gp.min() >= -len(delta)
    # delivered: a ward without a practice gets no GP money; served: nearly every ward does
    no_practice = delta.index.difference(at_practice.index)
    assert len(no_practice) > 50  # 61 of the 630 wards have no practice
    assert (served_gp.reindex(no_practice) > 0).mean() > 0.99


def test_catchments_match_a_gravity_model_over_the_lsoas(conn: Connection, wards: dict,
                                                         gp: dict) -> None:
    """Served GP pence by borough against the same model computed here over LSOA centroids
    (the run uses a point in each atom, an LSOA cut by wards): within 2% per borough."""
    lines, sites = gp["lines"], gp["sites"]
    lsoa = embedded_boundaries("london-lsoa-2011").to_crs(27700)
    pts = lsoa.geometry.representative_point()
    people = pd.read_csv(POPULATION).set_index("LSOA11CD")["Persons_All-Ages"].reindex(
        lsoa["code"]).to_numpy(dtype=float)
    d = np.hypot(pts.x.to_numpy()[:, None] - sites["easting"].to_numpy()[None, :],
                 pts.y.to_numpy()[:, None] - sites["northing"].to_numpy()[None, :])
    pull = np.where(d <= REACH_M, sites["registered_patients"].to_numpy()[None, :]
                    * np.exp(-d / DECAY_M), 0.0)
    p = pull / pull.sum(axis=1, keepdims=True)
    served = people[:, None] * p  # residents of each LSOA each practice serves
    pence = lines[lines["site_id"] != ""].set_index("site_id")["pence"].reindex(
        sites["practice_code"]).to_numpy()
    size = sites["registered_patients"].to_numpy()
    spread = served[:, size > 0] / served[:, size > 0].sum(axis=0) * pence[size > 0]
    lad = pd.read_csv(POPULATION).set_index("LSOA11CD")["LAD11CD"].reindex(lsoa["code"])
    model = pd.Series(spread.sum(axis=1), index=lad.to_numpy()).groupby(level=0).sum()

    at_practice = _practice_wards(gp)
    delta = ((wards["delivered"]["body_nhs_england"] - wards["served"]["body_nhs_england"])
             * 100).round()
    served_gp = at_practice.reindex(delta.index).fillna(0) - delta
    # the two zero-patient practices stay at their site in the run: take them out
    empty = sites.loc[sites["registered_patients"] == 0, "practice_code"]
    empty_pts = _practice_wards({"lines": lines[lines["site_id"].isin(empty)], "sites": sites})
    served_gp = served_gp.sub(empty_pts, fill_value=0)
    parent = pd.Series({r["code"]: r["parent_code"] for r in conn.execute(
        "SELECT b.code, b.parent_code FROM boundary b JOIN boundary_set s ON s.id = b.set_id"
        " WHERE s.slug = 'london-wards-2014'")})
    run = served_gp.groupby(parent.reindex(served_gp.index).to_numpy()).sum()
    both = pd.DataFrame({"run": run, "model": model}).dropna()
    assert len(both) == 33
    assert abs(both["run"].sum() - both["model"].sum()) < 1e-6 * both["model"].sum() + 100
    worst = ((both["run"] - both["model"]).abs() / both["model"]).max()
    print(f"catchments: worst borough differs from the LSOA model by {worst:.3%}")
    assert worst < 0.02, both.assign(rel=(both["run"] - both["model"]) / both["model"])


@pytest.mark.parametrize("cid", [*SERVED.values(), *DELIVERED.values()])
def test_no_figure_without_its_method_shares_and_confidence(conn: Connection, wards: dict,
                                                            cid: str) -> None:
    props = _props(conn, cid)
    shares = props[[c for c in props.columns if c.startswith("share_")]]
    assert set(shares.columns) == {"share_direct", "share_agency_estimate", "share_proxy",
                                   "share_area", "share_best_fit"}
    assert np.allclose(shares.sum(axis=1), 1.0)
    assert props["confidence"].isin(list("ABCDE")).all()
    meta = features.get_layer(conn, cid)
    basis = "delivered" if cid.endswith("-delivered") else "served"
    assert f"({basis} basis)" in meta.title
    assert ("who it serves" if basis == "served" else "where it is delivered") in \
        meta.description


def test_hackney_whole_pound_has_the_pilots_shape(conn: Connection, demo: RunResult) -> None:
    """Total Place pilots (2008-09): £6,000-£8,800 a head; social security, education and
    health were over 70% of it (seeds/004). Hackney 2014-15, capital included: £9,440 a head,
    a little above (docs/methods.md section 8 says why), with the same shape."""
    hackney = _props(conn, SERVED["hackney-wards-2014"])
    total = hackney["total_pence"].sum() / 100
    per_head = total / hackney["population"].sum()
    assert 8_800 < per_head < 10_000
    big_three = hackney[["cofog_10", "cofog_09", "cofog_07"]].sum().sum() / total
    assert big_three > 0.70
    # by body: the council's own returns are about a quarter of it
    assert 0.15 < hackney["body_hackney"].sum() / total < 0.35


def test_a_practice_s_line_spread_follows_its_basis(conn: Connection, demo: RunResult,
                                                   delivered: RunResult) -> None:
    """One GP practice's payment, derived on request as each run placed it: over its
    catchment (served), or whole in the atom of its site (delivered); both add back."""
    from placespend.runs import line_spread
    from store.runs import run_lines

    lines = run_lines(conn, demo.run_id)
    cedar = lines[lines["line"] == "GP practice F84036"].iloc[0]  # Cedar Practice, N4
    served = line_spread(conn, demo.run_id, int(cedar["line_id"]))
    at_site = line_spread(conn, delivered.run_id, int(cedar["line_id"]))
    assert served["amount_pence"].sum() == at_site["amount_pence"].sum() == 84_123_300
    assert len(at_site) == 1 and at_site["cut_code"].iloc[0] == "E05009387"  # Woodberry Down
    by_ward = served.groupby("cut_code")["amount_pence"].sum()
    assert len(by_ward) > 20 and by_ward.idxmax() == "E05009387"
    assert (served["amount_pence"] >= 0).all()


def test_the_best_fit_publication_gives_hackney_its_own_lsoas(conn: Connection,
                                                             demo: RunResult) -> None:
    """By best fit each LSOA is wholly in one ward: Hackney's wards then hold exactly its 144
    LSOAs, residents and pence. Independent check: the LSOAs' borough in the ONS population
    file, and the run's atom pence summed over those LSOAs in SQL."""
    cid = SERVED["hackney-wards-2014"] + "-best-fit"
    fitted = _props(conn, cid)
    lsoas = pd.read_csv(POPULATION)
    mine = lsoas[lsoas["LAD11CD"] == "E09000012"]
    assert len(mine) == 144
    assert fitted["population"].sum() == mine["Persons_All-Ages"].sum() == 280_941
    pence = conn.execute(
        "SELECT sum(x.amount_pence)::bigint AS p FROM atom_allocation x JOIN run r ON"
        " r.id = x.run_id JOIN atom a ON a.atom_set_id = r.atom_set_id AND a.atom_id = x.atom_id"
        " WHERE x.run_id = %s AND a.zone_code = ANY(%s)",
        (demo.run_id, list(mine["LSOA11CD"]))).fetchone()["p"]
    assert int(fitted["total_pence"].sum()) == int(pence)
    assert np.allclose(fitted["share_best_fit"], 1.0)  # served basis: all spread, all moved
    meta = features.get_layer(conn, cid)
    assert "best fit" in meta.title and "ONS best-fit" in meta.description
    # the same figures as each feature's best-fit range on the split publication
    split = _props(conn, SERVED["hackney-wards-2014"])
    assert ((split["total_best_fit"] * 100).round() == fitted["total_pence"]).all()
