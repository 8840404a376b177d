"""The embedded default data: counts, exact money, mappings, provenance and reader errors."""

from __future__ import annotations

import csv
import dataclasses
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from boundaries import catalog
from boundaries.readers import (
    read_boundaries,
    read_cofog,
    read_proxy,
    read_proxy_table,
    read_rs_cofog_mapping,
    read_spend,
)
from domain.errors import InputError

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


def boundary(slug: str) -> catalog.BoundarySource:
    return next(b for b in catalog.BOUNDARY_SETS if b.slug == slug)


def proxy(slug: str) -> catalog.ProxySource:
    return next(p for p in catalog.PROXIES if p.slug == slug)


@pytest.fixture(scope="module")
def mapping() -> pd.DataFrame:
    return read_rs_cofog_mapping(catalog.path(catalog.RS_COFOG_PATH))


@pytest.fixture(scope="module")
def spend(mapping: pd.DataFrame) -> pd.DataFrame:
    return read_spend(catalog.SPEND, mapping=mapping)


def spend_copy(tmp_path: Path) -> Path:
    """Copy the RS csv into tmp_path (same relative path) and return the copy."""
    dest = tmp_path / catalog.SPEND.path
    dest.parent.mkdir(parents=True)
    shutil.copyfile(catalog.path(catalog.SPEND.path), dest)
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


# --------------------------------------------------------------------------- counts


def test_boundary_counts() -> None:
    assert len(read_boundaries(boundary("london-wards-2014"))) == 630
    assert len(read_boundaries(boundary("hackney-wards-2014"))) == 21
    assert len(read_boundaries(boundary("hackney-wards-2013"))) == 19
    lsoa = read_boundaries(boundary("london-lsoa-2011"))
    assert len(lsoa) == 4835
    assert (lsoa["LAD11CD"] == "E09000012").sum() == 144


def test_hackney_ward_codes() -> None:
    w14 = read_boundaries(boundary("hackney-wards-2014"))
    assert sorted(w14["GSS_Code"]) == [f"E0500{n}" for n in range(9367, 9388)]
    assert set(w14["LB_GSS_Code"]) == {"E09000012"}
    w13 = read_boundaries(boundary("hackney-wards-2013"))
    assert sorted(w13["WD13CD"]) == [f"E05000{n}" for n in range(231, 250)]
    assert not set(w13["WD13CD"]) & set(w14["GSS_Code"])
    london = read_boundaries(boundary("london-wards-2014"))
    assert london["LB_GSS_Code"].nunique() == 33
    assert set(london.loc[london["LB_GSS_Code"] == "E09000012", "GSS_Code"]) == set(w14["GSS_Code"])


def test_population_proxies() -> None:
    everyone = read_proxy(proxy("residents-all"))
    assert len(everyone) == 4835
    assert everyone["value"].dtype == "float64"
    assert everyone["unit_code"].is_unique
    assert everyone["value"].sum() == 9_002_488
    assert read_proxy(proxy("residents-0-15"))["value"].sum() == 1_853_207
    assert read_proxy(proxy("residents-65-plus"))["value"].sum() == 1_098_453
    lsoa = read_boundaries(boundary("london-lsoa-2011"))
    assert set(everyone["unit_code"]) == set(lsoa["LSOA11CD"])
    hackney = set(lsoa.loc[lsoa["LAD11CD"] == "E09000012", "LSOA11CD"])
    assert everyone.loc[everyone["unit_code"].isin(hackney), "value"].sum() == 280_941


# --------------------------------------------------------------------------- spend


def test_spend_shape(spend: pd.DataFrame) -> None:
    assert len(spend) == 2 * 2 * 13
    assert list(spend.columns) == [
        "body",
        "financial_year",
        "line",
        "cofog_code",
        "amount_pence",
        "area_set",
        "area_code",
        "source_row",
    ]
    assert spend["amount_pence"].dtype == "int64"
    assert spend["source_row"].dtype == "int64"
    assert set(spend["line"]) == set(SERVICE_LINES)
    gla = spend[spend["body"] == "gla"]
    assert set(gla["area_set"]) == {"london-region-2014"}
    assert set(gla["area_code"]) == {"E12000007"}


