"""The embedded default data, through the public load path: counts, exact money, mappings,
provenance, and every bad file refused with the row at fault.

What the embedded data holds once loaded is read from the shared demo database (loaded by
``load_embedded``; never written here, and read by the embedded batches' ids so nothing another
test might add is counted). Every load of a changed or broken file goes into a ``fresh_db``.
"""

from __future__ import annotations

import csv
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from boundaries import catalog
from domain.errors import InputError, Rejected
from intake.reference import read_cofog, read_proxy_table
from intake.spend import SpendOptions, read_spend
from intake.tables import read_rows
from placespend import load
from store import boundaries as store_boundaries
from store import reference, spend
from store.db import Connection, connect

SERVICE_LINES = [
    "Education services",
    "Highways and transport services",
    "Children Social Care",
    "Adult Social Care",
    "Public Health",
    "Housing services (GFRA only)",
    "Cultural and related services",
    "Environmental and regulatory services",
    "Planning and development services",
    "Police services",
    "Fire and rescue services",
    "Central services",
    "Other services",
]
TOTAL_LINE = "TOTAL SERVICE EXPENDITURE (TOTAL OF LINES 190 to 698)"

#: The body-years DCLG's £1k rounding puts £1k out (boundaries/data/README.md says which).
ROUNDED = {"Tower Hamlets 2013-14", "Harrow 2013-14", "Westminster 2014-15", "Brent 2014-15",
           "Croydon 2014-15", "Enfield 2014-15"}


def item(kind: str, slug: str | None = None) -> catalog.Embedded:
    """The embedded file of ``kind`` (boundaries and proxies: by slug)."""
    return next(e for e in catalog.EMBEDDED
                if e.kind == kind and (slug is None or e.options.get("slug") == slug))


RS = item("spend")
RS_NAME = Path(RS.path).name
POPULATION = item("proxy", "residents-65-plus")


def load_item(conn: Connection, e: catalog.Embedded, path: Path | None = None,
              **options: object) -> load.Loaded:
    """Load an embedded file (or a changed copy at ``path``) as ``load_embedded`` does."""
    loader = load.LOADERS[e.kind]
    provenance = {} if e.kind == "functions" else {  # as load_embedded passes them
        "licence": e.provenance.licence, "attribution": e.provenance.attribution,
        "source": f"boundaries/data/{e.path}"}
    opts = loader.options(**{**e.options, **provenance, **options})
    upload = load.Upload(path or catalog.path(e.path), Path(e.path).name)
    return loader.load(conn, upload, opts)


def ready_for_rs(conn: Connection, *, areas: bool) -> None:
    """COFOG and the RS function map; with ``areas`` also the sets RS bodies are placed in."""
    reference.save_cofog(conn, read_cofog(catalog.path(catalog.COFOG_PATH)))
    load_item(conn, item("functions"))
    if areas:
        load_item(conn, item("boundaries", "london-boroughs-2014"))
        load_item(conn, item("boundaries", "london-region-2014"))


def load_rs(conn: Connection, path: Path, **options: object) -> load.Loaded:
    return load_item(conn, RS, path, **options)


def rs_copy(tmp_path: Path) -> Path:
    """Copy the RS csv into tmp_path and return the copy."""
    dest = tmp_path / RS_NAME
    shutil.copyfile(catalog.path(RS.path), dest)
    return dest


def find_line(path: Path, e_code: str, year: str, line: str) -> int:
    """1-based line number of a body-year-line row in the RS csv."""
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = text.split(",")
        if parts[0] == year and parts[1] == e_code and parts[6] == line:
            return n
    raise AssertionError(f"{e_code} {year} {line} not found")


def replace_value(path: Path, line_no: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    head, _, _ = lines[line_no - 1].rpartition(",")
    lines[line_no - 1] = f"{head},{new}"
    path.write_text("\n".join(lines), encoding="utf-8")


def counts(conn: Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]
            for t in ("upload_batch", "spend_line", "spend_scope", "body")}


def rejected_rs(url: str, path: Path, **options: object) -> Rejected:
    """Load ``path`` as the RS file into ``url``; it must be Rejected with nothing stored."""
    with connect(url) as conn:
        before = counts(conn)
        with pytest.raises(Rejected) as err:
            load_rs(conn, path, **options)
        assert counts(conn) == before
    return err.value


def embedded_batches(conn: Connection, kind: str) -> list[dict]:
    return conn.execute("SELECT * FROM upload_batch WHERE kind = %s AND loaded_by = 'embedded'"
                        " ORDER BY id", (kind,)).fetchall()


def embedded_set(conn: Connection, slug: str) -> dict:
    """The boundary_set row load_embedded stored for ``slug``."""
    ids = [b["id"] for b in embedded_batches(conn, "boundaries")]
    return conn.execute("SELECT * FROM boundary_set WHERE slug = %s AND batch_id = ANY(%s)",
                        (slug, ids)).fetchone()


def units(conn: Connection, slug: str) -> pd.DataFrame:
    return store_boundaries.read_boundaries(conn, int(embedded_set(conn, slug)["id"]))


def batch_lines(conn: Connection, batch_id: int) -> pd.DataFrame:
    rows = conn.execute(
        "SELECT l.id AS line_id, b.slug AS body, l.financial_year, l.line, l.cofog_code,"
        " l.amount_pence, s.slug AS area_set, l.area_code, l.source_row, l.kind, l.located_by,"
        " l.scheme, l.source_code" + spend.LINE_JOINS + " WHERE l.batch_id = %s ORDER BY l.id",
        (batch_id,)).fetchall()
    return pd.DataFrame(rows)


