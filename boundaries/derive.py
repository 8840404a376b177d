"""Make the embedded whole-pound files from the staged open data (``../shared/data``).

Run ``python -m boundaries.derive SHARED_DATA_DIR``; it rewrites, in ``boundaries/data``:

- ``hmt-cra-london/cra2018_london_lines.csv``: HM Treasury's Country and Regional Analysis 2018,
  London, 2013-14 and 2014-15, one spend line per CRA row and year (£ thousand, as published),
  with the columns the spend loader reads (``body, body_name, body_kind, financial_year, line,
  function, amount``) and the CRA's own columns kept beside them. ``function`` is the COFOG
  code of the CRA's ``COFOG Level 1`` (kept as ``cofog_level_1``); HM Treasury's three health
  groups, which are not UN COFOG groups, become the codes in :data:`HMT_HEALTH`. The body is
  the CRA's department, except for two kinds of row, so that the netting rules can name them.
  Rows of the local government sector (``CG, LG, PC, BOE`` = ``LG``) are three bodies: its
  current spending on services is ``cra_local_government`` (the councils' own returns count
  that money: £18.61bn in 2014-15 against the RS service lines' £18.71bn), its housing benefit
  (current, ``10.6 Housing``) is ``cra_housing_benefit`` and its capital spending
  ``cra_local_capital`` (the RS service lines count neither); the department's public
  corporation rows, London Underground and the councils' housing revenue accounts, stay with
  ``local_government_england``. NHS England's rows
  (organisation "NHS Commissioning Board (NHS England)") are the body ``nhs_england``, the body
  that pays GP practices.
- ``nhs-payments-gp-practices-london/gp_payments_2014-15_lines.csv``: NHS England's payments to
  each London GP practice, 2014-15 (``Total NHS Payments to General Practice``, whole pounds),
  one line a practice, at the practice (``site_id``) where Code-Point placed its postcode, else
  for its borough (``lad_code``).
- ``nhs-payments-gp-practices-london/gp_practices_2014-15_sites.csv``: those practices as sites
  (Code-Point point, EPSG:27700) with their registered patients (the file's last known figure),
  which size each practice's catchment.

Nothing is converted except the selection and renaming described; every amount is the
published figure. ``tests/test_embedded_data.py`` re-derives the files from ``../shared/data``
and checks the embedded ones are exactly what this makes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from boundaries.catalog import DATA_DIR
from intake.spend import body_slug

CRA_FILE = "hmt-cra-london/cra2018_london_2013-14_to_2017-18_gbp_thousand.csv"
CRA_LINES = "hmt-cra-london/cra2018_london_lines.csv"
CRA_YEARS = ("2013-14", "2014-15")
GP_FILE = "nhs-payments-gp-practices-london/london_gp_payments_2014-15.csv"
GP_LINES = "nhs-payments-gp-practices-london/gp_payments_2014-15_lines.csv"
GP_SITES = "nhs-payments-gp-practices-london/gp_practices_2014-15_sites.csv"
GP_TOTAL = "Total NHS Payments to General Practice"

#: The bodies of CRA's local government sector rows: current spending on services (what the
#: councils' own returns count), housing benefit (10.6, which they do not) and capital (which
#: they do not); and of NHS England's rows.
CRA_LOCAL_GOVERNMENT = "cra_local_government"
CRA_HOUSING_BENEFIT = "cra_housing_benefit"
CRA_LOCAL_CAPITAL = "cra_local_capital"
HOUSING_BENEFIT_GROUP = "10.6 Housing"
NHS_ENGLAND = "nhs_england"
_NHS_ENGLAND_ORG = "NHS Commissioning Board (NHS England)"
#: HM Treasury's health groups are not UN COFOG groups: Medical services (7.A) mixes COFOG
#: 07.1-07.3, so it is the division; Medical research (7.B) is R&D Health (07.5); Central and
#: other health services (7.C) is Health n.e.c. (07.6).
HMT_HEALTH = {"7.A": "07", "7.B": "07.5", "7.C": "07.6"}
#: Department names whose slugs would be over 63 characters.
_SHORT = {"Office for Standards In Education, Children's Services and Skills": "ofsted"}


def cofog_of(level_1: str) -> str:
    """The COFOG code of a CRA ``COFOG Level 1`` text: ``10.2 Old age`` -> ``10.2``."""
    code = level_1.split(" ", 1)[0]
    if code in HMT_HEALTH:
        return HMT_HEALTH[code]
    division, group = code.split(".")
    return f"{int(division):02d}.{group}"


def cra_lines(raw: pd.DataFrame) -> pd.DataFrame:
    """The CRA rows as spend lines, one per row and year of :data:`CRA_YEARS`."""
    dept = raw["Department Name"]
    body = dept.map(lambda d: _SHORT.get(d) or body_slug(d))
    name = dept.copy()
    kind = pd.Series("department", index=raw.index)
    lg = raw["CG, LG, PC, BOE"] == "LG"
    nhs = raw["Organisation Name"] == _NHS_ENGLAND_ORG
    body[nhs], name[nhs], kind[nhs] = NHS_ENGLAND, "NHS England", "nhs"
    lge = (dept == "Local Government England") & ~lg  # its public corporations' rows
    name[lge] = "Local Government England (public corporations: London Underground, HRA)"
    # The councils' returns (RS service lines) hold their current spending on services, but
    # neither housing benefit (below the RS service total) nor capital: those CRA rows count.
    current = raw["CAP or CUR"] == "CUR"
    benefit = raw["COFOG Level 1"] == HOUSING_BENEFIT_GROUP
    for rows, slug, title in (
            (lg & current & ~benefit, CRA_LOCAL_GOVERNMENT,
             "Local government current spending on services (HM Treasury's CRA)"),
            (lg & current & benefit, CRA_HOUSING_BENEFIT,
             "Housing benefit and support, paid by councils (HM Treasury's CRA)"),
            (lg & ~current, CRA_LOCAL_CAPITAL,
             "Local government capital spending (HM Treasury's CRA)")):
        body[rows], name[rows], kind[rows] = slug, title, "local_government"
    frames = []
    for year in CRA_YEARS:
        frames.append(pd.DataFrame({
            "body": body, "body_name": name, "body_kind": kind, "financial_year": year,
            "line": raw["CRA Segment Name"], "function": raw["COFOG Level 1"].map(cofog_of),
            "cofog_level_1": raw["COFOG Level 1"],
            "amount": raw[year], "department": dept, "organisation": raw["Organisation Name"],
            "segment_code": raw["CRA Segment Code"], "sector": raw["CG, LG, PC, BOE"],
            "cap_or_cur": raw["CAP or CUR"], "allocated_by": raw["Allocated by HMT or DEPT"],
        }))
    return pd.concat(frames, ignore_index=True)


def gp_lines(raw: pd.DataFrame) -> pd.DataFrame:
    """One line a practice: at its site where it has a point, else for its borough."""
    point = raw["geocoded"] == "1"
    return pd.DataFrame({
        "financial_year": raw["financial_year"],
        "line": "GP practice " + raw["Practice Code"],
        "amount": raw[GP_TOTAL],
        "site_id": raw["Practice Code"].where(point, ""),
        "area_code": raw["lad_code"].where(~point, ""),
        "practice_name": raw["Practice Name"].str.strip(),
        "ccg_code": raw["CCG Code"],
    })


def gp_sites(raw: pd.DataFrame) -> pd.DataFrame:
    """The practices Code-Point placed, with their registered patients."""
    point = raw[raw["geocoded"] == "1"]
    return pd.DataFrame({
        "practice_code": point["Practice Code"],
        "practice_name": point["Practice Name"].str.strip(),
        "postcode": point["cp_postcode"],
        "easting": point["easting"], "northing": point["northing"],
        "registered_patients": point["Number of Registered Patients (Last Known Figure)"],
    })


def derive(shared: Path, out: Path = DATA_DIR) -> list[Path]:
    """Write the derived files under ``out`` from the staged data in ``shared``."""
    written = []
    cra = pd.read_csv(shared / CRA_FILE, dtype=str, keep_default_na=False)
    gp = pd.read_csv(shared / GP_FILE, dtype=str, keep_default_na=False)
    for rel, frame in ((CRA_LINES, cra_lines(cra)), (GP_LINES, gp_lines(gp)),
                       (GP_SITES, gp_sites(gp))):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False, lineterminator="\n")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    for p in derive(Path(sys.argv[1])):
        print(p)
