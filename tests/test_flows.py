"""Following the money: funders -> spending bodies -> functions, exact to the penny.

The flow view's figures must be the map's: for a ward, every body's and every division's net
pence in the flows equal the feature's ``body_<slug>`` and ``cofog_XX``, and the total its
``total_pence``; for the whole layer, the sum of the features; for a drawn polygon, its budget's
``by_body_pence`` and ``by_function_pence``. The demo has no transfers, so a world with one
(A grants B £33.33) checks the funder links to the penny; a property test checks conservation
on any cells. Negative cells (net income) are links with their sign: added up with their signs,
every figure is exact.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation import flows as core
from api.app import create_app
from placespend import load
from placespend.runs import RunRequest, RunResult, make_run, publish
from placespend.settings import Settings
from store import runs as store_runs
from store.db import Connection, connect
from tests.test_run_fixture import load_world_proxy, load_world_sets, world_files

HACKNEY = "hackney-wards-2014-spend-2014-15"
HACKNEY_CENTRAL = "E05009372"
FLOWS = f"/collections/{HACKNEY}/flows"
#: A rectangle over Dalston and De Beauvoir (the example of POST /neighbourhoods/budget).
DALSTON = {"type": "Feature", "properties": {"name": "Dalston and De Beauvoir"},
           "geometry": {"type": "Polygon", "coordinates": [[
               [-0.085, 51.535], [-0.06, 51.535], [-0.06, 51.55], [-0.085, 51.55],
               [-0.085, 51.535]]]}}


def _pence(pounds: float) -> int:
    return round(pounds * 100)


def _into(doc: dict) -> dict[str, int]:
    """Per node id: its links in, added up with their signs."""
    out: dict[str, int] = defaultdict(int)
    for link in doc["links"]:
        out[link["target"]] += link["pence"]
    return out


def _out_of(doc: dict) -> dict[str, int]:
    """Per node id: its links out, added up with their signs."""
    out: dict[str, int] = defaultdict(int)
    for link in doc["links"]:
        out[link["source"]] += link["pence"]
    return out


def _by_body(doc: dict) -> dict[str, int]:
    """Each body's pence from its links in (its funders)."""
    into = _into(doc)
    return {n["id"].removeprefix("body:"): into[n["id"]] for n in doc["nodes"]
            if n["kind"] == "body"}


def _by_division(doc: dict) -> dict[str, int]:
    """Each division's pence from its links in (the bodies that spent on it)."""
    into = _into(doc)
    return {n["id"].removeprefix("function:"): into[n["id"]] for n in doc["nodes"]
            if n["kind"] == "function"}


def _check_shape(doc: dict) -> None:
    """Whole, non-zero links between known nodes; every body in == out; node figures agree."""
    ids = [n["id"] for n in doc["nodes"]]
    assert len(ids) == len(set(ids))
    kind = {n["id"]: n["kind"] for n in doc["nodes"]}
    assert set(kind.values()) <= {"funder", "body", "function"}
    for link in doc["links"]:
        assert isinstance(link["pence"], int) and link["pence"] != 0, link
        assert link["pounds"] == round(link["pence"] / 100, 2)
        assert (kind[link["source"]], kind[link["target"]]) in (("funder", "body"),
                                                                ("body", "function")), link
    into, out = _into(doc), _out_of(doc)
    for node in doc["nodes"]:
        if node["kind"] == "body":
            assert into[node["id"]] == out[node["id"]] == node["pence"], node
            if node["pence"] > 0:  # only net income is negative: a funder's share never is
                assert all(k["pence"] > 0 for k in doc["links"] if k["target"] == node["id"])
        elif node["kind"] == "function":
            assert into[node["id"]] == node["pence"], node
        else:
            assert out[node["id"]] == node["pence"], node
        assert node["pounds"] == round(node["pence"] / 100, 2)
    total = doc["total_pence"]
    assert sum(k["pence"] for k in doc["links"] if kind[k["target"]] == "function") == total
    assert sum(k["pence"] for k in doc["links"] if kind[k["source"]] == "funder") == total
    assert sum(_by_body(doc).values()) == sum(_by_division(doc).values()) == total
    assert doc["total"] == round(total / 100, 2)


# ---- the demo: a ward, the whole layer, a drawn polygon ----------------------------------------


