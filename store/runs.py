"""Runs and publications: written whole, never changed.

A run (its line outcomes, slices and atom product) is inserted inside the caller's transaction
together with any publications made with it, so a failure leaves nothing behind; triggers in
the schema refuse any later UPDATE, DELETE or TRUNCATE. Publishing appends to
``publication_event``; ``collection_current`` (a view) is each collection id's latest event.
Each run and publication is sealed (:func:`seal_run`, :func:`seal_collection`) with the
SHA-256 of what it holds, in the same transaction; ``placespend verify`` recomputes it.
A run attempt (:func:`start_attempt`) records each request to make a run and how it ended.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import Json, Jsonb

from domain.errors import NotFound
from store.copy import copy_integers
from store.db import Connection
from store.spend import LINE_JOINS

_RUN_LOCK = 7_311_943  # advisory lock: one run or publication written at a time


@dataclass(frozen=True)
class CollectionWrite:
    """One target set's view of a run, published as an OGC API collection."""

    collection_id: str
    target_set_id: int
    title: str
    description: str
    target_alloc: pd.DataFrame  # target_code, slice_id, amount_pence
    allocated_pence: int
    outside_pence: int
    features: pd.DataFrame  # code + flat properties, one row per target unit
    schema: list[dict[str, Any]]  # name, type, nullable, description of each property
    #: How small areas went to targets: "split" (by share) or "best_fit" (whole).
    fit: str = "split"


def lock_runs(conn: Connection) -> None:
    """Serialise run and publication writers until the end of the current transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RUN_LOCK,))


def lock_inputs(conn: Connection, inputs_sha256: str) -> None:
    """Hold a lock on making the run of these inputs to the end of the transaction.

    A second request for the same run waits for the first, then finds it (and reuses it)
    instead of computing it again.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (7_311_945, inputs_sha256))


def find_run(conn: Connection, inputs_sha256: str) -> dict | None:
    """The run made from exactly these inputs, or None."""
    return conn.execute(
        "SELECT * FROM run WHERE inputs_sha256 = %s", (inputs_sha256,)
    ).fetchone()


def get_run(conn: Connection, run_id: int) -> dict:
    """One run with its totals, its publications and which of them are current."""
    run = conn.execute("SELECT * FROM run WHERE id = %s", (run_id,)).fetchone()
    if run is None:
        raise NotFound(f"no run {run_id}", "list runs with GET /runs", where="run")
    run["collections"] = conn.execute(
        "SELECT c.id, s.slug AS target_set, c.allocated_pence, c.outside_pence,"
        " (cur.run_id IS NOT NULL) AS current"
        " FROM collection c JOIN boundary_set s ON s.id = c.target_set_id"
        " LEFT JOIN collection_current cur ON cur.id = c.id AND cur.run_id = c.run_id"
        " WHERE c.run_id = %s ORDER BY c.id",
        (run_id,),
    ).fetchall()
    return run


def list_runs(conn: Connection) -> list[dict]:
    """Every run, newest first, with its headline totals."""
    return conn.execute(
        "SELECT id, financial_year, created_at, algorithm_version, code_version, status,"
        " conservation->'total_pence' AS total_pence,"
        " conservation->'allocated_pence' AS allocated_pence,"
        " conservation->'unallocated_pence' AS unallocated_pence"
        " FROM run ORDER BY id DESC"
    ).fetchall()


