"""The hand-computed world through the real store and run orchestrator, on PostGIS."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import psycopg
import pytest

from placespend.errors import DuplicateUpload, InputError
from placespend.runs import RunRequest, apportion
from store import boundaries as sb
from store import features, reference, spend
from store.db import connect
from tests import world


def _meta(slug: str, kind: str) -> sb.BoundarySetMeta:
    return sb.BoundarySetMeta(slug=slug, name=slug, kind=kind, vintage="test", source="tests",
                              licence="test", attribution="test", content_sha256=slug)


def _load_world(url: str) -> None:
    with connect(url) as conn:
        reference.save_cofog(conn, pd.DataFrame({
            "code": ["01", "07", "09", "10"], "description": ["a", "b", "c", "d"]}))
        zones_id = sb.save_boundary_set(conn, _meta("fx-zones", "lsoa"), world.zones())
        wards_id = sb.save_boundary_set(conn, _meta("fx-wards", "ward"), world.wards())
        borough_id = sb.save_boundary_set(conn, _meta("fx-borough", "borough"), world.borough())
        for slug, values in world.PROXY_VALUES.groupby("proxy"):
            reference.save_proxy(conn, slug=slug, name=slug, unit_set_id=zones_id, year=2020,
                                 source="tests", licence="test", attribution="test",
                                 values=values[["unit_code", "value"]])
        body = reference.upsert_body(conn, "council", "Council", "council", None)
        lines = world.LINES.assign(financial_year="2014-15", source_row=range(2, 7))
        spend.save_spend_batch(conn, filename="world.csv", sha256="w1", lines=lines,
                               body_ids={"council": body},
                               set_ids={"fx-borough": borough_id, "fx-wards": wards_id})


@pytest.fixture()
def world_db(fresh_db: str, tmp_path: Path) -> tuple[str, RunRequest]:
    _load_world(fresh_db)
    table = tmp_path / "proxies.csv"
    table.write_text(
        "line,proxy,rationale\nB,residents-0-15,children\nD,residents-65-plus,old\n"
        "*,residents-all,everyone\n"
    )
    request = RunRequest(financial_year="2014-15", zone_set="fx-zones", cut_set="fx-wards",
                         target_sets=("fx-wards",), proxy_table=table)
    return fresh_db, request


def test_world_run_gives_the_hand_computed_pence(world_db) -> None:
    url, request = world_db
    with connect(url) as conn:
        result = apportion(conn, request)
        assert result.created
        assert result.collections == ("fx-wards-spend-2014-15",)
        rows = conn.execute(
            "SELECT target_code, sum(amount_pence)::bigint AS p FROM target_allocation"
            " WHERE run_id = %s GROUP BY target_code ORDER BY target_code", (result.run_id,)
        ).fetchall()
        assert {r["target_code"]: r["p"] for r in rows} == world.EXPECTED_WARD_PENCE
        atoms_total = conn.execute(
            "SELECT sum(amount_pence)::bigint AS p FROM allocation WHERE run_id = %s",
            (result.run_id,)).fetchone()["p"]
        assert atoms_total == 100_034
        page = features.items(conn, "fx-wards-spend-2014-15")
    assert result.conservation["total_pence"] == 100_034
    assert result.conservation["unallocated_pence"] == 0
    methods = {o["line"]: o["method"] for o in result.conservation["lines"]}
    assert methods == {"A": "proxy", "B": "proxy", "C": "proxy", "D": "area", "E": "direct"}
    assert page.number_matched == 2
    assert '"total_pence": 87251.0' in page.features_json.replace(":87251", ": 87251")


def test_same_inputs_give_back_the_same_run(world_db) -> None:
    url, request = world_db
    with connect(url) as conn:
        first = apportion(conn, request)
        again = apportion(conn, request)
    assert not again.created and again.run_id == first.run_id


def test_asking_again_for_earlier_inputs_serves_that_run_again(world_db, tmp_path) -> None:
    url, request = world_db
    other = tmp_path / "other.csv"
    other.write_text("line,proxy,rationale\n*,residents-all,everyone\n")
    with connect(url) as conn:
        default = apportion(conn, request).run_id
        custom = apportion(conn, RunRequest(**{**request.__dict__, "proxy_table": other}))
        assert custom.created and custom.run_id != default
        assert features.collection_run(conn, "fx-wards-spend-2014-15") == custom.run_id
        back = apportion(conn, request)
        assert not back.created and back.run_id == default
        assert features.collection_run(conn, "fx-wards-spend-2014-15") == default


def test_published_results_refuse_changes(world_db) -> None:
    url, request = world_db
    with connect(url) as conn:
        run_id = apportion(conn, request).run_id
    for sql in (
        "UPDATE allocation SET amount_pence = amount_pence + 1 WHERE run_id = %s",
        "DELETE FROM target_allocation WHERE run_id = %s",
        "UPDATE run SET financial_year = '1999-00' WHERE id = %s",
        "DELETE FROM collection_feature WHERE run_id = %s",
    ):
        with connect(url) as conn, pytest.raises(psycopg.errors.RaiseException,
                                                 match="immutable"):
            conn.execute(sql, (run_id,))


def test_unknown_proxy_in_table_is_a_clear_error(world_db, tmp_path: Path) -> None:
    url, request = world_db
    bad = tmp_path / "bad.csv"
    bad.write_text("line,proxy,rationale\n*,pupils-ks4,none\n")
    with connect(url) as conn, pytest.raises(InputError, match="pupils-ks4") as err:
        apportion(conn, RunRequest(**{**request.__dict__, "proxy_table": bad}))
    assert "change the proxy table" in err.value.fix
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM run").fetchone()["n"] == 0


def test_year_without_lines_is_a_clear_error(world_db) -> None:
    url, request = world_db
    with connect(url) as conn, pytest.raises(InputError, match="no spend lines"):
        apportion(conn, RunRequest(**{**request.__dict__, "financial_year": "2099-00"}))


def test_the_same_spend_file_twice_is_refused(world_db) -> None:
    url, _ = world_db
    with connect(url) as conn, pytest.raises(DuplicateUpload, match="already loaded"):
        spend.save_spend_batch(conn, filename="world.csv", sha256="w1", lines=world.LINES,
                               body_ids={}, set_ids={})


def test_a_missing_parent_code_is_stored_as_null(fresh_db: str) -> None:
    from geo.prepare import prepare_boundaries

    wards = world.wards()
    wards.loc[0, "parent_code"] = None
    frame = prepare_boundaries(wards, code_field="code", name_field="name",
                               parent_field="parent_code", source="wards").frame
    with connect(fresh_db) as conn:
        sb.save_boundary_set(conn, _meta("fx-wards", "ward"), frame)
        rows = conn.execute("SELECT code, parent_code FROM boundary ORDER BY code").fetchall()
    assert [(r["code"], r["parent_code"]) for r in rows] == [("W1", None), ("W2", "B")]
