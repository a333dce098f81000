"""After the loads of a generation: conservation checked as a fact, and the run summary; and, before them, the guard
that keeps an empty source from emptying a replace_interval interval."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict, cast

from sluice.config import WriteMode
from sluice.loading import sql as q
from sluice.loading.ledger import COUNTS, Counts, conservation_problems, ensure_metadata, format_table
from sluice.loading.target import ConservationError, EmptyingRefused, SchemaChange, Target, lock

if TYPE_CHECKING:
    from sluice.config import PipelineConfig
    from sluice.interval import Interval
    from sluice.loading.postgres import ChunkLoadResult
    from sluice.sources.fingerprint import SourceRecord
    from sluice.validate.chunk import ChunkReport

log = logging.getLogger(__name__)


class IntervalBounds(TypedDict):
    start: str  # ISO 8601, UTC
    end: str


class _LogTable(TypedDict, total=False):  # a base of its own: total=False also holds at run time (__optional_keys__)
    table: str  # per-chunk counts as an aligned text table, for the task log


class RunSummary(Counts, _LogTable):
    """A generation's totals, as recorded in sluice.run_summary; the finalize task's XCom (without `table`) and the
    target Asset event's extra (its scalar values)."""

    pipeline: str
    run_id: str
    generation: int
    target: str
    interval: IntervalBounds
    chunks: int
    schema_changes: list[SchemaChange]
    status: str  # success or failed
    problems: list[str]
    warnings: list[str]  # the gate's checks against history that warned (the run loaded)
    notes: list[str]  # checks that could not judge (too little history)
    finished_at: str  # ISO 8601
    source_fingerprint: str | None  # S3 sources: sources.fingerprint over the objects read; else None
    source_object_count: int | None


class GateNotes(TypedDict):
    """What the quality gate tells finalize beside the reports (the gate task's XCom `gate`)."""

    warnings: list[str]
    notes: list[str]


def refuse_emptying(cfg: PipelineConfig, interval: Interval, reports: Sequence[ChunkReport]) -> None:
    """replace_interval: compare the source's row count with the interval's last successful load (sluice.run_summary)
    and with the rows the table holds for it; a source with no row for an interval that had rows fails before
    anything is deleted (files expired, an API serving only recent days), unless target.allow_empty is set."""
    import psycopg

    from sluice.connections import pg_dsn

    tgt = Target.of(cfg)
    if tgt.mode is not WriteMode.replace_interval:
        return
    good = sum(int(r.get("rows_good", 0)) for r in reports)
    with psycopg.connect(pg_dsn(tgt.conn_id), autocommit=True) as conn:
        conn.execute(q.set_local("timezone", "UTC", local=False))
        params = {"pipeline": cfg.name, "start": interval.start, "end": interval.end}
        last = None
        if q.scalar(conn.execute(q.table_exists(), {"schema": q.META, "table": "run_summary"})):
            last = conn.execute(q.last_successful_load(), params).fetchone()
        if last is not None:
            log.info(
                "replace_interval: the source has %d good rows for %s; its last successful load (run %s, generation "
                "%s) loaded %d",
                good,
                interval.key,
                last[0],
                last[1],
                last[2],
            )
        if good or cfg.target.allow_empty:
            return
        stored = q.scalar(conn.execute(q.table_exists(), tgt.where())) and q.scalar(
            conn.execute(q.interval_has_rows(tgt.schema, tgt.table, tgt.replaced_column), params)
        )
        if stored or (last is not None and last[2] > 0):
            before = (
                f"its last successful load (run {last[0]}, generation {last[1]}, {last[3]:%Y-%m-%d %H:%M} UTC) "
                f"loaded {last[2]} rows"
                if last is not None
                else "no successful load is recorded"
            )
            raise EmptyingRefused(
                f"pipeline {cfg.name}: the source returned no rows for {interval.key}; {before}, and {tgt.name} "
                f"{'holds' if stored else 'holds no'} rows of that interval. replace_interval would empty it. Nothing "
                "was deleted. If the interval really is empty now, set target.allow_empty: true and re-run."
            )


