"""Reading uploaded tables (CSV, JSON records) into rows that know where they came from.

Every :class:`Row` carries the 1-based line of the file it starts on (header = line 1), or for
JSON the 1-based record number, so a value parser's :class:`~intake.values.BadValue` becomes a
:class:`~domain.errors.Problem` that names the row. Messages name the file by ``source``, the
name the user gave it, never by the server path it was saved under.

Encodings: text is read as UTF-8 (a byte-order mark is allowed) unless the caller passes
another ``encoding``. Nothing is guessed silently: if the bytes are not UTF-8 the error names
the byte, its line and, when the file decodes as Windows-1252, says to pass ``cp1252``.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from domain.errors import InputError, Problem, Rejected

__all__ = ["SUPPORTED_ENCODINGS", "Row", "not_utf8", "read_json_records", "read_rows"]

#: Encodings a table may be read in (Python codec names): UTF-8 and the single-byte encodings
#: in which a newline is always byte 0x0A, so line numbers stay right. ISO-8859-14 is the
#: Celtic encoding that has Welsh ŵ and ŷ, which Windows-1252 lacks.
SUPPORTED_ENCODINGS: dict[str, str] = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "cp1252": "Windows-1252 (cp1252)",
    "latin-1": "ISO-8859-1 (latin-1)",
    "iso8859-14": "ISO-8859-14 (latin-8, Celtic)",
    "iso8859-15": "ISO-8859-15 (latin-9)",
    "ascii": "ASCII",
}

_RAGGED_FIX = "quote any field containing a comma, and give every row every column"
_BOMS = ("\ufeff", "\u00ef\u00bb\u00bf")  # a UTF-8 BOM, and the same bytes read as cp1252


@dataclass(frozen=True)
class Row:
    """One data row of an uploaded table.

    ``line_no`` is the 1-based line of the file the row starts on (the header is line 1), or the
    1-based record number for JSON; ``values`` maps column name to stripped text (required
    columns under the name the caller asked for, others as the file spells them); ``source``
    is the file's name as the user gave it.
    """

    line_no: int
    values: dict[str, str]
    source: str = ""
    unit: str = "line"

    @property
    def where(self) -> str:
        """Name the row for people: ``spend.csv, line 12`` (``record 12`` for JSON)."""
        here = f"{self.unit} {self.line_no}"
        return f"{self.source}, {here}" if self.source else here


def _codec(encoding: str | None, source: str) -> str:
    """Return the Python codec name for ``encoding`` (default UTF-8), refusing unsupported ones."""
    if encoding is None:
        return "utf-8-sig"
    try:
        name = codecs.lookup(encoding.strip()).name
    except LookupError:
        name = ""
    if name == "utf-8":
        return "utf-8-sig"
    if name not in SUPPORTED_ENCODINGS:
        raise InputError(
            f"encoding {encoding!r} is not one Placespend reads tables in",
            "pass one of " + ", ".join(k for k in SUPPORTED_ENCODINGS if k != "utf-8-sig")
            + ", or save the file as UTF-8",
            where=source,
        )
    return name


def not_utf8(
    source: str, data: bytes, offset: int, *, encoding_option: bool = True
) -> InputError:
    """Build the error for bytes that are not UTF-8: the byte, its line, the likely encoding.

    ``offset`` is the 0-based offset of the first bad byte in ``data``. If ``data`` decodes as
    Windows-1252 the message says so; ``encoding_option`` says whether the reader can take an
    encoding (CSV can; JSON must be UTF-8, so its fix is to re-save the file).
    """
    byte = data[offset]
    line_no = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    try:
        char = bytes([byte]).decode("cp1252")
        data.decode("cp1252")
    except UnicodeDecodeError:
        likely = "it is not Windows-1252 either"
        fix = "save it as UTF-8 (in Excel: Save As, 'CSV UTF-8'), or pass the encoding it is in"
    else:
        likely = f"it looks like Windows-1252 (cp1252), where byte 0x{byte:02X} is {char!r}"
        fix = "pass encoding cp1252 (`--encoding cp1252`) or save it as UTF-8"
    if not encoding_option:
        fix = "save it as UTF-8" + (" (it is cp1252 now)" if "looks like" in likely else "")
    return InputError(
        f"{source} is not UTF-8 text: byte 0x{byte:02X} at offset {offset} (line {line_no},"
        f" byte {column} of the line) is not valid UTF-8; {likely}",
        fix,
        where=f"{source}, line {line_no}",
    )


def _decoded_lines(path: Path, codec: str, source: str) -> Iterator[str]:
    """Yield the file's physical lines decoded, with their line endings, strictly."""
    with Path(path).open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if b"\x00" in raw:
                raise InputError(
                    f"{source} has a NUL byte on line {line_no}: it is binary data, or text in"
                    " UTF-16",
                    "save it as CSV in UTF-8",
                    where=f"{source}, line {line_no}",
                )
            try:
                yield raw.decode(codec)
            except UnicodeDecodeError as exc:
                if codec == "utf-8-sig":
                    bom = 3 if raw.startswith(codecs.BOM_UTF8) else 0
                    offset = handle.tell() - len(raw) + exc.start + bom
                    handle.seek(0)
                    raise not_utf8(source, handle.read(), offset) from None
                raise InputError(
                    f"{source} is not {SUPPORTED_ENCODINGS[codec]} text: byte"
                    f" 0x{raw[exc.start]:02X} on line {line_no} (byte {exc.start + 1} of the"
                    " line) has no character in that encoding",
                    "pass the encoding the file is really in, or save it as UTF-8",
                    where=f"{source}, line {line_no}",
                ) from None