@pytest.fixture()
def embedded_spend(conn: Connection, demo: object) -> pd.DataFrame:
    """The spend lines load_embedded stored from the RS csv."""
    (batch,) = [b for b in embedded_batches(conn, "spend") if b["filename"] == RS.path]
    return batch_lines(conn, int(batch["id"]))


def rows_of(lines: pd.DataFrame, body: str, year: str) -> pd.DataFrame:
    return lines[(lines["body"] == body) & (lines["financial_year"] == year)]


# --------------------------------------------------------------------------- counts


def test_boundary_counts() -> None:
    assert len(load.embedded_boundaries("london-wards-2014")) == 630
    assert len(load.embedded_boundaries("hackney-wards-2014")) == 21
    assert len(load.embedded_boundaries("hackney-wards-2013")) == 19
    lsoa = load.embedded_boundaries("london-lsoa-2011")
    assert len(lsoa) == 4835
    assert (lsoa["parent_code"] == "E09000012").sum() == 144
    # the sets dissolved from the 2014 wards (once DERIVED_SETS, now dissolve options)
    boroughs = load.embedded_boundaries("london-boroughs-2014")
    assert len(boroughs) == 33
    assert boroughs.set_index("code").loc["E09000012", "name"] == "Hackney"
    region = load.embedded_boundaries("london-region-2014")
    assert list(region["code"]) == ["E12000007"] and list(region["name"]) == ["London"]
    assert region.crs.to_epsg() == lsoa.crs.to_epsg() == 27700


def test_embedded_sets_as_loaded(conn: Connection, demo: object) -> None:
    expected = {"london-wards-2014": 630, "hackney-wards-2014": 21, "hackney-wards-2013": 19,
                "london-lsoa-2011": 4835, "hackney-oa-2011": 749, "london-boroughs-2014": 33,
                "london-region-2014": 1}
    for e in catalog.EMBEDDED:
        if e.kind != "boundaries":
            continue
        slug = e.options["slug"]
        meta = embedded_set(conn, slug)
        assert meta["version"] == 1, slug
        assert len(units(conn, slug)) == expected.pop(slug)
        assert meta["licence"] == e.provenance.licence
        assert meta["attribution"] == e.provenance.attribution
        assert meta["source"] == f"boundaries/data/{e.path}"
    assert not expected
    boroughs = units(conn, "london-boroughs-2014")
    wards = units(conn, "london-wards-2014")
    assert set(boroughs["code"]) == set(wards["parent_code"])


def test_hackney_ward_codes() -> None:
    w14 = load.embedded_boundaries("hackney-wards-2014")
    assert sorted(w14["code"]) == [f"E0500{n}" for n in range(9367, 9388)]
    assert set(w14["parent_code"]) == {"E09000012"}
    w13 = load.embedded_boundaries("hackney-wards-2013")
    assert sorted(w13["code"]) == [f"E05000{n}" for n in range(231, 250)]
    assert not set(w13["code"]) & set(w14["code"])
    london = load.embedded_boundaries("london-wards-2014")
    assert london["parent_code"].nunique() == 33
    assert set(london.loc[london["parent_code"] == "E09000012", "code"]) == set(w14["code"])


def test_population_proxies(conn: Connection, demo: object) -> None:
    lsoa_set = embedded_set(conn, "london-lsoa-2011")
    values = reference.proxy_values(conn, int(lsoa_set["id"]))
    by_proxy = {slug: frame for slug, frame in values.groupby("proxy")}
    everyone = by_proxy["residents-all"]
    assert len(everyone) == 4835
    assert everyone["value"].dtype == "float64"
    assert everyone["unit_code"].is_unique
    assert everyone["value"].sum() == 9_002_488
    assert by_proxy["residents-0-15"]["value"].sum() == 1_853_207
    assert by_proxy["residents-65-plus"]["value"].sum() == 1_098_453
    lsoa = units(conn, "london-lsoa-2011")
    assert set(everyone["unit_code"]) == set(lsoa["code"])
    hackney = set(lsoa.loc[lsoa["parent_code"] == "E09000012", "code"])
    assert everyone.loc[everyone["unit_code"].isin(hackney), "value"].sum() == 280_941
    reports = {b["report"]["proxy"]: b["report"] for b in embedded_batches(conn, "proxy")}
    assert reports["residents-all"]["units"] == 4835
    assert reports["residents-all"]["total"] == 9_002_488
    assert all(r["units_without_a_value"] == 0 for r in reports.values())


# --------------------------------------------------------------------------- spend


