"""A grant passed on is counted once, at the body that spends it (tracker: Must show 5).

A grants £100 to B; B spends it in ward W2 ("X"). A's own figures carry the grant as a line of
its own, so without the rule X would show £200 of public money from £100 of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.errors import Rejected
from placespend import load
from placespend.runs import RunRequest, make_run, publish
from placespend.settings import Settings
from store import features
from store.db import connect
from tests.test_run_fixture import load_world_proxy, load_world_sets, world_files


def _world_with_two_bodies(url: str, folder: Path) -> RunRequest:
    paths = world_files(folder)
    with connect(url) as conn:
        load_world_sets(conn, paths, cofog=["10"])
        load_world_proxy(conn, paths)
        spend = folder / "spend.csv"
        spend.write_text(
            "body,body_name,financial_year,line,function,amount,area_set,area_code\n"
            "a,Body A,2014-15,Grant to B,10,100.00,fx-borough,B\n"
            "b,Body B,2014-15,Care in X,10,100.00,fx-wards,W2\n")
        load.load_spend(conn, load.Upload(spend, "spend.csv"), load.SpendLoadOptions())
    table = folder / "table.csv"
    table.write_text("line,proxy,rationale\n*,residents-all,everyone\n")
    return RunRequest(financial_year="2014-15", zone_set="fx-zones", cut_set="fx-wards",
                      proxy_table=table, target_sets=("fx-wards",))


def _transfers(folder: Path, name: str, who: str) -> load.Upload:
    path = folder / name
    path.write_text(f"payer,payee,financial_year,amount,function,recorded_by\n"
                    f"a,b,2014-15,100.00,10,{who}\n")
    return load.Upload(path, name)


def test_a_grant_is_counted_once_at_the_body_that_spends_it(fresh_db: str,
                                                            tmp_path: Path) -> None:
    request = _world_with_two_bodies(fresh_db, tmp_path)
    with connect(fresh_db) as conn:
        # both sides record the same grant: one transfer, never two, never none
        for name, who in (("a-transfers.csv", "payer"), ("b-transfers.csv", "payee")):
            done = load.load_transfers(conn, _transfers(tmp_path, name, who),
                                       load.TransferOptions())
            assert done.created and done.details["total_pence"] == 10_000
        result = make_run(conn, request)
        publish(conn, result.run_id)
        wards = {f["properties"]["code"]: f["properties"] for f in json.loads(
            features.items(conn, "fx-wards-spend-2014-15", limit=10).features_json)}
    x = wards["W2"]
    assert x["total_pence"] == 10_000  # £100 once
    assert (x["body_b"], x["body_a"]) == (100.0, 0.0)
    assert sum(w["total_pence"] for w in wards.values()) == 10_000
    c = result.conservation
    assert c["reported_pence"] == 20_000 and c["passed_on_pence"] == 10_000
    assert c["total_pence"] == c["allocated_pence"] == 10_000
    assert c["bodies"]["a"] == {"reported_pence": 10_000, "passed_on_pence": 10_000,
                                "netted_pence": 0, "received_pence": 0, "placed_pence": 0}
    assert c["bodies"]["b"] == {"reported_pence": 10_000, "passed_on_pence": 0,
                                "netted_pence": 0, "received_pence": 10_000,
                                "placed_pence": 10_000}
    with TestClient(create_app(Settings(database_url=fresh_db))) as client:
        flows = client.get(f"/runs/{result.run_id}/flows").json()
        lines = client.get(f"/runs/{result.run_id}/lines").json()["lines"]
    assert [(f["payer"], f["payee"], f["amount_pence"], f["records"], f["deducted_pence"])
            for f in flows["flows"]] == [("a", "b", 10_000, 2, 10_000)]
    grant = next(line for line in lines if line["line"] == "Grant to B")
    assert (grant["amount_pence"], grant["allocated_pence"], grant["passed_on_pence"],
            grant["unallocated_pence"]) == (10_000, 0, 10_000, 0)
    assert grant["reason"].startswith("£100.00 passed on to b")


def test_a_transfer_naming_an_unknown_body_is_refused(fresh_db: str, tmp_path: Path) -> None:
    _world_with_two_bodies(fresh_db, tmp_path)
    path = tmp_path / "t.csv"
    path.write_text("payer,payee,financial_year,amount\na,zz,2014-15,5\nb,b,2014-15,5\n"
                    "a,b,2014-15,-5\n")
    with connect(fresh_db) as conn:
        with pytest.raises(Rejected) as err:
            load.load_transfers(conn, load.Upload(path, "t.csv"), load.TransferOptions())
        assert conn.execute("SELECT count(*) AS n FROM transfer").fetchone()["n"] == 0
    assert [p.row for p in err.value.problems] == [3, 4]  # the file's own faults first
    path.write_text("payer,payee,financial_year,amount\na,zz,2014-15,5\n")
    with connect(fresh_db) as conn, pytest.raises(Rejected) as err:
        load.load_transfers(conn, load.Upload(path, "t.csv"), load.TransferOptions())
    assert (err.value.problems[0].row, err.value.problems[0].value) == (2, "zz")
