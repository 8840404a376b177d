"""Opening an upload safely, before anything parses it.

An uploaded file is judged by its leading bytes, never by its name (:func:`sniff`); it is
refused if too large (:func:`check_size`); a ZIP is unpacked member by member against path
tricks, symlinks, nested archives and zip bombs (:func:`unpack_zip`); and vector data is opened
with pyogrio only once it is known to be GeoJSON, a GeoPackage or a zipped Shapefile
(:func:`open_vector`).

Why so careful: GDAL opens far more than those three formats. A GDAL VRT (an XML file) can name
any file on the server, or a URL, as its source; a GeoJSON ``crs`` member of type ``link``, or
a ``name`` that is a path, is handed to GDAL's CRS parser, which reads files. So VRTs and
every other XML are refused by content, the ``crs`` member is checked here before GDAL sees it,
and after opening the driver GDAL chose must be the one expected. GDAL has no run-time switch
that turns its HTTP client off; :data:`GDAL_SAFE_OPTIONS` (set on import) turn off what can be
turned off, and the real guard is that GDAL is only ever given a path this module built.

Every error is an :class:`~domain.errors.InputError` whose message and ``where`` name the file
by ``source`` (the name the user gave it) and ZIP members by their names in the archive: never
the server path it was saved under.
"""

from __future__ import annotations

import codecs
import json
import re
import shutil
import stat
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import geopandas
import pyogrio
import pyogrio.errors
import shapely.errors
from pyproj import CRS
from pyproj.exceptions import CRSError

from domain.errors import InputError, TooLarge

from .tables import not_utf8

__all__ = [
    "GDAL_SAFE_OPTIONS",
    "MEMBER_ARCHIVE_SUFFIXES",
    "UploadLimits",
    "Vector",
    "check_size",
    "open_vector",
    "sniff",
    "unpack_zip",
]

MiB = 1024 * 1024

#: GDAL configuration set on import (process-wide): nothing remote, nothing executable.
#:
#: - ``CPL_VSIL_CURL_ALLOWED_EXTENSIONS``: /vsicurl/ treats only files ending in one of these
#:   as existing; no real file ends in this one, so nothing is fetched by guessing names.
#: - ``GDAL_HTTP_MAX_RETRY`` / ``GDAL_HTTP_TIMEOUT``: should a request still be made, no
#:   retries and a short timeout.
#: - ``GDAL_VRT_ENABLE_PYTHON``: never run Python embedded in a VRT.
#: - ``ALLOW_OGR_SQL_FUNCTIONS_FROM_TRIGGER_AND_VIEW``, ``ALLOW_VIRTUAL_OGR_FROM_TRIGGER_AND_VIEW``
#:   and ``OGR_SQLITE_LIST_VIRTUAL_OGR``: a GeoPackage's triggers and views may not call the
#:   OGR SQL functions or VirtualOGR that open other datasets (GDAL's defaults, made explicit).
GDAL_SAFE_OPTIONS: dict[str, str] = {
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".placespend-never-fetch",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_VRT_ENABLE_PYTHON": "NO",
    "ALLOW_OGR_SQL_FUNCTIONS_FROM_TRIGGER_AND_VIEW": "NO",
    "ALLOW_VIRTUAL_OGR_FROM_TRIGGER_AND_VIEW": "NO",
    "OGR_SQLITE_LIST_VIRTUAL_OGR": "NO",
}
pyogrio.set_gdal_config_options(GDAL_SAFE_OPTIONS)

#: Member names that are archives themselves (refused: unpack them and zip the files instead).
MEMBER_ARCHIVE_SUFFIXES = (
    ".zip", ".gz", ".tgz", ".7z", ".rar", ".tar", ".bz2", ".xz", ".zst", ".kmz", ".jar",
)