def current_run(conn: Connection) -> int | None:
    """The run most recently published to any collection, or None.

    Runs on the default location basis (*served*) come first: a run on the delivered basis
    answers only when it is the only kind published.
    """
    row = conn.execute(
        "SELECT c.run_id FROM collection_current c JOIN run r ON r.id = c.run_id"
        " ORDER BY coalesce(r.params->>'basis', 'served') = 'served' DESC, c.updated_at DESC,"
        " c.run_id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else int(row["run_id"])


def point_collections(conn: Connection, run_id: int, collection_ids: list[str],
                      by: str = "cli") -> list[str]:
    """Make these collections of ``run_id`` the ones served to the public; return their ids.

    One event per collection is appended (nothing is overwritten): in one transaction, so
    readers see every collection move at once.
    """
    rows = conn.execute(
        "INSERT INTO publication_event (collection_id, run_id, published_by)"
        " SELECT id, run_id, %s FROM collection WHERE run_id = %s AND id = ANY(%s)"
        " ORDER BY id RETURNING collection_id",
        (by, run_id, collection_ids),
    ).fetchall()
    return sorted(r["collection_id"] for r in rows)


# ---- seals: the hash of what a run and a publication hold -------------------------------

#: What a run's seal covers, each as one COPY query in a fixed order. No serial ids (of the
#: run, its atom set, its lines, its target set), which a failed attempt may have used up: a
#: retry of the same inputs seals the same hash.
_RUN_PARTS = (
    # the atom set by its name, not its serial id (a failed attempt may have used one up)
    "SELECT r.financial_year, a.slug, r.algorithm_version, r.params::text,"
    " r.conservation::text FROM run r JOIN atom_set a ON a.id = r.atom_set_id"
    " WHERE r.id = {run}",
    # each line by its batch's content hash and its row (ids are used up by failed loads)
    "SELECT b.sha256, s.source_row, l.proxy, l.method, l.allocated_pence, l.reason,"
    " l.passed_on_pence, l.netted_pence FROM run_line l JOIN spend_line s ON s.id = l.line_id"
    " JOIN upload_batch b ON b.id = s.batch_id WHERE l.run_id = {run}"
    " ORDER BY b.sha256, s.source_row",
    "SELECT s.slice_id, b.slug, s.cofog_code, s.method FROM run_slice s"
    " JOIN body b ON b.id = s.body_id WHERE s.run_id = {run} ORDER BY s.slice_id",
    "SELECT atom_id, slice_id, amount_pence FROM atom_allocation WHERE run_id = {run}"
    " ORDER BY atom_id, slice_id",
    "SELECT p.slug, q.slug, f.cofog_code, f.amount_pence, f.records, f.deducted_pence,"
    " f.not_deducted_pence FROM run_flow f JOIN body p ON p.id = f.payer_body_id"
    " JOIN body q ON q.id = f.payee_body_id WHERE f.run_id = {run}"
    " ORDER BY 1, 2, 3 NULLS FIRST, 4, 5, 6, 7",
)
#: What a publication's seal covers (its description names the run id, so it is left out).
_COLLECTION_PARTS = (
    "SELECT c.id, t.slug, t.version, c.fit, c.title, c.properties::text, c.allocated_pence,"
    " c.outside_pence FROM collection c JOIN boundary_set t ON t.id = c.target_set_id"
    " WHERE c.id = {id} AND c.run_id = {run}",
    "SELECT t.target_code, t.slice_id, t.amount_pence FROM target_allocation t"
    " JOIN collection c ON c.run_id = t.run_id AND c.target_set_id = t.target_set_id"
    " AND c.fit = t.fit WHERE c.id = {id} AND c.run_id = {run}"
    " ORDER BY t.target_code, t.slice_id",
    "SELECT code, properties::text FROM collection_feature"
    " WHERE collection_id = {id} AND run_id = {run} ORDER BY code",
)


def _hash_of(conn: Connection, parts: tuple[str, ...], params: dict[str, Any]) -> str:
    """SHA-256 of the COPY text of each query, streamed (any size), parts kept apart."""
    h = hashlib.sha256()
    with conn.cursor() as cur:
        for i, query in enumerate(parts):
            h.update(f"\x00part {i}\n".encode())
            q = sql.SQL("COPY ({}) TO STDOUT").format(
                sql.SQL(query).format(**{k: sql.Literal(v) for k, v in params.items()}))
            with cur.copy(q) as copy:
                for chunk in copy:
                    h.update(chunk)
    return h.hexdigest()


def results_hash(conn: Connection, run_id: int) -> str:
    """The SHA-256 of what run ``run_id`` holds, as sealed and as `placespend verify` checks."""
    return _hash_of(conn, _RUN_PARTS, {"run": run_id})


def collection_hash(conn: Connection, collection_id: str, run_id: int) -> str:
    """The SHA-256 of what one publication holds."""
    return _hash_of(conn, _COLLECTION_PARTS, {"id": collection_id, "run": run_id})


def seal_run(conn: Connection, run_id: int) -> str:
    """Store the run's results hash (inside the transaction that wrote it); return it."""
    digest = results_hash(conn, run_id)
    conn.execute("INSERT INTO run_seal (run_id, results_sha256) VALUES (%s, %s)",
                 (run_id, digest))
    return digest


def seal_collection(conn: Connection, collection_id: str, run_id: int) -> str:
    """Store one publication's hash (inside the transaction that wrote it); return it."""
    digest = collection_hash(conn, collection_id, run_id)
    conn.execute("INSERT INTO collection_seal (collection_id, run_id, results_sha256)"
                 " VALUES (%s, %s, %s)", (collection_id, run_id, digest))
    return digest


def seals(conn: Connection, run_ids: list[int] | None = None) -> list[dict]:
    """Each run (all, or these) and publication with its stored seal (None if unsealed)."""
    return conn.execute(
        "SELECT r.id AS run_id, NULL::text AS collection_id, s.results_sha256"
        " FROM run r LEFT JOIN run_seal s ON s.run_id = r.id"
        " WHERE %(ids)s::int[] IS NULL OR r.id = ANY(%(ids)s)"
        " UNION ALL"
        " SELECT c.run_id, c.id, s.results_sha256 FROM collection c"
        " LEFT JOIN collection_seal s ON s.collection_id = c.id AND s.run_id = c.run_id"
        " WHERE %(ids)s::int[] IS NULL OR c.run_id = ANY(%(ids)s)"
        " ORDER BY 1, 2 NULLS FIRST",
        {"ids": run_ids},
    ).fetchall()


# ---- run attempts -------------------------------------------------------------------------

_ATTEMPT_LOCK = 7_311_944  # advisory lock (class, attempt id): held while an attempt runs


def start_attempt(conn: Connection, request: dict[str, Any], by: str) -> int:
    """Record a run attempt as running and hold its session lock; return its id.

    Call on a connection of its own that stays open while the run works (and commit): if the
    process or the connection dies, the lock goes with it and :func:`reap_attempts` marks the
    attempt failed.
    """
    reap_attempts(conn)
    attempt = int(conn.execute(
        "INSERT INTO run_attempt (request, started_by) VALUES (%s, %s) RETURNING id",
        (Jsonb(request), by)).fetchone()["id"])
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (_ATTEMPT_LOCK, attempt))
    return attempt