def test_a_ward_s_flows_are_its_feature_to_the_penny(client: TestClient,
                                                     demo: RunResult) -> None:
    feature = client.get(f"/collections/{HACKNEY}/items/{HACKNEY_CENTRAL}").json()["properties"]
    r = client.get(FLOWS, params={"code": HACKNEY_CENTRAL})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["run"], doc["collection"], doc["code"], doc["name"], doc["financial_year"]) == (
        demo.run_id, HACKNEY, HACKNEY_CENTRAL, "Hackney Central", "2014-15")
    _check_shape(doc)
    # the total, each division and each body: the feature's own figures, exactly
    assert doc["total_pence"] == feature["total_pence"] == 13_625_734_929
    assert sum(link["pence"] for link in doc["links"]
               if link["target"].startswith("function:")) == feature["total_pence"]
    divisions = _by_division(doc)
    for d in core_divisions():
        assert divisions.get(d, 0) == _pence(feature[f"cofog_{d}"]), d
    bodies = _by_body(doc)
    for name, value in feature.items():
        if name.startswith("body_"):
            assert bodies.get(name.removeprefix("body_"), 0) == _pence(value), name
    assert set(bodies) == {n.removeprefix("body_") for n, v in feature.items()
                           if n.startswith("body_") and v != 0}
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert len(bodies) == 51
    # Hackney Council's own £26,152,695.70 here, all of it its own money (no transfers loaded)
    assert nodes["body:hackney"]["pence"] == 2_615_269_570 == _pence(feature["body_hackney"])
    assert nodes["body:hackney"]["name"] == "Hackney"
    assert [link for link in doc["links"] if link["target"] == "body:hackney"] == [
        {"source": "own", "target": "body:hackney", "pence": 2_615_269_570,
         "pounds": 26_152_695.7}]
    assert [n["id"] for n in doc["nodes"] if n["kind"] == "funder"] == ["own"]
    assert nodes["own"]["pence"] == 13_625_734_929
    # DCMS: £1,393,026.97 spent on six functions, less £354,198.19 of net income on housing
    dcms = "body:department_for_digital_culture_media_and_sport"
    out = {k["target"]: k["pence"] for k in doc["links"] if k["source"] == dcms}
    assert out["function:06"] == -35_419_819
    assert sum(p for p in out.values() if p > 0) == 139_302_697
    assert nodes[dcms]["pence"] == 103_882_878 == _pence(
        feature["body_department_for_digital_culture_media_and_sport"])
    # The Teachers' Pension Scheme took in £364,977.42 more than it paid out here: one negative
    # link from its own funding, one to social protection
    tps = "body:teachers_pension_scheme_england_and_wales"
    assert nodes[tps]["pence"] == -36_497_742
    assert [(k["source"], k["target"], k["pence"]) for k in doc["links"] if tps in (
        k["source"], k["target"])] == [("own", tps, -36_497_742),
                                       (tps, "function:10", -36_497_742)]
    # Social protection: £46,580,131.03, with the two pension schemes' £539,092.44 of net income
    assert nodes["function:10"]["pence"] == 4_658_013_103 == _pence(feature["cofog_10"])
    assert -sum(k["pence"] for k in doc["links"] if k["target"] == "function:10"
                and k["pence"] < 0) == 53_909_244
    assert sum(1 for k in doc["links"] if k["pence"] < 0) == 8
    assert any("No transfers between bodies" in note for note in doc["notes"])


def core_divisions() -> list[str]:
    return [f"{i:02d}" for i in range(1, 11)]


def test_the_whole_layer_s_flows_are_the_sum_of_its_features(client: TestClient) -> None:
    features = client.get(f"/collections/{HACKNEY}/items").json()["features"]
    assert len(features) == 21
    doc = client.get(FLOWS).json()
    assert (doc["code"], doc["collection"]) == (None, HACKNEY)
    assert doc["name"].startswith("Hackney")
    _check_shape(doc)
    assert doc["total_pence"] == sum(f["properties"]["total_pence"] for f in features) \
        == 264_838_384_719  # £2,648,383,847.19: README's Hackney figure
    bodies = _by_body(doc)
    for name in features[0]["properties"]:
        if name.startswith("body_"):
            # the wards' pence of one body add up exactly (each feature's pounds are whole pence)
            assert bodies.get(name.removeprefix("body_"), 0) == sum(
                _pence(f["properties"][name]) for f in features), name
    divisions = _by_division(doc)
    for d in core_divisions():
        assert divisions.get(d, 0) == sum(_pence(f["properties"][f"cofog_{d}"])
                                          for f in features), d


def test_the_london_layer_places_every_penny(client: TestClient) -> None:
    doc = client.get("/collections/london-wards-2014-spend-2014-15/flows").json()
    _check_shape(doc)
    assert doc["total_pence"] == 8_452_687_200_000  # £84,526,872,000 (docs/methods.md s. 8)


