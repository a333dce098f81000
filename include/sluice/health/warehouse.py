"""Read the health view's rows from the warehouse: read-only, short timeouts, and one exception type for "cannot
read it now", so the page can say so instead of failing."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sluice.loading.sql import dashboard as d
from sluice.loading.sql.results import one_row

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg

CONN_ID_ENV = "SLUICE_HEALTH_CONN_ID"
DEFAULT_CONN_ID = "sluice_warehouse"
TIMEOUT_SECONDS = 5  # to connect, and per statement
OK_STATUSES = ["success", "succeeded"]  # run_summary.status values that mean "interval loaded"


class WarehouseUnavailable(Exception):
    """The warehouse could not be reached or read; the message names the connection and the error class only."""


def conn_id() -> str:
    return os.environ.get(CONN_ID_ENV, DEFAULT_CONN_ID)


@contextmanager
def connect(dsn: str | None = None) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """A read-only autocommit connection to the warehouse (the `sluice_warehouse` connection unless `dsn`)."""
    import psycopg
    from psycopg.rows import dict_row

    cid = conn_id()
    try:
        if dsn is None:
            from sluice.connections import pg_dsn

            dsn = pg_dsn(cid)
        # jit off: compiling the overview statement (one pass over the whole history) cost more than it saved,
        # 50-60 ms of its ~250 ms at 200 pipelines x 365 intervals (bench/bench_health.py)
        opts = f"-c statement_timeout={TIMEOUT_SECONDS * 1000} -c default_transaction_read_only=on -c jit=off"
        conn = psycopg.connect(
            dsn,
            connect_timeout=TIMEOUT_SECONDS,
            options=opts,
            autocommit=True,
            row_factory=dict_row,
            application_name="sluice health",
        )
    except Exception as exc:
        raise WarehouseUnavailable(f"warehouse connection {cid!r} not reachable ({type(exc).__name__})") from exc
    try:
        with conn:
            yield conn
    except psycopg.Error as exc:
        raise WarehouseUnavailable(f"warehouse connection {cid!r} not readable ({type(exc).__name__})") from exc


def present(conn: psycopg.Connection[dict[str, Any]]) -> dict[str, bool]:
    return dict(one_row(conn.execute(d.tables_present())))


def overview_rows(conn: psycopg.Connection[dict[str, Any]], intervals: int = 30) -> list[dict[str, Any]]:
    """One dict per pipeline with a run summary (statement: dashboard.overview); [] before the first load."""
    if not present(conn)["run_summary"]:
        return []
    return conn.execute(d.overview(), {"intervals": intervals, "ok": OK_STATUSES}).fetchall()


def load_seconds_by_pipeline(conn: psycopg.Connection[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if not present(conn)["load_ledger"]:
        return {}
    return {r["pipeline"]: r for r in conn.execute(d.load_seconds_by_pipeline())}


def detail_rows(
    conn: psycopg.Connection[dict[str, Any]], pipeline: str, limit: int = 400
) -> dict[str, list[dict[str, Any]]]:
    """One pipeline's history (latest generation per interval, with its load seconds), quarantine reasons and
    schema changes."""
    have = present(conn)
    out: dict[str, list[dict[str, Any]]] = {"history": [], "reasons": [], "schema_changes": []}
    if not have["run_summary"]:
        return out
    args = {"pipeline": pipeline, "limit": limit}
    seconds = {(r["run_id"], r["generation"]): r["seconds"] for r in conn.execute(d.load_seconds(), args)}
    out["history"] = [
        {**r, "load_seconds": seconds.get((r["run_id"], r["generation"]))}
        for r in conn.execute(d.history(), args).fetchall()
    ]
    if have["quarantine"]:
        out["reasons"] = conn.execute(d.quarantine_reasons(), {**args, "limit": 50}).fetchall()
    out["schema_changes"] = conn.execute(d.schema_change_list(), {**args, "limit": 100}).fetchall()
    return out
