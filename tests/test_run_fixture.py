"""The hand-computed world through the real store and run orchestrator, on PostGIS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from domain.errors import InputError, NotFound, Rejected
from placespend import load
from placespend import runs as runs_module
from placespend.runs import RunRequest, line_spread, make_run, publish
from store import boundaries as sb
from store import features, reference
from store import runs as store_runs
from store.db import Connection, connect
from tests import world


def _meta(slug: str, kind: str) -> sb.BoundarySetMeta:
    return sb.BoundarySetMeta(slug=slug, name=slug, kind=kind, vintage="test", source="tests",
                              licence="test", attribution="test", content_sha256=slug)


def world_files(folder: Path) -> dict[str, Path]:
    """The hand-computed world as the files a council officer would upload."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, frame in (("zones", world.zones()), ("wards", world.wards()),
                        ("borough", world.borough())):
        out[name] = folder / f"{name}.geojson"
        frame.to_file(out[name], driver="GeoJSON", engine="pyogrio")
    out["proxies"] = folder / "proxies.csv"
    world.PROXY_VALUES.pivot(index="unit_code", columns="proxy", values="value").reset_index() \
        .to_csv(out["proxies"], index=False)
    out["spend"] = folder / "world.csv"
    world.LINES.assign(financial_year="2014-15", body_name="Council", body_kind="council",
                       function=world.LINES["cofog_code"]) \
        [["body", "body_name", "body_kind", "financial_year", "line", "function",
          "amount_pence", "area_set", "area_code"]].to_csv(out["spend"], index=False)
    return out


def load_world_sets(conn: Connection, paths: dict[str, Path], cofog: list[str]) -> None:
    """COFOG codes and the world's zones, wards and borough, through the public load path."""
    reference.save_cofog(conn, pd.DataFrame({"code": cofog, "description": cofog}))
    for slug, kind in (("fx-zones", "lsoa"), ("fx-wards", "ward"), ("fx-borough", "borough")):
        name = slug.removeprefix("fx-")
        load.load_boundaries(conn, load.Upload(paths[name], f"{name}.geojson"),
                             load.BoundaryOptions(slug=slug, kind=kind, code_field="code",
                                                  name_field="name", parent_field="parent_code"))



def load_world_proxy(conn: Connection, paths: dict[str, Path], slug: str = "residents-all") -> None:
    """One of the world's proxies (a column of its proxies file), on its zones."""
    load.load_proxy(conn, load.Upload(paths["proxies"], "proxies.csv"),
                    load.ProxyOptions(slug=slug, unit_set="fx-zones", year=2020,
                                      code_field="unit_code", value_field=slug))


def _load_world(url: str, folder: Path | None = None) -> dict[str, Path]:
    import tempfile

    folder = folder or Path(tempfile.mkdtemp(prefix="world-"))
    paths = world_files(folder)
    with connect(url) as conn:
        load_world_sets(conn, paths, cofog=["01", "07", "09", "10"])
        for slug in world.PROXY_VALUES["proxy"].unique():
            load_world_proxy(conn, paths, slug)
        load.load_spend(conn, load.Upload(paths["spend"], "world.csv"),
                        load.SpendLoadOptions())
    return paths


def _new_world_db(tmp_path: Path) -> str:
    from tests.conftest import _new_database

    url = _new_database(f"placespend_test_world_{abs(hash(str(tmp_path))) % 10**8}")
    _load_world(url)
    return url


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


def _run_and_publish(conn, request) -> int:
    result = make_run(conn, request)
    publish(conn, result.run_id)
    return result.run_id


def test_world_run_gives_the_hand_computed_pence(world_db) -> None:
    url, request = world_db
    with connect(url) as conn:
        result = make_run(conn, request)
        assert result.created
        assert result.collections == ("fx-wards-spend-2014-15",)
        rows = conn.execute(
            "SELECT target_code, sum(amount_pence)::bigint AS p FROM target_allocation"
            " WHERE run_id = %s GROUP BY target_code ORDER BY target_code", (result.run_id,)
        ).fetchall()
        assert {r["target_code"]: r["p"] for r in rows} == world.EXPECTED_WARD_PENCE
        atoms_total = conn.execute(
            "SELECT sum(amount_pence)::bigint AS p FROM atom_allocation WHERE run_id = %s",
            (result.run_id,)).fetchone()["p"]
        assert atoms_total == 100_034
        lines = store_runs.run_lines(conn, result.run_id)
        by_line = {}
        for r in lines.itertuples():
            spread = line_spread(conn, result.run_id, int(r.line_id))
            assert int(spread["amount_pence"].sum()) == r.amount_pence
            for s in spread.itertuples():
                by_line[(r.line, s.cut_code)] = by_line.get((r.line, s.cut_code), 0) + int(
                    s.amount_pence)
        assert by_line == world.EXPECTED_WARD_PENCE_BY_LINE
        with pytest.raises(NotFound):  # made, not public yet
            features.items(conn, "fx-wards-spend-2014-15")
        publish(conn, result.run_id)
        page = features.items(conn, "fx-wards-spend-2014-15")
    assert result.conservation["total_pence"] == 100_034
    assert result.conservation["unallocated_pence"] == 0
    methods = dict(zip(lines["line"], lines["method"], strict=True))
    assert methods == {"A": "proxy", "B": "proxy", "C": "proxy", "D": "area", "E": "direct"}
    assert page.number_matched == 2
    assert '"total_pence": 87251.0' in page.features_json.replace(":87251", ": 87251")


