"""A corrected file changes the next run and never an earlier one (tracker: Must show 4).

On a database of its own: the embedded London data, the 2014-15 run published; then Hackney's
corrected return (£1,000 more on education). The earlier run's published figures stay
byte-identical at their pinned URL; the next run carries the correction, once; loading every
file again stores nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from boundaries import catalog
from placespend import load
from placespend.runs import RunRequest, make_run, publish
from store import features
from store.db import Connection, connect
from tests.test_embedded_data import _correct_hackney_2014_15, rs_copy

LONDON = "london-wards-2014-spend-2014-15"
HACKNEY = "hackney-wards-2014-spend-2014-15"
TABLES = ("upload_batch", "boundary_set", "boundary", "proxy", "proxy_value", "function_map",
          "spend_line", "spend_scope", "body")


def _counts(conn: Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in TABLES}


def _bytes(conn: Connection, cid: str, run_id: int) -> str:
    return features.items(conn, cid, limit=10_000, run_id=run_id).features_json


def test_a_correction_moves_the_next_run_only(fresh_db: str, tmp_path: Path) -> None:
    corrected = rs_copy(tmp_path)
    _correct_hackney_2014_15(corrected)
    with connect(fresh_db) as conn:
        load.load_embedded(conn)
        first = make_run(conn, RunRequest())
        publish(conn, first.run_id)
        before = {cid: _bytes(conn, cid, first.run_id) for cid in (LONDON, HACKNEY)}

        rs_options = load.SpendLoadOptions(**dict(
            next(e for e in catalog.EMBEDDED if e.kind == "spend").options))
        done = load.load_spend(conn, load.Upload(corrected, corrected.name), rs_options)
        assert done.created and done.details["unchanged_body_years"] == 67
        second = make_run(conn, RunRequest())
        assert second.created and second.run_id != first.run_id
        assert second.conservation["total_pence"] == first.conservation["total_pence"] + 100_000
        publish(conn, second.run_id)

        # the earlier run, cited by its pinned URL, has not moved by a byte
        for cid, text in before.items():
            assert _bytes(conn, cid, first.run_id) == text
        # the next run holds the correction once: Hackney's wards carry £1,000 more
        old = features.items(conn, HACKNEY, limit=100, run_id=first.run_id)
        new = features.items(conn, HACKNEY, limit=100, run_id=second.run_id)
        def hackney(page: features.Page) -> int:
            return sum(round(f["properties"]["body_hackney"] * 100)
                       for f in json.loads(page.features_json))

        assert hackney(new) - hackney(old) == 100_000

        # every file a second time: nothing new, anywhere
        rows = _counts(conn)
        again = load.load_embedded(conn)
        assert all(not item.created for item in again)
        redo = load.load_spend(conn, load.Upload(corrected, corrected.name), rs_options)
        assert not redo.created
        assert _counts(conn) == rows
        assert make_run(conn, RunRequest()).run_id == second.run_id  # same inputs, same run
