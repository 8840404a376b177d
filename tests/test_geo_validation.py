"""Boundary validation: every problem in an upload reported at once; tiling (overlaps, gaps)."""

from __future__ import annotations

from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.affinity import translate
from shapely.geometry import (
    GeometryCollection,
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
    box,
)

from domain.errors import InputError, Rejected
from geo.prepare import REPAIR_COLUMNS, prepare_boundaries, to_bng
from geo.tiling import check_tiling

X0, Y0 = 533_000.0, 184_000.0  # Hackney, in British National Grid metres


def sq(i: int, size: float = 100.0) -> Polygon:
    """A ``size`` m square, the i-th along a row of squares 1 km apart."""
    return box(X0 + 1000 * i, Y0, X0 + 1000 * i + size, Y0 + size)


def at(coords: list[tuple[float, float]], i: int = 0) -> list[tuple[float, float]]:
    return [(X0 + 1000 * i + x, Y0 + y) for x, y in coords]


def code(n: int) -> str:
    return f"E0500{n:04d}"


def frame(geoms: list, crs: object = 27700, codes: list | None = None,
          **columns: list) -> gpd.GeoDataFrame:
    codes = [code(n + 1) for n in range(len(geoms))] if codes is None else codes
    data = {"code": codes, "name": [f"Ward {n + 1}" for n in range(len(geoms))], **columns}
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=crs)


def prepare(f: gpd.GeoDataFrame, **kw: str):
    kw = {"code_field": "code", "name_field": "name", **kw}
    return prepare_boundaries(f, source="wards.geojson", **kw)


def with_bad(bad: object, at_feature: int = 3, n: int = 4) -> gpd.GeoDataFrame:
    """``n`` good squares with ``bad`` as feature ``at_feature`` (1-based)."""
    geoms = [sq(i) for i in range(n)]
    geoms[at_feature - 1] = bad
    return frame(geoms)


# ------------------------------------------------------------------ geometry, refused

BOW_TIE = Polygon(at([(0, 0), (100, 100), (100, 0), (0, 100)], 2))
# Two lobes of 1,800 and 800 m² drawn in opposite directions: shoelace 1,000, repaired 2,600.
FIGURE_8 = Polygon(at([(0, 0), (100, 60), (100, 0), (0, 40)], 2))
OVERLAPPING_PARTS = MultiPolygon([sq(2), translate(sq(2), 50)])  # 20,000 m² drawn, 15,000 real

GEOMETRY_CASES = [
    # id, geometry at feature 3, text in the reason, value
    ("bow-tie", BOW_TIE, "encloses 0.0 m², repaired 5,000.0 m², an infinite change",
     "Self-intersection"),
    ("figure-8 crossing", FIGURE_8, "encloses 1,000.0 m², repaired 2,600.0 m², a 160 % change",
     "Self-intersection"),
    ("overlapping parts", OVERLAPPING_PARTS, "encloses 20,000.0 m², repaired 15,000.0 m², a 25 %",
     "Self-intersection"),
    ("empty polygon", Polygon(), "geometry is empty", "Polygon"),
    ("empty collection", GeometryCollection(), "geometry is empty", "GeometryCollection"),
    ("null", None, "has no geometry (null)", "null"),
    ("zero area", Polygon(at([(0, 0), (50, 0), (100, 0)], 2)), "has no area", "Polygon"),
    ("point", Point(X0 + 2050, Y0 + 50), "is a point, not an area", "Point"),
    ("multipoint", MultiPoint([(X0, Y0), (X0 + 1, Y0)]), "is a point, not an area", "MultiPoint"),
    ("line", LineString(at([(0, 0), (100, 100)], 2)), "is a line, not an area", "LineString"),
    ("closed line", LineString(at([(0, 0), (100, 0), (100, 100), (0, 0)], 2)),
     "is a line, not an area", "LineString"),
    ("multiline", MultiLineString([at([(0, 0), (1, 1)], 2), at([(5, 5), (6, 6)], 2)]),
     "is a line, not an area", "MultiLineString"),
    ("collection", GeometryCollection([sq(2), LineString(at([(0, 0), (200, 0)], 2))]),
     "GeometryCollection, which is refused", "GeometryCollection"),
    ("collection of polygons only", GeometryCollection([sq(2)]),
     "GeometryCollection, which is refused", "GeometryCollection"),
]