def test_spend_shape(conn: Connection, embedded_spend: pd.DataFrame) -> None:
    # The RS file is loaded whole now: 33 councils and the GLA, 2 years, 13 service lines each
    # (the old reader kept Hackney and the GLA only: 2 x 2 x 13).
    assert len(embedded_spend) == 34 * 2 * 13
    per_body_year = embedded_spend.groupby(["body", "financial_year"])["line"].apply(sorted)
    assert len(per_body_year) == 68
    assert all(lines == sorted(SERVICE_LINES) for lines in per_body_year)
    assert set(embedded_spend["kind"]) == {"expenditure"}
    assert set(embedded_spend["located_by"]) == {"area"}
    assert set(embedded_spend["scheme"]) == {"rs"}
    assert (embedded_spend["source_code"] == embedded_spend["line"]).all()
    gla = embedded_spend[embedded_spend["body"] == "gla"]
    assert set(gla["area_set"]) == {"london-region-2014"}
    assert set(gla["area_code"]) == {"E12000007"}
    hackney = embedded_spend[embedded_spend["body"] == "hackney"]
    assert set(hackney["area_set"]) == {"london-boroughs-2014"}
    assert set(hackney["area_code"]) == {"E09000012"}
    # what a run reads: the same lines, in the reader's columns and types
    current = spend.read_lines(conn, financial_year="2014-15")
    assert list(current.columns) == ["line_id", "body", "line", "cofog_code", "amount_pence",
                                     "area_set", "area_code", "source_row", "x", "y",
                                     "source_code", "shares", "dataset", "site_id"]
    current = current[current["dataset"] == "main"]  # the RS file's lines (not CRA or GP)
    assert current["x"].isna().all()  # every RS line is reported for an area, none at a point
    assert current["amount_pence"].dtype == "int64"
    assert current["source_row"].dtype == "int64"
    assert set(current["line"]) == set(SERVICE_LINES)
    ours = embedded_spend[embedded_spend["financial_year"] == "2014-15"]
    assert list(current["line_id"]) == list(ours["line_id"])


def test_hackney_2014_15_total_is_exact(conn: Connection, embedded_spend: pd.DataFrame) -> None:
    rows = rows_of(embedded_spend, "hackney", "2014-15")
    assert len(rows) == 13
    assert rows["amount_pence"].sum() == 52_969_400_000
    edu = rows[rows["line"] == "Education services"].iloc[0]
    assert edu["amount_pence"] == 26_227_400_000
    assert edu["cofog_code"] == "09"
    other = rows[rows["line"] == "Other services"].iloc[0]
    assert other["amount_pence"] == -500_000  # negative net spend is kept, signed
    # source_row points at the very line in the csv
    text = catalog.path(RS.path).read_text(encoding="utf-8").splitlines()
    assert text[int(edu["source_row"]) - 1].endswith(",Education services,262274.0")
    scope = conn.execute(
        "SELECT s.* FROM spend_scope s JOIN body b ON b.id = s.body_id WHERE b.slug = 'hackney'"
        " AND s.financial_year = '2014-15' AND s.batch_id = %s",
        (int(embedded_batches(conn, "spend")[0]["id"]),)).fetchone()
    assert scope["total_pence"] == 52_969_400_000
    assert scope["lines"] == 13 and scope["income_pence"] == 0 and scope["supersedes"] is None


def test_hackney_2013_14_total_is_exact(embedded_spend: pd.DataFrame) -> None:
    rows = rows_of(embedded_spend, "hackney", "2013-14")
    assert rows["amount_pence"].sum() == 52_113_100_000


def test_gla_2014_15_signed_total_matches_csv(embedded_spend: pd.DataFrame) -> None:
    with catalog.path(RS.path).open(encoding="utf-8", newline="") as f:
        raw = [r for r in csv.DictReader(f)
               if r["e_code"] == "E5100" and r["financial_year"] == "2014-15"]
    by_line = {r["line"]: Decimal(r["value_gbp_thousand"]) for r in raw}
    from_csv = int(sum(by_line[line] for line in SERVICE_LINES) * 100_000)
    total_line = next(v for k, v in by_line.items() if k.startswith("TOTAL SERVICE"))
    assert from_csv == int(total_line * 100_000) == 470_086_300_000
    rows = rows_of(embedded_spend, "gla", "2014-15")
    assert rows["amount_pence"].sum() == 470_086_300_000
    police = rows[rows["line"] == "Police services"].iloc[0]
    assert police["amount_pence"] == 283_435_400_000
    assert police["cofog_code"] == "03"


def test_gla_2013_14_has_no_ons_code_but_is_read(embedded_spend: pd.DataFrame) -> None:
    with catalog.path(RS.path).open(encoding="utf-8", newline="") as f:
        assert {r["ons_code"] for r in csv.DictReader(f)
                if r["e_code"] == "E5100" and r["financial_year"] == "2013-14"} == {""}
    assert RS.options["body_areas"] == {"E5100": "E12000007"}
    rows = rows_of(embedded_spend, "gla", "2013-14")
    assert rows["amount_pence"].sum() == 487_937_900_000
    assert set(rows["area_code"]) == {"E12000007"}


def test_rounded_councils_are_within_the_default_tolerance(
        conn: Connection, embedded_spend: pd.DataFrame) -> None:
    # DCLG rounds every figure to £1k: Tower Hamlets 2013-14 lines sum to £1k below the total.
    # The default tolerance (£10k) lets the embedded file load; the load report keeps the check.
    (batch,) = [b for b in embedded_batches(conn, "spend") if b["filename"] == RS.path]
    assert batch["options"]["total_tolerance_pence"] == 1_000_000
    checks = {(c["body"], c["financial_year"]): c for c in batch["report"]["checks"]}
    assert len(checks) == 68
    tower = checks[("tower_hamlets", "2013-14")]
    assert tower["difference_pence"] == -100_000
    assert tower["lines_pence"] == 67_437_400_000
    assert rows_of(embedded_spend, "tower_hamlets", "2013-14")["amount_pence"].sum() \
        == 67_437_400_000
    assert sum(1 for c in checks.values() if c["difference_pence"] != 0) == len(ROUNDED)
    assert all(abs(c["difference_pence"]) <= 100_000 for c in checks.values())
    assert checks[("hackney", "2014-15")]["difference_pence"] == 0
    assert checks[("gla", "2013-14")]["difference_pence"] == 0


