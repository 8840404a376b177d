"""Builders of good and bad upload files in a test's tmp_path (for tests of ``intake``)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas
import shapely

#: Attribute text that must survive every reader: a pound sign and a Welsh w-circumflex.
WELSH = "Pen-y-ŵ £"
#: The same test for Windows-1252, which has £ and â but no ŵ (Welsh needs ISO-8859-14).
CP1252_TEXT = "Bryn-â £"


def wards(name: str = WELSH, crs: str = "EPSG:27700") -> geopandas.GeoDataFrame:
    """Two square wards with a code and a name."""
    return geopandas.GeoDataFrame(
        {"code": ["E05000001", "E05000002"], "name": [name, "Ward Two"]},
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
        crs=crs,
    )


def feature_collection(crs: dict | None = None, name: str = WELSH) -> dict:
    """A GeoJSON FeatureCollection of one lon/lat square, with an optional legacy crs member."""
    doc: dict = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": "E05000001", "name": name},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[-0.1, 51.5], [-0.09, 51.5], [-0.09, 51.51], [-0.1, 51.5]]],
                },
            }
        ],
    }
    if crs is not None:
        doc["crs"] = crs
    return doc


def write_geojson(path: Path, doc: dict | None = None) -> Path:
    """Write a GeoJSON document as UTF-8."""
    path.write_text(json.dumps(doc or feature_collection(), ensure_ascii=False), encoding="utf-8")
    return path


def write_shapefile(
    folder: Path,
    *,
    stem: str = "wards",
    encoding: str = "UTF-8",
    name: str = WELSH,
    cpg: str | None = "keep",
    ldid: int | None = None,
) -> dict[str, Path]:
    """Write a shapefile of :func:`wards` into ``folder``; return its parts by extension.

    ``cpg``: ``"keep"`` leaves the .cpg GDAL wrote, ``None`` deletes it, other text replaces
    it. ``ldid`` overwrites the .dbf language driver byte.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wards(name).to_file(folder / f"{stem}.shp", encoding=encoding, engine="pyogrio")
    parts = {p.suffix.lower(): p for p in folder.iterdir() if p.stem == stem}
    if cpg is None:
        parts.pop(".cpg").unlink()
    elif cpg != "keep":
        parts[".cpg"] = folder / f"{stem}.cpg"
        parts[".cpg"].write_text(cpg)
    if ldid is not None:
        data = bytearray(parts[".dbf"].read_bytes())
        data[29] = ldid
        parts[".dbf"].write_bytes(bytes(data))
    return parts


def zip_files(path: Path, members: dict[str, bytes | Path]) -> Path:
    """Write a ZIP whose members are named as given, from bytes or files."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            data = content.read_bytes() if isinstance(content, Path) else content
            archive.writestr(name, data)
    return path


def zip_shapefile(path: Path, parts: dict[str, Path], *, drop: str | None = None,
                  folder: str = "") -> Path:
    """Zip a shapefile's parts (optionally leaving one extension out)."""
    return zip_files(
        path, {folder + p.name: p for ext, p in parts.items() if ext != drop}
    )


def zip_raw(path: Path, infos: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    """Write a ZIP from hand-made ZipInfo entries (traversal names, symlinks, flags)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in infos:
            archive.writestr(info, data)
    return path


def symlink_info(name: str) -> zipfile.ZipInfo:
    """A ZipInfo that says its member is a symbolic link."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so the mode bits mean what they say
    info.external_attr = 0o120777 << 16
    return info


def zip_bomb(path: Path, size: int, name: str = "wards.dbf") -> Path:
    """A ZIP with one member of ``size`` zero bytes (compresses about 1000 to 1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as out:
            block = b"\0" * (1024 * 1024)
            left = size
            while left > 0:
                out.write(block[: min(left, len(block))])
                left -= len(block)
    return path


def lying_zip(path: Path, real: bytes, declared: int, name: str = "wards.dbf") -> Path:
    """A ZIP whose member header declares ``declared`` bytes but unpacks to ``real``."""
    zip_files(path, {name: real})
    data = bytearray(path.read_bytes())
    # Patch the uncompressed size in the local header (offset 22) and the central directory.
    size = len(real).to_bytes(4, "little")
    new = declared.to_bytes(4, "little")
    local = data.find(b"PK\x03\x04")
    data[local + 22: local + 26] = new
    central = data.find(b"PK\x01\x02")
    assert data[central + 24: central + 28] == size
    data[central + 24: central + 28] = new
    path.write_bytes(bytes(data))
    return path


def encrypted_zip(path: Path, name: str = "wards.dbf") -> Path:
    """A ZIP whose one member is flagged as encrypted (zipfile cannot write real encryption)."""
    zip_files(path, {name: b"secret"})
    data = bytearray(path.read_bytes())
    local = data.find(b"PK\x03\x04")
    data[local + 6] |= 0x1
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 0x1
    path.write_bytes(bytes(data))
    return path