@pytest.mark.parametrize(("geom", "reason", "value"), [c[1:] for c in GEOMETRY_CASES],
                         ids=[c[0] for c in GEOMETRY_CASES])
def test_bad_geometry_is_refused_naming_the_feature(geom, reason, value) -> None:
    with pytest.raises(Rejected) as err:
        prepare(with_bad(geom))
    [p] = err.value.problems
    assert (p.feature, p.where, p.field) == (3, f"feature 3 ({code(3)})", "geometry")
    assert reason in p.reason
    assert value in p.value
    assert p.fix
    assert err.value.total == 1 and isinstance(err.value, InputError)


def test_fixes_say_how_to_redraw_and_what_to_keep() -> None:
    with pytest.raises(Rejected) as err:
        prepare(frame([BOW_TIE, GeometryCollection([sq(1), Point(X0, Y0)]), sq(3)]))
    bow, coll = err.value.problems
    assert "redraw the boundary" in bow.fix and "one direction" in bow.fix
    assert coll.fix.startswith("keep only the polygon parts")


# ------------------------------------------------------------------ geometry, repaired

REPAIR_CASES = [
    # id, geometry, area before, area after
    # A 0.5 m² loop twisted at a corner of a 10,000 m² square: shoelace 9,999.5, repaired 10,000.5
    ("small twisted loop", Polygon(at([(0, 0), (100, 0), (100, 101), (101, 100), (0, 100)], 2)),
     9_999.5, 10_000.5),
    # Two triangles drawn in the same direction, touching at a vertex: nothing to lose.
    ("figure-8 touching at a vertex",
     Polygon(at([(0, 0), (50, 50), (100, 0), (100, 100), (50, 50), (0, 100), (0, 0)], 2)),
     5_000.0, 5_000.0),
    # Parts overlapping by 5 m² of 20,000: 0.025 % < 0.1 %.
    ("parts overlapping by a sliver", MultiPolygon([sq(2), translate(sq(2), 99.95)]),
     20_000.0, 19_995.0),
    # A spike out and back along the same line: collapsed, dropped, area unchanged.
    ("zero-width spike", Polygon(at([(0, 0), (100, 0), (100, 50), (150, 50), (100, 50),
                                     (100, 100), (0, 100)], 2)), 10_000.0, 10_000.0),
]


@pytest.mark.parametrize(("geom", "before", "after"), [c[1:] for c in REPAIR_CASES],
                         ids=[c[0] for c in REPAIR_CASES])
def test_small_self_intersection_is_repaired_and_its_area_change_reported(
    geom, before, after
) -> None:
    assert not geom.is_valid
    done = prepare(with_bad(geom))
    assert done.repaired == (code(3),)
    assert list(done.repairs.columns) == list(REPAIR_COLUMNS)
    [r] = done.repairs.itertuples(index=False)
    assert (r.code, r.feature) == (code(3), 3)
    assert (r.area_before_m2, r.area_after_m2) == pytest.approx((before, after), abs=1e-5)
    assert r.area_changed_m2 == pytest.approx(after - before, abs=1e-5)
    assert "intersection" in r.reason.lower()
    geoms = done.frame.geometry.to_numpy()
    assert shapely.is_valid(geoms).all() and set(shapely.get_type_id(geoms)) == {6}
    assert geoms[2].area == pytest.approx(after)


def test_a_valid_set_has_an_empty_repairs_table() -> None:
    done = prepare(frame([sq(i) for i in range(3)]))
    assert done.repaired == () and done.repairs.empty
    assert list(done.repairs.columns) == list(REPAIR_COLUMNS)


# ------------------------------------------------------------------ codes and fields