#: Members skipped as the litter of the machine that made the archive.
_IGNORED_DIRS = ("__MACOSX/",)
_IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may weigh, before and after unpacking.

    ``max_ratio`` applies to members that unpack to more than ``ratio_floor_bytes``: a small
    member of padded .dbf text can legitimately compress a few hundred times, and it is size
    that makes a bomb dangerous (``max_unpacked_bytes`` caps the total in any case).
    """

    max_bytes: int = 200 * MiB
    max_unpacked_bytes: int = 1024 * MiB
    max_ratio: float = 200.0
    max_members: int = 2000
    ratio_floor_bytes: int = 1 * MiB


@dataclass(frozen=True)
class Vector:
    """Vector data read from an upload.

    ``frame`` holds every attribute field and the geometry, as the file has them (CRS
    normalisation and validity repair happen later, in ``geo``); ``layer`` is the layer read;
    ``declared_crs`` the CRS the file declares (None if it declares none); ``driver`` the GDAL
    driver that read it; ``notes`` anything the user should be told (e.g. an assumed CRS).
    """

    frame: geopandas.GeoDataFrame
    layer: str
    declared_crs: CRS | None
    driver: str
    encoding: str | None = None
    notes: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------- sniffing

_EXPECTED = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "a GeoPackage",
    ".zip": "a zipped Shapefile",
    ".csv": "CSV",
    ".shp": "a zipped Shapefile",
}

#: Leading bytes of formats refused outright: (magic, offset, what it is, fix).
_MAGIC: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\x1f\x8b", 0, "a gzip archive", "unpack it and upload the file inside, or zip it"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive", "re-pack it as a .zip"),
    (b"Rar!\x1a\x07", 0, "a RAR archive", "re-pack it as a .zip"),
    (b"ustar", 257, "a tar archive", "re-pack it as a .zip"),
    (b"BZh", 0, "a bzip2 archive", "re-pack it as a .zip"),
    (b"\xfd7zXZ\x00", 0, "an xz archive", "re-pack it as a .zip"),
    (b"\x28\xb5\x2f\xfd", 0, "a Zstandard archive", "re-pack it as a .zip"),
    (b"%PDF", 0, "a PDF document", "export the data itself (CSV, GeoJSON, GeoPackage)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "an old Excel or Office document (OLE)",
     "save the sheet as CSV (UTF-8)"),
    (b"\x89PNG", 0, "a PNG image", "upload the data, not a picture of it"),
    (b"\xff\xd8\xff", 0, "a JPEG image", "upload the data, not a picture of it"),
    (b"GIF8", 0, "a GIF image", "upload the data, not a picture of it"),
    (b"\x00\x00\x27\x0a", 0, "a bare .shp file (a shapefile is several files)",
     "zip the .shp together with its .shx, .dbf, .prj (and .cpg) and upload the .zip"),
    (b"PK\x05\x06", 0, "an empty ZIP archive", "zip the files themselves"),
    (b"\xff\xfe", 0, "UTF-16 text", "save it as UTF-8"),
    (b"\xfe\xff", 0, "UTF-16 text", "save it as UTF-8"),
)

_XML_KINDS: tuple[tuple[str, str], ...] = (
    ("<ogrvrtdatasource", "a GDAL VRT"),
    ("<vrtdataset", "a GDAL VRT"),
    ("<!doctype html", "an HTML page"),
    ("<html", "an HTML page"),
    ("<kml", "a KML file"),
    ("<gml:", "a GML file"),
    ("<wfs:", "a WFS response (GML)"),
    ("<svg", "an SVG image"),
)


def _refuse(source: str, what: str, fix: str) -> InputError:
    """Build the error refusing ``source`` for being ``what``, not what its name says."""
    expected = _EXPECTED.get(PurePosixPath(source).suffix.lower())
    not_ = f", not {expected}" if expected else ""
    return InputError(f"{source}: this is {what}{not_}", fix, where=source)


def sniff(path: Path | str, *, source: str | None = None) -> str:
    """Say what a file is from its leading bytes, not its name: zip, gpkg, json or csv.

    Returns ``"zip"`` (a ZIP local file header), ``"gpkg"`` (an SQLite file whose application
    id is a GeoPackage's), ``"json"`` (first non-blank character ``{`` or ``[``, after an
    optional BOM) or ``"csv"`` (other text). Refuses with :class:`~domain.errors.InputError`, naming
    what the file really is, an empty file, a GDAL VRT, HTML, any other XML, other archives
    (gzip, 7z, rar, tar...), PDF, images, a plain SQLite database, UTF-16 and binary junk.
    ``source`` (default: the file's base name) names the file in messages.
    """
    path = Path(path)
    source = source or path.name
    with path.open("rb") as handle:
        head = handle.read(8192)
    if not head:
        raise InputError(f"{source} is empty (0 bytes)", "upload the file again", where=source)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"SQLite format 3\x00"):
        app_id = head[68:72]
        if app_id in (b"GPKG", b"GP10", b"GP11"):
            return "gpkg"
        raise _refuse(source, "an SQLite database but not a GeoPackage",
                      "export the layer as a GeoPackage (.gpkg)")
    for magic, offset, what, fix in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            raise _refuse(source, what, fix)
    text = head[3:] if head.startswith(codecs.BOM_UTF8) else head
    stripped = text.lstrip(b" \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return "json"
    if stripped[:1] == b"<":
        lower = stripped[:4096].decode("utf-8", "replace").lower()
        for marker, what in _XML_KINDS:
            if marker in lower:
                raise _refuse(source, what, _xml_fix(what))
        raise _refuse(source, "an XML document", "upload GeoJSON, a GeoPackage, a zipped"
                      " Shapefile or CSV")
    if _looks_binary(text):
        raise _refuse(source, "binary data of no kind Placespend reads",
                      "upload GeoJSON, a GeoPackage, a zipped Shapefile or a CSV file")
    return "csv"


def _xml_fix(what: str) -> str:
    """Say what to upload instead of an XML-ish file."""
    if "VRT" in what:
        return ("upload the data the VRT points at (GeoJSON, GeoPackage or zipped Shapefile);"
                " VRTs are refused because they can make the server read other files")
    if "HTML" in what:
        return ("the download probably failed or needed a login: download the file itself"
                " and upload that")
    return "convert it to GeoJSON or a GeoPackage (e.g. with ogr2ogr or QGIS) and upload that"


def _looks_binary(head: bytes) -> bool:
    """Say whether leading bytes look like binary data rather than text."""
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return controls > max(1, len(head) // 100)


def check_size(path: Path | str, limits: UploadLimits, source: str) -> int:
    """Refuse a file larger than ``limits.max_bytes``, naming both; return its size in bytes."""
    size = Path(path).stat().st_size
    if size > limits.max_bytes:
        raise TooLarge(
            f"{source} is {_size(size)}, more than the {_size(limits.max_bytes)} an upload may be",
            "split it (e.g. one file per year or area) or simplify the geometry, and upload the"
            " parts",
            where=source,
        )
    return size


def _size(n: int) -> str:
    """Render a byte count for people."""
    if n >= MiB:
        return f"{n / MiB:,.1f} MiB ({n:,} bytes)"
    return f"{n:,} bytes"


# --------------------------------------------------------------------------- ZIP


def _member_path(info: zipfile.ZipInfo, source: str) -> PurePosixPath:
    """Check one member's name and kind; return its safe relative path."""
    name = info.filename
    where = f"{source}: {name}"

    def refuse(reason: str, fix: str) -> InputError:
        return InputError(f"{source} member {name!r} {reason}", fix, where=where)

    if any(ord(c) < 32 for c in name):
        raise refuse("has control characters in its name", "rename the file and zip it again")
    if "\\" in name:
        raise refuse(
            "has a backslash in its name (a Windows path that could unpack outside the folder)",
            "zip the files with a standard tool (Explorer 'Send to > Compressed folder', zip)",
        )
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise refuse("has an absolute path", "zip the files by relative name only")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refuse("has a '..' component that points outside the archive",
                     "zip the files by relative name only, without '..'")
    if not parts:
        raise refuse("has an empty name", "zip the files again")
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise refuse("is a symbolic link", "zip the files themselves, not links to them")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise refuse("is not a regular file (a device, socket or pipe)",
                     "zip only the data files")
    if info.flag_bits & 0x1:
        raise refuse("is encrypted", "zip the files without a password")
    if parts[-1].lower().endswith(MEMBER_ARCHIVE_SUFFIXES):
        raise refuse("is itself an archive (archives inside archives are refused)",
                     "unpack it and zip the files it holds into one .zip")
    return PurePosixPath(*parts)


def _ignored(name: str) -> bool:
    """Say whether a member is operating-system litter to skip."""
    return name.startswith(_IGNORED_DIRS) or PurePosixPath(name).name in _IGNORED_NAMES


_NESTED_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
)