def test_same_inputs_give_back_the_same_run(world_db) -> None:
    url, request = world_db
    with connect(url) as conn:
        first = make_run(conn, request)
        again = make_run(conn, request)
    assert not again.created and again.run_id == first.run_id


def test_a_new_target_set_is_a_publication_of_the_same_run(world_db) -> None:
    url, request = world_db
    with connect(url) as conn:
        first = make_run(conn, request)
        both = make_run(conn, RunRequest(**{**request.__dict__,
                                            "target_sets": ("fx-wards", "fx-borough")}))
        assert not both.created and both.run_id == first.run_id
        assert both.collections == ("fx-wards-spend-2014-15", "fx-borough-spend-2014-15")
        borough = conn.execute(
            "SELECT sum(amount_pence)::bigint AS p FROM target_allocation"
            " WHERE run_id = %s AND target_set_id = %s",
            (first.run_id, sb.set_id(conn, "fx-borough"))).fetchone()["p"]
    assert borough == 100_034


def test_a_new_algorithm_version_makes_a_new_run(world_db, monkeypatch) -> None:
    url, request = world_db
    with connect(url) as conn:
        first = make_run(conn, request)
        monkeypatch.setattr(runs_module, "ALGORITHM_VERSION", "test-next")
        second = make_run(conn, request)
        assert second.created and second.run_id != first.run_id
        version = conn.execute("SELECT algorithm_version FROM run WHERE id = %s",
                               (second.run_id,)).fetchone()["algorithm_version"]
    assert version == "test-next"


def test_a_what_if_run_changes_no_public_collection_until_published(world_db, tmp_path) -> None:
    url, request = world_db
    other = tmp_path / "other.csv"
    other.write_text("line,proxy,rationale\n*,residents-all,everyone\n")
    cid = "fx-wards-spend-2014-15"
    with connect(url) as conn:
        default = _run_and_publish(conn, request)
        before = features.items(conn, cid).features_json
        before_meta = features.get_layer(conn, cid)
        custom = make_run(conn, RunRequest(**{**request.__dict__, "proxy_table": other}))
        assert custom.created and custom.run_id != default
        assert features.items(conn, cid).features_json == before
        assert features.get_layer(conn, cid) == before_meta
        assert features.collection_run(conn, cid) == default
        pinned = features.items(conn, cid, run_id=custom.run_id).features_json
        assert pinned != before
        publish(conn, custom.run_id)
        assert features.collection_run(conn, cid) == custom.run_id
        assert features.items(conn, cid).features_json == pinned
        publish(conn, default)
        assert features.items(conn, cid).features_json == before