CODE_CASES = [
    # id, codes of 4 features, {feature: text in the reason}
    ("duplicate pair", ["A", "B", "A", "D"], {3: "code A is used by features 1 and 3"}),
    ("duplicate three times", ["A", "A", "C", "A"],
     {2: "features 1, 2 and 4", 4: "features 1, 2 and 4"}),
    ("two duplicate pairs", ["A", "B", "A", "B"], {3: "features 1 and 3", 4: "features 2 and 4"}),
    ("empty code", ["A", "", "C", "D"], {2: "has no code"}),
    ("null code", ["A", "B", None, "D"], {3: "has no code"}),
    ("whitespace-only code", ["A", "   ", "C", "D"], {2: "has no code"}),
    ("tab and newline code", ["A", "B", "C", "\t\n"], {4: "has no code"}),
    ("same code but for spaces", ["A", " A ", "C", "D"], {2: "code A is used by features 1 and 2"}),
    ("blank codes are not duplicates of each other", ["", "B", " ", "D"],
     {1: "has no code", 3: "has no code"}),
]


@pytest.mark.parametrize(("codes", "expected"), [c[1:] for c in CODE_CASES],
                         ids=[c[0] for c in CODE_CASES])
def test_blank_and_duplicate_codes_name_every_feature(codes, expected) -> None:
    with pytest.raises(Rejected) as err:
        prepare(frame([sq(i) for i in range(4)], codes=codes))
    got = {p.feature: p for p in err.value.problems}
    assert sorted(got) == sorted(expected) and len(err.value.problems) == len(expected)
    for n, text in expected.items():
        assert text in got[n].reason and got[n].field == "code"
        stripped = (codes[n - 1] or "").strip()
        assert got[n].where == (f"feature {n} ({stripped})" if stripped else f"feature {n}")


@pytest.mark.parametrize(("kw", "field"), [
    ({"code_field": "GSS_Code"}, "GSS_Code"),
    ({"name_field": "WD13NM"}, "WD13NM"),
    ({"parent_field": "LAD13CD"}, "LAD13CD"),
], ids=["code field", "name field", "parent field"])
def test_missing_field_is_a_file_problem_listing_the_fields(kw, field) -> None:
    with pytest.raises(Rejected) as err:
        prepare(frame([sq(0), sq(1)]), **kw)
    [p] = err.value.problems
    assert (p.where, p.field, p.feature) == ("file", field, None)
    assert f"no field {field!r}" in p.reason and "(fields: code, name, geometry)" in p.reason


def test_missing_code_field_still_reports_the_geometry_problems() -> None:
    with pytest.raises(Rejected) as err:
        prepare(with_bad(None, at_feature=2), code_field="GSS_Code")
    assert [(p.where, p.feature) for p in err.value.problems] == [("file", None),
                                                                  ("feature 2", 2)]


# ------------------------------------------------------------------ CRS

LONLAT = box(-0.08, 51.54, -0.07, 51.55)  # Hackney
LATLON = box(51.54, -0.08, 51.55, -0.07)

CRS_CASES = [
    # id, geometry, declared CRS, text in the cause, text in the fix
    ("lat/lon swapped, labelled 4326", LATLON, 4326, "latitude and longitude swapped",
     "swap the coordinates: GeoJSON is longitude, latitude"),
    ("lat/lon swapped, labelled CRS84", LATLON, "OGC:CRS84", "swapped",
     "swap the coordinates: GeoJSON is longitude, latitude"),
    ("lat/lon swapped, labelled 27700", LATLON, 27700, "latitude, longitude degrees",
     "EPSG:4326 and swap the coordinates"),
    ("BNG labelled 4326", sq(0), 4326, "look like British National Grid metres", "EPSG:27700"),
    ("4326 labelled 27700", LONLAT, 27700, "look like lon/lat degrees", "EPSG:4326"),
    ("4326 labelled Web Mercator", LONLAT, 3857, "look like lon/lat degrees", "EPSG:4326"),
    ("no CRS", sq(0), None, "no coordinate reference system", "EPSG:27700 or EPSG:4326"),
    ("engineering CRS (unknown)", sq(0), 'LOCAL_CS["unknown",UNIT["metre",1]]',
     "neither lon/lat degrees nor a map projection", "EPSG:27700"),
    ("geocentric CRS", sq(0), 4978, "neither lon/lat degrees nor a map projection",
     "EPSG:4326"),
    ("vertical CRS", sq(0), 5701, "neither lon/lat degrees nor a map projection", "EPSG:27700"),
    ("lon/lat in Paris", box(2.30, 48.80, 2.40, 48.90), 4326, "outside Great Britain",
     "axis order"),
    ("metres of another grid", box(0, 0, 100, 100), 32630, "outside Great Britain once projected",
     "EPSG:27700"),
]