def test_a_drawn_polygon_s_flows_are_its_budget(client: TestClient) -> None:
    r = client.post("/neighbourhoods/budget", json=DALSTON)
    assert r.status_code == 200, r.text
    got = r.json()
    doc = got["flows"]
    assert (doc["name"], doc["collection"], doc["code"], doc["run"]) == (
        "Dalston and De Beauvoir", None, None, got["run"])
    _check_shape(doc)
    assert doc["total_pence"] == got["total_pence"] == 46_214_817_594
    assert _by_body(doc) == got["by_body_pence"]
    assert {d: p for d, p in _by_division(doc).items() if p} == got["by_function_pence"]
    assert {n["id"].removeprefix("body:"): n["pence"] for n in doc["nodes"]
            if n["kind"] == "body"} == got["by_body_pence"]


def test_a_polygon_with_no_money_has_no_flows(client: TestClient) -> None:
    r = client.post("/neighbourhoods/budget", json={"type": "Polygon", "coordinates": [[
        [-3.22, 55.94], [-3.17, 55.94], [-3.17, 55.96], [-3.22, 55.96], [-3.22, 55.94]]]})
    flows = r.json()["flows"]
    assert (flows["total_pence"], flows["nodes"], flows["links"]) == (0, [], [])


def test_what_the_run_placed_per_body_is_its_conservation_report(conn: Connection,
                                                                 demo: RunResult) -> None:
    """The denominator of the funder shares is each body's placed pence over the whole run."""
    spent = store_runs.placed_by_body(conn, demo.run_id)
    bodies = demo.conservation["bodies"]
    assert dict(zip(spent["body"], spent["pence"].tolist(), strict=True)) == {
        b: v["placed_pence"] for b, v in bodies.items()}


# ---- HTTP: caching and errors --------------------------------------------------------------


def test_pinned_flows_are_immutable_and_revalidate(client: TestClient,
                                                   demo: RunResult) -> None:
    pinned = client.get(FLOWS, params={"code": HACKNEY_CENTRAL, "run": demo.run_id})
    assert pinned.status_code == 200
    assert pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
    current = client.get(FLOWS, params={"code": HACKNEY_CENTRAL})
    assert current.headers["cache-control"] == "public, max-age=300"
    assert current.headers["etag"] == pinned.headers["etag"]  # the same run, the same answer
    assert current.json() == pinned.json()
    again = client.get(FLOWS, params={"code": HACKNEY_CENTRAL},
                       headers={"If-None-Match": current.headers["etag"]})
    assert again.status_code == 304
    whole = client.get(FLOWS)
    assert whole.headers["etag"] != current.headers["etag"]


def test_an_unknown_code_is_a_404_naming_it(client: TestClient) -> None:
    r = client.get(FLOWS, params={"code": "E05000000"})
    assert r.status_code == 404
    assert r.json() == {
        "code": "not_found", "cause": f"collection '{HACKNEY}' has no feature 'E05000000'",
        "where": "code", "fix": f"list its features with GET /collections/{HACKNEY}/items, or "
                                "leave code out for the whole layer"}


def test_a_boundary_set_has_no_flows(client: TestClient) -> None:
    r = client.get("/collections/hackney-wards-2014/flows")
    assert r.status_code == 404
    body = r.json()
    assert "is a boundary set" in body["cause"]
    assert f"GET /collections/{HACKNEY}/flows" in body["fix"]
    assert client.get("/collections/nope/flows").status_code == 404
    assert client.get(FLOWS, params={"run": 999_999}).json()["cause"] == "no run 999999"


def test_an_unknown_parameter_is_a_400(client: TestClient) -> None:
    r = client.get(FLOWS, params={"ward": HACKNEY_CENTRAL})
    assert r.status_code == 400
    assert r.json() == {"code": "bad_request", "cause": "unknown query parameter ward",
                        "where": "ward", "fix": "use only code, run (see /api)"}


# ---- a transfer: the funder link to the penny ----------------------------------------------