def test_hackney_2014_15_total_is_exact(spend: pd.DataFrame) -> None:
    rows = spend[(spend["body"] == "hackney") & (spend["financial_year"] == "2014-15")]
    assert len(rows) == 13
    assert rows["amount_pence"].sum() == 52_969_400_000
    edu = rows[rows["line"] == "Education services"].iloc[0]
    assert edu["amount_pence"] == 26_227_400_000
    assert edu["cofog_code"] == "09"
    other = rows[rows["line"] == "Other services"].iloc[0]
    assert other["amount_pence"] == -500_000  # negative net spend is kept, signed
    # source_row points at the very line in the csv
    text = catalog.path(catalog.SPEND.path).read_text(encoding="utf-8").splitlines()
    assert text[int(edu["source_row"]) - 1].endswith(",Education services,262274.0")


def test_hackney_2013_14_total_is_exact(spend: pd.DataFrame) -> None:
    rows = spend[(spend["body"] == "hackney") & (spend["financial_year"] == "2013-14")]
    assert rows["amount_pence"].sum() == 52_113_100_000


def test_gla_2014_15_signed_total_matches_csv(spend: pd.DataFrame) -> None:
    src = catalog.path(catalog.SPEND.path)
    with src.open(encoding="utf-8", newline="") as f:
        raw = [
            r
            for r in csv.DictReader(f)
            if r["e_code"] == "E5100" and r["financial_year"] == "2014-15"
        ]
    by_line = {r["line"]: Decimal(r["value_gbp_thousand"]) for r in raw}
    from_csv = int(sum(by_line[line] for line in SERVICE_LINES) * 100_000)
    total_line = next(v for k, v in by_line.items() if k.startswith("TOTAL SERVICE"))
    assert from_csv == int(total_line * 100_000) == 470_086_300_000
    rows = spend[(spend["body"] == "gla") & (spend["financial_year"] == "2014-15")]
    assert rows["amount_pence"].sum() == 470_086_300_000
    police = rows[rows["line"] == "Police services"].iloc[0]
    assert police["amount_pence"] == 283_435_400_000
    assert police["cofog_code"] == "03"


def test_gla_2013_14_has_no_ons_code_but_is_read(spend: pd.DataFrame) -> None:
    rows = spend[(spend["body"] == "gla") & (spend["financial_year"] == "2013-14")]
    assert rows["amount_pence"].sum() == 487_937_900_000
    assert set(rows["area_code"]) == {"E12000007"}


def test_malformed_amount_names_the_row(tmp_path: Path, mapping: pd.DataFrame) -> None:
    copy = spend_copy(tmp_path)
    line_no = find_line(copy, "E5013", "2014-15", "Adult Social Care")
    replace_value(copy, line_no, "66O28.0")  # letter O for a zero
    with pytest.raises(InputError) as err:
        read_spend(catalog.SPEND, tmp_path, mapping=mapping)
    assert err.value.where == f"{copy.name}, line {line_no}"
    assert "66O28.0" in err.value.cause
    assert err.value.fix


def test_sub_penny_amount_is_refused(tmp_path: Path, mapping: pd.DataFrame) -> None:
    copy = spend_copy(tmp_path)
    line_no = find_line(copy, "E5100", "2013-14", "Central services")
    replace_value(copy, line_no, "58820.000001")
    with pytest.raises(InputError, match="more than 2 decimals") as err:
        read_spend(catalog.SPEND, tmp_path, mapping=mapping)
    assert err.value.where == f"{copy.name}, line {line_no}"


def test_pence_amounts_are_exact(tmp_path: Path, mapping: pd.DataFrame) -> None:
    copy = spend_copy(tmp_path)
    # move 0.01 pounds (0.00001 £k) from Central services to Other services: total unchanged
    replace_value(copy, find_line(copy, "E5013", "2014-15", "Central services"), "42045.99999")
    replace_value(copy, find_line(copy, "E5013", "2014-15", "Other services"), "-4.99999")
    rows = read_spend(catalog.SPEND, tmp_path, mapping=mapping)
    hackney = rows[(rows["body"] == "hackney") & (rows["financial_year"] == "2014-15")]
    amounts = dict(zip(hackney["line"], hackney["amount_pence"], strict=True))
    assert amounts["Central services"] == 4_204_599_999
    assert amounts["Other services"] == -499_999
    assert hackney["amount_pence"].sum() == 52_969_400_000