@pytest.mark.parametrize(("geom", "crs", "cause", "fix"), [c[1:] for c in CRS_CASES],
                         ids=[c[0] for c in CRS_CASES])
def test_crs_that_contradicts_the_coordinates_is_refused_saying_what_to_declare(
    geom, crs, cause, fix
) -> None:
    f = frame([geom], crs=crs)
    with pytest.raises(InputError) as direct:
        to_bng(f, source="wards.geojson")
    assert cause in direct.value.cause and fix in direct.value.fix
    with pytest.raises(Rejected) as err:
        prepare(f)
    [p] = err.value.problems
    assert (p.where, p.field, p.reason, p.fix) == ("file", "crs", direct.value.cause,
                                                   direct.value.fix)


LONLAT_2 = translate(LONLAT, 0.02)
MIXED_CASES = [
    # id, geometries, declared CRS, features at fault, text in the reason
    ("one feature lat/lon swapped", [LONLAT, LATLON, LONLAT_2], 4326, [2], "swapped"),
    ("two features of four swapped", [LATLON, LONLAT, LONLAT_2, translate(LATLON, 0, 0.02)],
     4326, [1, 4], "swapped"),
    ("one feature in BNG metres in a lon/lat file", [LONLAT, LONLAT_2, sq(0)], 4326, [3],
     "British National Grid metres"),
    ("one feature in lon/lat in a BNG file", [sq(0), sq(1), LONLAT], 27700, [3],
     "look like lon/lat degrees"),
]


@pytest.mark.parametrize(("geoms", "crs", "features", "reason"), [c[1:] for c in MIXED_CASES],
                         ids=[c[0] for c in MIXED_CASES])
def test_features_that_contradict_the_files_crs_are_named(geoms, crs, features, reason) -> None:
    with pytest.raises(Rejected) as err:
        prepare(frame(geoms, crs=crs))
    assert [p.feature for p in err.value.problems] == features
    assert all(reason in p.reason and p.where == f"feature {p.feature} ({code(p.feature)})"
               for p in err.value.problems)


def test_a_crs_pyproj_cannot_read_is_refused() -> None:
    stub = SimpleNamespace(crs="EPSG:999999", empty=False, total_bounds=np.array(sq(0).bounds))
    with pytest.raises(InputError, match="cannot be read") as err:
        to_bng(stub, source="wards.shp")  # type: ignore[arg-type]
    assert "EPSG:27700" in err.value.fix and "EPSG:4326" in err.value.fix


def test_lonlat_and_a_compound_bng_crs_are_accepted() -> None:
    assert to_bng(frame([LONLAT], crs=4326), source="x").crs.to_epsg() == 27700
    out = to_bng(frame([sq(0)], crs="EPSG:27700+5701"), source="x")
    assert out.total_bounds == pytest.approx(sq(0).bounds, abs=1e-6)


# ------------------------------------------------------------------ all at once


def test_every_problem_is_reported_at_once_with_its_feature_number() -> None:
    geoms = [sq(0), BOW_TIE, sq(2), None, Point(X0, Y0), Polygon(), sq(6),
             Polygon(at([(0, 0), (100, 0), (100, 101), (101, 100), (0, 100)], 7)),
             GeometryCollection([sq(8)])]
    codes = ["A", "B", "A", "D", "E", " ", "G", "H", "I"]
    with pytest.raises(Rejected) as err:
        prepare(frame(geoms, codes=codes))
    got = [(p.feature, p.where, p.field) for p in err.value.problems]
    assert got == [
        (2, "feature 2 (B)", "geometry"),   # bow-tie
        (3, "feature 3 (A)", "code"),       # duplicate of feature 1
        (4, "feature 4 (D)", "geometry"),   # null
        (5, "feature 5 (E)", "geometry"),   # point
        (6, "feature 6", "code"),           # blank code ...
        (6, "feature 6", "geometry"),       # ... and empty geometry
        (9, "feature 9 (I)", "geometry"),   # GeometryCollection
    ]  # feature 8's small loop is repairable: not a problem
    assert err.value.total == 7 and "7 problems" in err.value.cause
    assert err.value.where == "feature 2 (B)" and "and 6 more" in err.value.cause
    body = err.value.as_dict()
    assert body["total"] == 7 and [p["feature"] for p in body["problems"]] == [2, 3, 4, 5, 6, 6, 9]


