"""Agency-supplied shares: a body's own estimate of where a line went, kept with the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.errors import Rejected
from placespend import load
from store.db import connect

HEADER = "body,financial_year,amount,function,line,shares\n"


@pytest.fixture(scope="module")
def london(tmp_path_factory) -> str:
    from tests.conftest import _new_database

    url = _new_database("placespend_test_shares")
    with connect(url) as conn:
        load.load_embedded(conn)
    return url


def _load(url: str, tmp: Path, rows: str, share_set: str | None = "hackney-wards-2014"):
    path = tmp / "shares.csv"
    path.write_text(HEADER + rows)
    with connect(url) as conn:
        return load.load_spend(conn, load.Upload(path, "shares.csv"),
                               load.SpendLoadOptions(share_set=share_set))


def test_shares_are_stored_with_the_line(london: str, tmp_path: Path) -> None:
    done = _load(london, tmp_path,
                 'hackney,2016-17,100,07,a,"{""E05009367"": 0.25, ""E05009368"": 0.75}"\n')
    assert done.created
    with connect(london) as conn:
        (row,) = conn.execute("SELECT shares FROM spend_line WHERE batch_id = %s",
                              (done.batch_id,)).fetchall()
    assert row["shares"] == {"set": "hackney-wards-2014",
                             "shares": {"E05009367": 0.25, "E05009368": 0.75}}


@pytest.mark.parametrize(("shares", "share_set", "says"), [
    ('"{""E05009367"": 0.5, ""E05009368"": 0.75}"', "hackney-wards-2014", "add up to 1.25"),
    ('"{""E05009367"": -0.5}"', "hackney-wards-2014", "from 0 to 1"),
    ('"[0.5, 0.5]"', "hackney-wards-2014", "not an object"),
    ('"{not json"', "hackney-wards-2014", "not JSON"),
    ('"{""X1"": 0.5}"', "hackney-wards-2014", "no area X1"),
    ('"{""E05009367"": 0.5}"', None, "of which set"),
])
def test_bad_shares_are_refused(london: str, tmp_path: Path, shares: str,
                                share_set: str | None, says: str) -> None:
    with connect(london) as conn:
        before = conn.execute("SELECT count(*) AS n FROM spend_line").fetchone()["n"]
    with pytest.raises(Rejected) as err:
        _load(london, tmp_path, f"hackney,2017-18,100,07,a,{shares}\n", share_set)
    assert says in err.value.problems[0].reason
    assert err.value.problems[0].field in ("shares", "share_set")
    with connect(london) as conn:
        assert conn.execute("SELECT count(*) AS n FROM spend_line").fetchone()["n"] == before