def _world_with_a_grant(url: str, folder: Path) -> RunRequest:
    """A grants B £33.33 of its £100; B spends £300 in ward W2 and £100 in W1, directly."""
    paths = world_files(folder)
    with connect(url) as conn:
        load_world_sets(conn, paths, cofog=["09", "10"])
        load_world_proxy(conn, paths)
        spend = folder / "spend.csv"
        spend.write_text(
            "body,body_name,financial_year,line,function,amount,area_set,area_code\n"
            "a,Body A,2014-15,Grants and care,10,100.00,fx-borough,B\n"
            "b,Body B,2014-15,Care in Ward Two,10,300.00,fx-wards,W2\n"
            "b,Body B,2014-15,Schools in Ward One,09,100.00,fx-wards,W1\n")
        load.load_spend(conn, load.Upload(spend, "spend.csv"), load.SpendLoadOptions())
        grant = folder / "transfers.csv"
        grant.write_text("payer,payee,financial_year,amount,function,recorded_by\n"
                         "a,b,2014-15,33.33,10,payer\n")
        load.load_transfers(conn, load.Upload(grant, "transfers.csv"), load.TransferOptions())
    table = folder / "table.csv"
    table.write_text("line,proxy,rationale\n*,residents-all,everyone\n")
    return RunRequest(financial_year="2014-15", zone_set="fx-zones", cut_set="fx-wards",
                      proxy_table=table, target_sets=("fx-wards",))


def test_a_grant_shows_from_the_body_that_gave_it(fresh_db: str, tmp_path: Path) -> None:
    request = _world_with_a_grant(fresh_db, tmp_path)
    with connect(fresh_db) as conn:
        result = make_run(conn, request)
        publish(conn, result.run_id)
    # B placed £400 over the run, £33.33 of it A's: 3,333 / 40,000 of B's pence anywhere are A's
    assert result.conservation["bodies"]["b"]["placed_pence"] == 40_000
    assert result.conservation["bodies"]["b"]["received_pence"] == 3_333
    collection = "fx-wards-spend-2014-15"
    with TestClient(create_app(Settings(database_url=fresh_db))) as client:
        two = client.get(f"/collections/{collection}/flows", params={"code": "W2"}).json()
        one = client.get(f"/collections/{collection}/flows", params={"code": "W1"}).json()
        both = client.get(f"/collections/{collection}/flows").json()
        features = {f["properties"]["code"]: f["properties"] for f in client.get(
            f"/collections/{collection}/items").json()["features"]}
    for doc in (two, one, both):
        _check_shape(doc)

    def into(doc: dict, body: str) -> list[tuple[str, int]]:
        return [(k["source"], k["pence"]) for k in doc["links"] if k["target"] == f"body:{body}"]

    # W2: B's £300 x 3,333 / 40,000 = £24.9975 -> 2,500p from A (running total, half up), the
    # rest B's own; A's own £66.67 spread by residents gives W2 an eighth: 833p
    assert into(two, "b") == [("funder:a", 2_500), ("own", 27_500)]
    assert into(two, "a") == [("own", 833)]
    # W1: £100 x 3,333 / 40,000 = £8.3325 -> 833p from A
    assert into(one, "b") == [("funder:a", 833), ("own", 9_167)]
    # the whole layer holds all of B's spending: exactly the £33.33 A passed on
    assert into(both, "b") == [("funder:a", 3_333), ("own", 36_667)]
    assert into(both, "a") == [("own", 6_667)]
    nodes = {n["id"]: n for n in both["nodes"]}
    assert nodes["funder:a"]["name"] == "Grants from Body A"
    assert nodes["body:a"]["name"] == "Body A"
    for code, doc in (("W1", one), ("W2", two)):
        assert doc["total_pence"] == features[code]["total_pence"]
        assert _by_body(doc) == {b: _pence(features[code][f"body_{b}"]) for b in ("a", "b")
                                 if features[code][f"body_{b}"]}
    assert both["total_pence"] == 46_667  # £466.67: £100 - £33.33 + £400, counted once
    assert any("1 transfer(s) between bodies were counted" in n for n in both["notes"])


# ---- the pure core ------------------------------------------------------------------------


def test_the_worked_example_of_the_docstring() -> None:
    cells = pd.DataFrame({"body": ["b", "b"], "division": ["09", "06"],
                          "pence": [20_000, -1_000]})
    links = core.place_flows(cells, pd.DataFrame({"payer": ["a"], "payee": ["b"],
                                                  "pence": [30_000]}),
                             pd.DataFrame({"body": ["b"], "pence": [100_000]}))
    assert list(links[["source", "target", "pence"]].itertuples(index=False, name=None)) == [
        ("funder:a", "body:b", 5_700), ("own", "body:b", 13_300),
        ("body:b", "function:06", -1_000), ("body:b", "function:09", 20_000)]
    nodes = core.flow_nodes(links, cells).set_index("id")["pence"].to_dict()
    assert nodes == {"own": 13_300, "funder:a": 5_700, "body:b": 19_000, "function:06": -1_000,
                     "function:09": 20_000}


