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


def upsert_body(
    conn: Connection, slug: str, name: str, kind: str, ons_code: str | None, *,
    area_set_id: int | None = None, area_code: str | None = None,
    source_code: str | None = None,
) -> int:
    """Create a body if new (a body's identity is its slug); return its id.

    A known body keeps its name and kind; its whole area and source code are filled in if
    they were not known yet.
    """
    row = conn.execute(
        "INSERT INTO body (slug, name, kind, ons_code, area_set_id, area_code, source_code)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (slug) DO UPDATE SET"
        " area_set_id = coalesce(body.area_set_id, EXCLUDED.area_set_id),"
        " area_code = coalesce(body.area_code, EXCLUDED.area_code),"
        " source_code = coalesce(body.source_code, EXCLUDED.source_code),"
        " ons_code = coalesce(body.ons_code, EXCLUDED.ons_code) RETURNING id",
        (slug, name, kind, ons_code, area_set_id, area_code, source_code),
    ).fetchone()
    return int(row["id"])


def bodies(conn: Connection) -> dict[str, dict]:
    """Every body by slug."""
    return {r["slug"]: r for r in conn.execute("SELECT * FROM body ORDER BY slug")}


def find_proxy(conn: Connection, slug: str) -> dict | None:
    """The newest version of the proxy ``slug``, or None."""
    return conn.execute(
        "SELECT * FROM proxy WHERE slug = %s ORDER BY version DESC LIMIT 1", (slug,)
    ).fetchone()


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
    measure: str = "residents",
    batch_id: int | None = None,
) -> int:
    """Insert a proxy (the next version of its slug) and its values (unit_code, value)."""
    row = conn.execute(
        "INSERT INTO proxy (slug, version, name, unit_set_id, year, source, licence,"
        " attribution, measure, batch_id)"
        " SELECT %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s, %s, %s, %s, %s"
        " FROM proxy WHERE slug = %s RETURNING id",
        (slug, name, unit_set_id, year, source, licence, attribution, measure, batch_id, slug),
    ).fetchone()
    pid = int(row["id"])
    with conn.cursor().copy("COPY proxy_value (proxy_id, unit_code, value) FROM STDIN") as copy:
        for code, value in zip(values["unit_code"], values["value"], strict=True):
            copy.write_row((pid, code, float(value)))
    return pid


def proxy_values(
    conn: Connection, unit_set_id: int, codes: list[str] | None = None
) -> pd.DataFrame:
    """Proxy values on a unit set (only of ``codes`` if given): proxy (slug), unit_code, value.

    Each proxy's newest version on that set is read.
    """
    rows = conn.execute(
        "SELECT p.slug AS proxy, v.unit_code, v.value FROM proxy p"
        " JOIN proxy_value v ON v.proxy_id = p.id WHERE p.unit_set_id = %s"
        " AND p.version = (SELECT max(version) FROM proxy o WHERE o.slug = p.slug"
        "                  AND o.unit_set_id = p.unit_set_id)"
        " AND (%s::text[] IS NULL OR v.unit_code = ANY(%s::text[]))",
        (unit_set_id, codes, codes),
    ).fetchall()
    return pd.DataFrame(rows, columns=["proxy", "unit_code", "value"])


def save_function_map(conn: Connection, scheme: str, rows: pd.DataFrame,
                      batch_id: int | None) -> int:
    """Add mappings (source_code, cofog_code, rationale) of ``scheme``; return how many."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO function_map (scheme, source_code, cofog_code, rationale, batch_id)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(scheme, r.source_code, r.cofog_code, r.rationale, batch_id)
             for r in rows.itertuples(index=False)],
        )
    return len(rows)


def function_map(conn: Connection, scheme: str) -> dict[str, str]:
    """source_code -> COFOG code of every mapping of ``scheme``."""
    rows = conn.execute(
        "SELECT source_code, cofog_code FROM function_map WHERE scheme = %s", (scheme,)
    )
    return {r["source_code"]: r["cofog_code"] for r in rows}


def cofog_codes(conn: Connection) -> set[str]:
    """Every COFOG code known (divisions, groups)."""
    return {r["code"] for r in conn.execute("SELECT code FROM cofog_function")}
