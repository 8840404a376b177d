"""Spend lines, loaded in batches; a newer batch for a (body, year) supersedes the older one.

Lines are never changed or deleted. Which batch counts for a body and year is the newest
:data:`spend_scope` row (the ``spend_current`` view); a run records the ids of the lines it used,
so a correction changes the next run, never an earlier one.
"""

from __future__ import annotations

import json

import pandas as pd

from store.db import Connection


def current_scopes(conn: Connection, body_years: list[tuple[int, str]],
                   dataset: str = "main") -> dict:
    """The batch now counting for each (body id, year) of ``body_years`` in ``dataset``."""
    if not body_years:
        return {}
    rows = conn.execute(
        "SELECT s.* FROM spend_scope s JOIN spend_current c USING (batch_id, body_id,"
        " financial_year, dataset) WHERE s.dataset = %s AND (s.body_id, s.financial_year) IN"
        " (SELECT * FROM unnest(%s::int[], %s::text[]))",
        (dataset, [b for b, _ in body_years], [y for _, y in body_years]),
    ).fetchall()
    return {(r["body_id"], r["financial_year"]): r for r in rows}


def body_year_total(conn: Connection, body_id: int, financial_year: str,
                    dataset: str = "main") -> int | None:
    """The expenditure pence now counting for a body, year and dataset, or None if none."""
    row = conn.execute(
        "SELECT s.total_pence FROM spend_scope s JOIN spend_current c USING (batch_id, body_id,"
        " financial_year, dataset) WHERE s.body_id = %s AND s.financial_year = %s"
        " AND s.dataset = %s",
        (body_id, financial_year, dataset),
    ).fetchone()
    return None if row is None else int(row["total_pence"])


def save_spend_lines(conn: Connection, batch_id: int, lines: pd.DataFrame,
                     supersedes: dict[tuple[int, str], int],
                     content: dict[tuple[int, str], str], dataset: str = "main",
                     share_set: str | None = None) -> None:
    """Insert a batch's lines and the (body, year) pairs it covers.

    ``lines``: body_id, financial_year, line, cofog_code, amount_pence, kind, scheme,
    source_code, located_by, area_set_id, area_code, postcode, site_id, x, y (EPSG:27700, for
    points), source_row. ``supersedes``: the batch each (body id, year) replaces.
    """
    columns = ("batch_id, body_id, financial_year, line, cofog_code, amount_pence, kind, scheme,"
               " source_code, located_by, area_set_id, area_code, postcode, site_id, geom,"
               " source_row, shares")

    def opt(v: object) -> object:
        return None if v is None or (isinstance(v, float) and v != v) else v

    with conn.cursor().copy(f"COPY spend_line ({columns}) FROM STDIN") as copy:
        for r in lines.itertuples(index=False):
            x, y = opt(r.x), opt(r.y)
            geom = None if x is None else f"SRID=27700;POINT({float(x)!r} {float(y)!r})"
            site = opt(r.site_id)
            area_set = opt(r.area_set_id)
            copy.write_row((
                batch_id, int(r.body_id), r.financial_year, r.line, r.cofog_code,
                int(r.amount_pence), r.kind, r.scheme, opt(r.source_code), r.located_by,
                None if area_set is None else int(area_set), opt(r.area_code), opt(r.postcode),
                None if site is None else int(site), geom, int(r.source_row),
                _shares_json(getattr(r, "shares", None), set_slug=share_set),
            ))
    spend = lines["kind"] == "expenditure"
    scopes = (
        lines.assign(spend=lines["amount_pence"].where(spend, 0),
                     income=lines["amount_pence"].where(~spend, 0))
        .groupby(["body_id", "financial_year"], sort=True)
        .agg(lines=("amount_pence", "size"), total=("spend", "sum"), income=("income", "sum"))
        .reset_index()
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO spend_scope (batch_id, body_id, financial_year, dataset, lines,"
            " total_pence, income_pence, content_sha256, supersedes)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(batch_id, int(s.body_id), s.financial_year, dataset, int(s.lines), int(s.total),
              int(s.income), content.get((int(s.body_id), s.financial_year)),
              supersedes.get((int(s.body_id), s.financial_year)))
             for s in scopes.itertuples(index=False)],
        )


def _shares_json(shares: object, *, set_slug: str | None) -> str | None:
    if not isinstance(shares, dict):
        return None
    return json.dumps({"set": set_slug, "shares": shares}, sort_keys=True)


