"""Every dataset in /work/shared/data the service can use, through the public load path.

Requirement "Must show 1": each file is loaded with ``placespend.load`` (``LOADERS`` /
``load_*``) into one module-scoped database, never written to the store directly, and the
counts and totals stored are checked against the figures its SOURCE.md states (quoted in a
comment beside each assert). Where a SOURCE.md states no total, it is computed here from the
file with plain pandas, and the comment says so. A file (or part of one) the service refuses is
asserted refused with the rows named, where refusing is right; a missing feature or a bug is an
``xfail(strict=True)`` test. The last test loads every file a second time and checks that
nothing new is stored.

Files prepared for a load (a filtered copy, a column added) are written to a module temporary
folder: the shared data is read-only and never changed.
"""

from __future__ import annotations

import csv
import os
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from domain.errors import MAX_PROBLEMS, InputError, Rejected
from intake.reference import read_cofog
from intake.spend import body_slug
from placespend.load import LOADERS, Loaded, Upload, load_embedded
from store import boundaries as store_boundaries
from store import reference
from store import sites as store_sites
from store.db import Connection, connect
from tests.conftest import _new_database

DATA = Path("/work/shared/data")
HACKNEY = "E09000012"
LAMBETH = "E09000022"
LONDON = "E12000007"
OGL = "Open Government Licence v3.0"

#: Tables whose rows a second load of the same files must not add to.
TABLES = ("upload_batch", "boundary_set", "boundary", "proxy", "proxy_value", "site_set", "site",
          "postcode", "body", "function_map", "spend_scope", "spend_line")

#: Every load that stored something: (kind, upload, options), loaded again by the last test.
LOADS: list[tuple[str, Upload, object]] = []


def load(conn: Connection, what: str, path: Path, /, **options: object) -> Loaded:
    """Load ``path`` as ``what`` (a LOADERS kind) through the public loader, and remember it
    for the reload."""
    loader = LOADERS[what]
    opts = loader.options(**options)
    upload = Upload(path, path.name)
    loaded = loader.load(conn, upload, opts)
    LOADS.append((what, upload, opts))
    return loaded


def refused(conn: Connection, what: str, path: Path, /, **options: object) -> Rejected:
    """Load ``path`` as ``what``, expecting it refused whole; nothing of it may be stored."""
    before = counts(conn)
    loader = LOADERS[what]
    with pytest.raises(Rejected) as err:
        loader.load(conn, Upload(path, path.name), loader.options(**options))
    assert counts(conn) == before
    return err.value


def assert_rows(err: Rejected, rows: set[int]) -> None:
    """``err`` counts exactly ``rows`` as its problems (it lists the first MAX_PROBLEMS)."""
    assert err.total == len(rows)
    listed = [p.row for p in err.problems]
    assert len(listed) == min(len(rows), MAX_PROBLEMS)
    assert set(listed) <= rows


def counts(conn: Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in TABLES}


def scalar(conn: Connection, sql: str, *params: object) -> object:
    return next(iter(conn.execute(sql, params).fetchone().values()))


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, object]], fields: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def set_id(conn: Connection, slug: str) -> int:
    return int(store_boundaries.get_set(conn, slug)["id"])


def units(conn: Connection, slug: str, parent: str | None = None) -> int:
    return int(scalar(conn, "SELECT count(*) AS n FROM boundary WHERE set_id = %s"
                      " AND (%s::text IS NULL OR parent_code = %s)",
                      set_id(conn, slug), parent, parent))


def batch_pence(conn: Connection, batch: int, where: str = "TRUE", *params: object) -> int:
    return int(scalar(conn, f"SELECT coalesce(sum(amount_pence), 0) AS s FROM spend_line"
                      f" WHERE batch_id = %s AND {where}", batch, *params))


def batch_lines(conn: Connection, batch: int) -> int:
    return int(scalar(conn, "SELECT count(*) AS n FROM spend_line WHERE batch_id = %s", batch))


def pounds(n: float) -> int:
    """Whole pounds (or £ thousand) as pence."""
    return int(round(n * 100))


# --------------------------------------------------------------------------- the database


@pytest.fixture(scope="module")
def db() -> str:
    """One database for the module: COFOG and the embedded data loaded first."""
    url = _new_database(f"placespend_shared_{os.getpid()}")
    with connect(url) as conn:
        reference.save_cofog(conn, read_cofog(DATA / "cofog-classification" / "cofog_un_1999.csv"))
        load_embedded(conn)
    return url