def unpack_zip(
    path: Path | str, dest_dir: Path | str, limits: UploadLimits, source: str
) -> list[Path]:
    """Unpack a ZIP upload into ``dest_dir`` safely; return the files written, in archive order.

    Checked from the central directory before anything is written: member count, names
    (absolute paths, ``..``, backslashes, control characters), kinds (symlinks, devices),
    encryption, nested archives by name, duplicate names, the total declared size against
    ``limits.max_unpacked_bytes`` and each member's compression ratio against
    ``limits.max_ratio``. Checked again while extracting, since headers can lie: every byte is
    counted as it is streamed, and a member that unpacks to more than it declared, past the
    total, or past the ratio is refused, as is one whose content starts like an archive.
    ``__MACOSX/`` and ``.DS_Store`` are skipped. On any refusal nothing unpacked is left.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise InputError(
            f"{source} is not a readable ZIP archive ({_zip_reason(exc)})",
            "the file is corrupt or was cut short: zip the files again and upload the new .zip",
            where=source,
        ) from None
    written: list[Path] = []
    try:
        with archive:
            plan = _plan(archive, limits, source)
            total = 0
            for info, rel in plan:
                target = dest.joinpath(*rel.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                total = _extract(archive, info, target, total, limits, source)
                written.append(target)
    except BaseException:
        for item in written:
            item.unlink(missing_ok=True)
        raise
    return written


def _zip_reason(exc: BaseException) -> str:
    """Say briefly why zipfile could not read an archive."""
    text = str(exc) or type(exc).__name__
    return re.sub(r"'?/[^\s']+'?", "", text).strip() or type(exc).__name__


def _plan(
    archive: zipfile.ZipFile, limits: UploadLimits, source: str
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check the central directory and return the members to extract with their paths."""
    try:
        infos = [i for i in archive.infolist() if not _ignored(i.filename)]
    except (zipfile.BadZipFile, ValueError) as exc:
        raise InputError(f"{source} is not a readable ZIP archive ({_zip_reason(exc)})",
                         "zip the files again", where=source) from None
    files = [i for i in infos if not i.is_dir()]
    if len(infos) > limits.max_members:
        raise InputError(
            f"{source} holds {len(infos):,} members, more than the {limits.max_members:,}"
            " allowed",
            "zip only the files of the one dataset you are uploading",
            where=source,
        )
    if not files:
        raise InputError(f"{source} holds no files", "zip the data files themselves",
                         where=source)
    plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    seen: dict[str, str] = {}
    declared = 0
    for info in infos:
        rel = _member_path(info, source)
        key = str(rel).casefold()
        if key in seen and not info.is_dir():
            raise InputError(
                f"{source} holds {info.filename!r} twice (or as {seen[key]!r}, differing only"
                " in case)",
                "zip each file once",
                where=f"{source}: {info.filename}",
            )
        seen[key] = info.filename
        if not info.is_dir():
            declared += info.file_size
            _check_ratio(info.filename, info.file_size, info.compress_size, limits, source)
        plan.append((info, rel))
    if declared > limits.max_unpacked_bytes:
        raise InputError(
            f"{source} would unpack to {_size(declared)}, more than the"
            f" {_size(limits.max_unpacked_bytes)} allowed",
            "upload a smaller dataset (split it, or simplify the geometry)",
            where=source,
        )
    return plan


