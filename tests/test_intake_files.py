"""intake.tables and intake.files: reading uploads safely, with every refusal named."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from domain.errors import InputError, Rejected
from intake.files import UploadLimits, check_size, open_vector, sniff, unpack_zip
from intake.tables import read_json_records, read_rows
from tests.intake_samples import (
    CP1252_TEXT,
    WELSH,
    encrypted_zip,
    feature_collection,
    lying_zip,
    symlink_info,
    wards,
    write_geojson,
    write_shapefile,
    zip_bomb,
    zip_files,
    zip_raw,
    zip_shapefile,
)

LIMITS = UploadLimits()


def assert_no_server_path(err: Exception, tmp_path: Path) -> None:
    """No message may carry the temporary folder an upload was saved in."""
    text = str(err) + repr(getattr(err, "where", ""))
    assert str(tmp_path) not in text
    assert "/tmp/" not in text


# =========================================================================== tables: CSV


def csv_file(tmp_path: Path, content: str | bytes, name: str = "upload.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_rows_carry_line_numbers_and_stripped_values(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        '\ufeff Ward_Code , AMOUNT ,note\nE1, 12.50 ,"two\nlines"\n\nE2,3,\n',
    )
    rows = list(read_rows(path, ("ward_code", "amount"), source="spend.csv"))
    assert [r.line_no for r in rows] == [2, 5]
    assert rows[0].values == {"ward_code": "E1", "amount": "12.50", "note": "two\nlines"}
    assert rows[1].where == "spend.csv, line 5"


def test_utf8_pound_and_welsh_read_right(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"code,name\nW1,{WELSH}\n")
    (row,) = read_rows(path, ("code", "name"), source="wards.csv")
    assert row.values["name"] == WELSH


def test_cp1252_pound_reads_right_with_encoding(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"code,name\nW1,{CP1252_TEXT}\n".encode("cp1252"))
    (row,) = read_rows(path, ("code", "name"), source="wards.csv", encoding="cp1252")
    assert row.values["name"] == CP1252_TEXT


def test_problems_can_be_collected_by_the_caller(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a,b\n1,2\n1,2,3\n4,5\n")
    problems: list = []
    rows = list(read_rows(path, ("a", "b"), source="x.csv", problems=problems))
    assert [r.line_no for r in rows] == [2, 4]
    assert [p.row for p in problems] == [3]


CSV_BAD = [
    pytest.param(b"", "is empty", "x.csv", id="empty"),
    pytest.param(b"code,value\nE1,2\n", "no column 'amount' (found: 'code', 'value')",
                 "x.csv, line 1", id="missing-column"),
    pytest.param(b"code,Code,amount\n", "column 'Code' twice", "x.csv, line 1",
                 id="duplicate-column"),
    pytest.param("code,amount\nE1,\xa312\n".encode("cp1252"),
                 "byte 0xA3 at offset 15 (line 2", "x.csv, line 2", id="cp1252-bytes"),
    pytest.param(b"code,amount\nE1,\x81\x9d\n", "not Windows-1252 either", "x.csv, line 2",
                 id="junk-bytes"),
    pytest.param(b'code,amount\nE1,"12\n', "not valid CSV", "x.csv, line", id="open-quote"),
    pytest.param(b'code,amount\nE1,"12"x\n', "not valid CSV", "x.csv, line 2",
                 id="stray-quote"),
    pytest.param(b"code,amount\nE1,\x00\n", "NUL byte on line 2", "x.csv, line 2", id="nul"),
]


@pytest.mark.parametrize(("content", "says", "where"), CSV_BAD)
def test_csv_refused(tmp_path: Path, content: bytes, says: str, where: str) -> None:
    path = csv_file(tmp_path, content)
    with pytest.raises(InputError) as caught:
        list(read_rows(path, ("code", "amount"), source="x.csv"))
    assert says in caught.value.cause
    assert caught.value.where is not None and caught.value.where.startswith(where)
    assert caught.value.fix
    assert_no_server_path(caught.value, tmp_path)


def test_cp1252_error_suggests_the_encoding(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "code,amount\nE1,£12\n".encode("cp1252"))
    with pytest.raises(InputError) as caught:
        list(read_rows(path, ("code", "amount"), source="x.csv"))
    assert "it looks like Windows-1252 (cp1252)" in caught.value.cause
    assert "pass encoding cp1252 (`--encoding cp1252`) or save it as UTF-8" in caught.value.fix


@pytest.mark.parametrize(
    ("content", "fields", "line"),
    [
        pytest.param("code,amount\nE1\n", 1, 2, id="short-row"),
        pytest.param("code,amount\nE1,2\nE2,3,4\n", 3, 3, id="long-row"),
        pytest.param('code,amount\n"E1\nstill E1",2,9\n', 3, 2, id="ragged-multiline"),
    ],
)
def test_ragged_rows_are_problems(tmp_path: Path, content: str, fields: int, line: int) -> None:
    path = csv_file(tmp_path, content)
    with pytest.raises(Rejected) as caught:
        list(read_rows(path, ("code", "amount"), source="x.csv"))
    (problem,) = caught.value.problems
    assert problem.row == line and problem.where == f"x.csv, line {line}"
    assert f"{fields} fields" in problem.reason and "quote" in problem.fix


def test_unsupported_encoding_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "code,amount\n")
    with pytest.raises(InputError, match="encoding 'utf-16'") as caught:
        list(read_rows(path, ("code",), source="x.csv", encoding="utf-16"))
    assert "cp1252" in caught.value.fix


def test_wrong_declared_encoding_names_the_byte(tmp_path: Path) -> None:
    path = csv_file(tmp_path, b"code,amount\nE1,\x81\n")
    with pytest.raises(InputError, match=r"byte 0x81 on line 2") as caught:
        list(read_rows(path, ("code",), source="x.csv", encoding="cp1252"))
    assert caught.value.where == "x.csv, line 2"


# =========================================================================== tables: JSON


def json_file(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_json_records_keep_exact_number_text(tmp_path: Path) -> None:
    path = json_file(tmp_path, '{"lines": [{"Code": "E1", "amount": 1234.50, "n": null},'
                               ' {"code": "E2", "amount": 1e3}]}')
    rows = list(read_json_records(path, "spend.json", required=("code",)))
    assert rows[0].values == {"code": "E1", "amount": "1234.50", "n": ""}
    assert rows[1].values["amount"] == "1e3"  # parse_amount then refuses it, by name
    assert rows[1].where == "spend.json, record 2"


JSON_BAD = [
    pytest.param('[{"code": "E1",}]', InputError, "not valid JSON", "line 1", id="syntax"),
    pytest.param('[\n{"code": "E1"}\n{"code": "E2"}]', InputError, "line 3, column 1",
                 "line 3", id="syntax-line"),
    pytest.param('{"code": "E1"}', InputError, "object without a 'lines' member", "", id="obj"),
    pytest.param('"hello"', InputError, "a single value", "", id="scalar"),
    pytest.param("", InputError, "is empty", "", id="empty"),
    pytest.param('["E1", {"code": "E2"}]', Rejected, "record is a string", "record 1",
                 id="non-object"),
    pytest.param('[{"code": {"x": 1}}]', Rejected, "code is an object", "record 1",
                 id="nested"),
    pytest.param('[{"code": "E1"}, {"amount": "3"}]', Rejected, "record has no 'code'",
                 "record 2", id="missing-key"),
    pytest.param('[{"code": "\xa3"}]'.encode("cp1252"), InputError, "byte 0xA3 at offset 11",
                 "line 1", id="cp1252"),
]


@pytest.mark.parametrize(("content", "kind", "says", "where"), JSON_BAD)
def test_json_refused(tmp_path: Path, content: str | bytes, kind: type, says: str,
                      where: str) -> None:
    path = json_file(tmp_path, content)
    with pytest.raises(kind) as caught:
        list(read_json_records(path, "spend.json", required=("code",)))
    assert type(caught.value) is kind
    assert says in str(caught.value)
    assert where in (caught.value.where or "") and "spend.json" in caught.value.where
    assert caught.value.fix
    assert_no_server_path(caught.value, tmp_path)


# =========================================================================== sniff


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"PK\x03\x04rest", "zip"),
        (b"\xef\xbb\xbf  \n{\"type\": \"FeatureCollection\"}", "json"),
        (b"[{}]", "json"),
        (b"code,amount\n1,2\n", "csv"),
        ("code,name\nW1,Pen-y-ŵ\n".encode(), "csv"),
    ],
)
def test_sniff_kinds(tmp_path: Path, content: bytes, kind: str) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(content)
    assert sniff(path) == kind


def test_sniff_geopackage(tmp_path: Path) -> None:
    path = tmp_path / "w.gpkg"
    wards().to_file(path, layer="wards", driver="GPKG", engine="pyogrio")
    assert sniff(path) == "gpkg"


SNIFF_BAD = [
    pytest.param(b"", "w.geojson", "is empty", id="empty"),
    pytest.param(b'<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>/etc/passwd'
                 b"</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>", "w.geojson",
                 "this is a GDAL VRT, not GeoJSON", id="vrt-as-geojson"),
    pytest.param(b'<?xml version="1.0"?>\n<OGRVRTDataSource/>', "w.gpkg",
                 "this is a GDAL VRT, not a GeoPackage", id="vrt-with-prolog"),
    pytest.param(b"<!DOCTYPE html><html><body>Sign in</body></html>", "w.geojson",
                 "this is an HTML page, not GeoJSON", id="html-doctype"),
    pytest.param(b"  <html><head></head></html>", "w.zip", "this is an HTML page, not a"
                 " zipped Shapefile", id="html"),
    pytest.param(b'<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"/>',
                 "w.geojson", "this is a KML file", id="kml"),
    pytest.param(b'<?xml version="1.0"?><data/>', "w.csv", "this is an XML document, not CSV",
                 id="xml"),
    pytest.param(b"\x1f\x8b\x08\x00rest", "w.geojson", "this is a gzip archive", id="gzip"),
    pytest.param(b"7z\xbc\xaf\x27\x1c\x00\x04", "w.zip", "this is a 7-Zip archive", id="7z"),
    pytest.param(b"Rar!\x1a\x07\x00", "w.zip", "this is a RAR archive", id="rar"),
    pytest.param(b"x" * 257 + b"ustar\x0000" + b"\0" * 300, "w.zip", "this is a tar archive",
                 id="tar"),
    pytest.param(b"%PDF-1.7\n", "w.csv", "this is a PDF document, not CSV", id="pdf"),
    pytest.param(b"\x89PNG\r\n\x1a\n", "w.geojson", "this is a PNG image", id="png"),
    pytest.param(bytes(range(256)) * 4, "w.geojson", "binary data", id="junk"),
    pytest.param(b"SQLite format 3\x00" + b"\0" * 100, "w.gpkg",
                 "an SQLite database but not a GeoPackage", id="plain-sqlite"),
    pytest.param(b"\x00\x00\x27\x0a" + b"\0" * 96, "w.shp", "a bare .shp", id="bare-shp"),
    pytest.param(b"PK\x05\x06" + b"\0" * 18, "w.zip", "an empty ZIP archive", id="empty-zip"),
    pytest.param("code\n".encode("utf-16"), "w.csv", "UTF-16 text", id="utf16"),
]


@pytest.mark.parametrize(("content", "name", "says"), SNIFF_BAD)
def test_sniff_refuses(tmp_path: Path, content: bytes, name: str, says: str) -> None:
    path = tmp_path / "upload.bin"  # the server's name: messages must use the user's
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        sniff(path, source=name)
    assert says in caught.value.cause
    assert caught.value.where == name and caught.value.fix
    assert_no_server_path(caught.value, tmp_path)


def test_vrt_named_geojson_is_refused_before_gdal(tmp_path: Path) -> None:
    path = tmp_path / "wards.geojson"
    path.write_text('<OGRVRTDataSource><OGRVRTLayer name="w"><SrcDataSource>'
                    f"{tmp_path}/secret.csv</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>")
    with pytest.raises(InputError, match="this is a GDAL VRT, not GeoJSON") as caught:
        open_vector(path, LIMITS, source="wards.geojson")
    assert "read other files" in caught.value.fix


# =========================================================================== size


def test_check_size(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 2048)
    assert check_size(path, LIMITS, "big.csv") == 2048
    with pytest.raises(InputError) as caught:
        check_size(path, UploadLimits(max_bytes=1024), "big.csv")
    assert "2,048 bytes, more than the 1,024 bytes" in caught.value.cause
    assert caught.value.where == "big.csv" and "split" in caught.value.fix


# =========================================================================== unpack_zip


def test_unpack_zip_skips_litter_and_returns_files(tmp_path: Path) -> None:
    path = zip_files(tmp_path / "u.zip", {
        "data/a.txt": b"a", "__MACOSX/data/._a.txt": b"junk", "data/.DS_Store": b"junk",
        "b.txt": b"b",
    })
    files = unpack_zip(path, tmp_path / "out", LIMITS, "upload.zip")
    assert [f.relative_to(tmp_path / "out").as_posix() for f in files] == ["data/a.txt", "b.txt"]
    assert (tmp_path / "out" / "data" / "a.txt").read_bytes() == b"a"


def _info(name: str, flag_bits: int = 0) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.flag_bits |= flag_bits
    return info


def _nested_zip() -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as inner:
        inner.writestr("x.txt", "x")
    return buffer.getvalue()


ZIP_BAD = [
    pytest.param(lambda p: zip_raw(p, [(_info("../../x"), b"x")]), "'..' component",
                 "../../x", id="traversal"),
    pytest.param(lambda p: zip_raw(p, [(_info("a/../../x"), b"x")]), "'..' component",
                 "a/../../x", id="traversal-inner"),
    pytest.param(lambda p: zip_raw(p, [(_info("/etc/cron.d/x"), b"x")]), "absolute path",
                 "/etc/cron.d/x", id="absolute"),
    pytest.param(lambda p: zip_raw(p, [(_info("C:/Windows/x"), b"x")]), "absolute path",
                 "C:/Windows/x", id="drive"),
    pytest.param(lambda p: zip_raw(p, [(_info("..\\..\\x"), b"x")]), "backslash",
                 "..\\..\\x", id="backslash"),
    pytest.param(lambda p: zip_raw(p, [(symlink_info("wards.shp"), b"/etc/passwd")]),
                 "symbolic link", "wards.shp", id="symlink"),
    pytest.param(lambda p: zip_raw(p, [(_info("inner.zip"), b"x")]), "itself an archive",
                 "inner.zip", id="nested-name-zip"),
    pytest.param(lambda p: zip_raw(p, [(_info("w.tar.gz"), b"x")]), "itself an archive",
                 "w.tar.gz", id="nested-name-gz"),
    pytest.param(lambda p: zip_raw(p, [(_info("w.7z"), b"x")]), "itself an archive",
                 "w.7z", id="nested-name-7z"),
    pytest.param(lambda p: zip_files(p, {"wards.dbf": _nested_zip()}), "a ZIP archive inside",
                 "wards.dbf", id="nested-content"),
    pytest.param(lambda p: encrypted_zip(p), "is encrypted",
                 "wards.dbf", id="encrypted"),
    pytest.param(lambda p: zip_files(p, {"a.txt": b"a", "A.TXT": b"b"}), "twice",
                 "A.TXT", id="duplicate"),
    pytest.param(lambda p: zip_bomb(p, 8 * 1024 * 1024), "zip bomb", "wards.dbf",
                 id="bomb-ratio"),
    pytest.param(lambda p: zip_files(p, {"__MACOSX/x": b"x"}), "holds no files", "",
                 id="only-litter"),
    pytest.param(lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 40) or p, "not a readable ZIP",
                 "", id="corrupt"),
    pytest.param(lambda p: zip_raw(p, [(_info("a\x01b"), b"x")]), "control characters",
                 "a\x01b", id="control-name"),
]


@pytest.mark.parametrize(("build", "says", "member"), ZIP_BAD)
def test_unpack_zip_refuses(tmp_path: Path, build, says: str, member: str) -> None:
    path = tmp_path / "upload.bin"
    build(path)
    out = tmp_path / "out"
    with pytest.raises(InputError) as caught:
        unpack_zip(path, out, LIMITS, "wards.zip")
    err = caught.value
    assert says in err.cause
    assert err.where == (f"wards.zip: {member}" if member else "wards.zip")
    assert err.fix
    assert_no_server_path(err, tmp_path)
    assert not any(p.is_file() for p in out.rglob("*")), "nothing may be left unpacked"
    assert not (tmp_path.parent / "x").exists()


def test_too_many_members(tmp_path: Path) -> None:
    path = zip_files(tmp_path / "u.zip", {f"f{i}.txt": b"x" for i in range(6)})
    with pytest.raises(InputError, match="holds 6 members, more than the 5") as caught:
        unpack_zip(path, tmp_path / "out", UploadLimits(max_members=5), "wards.zip")
    assert caught.value.where == "wards.zip"


def test_total_declared_size_checked_before_extracting(tmp_path: Path) -> None:
    path = zip_files(tmp_path / "u.zip", {"a.txt": b"a" * 600, "b.txt": b"b" * 600})
    with pytest.raises(InputError, match="would unpack to 1,200 bytes, more than the 1,000"):
        unpack_zip(path, tmp_path / "out", UploadLimits(max_unpacked_bytes=1000), "wards.zip")
    assert not (tmp_path / "out" / "a.txt").exists()


def test_lying_header_caught_while_extracting(tmp_path: Path) -> None:
    path = lying_zip(tmp_path / "u.zip", real=b"x" * 5000, declared=100)
    with pytest.raises(InputError) as caught:
        unpack_zip(path, tmp_path / "out", LIMITS, "wards.zip")
    assert "wards.dbf" in caught.value.cause and caught.value.where == "wards.zip: wards.dbf"
    assert not (tmp_path / "out" / "wards.dbf").exists()


def test_bomb_ratio_checked_while_streaming_too(tmp_path: Path, monkeypatch) -> None:
    # A header that claims a harmless ratio must not get a bomb past the streaming counter.
    import intake.files as files

    path = zip_bomb(tmp_path / "u.zip", 4 * 1024 * 1024)
    monkeypatch.setattr(files, "_plan", lambda archive, limits, source: [
        (i, files.PurePosixPath(i.filename)) for i in archive.infolist()
    ])
    with pytest.raises(InputError, match="zip bomb"):
        unpack_zip(path, tmp_path / "out", LIMITS, "wards.zip")
    assert not (tmp_path / "out" / "wards.dbf").exists()


# =========================================================================== open_vector


def test_geojson_without_crs_is_lon_lat(tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "upload.bin")
    vector = open_vector(path, LIMITS, source="wards.geojson")
    assert vector.driver == "GeoJSON" and vector.layer == "wards"  # the user's name, not ours
    assert vector.declared_crs is not None and vector.declared_crs.to_epsg() == 4326
    assert any("RFC 7946" in n for n in vector.notes)
    assert vector.frame["name"].tolist() == [WELSH]
    assert list(vector.frame.columns) == ["code", "name", "geometry"]


def test_geojson_legacy_crs_is_honoured(tmp_path: Path) -> None:
    doc = feature_collection({"type": "name",
                              "properties": {"name": "urn:ogc:def:crs:EPSG::27700"}})
    vector = open_vector(write_geojson(tmp_path / "w.geojson", doc), LIMITS,
                         source="w.geojson")
    assert vector.declared_crs.to_epsg() == 27700
    assert vector.frame.crs.to_epsg() == 27700


def test_geopackage_single_layer(tmp_path: Path) -> None:
    path = tmp_path / "upload.gpkg"
    wards().to_file(path, layer="wards", driver="GPKG", engine="pyogrio")
    vector = open_vector(path, LIMITS, source="wards.gpkg")
    assert (vector.layer, vector.driver, vector.declared_crs.to_epsg()) == ("wards", "GPKG",
                                                                            27700)
    assert vector.frame["name"].tolist() == [WELSH, "Ward Two"]


def test_geopackage_layer_chosen(tmp_path: Path) -> None:
    path = tmp_path / "upload.gpkg"
    wards().to_file(path, layer="wards", driver="GPKG", engine="pyogrio")
    wards("Other").to_file(path, layer="other", driver="GPKG", engine="pyogrio")
    vector = open_vector(path, LIMITS, source="w.gpkg", layer="other")
    assert vector.layer == "other" and vector.frame["name"].iloc[0] == "Other"


def test_zipped_shapefile_utf8(tmp_path: Path) -> None:
    parts = write_shapefile(tmp_path / "shp")
    path = zip_shapefile(tmp_path / "upload.bin", parts, folder="Wards 2014/")
    vector = open_vector(path, LIMITS, source="wards.zip")
    assert vector.driver == "ESRI Shapefile" and vector.declared_crs.to_epsg() == 27700
    assert vector.frame["name"].tolist() == [WELSH, "Ward Two"]
    assert vector.encoding == "utf-8"


def test_zipped_shapefile_cp1252_with_cpg(tmp_path: Path) -> None:
    parts = write_shapefile(tmp_path / "shp", encoding="cp1252", name=CP1252_TEXT, cpg="1252")
    vector = open_vector(zip_shapefile(tmp_path / "w.zip", parts), LIMITS, source="w.zip")
    assert vector.frame["name"].tolist() == [CP1252_TEXT, "Ward Two"]
    assert vector.encoding == "cp1252"


def test_zipped_shapefile_cp1252_by_language_driver(tmp_path: Path) -> None:
    parts = write_shapefile(tmp_path / "shp", encoding="cp1252", name=CP1252_TEXT, cpg=None,
                            ldid=0x57)
    vector = open_vector(zip_shapefile(tmp_path / "w.zip", parts), LIMITS, source="w.zip")
    assert vector.frame["name"].tolist() == [CP1252_TEXT, "Ward Two"]
    assert any("language driver byte 0x57" in n for n in vector.notes)


def test_zipped_shapefile_utf8_without_cpg(tmp_path: Path) -> None:
    parts = write_shapefile(tmp_path / "shp", cpg=None)
    vector = open_vector(zip_shapefile(tmp_path / "w.zip", parts), LIMITS, source="w.zip")
    assert vector.frame["name"].tolist() == [WELSH, "Ward Two"]


def test_sidecar_case_differences_are_tolerated(tmp_path: Path) -> None:
    parts = write_shapefile(tmp_path / "shp")
    members = {("WARDS" + ext.upper() if ext != ".shp" else "wards.shp"): p
               for ext, p in parts.items()}
    vector = open_vector(zip_files(tmp_path / "w.zip", members), LIMITS, source="w.zip")
    assert len(vector.frame) == 2


def _shp_zip(tmp_path: Path, **kw) -> Path:
    drop = kw.pop("drop", None)
    parts = write_shapefile(tmp_path / "shp", **kw)
    return zip_shapefile(tmp_path / "upload.bin", parts, drop=drop)


def _two_shapefiles(tmp_path: Path) -> Path:
    a = write_shapefile(tmp_path / "a", stem="a")
    b = write_shapefile(tmp_path / "b", stem="b")
    return zip_files(tmp_path / "upload.bin", {p.name: p for p in [*a.values(), *b.values()]})


def _gpkg_two_layers(tmp_path: Path) -> Path:
    path = tmp_path / "upload.gpkg"
    wards().to_file(path, layer="wards", driver="GPKG", engine="pyogrio")
    wards().to_file(path, layer="parishes", driver="GPKG", engine="pyogrio")
    return path


def _gpkg_one_layer(tmp_path: Path) -> Path:
    path = tmp_path / "upload.gpkg"
    wards().to_file(path, layer="wards", driver="GPKG", engine="pyogrio")
    return path


def _geojson_bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path


def _geojson_doc(tmp_path: Path, doc: object) -> Path:
    return _geojson_bytes(tmp_path, json.dumps(doc).encode())


def _corrupt_shp(tmp_path: Path) -> Path:
    parts = write_shapefile(tmp_path / "shp")
    parts[".shp"].write_bytes(b"\x00\x00\x27\x0a" + b"\xff" * 20)
    return zip_shapefile(tmp_path / "upload.bin", parts)


VECTOR_BAD = [
    pytest.param(lambda t: _shp_zip(t, drop=".prj"), "w.zip", None,
                 "no wards.prj: the .prj carries the coordinate reference system",
                 "w.zip: wards.shp", id="no-prj"),
    pytest.param(lambda t: _shp_zip(t, drop=".dbf"), "w.zip", None,
                 "no wards.dbf: the .dbf carries the attributes: the codes and names",
                 "w.zip: wards.shp", id="no-dbf"),
    pytest.param(lambda t: _shp_zip(t, drop=".shx"), "w.zip", None, "no wards.shx",
                 "w.zip: wards.shp", id="no-shx"),
    pytest.param(lambda t: _shp_zip(t, drop=".shp"), "w.zip", None, "holds no .shp file",
                 "w.zip", id="no-shp"),
    pytest.param(_two_shapefiles, "w.zip", None, "holds 2 shapefiles: a.shp, b.shp", "w.zip",
                 id="two-shp"),
    pytest.param(lambda t: _shp_zip(t, encoding="cp1252", name=CP1252_TEXT, cpg=None),
                 "w.zip", None, "not UTF-8 (byte 0xE2 in record 1), and there is no .cpg",
                 "w.zip: wards.dbf", id="cp1252-no-cpg"),
    pytest.param(lambda t: _shp_zip(t, cpg="EBCDIC-500"), "w.zip", None,
                 "names the encoding 'EBCDIC-500'", "w.zip: wards.cpg", id="unknown-cpg"),
    pytest.param(lambda t: _shp_zip(t, encoding="cp1252", name="x\u2019", cpg="UTF-8"),
                 "w.zip", None, "not utf-8 (its .cpg says UTF-8)", "w.zip: wards.dbf",
                 id="cpg-lies"),
    pytest.param(_corrupt_shp, "w.zip", None, "GDAL cannot read w.zip", "w.zip",
                 id="corrupt-shp"),
    pytest.param(lambda t: zip_files(t / "upload.bin", {"wards.geojson": b"{}"}), "w.zip",
                 None, "holds no .shp file", "w.zip", id="zipped-geojson"),
    pytest.param(lambda t: zip_files(t / "upload.bin", {"[Content_Types].xml": b"<x/>",
                                                        "xl/workbook.xml": b"<x/>"}),
                 "w.zip", None, "an Office document", "w.zip", id="xlsx"),
    pytest.param(_gpkg_two_layers, "w.gpkg", None, "has 2 spatial layers: wards, parishes",
                 "w.gpkg", id="gpkg-several"),
    pytest.param(_gpkg_one_layer, "w.gpkg", "nope", "no layer 'nope' (layers: wards)",
                 "w.gpkg", id="gpkg-unknown-layer"),
    pytest.param(lambda t: _geojson_bytes(t, json.dumps(feature_collection(
        name="£")).encode().replace(b"\\u00a3", b"\xa3")), "w.geojson", None,
        "byte 0xA3 at offset", "w.geojson, line 1", id="geojson-cp1252"),
    pytest.param(lambda t: _geojson_bytes(t, b'{"type": "FeatureCollection", "features": ['),
                 "w.geojson", None, "not valid JSON", "w.geojson, line 1", id="geojson-cut"),
    pytest.param(lambda t: _geojson_doc(t, feature_collection(
        {"type": "link", "properties": {"href": "http://example.com/crs.wkt"}})),
        "w.geojson", None, "'crs' member is of type 'link'", "w.geojson", id="crs-link"),
    pytest.param(lambda t: _geojson_doc(t, feature_collection(
        {"type": "name", "properties": {"name": "/etc/passwd"}})),
        "w.geojson", None, "not an EPSG or OGC code", "w.geojson", id="crs-file"),
    pytest.param(lambda t: _geojson_doc(t, {"type": "Topology", "objects": {}}), "w.geojson",
                 None, "this is TopoJSON, not GeoJSON", "w.geojson", id="topojson"),
    pytest.param(lambda t: _geojson_doc(t, {"geometryType": "esriGeometryPolygon",
                                            "features": []}), "w.json", None,
                 "this is Esri JSON", "w.json", id="esrijson"),
    pytest.param(lambda t: _geojson_doc(t, [1, 2]), "w.geojson", None, "a JSON array",
                 "w.geojson", id="json-array"),
    pytest.param(lambda t: _geojson_bytes(t, b"code,name\nW1,x\n"), "w.geojson", None,
                 "this is CSV or other plain text", "w.geojson", id="csv-as-geojson"),
    pytest.param(lambda t: _geojson_bytes(t, b"{}" + b" " * 3000), "w.geojson", None,
                 "more than the", "w.geojson", id="too-big"),
]


@pytest.mark.parametrize(("build", "source", "layer", "says", "where"), VECTOR_BAD)
def test_open_vector_refuses(tmp_path: Path, build, source: str, layer: str | None, says: str,
                             where: str) -> None:
    path = build(tmp_path)
    limits = UploadLimits(max_bytes=2048) if says == "more than the" else LIMITS
    with pytest.raises(InputError) as caught:
        open_vector(path, limits, source=source, layer=layer)
    err = caught.value
    assert says in err.cause
    assert err.where == where
    assert err.fix
    assert_no_server_path(err, tmp_path)


def test_several_layers_fix_says_choose_one(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        open_vector(_gpkg_two_layers(tmp_path), LIMITS, source="w.gpkg")
    assert caught.value.fix == "choose one with --layer NAME"


def test_gdal_messages_are_cleaned_of_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        open_vector(_corrupt_shp(tmp_path), LIMITS, source="w.zip")
    assert_no_server_path(caught.value, tmp_path)
    assert "placespend-upload" not in str(caught.value)
