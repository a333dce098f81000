"""After the loads of a generation: conservation checked as a fact, and the run summary; and, before them, the guard
that keeps an empty source from emptying a replace_interval interval."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sluice.config import WriteMode
from sluice.loading import sql as q
from sluice.loading.ledger import COUNTS, conservation_problems, ensure_metadata, format_table
from sluice.loading.target import ConservationError, EmptyingRefused, Target, lock

if TYPE_CHECKING:
    from sluice.config import PipelineConfig
    from sluice.interval import Interval

log = logging.getLogger(__name__)


def refuse_emptying(cfg: PipelineConfig, interval: Interval, reports: list[dict]) -> None:
    """replace_interval whose source returned no row for an interval that holds rows: fail before anything is deleted
    (files expired, an API serving only recent days), unless target.allow_empty is set."""
    import psycopg

    from sluice.connections import pg_dsn

    tgt = Target.of(cfg)
    if tgt.mode is not WriteMode.replace_interval or cfg.target.allow_empty:
        return
    if sum(int(r.get("rows_good", 0)) for r in reports):
        return
    with psycopg.connect(pg_dsn(tgt.conn_id), autocommit=True) as conn:
        if not conn.execute(q.table_exists(), tgt.where()).fetchone()[0]:
            return
        conn.execute(q.set_local("timezone", "UTC", local=False))
        params = {"start": interval.start, "end": interval.end}
        if conn.execute(q.interval_has_rows(tgt.schema, tgt.table, tgt.interval_column), params).fetchone()[0]:
            raise EmptyingRefused(
                f"pipeline {cfg.name}: the source returned no rows for {interval.key}, but {tgt.name} holds rows of "
                f"that interval; replace_interval would delete them. Nothing was deleted. If the interval really is "
                "empty now, set target.allow_empty: true and re-run."
            )


def finalize(
    cfg: PipelineConfig,
    interval: Interval,
    run_id: str,
    results: list[dict],
    generation: int = 0,
    *,
    figures: dict | None = None,
    gate: dict | None = None,
) -> dict:
    """Check conservation of the generation from the ledger (per chunk: rows_in = loaded + quarantined, loaded =
    inserted + updated + unchanged + superseded) and against the rows in sluice.quarantine; record the run summary
    (also when the check fails) with the gate's warnings and notes, and return it; raises ConservationError when
    anything does not add up. Only a run that adds up records its interval's `figures` (column statistics) in
    sluice.interval_stats, the history the gate's checks compare with."""
    import psycopg
    from psycopg.rows import dict_row
    from psycopg.types.json import Jsonb

    from sluice.connections import pg_dsn
    from sluice.validate.quarantine import quarantine_count_sql

    tgt = Target.of(cfg)
    dsn = pg_dsn(tgt.conn_id)
    ensure_metadata(dsn, tgt.schema)
    key = {"pipeline": cfg.name, "run_id": run_id, "run_no": generation}
    app = f"sluice finalize {cfg.name}"[:63]
    with psycopg.connect(dsn, application_name=app, autocommit=True) as conn, conn.transaction():
        deleted = 0
        if not results and tgt.mode is WriteMode.replace_interval and cfg.target.allow_empty:
            deleted = _delete_empty_interval(conn, tgt, interval)
        rows = conn.cursor(row_factory=dict_row).execute(q.ledger_select(one_chunk=False), key).fetchall()
        changes = [
            dict(zip(("change", "column", "type"), r, strict=True))
            for r in conn.execute(q.schema_changes_select(), key)
        ]
        quarantined = None
        if conn.execute("SELECT to_regclass('sluice.quarantine') IS NOT NULL").fetchone()[0]:
            quarantined = conn.execute(quarantine_count_sql(), (cfg.name, run_id, generation)).fetchone()[0]
        problems = conservation_problems(rows, results, interval, quarantined)
        total = {f: sum(int(r[f]) for r in rows) for f in COUNTS}
        total["deleted"] += deleted
        summary = {
            "pipeline": cfg.name,
            "run_id": run_id,
            "generation": generation,
            "target": tgt.name,
            "interval_start": interval.start,
            "interval_end": interval.end,
            "chunks": len(rows),
            **total,
            "schema_changes": changes,
            "status": "failed" if problems else "success",
            "problems": problems,
            "warnings": list((gate or {}).get("warnings") or []),
            "notes": list((gate or {}).get("notes") or []),
            "finished_at": datetime.now(UTC),
        }
        jsonb = {f: Jsonb(summary[f]) for f in ("problems", "warnings", "notes")}
        conn.execute(
            q.run_summary_upsert(),
            {k: summary[k] for k in q.SUMMARY_FIELDS} | {"schema_changes": Jsonb(changes), **jsonb},
        )
        if not problems:
            stats = {"generation": generation, "columns": Jsonb(figures or {})}
            conn.execute(q.interval_stats_upsert(), {k: summary.get(k) for k in q.STATS_FIELDS} | stats)
    summary = {
        **summary,
        "interval": interval.to_dict(),
        "table": format_table(rows),
        "finished_at": summary["finished_at"].isoformat(),
    }
    del summary["interval_start"], summary["interval_end"]
    if problems:
        log.error("run %s of %s does not add up:\n%s\n%s", run_id, cfg.name, "\n".join(problems), summary["table"])
        raise ConservationError(f"run {run_id} of pipeline {cfg.name} does not add up: " + "; ".join(problems))
    log.info(
        "run %s (generation %d) of %s loaded into %s:\n%s", run_id, generation, cfg.name, tgt.name, summary["table"]
    )
    return summary


def _delete_empty_interval(conn, tgt: Target, interval: Interval) -> int:
    """replace_interval with allow_empty and an empty source interval: its rows go, as with any other content."""
    conn.execute(q.set_local("timezone", "UTC"))
    lock(conn, tgt)
    if not conn.execute(q.table_exists(), tgt.where()).fetchone()[0]:
        return 0
    cur = conn.execute(
        q.delete_interval(tgt.schema, tgt.table, tgt.interval_column), {"start": interval.start, "end": interval.end}
    )
    log.warning(
        "replace_interval: the source had no rows for %s (allow_empty); deleted %d rows of %s",
        interval.key,
        cur.rowcount,
        tgt.name,
    )
    return cur.rowcount
