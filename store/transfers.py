"""Transfers between bodies, and the flows each run counted."""

from __future__ import annotations

import pandas as pd

from store.db import Connection


def save_transfers(conn: Connection, batch_id: int, rows: pd.DataFrame) -> None:
    """Insert a batch's transfers.

    ``rows``: payer_id, payee_id, financial_year, cofog_code, amount_pence, recorded_by,
    reference, source_row.
    """
    with conn.cursor().copy(
        "COPY transfer (batch_id, payer_body_id, payee_body_id, financial_year, cofog_code,"
        " amount_pence, recorded_by, reference, source_row) FROM STDIN"
    ) as copy:
        for r in rows.itertuples(index=False):
            copy.write_row((batch_id, int(r.payer_id), int(r.payee_id), r.financial_year,
                            r.cofog_code, int(r.amount_pence), r.recorded_by, r.reference,
                            int(r.source_row)))


def transfers_for_year(conn: Connection, financial_year: str) -> pd.DataFrame:
    """The transfers counting now for a year: from each recording body, its newest batch.

    A body's corrected transfers file replaces its earlier one for the year, as spend does.
    Columns: transfer_id, payer, payee, cofog_code, amount_pence, recorded_by.
    """
    rows = conn.execute(
        "WITH t AS (SELECT t.*, CASE t.recorded_by WHEN 'payee' THEN t.payee_body_id"
        "  ELSE t.payer_body_id END AS recorder FROM transfer t WHERE t.financial_year = %s),"
        " newest AS (SELECT recorder, recorded_by, max(batch_id) AS batch_id FROM t"
        "  GROUP BY recorder, recorded_by)"
        " SELECT t.id AS transfer_id, p.slug AS payer, q.slug AS payee, t.cofog_code,"
        " t.amount_pence, t.recorded_by FROM t JOIN newest n USING (recorder, recorded_by,"
        " batch_id) JOIN body p ON p.id = t.payer_body_id JOIN body q ON q.id = t.payee_body_id"
        " ORDER BY t.id", (financial_year,),
    ).fetchall()
    return pd.DataFrame(rows, columns=["transfer_id", "payer", "payee", "cofog_code",
                                       "amount_pence", "recorded_by"])


def save_flows(conn: Connection, run_id: int, flows: pd.DataFrame,
               body_ids: dict[str, int]) -> None:
    """Keep the transfers a run counted.

    ``flows``: payer, payee, cofog_code, amount_pence, recorded, deducted_pence,
    not_deducted_pence (see :func:`allocation.transfers.net_of_transfers`).
    """
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO run_flow (run_id, payer_body_id, payee_body_id, cofog_code,"
            " amount_pence, records, deducted_pence, not_deducted_pence)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(run_id, body_ids[f.payer], body_ids[f.payee], f.cofog_code, int(f.amount_pence),
              int(f.recorded), int(f.deducted_pence), int(f.not_deducted_pence))
             for f in flows.itertuples(index=False)],
        )


def run_flows(conn: Connection, run_id: int) -> list[dict]:
    """The flows a run counted: payer, payee, function, pence, and how much left the payer."""
    return conn.execute(
        "SELECT p.slug AS payer, p.name AS payer_name, q.slug AS payee, q.name AS payee_name,"
        " f.cofog_code, f.amount_pence, f.records, f.deducted_pence, f.not_deducted_pence"
        " FROM run_flow f JOIN body p ON p.id = f.payer_body_id"
        " JOIN body q ON q.id = f.payee_body_id WHERE f.run_id = %s ORDER BY f.id", (run_id,),
    ).fetchall()
