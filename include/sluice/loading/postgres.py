"""Load one validated chunk of one generation into PostgreSQL exactly once.

Per chunk: the schema step in its own short transaction (loading/target.py; only when the table must be created or
changed), then one load transaction: take the target's advisory lock (`pg_advisory_xact_lock(hashtext('<schema>.
<table>'))`) before reading the target, write the good rows, insert the `sluice.load_ledger` row, commit. An upsert
chunk COPYed straight into a key range the target holds nothing of takes the lock shared, so such chunks load side by
side (lineitem's first load: every chunk); its primary key makes a concurrent writer of the same keys wait, and the
chunk that loses that race (unique violation, deadlock) rolls back and goes the temp table + merge path under the
exclusive lock, which every other write and every schema change takes. A crash anywhere leaves nothing behind; a
retry finds the ledger row for (pipeline, run_id, generation, chunk) and returns what it recorded. A cleared run or a
re-run is a new generation (a new extraction, sluice.load_run_seq) and loads the current source.

How rows are written (writes.py: pyarrow CSV streamed into COPY; SQL text in loading/sql/):
  * new keys: when the target holds no key between the chunk's first and last key (probed before the transaction,
    confirmed under the lock), the chunk is COPYed straight into the target: nothing can conflict;
  * otherwise: COPY into a temp table (before the lock, so parallel chunks overlap it with another's write), then
    an upsert guarded by IS DISTINCT FROM, so unchanged rows are never rewritten. MERGE never touches an unchanged
    row, INSERT .. ON CONFLICT locks (and WAL-logs) every conflicting row but inserts new rows faster, so
    (UpsertStrategy.auto) a sample of the chunk's first keys decides (bench/bench_load.py measures both);
  * the first chunk of a generation to commit (decided under the lock from the ledger) clears what the generation
    replaces: `replace_interval` deletes the rows whose interval_column is in [start, end); `append` deletes the rows
    that earlier generations of the interval appended (by their `_sluice_run`). So append is idempotent per interval
    and needs no primary key.

Which row wins (upsert, replace_interval), the one rule whatever the load order:
  * within a generation, the last row in source order (duplicates.py drops the others run-wide, before loading;
    arrow_copy.prepare within a chunk); they are counted as `superseded`;
  * across generations, the later extraction (its `_sluice_run` is larger), unless `target.version_column` is set
    (a stored row is never replaced by one with a smaller version) or `target.newer_interval_wins` (a stored row
    whose `_sluice_interval`, the end of the interval that wrote it, is later than this interval's end is never
    replaced), so re-running an old interval never rolls a key back.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from psycopg import errors as psycopg_errors

from sluice import failpoints
from sluice.config import WriteMode
from sluice.loading import arrow_copy, writes
from sluice.loading import sql as q
from sluice.loading.ledger import COUNTS, TIMINGS, Counts, Timings, ensure_metadata
from sluice.loading.target import (
    ConservationError,
    LoadError,
    SchemaChange,
    SchemaMismatch,
    StagedChunkChanged,
    Target,
    UnstorableValue,
    ensure_table,
    lock,
)
from sluice.loading.writes import UpsertStrategy, WritePath

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg
    import pyarrow as pa

    from sluice.config import PipelineConfig
    from sluice.interval import Interval
    from sluice.loading.duplicates import GatedReport

log = logging.getLogger(__name__)

__all__ = [
    "ChunkLoadResult",
    "ConservationError",
    "LoadError",
    "SchemaMismatch",
    "StagedChunkChanged",
    "UnstorableValue",
    "UpsertStrategy",
    "WritePath",
    "ensure_metadata",
    "load_arrow",
    "load_chunk",
]


class ChunkLoadResult(Counts, Timings):
    """What load_chunk returns (the load_chunk task's XCom, finalize's input): the ledger row of the chunk."""

    index: int
    generation: int
    duplicates: int  # rows of the chunk that a later row of the same key within it superseded (arrow_copy.prepare)
    checksum: str  # of the CSV bytes sent to COPY
    replayed: bool  # a retry: the chunk had committed, this is what the ledger recorded
    schema_changes: list[SchemaChange]
    write_path: str  # a WritePath value


class _RangeTaken(Exception):
    """Under the shared lock, the target turned out to hold keys in the chunk's range: roll back, merge instead."""


# what a concurrent straight COPY into the same keys raises (the primary key's check waits for the other writer)
CONCURRENT_WRITE = (
    psycopg_errors.UniqueViolation,
    psycopg_errors.DeadlockDetected,
    psycopg_errors.LockNotAvailable,
)
TEMP_BUFFERS = "512MB"  # a chunk's temp table stays in memory (default 8MB); set before the session's first temp use
# what a chunk records in the ledger besides its key (the ledger's counts, in one place: ledger.COUNTS)
RESULT_FIELDS = (*COUNTS, "duplicates", "checksum", *TIMINGS)