def test_rounded_councils_need_a_tolerance(fresh_db: str, tmp_path: Path) -> None:
    copy = rs_copy(tmp_path)
    with connect(fresh_db) as conn:
        ready_for_rs(conn, areas=False)
    err = rejected_rs(fresh_db, copy, total_tolerance_pence=99_999)
    assert {p.reason.split(":")[0] for p in err.problems} == ROUNDED
    assert err.total == len(ROUNDED)
    tower = next(p for p in err.problems if p.reason.startswith("Tower Hamlets 2013-14"))
    assert tower.row == find_line(copy, "E5020", "2013-14", TOTAL_LINE)
    assert tower.where == f"row {tower.row}"
    assert tower.field == "value_gbp_thousand"
    assert "£999.99" in tower.fix  # the tolerance it was held to
    # the reader alone, at exactly £1k of tolerance, reads the file
    with connect(fresh_db) as conn:
        rs_map = reference.function_map(conn, "rs")
    read = read_spend(copy, source=RS_NAME, options=SpendOptions(
        format="rs", total_tolerance_pence=100_000), function_maps={"rs": rs_map})
    tower_rows = rows_of(read.lines, "tower_hamlets", "2013-14")
    assert tower_rows["amount_pence"].sum() == 67_437_400_000


# --------------------------------------------------------------------------- bad RS files


@pytest.fixture()
def rs_db(fresh_db: str) -> str:
    """A fresh database ready to read an RS file (COFOG and the RS map; no areas needed to
    refuse one)."""
    with connect(fresh_db) as conn:
        ready_for_rs(conn, areas=False)
    return fresh_db


def test_malformed_amount_names_the_row(rs_db: str, tmp_path: Path) -> None:
    copy = rs_copy(tmp_path)
    line_no = find_line(copy, "E5013", "2014-15", "Adult Social Care")
    replace_value(copy, line_no, "66O28.0")  # letter O for a zero
    err = rejected_rs(rs_db, copy)
    first = err.problems[0]
    assert (first.row, first.where, first.field, first.value) == (
        line_no, f"row {line_no}", "value_gbp_thousand", "66O28.0")
    assert "not a number" in first.reason
    assert "£ thousand" in first.fix
    assert RS_NAME in err.cause and "66O28.0" in err.cause


def test_sub_penny_amount_is_refused(rs_db: str, tmp_path: Path) -> None:
    copy = rs_copy(tmp_path)
    line_no = find_line(copy, "E5100", "2013-14", "Central services")
    replace_value(copy, line_no, "58820.000001")
    err = rejected_rs(rs_db, copy)
    first = err.problems[0]
    assert (first.row, first.field, first.value) == (line_no, "value_gbp_thousand",
                                                     "58820.000001")
    assert "not a whole number of pence" in first.reason
    assert "at most 5 decimals" in first.fix


def test_total_mismatch_names_the_total_row_and_figures(rs_db: str, tmp_path: Path) -> None:
    copy = rs_copy(tmp_path)
    replace_value(copy, find_line(copy, "E5013", "2014-15", "Public Health"), "29819.0")
    total_row = find_line(copy, "E5013", "2014-15", TOTAL_LINE)
    # £1k out: refused with no tolerance
    err = rejected_rs(rs_db, copy, total_tolerance_pence=0)
    assert len(err.problems) == len(ROUNDED) + 1
    (first,) = [p for p in err.problems if p.reason.startswith("Hackney 2014-15")]
    assert (first.row, first.where, first.field) == (total_row, f"row {total_row}",
                                                     "value_gbp_thousand")
    assert first.value == "529694.0"  # the stated total (£529,694,000.00)
    assert "£529,695,000.00" in first.reason  # what the lines add up to
    assert "£1,000.00 apart" in first.reason
    # £11k out: refused at the default tolerance (£10k), and only Hackney 2014-15 is named
    replace_value(copy, find_line(copy, "E5013", "2014-15", "Public Health"), "29829.0")
    err = rejected_rs(rs_db, copy)
    (only,) = err.problems
    assert only.row == total_row
    assert "£529,705,000.00" in only.reason and "£11,000.00 apart" in only.reason
    assert "£10,000.00" in only.fix


def test_unmapped_line_is_refused(rs_db: str, tmp_path: Path) -> None:
    copy = rs_copy(tmp_path)
    line_no = find_line(copy, "E5013", "2013-14", "Parish precepts")
    text = copy.read_text(encoding="utf-8").split("\n")
    text[line_no - 1] = text[line_no - 1].replace("Parish precepts", "Library services")
    copy.write_text("\n".join(text), encoding="utf-8")
    err = rejected_rs(rs_db, copy)
    (first,) = err.problems
    assert (first.row, first.where, first.field, first.value) == (
        line_no, f"row {line_no}", "line", "Library services")
    assert "not mapped to a COFOG function" in first.reason
    assert "placespend load functions" in first.fix
    assert "--scheme rs" in first.fix