def _check_ratio(
    name: str, size: int, compressed: int, limits: UploadLimits, source: str
) -> None:
    """Refuse a member that unpacks to more than ``max_ratio`` times its compressed size."""
    if size <= limits.ratio_floor_bytes:
        return
    ratio = size / max(compressed, 1)
    if ratio > limits.max_ratio:
        raise InputError(
            f"{source} member {name!r} unpacks to {_size(size)} from {_size(compressed)}"
            f" (ratio {ratio:,.0f} to 1, more than {limits.max_ratio:,.0f}): it looks like a"
            " zip bomb",
            "upload the real data files; if they are genuine, upload them unzipped",
            where=f"{source}: {name}",
        )


def _extract(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    total: int,
    limits: UploadLimits,
    source: str,
) -> int:
    """Stream one member to ``target`` with a byte counter; return the running total."""
    where = f"{source}: {info.filename}"
    written = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as src, target.open("xb") as out:
            first = True
            while True:
                chunk = src.read(64 * 1024)
                if not chunk:
                    break
                if first:
                    first = False
                    for magic, what in _NESTED_MAGIC:
                        if chunk.startswith(magic):
                            raise InputError(
                                f"{source} member {info.filename!r} is {what} inside the"
                                " archive (archives inside archives are refused)",
                                "unpack it and zip the files it holds into one .zip",
                                where=where,
                            )
                written += len(chunk)
                total += len(chunk)
                if written > info.file_size:
                    raise InputError(
                        f"{source} member {info.filename!r} unpacks to more than the"
                        f" {_size(info.file_size)} its header declares",
                        "the archive is corrupt or crafted: zip the files again",
                        where=where,
                    )
                if total > limits.max_unpacked_bytes:
                    raise InputError(
                        f"{source} unpacks to more than {_size(limits.max_unpacked_bytes)}",
                        "upload a smaller dataset",
                        where=where,
                    )
                _check_ratio(info.filename, written, info.compress_size, limits, source)
                out.write(chunk)
    except InputError:
        target.unlink(missing_ok=True)
        raise
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        target.unlink(missing_ok=True)
        raise InputError(
            f"{source} member {info.filename!r} cannot be unpacked ({_zip_reason(exc)})",
            "the archive is corrupt, or uses a compression method other than Deflate: zip"
            " the files again with a standard tool",
            where=where,
        ) from None
    except OSError:
        raise InputError(
            f"{source} member {info.filename!r} clashes with another member of the same name"
            " (a file and a folder, or the same file twice)",
            "zip each file once",
            where=where,
        ) from None
    return total


# --------------------------------------------------------------------------- vectors

#: Path tails GDAL messages may carry, cleaned to a base name.
_ABS_PATH_RE = re.compile(r"(?<![\w.])(?:/vsi[a-z_]+/)?(?:/[^\s'\":,()]+)+")


def _clean(message: str, names: dict[str, str]) -> str:
    """Remove server paths from a GDAL message: known ones become the user's names."""
    for real, shown in sorted(names.items(), key=lambda kv: -len(kv[0])):
        message = message.replace(real, shown)
    return _ABS_PATH_RE.sub(lambda m: PurePosixPath(m.group(0)).name or "file", message)