#: How a spend line is read with its body and reporting area (``l``, ``b``, ``s``).
LINE_JOINS = (" FROM spend_line l JOIN body b ON b.id = l.body_id"
              " LEFT JOIN boundary_set s ON s.id = l.area_set_id")
#: The dataset of a line (``sc``): its batch's scope for its body and year.
_SCOPE_JOIN = (" JOIN spend_scope sc ON sc.batch_id = l.batch_id AND sc.body_id = l.body_id"
               " AND sc.financial_year = l.financial_year")
_COLUMNS = ["line_id", "body", "line", "cofog_code", "amount_pence", "area_set", "area_code",
            "source_row", "x", "y", "source_code", "shares", "dataset", "site_id"]


def read_lines(conn: Connection, *, financial_year: str | None = None,
               run_id: int | None = None) -> pd.DataFrame:
    """The expenditure lines counting now for a year, or the lines of a run, by id.

    For a year: the lines of the current batch of each body (a superseded batch's lines are
    not read), expenditure only (income is kept apart), reported for an area or at a point.
    For a run: the
    lines it used, net of what it counted as passed on to another body and of what its netting
    rules took off, with the proxy it gave each.

    Columns: line_id, body, line, cofog_code, amount_pence, area_set, area_code, source_row,
    x, y (EPSG:27700, for a line reported at a point; else NaN), source_code (the function as
    given: an RS line, a COFOG group...), shares (the body's own estimate, or None), dataset
    (the spend dataset the line was loaded as), site_id (the site a line was reported at, or
    None), and proxy for a run.
    """
    if (financial_year is None) == (run_id is None):
        raise ValueError("give a financial year or a run, not both")
    select = ("SELECT l.id AS line_id, b.slug AS body, l.line, l.cofog_code, l.amount_pence,"
              " s.slug AS area_set, l.area_code, l.source_row, ST_X(l.geom) AS x,"
              " ST_Y(l.geom) AS y, l.source_code, l.shares, sc.dataset, l.site_id")
    if run_id is None:
        sql = (select + LINE_JOINS + _SCOPE_JOIN
               + " JOIN (SELECT DISTINCT batch_id, body_id, financial_year"
               " FROM spend_current) c ON c.batch_id = l.batch_id"
               " AND c.body_id = l.body_id AND c.financial_year = l.financial_year"
               " WHERE l.financial_year = %s AND l.kind = 'expenditure' ORDER BY l.id")
        rows = conn.execute(sql, (financial_year,)).fetchall()
        return pd.DataFrame(rows, columns=_COLUMNS)
    select = select.replace("l.amount_pence,", "l.amount_pence - r.passed_on_pence"
                            " - r.netted_pence AS amount_pence,")
    sql = (select + ", r.proxy" + LINE_JOINS + _SCOPE_JOIN + " JOIN run_line r ON r.line_id = l.id"
           " WHERE r.run_id = %s ORDER BY l.id")
    return pd.DataFrame(conn.execute(sql, (run_id,)).fetchall(), columns=[*_COLUMNS, "proxy"])


def lines_for_year(conn: Connection, financial_year: str) -> pd.DataFrame:
    """Every spend line counting now for a year, ordered by id (see :func:`read_lines`)."""
    return read_lines(conn, financial_year=financial_year)


def attributions(conn: Connection, run_id: int) -> list[str]:
    """The attribution of every spend batch a run read, in batch order (for map credits)."""
    rows = conn.execute(
        "SELECT DISTINCT u.id, u.options->>'attribution' AS attribution FROM run_line r"
        " JOIN spend_line l ON l.id = r.line_id JOIN upload_batch u ON u.id = l.batch_id"
        " WHERE r.run_id = %s ORDER BY u.id", (run_id,),
    ).fetchall()
    out: list[str] = []
    for r in rows:
        if r["attribution"] and r["attribution"] not in out:
            out.append(r["attribution"])
    return out


def known_names(conn: Connection) -> dict[str, set[str]]:
    """What a proxy table or netting rules may name.

    That is loaded bodies, datasets, and line names, mapped codes, COFOG codes.
    """
    bodies = {r["slug"] for r in conn.execute("SELECT slug FROM body")}
    names = {r["n"] for r in conn.execute(
        "SELECT DISTINCT line AS n FROM spend_line UNION SELECT source_code FROM function_map"
        " UNION SELECT code FROM cofog_function UNION SELECT DISTINCT source_code"
        " FROM spend_line WHERE source_code IS NOT NULL")}
    datasets = {r["dataset"] for r in conn.execute("SELECT DISTINCT dataset FROM spend_scope")}
    return {"bodies": bodies, "names": names, "datasets": datasets}