def _header_name(cell: str) -> str:
    """Strip a header cell of spaces and any byte-order mark."""
    name = cell.strip()
    for bom in _BOMS:
        if name.startswith(bom):
            name = name[len(bom):].strip()
    return name


def _columns(
    header: list[str], required: tuple[str, ...], source: str
) -> list[str]:
    """Map header cells to the keys rows use, checking every required column is there."""
    names = [_header_name(h) for h in header]
    wanted = {r.strip().casefold(): r for r in required}
    keys: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        folded = name.casefold()
        if not name:
            keys.append(f"column {i}")
            continue
        if folded in seen:
            raise InputError(
                f"{source} has the column {name!r} twice (columns {seen[folded]} and {i})",
                "keep one column of each name",
                where=f"{source}, line 1",
            )
        seen[folded] = i
        keys.append(wanted.get(folded, name))
    missing = [r for f, r in wanted.items() if f not in seen]
    if missing:
        found = ", ".join(repr(n) for n in names if n) or "no named columns"
        raise InputError(
            f"{source} has no column {', '.join(repr(m) for m in missing)} (found: {found})",
            f"name the columns in the first line: it must include {', '.join(required)}",
            where=f"{source}, line 1",
        )
    return keys


def read_rows(
    path: Path | str,
    required: tuple[str, ...],
    *,
    encoding: str | None = None,
    source: str,
    problems: list[Problem] | None = None,
) -> Iterator[Row]:
    """Yield the data rows of a CSV file, each with the line it starts on.

    Header names are matched to ``required`` case-insensitively, ignoring surrounding spaces
    and a byte-order mark; a missing required column raises :class:`~domain.errors.InputError`
    naming the columns found. Blank lines are skipped; quoted fields spanning lines keep line
    numbers right. A row with more or fewer fields than the header is a
    :class:`~domain.errors.Problem`: appended to ``problems`` if the caller passes a list (to
    report with its own), else all of them are raised as one :class:`~domain.errors.Rejected`
    once the file has been read. ``encoding`` (default UTF-8, BOM allowed) must be one of
    :data:`SUPPORTED_ENCODINGS`; bytes that do not decode raise InputError naming the byte,
    its line and the likely encoding. ``source`` names the file in every message.
    """
    codec = _codec(encoding, source)
    collect = problems if problems is not None else []
    if not Path(path).is_file():
        raise InputError(f"{source} does not exist (or is not a file)",
                         "check the file name and path")
    lines = _decoded_lines(Path(path), codec, source)
    reader = csv.reader(lines, strict=True)
    try:
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(
                f"{source} is empty",
                f"supply a CSV whose first line names the columns {', '.join(required)}",
                where=source,
            ) from None
        keys = _columns(header, required, source)
        last = reader.line_num
        for cells in reader:
            start, last = last + 1, reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(keys):
                collect.append(
                    Problem(
                        where=f"{source}, line {start}",
                        reason=f"the row has {len(cells)} fields, the header has {len(keys)}",
                        fix=_RAGGED_FIX,
                        row=start,
                    )
                )
                continue
            yield Row(start, dict(zip(keys, (c.strip() for c in cells), strict=True)), source)
    except csv.Error as exc:
        line = reader.line_num
        raise InputError(
            f"{source} is not valid CSV at line {line} ({exc})",
            "check quoting: a field containing commas, quotes or line breaks must be in double"
            " quotes, and a quote inside it doubled",
            where=f"{source}, line {line}",
        ) from None
    if problems is None and collect:
        raise Rejected(source, collect)


