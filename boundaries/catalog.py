"""Manifest of the default data embedded in ``boundaries/data``.

Every embedded file is named here once, with the load options it is loaded with
(``placespend load KIND FILE`` takes the same) and the licence and attribution that must travel
with it (copied verbatim from the SOURCE.md that sits beside the file). Nothing here reads the
files: :func:`placespend.load.load_embedded` loads them through the public load path. This
module uses the standard library only, so anything may import it cheaply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from domain.errors import InputError

#: Folder holding the embedded data; every ``path`` below is relative to it.
DATA_DIR: Path = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Provenance:
    """Where a file came from and what must be shown wherever it is used."""

    #: Path of the SOURCE.md, relative to :data:`DATA_DIR`.
    source_md: str
    #: Licence name, e.g. "Open Government Licence v3.0".
    licence: str
    #: Required attribution text, verbatim from SOURCE.md (one statement per line).
    attribution: str


@dataclass(frozen=True)
class Embedded:
    """One embedded file and how it is loaded: ``placespend load KIND PATH`` with ``options``."""

    #: A kind of load: boundaries, proxy, functions, sites or spend.
    kind: str
    #: File path relative to :data:`DATA_DIR`.
    path: str
    #: The load options (as ``placespend load`` takes them), without licence and attribution.
    options: dict[str, object]
    provenance: Provenance


_OGL = "Open Government Licence v3.0"

_WARDS_2014 = Provenance(
    source_md="london-wards-2014/SOURCE.md",
    licence=_OGL,
    attribution=(
        "Contains National Statistics data © Crown copyright and database right 2014. "
        "Contains Ordnance Survey data © Crown copyright and database right 2014."
    ),
)

_WARDS_2013 = Provenance(
    source_md="london-wards-2013-pre2014/SOURCE.md",
    licence=f"{_OGL} / OS OpenData (geometry); CC-BY 4.0 (GeoJSON conversion by Martin Chorley)",
    attribution=(
        "Contains Ordnance Survey, Office of National Statistics, National Records Scotland and "
        "LPS Intellectual Property data © Crown copyright and database right [2016]. Data "
        "licensed under the terms of the Open Government Licence. Ordnance Survey data covered "
        "by OS OpenData Licence.\n"
        "GeoJSON and TopoJSON UK Boundary Data by Martin Chorley "
        "(https://github.com/martinjc/UK-GeoJson), CC-BY 4.0"
    ),
)

_LSOA_2011 = Provenance(
    source_md="london-lsoa-msoa-2011/SOURCE.md",
    licence=_OGL,
    attribution=(
        "Source: Office for National Statistics licensed under the Open Government Licence "
        "v.3.0. Contains OS data © Crown copyright and database right (2022)."
    ),
)

_OA_2011 = Provenance(
    source_md="london-lsoa-msoa-2011/SOURCE.md",
    licence=f"{_OGL}; CC-BY 4.0 (GeoJSON conversion by Martin Chorley)",
    attribution=(
        "Source: Office for National Statistics licensed under the Open Government Licence "
        "v.3.0. Contains OS data © Crown copyright and database right (2022).\n"
        "GeoJSON and TopoJSON UK Boundary Data by Martin Chorley, CC-BY 4.0"
    ),
)

#: Hackney's 2011 Output Areas: the finer units that can share a straddling LSOA between
#: wards (``placespend run --finer hackney-oa-2011``).
HACKNEY_OA_2011 = "hackney-oa-2011"

_RS = Provenance(
    source_md="london-council-revenue-outturn-rs/SOURCE.md",
    licence=_OGL,
    attribution=(
        "Source: Department for Communities and Local Government, Revenue Outturn (RO) returns "
        "– RS data. Contains public sector information licensed under the Open Government "
        "Licence v3.0."
    ),
)

_WARDS_2014_FILE = "london-wards-2014/london_wards_2014.geojson"
_POPULATION_CSV = "london-lsoa-msoa-2011/london_lsoa11_population_mid2020.csv"
_RS_FILE = ("london-council-revenue-outturn-rs/"
            "london_revenue_outturn_rs_net_current_expenditure_2013-14_2014-15.csv")
_OURS = Provenance(
    source_md="README.md", licence="MIT (Placespend's own mapping)",
    attribution="Placespend contributors",
)


_CRA = Provenance(
    source_md="hmt-cra-london/SOURCE.md",
    licence=_OGL,
    attribution=(
        "Source: HM Treasury, Country and Regional Analysis 2018 (and 2014). Contains public "
        "sector information licensed under the Open Government Licence v3.0."
    ),
)

_GP = Provenance(
    source_md="nhs-payments-gp-practices-london/SOURCE.md",
    licence=_OGL,
    attribution=(
        "Contains public sector information licensed under the Open Government Licence v3.0. "
        "Source: NHS Digital (NHS England), NHS Payments to General Practice.\n"
        "Contains OS data © Crown copyright and database right 2025; Contains Royal Mail data "
        "© Royal Mail copyright and database right 2025; Contains National Statistics data "
        "© Crown copyright and database right 2025"
    ),
)

#: The site set of the London GP practices of 2014-15 (their payments are placed there).
GP_SITES_2014 = "london-gp-practices-2014-15"


def _proxy(slug: str, name: str, value_field: str, *also_add: str) -> Embedded:
    return Embedded("proxy", _POPULATION_CSV, {
        "slug": slug, "name": name, "unit_set": "london-lsoa-2011", "year": 2020,
        "code_field": "LSOA11CD", "value_field": value_field, "measure": "residents",
        **({"also_add": also_add} if also_add else {}),
    }, _LSOA_2011)


#: Every embedded file, in the order it is loaded (a set before what refers to it).
EMBEDDED: tuple[Embedded, ...] = (
    Embedded("functions", "rs_line_cofog.csv", {
        "scheme": "rs", "code_field": "line", "cofog_field": "cofog_division",
    }, _OURS),
    Embedded("boundaries", _WARDS_2014_FILE, {
        "slug": "london-wards-2014", "name": "London wards, May 2014 (City of London merged)",
        "kind": "ward", "vintage": "2014-05", "code_field": "GSS_Code", "name_field": "Name",
        "parent_field": "LB_GSS_Code",
    }, _WARDS_2014),
    Embedded("boundaries", "london-wards-2014/hackney_wards_2014.geojson", {
        "slug": "hackney-wards-2014",
        "name": "Hackney wards, May 2014 (21 wards, unchanged to 2025)",
        "kind": "ward", "vintage": "2014-05", "code_field": "GSS_Code", "name_field": "Name",
        "parent_field": "LB_GSS_Code",
    }, _WARDS_2014),
    Embedded("boundaries", "london-wards-2013-pre2014/hackney_wards_2013.geojson", {
        "slug": "hackney-wards-2013",
        "name": "Hackney wards, December 2013 (19 pre-2014 wards, generalised)",
        "kind": "ward", "vintage": "2013-12", "code_field": "WD13CD", "name_field": "WD13NM",
        "parent_field": "LAD13CD",
    }, _WARDS_2013),
    Embedded("boundaries", "london-lsoa-msoa-2011/london_lsoa_2011.geojson", {
        "slug": "london-lsoa-2011",
        "name": "London Lower Layer Super Output Areas, 2011 (generalised 20 m)",
        "kind": "lsoa", "vintage": "2011-12", "code_field": "LSOA11CD",
        "name_field": "LSOA11NM", "parent_field": "LAD11CD",
    }, _LSOA_2011),
    Embedded("boundaries", "london-lsoa-msoa-2011/hackney_oa_2011.geojson", {
        "slug": HACKNEY_OA_2011,
        "name": "Hackney Output Areas, 2011 (ONS, generalised)",
        "kind": "oa", "vintage": "2011-12", "code_field": "OA11CD", "name_field": "OA11CD",
        "parent_field": "LAD11CD",
    }, _OA_2011),
    Embedded("boundaries", _WARDS_2014_FILE, {
        "slug": "london-boroughs-2014", "name": "London boroughs (dissolved from May 2014 wards)",
        "kind": "borough", "vintage": "2014-05", "code_field": "GSS_Code", "name_field": "Name",
        "dissolve_by": "LB_GSS_Code", "dissolve_name_field": "Borough",
    }, _WARDS_2014),
    Embedded("boundaries", _WARDS_2014_FILE, {
        "slug": "london-region-2014", "name": "Greater London (dissolved from May 2014 wards)",
        "kind": "region", "vintage": "2014-05", "code_field": "GSS_Code", "name_field": "Name",
        "dissolve_code": "E12000007", "dissolve_name": "London",
    }, _WARDS_2014),
    _proxy("residents-all", "Residents, all ages (ONS mid-2020 estimate)", "Persons_All-Ages"),
    _proxy("residents-0-15", "Residents aged 0-15 (ONS mid-2020 estimate)", "Persons_0-15"),
    _proxy("residents-65-plus", "Residents aged 65 and over (ONS mid-2020 estimate)",
           "Persons_65+"),
    _proxy("residents-16-64", "Residents aged 16-64 (ONS mid-2020 estimate)",
           "Persons_16-29", "Persons_30-44", "Persons_45-64"),
    _proxy("residents-16-29", "Residents aged 16-29 (ONS mid-2020 estimate)", "Persons_16-29"),
    Embedded("spend", _RS_FILE, {
        "format": "rs", "area_sets": ("london-boroughs-2014", "london-region-2014"),
        "body_areas": {"E5100": "E12000007"},
    }, _RS),
    Embedded("spend", "hmt-cra-london/cra2018_london_lines.csv", {
        "format": "lines", "unit": "thousands", "area_sets": ("london-region-2014",),
        "constants": {"area_code": "E12000007"}, "dataset": "cra-2018",
    }, _CRA),
    Embedded("sites", "nhs-payments-gp-practices-london/gp_practices_2014-15_sites.csv", {
        "slug": GP_SITES_2014, "name": "London GP practices, 2014-15 (NHS payments file)",
        "kind": "gp_practice", "id_field": "practice_code", "name_field": "practice_name",
        "easting_field": "easting", "northing_field": "northing",
    }, _GP),
    Embedded("spend", "nhs-payments-gp-practices-london/gp_payments_2014-15_lines.csv", {
        "format": "lines", "area_sets": ("london-boroughs-2014",), "site_set": GP_SITES_2014,
        "constants": {"body": "nhs_england", "body_name": "NHS England", "body_kind": "nhs",
                      "function": "07.2"},
        "dataset": "gp-payments",
    }, _GP),
)

#: UN COFOG 1999 code list (divisions, groups and classes).
COFOG_PATH: str = "cofog-classification/cofog_un_1999.csv"
#: Default proxy per RS service line (a ``*`` row covers every other line).
DEFAULT_PROXIES_PATH: str = "default_proxies.csv"
#: Default netting rules: which money two embedded datasets both report, counted once.
NETTING_RULES_PATH: str = "netting_rules.csv"


def existing_file(base: Path, rel: str | os.PathLike[str]) -> Path:
    """Return ``base / rel`` if it is a readable file, else raise :class:`InputError`."""
    full = Path(base) / rel
    if not full.is_file():
        raise InputError(
            f"data file {full.name!r} does not exist",
            "check the path, or restore the file (embedded files live in boundaries/data)",
            where=str(full),
        )
    if not os.access(full, os.R_OK):
        raise InputError(
            f"data file {full.name!r} cannot be read",
            "give the user running placespend read permission on the file",
            where=str(full),
        )
    return full


def path(rel: str) -> Path:
    """Return ``DATA_DIR / rel``, raising :class:`InputError` if it is missing or unreadable."""
    return existing_file(DATA_DIR, rel)
