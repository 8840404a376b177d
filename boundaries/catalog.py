"""Manifest of the default data embedded in ``boundaries/data``.

Every embedded file is named here once, with the fields other modules read from it and the
licence and attribution that must travel with it (copied verbatim from the SOURCE.md that sits
beside the file). Nothing here reads the files: :mod:`boundaries.readers` does that. This module
uses the standard library only, so anything may import it cheaply.
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
class BoundarySource:
    """A set of polygons read from one file."""

    slug: str
    name: str
    #: One of "ward", "lsoa", "borough", "region".
    kind: str
    vintage: str
    #: File path relative to :data:`DATA_DIR`.
    path: str
    code_field: str
    name_field: str
    #: Field holding the code of the enclosing unit (e.g. the borough), if any.
    parent_field: str | None
    provenance: Provenance


@dataclass(frozen=True)
class DerivedSet:
    """A set built by dissolving another set's features by a field.

    With ``group_field`` set, each distinct value becomes one feature whose code is that value
    and whose name comes from ``name_field``. With ``group_field`` ``None``, every feature is
    dissolved into one feature with code ``code`` and name ``fixed_name``.
    """

    slug: str
    name: str
    kind: str
    vintage: str
    from_slug: str
    group_field: str | None
    code: str | None
    name_field: str | None
    fixed_name: str | None
    provenance: Provenance


@dataclass(frozen=True)
class ProxySource:
    """One proxy (e.g. resident population) per unit of a boundary set, read from a CSV."""

    slug: str
    name: str
    #: Slug of the boundary set whose codes the CSV carries.
    unit_set: str
    year: int
    path: str
    code_field: str
    value_field: str
    provenance: Provenance


@dataclass(frozen=True)
class BodySource:
    """A public body whose spend is read from the Revenue Outturn file."""

    slug: str
    name: str
    #: e.g. "council", "regional".
    kind: str
    #: DCLG E-code identifying the body's rows in the file (Hackney E5013, GLA E5100).
    e_code: str
    #: Boundary set (slug) and code of the area the body reports for.
    area_set: str
    area_code: str


@dataclass(frozen=True)
class SpendSource:
    """The Revenue Outturn summary (RS) file and the bodies and years read from it."""

    path: str
    years: tuple[str, ...]
    bodies: tuple[BodySource, ...]
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

_RS = Provenance(
    source_md="london-council-revenue-outturn-rs/SOURCE.md",
    licence=_OGL,
    attribution=(
        "Source: Department for Communities and Local Government, Revenue Outturn (RO) returns "
        "– RS data. Contains public sector information licensed under the Open Government "
        "Licence v3.0."
    ),
)

BOUNDARY_SETS: tuple[BoundarySource, ...] = (
    BoundarySource(
        slug="london-wards-2014",
        name="London wards, May 2014 (City of London merged)",
        kind="ward",
        vintage="2014-05",
        path="london-wards-2014/london_wards_2014.geojson",
        code_field="GSS_Code",
        name_field="Name",
        parent_field="LB_GSS_Code",
        provenance=_WARDS_2014,
    ),
    BoundarySource(
        slug="hackney-wards-2014",
        name="Hackney wards, May 2014 (21 wards, unchanged to 2025)",
        kind="ward",
        vintage="2014-05",
        path="london-wards-2014/hackney_wards_2014.geojson",
        code_field="GSS_Code",
        name_field="Name",
        parent_field="LB_GSS_Code",
        provenance=_WARDS_2014,
    ),
    BoundarySource(
        slug="hackney-wards-2013",
        name="Hackney wards, December 2013 (19 pre-2014 wards, generalised)",
        kind="ward",
        vintage="2013-12",
        path="london-wards-2013-pre2014/hackney_wards_2013.geojson",
        code_field="WD13CD",
        name_field="WD13NM",
        parent_field="LAD13CD",
        provenance=_WARDS_2013,
    ),
    BoundarySource(
        slug="london-lsoa-2011",
        name="London Lower Layer Super Output Areas, 2011 (generalised 20 m)",
        kind="lsoa",
        vintage="2011-12",
        path="london-lsoa-msoa-2011/london_lsoa_2011.geojson",
        code_field="LSOA11CD",
        name_field="LSOA11NM",
        parent_field="LAD11CD",
        provenance=_LSOA_2011,
    ),
)

DERIVED_SETS: tuple[DerivedSet, ...] = (
    DerivedSet(
        slug="london-boroughs-2014",
        name="London boroughs (dissolved from May 2014 wards)",
        kind="borough",
        vintage="2014-05",
        from_slug="london-wards-2014",
        group_field="LB_GSS_Code",
        code=None,
        name_field="Borough",
        fixed_name=None,
        provenance=_WARDS_2014,
    ),
    DerivedSet(
        slug="london-region-2014",
        name="Greater London (dissolved from May 2014 wards)",
        kind="region",
        vintage="2014-05",
        from_slug="london-wards-2014",
        group_field=None,
        code="E12000007",
        name_field=None,
        fixed_name="London",
        provenance=_WARDS_2014,
    ),
)

_POPULATION_CSV = "london-lsoa-msoa-2011/london_lsoa11_population_mid2020.csv"

PROXIES: tuple[ProxySource, ...] = (
    ProxySource(
        slug="residents-all",
        name="Residents, all ages (ONS mid-2020 estimate)",
        unit_set="london-lsoa-2011",
        year=2020,
        path=_POPULATION_CSV,
        code_field="LSOA11CD",
        value_field="Persons_All-Ages",
        provenance=_LSOA_2011,
    ),
    ProxySource(
        slug="residents-0-15",
        name="Residents aged 0-15 (ONS mid-2020 estimate)",
        unit_set="london-lsoa-2011",
        year=2020,
        path=_POPULATION_CSV,
        code_field="LSOA11CD",
        value_field="Persons_0-15",
        provenance=_LSOA_2011,
    ),
    ProxySource(
        slug="residents-65-plus",
        name="Residents aged 65 and over (ONS mid-2020 estimate)",
        unit_set="london-lsoa-2011",
        year=2020,
        path=_POPULATION_CSV,
        code_field="LSOA11CD",
        value_field="Persons_65+",
        provenance=_LSOA_2011,
    ),
)

SPEND: SpendSource = SpendSource(
    path=(
        "london-council-revenue-outturn-rs/"
        "london_revenue_outturn_rs_net_current_expenditure_2013-14_2014-15.csv"
    ),
    years=("2013-14", "2014-15"),
    bodies=(
        BodySource(
            slug="hackney",
            name="London Borough of Hackney",
            kind="council",
            e_code="E5013",
            area_set="london-boroughs-2014",
            area_code="E09000012",
        ),
        BodySource(
            slug="gla",
            name="Greater London Authority",
            kind="regional",
            e_code="E5100",
            area_set="london-region-2014",
            area_code="E12000007",
        ),
    ),
    provenance=_RS,
)

#: UN COFOG 1999 code list (divisions, groups and classes).
COFOG_PATH: str = "cofog-classification/cofog_un_1999.csv"
#: Our mapping of each RS service line to a COFOG division and group.
RS_COFOG_PATH: str = "rs_line_cofog.csv"
#: Default proxy per RS service line (a ``*`` row covers every other line).
DEFAULT_PROXIES_PATH: str = "default_proxies.csv"


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