def test_file_problems_come_first() -> None:
    with pytest.raises(Rejected) as err:
        prepare(frame([sq(0), None], crs=None, codes=["A", "A"]))
    assert [(p.where, p.field) for p in err.value.problems] == [
        ("file", "crs"), ("feature 2 (A)", "code"), ("feature 2 (A)", "geometry")]


# ------------------------------------------------------------------ tiling


def units(geoms: list, codes: list[str] | None = None) -> gpd.GeoDataFrame:
    codes = codes or [f"U{i + 1}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"code": codes}, geometry=list(geoms), crs=27700)


def cell(col: float, row: float, w: float = 100.0, h: float = 100.0) -> Polygon:
    return box(X0 + 100 * col, Y0 + 100 * row, X0 + 100 * col + w, Y0 + 100 * row + h)


def grid(cols: int, rows: int, skip: tuple[int, int] | None = None) -> list[Polygon]:
    return [cell(c, r) for r in range(rows) for c in range(cols) if (c, r) != skip]


TILING_CASES = [
    # id, geometries, expected overlaps [(a, b, m²)], expected gaps [m²]
    ("row that tiles", grid(3, 1), [], []),
    ("overlapping pair", [cell(0, 0, w=110), cell(1, 0), cell(2, 0)], [("U1", "U2", 1_000.0)], []),
    ("one unit inside another", [cell(0, 0, w=300), cell(1, 0)], [("U1", "U2", 10_000.0)], []),
    ("overlaps sorted by area", [cell(0, 0, w=101), cell(1, 0, w=103), cell(2, 0)],
     [("U2", "U3", 300.0), ("U1", "U2", 100.0)], []),
    ("hole in the middle", grid(3, 3, skip=(1, 1)), [], [10_000.0]),
    ("hole with an island in it", grid(3, 3, skip=(1, 1)) + [
        box(X0 + 110, Y0 + 110, X0 + 190, Y0 + 190)], [], [3_600.0]),
    ("missing corner is the outer edge, not a gap", grid(3, 3, skip=(2, 2)), [], []),
    ("notch open to the outside is not a gap", grid(3, 2, skip=(1, 1)), [], []),
    ("two gaps, the larger first", [
        cell(c, r) for r in range(3) for c in range(5) if (c, r) not in {(1, 1), (3, 1)}
    ] + [box(X0 + 300, Y0 + 100, X0 + 400, Y0 + 150)], [], [10_000.0, 5_000.0]),
    ("sliver overlap under tolerance", [cell(0, 0, w=100 + 1e-8), cell(1, 0)], [], []),
    ("sliver gap under tolerance",
     [cell(c, r, w=100 - (1e-8 if (c, r) == (0, 1) else 0)) for r in range(3) for c in range(3)],
     [], []),
    ("overlap of 2 m² reported", [cell(0, 0, w=100.02), cell(1, 0)], [("U1", "U2", 2.0)], []),
]


@pytest.mark.parametrize(("geoms", "overlaps", "gaps"), [c[1:] for c in TILING_CASES],
                         ids=[c[0] for c in TILING_CASES])
def test_tiling_reports_overlaps_and_gaps_with_their_areas(geoms, overlaps, gaps) -> None:
    t = check_tiling(units(geoms))
    got = list(zip(t.overlaps["code_a"], t.overlaps["code_b"], t.overlaps["area_m2"], strict=True))
    assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in overlaps]
    assert [m2 for *_, m2 in got] == pytest.approx([m2 for *_, m2 in overlaps], rel=1e-6)
    assert t.gaps["area_m2"].tolist() == pytest.approx(gaps, rel=1e-9)
    assert t.gaps["gap_id"].tolist() == list(range(1, len(gaps) + 1))
    assert t.tiles == (not overlaps)


def test_a_gap_is_located_inside_itself_and_names_its_neighbours() -> None:
    t = check_tiling(units(grid(3, 3, skip=(1, 1))))
    [g] = t.gaps.itertuples(index=False)
    assert X0 + 100 < g.x < X0 + 200 and Y0 + 100 < g.y < Y0 + 200
    assert g.neighbours == ("U1", "U2", "U3", "U4", "U5", "U6", "U7", "U8")


