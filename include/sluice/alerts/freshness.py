"""How stale is the table? Read the last loaded interval and run progress from Sluice's bookkeeping tables (the
statements are in sluice.loading.sql.freshness)."""

from __future__ import annotations

import logging

from sluice.alerts.model import Freshness, Rows

log = logging.getLogger(__name__)

DB_TIMEOUT = 2  # seconds to connect, and per statement, when reading the warehouse
SUCCESS_STATUSES = ("success", "succeeded")  # sluice.run_summary.status values that mean "interval loaded"


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
        from sluice.loading import sql as q  # psycopg: lazy, the triggerer imports this package

        opts = f"-c statement_timeout={DB_TIMEOUT * 1000} -c default_transaction_read_only=on"
        with psycopg.connect(pg_dsn(conn_id), connect_timeout=DB_TIMEOUT, options=opts, autocommit=True) as conn:
            if freshness:
                try:
                    r = conn.execute(q.last_loaded(schema), args).fetchone() or (None,) * 8
                    fresh = Freshness(r[0], r[1], r[2], r[3], r[4], Rows(r[5], r[6], r[7]) if r[3] else None)
                except psycopg.errors.UndefinedTable:  # the first load creates it: nothing was ever loaded
                    fresh = Freshness()
                except psycopg.Error as exc:
                    fresh = Freshness(unavailable=f"run summary not readable ({type(exc).__name__})")
            if run_id:
                try:
                    n, rin, loaded, quar = q.one_row(conn.execute(q.run_progress(schema), args))
                    rows = Rows(rin, loaded, quar, n) if n else None
                except psycopg.errors.UndefinedTable:
                    pass
                except psycopg.Error as exc:
                    log.warning("Sluice alert: load ledger not readable (%s)", type(exc).__name__)
    except Exception as exc:
        log.warning("Sluice alert: warehouse %r not reachable for freshness (%s)", conn_id, type(exc).__name__)
        fresh = Freshness(unavailable=f"warehouse not reachable ({type(exc).__name__})") if freshness else None
    return fresh, rows