def end_attempt(conn: Connection, attempt: int, *, run_id: int | None = None,
                reason: str | None = None) -> None:
    """Mark an attempt complete (with its run) or failed (with the reason); drop its lock."""
    conn.execute(
        "UPDATE run_attempt SET status = %s, finished_at = clock_timestamp(), run_id = %s,"
        " reason = %s WHERE id = %s AND status = 'running'",
        ("failed" if run_id is None else "complete", run_id, reason, attempt))
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_ATTEMPT_LOCK, attempt))


def reap_attempts(conn: Connection) -> int:
    """Mark failed every attempt still 'running' whose process is gone; return how many."""
    return conn.execute(
        "UPDATE run_attempt SET status = 'failed', finished_at = clock_timestamp(),"
        " reason = 'the process or its database connection stopped before the run was "
        "stored: nothing of it was kept; run it again' WHERE status = 'running'"
        " AND pg_try_advisory_xact_lock(%s, id)", (_ATTEMPT_LOCK,)).rowcount


def attempts(conn: Connection, limit: int = 100) -> list[dict]:
    """The latest run attempts, newest first."""
    return conn.execute(
        "SELECT id, request, started_at, started_by, status, finished_at, run_id, reason"
        " FROM run_attempt ORDER BY id DESC LIMIT %s", (limit,)).fetchall()