def _gdal_error(exc: Exception, source: str, names: dict[str, str]) -> InputError:
    """Turn a pyogrio/GDAL failure into an InputError with no server paths in it."""
    text = _clean(str(exc).strip() or type(exc).__name__, names).rstrip(". ")
    return InputError(
        f"GDAL cannot read {source}: {text}",
        "check the file opens in QGIS; export it again as GeoJSON, GeoPackage or a zipped"
        " Shapefile",
        where=source,
    )


def open_vector(
    path: Path | str,
    limits: UploadLimits,
    *,
    source: str,
    layer: str | None = None,
) -> Vector:
    """Open an uploaded vector file (GeoJSON, GeoPackage or zipped Shapefile) safely.

    The kind comes from the content (:func:`sniff`), not the name. GeoJSON must be UTF-8; with
    no ``crs`` member it is longitude/latitude per RFC 7946 and ``declared_crs`` is EPSG:4326
    (a note says so); a legacy ``crs`` member naming an EPSG or OGC code is honoured, any other
    (a link, a file) refused. A GeoPackage with several spatial layers needs ``layer``. A
    zipped Shapefile is unpacked with :func:`unpack_zip` into a temporary folder (removed
    afterwards) and must hold exactly one .shp with its .shx, .dbf and .prj; text is decoded
    as its .cpg says, else as UTF-8, else as Windows-1252 only if the .dbf's language driver
    byte says so. Raises :class:`~domain.errors.InputError` for every refusal and every GDAL
    failure, naming ``source`` and members, never server paths.
    """
    path = Path(path)
    check_size(path, limits, source)
    kind = sniff(path, source=source)
    names = {str(path): source, str(path.resolve()): source}
    if kind == "json":
        return _open_geojson(path, source, layer, names)
    if kind == "gpkg":
        return _open_gpkg(path, source, layer, names)
    if kind == "zip":
        suffix = PurePosixPath(source).suffix.lower()
        if suffix not in ("", ".zip"):
            raise _refuse(source, "a ZIP archive",
                          "name a zipped Shapefile .zip, or upload the GeoJSON itself")
        with tempfile.TemporaryDirectory(prefix="placespend-upload-") as tmp:
            try:
                files = unpack_zip(path, Path(tmp) / "x", limits, source)
                return _open_shapefile(files, Path(tmp) / "x", source, layer, names)
            finally:
                shutil.rmtree(Path(tmp) / "x", ignore_errors=True)
    raise _refuse(source, "CSV or other plain text",
                  "upload boundaries as GeoJSON, a GeoPackage or a zipped Shapefile")


def _read(
    gdal_path: str,
    *,
    source: str,
    names: dict[str, str],
    expected_driver: str,
    layer: str | None = None,
    encoding: str | None = None,
) -> tuple[geopandas.GeoDataFrame, dict[str, object]]:
    """Read one layer with pyogrio, checking GDAL used the expected driver."""
    notes: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info = pyogrio.read_info(gdal_path, layer=layer, encoding=encoding)
            if info.get("driver") != expected_driver:
                raise InputError(
                    f"{source} was opened by GDAL's {info.get('driver')} driver, not"
                    f" {expected_driver}",
                    "upload GeoJSON, a GeoPackage or a zipped Shapefile",
                    where=source,
                )
            frame = pyogrio.read_dataframe(gdal_path, layer=layer, encoding=encoding)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, RuntimeError,
            OSError, ValueError, shapely.errors.GEOSException) as exc:
        if isinstance(exc, UnicodeDecodeError):
            raise InputError(
                f"{source} has attribute text that is not {encoding or 'UTF-8'}"
                f" ({exc.reason} at byte {exc.start} of a value)",
                "re-export the file as UTF-8",
                where=source,
            ) from None
        raise _gdal_error(exc, source, names) from None
    for w in caught:
        message = _clean(str(w.message), names)
        if "couldn't be converted" in message or "not be converted" in message:
            raise InputError(
                f"{source} has attribute text GDAL could not decode: {message}",
                "re-export the file as UTF-8 (or add a .cpg naming its encoding)",
                where=source,
            )
        if "non conformant file extension" not in message:
            notes.append(f"GDAL: {message}")
    if not isinstance(frame, geopandas.GeoDataFrame):
        raise InputError(
            f"{source} layer {info.get('layer_name')!r} has no geometry",
            "upload a layer of polygons or points",
            where=source,
        )
    info["_notes"] = notes
    return frame, info


def _info_crs(info: dict[str, object]) -> CRS | None:
    """Return the CRS GDAL read from the file, or None."""
    text = info.get("crs")
    if not text:
        return None
    try:
        return CRS.from_user_input(text)
    except CRSError:
        return None


# ---- GeoJSON

