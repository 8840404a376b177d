"""Spend lines, loaded in batches keyed by content hash (the same file twice is refused)."""

from __future__ import annotations

import pandas as pd

from domain.errors import DuplicateUpload
from store.db import Connection


def find_batch(conn: Connection, kind: str, sha256: str) -> dict | None:
    """The batch that already holds this content, or None."""
    return conn.execute(
        "SELECT * FROM upload_batch WHERE kind = %s AND sha256 = %s", (kind, sha256)
    ).fetchone()


def save_spend_batch(
    conn: Connection, *, filename: str, sha256: str, lines: pd.DataFrame,
    body_ids: dict[str, int], set_ids: dict[str, int],
) -> int:
    """Insert a batch of spend lines; DuplicateUpload if the same content was loaded before.

    ``lines``: body, financial_year, line, cofog_code, amount_pence, area_set, area_code,
    source_row.
    """
    seen = find_batch(conn, "spend", sha256)
    if seen is not None:
        raise DuplicateUpload(
            f"{filename} was already loaded as batch {seen['id']} on "
            f"{seen['loaded_at']:%Y-%m-%d %H:%M}",
            "nothing to do; to replace figures, load a corrected file (it will differ)",
        )
    batch = conn.execute(
        "INSERT INTO upload_batch (kind, filename, sha256, rows) VALUES ('spend', %s, %s, %s)"
        " RETURNING id",
        (filename, sha256, len(lines)),
    ).fetchone()["id"]
    with conn.cursor().copy(
        "COPY spend_line (batch_id, body_id, financial_year, line, cofog_code, amount_pence,"
        " area_set_id, area_code, source_row) FROM STDIN"
    ) as copy:
        for r in lines.itertuples(index=False):
            copy.write_row(
                (batch, body_ids[r.body], r.financial_year, r.line, r.cofog_code,
                 int(r.amount_pence), set_ids[r.area_set], r.area_code, int(r.source_row))
            )
    return int(batch)


#: How a spend line is read with its body and reporting area (``l``, ``b``, ``s``).
LINE_JOINS = (" FROM spend_line l JOIN body b ON b.id = l.body_id"
              " JOIN boundary_set s ON s.id = l.area_set_id")
_COLUMNS = ["line_id", "body", "line", "cofog_code", "amount_pence", "area_set", "area_code",
            "source_row"]


def read_lines(conn: Connection, *, financial_year: str | None = None,
               run_id: int | None = None) -> pd.DataFrame:
    """Spend lines of a year, or the lines of a run (with the proxy it gave each), by id.

    Columns: line_id, body, line, cofog_code, amount_pence, area_set, area_code, source_row,
    and proxy for a run.
    """
    if (financial_year is None) == (run_id is None):
        raise ValueError("give a financial year or a run, not both")
    select = ("SELECT l.id AS line_id, b.slug AS body, l.line, l.cofog_code, l.amount_pence,"
              " s.slug AS area_set, l.area_code, l.source_row")
    if run_id is None:
        sql = select + LINE_JOINS + " WHERE l.financial_year = %s ORDER BY l.id"
        rows = conn.execute(sql, (financial_year,)).fetchall()
        return pd.DataFrame(rows, columns=_COLUMNS)
    sql = (select + ", r.proxy" + LINE_JOINS + " JOIN run_line r ON r.line_id = l.id"
           " WHERE r.run_id = %s ORDER BY l.id")
    return pd.DataFrame(conn.execute(sql, (run_id,)).fetchall(), columns=[*_COLUMNS, "proxy"])


def lines_for_year(conn: Connection, financial_year: str) -> pd.DataFrame:
    """Every spend line of a year, ordered by id (see :func:`read_lines`)."""
    return read_lines(conn, financial_year=financial_year)
