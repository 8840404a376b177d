"""The bad-input cases of tests/test_bad_input.py: one named entry per file a user might send.

Each :class:`Case` says how to build its file (in a test's tmp_path), what it is sent as
(``POST /uploads/{kind}``, file name, form fields) and what the answer must be: refused with a
4xx naming the row, feature or member at fault (and storing nothing), or read correctly (200 or
201, with ``check`` asserting what was stored). Files are built with the sample builders of
tests/intake_samples.py, tests/test_geo_validation.py, tests/test_intake_files.py and
tests/test_load_path.py, imported, not copied.

A case that exposes a bug in the product carries ``bug``: the suite marks it
``xfail(strict=True)`` with that reason, so it fails loudly once the bug is fixed.

Transfers between bodies are not loadable yet (the brief's list leaves them out): no case
here sends a transfer file; they come with the transfer loader.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
from shapely.geometry import GeometryCollection, Point, Polygon

from tests.intake_samples import (
    CP1252_TEXT,
    WELSH,
    feature_collection,
    lying_zip,
    symlink_info,
    wards,
    write_geojson,
    write_shapefile,
    zip_files,
    zip_raw,
    zip_shapefile,
)
from tests.test_geo_validation import (
    BOW_TIE,
    CODE_CASES,
    CRS_CASES,
    GEOMETRY_CASES,
    LATLON,
    LONLAT,
    MIXED_CASES,
    REPAIR_CASES,
    X0,
    Y0,
    at,
    cell,
    code,
    frame,
    grid,
    sq,
    units,
    with_bad,
)
from tests.test_intake_files import SNIFF_BAD, VECTOR_BAD, ZIP_BAD, _nested_zip

Build = Callable[[Path], Path]

#: Sets loaded by load_embedded that spend lines and proxies refer to.
BOROUGHS = "london-boroughs-2014"
HACKNEY = "E09000012"


@dataclass(frozen=True)
class Case:
    """One bad (or awkward but readable) input, sent through ``POST /uploads/{kind}``.

    ``status``: the exact status expected. ``says``: text the JSON answer must contain.
    ``where``: the answer's top-level ``where``, exactly. ``rows`` / ``features``: the rows or
    features the problems must name, exactly. ``check(answer, db)``: for a file read
    correctly, what was stored. ``limits`` (overrides of intake.files.UploadLimits) and
    ``max_bytes`` (api.routers.uploads.MAX_BYTES) shrink the size limits for the case.
    ``flow(db, tmp_path)``: a case of several uploads (corrections, concurrency) that makes
    its own requests and assertions. ``bug``: the case exposes a bug (strict xfail).
    """

    id: str
    kind: str
    build: Build | None = None
    name: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    status: int = 422
    says: str = ""
    where: str | None = None
    rows: frozenset[int] | None = None
    features: frozenset[int] | None = None
    check: Callable[[dict, Any], None] | None = None
    limits: dict[str, int] | None = None
    max_bytes: int | None = None
    flow: Callable[[Any, Path], None] | None = None
    bug: str | None = None

    @property
    def refused(self) -> bool:
        """Whether the case must be refused (a 4xx) rather than read."""
        return self.flow is None and self.status >= 400

    @property
    def slug(self) -> str:
        """A boundary-set or proxy slug of the case's own."""
        return "bi-" + re.sub(r"[^a-z0-9]+", "-", self.id.lower()).strip("-")[:70]


# ====================================================================== known bugs (reasons)

# Bugs this suite found, now fixed (each case asserts the fix). A new bug is a reason string
# here and ``bug=`` on its cases: a strict xfail until it is fixed.
BUG_INT64 = BUG_GEOS = BUG_EMPTY_RS = BUG_BODY_SLUG = BUG_NAN_POINT = BUG_SIZE_WHERE = None
BUG_EMPTY_FUNCTIONS = BUG_ZIP_AS_GEOJSON = BUG_RS_JUMP = None


# ====================================================================== file builders


def _write(name: str, data: bytes | str) -> Build:
    def build(t: Path) -> Path:
        path = t / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path
    return build


def _doc(f: gpd.GeoDataFrame, crs: str | None) -> dict:
    """A GeoJSON document of ``f``, with a legacy ``crs`` member naming ``crs`` (or none)."""
    doc = json.loads(f.to_json(drop_id=True))
    doc.pop("crs", None)
    if crs is not None:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return doc


def geojson(f: Callable[[], gpd.GeoDataFrame], crs: str | None = "EPSG:27700",
            name: str = "wards.geojson") -> Build:
    """Build: ``f()`` as GeoJSON labelled ``crs``."""
    return lambda t: write_geojson(t / name, _doc(f(), crs))