_CRS_NAME_RE = re.compile(
    r"^(?:EPSG:\d{4,6}|urn:ogc:def:crs:EPSG:[0-9.]*:\d{4,6}|urn:ogc:def:crs:OGC:1\.3:CRS84"
    r"|urn:ogc:def:crs:OGC::CRS84|OGC:CRS84)$",
    re.IGNORECASE,
)


def _geojson_crs(doc: dict[str, object], source: str) -> tuple[CRS, str]:
    """Work out the CRS a GeoJSON document declares, and a note on how."""
    if "crs" not in doc or doc["crs"] is None:
        return CRS.from_epsg(4326), (
            f"{source} has no 'crs' member, so it is longitude/latitude (EPSG:4326), as"
            " RFC 7946 says GeoJSON is"
        )
    crs = doc["crs"]
    fix = ('declare the CRS as {"type": "name", "properties": {"name": "EPSG:27700"}}, or'
           " reproject to longitude/latitude and drop the crs member")
    if not isinstance(crs, dict):
        raise InputError(f"{source} has a 'crs' member that is not an object", fix,
                         where=source)
    props = crs.get("properties") if isinstance(crs.get("properties"), dict) else {}
    if crs.get("type") == "name" and isinstance(props.get("name"), str):
        name = props["name"].strip()
        if _CRS_NAME_RE.match(name):
            try:
                return CRS.from_user_input(name), f"{source} declares its CRS as {name}"
            except CRSError:
                pass
        raise InputError(f"{source} 'crs' names {name[:80]!r}, not an EPSG or OGC code", fix,
                         where=source)
    if crs.get("type") == "EPSG" and str(props.get("code", "")).isdigit():
        code = int(str(props["code"]))
        try:
            return CRS.from_epsg(code), f"{source} declares its CRS as EPSG:{code}"
        except CRSError:
            pass
        raise InputError(f"{source} 'crs' has an unknown EPSG code {code}", fix, where=source)
    raise InputError(
        f"{source} 'crs' member is of type {str(crs.get('type'))[:40]!r}; only a named EPSG or"
        " OGC code is read (a linked CRS would make the server fetch a file or URL)",
        fix,
        where=source,
    )


def _open_geojson(
    path: Path, source: str, layer: str | None, names: dict[str, str]
) -> Vector:
    """Open a GeoJSON upload: UTF-8 checked, top level and crs member checked, then GDAL."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if data.startswith(codecs.BOM_UTF8) else 0)
        raise not_utf8(source, data, offset, encoding_option=False) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            "export the layer again as GeoJSON",
            where=f"{source}, line {exc.lineno}",
        ) from None
    except RecursionError:
        raise InputError(f"{source} nests JSON too deeply", "export it again as GeoJSON",
                         where=source) from None
    del text
    if not isinstance(doc, dict):
        raise _refuse(source, "a JSON array, not a GeoJSON object",
                      "upload a GeoJSON FeatureCollection")
    kind = doc.get("type")
    if kind == "Topology":
        raise _refuse(source, "TopoJSON", "convert it to GeoJSON (e.g. with mapshaper)")
    if "geometryType" in doc or "spatialReference" in doc:
        raise _refuse(source, "Esri JSON", "export it as GeoJSON (e.g. with ogr2ogr or QGIS)")
    if kind not in ("FeatureCollection", "Feature"):
        raise _refuse(source, f"JSON whose type is {str(kind)[:40]!r}",
                      "upload a GeoJSON FeatureCollection")
    declared, note = _geojson_crs(doc, source)
    del doc
    # The "GeoJSON:" prefix makes GDAL use the GeoJSON driver and no other.
    names = {**names, f"GeoJSON:{path}": source}
    frame, info = _read(f"GeoJSON:{path}", source=source, names=names, expected_driver="GeoJSON")
    if frame.crs is None or not CRS.from_user_input(frame.crs).equals(declared):
        frame = frame.set_crs(declared, allow_override=True)
    # GDAL names the layer after the file it opened (the server's name): use the user's.
    return Vector(frame, PurePosixPath(source).stem, declared, "GeoJSON", "UTF-8",
                  (note, *info["_notes"]))


# ---- GeoPackage


def _open_gpkg(path: Path, source: str, layer: str | None, names: dict[str, str]) -> Vector:
    """Open a GeoPackage upload: choose the layer, then read it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            listed = pyogrio.list_layers(path)
    except (pyogrio.errors.DataSourceError, RuntimeError, OSError) as exc:
        raise _gdal_error(exc, source, names) from None
    all_layers = [str(n) for n, _ in listed]
    spatial = [str(n) for n, g in listed if g is not None]
    if layer is None:
        if not spatial:
            raise InputError(
                f"{source} has no layer with geometry (tables: {', '.join(all_layers) or 'none'})",
                "export the boundaries or sites as a spatial layer",
                where=source,
            )
        if len(spatial) > 1:
            raise InputError(
                f"{source} has {len(spatial)} spatial layers: {', '.join(spatial)}",
                "choose one with --layer NAME",
                where=source,
            )
        layer = spatial[0]
    elif layer not in all_layers:
        raise InputError(
            f"{source} has no layer {layer!r} (layers: {', '.join(all_layers) or 'none'})",
            "choose one of those with --layer NAME",
            where=source,
        )
    elif layer not in spatial:
        raise InputError(
            f"{source} layer {layer!r} has no geometry (spatial layers:"
            f" {', '.join(spatial) or 'none'})",
            "choose a spatial layer with --layer NAME",
            where=source,
        )
    frame, info = _read(str(path), source=source, names=names, expected_driver="GPKG",
                        layer=layer)
    return Vector(frame, layer, _info_crs(info), "GPKG", "UTF-8", tuple(info["_notes"]))


