"""How stale is the table? Read the last loaded interval and run progress from Sluice's bookkeeping tables."""

from __future__ import annotations

import logging
import re

from sluice.alerts.model import Freshness, Rows

log = logging.getLogger(__name__)

DB_TIMEOUT = 2  # seconds to connect, and per statement, when reading the warehouse
SUCCESS_STATUSES = ("success", "succeeded")  # sluice.run_summary.status values that mean "interval loaded"


def _ident(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"invalid schema name {name!r}")
    return f'"{name}"'


def freshness_sql(schema: str = "sluice") -> str:
    """Last successfully loaded interval, and the most recent run of any outcome, of one pipeline."""
    s = _ident(schema)
    return (
        "SELECT ok.interval_start, ok.interval_end, ok.finished_at, lr.run_id, lr.status, lr.rows_in,"  # noqa: S608 - identifiers validated and quoted; values are bind parameters
        " lr.rows_loaded, lr.rows_quarantined FROM (SELECT 1) AS one"
        f" LEFT JOIN LATERAL (SELECT interval_start, interval_end, finished_at FROM {s}.run_summary"
        " WHERE pipeline = %(pipeline)s AND lower(status) = ANY(%(ok)s)"
        " ORDER BY interval_end DESC, finished_at DESC NULLS LAST LIMIT 1) AS ok ON true"
        f" LEFT JOIN LATERAL (SELECT run_id, status, rows_in, rows_loaded, rows_quarantined FROM {s}.run_summary"
        " WHERE pipeline = %(pipeline)s ORDER BY finished_at DESC NULLS LAST LIMIT 1) AS lr ON true"
    )


def run_progress_sql(schema: str = "sluice") -> str:
    """Rows one run has committed so far, chunk by chunk (the ledger is written with each chunk's upsert)."""
    return (
        f"SELECT count(*), sum(rows_in), sum(rows_loaded), sum(rows_quarantined) FROM {_ident(schema)}.load_ledger"  # noqa: S608 - identifiers validated and quoted; values are bind parameters
        " WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s"
    )


def read_warehouse(
    conn_id: str, pipeline: str, run_id: str | None = None, *, schema: str = "sluice", freshness: bool = True
) -> tuple[Freshness | None, Rows | None]:
    """Freshness and this run's progress; never raises (an alert without them beats no alert)."""
    fresh: Freshness | None = None
    rows: Rows | None = None
    args = {"pipeline": pipeline, "run_id": run_id, "ok": list(SUCCESS_STATUSES)}
    try:
        import psycopg

        from sluice.connections import pg_dsn

        opts = f"-c statement_timeout={DB_TIMEOUT * 1000} -c default_transaction_read_only=on"
        with psycopg.connect(pg_dsn(conn_id), connect_timeout=DB_TIMEOUT, options=opts, autocommit=True) as conn:
            if freshness:
                try:
                    r = conn.execute(freshness_sql(schema), args).fetchone() or (None,) * 8
                    fresh = Freshness(r[0], r[1], r[2], r[3], r[4], Rows(r[5], r[6], r[7]) if r[3] else None)
                except psycopg.errors.UndefinedTable:  # the first load creates it: nothing was ever loaded
                    fresh = Freshness()
                except psycopg.Error as exc:
                    fresh = Freshness(unavailable=f"run summary not readable ({type(exc).__name__})")
            if run_id:
                try:
                    n, rin, loaded, quar = conn.execute(run_progress_sql(schema), args).fetchone() or (0,) * 4
                    rows = Rows(rin, loaded, quar, n) if n else None
                except psycopg.errors.UndefinedTable:
                    pass
                except psycopg.Error as exc:
                    log.warning("Sluice alert: load ledger not readable (%s)", type(exc).__name__)
    except Exception as exc:
        log.warning("Sluice alert: warehouse %r not reachable for freshness (%s)", conn_id, type(exc).__name__)
        fresh = Freshness(unavailable=f"warehouse not reachable ({type(exc).__name__})") if freshness else None
    return fresh, rows