@pytest.fixture()
def conn(db: str):  # noqa: ANN201 - a connection to the module's database, per test
    with connect(db) as c:
        yield c


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where prepared copies of shared files are written (kept for the reload test)."""
    return tmp_path_factory.mktemp("shared-data")


# --------------------------------------------------------------------------- COFOG and RS


def test_cofog_classification(conn: Connection) -> None:
    path = DATA / "cofog-classification" / "cofog_un_1999.csv"
    raw = pd.read_csv(path, dtype=str)
    # SOURCE.md: 188 rows: 10 divisions, 69 groups, 109 classes
    assert len(raw) == 188
    assert raw["Code"].str.len().value_counts().to_dict() == {2: 10, 4: 69, 6: 109}
    # the service keeps divisions and groups (intake.reference.read_cofog drops the classes:
    # spend is placed at division level, a mapping at most at group level)
    assert len(read_cofog(path)) == 10 + 69
    assert scalar(conn, "SELECT count(*) AS n FROM cofog_function") == 79
    assert scalar(conn, "SELECT count(*) AS n FROM cofog_function WHERE length(code) = 2") == 10
    assert scalar(conn, "SELECT count(*) AS n FROM cofog_function WHERE length(code) = 4") == 69


RS_FILE = (DATA / "london-council-revenue-outturn-rs"
           / "london_revenue_outturn_rs_net_current_expenditure_2013-14_2014-15.csv")
RS_TOTAL = "TOTAL SERVICE EXPENDITURE (TOTAL OF LINES 190 to 698)"


@pytest.fixture(scope="module")
def rs(db: str) -> Loaded:
    """The shared RS file: the same bytes as the embedded copy, so nothing new is stored."""
    with connect(db) as conn:
        before = counts(conn)
        loaded = load(conn, "spend", RS_FILE, format="rs",
                      area_sets=("london-boroughs-2014", "london-region-2014"),
                      body_areas={"E5100": LONDON}, licence=OGL)
        assert counts(conn) == before
    return loaded


def rs_scopes(conn: Connection) -> dict[tuple[str, str], int]:
    """Total pence now counting per (body, year) of the RS (dataset main)."""
    return {(r["slug"], r["financial_year"]): int(r["total_pence"]) for r in conn.execute(
        "SELECT b.slug, s.financial_year, s.total_pence FROM spend_current c"
        " JOIN spend_scope s USING (batch_id, body_id, financial_year, dataset)"
        " JOIN body b ON b.id = c.body_id WHERE c.dataset = 'main'"
        " AND s.financial_year IN ('2013-14', '2014-15')")}


def test_rs_returns_every_body_year(conn: Connection, rs: Loaded) -> None:
    assert not rs.created  # the embedded load already holds these exact lines
    raw = pd.read_csv(RS_FILE, dtype={"value_gbp_thousand": str})
    # SOURCE.md: 2,108 rows = 34 authorities x 31 lines x 2 years
    assert len(raw) == 2_108 and raw["authority"].nunique() == 34
    totals = raw[raw["line"] == RS_TOTAL]
    stored = rs_scopes(conn)
    # 34 bodies x 2 years; SOURCE.md states no per-body total except Hackney's, so every
    # body-year's stated TOTAL SERVICE EXPENDITURE is read from the file with pandas: the
    # stored service lines add up to it within DCLG's £1k rounding (the loader's £10k tolerance)
    assert len(totals) == 68 == len(stored)
    for r in totals.itertuples(index=False):
        key = (body_slug(r.authority), r.financial_year)
        assert abs(stored[key] - pounds(float(r.value_gbp_thousand) * 1000)) <= 1_000_000, key
    # SOURCE.md: Hackney TOTAL SERVICE EXPENDITURE 2013-14 £521,131k; 2014-15 £529,694k (exact)
    assert stored[("hackney", "2013-14")] == pounds(521_131_000)
    assert stored[("hackney", "2014-15")] == pounds(529_694_000)


def test_rs_lines_stated_in_source_md(conn: Connection, rs: Loaded) -> None:
    def line(body: str, year: str, name: str) -> int:
        return int(scalar(conn, "SELECT sum(l.amount_pence) AS s FROM spend_line l"
                          " JOIN spend_current c USING (batch_id, body_id, financial_year)"
                          " JOIN body b ON b.id = l.body_id WHERE c.dataset = 'main'"
                          " AND (%s = '*' OR b.slug = %s) AND l.financial_year = %s"
                          " AND l.line = %s", body, body, year, name))

    # SOURCE.md: GLA 2013-14: Police services £2,862,570k, Fire and rescue £421,427k
    assert line("gla", "2013-14", "Police services") == pounds(2_862_570_000)
    assert line("gla", "2013-14", "Fire and rescue services") == pounds(421_427_000)
    # hmt-cra-london/SOURCE.md: RS 2014-15 Police services 2,920,115 (GLA/MOPAC 2,834,354 +
    # City of London Police 85,761), Fire and rescue 382,878 (£ thousand)
    assert line("gla", "2014-15", "Police services") == pounds(2_834_354_000)
    assert line("city_of_london", "2014-15", "Police services") == pounds(85_761_000)
    assert line("*", "2014-15", "Police services") == pounds(2_920_115_000)
    assert line("*", "2014-15", "Fire and rescue services") == pounds(382_878_000)


# --------------------------------------------------------------------------- boundaries

#: slug, file, kind, code field, name field, parent field, features (SOURCE.md), Hackney units
BOUNDARIES = [
    # london-wards-2014/SOURCE.md: 630 (City merged); Hackney 21 wards
    ("sd-london-wards-2014", "london-wards-2014/london_wards_2014.geojson", "ward",
     "GSS_Code", "Name", "LB_GSS_Code", 630, 21),
    # london-wards-2014/SOURCE.md: hackney_wards_2014.geojson 21
    ("sd-hackney-wards-2014", "london-wards-2014/hackney_wards_2014.geojson", "ward",
     "GSS_Code", "Name", "LB_GSS_Code", 21, 21),
    # london-wards-2018/SOURCE.md: 633 features; Hackney's 21 wards unchanged
    ("sd-london-wards-2018", "london-wards-2018/london_wards_2018.geojson", "ward",
     "GSS_CODE", "NAME", "LAGSSCODE", 633, 21),
    # london-wards-2013-pre2014/SOURCE.md: 649 (City's 25 wards not merged); Hackney 19
    ("sd-london-wards-2013", "london-wards-2013-pre2014/london_wards_2013.geojson", "ward",
     "WD13CD", "WD13NM", "LAD13CD", 649, 19),
    ("sd-hackney-wards-2013", "london-wards-2013-pre2014/hackney_wards_2013.geojson", "ward",
     "WD13CD", "WD13NM", "LAD13CD", 19, 19),
    # london-lsoa-msoa-2011/SOURCE.md: 4835 LSOAs, Hackney 144; 983 MSOAs; 749 Hackney OAs
    ("sd-london-lsoa-2011", "london-lsoa-msoa-2011/london_lsoa_2011.geojson", "lsoa",
     "LSOA11CD", "LSOA11NM", "LAD11CD", 4_835, 144),
    # (SOURCE.md also lists a field LAD_CD_FILE for the MSOAs: the file has none)
    ("sd-london-msoa-2011", "london-lsoa-msoa-2011/london_msoa_2011.geojson", "msoa",
     "MSOA11CD", "MSOA11NM", None, 983, None),
    ("sd-hackney-oa-2011", "london-lsoa-msoa-2011/hackney_oa_2011.geojson", "oa",
     "OA11CD", "OA11CD", "LAD11CD", 749, 749),
    # london-lsoa-msoa-2021/SOURCE.md: 4994 LSOAs (Hackney 149), 1002 MSOAs, 33 boroughs
    ("sd-london-lsoa-2021", "london-lsoa-msoa-2021/london_lsoa_2021.geojson", "lsoa",
     "LSOA21CD", "LSOA21NM", "LAD22CD", 4_994, 149),
    ("sd-london-msoa-2021", "london-lsoa-msoa-2021/london_msoa_2021.geojson", "msoa",
     "MSOA21CD", "MSOA21NM", None, 1_002, None),
    ("sd-london-boroughs-2022", "london-lsoa-msoa-2021/london_boroughs_lad22.geojson", "borough",
     "LAD22CD", "LAD22NM", None, 33, None),
    # london-constituencies-2013/SOURCE.md: 73 features
    ("sd-london-constituencies-2013",
     "london-constituencies-2013/london_constituencies_2013.geojson",
     "constituency", "PCON13CD", "PCON13NM", None, 73, None),
    # nhs-sub-icb-2022/SOURCE.md: 106 features (EPSG:27700); London 5
    ("sd-england-sub-icb-2022", "nhs-sub-icb-2022/england_sub_icb_locations_2022_bng.geojson",
     "agency_area", "SICBL22CD", "SICBL22NM", None, 106, None),
    ("sd-london-sub-icb-2022", "nhs-sub-icb-2022/london_sub_icb_locations_2022.geojson",
     "agency_area", "SICBL22CD", "SICBL22NM", None, 5, None),
]


@pytest.fixture(scope="module")
def boundaries(db: str) -> dict[str, Loaded]:
    out = {}
    with connect(db) as conn:
        for slug, rel, kind, code, name, parent, _, _ in BOUNDARIES:
            out[slug] = load(conn, "boundaries", DATA / rel, slug=slug, kind=kind,
                             code_field=code, name_field=name, parent_field=parent,
                             licence=OGL, source=f"shared/data/{rel}")
    return out


@pytest.mark.parametrize(("slug", "features", "hackney"),
                         [(b[0], b[6], b[7]) for b in BOUNDARIES], ids=[b[0] for b in BOUNDARIES])
def test_boundary_sets(conn: Connection, boundaries: dict[str, Loaded], slug: str,
                       features: int, hackney: int | None) -> None:
    loaded = boundaries[slug]
    assert loaded.created and loaded.details["version"] == 1
    assert loaded.details["features"] == features == units(conn, slug)  # figures: BOUNDARIES
    if hackney is not None:
        assert units(conn, slug, HACKNEY) == hackney  # figures: BOUNDARIES


def test_boundary_repairs_are_the_invalid_features_source_md_names(
        boundaries: dict[str, Loaded]) -> None:
    def repaired(slug: str) -> set[str]:
        return {r["code"] for r in boundaries[slug].details["repairs"]}

    # london-wards-2014/SOURCE.md: 2 invalid features, Colville E05009392 and Pembridge E05009400
    assert repaired("sd-london-wards-2014") == {"E05009392", "E05009400"}
    # london-lsoa-msoa-2011/SOURCE.md: 4 MSOA features are invalid (E02000151, E02000248,
    # E02000514, E02000947)
    assert repaired("sd-london-msoa-2011") == {"E02000151", "E02000248", "E02000514",
                                               "E02000947"}
    assert repaired("sd-hackney-wards-2014") == set()


def test_hackney_ward_codes(conn: Connection, boundaries: dict[str, Loaded]) -> None:
    def codes(slug: str) -> set[str]:
        return set(store_boundaries.unit_codes(conn, set_id(conn, slug)))

    # london-wards-2014/SOURCE.md: Hackney codes E05009367-E05009387
    hackney_2014 = {f"E0500{n}" for n in range(9367, 9388)}
    assert codes("sd-hackney-wards-2014") == hackney_2014
    # london-wards-2018/SOURCE.md: Hackney's 21 wards unchanged (same codes)
    assert hackney_2014 <= codes("sd-london-wards-2018")
    # london-wards-2013-pre2014/SOURCE.md: E05000231 ... E05000249; 0 of 19 in the 2014 set
    assert codes("sd-hackney-wards-2013") == {f"E05000{n}" for n in range(231, 250)}
    assert not codes("sd-hackney-wards-2013") & codes("sd-london-wards-2014")
    # london-constituencies-2013/SOURCE.md: E14000720, E14000721 are Hackney's
    assert {"E14000720", "E14000721"} <= codes("sd-london-constituencies-2013")


# --------------------------------------------------------------------------- proxies

LSOA11 = DATA / "london-lsoa-msoa-2011"
LSOA21 = DATA / "london-lsoa-msoa-2021"
HOUSEHOLDS = "Household deprivation: Total: All households; measures: Value"

#: slug, file, unit set, code field, value field, year, measure
PROXIES = [
    ("sd-residents-mid2019", LSOA11 / "london_lsoa11_population_mid2019.csv",
     "sd-london-lsoa-2011", "LSOA11CD", "Persons_All-Ages", 2019, "residents"),
    ("sd-residents-mid2020", LSOA11 / "london_lsoa11_population_mid2020.csv",
     "sd-london-lsoa-2011", "LSOA11CD", "Persons_All-Ages", 2020, "residents"),
    ("sd-census2021-residents-lsoa", LSOA21 / "census2021_ts007a_age_lsoa21_london.csv",
     "sd-london-lsoa-2021", "geography code", "Age: Total", 2021, "residents"),
    ("sd-census2021-residents-msoa", LSOA21 / "census2021_ts007a_age_msoa21_london.csv",
     "sd-london-msoa-2021", "geography code", "Age: Total", 2021, "residents"),
    ("sd-census2021-households-lsoa", LSOA21 / "census2021_ts011_households_lsoa21_london.csv",
     "sd-london-lsoa-2021", "geography code", HOUSEHOLDS, 2021, "households"),
]


@pytest.fixture(scope="module")
def proxies(db: str, boundaries: dict[str, Loaded]) -> dict[str, Loaded]:
    out = {}
    with connect(db) as conn:
        for slug, path, unit_set, code, value, year, measure in PROXIES:
            out[slug] = load(conn, "proxy", path, slug=slug, unit_set=unit_set, year=year,
                             code_field=code, value_field=value, measure=measure, licence=OGL)
    return out


def hackney_value(conn: Connection, loaded: Loaded, unit_set: str) -> float:
    """The proxy's sum over Hackney's units (by the units' parent code)."""
    return float(scalar(conn, "SELECT sum(v.value) AS s FROM proxy p JOIN proxy_value v"
                        " ON v.proxy_id = p.id JOIN boundary b ON b.set_id = p.unit_set_id"
                        " AND b.code = v.unit_code WHERE p.batch_id = %s AND b.parent_code = %s",
                        loaded.batch_id, HACKNEY) or 0)


def test_population_mid_2019_and_2020(conn: Connection, proxies: dict[str, Loaded]) -> None:
    y19, y20 = proxies["sd-residents-mid2019"], proxies["sd-residents-mid2020"]
    assert y19.created and y20.created
    # SOURCE.md: 4835 rows each; London 8,961,989 (mid-2019) / 9,002,488 (mid-2020)
    assert y19.details["units"] == y20.details["units"] == 4_835
    assert y19.details["units_without_a_value"] == 0
    assert y19.details["total"] == 8_961_989
    assert y20.details["total"] == 9_002_488
    # SOURCE.md: Hackney 281,120 / 280,941
    assert hackney_value(conn, y19, "sd-london-lsoa-2011") == 281_120
    assert hackney_value(conn, y20, "sd-london-lsoa-2011") == 280_941
    stored = scalar(conn, "SELECT sum(v.value) AS s FROM proxy p JOIN proxy_value v"
                    " ON v.proxy_id = p.id WHERE p.batch_id = %s", y19.batch_id)
    assert stored == 8_961_989


def test_census_2021_age_and_households(conn: Connection, proxies: dict[str, Loaded]) -> None:
    lsoa = proxies["sd-census2021-residents-lsoa"]
    msoa = proxies["sd-census2021-residents-msoa"]
    households = proxies["sd-census2021-households-lsoa"]
    # SOURCE.md: TS007A, TS011 rows == 4994 LSOA21 polygons; MSOA rows == 1002 polygons
    assert lsoa.details["units"] == households.details["units"] == 4_994
    assert msoa.details["units"] == 1_002
    assert lsoa.details["units_without_a_value"] == msoa.details["units_without_a_value"] == 0
    # SOURCE.md: London total 8,799,631 (LSOA file) / 8,799,692 (MSOA file)
    assert lsoa.details["total"] == 8_799_631
    assert msoa.details["total"] == 8_799_692
    # SOURCE.md: Hackney 259,151
    assert hackney_value(conn, lsoa, "sd-london-lsoa-2021") == 259_151
    # SOURCE.md states no households total: computed from the file with pandas
    frame = pd.read_csv(LSOA21 / "census2021_ts011_households_lsoa21_london.csv")
    assert households.details["total"] == float(frame[HOUSEHOLDS].sum())
    hackney = frame[frame["geography"].str.startswith("Hackney ")][HOUSEHOLDS].sum()
    assert hackney_value(conn, households, "sd-london-lsoa-2021") == float(hackney)


LAMBETH_DIR = DATA / "lambeth-council-open-data-2012"
TAX = LAMBETH_DIR / "lambeth_council-tax-nndr-benefits.csv"
TAX_FIELD = "Properties registered for council tax payments"
ADDRESSES = LAMBETH_DIR / "lambeth_commercial-addresses-count-by-lsoa.csv"
OLD_LSOAS = {"E01003012", "E01003103"}  # SOURCE.md: not 2011 codes (2001-vintage LSOAs)


@pytest.fixture(scope="module")
def lambeth_tax(db: str, boundaries: dict[str, Loaded], work: Path) -> tuple[Rejected, Loaded]:
    opts = dict(slug="sd-lambeth-council-tax-properties", unit_set="sd-london-lsoa-2011",
                year=2012, code_field="Row Labels", value_field=TAX_FIELD,
                measure="council tax properties", licence="Open Government Licence")
    with connect(db) as conn:
        err = refused(conn, "proxy", TAX, **opts)
        raw = pd.read_csv(TAX, dtype=str)
        keep = raw[raw["Row Labels"].str.match(r"^E01\d{6}$")
                   & ~raw["Row Labels"].isin(OLD_LSOAS)]
        path = work / "lambeth_council_tax_2011_lsoas.csv"
        keep.to_csv(path, index=False)
        return err, load(conn, "proxy", path, **opts)


def test_lambeth_lsoa_counts_as_a_proxy(conn: Connection,
                                        lambeth_tax: tuple[Rejected, Loaded]) -> None:
    err, loaded = lambeth_tax
    raw = pd.read_csv(TAX, dtype=str)
    # SOURCE.md: 177 LSOA rows plus a final Grand Total row; E01003012 and E01003103 are not
    # 2011 codes: those three rows are refused, by row (header = line 1)
    assert len(raw) == 178
    bad = {i + 2 for i, c in enumerate(raw["Row Labels"]) if c in OLD_LSOAS or c == "Grand Total"}
    assert {p.row for p in err.problems} == bad and err.total == 3
    # SOURCE.md: 175 of the 177 codes are 2011 LSOAs, all Lambeth (Lambeth has 178 LSOA11s)
    assert loaded.details["units"] == 175
    assert loaded.details["units_without_a_value"] == 4_835 - 175
    # SOURCE.md states no total for this column: the sum of the 175 rows, with pandas
    codes = raw["Row Labels"]
    expected = raw.loc[codes.str.match(r"^E01\d{6}$") & ~codes.isin(OLD_LSOAS), TAX_FIELD]
    assert loaded.details["total"] == float(expected.astype(int).sum())
    assert hackney_value(conn, loaded, "sd-london-lsoa-2011") == 0


def test_lambeth_suppressed_counts_are_refused(conn: Connection,
                                               boundaries: dict[str, Loaded]) -> None:
    # SOURCE.md: values "< 10" suppressed: not a number, refused by row
    err = refused(conn, "proxy", TAX, slug="sd-lambeth-over-65-claimants",
                  unit_set="sd-london-lsoa-2011", year=2012, code_field="Row Labels",
                  value_field="Benefits claimants over 65")
    raw = pd.read_csv(TAX, dtype=str)
    codes = raw["Row Labels"]
    suppressed = {i + 2 for i, v in enumerate(raw["Benefits claimants over 65"])
                  if v.strip() == "< 10" and codes[i] not in OLD_LSOAS}
    assert suppressed
    assert {p.row for p in err.problems if p.field == "Benefits claimants over 65"} == suppressed


def test_lambeth_commercial_addresses_ragged_file_is_refused(
        conn: Connection, boundaries: dict[str, Loaded]) -> None:
    # SOURCE.md: the 4th column is missing on the last 18 rows (ragged as published): the
    # loader refuses rows whose field count differs from the header's, by row
    err = refused(conn, "proxy", ADDRESSES, slug="sd-lambeth-commercial-addresses",
                  unit_set="sd-london-lsoa-2011", year=2012, code_field="LSOA",
                  value_field="COUNT OF ADDRESSES")
    with ADDRESSES.open(encoding="utf-8", newline="") as f:
        ragged = {i + 1 for i, cells in enumerate(csv.reader(f)) if i and len(cells) != 4}
    assert len(ragged) == 18
    assert ragged <= {p.row for p in err.problems}


# --------------------------------------------------------------------------- postcodes, sites

CODEPOINT = DATA / "hackney-postcodes" / "codepoint_open_2025_hackney_postcode_districts.csv"
ONS_LOOKUP = (DATA / "hackney-postcodes"
              / "ons_pcd_oa11_lsoa11_msoa11_lad_may22_hackney_postcode_districts.csv")
GP = DATA / "london-gp-practices-2022" / "london_gp_practices_patients_may2022.csv"
KS4 = DATA / "london-secondary-schools-ks4-2024" / "london_schools_ks4_2023-24_pupils.csv"


@pytest.fixture(scope="module")
def postcodes(db: str) -> Loaded:
    with connect(db) as conn:
        return load(conn, "postcodes", CODEPOINT, licence=OGL,
                    attribution="Contains OS data © Crown copyright and database right 2025")


def test_codepoint_postcodes(conn: Connection, postcodes: Loaded) -> None:
    assert postcodes.created
    # SOURCE.md: 11,967 live postcode units; 15 districts listed
    assert postcodes.details["postcodes"] == 11_967
    assert postcodes.details["districts"] == 15
    assert scalar(conn, "SELECT count(*) AS n FROM postcode WHERE batch_id = %s",
                  postcodes.batch_id) == 11_967


def test_ons_postcode_lookup_has_no_points_to_load(conn: Connection) -> None:
    # SOURCE.md: pcds -> OA/LSOA/MSOA/LAD codes, no coordinates: not a postcode-points file
    before = counts(conn)
    with pytest.raises(InputError):
        LOADERS["postcodes"].load(conn, Upload(ONS_LOOKUP, ONS_LOOKUP.name),
                                  LOADERS["postcodes"].options(postcode_field="pcds"))
    assert counts(conn) == before


@pytest.fixture(scope="module")
def gp_sites(db: str) -> Loaded:
    with connect(db) as conn:
        return load(conn, "sites", GP, slug="sd-london-gp-2022", kind="gp_practice",
                    id_field="practice_code", name_field="practice_name",
                    postcode_field="postcode", easting_field="easting",
                    northing_field="northing", licence=OGL)


def test_gp_practices(conn: Connection, gp_sites: Loaded) -> None:
    sites = store_sites.read_sites(conn, "sd-london-gp-2022")
    # SOURCE.md: 1,187 practices
    assert gp_sites.details["sites"] == len(sites) == 1_187
    patients = sites["attrs"].map(lambda a: a["number_of_patients"])
    # SOURCE.md states no London patient total: the column's sum, with pandas
    assert int(patients.sum()) == int(pd.read_csv(GP)["number_of_patients"].sum())
    hackney = sites[sites["attrs"].map(lambda a: a["lad_code"] == HACKNEY)]
    # SOURCE.md: Hackney 39 practices, 332,924 registered patients
    assert len(hackney) == 39
    assert int(hackney["attrs"].map(lambda a: a["number_of_patients"]).sum()) == 332_924


@pytest.fixture(scope="module")
def ks4_sites(db: str, postcodes: Loaded, work: Path) -> Loaded:
    raw = rows_of(KS4)
    path = write_rows(work / "ks4_geocoded.csv", [r for r in raw if r["geocoded"] == "1"],
                      list(raw[0]))
    with connect(db) as conn:
        return load(conn, "sites", path, slug="sd-london-ks4-2024", kind="school",
                    id_field="urn", name_field="school_name", postcode_field="postcode",
                    easting_field="easting", northing_field="northing", licence=OGL)


def test_ks4_schools_geocoded(conn: Connection, ks4_sites: Loaded) -> None:
    raw = pd.read_csv(KS4, dtype=str)
    sites = store_sites.read_sites(conn, "sd-london-ks4-2024")
    # SOURCE.md: 859 rows; 821 geocoded (the other 38 are refused: tests/test_sites.py)
    assert len(raw) == 859
    assert ks4_sites.details["sites"] == len(sites) == 821
    assert ks4_sites.details["located_by"] == {"coordinates": 821}
    hackney = sites[sites["attrs"].map(lambda a: a["la_code"] == HACKNEY)]
    # SOURCE.md: Hackney 31 schools, 29 geocoded
    assert len(hackney) == 29
    # SOURCE.md: Hackney 20,187 pupils on roll for all 31 schools; the 29 geocoded ones'
    # share is computed with pandas
    h = raw[raw["la_code"] == HACKNEY]
    assert pd.to_numeric(h["pupils_all_key_stages"], errors="coerce").sum() == 20_187
    geocoded = pd.to_numeric(h.loc[h["geocoded"] == "1", "pupils_all_key_stages"],
                             errors="coerce").sum()
    pupils = hackney["attrs"].map(lambda a: a["pupils_all_key_stages"])
    assert sum(p for p in pupils if isinstance(p, int)) == geocoded


#: file, slug, kind, id field, name field, coordinate fields, rows (SOURCE.md)
LAMBETH_SITES = [
    ("lambeth_schools.csv", "sd-lambeth-schools-2012", "school", "NAME", "NAME",
     ("MAP_EAST", "MAP_NORTH"), 87),
    ("lambeth_police-stations.csv", "sd-lambeth-police-stations-2012", "police_station",
     "POSTCODE", "STATION", ("EASTING", "NORTHING"), 6),
    ("lambeth_leisure-centres.csv", "sd-lambeth-leisure-centres-2012", "leisure_centre",
     "CENTRE NAME", "CENTRE NAME", ("MAP_EAST", "MAP_NORTH"), 5),
    ("lambeth_childrens-centres.csv", "sd-lambeth-childrens-centres-2012", "childrens_centre",
     "SATELLITE_NUMBER", "NAME", ("EASTING", "NORTHING"), 30),
]


@pytest.fixture(scope="module")
def lambeth_sites(db: str) -> dict[str, Loaded]:
    out = {}
    with connect(db) as conn:
        for name, slug, kind, ident, label, (e, n), _ in LAMBETH_SITES:
            out[slug] = load(conn, "sites", LAMBETH_DIR / name, slug=slug, kind=kind,
                             id_field=ident, name_field=label, postcode_field="POSTCODE",
                             easting_field=e, northing_field=n,
                             licence="Open Government Licence")
    return out


@pytest.mark.parametrize(("slug", "rows"), [(s[1], s[6]) for s in LAMBETH_SITES],
                         ids=[s[1] for s in LAMBETH_SITES])
def test_lambeth_service_locations(conn: Connection, lambeth_sites: dict[str, Loaded],
                                   slug: str, rows: int) -> None:
    loaded = lambeth_sites[slug]
    # SOURCE.md: schools 87, police stations 6, leisure centres 5, children's centres 30
    assert loaded.created and loaded.details["sites"] == rows
    assert loaded.details["located_by"] == {"coordinates": rows}
    # inside Lambeth (E09000022 of the embedded boroughs): a check of the coordinates the
    # file gives, not a figure of SOURCE.md. One school's point (St John's The Divine C.E.,
    # Warham Street SE5 0SX, 531779/177268) lies 58 m over the boundary, in Southwark's
    # Camberwell Green ward
    outside = [r["name"] for r in conn.execute(
        "SELECT s.name FROM site s JOIN site_set t ON t.id = s.set_id WHERE t.batch_id = %s"
        " AND NOT EXISTS (SELECT 1 FROM boundary b WHERE b.set_id = %s AND b.code = %s"
        " AND ST_Intersects(b.geom, s.geom))",
        (loaded.batch_id, set_id(conn, "london-boroughs-2014"), LAMBETH))]
    assert outside == (["St John's The Divine C.E."] if slug == "sd-lambeth-schools-2012"
                       else [])


def test_lambeth_police_station_names_are_not_unique_ids(conn: Connection) -> None:
    path = LAMBETH_DIR / "lambeth_police-stations.csv"
    raw = rows_of(path)
    # SOURCE.md: 6 rows; STATION repeats a name, so as an id it is refused by row
    first = {}
    for i, r in enumerate(raw):
        first.setdefault(r["STATION"], i + 2)
    twice = {i + 2 for i, r in enumerate(raw) if first[r["STATION"]] != i + 2}
    assert len(twice) == 1
    err = refused(conn, "sites", path, slug="sd-lambeth-police-by-name", kind="police_station",
                  id_field="STATION", name_field="STATION", easting_field="EASTING",
                  northing_field="NORTHING")
    assert {p.row for p in err.problems} == twice


# --------------------------------------------------------------------------- spend: GP payments

GP_PAY = DATA / "nhs-payments-gp-practices-london"
GP_TOTAL = "Total NHS Payments to General Practice"
NHS_ENGLAND = {"body": "nhs_england", "body_name": "NHS England", "body_kind": "nhs",
               "function": "07.2"}


def gp_payments_file(work: Path, year: str) -> Path:
    """The year's file as spend lines: a point where Code-Point placed the practice, else the
    practice's borough (``lad_code``, ONS lookup): one location a row."""
    raw = pd.read_csv(GP_PAY / f"london_gp_payments_{year}.csv", dtype=str)
    point = raw["geocoded"] == "1"
    out = pd.DataFrame({
        "financial_year": raw["financial_year"],
        "line": "GP practice " + raw["Practice Code"],
        "amount": raw[GP_TOTAL],
        "easting": raw["easting"].where(point, ""),
        "northing": raw["northing"].where(point, ""),
        "area_code": raw["lad_code"].where(~point, ""),
    })
    path = work / f"gp_payments_{year}_lines.csv"
    out.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def gp_payments(db: str, boundaries: dict[str, Loaded], work: Path) -> dict[str, Loaded]:
    with connect(db) as conn:
        return {year: load(conn, "spend", gp_payments_file(work, year), format="lines",
                           constants=NHS_ENGLAND, area_sets=("london-boroughs-2014",),
                           dataset="gp-payments", licence=OGL)
                for year in ("2014-15", "2015-16")}


def hackney_pence(conn: Connection, batch: int) -> tuple[int, int]:
    """Lines and pence of a batch in Hackney: its borough code, or a point inside it."""
    row = conn.execute(
        "SELECT count(*) AS n, coalesce(sum(l.amount_pence), 0) AS s FROM spend_line l"
        " WHERE l.batch_id = %s AND (l.area_code = %s OR EXISTS (SELECT 1 FROM boundary b"
        " WHERE b.set_id = %s AND b.code = %s AND ST_Intersects(b.geom, l.geom)))",
        (batch, HACKNEY, set_id(conn, "london-boroughs-2014"), HACKNEY)).fetchone()
    return int(row["n"]), int(row["s"])


def test_gp_payments_2014_15(conn: Connection, gp_payments: dict[str, Loaded]) -> None:
    loaded = gp_payments["2014-15"]
    assert loaded.created
    # SOURCE.md: london_gp_payments_2014-15.csv 1,437 rows; geocoded 1,402/1,437
    assert loaded.details["lines"] == batch_lines(conn, loaded.batch_id) == 1_437
    assert loaded.details["located_by"] == {"area": 35, "point": 1_402}
    # SOURCE.md: 2014-15 London 1,437 practices, £1,204,041,453
    assert batch_pence(conn, loaded.batch_id) == pounds(1_204_041_453)
    assert loaded.details["scopes"][0]["total_pence"] == pounds(1_204_041_453)
    # SOURCE.md: Hackney (lad E09000012) 42 practices, £38,659,601 - here by the point's
    # borough (or the lad_code of the 35 without a point)
    assert hackney_pence(conn, loaded.batch_id) == (42, pounds(38_659_601))


def test_gp_payments_2015_16(conn: Connection, gp_payments: dict[str, Loaded]) -> None:
    loaded = gp_payments["2015-16"]
    # SOURCE.md: 1,411 rows; London £1,233,796,769; Hackney 41 practices £42,913,182
    # (whole pounds in the table; 2015-16 values have pence, so within 50p)
    assert loaded.details["lines"] == 1_411
    assert abs(batch_pence(conn, loaded.batch_id) - pounds(1_233_796_769)) <= 50
    n, pence = hackney_pence(conn, loaded.batch_id)
    assert n == 41 and abs(pence - pounds(42_913_182)) <= 50


def test_gp_payments_by_2022_practice_sites_refuses_closed_practices(
        conn: Connection, gp_sites: Loaded, work: Path) -> None:
    raw = pd.read_csv(GP_PAY / "london_gp_payments_2014-15.csv", dtype=str)
    path = work / "gp_payments_2014-15_by_site.csv"
    pd.DataFrame({"financial_year": raw["financial_year"], "site_id": raw["Practice Code"],
                  "amount": raw[GP_TOTAL]}).to_csv(path, index=False)
    err = refused(conn, "spend", path, constants=NHS_ENGLAND, site_set="sd-london-gp-2022",
                  dataset="gp-payments-by-site")
    known = set(pd.read_csv(GP, dtype=str)["practice_code"])
    # SOURCE.md: the May-2022 file holds practices open in 2022: a 2014-15 practice that is
    # not in it is refused by row, naming its id (computed with pandas)
    missing = {i + 2 for i, c in enumerate(raw["Practice Code"]) if c not in known}
    assert len(missing) == 1_437 - 1_169
    assert_rows(err, missing)
    assert {p.field for p in err.problems} == {"site_id"}


def test_gp_payments_file_as_published_gives_two_locations_a_row(conn: Connection) -> None:
    # the published file carries both eastings/northings and longitudes/latitudes of the same
    # point (SOURCE.md: geocoded 1,402/1,437): each geocoded row is refused as giving more than
    # one location
    path = GP_PAY / "london_gp_payments_2014-15.csv"
    err = refused(conn, "spend", path, columns={"amount": GP_TOTAL}, constants=NHS_ENGLAND,
                  dataset="gp-payments-raw")
    raw = pd.read_csv(path, dtype=str)
    geocoded = {i + 2 for i, g in enumerate(raw["geocoded"]) if g == "1"}
    assert len(geocoded) == 1_402
    assert_rows(err, geocoded)
    assert {p.field for p in err.problems} == {"location"}


GP_TOTALS = GP_PAY / "london_gp_payments_totals_2014-15_to_2022-23.csv"
#: SOURCE.md table (totals file, whole pounds): year -> London practices, London £,
#: Hackney (lad E09000012) practices, Hackney £
GP_TOTALS_TABLE = {
    "2014-15": (1_437, 1_204_041_453, 42, 38_659_601),
    "2015-16": (1_411, 1_233_796_769, 41, 42_913_182),
    "2018-19": (1_321, 1_404_508_895, 42, 46_076_000),
    "2021-22": (1_214, 1_544_684_388, 39, 45_400_982),
    "2022-23": (1_208, 1_557_192_308, 40, 47_940_588),
}


@pytest.fixture(scope="module")
def gp_totals(db: str, boundaries: dict[str, Loaded], work: Path) -> Loaded:
    """The long totals file (9 years) as spend lines, located as the yearly files are."""
    raw = pd.read_csv(GP_TOTALS, dtype=str)
    point = raw["geocoded"] == "1"
    path = work / "gp_payments_totals_lines.csv"
    pd.DataFrame({
        "financial_year": raw["financial_year"],
        "line": "GP practice " + raw["practice_code"],
        "amount": raw["total_nhs_payments_gbp"],
        "easting": raw["easting"].where(point, ""),
        "northing": raw["northing"].where(point, ""),
        "area_code": raw["lad_code"].where(~point, ""),
    }).to_csv(path, index=False)
    with connect(db) as conn:
        return load(conn, "spend", path, format="lines", constants=NHS_ENGLAND,
                    area_sets=("london-boroughs-2014",), dataset="gp-payments-totals",
                    licence=OGL)


@pytest.mark.parametrize("year", list(GP_TOTALS_TABLE))
def test_gp_payments_totals_file(conn: Connection, gp_totals: Loaded, year: str) -> None:
    practices, london, hackney_practices, hackney = GP_TOTALS_TABLE[year]
    # SOURCE.md: 11,842 rows, one per practice per year, 2014-15 to 2022-23
    assert gp_totals.details["lines"] == 11_842 and len(gp_totals.details["scopes"]) == 9
    scope = next(c for c in gp_totals.details["scopes"] if c["financial_year"] == year)
    # SOURCE.md table, rounded to whole pounds (so within 50p)
    assert scope["lines"] == practices
    assert abs(scope["total_pence"] - pounds(london)) <= 50
    row = conn.execute(
        "SELECT count(*) AS n, coalesce(sum(l.amount_pence), 0) AS s FROM spend_line l"
        " WHERE l.batch_id = %s AND l.financial_year = %s AND (l.area_code = %s OR EXISTS"
        " (SELECT 1 FROM boundary b WHERE b.set_id = %s AND b.code = %s"
        " AND ST_Intersects(b.geom, l.geom)))",
        (gp_totals.batch_id, year, HACKNEY, set_id(conn, "london-boroughs-2014"),
         HACKNEY)).fetchone()
    assert row["n"] == hackney_practices
    assert abs(int(row["s"]) - pounds(hackney)) <= 50


# --------------------------------------------------------------------------- spend: ESFA

ESFA = DATA / "esfa-16-19-allocations-london-2019-20" / "esfa_16-19_allocations_2019-20_london.csv"
ESFA_BODY = {"body": "esfa", "body_name": "Education and Skills Funding Agency",
             "body_kind": "agency", "financial_year": "2019-20", "function": "09"}
ESFA_AMOUNT = "Total Funding Allocation (£)"


@pytest.fixture(scope="module")
def esfa(db: str) -> Loaded:
    with connect(db) as conn:
        return load(conn, "spend", ESFA, columns={"amount": ESFA_AMOUNT, "area_code": "la_code",
                                                  "line": "Institution Name"},
                    constants=ESFA_BODY, area_sets=("london-boroughs-2014",), dataset="esfa-16-19",
                    licence=OGL)


def test_esfa_allocations(conn: Connection, esfa: Loaded) -> None:
    assert esfa.created
    # SOURCE.md: 503 institutions; London £943,885,771
    assert esfa.details["lines"] == batch_lines(conn, esfa.batch_id) == 503
    assert batch_pence(conn, esfa.batch_id) == pounds(943_885_771)
    # SOURCE.md: Hackney (la_code E09000012, 14 institutions): £17,327,395
    assert batch_pence(conn, esfa.batch_id, "area_code = %s", HACKNEY) == pounds(17_327_395)
    assert scalar(conn, "SELECT count(*) AS n FROM spend_line WHERE batch_id = %s"
                  " AND area_code = %s", esfa.batch_id, HACKNEY) == 14
    # SOURCE.md: New City College, Tower Hamlets, £54,534,611
    assert batch_pence(conn, esfa.batch_id, "line = %s", "New City College") == \
        pounds(54_534_611)


def test_esfa_by_name_matched_postcode_needs_the_postcodes(conn: Connection, postcodes: Loaded,
                                                           work: Path) -> None:
    raw = pd.read_csv(ESFA, dtype=str)
    matched = raw[raw["ks4_2024_postcode"].notna()]
    path = work / "esfa_by_postcode.csv"
    pd.DataFrame({"line": matched["Institution Name"], "amount": matched[ESFA_AMOUNT],
                  "postcode": matched["ks4_2024_postcode"]}).to_csv(path, index=False)
    err = refused(conn, "spend", path, constants=ESFA_BODY, dataset="esfa-by-postcode")
    known = set(pd.read_csv(CODEPOINT, dtype=str)["Postcode"])
    # SOURCE.md: 358 of 503 name-matched to a KS4 URN; 343 of them carry a postcode (the
    # other 15 matched KS4 schools have none: pandas). Only the Hackney districts'
    # postcodes are loaded (hackney-postcodes), so the others are refused by row (pandas)
    unknown = {i + 2 for i, pc in enumerate(matched["ks4_2024_postcode"]) if pc not in known}
    assert len(matched) == 343 and unknown
    assert_rows(err, unknown)
    assert {p.field for p in err.problems} == {"postcode"}


# --------------------------------------------------------------------------- spend: Lambeth

PAYMENTS = LAMBETH_DIR / "lambeth_payments_over_500_2012-06.csv"
DEPARTMENTS = {
    "Adults' and Community Services": ("10", "Adult social care is social protection "
                                       "(sickness and disability, old age)."),
    "Children and Young People's Service": ("10.4", "Children's services are mainly family "
                                            "and children's social protection."),
    "Housing, Regeneration and Environment": ("06", "Housing and regeneration are housing and "
                                              "community amenities."),
    "Office of the Chief Executive/Finance and Resources": ("01", "The chief executive's "
                                                           "office and finance are general "
                                                           "public services."),
}


@pytest.fixture(scope="module")
def lambeth_payments(db: str, work: Path) -> tuple[Loaded, Loaded]:
    mapping = write_rows(work / "lambeth_departments_cofog.csv",
                         [{"source_code": d, "cofog": c, "rationale": r}
                          for d, (c, r) in DEPARTMENTS.items()],
                         ["source_code", "cofog", "rationale"])
    with connect(db) as conn:
        functions = load(conn, "functions", mapping, scheme="lambeth-dept")
        spent = load(conn, "spend", PAYMENTS, scheme="lambeth-dept",
                     columns={"function": "Department", "amount": "Invoice Nett Amount",
                              "line": "Subj Description"},
                     constants={"financial_year": "2012-13"}, dataset="payments-over-500",
                     licence="Open Government Licence")
    return functions, spent


def test_lambeth_payments(conn: Connection, lambeth_payments: tuple[Loaded, Loaded]) -> None:
    functions, spent = lambeth_payments
    assert functions.details == {"scheme": "lambeth-dept", "added": 4, "already_mapped": 0}
    assert reference.function_map(conn, "lambeth-dept") == {
        d: c[:2] for d, (c, _) in DEPARTMENTS.items()}
    # SOURCE.md: 3,155 transactions summing to £40,292,334.84
    assert spent.details["lines"] == batch_lines(conn, spent.batch_id) == 3_155
    assert batch_pence(conn, spent.batch_id) == 4_029_233_484
    # no location given: each line is for Lambeth's whole area (the RS body's borough)
    assert spent.details["located_by"] == {"body_area": 3_155}
    assert scalar(conn, "SELECT count(DISTINCT area_code) AS n FROM spend_line"
                  " WHERE batch_id = %s AND area_code = %s", spent.batch_id, LAMBETH) == 1
    # SOURCE.md states no per-department totals: computed with pandas
    raw = pd.read_csv(PAYMENTS, dtype={"Invoice Nett Amount": str})
    for dept, (cofog, _) in DEPARTMENTS.items():
        amounts = raw.loc[raw["Department"] == dept, "Invoice Nett Amount"]
        expected = sum(int(round(float(a) * 100)) for a in amounts)
        got = batch_pence(conn, spent.batch_id, "source_code = %s AND cofog_code = %s",
                          dept, cofog[:2])
        assert got == expected, dept


# --------------------------------------------------------------------------- spend: HM Treasury CRA

CRA = DATA / "hmt-cra-london" / "cra2018_london_2013-14_to_2017-18_gbp_thousand.csv"
CRA_COLUMNS = {"function": "COFOG Level 1", "amount": "2014-15", "body_name": "Department Name",
               "line": "CRA Segment Name"}
CRA_CONSTANTS = {"financial_year": "2014-15", "area_code": LONDON, "body_kind": "department"}
CRA_OPTIONS = dict(columns=CRA_COLUMNS, constants=CRA_CONSTANTS, unit="thousands",
                   area_sets=("london-region-2014",), dataset="cra-2018-by-department",
                   licence=OGL)
HMT_HEALTH = r"^7\.[ABC] "  # HMT's own health groups (7.A, 7.B, 7.C): not UN COFOG groups


def cra_with_bodies(work: Path, name: str, frame: pd.DataFrame) -> Path:
    """The CRA rows with a ``body`` column: the department's slug (63 characters at most)."""
    out = frame.assign(body=frame["Department Name"].map(lambda d: body_slug(d)[:63]))
    path = work / name
    out.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cra(db: str, boundaries: dict[str, Loaded], work: Path) -> tuple[Rejected, int, Loaded]:
    raw = pd.read_csv(CRA, dtype=str)
    with connect(db) as conn:
        err = refused(conn, "spend", cra_with_bodies(work, "cra_2014-15_all.csv", raw),
                      **CRA_OPTIONS)
        health = raw["COFOG Level 1"].str.match(HMT_HEALTH)
        path = cra_with_bodies(work, "cra_2014-15_un_cofog.csv", raw[~health])
        return err, int(health.sum()), load(conn, "spend", path, **CRA_OPTIONS)


def test_cra_2014_15_london(conn: Connection, cra: tuple[Rejected, int, Loaded]) -> None:
    err, filtered, loaded = cra
    raw = pd.read_csv(CRA, dtype=str)
    health = raw["COFOG Level 1"].str.match(HMT_HEALTH)
    # SOURCE.md: 1,576 rows; the health rows' "7.A/7.B/7.C" are not COFOG groups: refused by row
    assert len(raw) == 1_576
    assert {p.row for p in err.problems} == {i + 2 for i in raw.index[health]}
    assert {p.field for p in err.problems} == {"function"}
    assert filtered == err.total == 74  # counted from the file with pandas
    # SOURCE.md: 2014-15 Health (division 07) 21,624,316 (£ thousand): exactly what is filtered
    assert pounds(raw.loc[health, "2014-15"].astype(float).sum() * 1000) == \
        pounds(21_624_316_000)
    # SOURCE.md: London total 2014-15 84,430,080 (£ thousand); loaded: that less Health
    assert loaded.created and loaded.details["lines"] == 1_576 - 74
    assert batch_pence(conn, loaded.batch_id) == pounds((84_430_080 - 21_624_316) * 1000)
    # SOURCE.md: 2014-15 by COFOG division (£ thousand)
    divisions = {"10": 31_265_758, "09": 13_335_109, "04": 7_434_744, "03": 5_753_650,
                 "06": 1_785_518, "08": 1_387_625, "05": 1_121_062, "01": 715_600, "02": 6_698}
    for code, thousand in divisions.items():
        got = batch_pence(conn, loaded.batch_id, "cofog_code = %s", code)
        assert got == pounds(thousand * 1000), code
    # SOURCE.md: largest departments 2014-15 (those with no HMT health rows, so all loaded)
    departments = {"department_for_work_and_pensions": 14_455_926,
                   "hm_revenue_and_customs": 6_226_355, "department_for_education": 5_082_352,
                   "ministry_of_justice": 1_857_187, "department_for_transport": 1_527_646}
    for slug, thousand in departments.items():
        got = batch_pence(conn, loaded.batch_id, "body_id = (SELECT id FROM body WHERE slug = %s)",
                          slug)
        assert got == pounds(thousand * 1000), slug
    # every line is for the London region
    assert scalar(conn, "SELECT count(*) AS n FROM spend_line WHERE batch_id = %s AND"
                  " area_code <> %s", loaded.batch_id, LONDON) == 0


#: CRA 2018 years other than 2014-15: SOURCE.md London totals (£ thousand)
CRA_2018_YEARS = {"2013-14": 83_335_047, "2015-16": 87_577_741, "2016-17": 88_475_435,
                  "2017-18": 91_584_756}


@pytest.fixture(scope="module")
def cra_years(db: str, boundaries: dict[str, Loaded], cra: tuple, work: Path
              ) -> dict[str, tuple[float, Loaded]]:
    """The other CRA 2018 years, HMT's health rows filtered out as for 2014-15."""
    raw = pd.read_csv(CRA, dtype=str)
    health = raw["COFOG Level 1"].str.match(HMT_HEALTH)
    out = {}
    with connect(db) as conn:
        for year in CRA_2018_YEARS:
            path = cra_with_bodies(work, f"cra_{year}_un_cofog.csv", raw[~health])
            opts = {**CRA_OPTIONS, "columns": {**CRA_COLUMNS, "amount": year},
                    "constants": {**CRA_CONSTANTS, "financial_year": year}}
            out[year] = (float(raw.loc[health, year].astype(float).sum()),
                         load(conn, "spend", path, **opts))
    return out


@pytest.mark.parametrize("year", list(CRA_2018_YEARS))
def test_cra_2018_other_years(conn: Connection, cra_years: dict, year: str) -> None:
    filtered, loaded = cra_years[year]
    assert loaded.created and loaded.details["lines"] == 1_576 - 74
    # SOURCE.md: London total identifiable expenditure (£ thousand); SOURCE.md states the
    # health division only for 2014-15, so the filtered health rows' sum is pandas'
    assert batch_pence(conn, loaded.batch_id) + pounds(filtered * 1000) == \
        pounds(CRA_2018_YEARS[year] * 1000)


CRA_2014 = DATA / "hmt-cra-london" / "cra2014_london_2009-10_to_2013-14_gbp_thousand.csv"


@pytest.mark.parametrize(("year", "total"), [("2009-10", 81_376_272), ("2013-14", 83_040_860)])
def test_cra_2014_release_has_sub_penny_amounts(conn: Connection, boundaries: dict,
                                                work: Path, year: str, total: int) -> None:
    raw = pd.read_csv(CRA_2014, dtype=str)
    # SOURCE.md: 1,686 rows; London 81,376,272 (2009-10) / 83,040,860 (2013-14), £ thousand.
    # The file sums to 81,376,271.62 and 83,040,859.29: SOURCE.md rounds the second one up
    # (by 0.71, i.e. £710), so within 1 here
    assert len(raw) == 1_686
    assert abs(raw[year].astype(float).sum() - total) < 1
    keep = raw[~raw["COFOG Level 1"].str.match(HMT_HEALTH)]
    path = work / f"cra2014_{year}.csv"
    keep.assign(body=keep["Department"].map(lambda d: body_slug(d)[:63])).to_csv(
        path, index=False)
    err = refused(conn, "spend", path, **{
        **CRA_OPTIONS, "dataset": "cra-2014",
        "columns": {**CRA_COLUMNS, "amount": year, "body_name": "Department",
                    "line": "CRA Segment Description"},
        "constants": {**CRA_CONSTANTS, "financial_year": year}})
    # the release's figures are fractions of £1,000 carried to many places (computed by HMT's
    # regional shares): a figure finer than a penny is refused by row, never rounded silently
    finer = {i + 2 for i, v in enumerate(keep[year]) if Decimal(v) * 100_000 % 1 != 0}
    assert finer
    assert_rows(err, finer)
    assert {p.field for p in err.problems} == {"amount"}


def test_a_too_long_body_slug_is_refused_saying_so(conn: Connection,
                                                   boundaries: dict[str, Loaded],
                                                   work: Path) -> None:
    raw = pd.read_csv(CRA, dtype=str)
    ofsted = raw[raw["Department Name"].str.startswith("Office for Standards")]
    path = work / "cra_ofsted.csv"
    ofsted.assign(body=ofsted["Department Name"].map(body_slug)).to_csv(path, index=False)
    assert len(body_slug(ofsted["Department Name"].iloc[0])) == 64
    err = refused(conn, "spend", path, **CRA_OPTIONS)
    first = err.problems[0]
    assert "63" in first.reason or "long" in first.reason
    assert first.value not in first.fix


# --------------------------------------------------------------------------- everything again


def test_loading_every_file_again_stores_nothing(
        db: str, rs: Loaded, boundaries: dict, proxies: dict, lambeth_tax: tuple,
        postcodes: Loaded, gp_sites: Loaded, ks4_sites: Loaded, lambeth_sites: dict,
        gp_payments: dict, gp_totals: Loaded, esfa: Loaded, lambeth_payments: tuple,
        cra: tuple, cra_years: dict) -> None:
    loads = list(LOADS)
    # every shared file that could be loaded (14 boundaries, 6 proxies, postcodes, 6 site
    # files, RS, 2 GP payment years and the totals file, ESFA, the Lambeth map and payments,
    # 5 CRA 2018 years)
    assert len(loads) == 39
    with connect(db) as conn:
        embedded = load_embedded(conn)
        before = counts(conn)
        again = [LOADERS[kind].load(conn, upload, opts) for kind, upload, opts in loads]
        after = counts(conn)
    assert not any(e.created for e in embedded)
    assert [(a.kind, a.created) for a in again] == [(k, False) for k, _, _ in loads]
    assert after == before