# ---- Shapefile

_SIDECARS = {
    ".shx": "the .shx is the index GDAL needs to find each shape in the .shp",
    ".dbf": "the .dbf carries the attributes: the codes and names",
    ".prj": "the .prj carries the coordinate reference system",
}

#: .cpg contents (upper-cased, spaces removed) and the Python codec each means.
_CPG_CODECS = {
    "UTF-8": "utf-8", "UTF8": "utf-8", "65001": "utf-8",
    "1252": "cp1252", "CP1252": "cp1252", "ANSI1252": "cp1252", "WINDOWS-1252": "cp1252",
    "ANSI": "cp1252",
    "88591": "latin-1", "8859-1": "latin-1", "ISO-8859-1": "latin-1", "ISO88591": "latin-1",
    "LATIN1": "latin-1",
    "885914": "iso8859-14", "ISO-8859-14": "iso8859-14", "885915": "iso8859-15",
    "ISO-8859-15": "iso8859-15",
}
#: GDAL's names for those codecs.
_GDAL_ENCODING = {"utf-8": "UTF-8", "cp1252": "CP1252", "latin-1": "ISO-8859-1",
                  "iso8859-14": "ISO-8859-14", "iso8859-15": "ISO-8859-15"}
#: .dbf language driver ids (byte 29) that mean Windows-1252 (ANSI).
_LDID_CP1252 = frozenset({0x03, 0x57, 0x58, 0x59})


def _open_shapefile(
    files: list[Path], root: Path, source: str, layer: str | None, names: dict[str, str]
) -> Vector:
    """Open the one shapefile in an unpacked ZIP, with its sidecars and encoding checked."""
    def member(p: Path) -> str:
        return p.relative_to(root).as_posix()

    names = {**names, str(root): source, str(root.resolve()): source}
    shps = [f for f in files if f.suffix.lower() == ".shp"]
    if not shps:
        listed = ", ".join(member(f) for f in files[:10]) + (" ..." if len(files) > 10 else "")
        if any(member(f).startswith(("xl/", "word/")) for f in files):
            raise _refuse(source, "an Office document (a .xlsx or .docx is a ZIP)",
                          "save the sheet as CSV (UTF-8), or upload the zipped Shapefile")
        others = [f for f in files if f.suffix.lower() in (".gpkg", ".geojson", ".json")]
        fix = (f"upload {member(others[0])} itself, not zipped" if others
               else "zip the .shp, .shx, .dbf and .prj of one shapefile")
        raise InputError(f"{source} holds no .shp file (it holds: {listed})", fix,
                         where=source)
    if len(shps) > 1:
        raise InputError(
            f"{source} holds {len(shps)} shapefiles: {', '.join(member(s) for s in shps)}",
            "zip one shapefile per upload",
            where=source,
        )
    shp = shps[0]
    where = f"{source}: {member(shp)}"
    siblings = {f.name.casefold(): f for f in files if f.parent == shp.parent}
    found: dict[str, Path] = {}
    for ext in (".shx", ".dbf", ".prj", ".cpg"):
        hit = siblings.get((shp.stem + ext).casefold())
        if hit is not None:
            found[ext] = hit
    missing = [ext for ext in _SIDECARS if ext not in found]
    if missing:
        raise InputError(
            f"{source} has {member(shp)} but no {', '.join(shp.stem + m for m in missing)}: "
            + "; ".join(_SIDECARS[m] for m in missing),
            f"zip {', '.join(shp.stem + m for m in missing)} with {shp.name} (export the"
            " shapefile again if you do not have them)",
            where=where,
        )
    with shp.open("rb") as handle:
        if handle.read(4) != b"\x00\x00\x27\x0a":
            raise InputError(f"{source} member {member(shp)!r} is not a shapefile .shp",
                             "export the shapefile again", where=where)
    codec, how = _shapefile_encoding(found, source, member)
    # GDAL picks sidecars by case-sensitive name; give them the .shp's stem exactly.
    for ext, p in found.items():
        want = p.with_name(shp.stem + ext)
        if p.name != want.name:
            p.rename(want)
            found[ext] = want
    frame, info = _read(str(shp), source=source, names=names, expected_driver="ESRI Shapefile",
                        encoding=_GDAL_ENCODING.get(codec, codec))
    declared = _info_crs(info)
    if declared is None:
        raise InputError(
            f"{source} member {member(found['.prj'])!r} does not describe a coordinate"
            " reference system GDAL understands",
            "export the shapefile again from the GIS, which writes a standard .prj",
            where=f"{source}: {member(found['.prj'])}",
        )
    return Vector(frame, shp.stem, declared, "ESRI Shapefile", codec,
                  (how, *info["_notes"]))