def test_total_mismatch_names_body_year_and_figures(tmp_path: Path, mapping: pd.DataFrame) -> None:
    copy = spend_copy(tmp_path)
    replace_value(copy, find_line(copy, "E5013", "2014-15", "Public Health"), "29819.0")
    with pytest.raises(InputError) as err:
        read_spend(catalog.SPEND, tmp_path, mapping=mapping)
    assert "hackney 2014-15" in err.value.cause
    assert "£529,695,000.00" in err.value.cause
    assert "£529,694,000.00" in err.value.cause


def test_unknown_line_is_refused(tmp_path: Path, mapping: pd.DataFrame) -> None:
    copy = spend_copy(tmp_path)
    line_no = find_line(copy, "E5013", "2013-14", "Parish precepts")
    text = copy.read_text(encoding="utf-8").split("\n")
    text[line_no - 1] = text[line_no - 1].replace("Parish precepts", "Library services")
    copy.write_text("\n".join(text), encoding="utf-8")
    with pytest.raises(InputError, match="Library services") as err:
        read_spend(catalog.SPEND, tmp_path, mapping=mapping)
    assert "rs_line_cofog.csv" in err.value.fix
    assert err.value.where == f"{copy.name}, line {line_no}"


def test_rounded_councils_need_a_tolerance(mapping: pd.DataFrame) -> None:
    # DCLG rounds every figure to £1k: Tower Hamlets 2013-14 lines sum to £1k below the total.
    tower = catalog.BodySource(
        "tower-hamlets", "LB Tower Hamlets", "council", "E5020", "london-boroughs-2014", "E09000030"
    )
    src = dataclasses.replace(catalog.SPEND, years=("2013-14",), bodies=(tower,))
    with pytest.raises(InputError, match="tower-hamlets 2013-14"):
        read_spend(src, mapping=mapping)
    rows = read_spend(src, mapping=mapping, total_tolerance_pence=100_000)
    assert rows["amount_pence"].sum() == 67_437_400_000


# --------------------------------------------------------------------------- mappings


def test_every_mapped_line_has_a_cofog_division(mapping: pd.DataFrame) -> None:
    cofog = read_cofog(catalog.path(catalog.COFOG_PATH))
    assert len(cofog) == 79
    assert (cofog["code"].str.len() == 2).sum() == 10
    codes = set(cofog["code"])
    assert list(mapping["line"]) == SERVICE_LINES
    assert set(mapping["cofog_division"]) <= codes
    groups = mapping["cofog_group"].dropna()
    assert set(groups) <= codes
    assert all(mapping["rationale"].str.len() > 40)
    described = dict(zip(cofog["code"], cofog["description"], strict=True))
    assert described["03.1"] == "Police services"
    assert described["10"] == "Social protection"


def test_mapping_divisions() -> None:
    mapping = read_rs_cofog_mapping(catalog.path(catalog.RS_COFOG_PATH))
    division = dict(zip(mapping["line"], mapping["cofog_division"], strict=True))
    assert division["Education services"] == "09"
    assert division["Police services"] == "03"
    assert division["Planning and development services"] == "06"
    group = dict(zip(mapping["line"], mapping["cofog_group"], strict=True))
    assert group["Highways and transport services"] == "04.5"
    assert pd.isna(group["Other services"])


def test_default_proxies(mapping: pd.DataFrame) -> None:
    table = read_proxy_table(catalog.path(catalog.DEFAULT_PROXIES_PATH))
    chosen = dict(zip(table["line"], table["proxy"], strict=True))
    assert chosen == {
        "Education services": "residents-0-15",
        "Children Social Care": "residents-0-15",
        "Adult Social Care": "residents-65-plus",
        "*": "residents-all",
    }
    assert set(chosen.values()) <= {p.slug for p in catalog.PROXIES}
    assert set(chosen) - {"*"} <= set(mapping["line"])


def test_proxy_table_needs_one_star(tmp_path: Path) -> None:
    bad = tmp_path / "proxies.csv"
    bad.write_text("line,proxy,rationale\nEducation services,residents-0-15,Children.\n")
    with pytest.raises(InputError, match="'\\*' row"):
        read_proxy_table(bad)
    bad.write_text("line,proxy,rationale\n*,residents-all,All.\n*,residents-0-15,Kids.\n")
    with pytest.raises(InputError) as err:
        read_proxy_table(bad)
    assert err.value.where == "proxies.csv, line 3"


# --------------------------------------------------------------------------- reader errors