def test_a_body_with_negative_pence_is_never_shared_between_funders() -> None:
    cells = pd.DataFrame({"body": ["b", "b"], "division": ["10", "09"], "pence": [-700, 200]})
    received = pd.DataFrame({"payer": ["a"], "payee": ["b"], "pence": [500]})
    links = core.place_flows(cells, received, pd.DataFrame({"body": ["b"], "pence": [1_000]}))
    assert list(links[["source", "target", "pence"]].itertuples(index=False, name=None)) == [
        ("own", "body:b", -500), ("body:b", "function:09", 200),
        ("body:b", "function:10", -700)]


def test_a_body_that_received_more_than_it_placed_is_all_its_funders_money() -> None:
    cells = pd.DataFrame({"body": ["b"], "division": ["10"], "pence": [1_001]})
    received = pd.DataFrame({"payer": ["x", "a", "a"], "payee": ["b", "b", "b"],
                             "pence": [500, 250, 250]})
    links = core.place_flows(cells, received, pd.DataFrame({"body": ["b"], "pence": [600]}))
    assert list(links[["source", "pence"]].itertuples(index=False, name=None))[:2] == [
        ("funder:a", 501), ("funder:x", 500)]  # £10.01 halved: running total, half up


BODIES = ("a", "b", "c", "d")
DIVISIONS = tuple(f"{i:02d}" for i in range(1, 11))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(BODIES), st.sampled_from(DIVISIONS),
                       st.integers(-10**9, 10**10)), max_size=25),
    st.lists(st.tuples(st.sampled_from(BODIES), st.sampled_from(BODIES),
                       st.integers(0, 10**10)), max_size=8),
    st.dictionaries(st.sampled_from(BODIES), st.integers(-10**9, 10**11)),
)
def test_every_body_s_pence_in_are_its_pence_out(cells_rows, transfers, placed) -> None:
    cells = pd.DataFrame(cells_rows, columns=["body", "division", "pence"])
    received = pd.DataFrame([t for t in transfers if t[0] != t[1]],
                            columns=["payer", "payee", "pence"])
    spent = pd.DataFrame(list(placed.items()), columns=["body", "pence"])
    links = core.place_flows(cells, received, spent)
    nodes = core.flow_nodes(links, cells)

    assert links["pence"].dtype == np.int64 and (links["pence"] != 0).all()
    body_pence: dict[str, int] = defaultdict(int)
    division_pence: dict[str, int] = defaultdict(int)
    for body, division, pence in cells_rows:
        body_pence[body] += pence
        division_pence[division] += pence
    total = sum(p for _, _, p in cells_rows)
    doc = {"nodes": nodes.to_dict(orient="records"),
           "links": [{"source": s, "target": t, "pence": int(p), "pounds": round(p / 100, 2)}
                     for s, t, p in links[["source", "target", "pence"]].itertuples(
                         index=False, name=None)],
           "total_pence": total, "total": round(total / 100, 2)}
    for n in doc["nodes"]:
        n["pounds"] = round(n["pence"] / 100, 2)
    _check_shape(doc)  # every body balanced; node figures agree with the links
    cell_sums: dict[tuple[str, str], int] = defaultdict(int)
    for body, division, pence in cells_rows:
        cell_sums[(body, division)] += pence
    assert _by_body(doc) == {b: body_pence[b] for (b, _), p in cell_sums.items() if p}
    assert {d: p for d, p in _by_division(doc).items() if p} == {
        d: p for d, p in division_pence.items() if p}
    # a body's funders: its payers (what they passed on to it) and its own resources only
    payers = defaultdict(set)
    for payer, payee, pence in transfers:
        if payer != payee and pence > 0:
            payers[payee].add(f"funder:{payer}")
    for link in links.itertuples(index=False):
        if link.source_kind == "funder":
            body = link.target.removeprefix("body:")
            assert link.source in payers[body] | {"own"}, link
            assert (link.pence > 0) == (body_pence[body] > 0), link
            if body_pence[body] < 0:  # net income: one link, from its own, never shared
                assert (link.source, link.pence) == ("own", body_pence[body])
    # each funder's share is within a penny of its exact quota
    for body, pence in body_pence.items():
        if pence <= 0 or not payers[body]:
            continue
        got = {}
        for payer, payee, p in transfers:
            if payee == body and payer != payee and p > 0:
                got[payer] = got.get(payer, 0) + p
        receipts = sum(got.values())
        weights = {f"funder:{k}": v for k, v in got.items()}
        if placed.get(body, 0) > receipts:
            weights["own"] = placed[body] - receipts
        whole = sum(weights.values())
        shown = {k.source: k.pence for k in links.itertuples(index=False)
                 if k.target == f"body:{body}" and k.source_kind == "funder"}
        for source, w in weights.items():
            assert abs(shown.get(source, 0) - pence * w / whole) <= 1, (source, shown)