def test_tolerance_decides_what_is_reported() -> None:
    geoms = [cell(0, 0, w=100.005), cell(1, 0)] + [cell(c, 1) for c in range(3)]  # 0.5 m²
    assert check_tiling(units(geoms)).tiles
    t = check_tiling(units(geoms), tolerance_m2=0.1)
    assert t.overlaps["area_m2"].tolist() == pytest.approx([0.5], rel=1e-6) and not t.tiles


def test_as_problems_names_the_codes_the_place_and_the_area() -> None:
    geoms = grid(3, 3, skip=(1, 1)) + [cell(0, 3, w=110), cell(1, 3)]
    t = check_tiling(units(geoms, [f"E0{i}" for i in range(10)]))
    overlap, gap = t.as_problems("wards.geojson")
    assert overlap.where == "units E08 and E09" and "overlap by 1,000.0 m²" in overlap.reason
    assert "wards.geojson" in overlap.reason and overlap.fix
    assert gap.where.startswith("gap 1 at x=5331") and "10,000.0 m²" in gap.reason
    assert "E00" in gap.reason and gap.fix


def test_tiling_needs_bng_and_codes() -> None:
    with pytest.raises(InputError, match="EPSG:27700"):
        check_tiling(units([LONLAT]).set_crs(4326, allow_override=True))
    with pytest.raises(InputError, match="no code column"):
        check_tiling(units([sq(0)]).rename(columns={"code": "GSS_Code"}))


def test_one_thread_and_two_agree() -> None:
    geoms = [cell(c, r, w=100 + (c % 3)) for r in range(20) for c in range(20)]
    one, two = check_tiling(units(geoms), threads=1), check_tiling(units(geoms), threads=2)
    assert len(one.overlaps) > 200
    assert one.overlaps.equals(two.overlaps) and one.gaps.equals(two.gaps)


# ------------------------------------------------------------------ property: random grids

sizes = st.lists(st.floats(min_value=5.0, max_value=500.0, allow_nan=False), min_size=1,
                 max_size=6)


def rect_grid(widths: list[float], heights: list[float]) -> list[Polygon]:
    xs = X0 + np.r_[0.0, np.cumsum(widths)]
    ys = Y0 + np.r_[0.0, np.cumsum(heights)]
    return [box(xs[c], ys[r], xs[c + 1], ys[r + 1])
            for r in range(len(heights)) for c in range(len(widths))]


@settings(max_examples=60, deadline=None)
@given(widths=sizes, heights=sizes)
def test_a_random_grid_of_rectangles_tiles(widths, heights) -> None:
    t = check_tiling(units(rect_grid(widths, heights)))
    assert t.tiles and t.overlaps.empty and t.gaps.empty


@settings(max_examples=60, deadline=None)
@given(widths=sizes.filter(lambda w: len(w) >= 2), heights=sizes, data=st.data())
def test_shifting_one_rectangle_by_d_overlaps_its_neighbour_by_d_times_its_height(
    widths, heights, data
) -> None:
    cols, rows = len(widths), len(heights)
    col = data.draw(st.integers(0, cols - 2), label="col")
    row = data.draw(st.integers(0, rows - 1), label="row")
    d = data.draw(st.floats(min_value=0.05, max_value=0.9), label="share") * min(
        widths[col], widths[col + 1])
    geoms = rect_grid(widths, heights)
    i = row * cols + col
    geoms[i] = translate(geoms[i], xoff=d)
    t = check_tiling(units(geoms), tolerance_m2=1e-3)
    expected = d * heights[row]
    assert list(zip(t.overlaps["code_a"], t.overlaps["code_b"], strict=True)) == [
        (f"U{i + 1}", f"U{i + 2}")]
    assert t.overlaps["area_m2"].iloc[0] == pytest.approx(expected, rel=1e-6)
    # The strip it left is a gap only where it is enclosed: not on the set's outer edge.
    enclosed = col > 0 and 0 < row < rows - 1
    assert t.gaps["area_m2"].tolist() == pytest.approx([expected] if enclosed else [], rel=1e-6)