# --------------------------------------------------------------------------- RS stored


def test_pence_amounts_are_exact(fresh_db: str, tmp_path: Path) -> None:
    copy = rs_copy(tmp_path)
    # move 0.01 pounds (0.00001 £k) from Central services to Other services: total unchanged
    replace_value(copy, find_line(copy, "E5013", "2014-15", "Central services"), "42045.99999")
    replace_value(copy, find_line(copy, "E5013", "2014-15", "Other services"), "-4.99999")
    with connect(fresh_db) as conn:
        ready_for_rs(conn, areas=True)
        loaded = load_rs(conn, copy)
        lines = batch_lines(conn, loaded.batch_id)
    hackney = rows_of(lines, "hackney", "2014-15")
    amounts = dict(zip(hackney["line"], hackney["amount_pence"], strict=True))
    assert amounts["Central services"] == 4_204_599_999
    assert amounts["Other services"] == -499_999
    assert hackney["amount_pence"].sum() == 52_969_400_000
    check = next(c for c in loaded.details["checks"]
                 if (c["body"], c["financial_year"]) == ("hackney", "2014-15"))
    assert check["difference_pence"] == 0


def test_the_same_rs_file_twice_stores_nothing_new(fresh_db: str) -> None:
    with connect(fresh_db) as conn:
        ready_for_rs(conn, areas=True)
        first = load_rs(conn, catalog.path(RS.path))
        before = counts(conn)
        again = load_rs(conn, catalog.path(RS.path))
        after = counts(conn)
    assert first.created and first.details["lines"] == 884
    assert not again.created
    assert again.batch_id == first.batch_id
    assert "already loaded" in again.summary and "nothing new was stored" in again.summary
    assert again.details["lines"] == 884  # the first load's report
    assert after == before


def _correct_hackney_2014_15(path: Path) -> None:
    """Hackney's corrected return: £1k more on education, and £1k more in its total."""
    replace_value(path, find_line(path, "E5013", "2014-15", "Education services"), "262275.0")
    replace_value(path, find_line(path, "E5013", "2014-15", TOTAL_LINE), "529695.0")


def _current(conn: Connection) -> dict[tuple[str, str], int]:
    return {(r["slug"], r["financial_year"]): r["batch_id"] for r in conn.execute(
        "SELECT b.slug, c.financial_year, c.batch_id FROM spend_current c"
        " JOIN body b ON b.id = c.body_id")}


def test_a_corrected_return_supersedes_its_body_year(fresh_db: str, tmp_path: Path) -> None:
    # Hackney resubmits its 2014-15 return alone (the header and its 31 rows).
    corrected = tmp_path / "hackney_2014-15_corrected.csv"
    text = catalog.path(RS.path).read_text(encoding="utf-8").splitlines()
    corrected.write_text("\n".join([text[0]] + [t for t in text[1:] if
                                                t.startswith("2014-15,E5013,")]) + "\n",
                         encoding="utf-8")
    _correct_hackney_2014_15(corrected)
    with connect(fresh_db) as conn:
        ready_for_rs(conn, areas=True)
        old = load_rs(conn, catalog.path(RS.path))
        lines_before = counts(conn)["spend_line"]
        new = load_rs(conn, corrected)
        assert new.created and new.batch_id != old.batch_id
        (scope,) = new.details["scopes"]
        assert scope == {"body": "hackney", "financial_year": "2014-15", "lines": 13,
                         "total_pence": 52_969_500_000, "supersedes_batch": old.batch_id,
                         "previous_total_pence": 52_969_400_000}
        assert "supersedes 1 earlier body-year" in new.summary
        row = conn.execute(
            "SELECT s.* FROM spend_scope s JOIN body b ON b.id = s.body_id"
            " WHERE s.batch_id = %s", (new.batch_id,)).fetchall()
        assert [(r["supersedes"], r["total_pence"]) for r in row] == [(old.batch_id,
                                                                      52_969_500_000)]
        assert counts(conn)["spend_line"] == lines_before + 13
        current = _current(conn)
        assert current.pop(("hackney", "2014-15")) == new.batch_id
        assert len(current) == 67 and set(current.values()) == {old.batch_id}
        assert current[("hackney", "2013-14")] == old.batch_id
        # a run of 2014-15 now reads Hackney's corrected lines and everyone else's first ones
        year = spend.read_lines(conn, financial_year="2014-15")
        hackney = year[year["body"] == "hackney"]
        assert len(hackney) == 13 and hackney["amount_pence"].sum() == 52_969_500_000
        assert len(year) == 34 * 13
        assert spend.read_lines(conn, financial_year="2013-14")["amount_pence"].sum() == \
            batch_lines(conn, old.batch_id).query("financial_year == '2013-14'")[
                "amount_pence"].sum()


def test_a_corrected_full_file_moves_only_the_changed_body_year(fresh_db: str,
                                                                tmp_path: Path) -> None:
    copy = rs_copy(tmp_path)
    _correct_hackney_2014_15(copy)
    with connect(fresh_db) as conn:
        ready_for_rs(conn, areas=True)
        old = load_rs(conn, catalog.path(RS.path))
        new = load_rs(conn, copy)
        current = _current(conn)
        superseding = conn.execute("SELECT count(*) AS n FROM spend_scope WHERE batch_id = %s"
                                   " AND supersedes IS NOT NULL",
                                   (new.batch_id,)).fetchone()["n"]
    assert current.pop(("hackney", "2014-15")) == new.batch_id
    assert set(current.values()) == {old.batch_id}  # 2013-14 and the other bodies stay put
    assert superseding == 1