def test_published_results_refuse_changes(world_db) -> None:
    url, request = world_db
    with connect(url) as conn:
        run_id = _run_and_publish(conn, request)
    for sql in (
        "UPDATE atom_allocation SET amount_pence = amount_pence + 1 WHERE run_id = %s",
        "DELETE FROM run_line WHERE run_id = %s",
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
        make_run(conn, RunRequest(**{**request.__dict__, "proxy_table": bad}))
    assert "change the proxy table" in err.value.fix
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM run").fetchone()["n"] == 0


def test_a_proxy_table_naming_no_real_line_is_refused(world_db, tmp_path: Path) -> None:
    url, request = world_db
    typo = tmp_path / "typo.csv"
    typo.write_text("line,proxy,rationale\nB,residents-0-15,children\n"
                    "Dx,residents-65-plus,old\n*,residents-all,everyone\n")
    with connect(url) as conn, pytest.raises(Rejected) as err:
        make_run(conn, RunRequest(**{**request.__dict__, "proxy_table": typo}))
    problem = err.value.problems[0]
    assert (problem.row, problem.field, problem.value) == (3, "line", "Dx")
    assert "did you mean 'D'" in problem.fix
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM run").fetchone()["n"] == 0
    # a general table may name lines a year does not have, as long as they are loaded lines
    general = tmp_path / "general.csv"
    general.write_text("line,proxy,rationale\nB,residents-0-15,children\n"
                       "*,residents-all,everyone\n")
    with connect(url) as conn:
        assert make_run(conn, RunRequest(**{**request.__dict__, "proxy_table": general}))


def test_a_proxy_table_row_for_one_body(world_db, tmp_path: Path) -> None:
    """Rows keyed by body and function: the council's own 'B' row beats the any-body one."""
    url, request = world_db
    table = tmp_path / "by-body.csv"
    table.write_text("body,line,proxy,rationale\n*,B,residents-0-15,children\n"
                     "council,B,residents-all,everyone for this council\n"
                     "*,*,residents-all,everyone\n")
    with connect(url) as conn:
        run = make_run(conn, RunRequest(**{**request.__dict__, "proxy_table": table}))
        lines = store_runs.run_lines(conn, run.run_id)
    assert lines.set_index("line").loc["B", "proxy"] == "residents-all"
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("body,line,proxy,rationale\ncouncill,*,residents-0-15,typo\n"
                       "*,*,residents-all,everyone\n")
    with connect(url) as conn, pytest.raises(Rejected) as err:
        make_run(conn, RunRequest(**{**request.__dict__, "proxy_table": unknown}))
    problem = err.value.problems[0]
    assert (problem.row, problem.field, problem.value) == (2, "body", "councill")
    assert "did you mean 'council'" in problem.fix


def test_year_without_lines_is_a_clear_error(world_db) -> None:
    url, request = world_db
    with connect(url) as conn, pytest.raises(InputError, match="no spend lines"):
        make_run(conn, RunRequest(**{**request.__dict__, "financial_year": "2099-00"}))


def test_the_same_spend_file_twice_creates_nothing(world_db, tmp_path: Path) -> None:
    url, _ = world_db
    paths = world_files(tmp_path / "again")
    with connect(url) as conn:
        before = conn.execute("SELECT count(*) AS n FROM spend_line").fetchone()["n"]
        again = load.load_spend(conn, load.Upload(paths["spend"], "world.csv"),
                                load.SpendLoadOptions())
        after = conn.execute("SELECT count(*) AS n FROM spend_line").fetchone()["n"]
    assert not again.created and "already loaded" in again.summary
    assert before == after == 5


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


def test_a_run_on_a_dask_cluster_is_the_same_run(world_db, tmp_path: Path) -> None:
    from placespend import distributed

    url, request = world_db
    other = _new_world_db(tmp_path)
    client = distributed.connect("local")  # the PLACESPEND_DASK_SCHEDULER=local path
    try:
        with connect(other) as conn:
            on_cluster = make_run(conn, request, client=client)
            cluster_rows = conn.execute(
                "SELECT atom_id, slice_id, amount_pence FROM atom_allocation WHERE run_id = %s"
                " ORDER BY 1, 2", (on_cluster.run_id,)).fetchall()
            cluster_sha = store_runs.get_run(conn, on_cluster.run_id)["inputs_sha256"]
    finally:
        client.close()
    with connect(url) as conn:
        here = make_run(conn, request)
        rows = conn.execute(
            "SELECT atom_id, slice_id, amount_pence FROM atom_allocation WHERE run_id = %s"
            " ORDER BY 1, 2", (here.run_id,)).fetchall()
        sha = store_runs.get_run(conn, here.run_id)["inputs_sha256"]
    assert cluster_rows == rows and len(rows) > 0
    assert cluster_sha == sha
    assert on_cluster.conservation == here.conservation


def test_an_agency_estimate_places_its_shares_and_spreads_the_rest(world_db,
                                                                   tmp_path: Path) -> None:
    """Line A (£1,000 for the borough) comes with the council's own shares: W1 25 %, W2 50 %.

    By hand: £250 to W1 and £500 to W2 by the estimate; the other £250 spread over the borough
    by residents as before (W1 87.5 %, W2 12.5 %): £218.75 and £31.25. So line A gives W1
    46,875p and W2 53,125p, and the wards' totals move from 87,251p / 12,783p to 46,626p /
    53,408p.
    """
    url, request = world_db
    paths = world_files(tmp_path / "again")
    frame = pd.read_csv(paths["spend"], dtype=str)
    frame["shares"] = np.where(frame["line"] == "A", '{"W1": 0.25, "W2": 0.5}', "")
    frame.to_csv(paths["spend"], index=False)
    with connect(url) as conn:
        done = load.load_spend(conn, load.Upload(paths["spend"], "world-estimate.csv"),
                               load.SpendLoadOptions(share_set="fx-wards"))
        assert done.created and done.details["scopes"][0]["supersedes_batch"] is not None
        run_id = _run_and_publish(conn, request)
        wards = {f["properties"]["code"]: f["properties"] for f in json.loads(
            features.items(conn, "fx-wards-spend-2014-15", limit=10).features_json)}
        lines = store_runs.run_lines(conn, run_id).set_index("line")
        a_id = int(lines.loc["A", "line_id"])
        spread = line_spread(conn, run_id, a_id)
    assert {c: w["total_pence"] for c, w in wards.items()} == {"W1": 46_626, "W2": 53_408}
    assert wards["W2"]["share_agency_estimate"] == round(50_000 / 53_408, 6)
    assert wards["W1"]["confidence"] == "B"  # 25,000 of 46,626 by the council's own estimate
    a = lines.loc["A"]
    assert (a["allocated_pence"], a["method"]) == (100_000, "agency_estimate")
    assert a["reason"].startswith("£750.00 placed by the body's own estimate over 2 unit(s)")
    assert spread.groupby("cut_code")["amount_pence"].sum().to_dict() == {"W1": 46_875,
                                                                           "W2": 53_125}


def test_every_figure_has_its_area_method_range(world_db) -> None:
    """By land area (W1 is 150 m wide, W2 50 m): A 75,000/25,000, B -750/-250, C 1/0,
    D 250/83 (running totals over the atoms 100, 50, 50 m wide), E 700 direct in W2. So W1
    74,501p and W2 25,533p, against 87,251p and 12,783p by the proxies.

    By best fit: Z1 lies wholly in W1; Z2's residents are half in W1, half in W2, a tie that
    goes to the lower code, W1. So everything spread over zones (A to D, 99,334p) goes to W1;
    E, reported for W2 itself, stays there: 99,334p and 700p."""
    url, request = world_db
    with connect(url) as conn:
        _run_and_publish(conn, request)
        wards = {f["properties"]["code"]: f["properties"] for f in json.loads(
            features.items(conn, "fx-wards-spend-2014-15", limit=10).features_json)}
    assert {c: round(w["total_by_area"] * 100) for c, w in wards.items()} == {
        "W1": 74_501, "W2": 25_533}
    assert {c: round(w["total_best_fit"] * 100) for c, w in wards.items()} == {
        "W1": 99_334, "W2": 700}
    assert (wards["W1"]["range_low"], wards["W1"]["range_high"]) == (745.01, 993.34)
    assert (wards["W2"]["range_low"], wards["W2"]["range_high"]) == (7.0, 255.33)


def test_a_best_fit_publication_gives_whole_small_areas(world_db) -> None:
    """Published by best fit, the figures are the best-fit ones above: W1 99,334p (Z1 and Z2
    whole, Z2's tie going to the lower code), W2 700p (its own direct line); every resident of
    Z2 counts in W1 too. The money the proxy spread shows as best fit, the direct £7 as
    direct, the land-area spread line as area."""
    url, request = world_db
    with connect(url) as conn:
        run_id = _run_and_publish(conn, request)
        (cid,) = publish(conn, run_id, ["fx-wards"], fit="best_fit")
        wards = {f["properties"]["code"]: f["properties"] for f in json.loads(
            features.items(conn, cid, limit=10).features_json)}
        meta = features.get_layer(conn, cid)
        split = {f["properties"]["code"]: f["properties"] for f in json.loads(
            features.items(conn, "fx-wards-spend-2014-15", limit=10).features_json)}
    assert cid == "fx-wards-spend-2014-15-best-fit" and "best fit" in meta.title
    assert {c: w["total_pence"] for c, w in wards.items()} == {"W1": 99_334, "W2": 700}
    assert sum(w["population"] for w in wards.values()) == sum(
        w["population"] for w in split.values())
    assert wards["W2"]["share_direct"] == 1.0
    # D (333p, spread by land area: no one is 65+) stays "area"; the rest was the proxy's
    assert wards["W1"]["share_area"] == round(333 / 99_334, 6)
    assert wards["W1"]["share_best_fit"] == round(1 - 333 / 99_334, 6)
    assert wards["W1"]["confidence"] == "D"  # best fit of what residents spread: an estimate
    for c, w in wards.items():  # the same figure as the split publication's best-fit range
        assert round(split[c]["total_best_fit"] * 100) == w["total_pence"]