def _shapefile_encoding(
    found: dict[str, Path], source: str, name: Callable[[Path], str]
) -> tuple[str, str]:
    """Choose the codec for the .dbf text: the .cpg's, else UTF-8, else cp1252 by its LDID."""
    dbf = found[".dbf"]
    text_bytes, ldid = _dbf_text(dbf, source, name(dbf))
    if ".cpg" in found:
        raw = found[".cpg"].read_bytes()[:64].decode("ascii", "replace").strip()
        key = raw.upper().replace(" ", "").replace("_", "-")
        codec = _CPG_CODECS.get(key) or _CPG_CODECS.get(key.replace("-", ""))
        if codec is None:
            raise InputError(
                f"{source} member {name(found['.cpg'])!r} names the encoding"
                f" {raw[:40]!r}, which Placespend does not read",
                "re-export the shapefile as UTF-8 (its .cpg then says UTF-8)",
                where=f"{source}: {name(found['.cpg'])}",
            )
        _decode_dbf(text_bytes, codec, source, name(dbf), f"its .cpg says {raw}")
        return codec, f"{source}: attribute text read as {codec}, as its .cpg says ({raw})"
    try:
        text_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        if ldid in _LDID_CP1252:
            _decode_dbf(text_bytes, "cp1252", source, name(dbf), "its language driver byte")
            return "cp1252", (f"{source}: attribute text read as Windows-1252 (cp1252): no"
                              f" .cpg, and the .dbf language driver byte 0x{ldid:02X} says so")
        raise InputError(
            f"{source} member {name(dbf)!r} has attribute text that is not UTF-8"
            f" (byte 0x{text_bytes[exc.start]:02X} in record"
            f" {_record_of(exc.start, dbf)}), and there is no .cpg file saying which"
            f" encoding it is in (language driver byte 0x{ldid:02X})",
            "add a .cpg file holding the encoding's name (1252 for Windows-1252, UTF-8), or"
            " export the shapefile again as UTF-8",
            where=f"{source}: {name(dbf)}",
        ) from None
    return "utf-8", f"{source}: attribute text read as UTF-8 (no .cpg; the .dbf decodes as UTF-8)"


def _dbf_header(dbf: Path) -> tuple[int, int, int, int]:
    """Return (records, header length, record length, language driver id) of a .dbf."""
    with dbf.open("rb") as handle:
        head = handle.read(32)
    if len(head) < 32:
        raise ValueError("too short")
    records, header_len, record_len = struct.unpack("<IHH", head[4:12])
    return records, header_len, record_len, head[29]


def _dbf_text(dbf: Path, source: str, name: str) -> tuple[bytes, int]:
    """Return the record bytes of a .dbf (to test its encoding) and its language driver id."""
    try:
        records, header_len, record_len, ldid = _dbf_header(dbf)
        size = dbf.stat().st_size
        if header_len < 33 or record_len < 1 or header_len + records * record_len > size + 1:
            raise ValueError("inconsistent header")
    except (ValueError, struct.error):
        raise InputError(
            f"{source} member {name!r} is not a valid .dbf file",
            "export the shapefile again", where=f"{source}: {name}",
        ) from None
    with dbf.open("rb") as handle:
        handle.seek(header_len)
        body = handle.read(records * record_len)
    return body, ldid


def _record_of(offset: int, dbf: Path) -> int:
    """Return the 1-based record number holding byte ``offset`` of a .dbf's records."""
    _, _, record_len, _ = _dbf_header(dbf)
    return offset // max(record_len, 1) + 1


def _decode_dbf(body: bytes, codec: str, source: str, name: str, why: str) -> None:
    """Refuse .dbf text that does not decode in the encoding chosen for it."""
    try:
        body.decode(codec)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source} member {name!r} has attribute text that is not {codec} ({why}):"
            f" byte 0x{body[exc.start]:02X} has no character in it",
            "correct the .cpg to the encoding the file is really in, or export it as UTF-8",
            where=f"{source}: {name}",
        ) from None