def published_sets(conn: Connection, run_id: int, fit: str = "split") -> dict[int, str]:
    """Target set id -> collection id of every publication ``run_id`` already has (by ``fit``)."""
    rows = conn.execute(
        "SELECT target_set_id, id FROM collection WHERE run_id = %s AND fit = %s",
        (run_id, fit),
    ).fetchall()
    return {int(r["target_set_id"]): r["id"] for r in rows}


def save_run(
    conn: Connection,
    *,
    financial_year: str,
    atom_set_id: int,
    inputs_sha256: str,
    params: dict[str, Any],
    algorithm_version: str,
    code_version: str,
    conservation: dict[str, Any],
    outcomes: pd.DataFrame,
    slices: pd.DataFrame,
    product: pd.DataFrame,
    body_ids: dict[str, int],
) -> int:
    """Write a run: its totals, line outcomes, slices and atom product. Returns its id.

    ``outcomes``: line_id, proxy, method, allocated_pence, reason (and passed_on_pence, what
    went to another body, and netted_pence, what a netting rule took off, if any).
    ``slices``: slice_id, body (slug), cofog_code, method. ``product``: atom_id, slice_id,
    amount_pence.
    Call inside the caller's transaction.
    """
    run_id = int(
        conn.execute(
            "INSERT INTO run (financial_year, atom_set_id, inputs_sha256, params,"
            " algorithm_version, code_version, conservation)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (financial_year, atom_set_id, inputs_sha256, Jsonb(params), algorithm_version,
             code_version, Jsonb(conservation)),
        ).fetchone()["id"]
    )
    with conn.cursor().copy(
        "COPY run_line (run_id, line_id, proxy, method, allocated_pence, reason,"
        " passed_on_pence, netted_pence) FROM STDIN"
    ) as copy:
        zero = pd.Series(0, index=outcomes.index)
        passed = outcomes["passed_on_pence"] if "passed_on_pence" in outcomes else zero
        netted = outcomes["netted_pence"] if "netted_pence" in outcomes else zero
        for (line_id, proxy, method, pence, reason), gone, net in zip(outcomes[
            ["line_id", "proxy", "method", "allocated_pence", "reason"]
        ].itertuples(index=False, name=None), passed, netted, strict=True):
            copy.write_row((run_id, int(line_id), proxy, _text(method), int(pence),
                            _text(reason), int(gone), int(net)))
    with conn.cursor().copy(
        "COPY run_slice (run_id, slice_id, body_id, cofog_code, method) FROM STDIN"
    ) as copy:
        for slice_id, body, cofog, method in slices[
            ["slice_id", "body", "cofog_code", "method"]
        ].itertuples(index=False, name=None):
            copy.write_row((run_id, int(slice_id), body_ids[body], cofog, method))
    n = len(product)
    copy_integers(conn, "atom_allocation", {
        "run_id": (np.full(n, run_id), "int4"),
        "atom_id": (product["atom_id"].to_numpy(), "int4"),
        "slice_id": (product["slice_id"].to_numpy(), "int4"),
        "amount_pence": (product["amount_pence"].to_numpy(), "int8"),
    })
    return run_id


def _text(value: object) -> str | None:
    """None for missing values (pandas turns None into NaN, which COPY would store as 'NaN')."""
    return value if isinstance(value, str) else None