# --------------------------------------------------------------------------- mappings


def _mapping_file() -> list[dict[str, str]]:
    e = item("functions")
    return [r.values for r in read_rows(catalog.path(e.path),
                                        ("line", "cofog_division", "cofog_group", "rationale"),
                                        source=e.path)]


def _stored_rs_map(conn: Connection) -> list[dict]:
    return conn.execute("SELECT source_code, cofog_code, rationale, batch_id FROM function_map"
                        " WHERE scheme = 'rs' ORDER BY source_code").fetchall()


def test_every_mapped_line_has_a_cofog_division(conn: Connection, demo: object) -> None:
    cofog = read_cofog(catalog.path(catalog.COFOG_PATH))
    assert len(cofog) == 79
    assert (cofog["code"].str.len() == 2).sum() == 10
    codes = set(cofog["code"])
    assert codes == reference.cofog_codes(conn)  # load_embedded stored the list as read
    stored = _stored_rs_map(conn)
    (batch,) = embedded_batches(conn, "functions")
    assert {r["batch_id"] for r in stored} == {batch["id"]}
    assert [r["line"] for r in _mapping_file()] == SERVICE_LINES
    assert [r["source_code"] for r in stored] == sorted(SERVICE_LINES)
    assert {r["cofog_code"] for r in stored} <= codes
    assert all(len(r["cofog_code"]) == 2 for r in stored)  # the division is what is stored
    assert all(len(r["rationale"]) > 40 for r in stored)
    groups = {r["cofog_group"] for r in _mapping_file()} - {""}
    assert groups <= codes
    described = dict(zip(cofog["code"], cofog["description"], strict=True))
    assert described["03.1"] == "Police services"
    assert described["10"] == "Social protection"
    assert reference.cofog_divisions(conn)["10"] == "Social protection"


def test_mapping_divisions(conn: Connection, demo: object) -> None:
    division = reference.function_map(conn, "rs")
    assert division["Education services"] == "09"
    assert division["Police services"] == "03"
    assert division["Planning and development services"] == "06"
    # the group column is the file's own note: the load reads the division only
    group = {r["line"]: r["cofog_group"] for r in _mapping_file()}
    assert group["Highways and transport services"] == "04.5"
    assert group["Other services"] == ""
    assert {r["line"]: r["cofog_division"] for r in _mapping_file()} == division


def test_a_mapped_line_cannot_move(fresh_db: str, tmp_path: Path) -> None:
    e = item("functions")
    moved = tmp_path / "rs_line_cofog.csv"
    text = catalog.path(e.path).read_text(encoding="utf-8").split("\n")
    assert text[1].startswith("Education services,09,")
    text[1] = text[1].replace("Education services,09,", "Education services,10,", 1)
    moved.write_text("\n".join(text), encoding="utf-8")
    with connect(fresh_db) as conn:
        ready_for_rs(conn, areas=False)
        assert not load_item(conn, e).created  # the same file again: nothing new
        with pytest.raises(Rejected) as err:
            load_item(conn, e, moved)
    (first,) = err.value.problems
    assert (first.row, first.field, first.value) == (2, "cofog_division", "10")
    assert "already mapped to 09" in first.reason
    assert "new scheme" in first.fix


def test_default_proxies(conn: Connection, demo: object) -> None:
    table = read_proxy_table(catalog.path(catalog.DEFAULT_PROXIES_PATH))
    chosen = dict(zip(zip(table["body"], table["line"], strict=True), table["proxy"],
                      strict=True))
    any_body = {line: proxy for (body, line), proxy in chosen.items() if body == "*"}
    assert any_body == {
        "Education services": "residents-0-15",
        "Children Social Care": "residents-0-15",
        "Adult Social Care": "residents-65-plus",
        "*": "residents-all",
    }
    # the regional analysis' benefits follow the age band they are paid to
    dwp = "department_for_work_and_pensions"
    assert chosen[(dwp, "S032A044-STATE PENSION")] == "residents-65-plus"
    assert chosen[(dwp, "*")] == "residents-16-64"
    assert chosen[("hm_revenue_and_customs", "S041A008-CHILD BENEFIT")] == "residents-0-15"
    assert chosen[("gla", "Education services")] == "residents-16-29"  # the GLA has no schools
    # GP payments: over the practice's catchment, sized by its registered patients
    gp = table[(table["body"] == "nhs_england") & (table["line"] == "07.2")].iloc[0]
    assert (gp["proxy"], gp["catchment"]) == ("residents-all", "registered_patients")
    assert set(chosen.values()) <= {e.options["slug"] for e in catalog.EMBEDDED
                                    if e.kind == "proxy"}
    assert set(any_body) - {"*"} <= set(reference.function_map(conn, "rs"))
    # every body a row names is loaded by the embedded data
    assert {b for b, _ in chosen} - {"*"} <= set(reference.bodies(conn))