def load_chunk(cfg: PipelineConfig, interval: Interval, run_id: str, report: GatedReport) -> ChunkLoadResult:
    """Load a validated chunk's good rows, minus those a later row of their key supersedes (duplicates.py);
    idempotent per (pipeline, run_id, generation, chunk)."""
    from sluice.loading.duplicates import ROW, drop_superseded
    from sluice.staging import StagingStore

    generation = int(report.get("generation") or 0)
    store = StagingStore(cfg.staging, cfg.name, interval, run_id, generation if "generation" in report else None)
    table, superseded = None, 0
    if report.get("good_key") and report.get("rows_good", 1):
        table = store.read_table(report["good_key"], columns=report.get("good_columns"))
        if superseded_key := report.get("superseded_key"):
            rows = store.read_table(superseded_key)[ROW].combine_chunks()
            table, superseded = drop_superseded(table, rows), len(rows)
    return load_arrow(
        cfg,
        interval,
        run_id,
        int(report["index"]),
        table,
        generation=generation,
        rows_in=int(report["rows_in"]),
        rows_quarantined=int(report["rows_quarantined"]),
        superseded=superseded,
    )


def load_arrow(
    cfg: PipelineConfig,
    interval: Interval,
    run_id: str,
    index: int,
    table: pa.Table | None,
    *,
    generation: int = 0,
    rows_in: int | None = None,
    rows_quarantined: int = 0,
    superseded: int = 0,
    strategy: UpsertStrategy | None = None,
    dsn: str | None = None,
    replay_of: int | None = None,
    before_commit: Callable[[psycopg.Connection], None] | None = None,
) -> ChunkLoadResult:
    """load_chunk on an Arrow table: the good rows of chunk `index` that are loaded (declared columns and types);
    `superseded` more good rows were dropped run-wide before.

    A replay of quarantined rows (validate/replay.py) passes `replay_of`, the generation that quarantined them: it
    replaces nothing of the interval, and in a keyed table its rows carry and are guarded by that generation, so a
    key a later extraction wrote is never overwritten by the replayed older row. `before_commit` runs in the load
    transaction after the ledger row (the replay marks its quarantine rows there)."""
    import psycopg

    from sluice.connections import pg_dsn

    tgt = Target.of(cfg)
    rows_good = (0 if table is None else table.num_rows) + superseded
    rows_in = rows_good + rows_quarantined if rows_in is None else rows_in
    if rows_in != rows_good + rows_quarantined:
        raise ConservationError(
            f"chunk {index}: rows_in {rows_in} != good rows {rows_good} + quarantined {rows_quarantined}; refusing "
            "to load a chunk that does not add up"
        )
    try:
        prepared, extra, duplicates, bounds = arrow_copy.prepare(
            table, tgt.columns, tgt.pk, keyed=tgt.keyed, evolve=tgt.evolve, index=index
        )
    except arrow_copy.PrepareError as exc:
        raise LoadError(str(exc)) from exc
    superseded += duplicates
    names = [c.name for c in (*tgt.columns, *extra)]
    dsn = dsn or pg_dsn(tgt.conn_id)
    ensure_metadata(dsn, tgt.schema)
    key = {"pipeline": cfg.name, "run_id": run_id, "run_no": generation, "chunk": index}
    stamp = replay_of if replay_of is not None and tgt.keyed else generation  # the _sluice_run rows get
    started = datetime.now(UTC)
    app = f"sluice load {cfg.name}#{index}"[:63]
    with psycopg.connect(dsn, application_name=app, autocommit=True) as conn:  # transaction() = BEGIN .. COMMIT
        conn.execute(q.set_local("temp_buffers", TEMP_BUFFERS, local=False))
        if (done := _recorded(conn, key, prepared)) is not None:
            return done
        changes = ensure_table(conn, tgt, extra, cfg.name, run_id)
        # a probe in autocommit keeps no lock: no transaction reads the target before holding the advisory lock
        direct = not tgt.keyed or (bounds is not None and not writes.overlaps(conn, tgt, bounds))
        while True:
            # upsert chunks COPYed straight into an empty key range hold the lock shared, so they load side by side;
            # the primary key guards them against each other (another run writing the same keys meanwhile)
            shared = direct and tgt.mode is WriteMode.upsert
            try:
                with conn.transaction():
                    conn.execute(q.set_local("timezone", "UTC"))
                    copy_seconds, checksum, copied = 0.0, None, None
                    if not direct:  # before the lock: parallel chunks overlap this COPY with another chunk's MERGE
                        copy_seconds, checksum, copied = writes.copy_temp(conn, tgt, extra, names, prepared)
                    lock(conn, tgt, shared)
                    if (done := _recorded(conn, key, prepared, checksum)) is not None:
                        return done
                    t1 = time.perf_counter()
                    before = writes.counts(conn, tgt)
                    if (
                        replay_of is None
                        and tgt.mode is not WriteMode.upsert  # replace_earlier has nothing to remove for upsert
                        and not q.scalar(conn.execute(q.generation_started(), key))
                    ):
                        writes.replace_earlier(conn, tgt, cfg.name, interval, generation)
                    if direct and (not tgt.keyed or not writes.overlaps(conn, tgt, bounds)):  # sure now, under the lock
                        conn.execute(q.set_run_no(), {"run_no": str(stamp), "interval_end": interval.end.isoformat()})
                        t0 = time.perf_counter()
                        checksum, copied = writes.copy(
                            conn, q.copy_into_target(tgt.schema, tgt.table, prepared.column_names), prepared
                        )
                        copy_seconds, path = time.perf_counter() - t0, WritePath.copy
                        t1 += copy_seconds
                    elif shared:  # another writer's keys landed in the range: merge them under the exclusive lock
                        raise _RangeTaken
                    else:
                        if checksum is None:  # a chunk of this run took the key range meanwhile
                            copy_seconds, checksum, copied = writes.copy_temp(conn, tgt, extra, names, prepared)
                            t1 += copy_seconds
                        path = writes.write(conn, tgt, names, stamp, interval, strategy or writes.STRATEGY, bounds)
                    inserted, updated, deleted = (a - b for a, b in zip(writes.counts(conn, tgt), before, strict=True))
                    sent = prepared.num_rows
                    unchanged = sent - inserted - updated
                    if (copied is not None and copied != sent) or unchanged < 0:
                        raise ConservationError(
                            f"chunk {index}: {sent} rows sent, PostgreSQL copied {copied}, inserted {inserted} and "
                            f"updated {updated}; rolled back"
                        )
                    result: ChunkLoadResult = {
                        "index": index,
                        "generation": generation,
                        "rows_in": rows_in,
                        "rows_loaded": rows_good,
                        "rows_quarantined": rows_quarantined,
                        "inserted": inserted,
                        "updated": updated,
                        "unchanged": unchanged,
                        "superseded": superseded,
                        "deleted": deleted,
                        "duplicates": duplicates,
                        "checksum": checksum,
                        "copy_seconds": round(copy_seconds, 3),
                        "merge_seconds": round(time.perf_counter() - t1, 3),
                        "replayed": False,
                        "schema_changes": changes,
                        "write_path": path.value,
                    }
                    conn.execute(
                        q.ledger_insert(),
                        {
                            **{k: v for k, v in result.items() if k in RESULT_FIELDS},
                            **key,
                            "target": tgt.name,
                            "interval_start": interval.start,
                            "interval_end": interval.end,
                            "write_mode": tgt.mode.value,
                            "started_at": started,
                            "finished_at": datetime.now(UTC),
                        },
                    )
                    if before_commit is not None:
                        before_commit(conn)
                    failpoints.hit(conn, cfg.name, failpoints.Point.load_before_commit)
            except (_RangeTaken, *CONCURRENT_WRITE) as exc:
                if not shared:
                    raise
                log.info(
                    "chunk %d: another writer took keys in the chunk's range meanwhile (%s); loading it through the "
                    "merge path under the exclusive lock",
                    index,
                    type(exc).__name__,
                )
                direct = False
                continue
            except psycopg.errors.DataError as exc:
                raise UnstorableValue(writes.refused(exc, prepared, tgt, index)) from exc
            break
        failpoints.hit(conn, cfg.name, failpoints.Point.load_after_commit)
    log.info(
        "chunk %d (generation %d) -> %s: %d rows (%d inserted, %d updated, %d unchanged, %d superseded, %d deleted) "
        "copy %.2fs %s %.2fs",
        index,
        generation,
        tgt.name,
        rows_good,
        inserted,
        updated,
        unchanged,
        superseded,
        deleted,
        result["copy_seconds"],
        path.value,
        result["merge_seconds"],
    )
    return result


