"""Bulk writes with binary COPY, built from numpy arrays without a Python loop per row.

PostgreSQL's binary COPY format is a header, then per row a 16-bit field count and, per field,
a 32-bit length and the value in network byte order, then a trailer. For fixed-width integer
columns the whole stream is one numpy structured array, so millions of rows are written at the
speed of the socket (``store.runs`` writes a run's atom product this way).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from psycopg import sql

from store.db import Connection

_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_WIDTH = {"int4": (">i4", 4), "int8": (">i8", 8)}
#: Rows per chunk written to the socket (bounds the memory of the encoded stream).
_CHUNK = 1_000_000


def copy_integers(
    conn: Connection, table: str, columns: Mapping[str, tuple[np.ndarray, str]]
) -> int:
    """Append rows of integer columns to ``table``: ``{column: (values, "int4"|"int8")}``.

    Every array must have the same length. Returns the number of rows written.
    """
    names = list(columns)
    arrays = [np.asarray(columns[n][0]) for n in names]
    kinds = [columns[n][1] for n in names]
    n_rows = len(arrays[0]) if arrays else 0
    if any(len(a) != n_rows for a in arrays):
        raise ValueError("every column must have the same number of rows")
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, kind in enumerate(kinds):
        code, _ = _WIDTH[kind]
        fields += [(f"len{i}", ">i4"), (f"val{i}", code)]
    dtype = np.dtype(fields)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with conn.cursor().copy(statement) as copy:
        copy.write(_HEADER)
        for start in range(0, n_rows, _CHUNK):
            stop = min(start + _CHUNK, n_rows)
            rows = np.empty(stop - start, dtype=dtype)
            rows["count"] = len(names)
            for i, (values, kind) in enumerate(zip(arrays, kinds, strict=True)):
                rows[f"len{i}"] = _WIDTH[kind][1]
                rows[f"val{i}"] = values[start:stop]
            copy.write(rows.tobytes())
        copy.write(_TRAILER)
    return n_rows