def test_proxy_table_needs_one_star(tmp_path: Path) -> None:
    bad = tmp_path / "proxies.csv"
    bad.write_text("line,proxy,rationale\nEducation services,residents-0-15,Children.\n")
    with pytest.raises(Rejected, match="'\\*' row") as err:
        read_proxy_table(bad)
    assert err.value.problems[0].field == "line"
    assert "line '*'" in err.value.problems[0].fix
    bad.write_text("line,proxy,rationale\n*,residents-all,All.\n*,residents-0-15,Kids.\n")
    with pytest.raises(Rejected) as err:
        read_proxy_table(bad)
    (first,) = err.value.problems
    assert (first.row, first.where, first.field, first.value) == (3, "row 3", "line", "*")
    assert "first on row 2" in first.reason
    assert err.value.what == "proxies.csv"


# --------------------------------------------------------------------------- bad files


def test_bad_proxy_value_names_the_row(fresh_db: str, tmp_path: Path) -> None:
    dest = tmp_path / Path(POPULATION.path).name
    lines = catalog.path(POPULATION.path).read_text(encoding="utf-8").split("\n")
    header = lines[0].split(",")
    col = header.index("Persons_65+")
    cells = lines[10].split(",")
    cells[col] = "-3"
    lines[10] = ",".join(cells)
    dest.write_text("\n".join(lines), encoding="utf-8")
    with connect(fresh_db) as conn:
        load_item(conn, item("boundaries", "london-lsoa-2011"))
        with pytest.raises(Rejected) as err:
            load_item(conn, POPULATION, dest)
        (first,) = err.value.problems
        assert (first.row, first.where, first.field, first.value) == (
            11, "row 11", "Persons_65+", "-3")
        assert "zero or more" in first.reason  # a negative count
        assert "Persons_65+" in first.fix
        lines[10] = lines[2]  # duplicate the code on line 3
        dest.write_text("\n".join(lines), encoding="utf-8")
        with pytest.raises(Rejected) as err:
            load_item(conn, POPULATION, dest)
        (first,) = err.value.problems
        assert (first.row, first.field) == (11, "LSOA11CD")
        assert "twice (first on row 3)" in first.reason
        assert conn.execute("SELECT count(*) AS n FROM proxy").fetchone()["n"] == 0


def test_missing_boundary_file_and_field(fresh_db: str, tmp_path: Path) -> None:
    e = item("boundaries", "hackney-wards-2014")
    with pytest.raises(InputError, match="does not exist"):
        catalog.existing_file(tmp_path, e.path)
    with connect(fresh_db) as conn:
        with pytest.raises(InputError, match="does not exist"):
            load.load_embedded(conn, base=tmp_path)
        with pytest.raises(Rejected, match="WD14CD") as err:
            load_item(conn, e, code_field="WD14CD")
        assert counts(conn)["upload_batch"] == 0
    first = err.value.problems[0]
    assert (first.where, first.field) == ("file", "WD14CD")
    assert "GSS_Code" in first.reason  # the fields it does have


def test_broken_boundary_file(fresh_db: str, tmp_path: Path) -> None:
    e = item("boundaries", "hackney-wards-2014")
    dest = tmp_path / "broken.geojson"
    dest.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with connect(fresh_db) as conn, pytest.raises(InputError,
                                                  match="hackney_wards_2014.geojson") as err:
        load_item(conn, e, dest)
    assert "not valid JSON" in err.value.cause
    assert err.value.where == "hackney_wards_2014.geojson, line 1"
    assert str(tmp_path) not in str(err.value)  # the server's path is never shown


def test_catalog_path_refuses_missing_file() -> None:
    with pytest.raises(InputError, match="does not exist"):
        catalog.path("no-such-folder/no_such_file.csv")


# --------------------------------------------------------------------------- provenance


def test_every_catalog_path_exists() -> None:
    rels = [e.path for e in catalog.EMBEDDED] + [e.provenance.source_md for e in catalog.EMBEDDED]
    for rel in [*rels, catalog.COFOG_PATH, catalog.DEFAULT_PROXIES_PATH]:
        assert catalog.path(rel).is_file(), rel
    # every set, map or area a file refers to is loaded before it
    sets: dict[str, int] = {}
    areas: set[str] = set()
    functions: set[str] = set()
    sites: set[str] = set()
    for n, e in enumerate(catalog.EMBEDDED):
        if e.kind == "boundaries":
            assert e.options["slug"] not in sets
            sets[e.options["slug"]] = n
            if e.options.get("dissolve_code"):
                areas.add(str(e.options["dissolve_code"]))
        elif e.kind == "functions":
            functions.add(str(e.options["scheme"]))
        elif e.kind == "proxy":
            assert e.options["unit_set"] in sets, e.options["slug"]
        elif e.kind == "sites":
            sites.add(str(e.options["slug"]))
        else:
            assert e.kind == "spend"
            assert set(e.options["area_sets"]) <= set(sets)
            assert set(e.options.get("body_areas", {}).values()) <= areas
            assert e.options["format"] in functions or e.options["format"] == "lines"
            assert e.options.get("site_set") is None or e.options["site_set"] in sites
    assert set(sets) == {"london-wards-2014", "hackney-wards-2014", "hackney-wards-2013",
                         "london-lsoa-2011", "hackney-oa-2011", "london-boroughs-2014",
                         "london-region-2014"}
    # the derived sets are dissolved from the 2014 wards file
    for slug in ("london-boroughs-2014", "london-region-2014"):
        assert item("boundaries", slug).path == item("boundaries", "london-wards-2014").path