def raw_geojson(features: list[dict], crs: str | None = "EPSG:27700") -> Build:
    """Build: a FeatureCollection of hand-written features (geometry GDAL must parse)."""
    doc: dict = {"type": "FeatureCollection", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return lambda t: write_geojson(t / "wards.geojson", doc)


def gpkg(f: Callable[[], gpd.GeoDataFrame]) -> Build:
    def build(t: Path) -> Path:
        path = t / "wards.gpkg"
        f().to_file(path, layer="wards", driver="GPKG", engine="pyogrio")
        return path
    return build


def shapefile(f: Callable[[], gpd.GeoDataFrame]) -> Build:
    def build(t: Path) -> Path:
        folder = t / "shp"
        folder.mkdir()
        f().to_file(folder / "wards.shp", engine="pyogrio")
        return zip_shapefile(t / "wards.zip", {p.suffix: p for p in folder.iterdir()})
    return build


def _feature(geometry: dict | None, n: int) -> dict:
    return {"type": "Feature", "properties": {"code": code(n), "name": f"Ward {n}"},
            "geometry": geometry}


def _ring(coords: list[tuple[float, float]]) -> dict:
    return {"type": "Polygon", "coordinates": [[list(c) for c in coords]]}


GOOD_RING = _ring(at([(0, 0), (100, 0), (100, 100), (0, 100), (0, 0)]))


def stored_names(slug: str, expected: str = WELSH) -> Callable[[dict, Any], None]:
    """Check: the set's first unit was stored with the attribute text the file meant."""
    def check(answer: dict, db: Any) -> None:
        names = [r["name"] for r in db.rows(
            "SELECT b.name FROM boundary b JOIN boundary_set s ON s.id = b.set_id"
            " WHERE s.slug = %s ORDER BY b.code", (slug,))]
        assert names and names[0] == expected, names
        assert answer["features"] == len(names)
    return check


# ---------------------------------------------------------------------- tables

LINES_HEADER = "body,body_name,financial_year,line,amount,function,area_set,area_code\n"
RS_HEADER = "financial_year,e_code,ons_code,authority,line,value_gbp_thousand\n"
RS_TOTAL = "TOTAL SERVICE EXPENDITURE (TOTAL OF LINES 190 to 698)"
GOOD_LINE = f"hackney,,2014-15,Schools,100.00,09,{BOROUGHS},{HACKNEY}\n"


def lines_csv(*rows: str, header: str = LINES_HEADER, name: str = "spend.csv",
              encoding: str = "utf-8") -> Build:
    """Build: a lines-format spend CSV (row 2 is the first data row)."""
    return _write(name, (header + "".join(r + "\n" for r in rows)).encode(encoding))


def new_body_line(body: str, amount: str = "100.00", year: str = "2014-15",
                  function: str = "09", line: str = "Schools") -> str:
    """A line for a body created by the file (body_name given), in Hackney."""
    return f"{body},Body {body},{year},{line},{amount},{function},{BOROUGHS},{HACKNEY}"


def rs_csv(*rows: str, encoding: str = "utf-8") -> Build:
    return _write("rs.csv", (RS_HEADER + "".join(r + "\n" for r in rows)).encode(encoding))


def rs_rows(authority: str, value: str, year: str = "2014-15", total: str | None = None,
            line: str = "Education services", ons: str = HACKNEY) -> list[str]:
    return [f"{year},E5099,{ons},{authority},{line},{value}",
            f"{year},E5099,{ons},{authority},{RS_TOTAL},{total or value}"]


RS_FIELDS = {"format": "rs", "area_sets": [BOROUGHS]}


def json_lines(*records: str) -> Build:
    """Build: a JSON spend file (records written by hand, so numbers keep their text)."""
    return _write("spend.json", "[" + ",".join(records) + "]")


def json_record(amount: str = '"100.00"', year: str = '"2014-15"', function: str = '"09"'
                ) -> str:
    return (f'{{"body": "hackney", "financial_year": {year}, "amount": {amount}, '
            f'"function": {function}, "area_set": "{BOROUGHS}", "area_code": "{HACKNEY}"}}')


def lines_of(answer: dict, db: Any) -> list[dict]:
    return db.rows("SELECT * FROM spend_line WHERE batch_id = %s ORDER BY source_row",
                   (answer["batch"],))


def pence(*expected: int) -> Callable[[dict, Any], None]:
    """Check: the batch stored exactly these amounts, in pence, in file order."""
    def check(answer: dict, db: Any) -> None:
        assert answer["created"] is True
        assert [r["amount_pence"] for r in lines_of(answer, db)] == list(expected)
    return check


def year_is(expected: str) -> Callable[[dict, Any], None]:
    def check(answer: dict, db: Any) -> None:
        assert {r["financial_year"] for r in lines_of(answer, db)} == {expected}
    return check


def line_text(expected: str) -> Callable[[dict, Any], None]:
    def check(answer: dict, db: Any) -> None:
        assert [r["line"] for r in lines_of(answer, db)] == [expected]
    return check


def added(answer: dict, n: int) -> None:
    """Check: a function map added ``n`` codes."""
    assert answer["created"] is True and answer["added"] == n, answer


def units_stored(answer: dict, n: int) -> None:
    """Check: a proxy stored a value for ``n`` units."""
    assert answer["created"] is True and answer["units"] == n, answer


PROXY_FIELDS = {"unit_set": "london-lsoa-2011", "year": "2020", "code_field": "code",
                "value_field": "residents"}
LSOA_A, LSOA_B = "E01000001", "E01000002"


def proxy_csv(*rows: str, header: str = "code,residents\n", encoding: str = "utf-8") -> Build:
    return _write("residents.csv", (header + "".join(r + "\n" for r in rows)).encode(encoding))


FUNCTION_HEADER = "source_code,cofog,rationale\n"


def functions_csv(*rows: str, encoding: str = "utf-8") -> Build:
    return _write("map.csv", (FUNCTION_HEADER + "".join(r + "\n" for r in rows)).encode(encoding))


# ====================================================================== the cases

CASES: list[Case] = []


def add(*cases: Case) -> None:
    CASES.extend(cases)


def _bf(case_id: str, **fields: Any) -> dict:
    """Boundary form fields: the case's slug and the sample files' fields."""
    slug = Case(case_id, "boundaries").slug
    return {"slug": slug, "code_field": "code", "name_field": "name", **fields}


# ---------------------------------------------------------------------- geometry

for _id, _geom, _reason, _value in GEOMETRY_CASES:
    add(Case(f"geojson: {_id} at feature 3", "boundaries",
             geojson(lambda g=_geom: with_bad(g)), fields=_bf(f"gj {_id}"),
             # GDAL writes an empty polygon to GeoJSON as a null geometry
             says=_reason.split(",")[0] if _id not in ("null", "empty collection",
                                                       "empty polygon") else "",
             features=frozenset({3}), bug=BUG_INT64))

for _id, _geom in [("bow-tie", BOW_TIE), ("point", Point(X0 + 2050, Y0 + 50)),
                   ("collection", GeometryCollection([sq(2), Point(X0, Y0)])),
                   ("empty polygon", Polygon()),
                   ("zero area", Polygon(at([(0, 0), (50, 0), (100, 0)], 2)))]:
    add(Case(f"gpkg: {_id} at feature 3", "boundaries", gpkg(lambda g=_geom: with_bad(g)),
             fields=_bf(f"gpkg {_id}"), features=frozenset({3}), bug=BUG_INT64))

add(
    Case("geojson: every feature a point (centroids, not boundaries)", "boundaries",
         geojson(lambda: frame([Point(X0 + 50 + 1000 * i, Y0 + 50) for i in range(3)])),
         fields=_bf("all points"), says="is a point", features=frozenset({1, 2, 3}),
         bug=BUG_INT64),
    Case("geojson: a ring that is not closed", "boundaries",
         raw_geojson([_feature(GOOD_RING, 1),
                      _feature(_ring(at([(0, 0), (100, 0), (100, 100), (0, 100)], 2)), 2)]),
         fields=_bf("unclosed"), bug=BUG_GEOS),
    Case("geojson: a ring of two points", "boundaries",
         raw_geojson([_feature(GOOD_RING, 1), _feature(_ring(at([(0, 0), (100, 0)], 2)), 2)]),
         fields=_bf("two points"), bug=BUG_GEOS),
    Case("geojson: a NaN coordinate", "boundaries",
         raw_geojson([_feature(GOOD_RING, 1), _feature(_ring(
             [(X0 + 2000, Y0), (float("nan"), Y0), (X0 + 2100, Y0 + 100), (X0 + 2000, Y0)]), 2)]),
         fields=_bf("nan coordinate"), features=frozenset({2}), bug=BUG_INT64),
    Case("geojson: a FeatureCollection with no features", "boundaries",
         raw_geojson([]), fields=_bf("no features"), says="no features", where="file"),
    Case("geojson: a feature with no code field, named", "boundaries",
         geojson(lambda: frame([sq(0), sq(1)])), fields=_bf("no code field",
                                                            code_field="GSS_Code"),
         says="no field 'GSS_Code'", where="file"),
    Case("geojson: no field looks like a code (guessed)", "boundaries",
         geojson(lambda: gpd.GeoDataFrame({"label": ["same", "same"]},
                                          geometry=[sq(0), sq(1)], crs=27700)),
         fields={"slug": "bi-no-guess"}, says="--code-field", where="file"),
    Case("geojson: dissolve by a field that is not there", "boundaries",
         geojson(lambda: frame([sq(0), sq(1)])), fields=_bf("dissolve", dissolve_by="LAD"),
         says="no field 'LAD' to dissolve by", where="file"),
)

for _id, _geom, _before, _after in REPAIR_CASES[:2]:
    _slug = Case(f"geojson: {_id} is repaired", "boundaries").slug

    def _repaired(answer: dict, db: Any, before: float = _before, after: float = _after) -> None:
        [r] = answer["repairs"]
        assert (r["feature"], r["code"]) == (3, code(3))
        assert abs(r["area_before_m2"] - before) < 1e-3 and abs(r["area_after_m2"] - after) < 1e-3
        assert "1 repaired" in answer["summary"]

    add(Case(f"geojson: {_id} is repaired", "boundaries", geojson(lambda g=_geom: with_bad(g)),
             fields={"slug": _slug, "code_field": "code", "name_field": "name"}, status=201,
             check=_repaired))

# ---------------------------------------------------------------------- CRS

for _id, _geom, _crs, _cause, _fix in CRS_CASES:
    if _crs is None or str(_crs).startswith("LOCAL_CS"):
        continue  # GeoJSON cannot leave a CRS out (it is then lon/lat) or name a LOCAL_CS
    name = _crs if isinstance(_crs, str) else f"EPSG:{_crs}"
    add(Case(f"geojson: {_id}", "boundaries", geojson(lambda g=_geom: frame([g]), crs=name),
             fields=_bf(f"crs {_id}"), says=_cause, where="file"))

add(
    Case("geojson: lat/lon swapped, no crs member (RFC 7946 lon/lat)", "boundaries",
         geojson(lambda: frame([LATLON]), crs=None), fields=_bf("swapped no crs"),
         says="latitude and longitude swapped", where="file"),
    Case("geojson: BNG metres with no crs member (read as WGS84)", "boundaries",
         geojson(lambda: frame([sq(0)]), crs=None), fields=_bf("bng no crs"),
         says="look like British National Grid metres", where="file"),
    Case("shapefile: BNG metres, .prj says WGS84", "boundaries",
         shapefile(lambda: frame([sq(0), sq(1)]).set_crs(4326, allow_override=True)),
         name="wards.zip", fields=_bf("shp bng as 4326"),
         says="look like British National Grid metres", where="file"),
    Case("shapefile: WGS84 degrees, .prj says BNG", "boundaries",
         shapefile(lambda: frame([LONLAT]).set_crs(27700, allow_override=True)),
         name="wards.zip", fields=_bf("shp 4326 as bng"), says="look like lon/lat degrees",
         where="file"),
    Case("shapefile: lat/lon swapped", "boundaries",
         shapefile(lambda: frame([LATLON], crs=4326)), name="wards.zip",
         fields=_bf("shp swapped"), says="swapped", where="file"),
    Case("gpkg: BNG metres labelled WGS84", "boundaries",
         gpkg(lambda: frame([sq(0), sq(1)]).set_crs(4326, allow_override=True)),
         fields=_bf("gpkg bng as 4326"), says="look like British National Grid metres",
         where="file"),
    Case("gpkg: WGS84 degrees labelled BNG", "boundaries",
         gpkg(lambda: frame([LONLAT]).set_crs(27700, allow_override=True)),
         fields=_bf("gpkg 4326 as bng"), says="look like lon/lat degrees", where="file"),
    Case("gpkg: lat/lon swapped", "boundaries", gpkg(lambda: frame([LATLON], crs=4326)),
         fields=_bf("gpkg swapped"), says="swapped", where="file"),
)

for _id, _geoms, _crs, _features, _reason in MIXED_CASES:
    add(Case(f"geojson: {_id}", "boundaries",
             geojson(lambda g=_geoms, c=_crs: frame(g, crs=c), crs=f"EPSG:{_crs}"),
             fields=_bf(f"mixed {_id}"), says=_reason, features=frozenset(_features),
             bug=BUG_INT64))

# ---------------------------------------------------------------------- codes

for _id, _codes, _expected in CODE_CASES:
    blank = any("has no code" in t for t in _expected.values())
    add(Case(f"geojson codes: {_id}", "boundaries",
             geojson(lambda c=_codes: frame([sq(i) for i in range(4)], codes=c)),
             fields=_bf(f"codes {_id}"), features=frozenset(_expected),
             says=next(iter(_expected.values())), bug=BUG_INT64 if blank else None))

add(
    Case("shapefile codes: a duplicate code", "boundaries",
         shapefile(lambda: frame([sq(i) for i in range(3)], codes=["A", "B", "A"])),
         name="wards.zip", fields=_bf("shp dup"), says="code A is used by features 1 and 3",
         features=frozenset({3})),
    Case("gpkg codes: a blank code", "boundaries",
         gpkg(lambda: frame([sq(i) for i in range(3)], codes=["A", "", "C"])),
         fields=_bf("gpkg blank"), says="has no code", features=frozenset({2}), bug=BUG_INT64),
)

# ---------------------------------------------------------------------- tiling


def _overlap_check(slug: str, m2: float, pair: tuple[str, str]) -> Callable[[dict, Any], None]:
    def check(answer: dict, db: Any) -> None:
        from domain.errors import InputError
        from placespend.runs import ensure_atoms

        assert answer["created"] is True and answer["tiles"] is False
        assert abs(answer["overlap_m2"] - m2) < 0.5
        first = answer["overlaps"][0]
        assert (first["code_a"], first["code_b"]) == pair and abs(first["area_m2"] - m2) < 0.5
        assert "not usable for cutting atoms" in answer["summary"]
        with db.connect() as conn:
            try:
                ensure_atoms(conn, "london-lsoa-2011", slug)
            except InputError as err:
                assert "overlap" in err.cause and f"{m2:,.0f} m²" in err.cause
            else:
                raise AssertionError("an overlapping set was cut into atoms")
    return check


def _gap_check(m2: float) -> Callable[[dict, Any], None]:
    def check(answer: dict, db: Any) -> None:
        assert answer["created"] is True and answer["tiles"] is True
        assert abs(answer["gap_m2"] - m2) < 0.5 and abs(answer["gaps"][0]["area_m2"] - m2) < 0.5
        assert "gaps of" in answer["summary"]
    return check


for _id, _geoms, _m2, _pair, _fmt in [
    ("overlapping pair", [cell(0, 0, w=110), cell(1, 0), cell(2, 0)], 1_000.0, ("U1", "U2"),
     geojson),
    ("one unit inside another", [cell(0, 0, w=300), cell(1, 0)], 10_000.0, ("U1", "U2"),
     geojson),
    ("overlapping pair (shapefile)", [cell(0, 0, w=110), cell(1, 0), cell(2, 0)], 1_000.0,
     ("U1", "U2"), shapefile),
]:
    _slug = Case(f"tiling: {_id}", "boundaries").slug
    add(Case(f"tiling: {_id}", "boundaries", _fmt(lambda g=_geoms: units(g)),
             name="wards.zip" if _fmt is shapefile else None,
             fields={"slug": _slug, "code_field": "code"}, status=201,
             check=_overlap_check(_slug, _m2, _pair)))

for _id, _geoms, _m2 in [
    ("hole in the middle", grid(3, 3, skip=(1, 1)), 10_000.0),
    ("hole with an island in it", grid(3, 3, skip=(1, 1))
     + [Polygon(at([(110, 110), (190, 110), (190, 190), (110, 190)]))], 3_600.0),
]:
    _slug = Case(f"tiling: {_id}", "boundaries").slug
    add(Case(f"tiling: {_id}", "boundaries", geojson(lambda g=_geoms: units(g)),
             fields={"slug": _slug, "code_field": "code"}, status=201, check=_gap_check(_m2)))

# ---------------------------------------------------------------------- what the file really is

for _p in SNIFF_BAD:
    _content, _name, _says = _p.values
    add(Case(f"sniff: {_p.id} named {_name}", "boundaries", _write("upload.bin", _content),
             name=_name, fields={"slug": "bi-sniff"}, says=_says, where=_name))

add(Case("sniff: a zipped Shapefile named wards.geojson", "boundaries",
         lambda t: zip_shapefile(t / "upload.bin", write_shapefile(t / "shp")),
         name="wards.geojson", fields=_bf("zip as geojson"), says="ZIP", where="wards.geojson",
         bug=BUG_ZIP_AS_GEOJSON))

for _p in VECTOR_BAD:
    _build, _source, _layer, _says, _where = _p.values
    add(Case(f"vector: {_p.id}", "boundaries", _build, name=_source,
             fields={**_bf(f"vector {_p.id}"), **({"layer": _layer} if _layer else {})},
             says=_says, where=_where,
             limits={"max_bytes": 2048} if _p.id == "too-big" else None,
             status=413 if _p.id == "too-big" else 422))

# ---------------------------------------------------------------------- archives


def _zip_build(b: Callable[[Path], Any]) -> Build:
    def build(t: Path) -> Path:
        b(t / "upload.bin")
        return t / "upload.bin"
    return build


for _p in ZIP_BAD:
    _b, _says, _member = _p.values
    add(Case(f"zip: {_p.id}", "boundaries", _zip_build(_b), name="wards.zip",
             fields={"slug": "bi-zip"}, says=_says,
             where=f"wards.zip: {_member}" if _member else "wards.zip"))


def _with_good_shapefile(extra: list[tuple[zipfile.ZipInfo, bytes]]) -> Build:
    def build(t: Path) -> Path:
        parts = write_shapefile(t / "shp")
        infos = [(zipfile.ZipInfo(p.name), p.read_bytes()) for p in parts.values()]
        return zip_raw(t / "upload.bin", infos + extra)
    return build


add(
    Case("zip: a good shapefile and a ../../x member", "boundaries",
         _with_good_shapefile([(zipfile.ZipInfo("../../x"), b"x")]), name="wards.zip",
         fields={"slug": "bi-zip"}, says="'..' component", where="wards.zip: ../../x"),
    Case("zip: a good shapefile and a symlink to /etc/passwd", "boundaries",
         _with_good_shapefile([(symlink_info("notes.txt"), b"/etc/passwd")]), name="wards.zip",
         fields={"slug": "bi-zip"}, says="symbolic link", where="wards.zip: notes.txt"),
    Case("zip: a good shapefile and a nested extra.zip", "boundaries",
         _with_good_shapefile([(zipfile.ZipInfo("extra.zip"), _nested_zip())]),
         name="wards.zip", fields={"slug": "bi-zip"}, says="itself an archive",
         where="wards.zip: extra.zip"),
    Case("zip: more members than the limit", "boundaries",
         lambda t: zip_files(t / "upload.bin", {f"f{i}.txt": b"x" for i in range(6)}),
         name="wards.zip", fields={"slug": "bi-zip"}, limits={"max_members": 5},
         says="holds 6 members, more than the 5", where="wards.zip"),
    Case("zip: declared sizes over the unpacked limit", "boundaries",
         lambda t: zip_files(t / "upload.bin", {"a.txt": b"a" * 600, "b.txt": b"b" * 600}),
         name="wards.zip", fields={"slug": "bi-zip"}, limits={"max_unpacked_bytes": 1000},
         says="would unpack to 1,200 bytes", where="wards.zip"),
    Case("zip: a member unpacking to more than its header says", "boundaries",
         lambda t: lying_zip(t / "upload.bin", real=b"x" * 5000, declared=100),
         name="wards.zip", fields={"slug": "bi-zip"}, says="'wards.dbf'",
         where="wards.zip: wards.dbf"),
)

# ---------------------------------------------------------------------- size limits

_BIG = "x" * 3000
for _kind, _build, _fields in [
    ("boundaries", geojson(lambda: frame([sq(0)]).assign(note=_BIG)), {"slug": "bi-big"}),
    ("proxy", proxy_csv(*[f"{LSOA_A},{i}" for i in range(400)]),
     {"slug": "bi-big", **PROXY_FIELDS}),
    ("functions", functions_csv(*[f"code {i},09,{_BIG}" for i in range(2)]), {"scheme": "big"}),
    ("spend", lines_csv(*[GOOD_LINE.strip()] * 100), {}),
]:
    add(Case(f"size: {_kind} over the file limit", _kind, _build, fields=_fields,
             limits={"max_bytes": 2048}, says="more than the 2,048 bytes", status=413),
        Case(f"size: {_kind} over the HTTP upload limit", _kind, _build, fields=_fields,
             max_bytes=2048, says="over the upload limit", status=413, bug=BUG_SIZE_WHERE))

# ---------------------------------------------------------------------- attribute encodings

for _id, _kw in [
    ("cp1252 with a .cpg", {"encoding": "cp1252", "name": CP1252_TEXT, "cpg": "1252"}),
    ("cp1252 by the .dbf language driver", {"encoding": "cp1252", "name": CP1252_TEXT,
                                            "cpg": None, "ldid": 0x57}),
    ("UTF-8 Welsh with a .cpg", {}),
    ("UTF-8 Welsh without a .cpg", {"cpg": None}),
    ("ISO-8859-14 Welsh with a .cpg", {"encoding": "ISO-8859-14", "cpg": "ISO-8859-14"}),
]:
    _slug = Case(f"encoding: shapefile {_id}", "boundaries").slug
    add(Case(f"encoding: shapefile {_id}", "boundaries",
             lambda t, kw=_kw: zip_shapefile(t / "wards.zip", write_shapefile(t / "shp", **kw)),
             fields={"slug": _slug, "code_field": "code", "name_field": "name"}, status=201,
             check=stored_names(_slug, _kw.get("name", WELSH))))

add(
    Case("encoding: shapefile ISO-8859-14 Welsh, no .cpg, cp1252 language driver",
         "boundaries", lambda t: zip_shapefile(t / "wards.zip", write_shapefile(
             t / "shp", encoding="ISO-8859-14", cpg=None, ldid=0x57)),
         fields=_bf("welsh ldid"), says="ISO-8859-14",
         bug="a .dbf in ISO-8859-14 whose language driver byte says cp1252 is read as cp1252: "
             "Welsh ŵ (0xF7) is stored as ÷, with no warning"),
)
for _id, _build in [
    ("geojson Welsh (UTF-8)", lambda t: write_geojson(t / "w.geojson")),
    ("geojson Welsh with a BOM", lambda t: _write("w.geojson", b"\xef\xbb\xbf" + json.dumps(
        feature_collection(), ensure_ascii=False).encode())(t)),
    ("gpkg Welsh", gpkg(wards)),
]:
    _slug = Case(f"encoding: {_id}", "boundaries").slug
    add(Case(f"encoding: {_id}", "boundaries", _build,
             fields={"slug": _slug, "code_field": "code", "name_field": "name"}, status=201,
             check=stored_names(_slug)))

# ---------------------------------------------------------------------- amounts

_AMOUNTS_READ = [("£1,234.50", 123450), ("(120.00)", -12000), ("1,234", 123400),
                 ("-£1.01", -101), ("£(1,234)", -123400), ("\u2212120", -12000),
                 ("\u00a01234.5\u00a0", 123450)]
for _n, (_text, _pence) in enumerate(_AMOUNTS_READ):
    add(Case(f"amount read: {_text!r} in a lines file", "spend",
             lines_csv(new_body_line(f"bi_amount_{_n}", f'"{_text}"')), status=201,
             check=pence(_pence)))
add(
    Case("amount read: amount_pence column", "spend",
         lines_csv("bi_amount_p,Body,2014-15,Schools,123450,09," + f"{BOROUGHS},{HACKNEY}",
                   header=LINES_HEADER.replace(",amount,", ",amount_pence,")),
         status=201, check=pence(123450)),
    Case("amount read: --unit thousands", "spend",
         lines_csv(new_body_line("bi_amount_k", "1.5")), fields={"unit": "thousands"},
         status=201, check=pence(150000)),
    Case("amount read: RS '£1,234.50' thousand", "spend",
         rs_csv(*rs_rows("BI Amount RS A", '"£1,234.50"')), fields=RS_FIELDS, status=201,
         check=pence(123450000)),
    Case("amount read: RS (120.00) thousand", "spend",
         rs_csv(*rs_rows("BI Amount RS B", "(120.00)")), fields=RS_FIELDS, status=201,
         check=pence(-12000000)),
    Case("amount read: JSON number 1234.50", "spend",
         json_lines(json_record("1234.50").replace('"hackney"', '"bi_amount_json"')
                    .replace('"body"', '"body_name": "BI JSON", "body"')),
         status=201, check=pence(123450)),
)

_AMOUNTS_BAD = [("1.2e3", "scientific notation"), ("NaN", "not a finite number"),
                ("Infinity", "not a finite number"), ("-inf", "not a finite number"),
                ("", "blank"), ("1" * 20, "more than £1 trillion"), ("$12", "dollars"),
                ("€12", "euros"), ("1.234", "not a whole number of pence"),
                ("1,23,4", "thousands separators"), ("n/a", "not a number"),
                ("#VALUE!", "not a finite number"), ("1 234", "spaces inside"),
                ("12£", "£ sign in the wrong place"), ("1000000000000.01", "£1 trillion")]
for _text, _says in _AMOUNTS_BAD:
    add(Case(f"amount refused: {_text!r} in a lines file", "spend",
             lines_csv(GOOD_LINE.strip(), f'hackney,,2014-15,Roads,"{_text}",04,'
                                          f"{BOROUGHS},{HACKNEY}"),
             says=_says, rows=frozenset({3})))
for _text, _says in _AMOUNTS_BAD[:7]:
    add(Case(f"amount refused: {_text!r} in an RS file", "spend",
             rs_csv(*rs_rows("BI Bad RS", f'"{_text}"', total="100")), fields=RS_FIELDS,
             says=_says, rows=frozenset({2})))
for _text, _says in [("1.2e3", "scientific notation"), ("NaN", "not a finite number"),
                     ("Infinity", "not a finite number"), ("null", "blank"),
                     ("true", "not a number")]:
    add(Case(f"amount refused: JSON {_text}", "spend",
             json_lines(json_record(), json_record(_text)), says=_says, rows=frozenset({2})))

# ---------------------------------------------------------------------- pence in a pounds column

add(
    Case("pence as pounds: Camden 2015-16, 100 times 2014-15", "spend",
         lines_csv("camden,,2015-16,Schools,50000000000,09,,"), says="pence typed into a pounds",
         where="camden 2015-16"),
    Case("pence as pounds: in thousands, Camden 2015-16", "spend",
         lines_csv("camden,,2015-16,Schools,50000000,09,,"), fields={"unit": "thousands"},
         says="pence typed into a pounds", where="camden 2015-16"),
    Case("pence as pounds: spread over two lines, Camden 2015-16", "spend",
         lines_csv("camden,,2015-16,Schools,25000000000,09,,",
                   "camden,,2015-16,Roads,25000000000,04,,"),
         says="pence typed into a pounds", where="camden 2015-16"),
    Case("pence as pounds: read with --unit pence", "spend",
         lines_csv("islington,,2015-16,Schools,50000000000,09,,"), fields={"unit": "pence"},
         status=201, check=pence(50_000_000_000)),
    Case("pence as pounds: read with --allow-jump", "spend",
         lines_csv("lambeth,,2015-16,Schools,50000000000,09,,"), fields={"allow_jump": "true"},
         status=201, check=pence(5_000_000_000_000)),
    Case("pence as pounds: RS £ thousand column holding pounds", "spend",
         rs_csv(*rs_rows("Hackney", "500000000", year="2015-16")), fields=RS_FIELDS,
         says="pence typed into a pounds", bug=BUG_RS_JUMP),
)

# ---------------------------------------------------------------------- financial years

for _n, (_text, _year) in enumerate([("2014/15", "2014-15"), ("2014-2015", "2014-15"),
                                     ("FY2014-15", "2014-15"), ("2014\u201315", "2014-15")]):
    add(Case(f"year read: {_text!r} in a lines file", "spend",
             lines_csv(new_body_line(f"bi_year_{_n}", year=_text)), status=201,
             check=year_is(_year)))
add(Case("year read: '2014/15' in an RS file", "spend",
         rs_csv(*rs_rows("BI Year RS", "10", year="2014/15")), fields=RS_FIELDS, status=201,
         check=year_is("2014-15")))
for _text, _says in [("14-15", "two-digit year"), ("2015-14", "does not end the year after"),
                     ("2014", "single year"), ("2014-16", "does not end the year after"),
                     ("1989-90", "outside"), ("", "blank"), ("2014-15-16", "more than two"),
                     ("twenty fourteen", "not a year range")]:
    add(Case(f"year refused: {_text!r} in a lines file", "spend",
             lines_csv(GOOD_LINE.strip(), f"hackney,,{_text},Roads,5,04,{BOROUGHS},{HACKNEY}"),
             says=_says, rows=frozenset({3})))
for _text, _says in [("14-15", "two-digit year"), ("2015-14", "does not end the year after")]:
    add(Case(f"year refused: {_text!r} in an RS file", "spend",
             rs_csv(*rs_rows("BI Year Bad", "10", year=_text)), fields=RS_FIELDS, says=_says,
             rows=frozenset({2, 3})))
add(Case("year refused: '14-15' in a JSON file", "spend",
         json_lines(json_record(), json_record(year='"14-15"')), says="two-digit year",
         rows=frozenset({2})))

# ---------------------------------------------------------------------- function codes

for _text, _says in [("11", "not one of 01 to 10"), ("00", "not one of 01 to 10"),
                     ("09.9", "does not exist"), ("abc", "not a COFOG code"),
                     ("", "no function")]:
    add(Case(f"function refused: COFOG {_text!r}", "spend",
             lines_csv(GOOD_LINE.strip(), f"hackney,,2014-15,Roads,5,{_text},"
                                          f"{BOROUGHS},{HACKNEY}"),
             says=_says, rows=frozenset({3})))
add(
    Case("function refused: an rs code that is not mapped", "spend",
         lines_csv("hackney,2014-15,5,Space programme,rs",
                   header="body,financial_year,amount,function,scheme\n"),
         says="not mapped", rows=frozenset({2})),
    Case("function refused: a scheme with no map loaded", "spend",
         lines_csv("hackney,2014-15,5,E123,cipfa",
                   header="body,financial_year,amount,function,scheme\n"),
         says="no function map 'cipfa'", rows=frozenset({2})),
    Case("function refused: an RS line that is not mapped", "spend",
         rs_csv(*rs_rows("BI Func RS", "10", line="Space programme")), fields=RS_FIELDS,
         says="not mapped to a COFOG function", rows=frozenset({2})),
    Case("function refused: JSON COFOG 11", "spend",
         json_lines(json_record(), json_record(function='"11"')), says="not one of 01 to 10",
         rows=frozenset({2})),
    Case("function read: rs code in a lines file", "spend",
         lines_csv("bi_func_rs,Body,2014-15,5,Education services,rs,"
                   f"{BOROUGHS},{HACKNEY}",
                   header="body,body_name,financial_year,amount,function,scheme,area_set,"
                          "area_code\n"),
         status=201, check=pence(500)),
)

# ---------------------------------------------------------------------- area codes

add(
    Case("area refused: a code not in its set", "spend",
         lines_csv(GOOD_LINE.strip(), f"hackney,,2014-15,Roads,5,04,{BOROUGHS},E09999999"),
         says="no area E09999999 in london-boroughs-2014", rows=frozenset({3})),
    Case("area refused: a ward code in the borough set", "spend",
         lines_csv(GOOD_LINE.strip(), f"hackney,,2014-15,Roads,5,04,{BOROUGHS},E05000239"),
         says="no area E05000239", rows=frozenset({3})),
    Case("area refused: a set that is not loaded", "spend",
         lines_csv(GOOD_LINE.strip(), f"hackney,,2014-15,Roads,5,04,no-such-set,{HACKNEY}"),
         says="no boundary set of that name", rows=frozenset({3})),
    Case("area refused: a code with no set", "spend",
         lines_csv(GOOD_LINE.strip(), f"hackney,,2014-15,Roads,5,04,,{HACKNEY}"),
         says="needs its boundary set", rows=frozenset({3})),
    Case("area refused: --area-set given, code not in it", "spend",
         lines_csv("hackney,2014-15,5,04,E09999999",
                   header="body,financial_year,amount,function,area_code\n"),
         fields={"area_sets": [BOROUGHS]}, says="no area E09999999", rows=frozenset({2})),
    Case("area refused: RS ons_code not in the set", "spend",
         rs_csv(*rs_rows("BI Area RS", "10", ons="E09999999")), fields=RS_FIELDS,
         says="no area E09999999", rows=frozenset({2})),
    Case("area refused: RS with no ons_code and no --body-area", "spend",
         rs_csv(*rs_rows("BI Area RS2", "10", ons="")), fields=RS_FIELDS,
         says="--area-set", rows=frozenset({2})),
    Case("area refused: JSON code not in its set", "spend",
         json_lines(json_record(), json_record().replace(HACKNEY, "E09999999")),
         says="no area E09999999", rows=frozenset({2})),
)

# ---------------------------------------------------------------------- other spend rows

add(
    Case("spend: a header and no lines", "spend", lines_csv(), says="no spend lines",
         where="file"),
    Case("spend: an unknown body and no body_name", "spend",
         lines_csv(GOOD_LINE.strip(), f"nobody_here,,2014-15,Roads,5,04,{BOROUGHS},{HACKNEY}"),
         says="no such body", rows=frozenset({3})),
    Case("spend: a new body whose slug has a hyphen", "spend",
         lines_csv(new_body_line("bi-hyphen")), says="body", rows=frozenset({2}),
         bug=BUG_BODY_SLUG),
    Case("spend: a line at a postcode no loaded file has", "spend",
         lines_csv("hackney,2014-15,5,04,E8 1DY", header="body,financial_year,amount,function,"
                   "postcode\n"), says="postcode", rows=frozenset({2})),
    Case("spend: easting/northing that are not numbers", "spend",
         lines_csv("hackney,2014-15,5,04,east,north", header="body,financial_year,amount,"
                   "function,easting,northing\n"), says="not a number", rows=frozenset({2})),
    Case("spend: easting/northing NaN", "spend",
         lines_csv("bexley,2014-15,5,04,NaN,NaN", header="body,financial_year,amount,"
                   "function,easting,northing\n"),
         says="easting", rows=frozenset({2}), bug=BUG_NAN_POINT),
    Case("spend: two locations on one row", "spend",
         lines_csv(f"hackney,2014-15,5,04,{BOROUGHS},{HACKNEY},E8 1DY",
                   header="body,financial_year,amount,function,area_set,area_code,postcode\n"),
         says="more than one location", rows=frozenset({2})),
    Case("spend: kind is neither expenditure nor income", "spend",
         lines_csv("hackney,2014-15,5,04,refund", header="body,financial_year,amount,function,"
                   "kind\n"), says="expenditure or income", rows=frozenset({2})),
    Case("spend: a row with too many fields", "spend",
         lines_csv(GOOD_LINE.strip(), GOOD_LINE.strip() + ",extra"), says="fields",
         rows=frozenset({3})),
    Case("spend: RS with only its TOTAL row", "spend",
         rs_csv(f"2014-15,E5099,{HACKNEY},BI Total Only,{RS_TOTAL},100"), fields=RS_FIELDS,
         says="no service lines", bug=BUG_EMPTY_RS),
    Case("spend: RS with only lines below the total", "spend",
         rs_csv(f"2014-15,E5099,{HACKNEY},BI Below Only,Parish precepts,100"),
         fields=RS_FIELDS, says="no service lines", bug=BUG_EMPTY_RS),
    Case("spend: RS lines that miss the stated total", "spend",
         rs_csv(*rs_rows("BI Mismatch", "100", total="200")), fields=RS_FIELDS,
         says="add up to", rows=frozenset({3})),
    Case("spend: RS with no TOTAL row", "spend",
         rs_csv(rs_rows("BI No Total", "100")[0]), fields=RS_FIELDS,
         says="no TOTAL SERVICE EXPENDITURE row", where="file"),
    Case("spend: RS the same line twice", "spend",
         rs_csv(*rs_rows("BI Twice", "100"), rs_rows("BI Twice", "100")[0]), fields=RS_FIELDS,
         says="has this line twice", rows=frozenset({4})),
    Case("spend: RS with no authority", "spend",
         rs_csv(*rs_rows("", "100")), fields=RS_FIELDS, says="not named",
         rows=frozenset({2, 3})),
    Case("spend: an HTML page named spend.csv", "spend",
         _write("upload.bin", "<!DOCTYPE html>\n<html><body>Sign in</body></html>\n"),
         name="spend.csv", says="spend.csv"),
    Case("spend: a ZIP named spend.csv", "spend",
         lambda t: zip_files(t / "upload.bin", {"spend.csv": GOOD_LINE.encode()}),
         name="spend.csv", says="spend.csv"),
    Case("spend: CSV sent as spend.json", "spend", _write("upload.bin", LINES_HEADER + GOOD_LINE),
         name="spend.json", says="not valid JSON", where="spend.json, line 1"),
)

# ---------------------------------------------------------------------- table encodings

add(
    Case("encoding: spend cp1252 £ without --encoding", "spend",
         lines_csv(new_body_line("bi_enc_a", line=CP1252_TEXT), encoding="cp1252"),
         says="cp1252", where="spend.csv, line 2"),
    Case("encoding: spend cp1252 £ with --encoding cp1252", "spend",
         lines_csv(new_body_line("bi_enc_b", line=CP1252_TEXT), encoding="cp1252"),
         fields={"encoding": "cp1252"}, status=201, check=line_text(CP1252_TEXT)),
    Case("encoding: spend UTF-8 Welsh", "spend",
         lines_csv(new_body_line("bi_enc_c", line=WELSH)), status=201, check=line_text(WELSH)),
    Case("encoding: spend ISO-8859-14 Welsh with --encoding", "spend",
         lines_csv(new_body_line("bi_enc_d", line=WELSH), encoding="iso8859-14"),
         fields={"encoding": "iso8859-14"}, status=201, check=line_text(WELSH)),
    Case("encoding: spend ISO-8859-14 Welsh without --encoding", "spend",
         lines_csv(new_body_line("bi_enc_e", line=WELSH), encoding="iso8859-14"),
         says="encoding", where="spend.csv, line 2"),
    Case("encoding: spend with an encoding Placespend does not read", "spend",
         lines_csv(GOOD_LINE.strip()), fields={"encoding": "cp500"}, says="cp500",
         where="spend.csv"),
    Case("encoding: spend declared cp1252 with a byte cp1252 lacks", "spend",
         _write("spend.csv", LINES_HEADER.encode() + b"hackney,,2014-15,Sch\x81ools,1,09,"
                + f"{BOROUGHS},{HACKNEY}\n".encode()),
         fields={"encoding": "cp1252"}, says="Windows-1252", where="spend.csv, line 2"),
    Case("encoding: RS cp1252 £ without --encoding", "spend",
         rs_csv(*rs_rows("BI Bryn-â", "10"), encoding="cp1252"), fields=RS_FIELDS,
         says="cp1252", where="rs.csv, line 2"),
    Case("encoding: JSON spend in cp1252", "spend",
         _write("spend.json", ("[" + json_record().replace(
             '"09"', f'"09", "line": "{CP1252_TEXT}"') + "]").encode("cp1252")),
         says="UTF-8", where="spend.json, line 1"),
    Case("encoding: proxy cp1252 without --encoding", "proxy",
         proxy_csv(f"{LSOA_A},1,{CP1252_TEXT}", header="code,residents,name\n",
                   encoding="cp1252"), fields={"slug": "bi-enc-proxy", **PROXY_FIELDS},
         says="cp1252", where="residents.csv, line 2"),
    Case("encoding: proxy cp1252 with --encoding cp1252", "proxy",
         proxy_csv(f"{LSOA_A},1,{CP1252_TEXT}", header="code,residents,name\n",
                   encoding="cp1252"),
         fields={"slug": "bi-enc-proxy-ok", **PROXY_FIELDS, "encoding": "cp1252"}, status=201,
         check=lambda answer, db: units_stored(answer, 1)),
    Case("encoding: function map cp1252 without --encoding", "functions",
         functions_csv(f"bi enc,09,costs in {CP1252_TEXT}", encoding="cp1252"),
         fields={"scheme": "bienc"}, says="cp1252", where="map.csv, line 2"),
    Case("encoding: function map cp1252 with --encoding cp1252", "functions",
         functions_csv(f"bi enc,09,costs in {CP1252_TEXT}", encoding="cp1252"),
         fields={"scheme": "bienc2", "encoding": "cp1252"}, status=201,
         check=lambda answer, db: added(answer, 1)),
)

# ---------------------------------------------------------------------- proxies

for _id, _rows, _says, _bad_rows in [
    ("a blank code", [f"{LSOA_A},1", ",2"], "no unit code", {3}),
    ("a duplicate code", [f"{LSOA_A},1", f"{LSOA_A},2"], "appears twice", {3}),
    ("a code not in its set", [f"{LSOA_A},1", "E01999999,2"], "no unit E01999999", {3}),
    ("a negative value", [f"{LSOA_A},1", f"{LSOA_B},-2"], "zero or more", {3}),
    ("a NaN value", [f"{LSOA_A},1", f"{LSOA_B},NaN"], "zero or more", {3}),
    ("an Infinity value", [f"{LSOA_A},1", f"{LSOA_B},Infinity"], "zero or more", {3}),
    ("a value with a thousands separator", [f"{LSOA_A},1", f'{LSOA_B},"1,234"'],
     "zero or more", {3}),
    ("a blank value", [f"{LSOA_A},1", f"{LSOA_B},"], "zero or more", {3}),
    ("a value in scientific notation", [f"{LSOA_A},1", f"{LSOA_B},1e3"], "zero or more", {3}),
    ("a ward code in an LSOA set", [f"{LSOA_A},1", "E05000239,2"], "no unit E05000239", {3}),
]:
    add(Case(f"proxy: {_id}", "proxy", proxy_csv(*_rows), fields={"slug": "bi-proxy",
                                                                  **PROXY_FIELDS},
             says=_says, rows=frozenset(_bad_rows)))
add(
    Case("proxy: a header and no rows", "proxy", proxy_csv(),
         fields={"slug": "bi-proxy", **PROXY_FIELDS}, says="no data rows", where="file"),
    Case("proxy: no such value column", "proxy", proxy_csv(f"{LSOA_A},1"),
         fields={"slug": "bi-proxy", **PROXY_FIELDS, "value_field": "households"},
         says="no column 'households'", where="residents.csv, line 1"),
    Case("proxy: a unit set that is not loaded", "proxy", proxy_csv(f"{LSOA_A},1"),
         fields={"slug": "bi-proxy", **PROXY_FIELDS, "unit_set": "no-such-set"}, status=404,
         says="no-such-set"),
)

# ---------------------------------------------------------------------- function maps

for _id, _rows, _says, _bad_rows in [
    ("a blank code", ["a,09,why", ",09,why"], "no code", {3}),
    ("a duplicate code", ["a,09,why", "a,10,why"], "already on row 2", {3}),
    ("COFOG 11", ["a,09,why", "b,11,why"], "not one of 01 to 10", {3}),
    ("COFOG abc", ["a,09,why", "b,abc,why"], "not a COFOG code", {3}),
    ("COFOG group 09.9", ["a,09,why", "b,09.9,why"], "does not exist", {3}),
    ("no rationale", ["a,09,why", "b,10,"], "no rationale", {3}),
]:
    add(Case(f"functions: {_id}", "functions", functions_csv(*_rows),
             fields={"scheme": "bifn"}, says=_says, rows=frozenset(_bad_rows)))
add(
    Case("functions: remapping an RS line already mapped", "functions",
         functions_csv("Education services,01,moved"), fields={"scheme": "rs"},
         says="already mapped to 09", rows=frozenset({2})),
    Case("functions: a header and no rows", "functions", functions_csv(),
         fields={"scheme": "biempty"}, says="no", where="file", bug=BUG_EMPTY_FUNCTIONS),
    Case("functions: no rationale column", "functions",
         _write("map.csv", "source_code,cofog\na,09\n"), fields={"scheme": "bifn"},
         says="no column 'rationale'", where="map.csv, line 1"),
)

# ---------------------------------------------------------------------- options, kinds

add(
    Case("options: a slug with spaces", "boundaries", geojson(lambda: frame([sq(0)])),
         fields={"slug": "Bad Slug"}, status=400, says="slug", where="slug"),
    Case("options: a proxy year of 1800", "proxy", proxy_csv(f"{LSOA_A},1"),
         fields={"slug": "bi-proxy", **PROXY_FIELDS, "year": "1800"}, status=400,
         says="year", where="year"),
    Case("options: spend unit guineas", "spend", lines_csv(GOOD_LINE.strip()),
         fields={"unit": "guineas"}, status=400, says="unit", where="unit"),
    Case("options: body_areas without =", "spend", lines_csv(GOOD_LINE.strip()),
         fields={"body_areas": "E5100"}, status=400, says="body_areas"),
    Case("options: an unknown option", "spend", lines_csv(GOOD_LINE.strip()),
         fields={"colour": "red"}, status=400, says="colour"),
    Case("kinds: an upload kind that does not exist", "planets",
         _write("planets.csv", "name\nmars\n"), status=404, says="no upload kind 'planets'"),
)

# ---------------------------------------------------------------------- corrections, concurrency


def _created(r: Any, status: int = 201) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def _twice(kind: str, build: Build, fields: dict[str, Any]) -> Callable[[Any, Path], None]:
    """Flow: the same file twice; the second answer is 200, created false, nothing stored."""
    def flow(db: Any, t: Path) -> None:
        path = build(t)
        first = _created(db.post(kind, path, fields=fields))
        assert first["created"] is True
        before = db.counts()
        again = _created(db.post(kind, path, fields=fields), 200)
        assert again["created"] is False and again["batch"] == first["batch"]
        assert "nothing new was stored" in again["summary"]
        assert db.counts() == before
    return flow


def _folder(t: Path, name: str) -> Path:
    (t / name).mkdir()
    return t / name


def _corrected_twice(db: Any, t: Path) -> None:
    original = lines_csv(new_body_line("bi_corr", "100.00"),
                         new_body_line("bi_corr", "50.00", line="Roads", function="04"),
                         name="hackney-2014-15.csv")(_folder(t, "a"))
    corrected = lines_csv(new_body_line("bi_corr", "100.00"),
                          new_body_line("bi_corr", "70.00", line="Roads", function="04"),
                          name="hackney-2014-15.csv")(_folder(t, "b"))
    first = _created(db.post("spend", original))
    second = _created(db.post("spend", corrected))
    [scope] = second["scopes"]
    assert scope["supersedes_batch"] == first["batch"]
    assert (scope["previous_total_pence"], scope["total_pence"]) == (15_000, 17_000)
    before = db.counts()
    third = _created(db.post("spend", corrected), 200)
    assert third["created"] is False and third["batch"] == second["batch"]
    assert db.counts() == before


def _same_lines_other_bytes(db: Any, t: Path) -> None:
    rows = [new_body_line("bi_crlf", "100.00"),
            new_body_line("bi_crlf", "50.00", line="Roads", function="04")]
    first = _created(db.post("spend", lines_csv(*rows, name="spend.csv")(t)))
    crlf = t / "spend-crlf.csv"
    crlf.write_bytes((LINES_HEADER + rows[1] + "\n" + rows[0] + "\n").replace("\n", "\r\n")
                     .encode())
    before = db.counts()
    again = _created(db.post("spend", crlf), 200)
    assert again["created"] is False and again["batch"] == first["batch"]
    assert "holds the same lines" in again["summary"]
    assert db.counts() == before


def _at_once(kind: str, build: Build, fields: dict[str, Any]) -> Callable[[Any, Path], None]:
    """Flow: the same file uploaded twice at the same moment makes one batch."""
    def flow(db: Any, t: Path) -> None:
        import threading

        path = build(t)
        before = db.counts()
        start = threading.Barrier(2)
        answers: list[Any] = [None, None]

        def send(i: int) -> None:
            start.wait()
            answers[i] = db.post(kind, path, fields=fields)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
        made, found = sorted((a.json() for a in answers), key=lambda b: not b["created"])
        assert made["created"] is True and found["created"] is False
        assert made["batch"] == found["batch"]
        after = db.counts()
        assert after["upload_batch"] == before["upload_batch"] + 1
        rows = db.rows("SELECT count(*) AS n FROM upload_batch WHERE sha256 ="
                       " (SELECT sha256 FROM upload_batch WHERE id = %s)", (made["batch"],))
        assert rows[0]["n"] == 1
    return flow


add(
    Case("corrections: spend corrected, then the corrected file again", "spend",
         flow=_corrected_twice),
    Case("corrections: the same spend lines in other bytes (CRLF, reordered)", "spend",
         flow=_same_lines_other_bytes),
    Case("corrections: a boundary file twice", "boundaries",
         flow=_twice("boundaries", geojson(lambda: units([cell(0, 0), cell(1, 0)])),
                     {"slug": "bi-twice", "code_field": "code"})),
    Case("corrections: a proxy twice", "proxy",
         flow=_twice("proxy", proxy_csv(f"{LSOA_A},1", f"{LSOA_B},2"),
                     {"slug": "bi-proxy-twice", **PROXY_FIELDS})),
    Case("corrections: a function map twice", "functions",
         flow=_twice("functions", functions_csv("bi twice,09,why"), {"scheme": "bitwice"})),
    Case("concurrency: one boundary file, two uploads at once", "boundaries",
         flow=_at_once("boundaries", geojson(lambda: units([cell(5, 5), cell(6, 5)])),
                       {"slug": "bi-at-once", "code_field": "code"})),
    Case("concurrency: one spend file, two uploads at once", "spend",
         flow=_at_once("spend", lines_csv(new_body_line("bi_at_once")), {})),
)
