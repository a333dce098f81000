"""Reading the warehouse from a test: a query's rows, a table's count and checksum, a run's ledger rows. Shared by
the e2e and fault tests (tests/ is on sys.path through tests/conftest.py)."""

from __future__ import annotations

import psycopg
from sluice.connections import pg_dsn


def sql(query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def table_hash(table: str, cols: str, order: str) -> tuple[int, str]:
    """(rows, md5 of every row in `order`): two tables with equal hashes hold the same rows."""
    return sql(
        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {order}), '')) "
        f"FROM (SELECT {cols} FROM {table}) t"
    )[0]


def ledger(run_id: str) -> list[tuple]:
    """(chunk, rows_in, rows_loaded, rows_quarantined) per chunk the run loaded."""
    return sql(
        "SELECT chunk, rows_in, rows_loaded, rows_quarantined FROM sluice.load_ledger WHERE run_id = %s ORDER BY chunk",
        (run_id,),
    )