def _recorded(
    conn: psycopg.Connection, key: dict, table: pa.Table, checksum: str | None = None
) -> ChunkLoadResult | None:
    """The ledger's result for this chunk of this generation, if it committed before (a retry)."""
    from psycopg.rows import dict_row

    row = conn.cursor(row_factory=dict_row).execute(q.ledger_select(one_chunk=True), key).fetchone()
    if row is None:
        return None
    checksum = checksum or arrow_copy.checksum(table)
    if row["checksum"] != checksum:
        raise StagedChunkChanged(
            f"chunk {key['chunk']} of generation {key['run_no']} of run {key['run_id']} ({key['pipeline']}) was "
            f"loaded with {row['checksum']}, but its staged good rows now hash to {checksum}. Files of one generation "
            "never change: clear the whole run (or re-run extract_and_stage) to load the current source."
        )
    log.info(
        "chunk %d of generation %d is already in the ledger: returning the recorded result", key["chunk"], key["run_no"]
    )
    recorded = {
        "index": row["chunk"],
        "generation": row["run_no"],
        **{k: row[k] for k in RESULT_FIELDS},
        "replayed": True,
        "schema_changes": [],
        "write_path": WritePath.ledger.value,
    }
    return cast("ChunkLoadResult", recorded)  # RESULT_FIELDS are ChunkLoadResult's (tests/unit/test_handoffs.py)
