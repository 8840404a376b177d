"""Reference data: COFOG functions, public bodies, proxies and their values."""

from __future__ import annotations

import pandas as pd

from store.db import Connection


def save_cofog(conn: Connection, codes: pd.DataFrame) -> int:
    """Insert COFOG codes (code, description) not yet present; return how many were new."""
    before = conn.execute("SELECT count(*) AS n FROM cofog_function").fetchone()["n"]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO cofog_function (code, description) VALUES (%s, %s)"
            " ON CONFLICT (code) DO NOTHING",
            list(codes[["code", "description"]].itertuples(index=False, name=None)),
        )
    after = conn.execute("SELECT count(*) AS n FROM cofog_function").fetchone()["n"]
    return int(after - before)


def cofog_divisions(conn: Connection) -> dict[str, str]:
    """The ten COFOG divisions: code -> description."""
    rows = conn.execute(
        "SELECT code, description FROM cofog_function WHERE length(code) = 2 ORDER BY code"
    )
    return {r["code"]: r["description"] for r in rows}


def upsert_body(conn: Connection, slug: str, name: str, kind: str, ons_code: str | None) -> int:
    """Create a body if new (a body's identity is its slug); return its id."""
    row = conn.execute(
        "INSERT INTO body (slug, name, kind, ons_code) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug RETURNING id",
        (slug, name, kind, ons_code),
    ).fetchone()
    return int(row["id"])


def bodies(conn: Connection) -> dict[str, dict]:
    """Every body by slug."""
    return {r["slug"]: r for r in conn.execute("SELECT * FROM body ORDER BY slug")}


def find_proxy(conn: Connection, slug: str) -> dict | None:
    """The proxy row for ``slug``, or None."""
    return conn.execute("SELECT * FROM proxy WHERE slug = %s", (slug,)).fetchone()


def save_proxy(
    conn: Connection,
    *,
    slug: str,
    name: str,
    unit_set_id: int,
    year: int,
    source: str,
    licence: str,
    attribution: str,
    values: pd.DataFrame,
) -> int:
    """Insert a proxy and its values (unit_code, value)."""
    row = conn.execute(
        "INSERT INTO proxy (slug, name, unit_set_id, year, source, licence, attribution)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (slug, name, unit_set_id, year, source, licence, attribution),
    ).fetchone()
    pid = int(row["id"])
    with conn.cursor().copy("COPY proxy_value (proxy_id, unit_code, value) FROM STDIN") as copy:
        for code, value in zip(values["unit_code"], values["value"], strict=True):
            copy.write_row((pid, code, float(value)))
    return pid


def proxy_values(
    conn: Connection, unit_set_id: int, codes: list[str] | None = None
) -> pd.DataFrame:
    """Proxy values on a unit set (only of ``codes`` if given): proxy (slug), unit_code, value."""
    rows = conn.execute(
        "SELECT p.slug AS proxy, v.unit_code, v.value FROM proxy p"
        " JOIN proxy_value v ON v.proxy_id = p.id WHERE p.unit_set_id = %s"
        " AND (%s::text[] IS NULL OR v.unit_code = ANY(%s::text[]))",
        (unit_set_id, codes, codes),
    ).fetchall()
    return pd.DataFrame(rows, columns=["proxy", "unit_code", "value"])