def save_publication(conn: Connection, run_id: int, c: CollectionWrite) -> None:
    """Write one publication of a run: target allocations, collection row and features."""
    with conn.cursor().copy(
        "COPY target_allocation (run_id, target_set_id, fit, target_code, slice_id,"
        " amount_pence) FROM STDIN"
    ) as copy:
        for code, slice_id, pence in c.target_alloc[
            ["target_code", "slice_id", "amount_pence"]
        ].itertuples(index=False, name=None):
            copy.write_row((run_id, c.target_set_id, c.fit, code, int(slice_id), int(pence)))
    conn.execute(
        "INSERT INTO collection (id, run_id, target_set_id, fit, title, description, properties,"
        " allocated_pence, outside_pence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (c.collection_id, run_id, c.target_set_id, c.fit, c.title, c.description,
         Jsonb(c.schema), c.allocated_pence, c.outside_pence),
    )
    with conn.cursor().copy(
        "COPY collection_feature (collection_id, run_id, code, properties) FROM STDIN"
    ) as copy:
        for rec in _records(c.features):
            copy.write_row((c.collection_id, run_id, rec["code"], Json(rec)))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict(orient="records"):
        out.append({k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()})
    return out


def run_lines(conn: Connection, run_id: int, *, limit: int | None = None,
              offset: int = 0, line_id: int | None = None) -> pd.DataFrame:
    """The run's conservation table, one row per source line (or just ``line_id``), by id.

    Columns: line_id, body, line, cofog_code, area, amount_pence (as loaded),
    allocated_pence, passed_on_pence (to another body, counted there), netted_pence (counted
    in another dataset, by a netting rule), unallocated_pence,
    method, proxy, reason, source_row.
    """
    rows = conn.execute(
        "SELECT r.line_id, b.slug AS body, l.line, l.cofog_code,"
        " s.slug || ':' || l.area_code AS area, l.amount_pence, r.allocated_pence,"
        " r.passed_on_pence, r.netted_pence, l.amount_pence - r.allocated_pence"
        " - r.passed_on_pence - r.netted_pence AS unallocated_pence,"
        " r.method, r.proxy, r.reason, l.source_row" + LINE_JOINS
        + " JOIN run_line r ON r.line_id = l.id"
        " WHERE r.run_id = %s AND (%s::bigint IS NULL OR r.line_id = %s::bigint)"
        " ORDER BY r.line_id LIMIT %s OFFSET %s",
        (run_id, line_id, line_id, limit, offset),
    ).fetchall()
    cols = ["line_id", "body", "line", "cofog_code", "area", "amount_pence", "allocated_pence",
            "passed_on_pence", "netted_pence", "unallocated_pence", "method", "proxy", "reason",
            "source_row"]
    return pd.DataFrame(rows, columns=cols)


def count_lines(conn: Connection, run_id: int) -> int:
    """How many source lines a run has."""
    return int(conn.execute(
        "SELECT count(*) AS n FROM run_line WHERE run_id = %s", (run_id,)
    ).fetchone()["n"])


def run_slices(conn: Connection, run_id: int) -> pd.DataFrame:
    """slice_id, body (slug), cofog_code, method of a run's product."""
    rows = conn.execute(
        "SELECT s.slice_id, b.slug AS body, s.cofog_code, s.method FROM run_slice s"
        " JOIN body b ON b.id = s.body_id WHERE s.run_id = %s ORDER BY s.slice_id",
        (run_id,),
    ).fetchall()
    return pd.DataFrame(rows, columns=["slice_id", "body", "cofog_code", "method"])


def run_product(conn: Connection, run_id: int, atom_ids: list[int] | None = None) -> pd.DataFrame:
    """atom_id, slice_id, amount_pence of a run (optionally of some atoms only)."""
    with conn.cursor(row_factory=tuple_row) as cur:  # plain tuples: no dict per row
        rows = cur.execute(
            "SELECT atom_id, slice_id, amount_pence FROM atom_allocation WHERE run_id = %s"
            " AND (%s::int[] IS NULL OR atom_id = ANY(%s::int[])) ORDER BY atom_id, slice_id",
            (run_id, atom_ids, atom_ids),
        ).fetchall()
    atom, slice_id, amount = np.array(rows, dtype=np.int64).reshape(len(rows), 3).T.copy()
    return pd.DataFrame({"atom_id": atom, "slice_id": slice_id, "amount_pence": amount})