# --------------------------------------------------------------------------- JSON


def _json_text(path: Path, source: str) -> str:
    """Read a JSON file as UTF-8 (BOM allowed), naming the byte and line that is not."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if data.startswith(codecs.BOM_UTF8) else 0)
        raise not_utf8(source, data, offset, encoding_option=False) from None


def _cell(value: object) -> str | None:
    """Render one JSON value as the text a parser takes; None if it is an object or array."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict | list):
        return None
    return str(value)


def read_json_records(
    path: Path | str,
    source: str,
    *,
    required: tuple[str, ...] = (),
    problems: list[Problem] | None = None,
) -> Iterator[Row]:
    """Yield the records of a JSON array of objects (or of ``{"lines": [...]}``) as rows.

    ``line_no`` is the 1-based record number. Numbers keep their exact text (``1234.50`` stays
    ``"1234.50"``, never a float), so :func:`~intake.values.parse_amount` sees what was written;
    ``null`` becomes ``""``. Invalid JSON raises :class:`~domain.errors.InputError` naming the
    line and column; a top level that is neither an array nor ``{"lines": [...]}`` raises too.
    An item that is not an object, a value that is an object or array, or a missing
    ``required`` key is a :class:`~domain.errors.Problem`, collected as :func:`read_rows` does.
    """
    text = _json_text(Path(path), source)
    if not text.strip():
        raise InputError(f"{source} is empty", "supply a JSON array of records", where=source)
    try:
        doc = json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            "check the file with a JSON validator; it must be an array of objects",
            where=f"{source}, line {exc.lineno}",
        ) from None
    except RecursionError:
        raise InputError(
            f"{source} nests arrays or objects too deeply to be a table",
            "supply a flat array of records",
            where=source,
        ) from None
    if isinstance(doc, dict) and "lines" in doc:
        doc = doc["lines"]
    if not isinstance(doc, list):
        kind = "an object without a 'lines' member" if isinstance(doc, dict) else "a single value"
        raise InputError(
            f"{source} is {kind}, not an array of records",
            'supply [{"column": "value", ...}, ...] or {"lines": [...]}',
            where=source,
        )
    collect = problems if problems is not None else []
    wanted = {r.casefold(): r for r in required}
    for number, item in enumerate(doc, start=1):
        where = f"{source}, record {number}"
        if not isinstance(item, dict):
            collect.append(Problem(
                where=where,
                reason=f"record is {_json_kind(item)}, not an object",
                fix='write each record as an object: {"column": "value", ...}',
                feature=None,
                row=number,
            ))
            continue
        values: dict[str, str] = {}
        bad = False
        for key, value in item.items():
            cell = _cell(value)
            name = wanted.get(str(key).strip().casefold(), str(key).strip())
            if cell is None:
                collect.append(Problem(
                    where=where,
                    reason=f"{name} is {_json_kind(value)}, not a single value",
                    fix="give each field a string or a number",
                    field=name,
                    row=number,
                ))
                bad = True
                continue
            values[name] = cell
        missing = [r for r in required if r not in values]
        if missing and not bad:
            collect.append(Problem(
                where=where,
                reason=f"record has no {', '.join(repr(m) for m in missing)}",
                fix=f"give every record the keys {', '.join(required)}",
                field=missing[0],
                row=number,
            ))
            continue
        if not bad:
            yield Row(number, values, source, "record")
    if problems is None and collect:
        raise Rejected(source, collect)


def _json_kind(value: object) -> str:
    """Name a JSON value's type for a message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"