def test_bad_proxy_value_names_the_row(tmp_path: Path) -> None:
    src = proxy("residents-65-plus")
    dest = tmp_path / src.path
    dest.parent.mkdir(parents=True)
    lines = catalog.path(src.path).read_text(encoding="utf-8").split("\n")
    header = lines[0].split(",")
    col = header.index("Persons_65+")
    cells = lines[10].split(",")
    cells[col] = "-3"
    lines[10] = ",".join(cells)
    dest.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match="negative") as err:
        read_proxy(src, tmp_path)
    assert err.value.where == f"{dest.name}, line 11"
    lines[10] = lines[2]  # duplicate the code on line 3
    dest.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match="twice") as err:
        read_proxy(src, tmp_path)
    assert err.value.where == f"{dest.name}, line 11"


def test_missing_boundary_file_and_field(tmp_path: Path) -> None:
    src = boundary("hackney-wards-2014")
    with pytest.raises(InputError, match="does not exist"):
        read_boundaries(src, tmp_path)
    renamed = dataclasses.replace(src, code_field="WD14CD")
    with pytest.raises(InputError, match="WD14CD"):
        read_boundaries(renamed)


def test_broken_boundary_file(tmp_path: Path) -> None:
    src = boundary("hackney-wards-2014")
    dest = tmp_path / src.path
    dest.parent.mkdir(parents=True)
    dest.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(InputError, match="hackney_wards_2014.geojson"):
        read_boundaries(src, tmp_path)


def test_catalog_path_refuses_missing_file() -> None:
    with pytest.raises(InputError, match="does not exist"):
        catalog.path("no-such-folder/no_such_file.csv")


# --------------------------------------------------------------------------- provenance


def all_provenance() -> list[catalog.Provenance]:
    return (
        [b.provenance for b in catalog.BOUNDARY_SETS]
        + [d.provenance for d in catalog.DERIVED_SETS]
        + [p.provenance for p in catalog.PROXIES]
        + [catalog.SPEND.provenance]
    )


def test_every_catalog_path_exists() -> None:
    rels = (
        [b.path for b in catalog.BOUNDARY_SETS]
        + [p.path for p in catalog.PROXIES]
        + [
            catalog.SPEND.path,
            catalog.COFOG_PATH,
            catalog.RS_COFOG_PATH,
            catalog.DEFAULT_PROXIES_PATH,
        ]
        + [p.source_md for p in all_provenance()]
    )
    for rel in rels:
        assert catalog.path(rel).is_file(), rel
    slugs = {b.slug for b in catalog.BOUNDARY_SETS} | {d.slug for d in catalog.DERIVED_SETS}
    for d in catalog.DERIVED_SETS:
        assert d.from_slug in slugs
    for p in catalog.PROXIES:
        assert p.unit_set in slugs
    for body in catalog.SPEND.bodies:
        assert body.area_set in slugs


def test_every_source_md_is_shipped_beside_its_data() -> None:
    data_files = [p for p in catalog.DATA_DIR.rglob("*") if p.is_file()]
    folders = {p.parent for p in data_files if p.parent != catalog.DATA_DIR}
    assert len(folders) == 5
    for folder in folders:
        assert (folder / "SOURCE.md").is_file(), folder
    pairs = (
        [(b.path, b.provenance) for b in catalog.BOUNDARY_SETS]
        + [(p.path, p.provenance) for p in catalog.PROXIES]
        + [(catalog.SPEND.path, catalog.SPEND.provenance)]
    )
    for rel, prov in pairs:
        assert Path(rel).parent == Path(prov.source_md).parent, rel
    assert (catalog.DATA_DIR / Path(catalog.COFOG_PATH).parent / "SOURCE.md").is_file()


def test_attribution_is_verbatim() -> None:
    for prov in all_provenance():
        text = catalog.path(prov.source_md).read_text(encoding="utf-8")
        for statement in prov.attribution.split("\n"):
            assert statement in text, (prov.source_md, statement)
        assert "Open Government Licence" in prov.licence


def test_data_readme_lists_every_embedded_file() -> None:
    readme = (catalog.DATA_DIR / "README.md").read_text(encoding="utf-8")
    for p in catalog.DATA_DIR.rglob("*"):
        if p.is_file() and p.name not in {"README.md", "SOURCE.md"}:
            assert p.name in readme, p.name