def finalize(
    cfg: PipelineConfig,
    interval: Interval,
    run_id: str,
    results: Sequence[ChunkLoadResult],
    generation: int = 0,
    *,
    figures: dict[str, Any] | None = None,
    gate: GateNotes | None = None,
    source: SourceRecord | None = None,
) -> RunSummary:
    """Check conservation of the generation from the ledger (per chunk: rows_in = loaded + quarantined, loaded =
    inserted + updated + unchanged + superseded) and against the rows in sluice.quarantine; record the run summary
    (also when the check fails) with the gate's warnings and notes, and return it; raises ConservationError when
    anything does not add up. Only a run that adds up records its interval's `figures` (column statistics) in
    sluice.interval_stats, the history the gate's checks compare with. `source`: the fingerprint of what the generation
    read (S3 sources), recorded for `backfill plan`."""
    import psycopg
    from psycopg.rows import dict_row
    from psycopg.types.json import Jsonb

    from sluice.connections import pg_dsn

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
            SchemaChange(change=change, column=column, type=type_)
            for change, column, type_ in conn.execute(q.schema_changes_select(), key)
        ]
        quarantined = None
        if q.scalar(conn.execute(q.quarantine_exists())):
            params = {"pipeline": cfg.name, "run_id": run_id, "generation": generation}
            quarantined = q.scalar(conn.execute(q.quarantine_count(), params))
        problems = conservation_problems(rows, results, interval, quarantined)
        total = cast("Counts", {f: sum(int(r[f]) for r in rows) for f in COUNTS})  # every key of Counts
        total["deleted"] += deleted
        finished_at = datetime.now(UTC)
        told: GateNotes = gate or {"warnings": [], "notes": []}
        read = source or {"source_fingerprint": None, "source_object_count": None}
        record = {
            "pipeline": cfg.name,
            "run_id": run_id,
            "generation": generation,
            "target": tgt.name,
            "interval_start": interval.start,
            "interval_end": interval.end,
            "chunks": len(rows),
            **total,
            "schema_changes": Jsonb(changes),
            "status": "failed" if problems else "success",
            "problems": Jsonb(problems),
            "warnings": Jsonb(list(told.get("warnings") or [])),
            "notes": Jsonb(list(told.get("notes") or [])),
            "finished_at": finished_at,
            **read,
        }
        conn.execute(q.run_summary_upsert(), {k: record[k] for k in q.SUMMARY_FIELDS})
        if not problems:
            stats = {"generation": generation, "columns": Jsonb(figures or {})}
            conn.execute(q.interval_stats_upsert(), {k: record.get(k) for k in q.STATS_FIELDS} | stats)
    summary: RunSummary = {
        **total,
        "pipeline": cfg.name,
        "run_id": run_id,
        "generation": generation,
        "target": tgt.name,
        "interval": {"start": interval.start.isoformat(), "end": interval.end.isoformat()},
        "chunks": len(rows),
        "schema_changes": changes,
        "status": "failed" if problems else "success",
        "problems": problems,
        "warnings": list(told.get("warnings") or []),
        "notes": list(told.get("notes") or []),
        "finished_at": finished_at.isoformat(),
        "source_fingerprint": read["source_fingerprint"],
        "source_object_count": read["source_object_count"],
        "table": format_table(rows),
    }
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
    if not q.scalar(conn.execute(q.table_exists(), tgt.where())):
        return 0
    cur = conn.execute(
        q.delete_interval(tgt.schema, tgt.table, tgt.replaced_column), {"start": interval.start, "end": interval.end}
    )
    log.warning(
        "replace_interval: the source had no rows for %s (allow_empty); deleted %d rows of %s",
        interval.key,
        cur.rowcount,
        tgt.name,
    )
    return cur.rowcount