def test_every_source_md_is_shipped_beside_its_data() -> None:
    data_files = [p for p in catalog.DATA_DIR.rglob("*") if p.is_file()]
    folders = {p.parent for p in data_files if p.parent != catalog.DATA_DIR}
    assert len(folders) == 7
    for folder in folders:
        assert (folder / "SOURCE.md").is_file(), folder
    for e in catalog.EMBEDDED:
        assert Path(e.path).parent == Path(e.provenance.source_md).parent, e.path
        if Path(e.path).parent != Path("."):
            assert e.provenance.source_md.endswith("/SOURCE.md"), e.path
    assert (catalog.DATA_DIR / Path(catalog.COFOG_PATH).parent / "SOURCE.md").is_file()


def test_attribution_and_licence_match_source_md() -> None:
    checked = 0
    for e in catalog.EMBEDDED:
        prov = e.provenance
        text = catalog.path(prov.source_md).read_text(encoding="utf-8")
        if e.kind == "functions":  # our own mapping: the data README says it is MIT
            assert prov.licence.startswith("MIT")
            row = next(t for t in text.splitlines() if f"`{e.path}`" in t)
            assert "MIT" in row
            continue
        for statement in prov.attribution.split("\n"):
            assert statement in text, (prov.source_md, statement)
        checked += 1
        assert "Open Government Licence" in prov.licence
        for licence in ("Open Government Licence v3.0", "CC-BY 4.0", "OS OpenData"):
            if licence in prov.licence:
                assert licence in text, (prov.source_md, licence)
    assert checked == len(catalog.EMBEDDED) - 1


def test_provenance_is_stored_with_what_was_loaded(conn: Connection, demo: object) -> None:
    """The licence and attribution travel into the store with every embedded load."""
    for e in catalog.EMBEDDED:
        if e.kind == "boundaries":
            meta = embedded_set(conn, e.options["slug"])
            got = (meta["licence"], meta["attribution"])
        elif e.kind == "proxy":
            ids = [b["id"] for b in embedded_batches(conn, "proxy")]
            meta = conn.execute("SELECT * FROM proxy WHERE slug = %s AND batch_id = ANY(%s)",
                                (e.options["slug"], ids)).fetchone()
            got = (meta["licence"], meta["attribution"])
        elif e.kind in ("spend", "sites"):
            (batch,) = [b for b in embedded_batches(conn, e.kind) if b["filename"] == e.path]
            got = (batch["options"]["licence"], batch["options"]["attribution"])
        else:
            continue
        assert got == (e.provenance.licence, e.provenance.attribution), e.path


def test_data_readme_lists_every_embedded_file() -> None:
    readme = (catalog.DATA_DIR / "README.md").read_text(encoding="utf-8")
    for p in catalog.DATA_DIR.rglob("*"):
        if p.is_file() and p.name not in {"README.md", "SOURCE.md"}:
            assert p.name in readme, p.name


def test_loading_the_embedded_data_again_stores_nothing(fresh_db: str) -> None:
    with connect(fresh_db) as conn:
        first = load.load_embedded(conn)
        before = counts(conn)
        again = load.load_embedded(conn)
        after = counts(conn)
    assert [d.created for d in first] == [True] * len(catalog.EMBEDDED)
    assert [d.created for d in again] == [False] * len(catalog.EMBEDDED)
    assert [d.batch_id for d in again] == [d.batch_id for d in first]
    assert [d.kind for d in first] == [e.kind for e in catalog.EMBEDDED]
    assert after == before
    assert before["upload_batch"] == len(catalog.EMBEDDED)
    # RS 884 lines + CRA 3,152 (1,576 rows x 2 years) + GP payments 1,437; 34 RS bodies,
    # 46 CRA departments (Local Government England's local government rows are three bodies:
    # current spending on services, housing benefit, capital), NHS England
    assert before["spend_line"] == 884 + 3_152 + 1_437 and before["body"] == 34 + 46 + 3 + 1


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_the_derived_files_are_exactly_what_derive_makes(tmp_path: Path) -> None:
    """The three derived whole-pound files, re-made from ../shared/data, byte for byte."""
    from boundaries import derive

    made = derive.derive(SHARED_DATA, tmp_path)
    assert len(made) == 3
    for path in made:
        rel = path.relative_to(tmp_path)
        assert path.read_bytes() == (catalog.DATA_DIR / rel).read_bytes(), rel
        # and each derived file sits beside the staged folder's SOURCE.md, unchanged
        source = rel.parent / "SOURCE.md"
        assert (catalog.DATA_DIR / source).read_bytes() == (SHARED_DATA / source).read_bytes()
    cra = pd.read_csv(made[0], dtype=str, keep_default_na=False)
    # SOURCE.md, 2014-15 (£ thousand): LG sector 29,160,613, of which housing benefit
    # 6,549,842: as three bodies (services, housing benefit, capital)
    year = cra[cra["financial_year"] == "2014-15"]
    lg = year[year["body"].isin(["cra_local_government", "cra_housing_benefit",
                                 "cra_local_capital"])]
    assert round(sum(float(v) for v in lg["amount"])) == 29_160_613
    assert set(lg["sector"]) == {"LG"}
    benefit = year[year["body"] == "cra_housing_benefit"]
    assert round(sum(float(v) for v in benefit["amount"])) == 6_549_842
    assert set(year.loc[year["body"] == "cra_local_capital", "cap_or_cur"]) == {"CAP"}
    assert (cra["body"].str.len() <= 63).all()