def stored_bytes(conn: Connection, run_id: int) -> dict[str, int]:
    """Bytes a run's rows take in each table (heap, estimated per row) and in total."""
    out: dict[str, int] = {}
    for table in ("run_line", "run_slice", "atom_allocation", "target_allocation",
                  "collection_feature"):
        row = conn.execute(
            f"SELECT coalesce(sum(pg_column_size(t.*)), 0)::bigint AS b FROM {table} t"  # noqa: S608
            " WHERE run_id = %s",
            (run_id,),
        ).fetchone()
        out[table] = int(row["b"])
    out["total"] = sum(out.values())
    return out


def set_is_published(conn: Connection, target_set_id: int) -> bool:
    """Whether any run has been published through this boundary set."""
    return conn.execute(
        "SELECT 1 FROM collection WHERE target_set_id = %s LIMIT 1", (target_set_id,)
    ).fetchone() is not None


def place_cells(conn: Connection, run_id: int, target_set_id: int, fit: str = "split",
                code: str | None = None) -> pd.DataFrame:
    """A publication's pence by spending body and COFOG division: body, division, pence.

    Of one unit (``code``) or, with ``code`` None, of every unit of the publication together
    (the whole layer). Read from the publication's own target allocation, so each cell is
    exactly what the features' ``body_<slug>`` and ``cofog_XX`` were summed from.
    """
    rows = conn.execute(
        "SELECT b.slug AS body, left(s.cofog_code, 2) AS division,"
        " sum(t.amount_pence)::bigint AS pence FROM target_allocation t"
        " JOIN run_slice s ON s.run_id = t.run_id AND s.slice_id = t.slice_id"
        " JOIN body b ON b.id = s.body_id"
        " WHERE t.run_id = %s AND t.target_set_id = %s AND t.fit = %s"
        " AND (%s::text IS NULL OR t.target_code = %s::text)"
        " GROUP BY b.slug, left(s.cofog_code, 2) ORDER BY 1, 2",
        (run_id, target_set_id, fit, code, code),
    ).fetchall()
    return pd.DataFrame({"body": [r["body"] for r in rows],
                         "division": [r["division"] for r in rows],
                         "pence": np.array([int(r["pence"]) for r in rows], dtype=np.int64)})


def placed_by_body(conn: Connection, run_id: int) -> pd.DataFrame:
    """What a run placed for each body over its whole geography: body, pence.

    The sum of its lines' ``allocated_pence`` (the conservation report's): net of what the body
    passed on to others and of what netting rules took off, with what it received from others
    inside (the payee's own lines carry it), as the run's ``conservation.bodies`` says.
    """
    rows = conn.execute(
        "SELECT b.slug AS body, sum(r.allocated_pence)::bigint AS pence FROM run_line r"
        " JOIN spend_line l ON l.id = r.line_id JOIN body b ON b.id = l.body_id"
        " WHERE r.run_id = %s GROUP BY b.slug ORDER BY b.slug",
        (run_id,),
    ).fetchall()
    return pd.DataFrame({"body": [r["body"] for r in rows],
                         "pence": np.array([int(r["pence"]) for r in rows], dtype=np.int64)})


def feature_name(conn: Connection, collection_id: str, run_id: int, code: str) -> str | None:
    """The name of a publication's feature ``code``, or None when it has no such feature."""
    row = conn.execute(
        "SELECT properties ->> 'name' AS name FROM collection_feature"
        " WHERE collection_id = %s AND run_id = %s AND code = %s",
        (collection_id, run_id, code),
    ).fetchone()
    return None if row is None else str(row["name"])


def run_fingerprint(conn: Connection, run_id: int) -> str | None:
    """The fingerprint of a run's inputs (``inputs_sha256``), or None when there is no such run.

    Runs never change, so (database, run id, fingerprint) names what a run holds for good,
    even in a database dropped and made again under the same name.
    """
    row = conn.execute("SELECT inputs_sha256 FROM run WHERE id = %s", (run_id,)).fetchone()
    return None if row is None else str(row["inputs_sha256"])
