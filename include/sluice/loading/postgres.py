"""Load one validated chunk into PostgreSQL exactly once; check a run's conservation from the ledger.

One chunk, one transaction: take the target's advisory lock (`pg_advisory_xact_lock(hashtext('<schema>.<table>'))`),
create/check/evolve the table, write the good rows, insert the `sluice.load_ledger` row, commit. A crash anywhere
leaves nothing behind; a retry finds the ledger row for (pipeline, run_id, chunk) and returns what it recorded.

How rows are written (pyarrow CSV streamed into COPY; SQL text in sql.py):
  * new keys: when the target holds no key between the chunk's first and last key (checked under the lock), the
    chunk is COPYed straight into the target: nothing can conflict. `append` always does this;
  * otherwise: COPY into a temp table (before the lock, so parallel chunks overlap it with another's write), then
    an upsert guarded by IS DISTINCT FROM, so unchanged rows are never rewritten. Which statement is measured by
    bench/bench_load.py: MERGE never touches an unchanged row, INSERT .. ON CONFLICT locks (and WAL-logs) every
    conflicting row even when its WHERE is false, but inserts new rows faster. So (UpsertStrategy.auto) a sample of
    the chunk's first keys decides: mostly existing (a re-run) -> MERGE, mostly new -> ON CONFLICT.
  * `replace_interval`: the run's first committed chunk (decided under the lock from the ledger) deletes the rows
    whose interval_column is in [start, end); every chunk then writes as above, so parallel chunks never delete
    each other's rows. A run without chunks deletes in finalize.

Which row wins (upsert, replace_interval): for every key, the LAST row of the run in source order, in any load order.
  * Within a chunk, duplicate keys are dropped before the COPY (the highest row number is kept).
  * Across chunks, rows carry two hidden columns: `_sluice_run`, the load-run number of the (pipeline, run_id) that
    wrote the row (sequence sluice.load_run_seq, kept in the ledger), and `_sluice_seq` = chunk << 32 | row number
    in the chunk's good rows. A row replaces a stored one only when its values differ and either another run wrote
    the stored row (the later run wins: re-runs and backfills overwrite) or the stored `_sluice_seq` is not larger.
  * Re-runs (new run_id): a chunk whose checksum equals the same chunk's in an earlier run of the interval "adopts"
    that run's rows, so an earlier duplicate cannot overwrite a row an unchanged later chunk still holds. A key
    duplicated across chunks may still be rewritten and restored when the earlier chunk loads first. Known limit: if
    a re-run CHANGES chunk C but keeps a duplicated key's row in C, and C loads before an earlier chunk with that key,
    the earlier row wins; an exact rule needs a run-wide duplicate pass before loading.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sluice import failpoints
from sluice.config import ExtraColumnsPolicy, WriteMode
from sluice.loading import arrow_copy
from sluice.loading import sql as q
from sluice.loading.ledger import COUNTS, conservation_problems, ensure_metadata, format_table

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa

    from sluice.config import PipelineConfig
    from sluice.interval import Interval

log = logging.getLogger(__name__)

__all__ = [
    "ConservationError",
    "LoadError",
    "SchemaMismatch",
    "StagedChunkChanged",
    "UpsertStrategy",
    "ensure_metadata",
    "finalize",
    "load_arrow",
    "load_chunk",
]


class UpsertStrategy(StrEnum):
    auto = "auto"  # per chunk, from a sample of its keys: mostly existing -> merge, mostly new -> on_conflict
    merge = "merge"
    on_conflict = "on_conflict"


STRATEGY = UpsertStrategy.auto
SAMPLE_KEYS = 1000
MERGE_WORK_MEM = "256MB"
TEMP_BUFFERS = "512MB"  # a chunk's temp table stays in memory (default 8MB); set before the session's first temp use


class LoadError(RuntimeError):
    """The chunk was not loaded; the transaction rolled back."""


class SchemaMismatch(LoadError):
    """The existing target table differs from the config; nothing was loaded."""


class ConservationError(LoadError):
    """Rows in != rows loaded + rows quarantined, or a chunk has no ledger row."""


class StagedChunkChanged(LoadError):
    """The ledger has this chunk of this run with another checksum: the staged data changed after it was loaded."""


@dataclass(frozen=True)
class _Target:
    conn_id: str
    schema: str
    table: str
    columns: tuple[q.Col, ...]
    pk: tuple[str, ...]
    mode: WriteMode
    interval_column: str | None
    evolve: bool

    @classmethod
    def of(cls, cfg: PipelineConfig) -> _Target:
        t = cfg.target
        cols = tuple(q.Col(c.name, c.pg_type, c.nullable) for c in t.columns)
        reserved = [c.name for c in cols if c.name.startswith("_sluice_")]
        if reserved:
            raise LoadError(f"column names starting with _sluice_ are reserved for Sluice: {', '.join(reserved)}")
        return cls(
            t.conn_id,
            t.schema_,
            t.table,
            cols,
            tuple(t.primary_key),
            WriteMode(t.write_mode),
            t.interval_column,
            t.on_extra_columns == ExtraColumnsPolicy.evolve,
        )

    @property
    def name(self) -> str:
        return q.lock_key(self.schema, self.table)

    @property
    def keyed(self) -> bool:
        return self.mode is not WriteMode.append

    def where(self) -> dict[str, str]:
        return {"schema": self.schema, "table": self.table}


# ------------------------------------------------------------------------------------------------ public API


def load_chunk(cfg: PipelineConfig, interval: Interval, run_id: str, report: dict) -> dict:
    """Load a validated chunk's good rows (ChunkReport -> LoadResult dict); idempotent per (pipeline, run_id, chunk)."""
    from sluice.staging import StagingStore

    table = None
    if report.get("good_key") and report.get("rows_good", 1):
        table = StagingStore(cfg.staging, cfg.name, interval, run_id).read_table(report["good_key"])
    return load_arrow(
        cfg,
        interval,
        run_id,
        int(report["index"]),
        table,
        rows_in=int(report["rows_in"]),
        rows_quarantined=int(report["rows_quarantined"]),
    )


def load_arrow(
    cfg: PipelineConfig,
    interval: Interval,
    run_id: str,
    index: int,
    table: pa.Table | None,
    *,
    rows_in: int | None = None,
    rows_quarantined: int = 0,
    strategy: UpsertStrategy | None = None,
    dsn: str | None = None,
) -> dict:
    """load_chunk on an Arrow table (the good rows of chunk `index`, declared columns and types)."""
    import psycopg

    from sluice.connections import pg_dsn

    tgt = _Target.of(cfg)
    rows_good = 0 if table is None else table.num_rows
    rows_in = rows_good + rows_quarantined if rows_in is None else rows_in
    if rows_in != rows_good + rows_quarantined:
        raise ConservationError(
            f"chunk {index}: rows_in {rows_in} != good rows {rows_good} + quarantined "
            f"{rows_quarantined}; refusing to load a chunk that does not add up"
        )
    try:
        prepared, extra, duplicates, bounds = arrow_copy.prepare(
            table, tgt.columns, tgt.pk, keyed=tgt.keyed, evolve=tgt.evolve, index=index
        )
    except arrow_copy.PrepareError as exc:
        raise LoadError(str(exc)) from exc
    names = [c.name for c in (*tgt.columns, *extra)]
    dsn = dsn or pg_dsn(tgt.conn_id)
    ensure_metadata(dsn, tgt.schema)
    key = {"pipeline": cfg.name, "run_id": run_id, "chunk": index}
    started = datetime.now(UTC)
    app = f"sluice load {cfg.name}#{index}"[:63]
    with psycopg.connect(dsn, application_name=app, autocommit=True) as conn:  # transaction() = BEGIN .. COMMIT
        conn.execute(q.set_local("temp_buffers", TEMP_BUFFERS, local=False))
        with conn.transaction():
            if (done := _recorded(conn, key, prepared)) is not None:
                return done
            conn.execute(q.set_local("timezone", "UTC"))
            direct = tgt.mode is WriteMode.append or (bounds is not None and not _overlaps(conn, tgt, bounds))
            copy_seconds, checksum = 0.0, None
            if not direct:  # before the lock: parallel chunks overlap this COPY with another chunk's MERGE
                copy_seconds, checksum = _copy_temp(conn, tgt, extra, names, prepared)
            conn.execute(q.advisory_lock(), {"key": tgt.name})
            if (done := _recorded(conn, key, prepared, checksum)) is not None:
                return done
            t1 = time.perf_counter()
            row = conn.execute(q.ledger_run_no(), key).fetchone()
            run_no, first = (row[0], False) if row else (conn.execute(q.next_run_no()).fetchone()[0], True)
            changes = _ensure_table(conn, tgt, extra, cfg.name, run_id)
            before = _counts(conn, tgt)
            if tgt.mode is WriteMode.replace_interval and first:
                conn.execute(
                    q.delete_interval(tgt.schema, tgt.table, tgt.interval_column),
                    {"start": interval.start, "end": interval.end},
                )
            if direct and (tgt.mode is WriteMode.append or not _overlaps(conn, tgt, bounds)):  # sure, under the lock
                conn.execute(q.set_run_no(), {"run_no": str(run_no)})
                data = prepared if tgt.keyed else prepared.drop_columns([q.SEQ_COL])
                t0 = time.perf_counter()
                checksum = _copy(conn, q.copy_into_target(tgt.schema, tgt.table, data.column_names), data)
                copy_seconds, path = time.perf_counter() - t0, "copy"
                t1 += copy_seconds
            else:
                if checksum is None:  # a chunk of this run took the key range meanwhile
                    copy_seconds, checksum = _copy_temp(conn, tgt, extra, names, prepared)
                    t1 += copy_seconds
                adopted = [
                    r[0]
                    for r in conn.execute(
                        q.adopted_chunks(), {**key, "start": interval.start, "end": interval.end, "checksum": checksum}
                    )
                ]
                path = _write(conn, tgt, names, run_no, adopted, strategy or STRATEGY, bounds)
            inserted, updated, deleted = (a - b for a, b in zip(_counts(conn, tgt), before, strict=True))
            result = {
                "index": index,
                "rows_in": rows_in,
                "rows_loaded": rows_good,
                "rows_quarantined": rows_quarantined,
                "inserted": inserted,
                "updated": updated,
                "checksum": checksum,
                "deleted": deleted,
                "duplicates": duplicates,
                "copy_seconds": round(copy_seconds, 3),
                "merge_seconds": round(time.perf_counter() - t1, 3),
                "replayed": False,
                "schema_changes": changes,
                "write_path": path,
            }
            conn.execute(
                q.ledger_insert(),
                {
                    **{
                        k: result[k]
                        for k in (
                            "rows_in",
                            "rows_loaded",
                            "rows_quarantined",
                            "inserted",
                            "updated",
                            "deleted",
                            "duplicates",
                            "checksum",
                            "copy_seconds",
                            "merge_seconds",
                        )
                    },
                    "pipeline": cfg.name,
                    "target": tgt.name,
                    "interval_start": interval.start,
                    "interval_end": interval.end,
                    "run_id": run_id,
                    "run_no": run_no,
                    "chunk": index,
                    "write_mode": tgt.mode.value,
                    "started_at": started,
                    "finished_at": datetime.now(UTC),
                },
            )
            failpoints.hit(conn, cfg.name, failpoints.Point.load_before_commit)
        failpoints.hit(conn, cfg.name, failpoints.Point.load_after_commit)
    log.info(
        "chunk %d -> %s: %d rows (%d inserted, %d updated, %d deleted, %d duplicates superseded) copy %.2fs %s %.2fs",
        index,
        tgt.name,
        rows_good,
        inserted,
        updated,
        deleted,
        duplicates,
        result["copy_seconds"],
        path,
        result["merge_seconds"],
    )
    return result


def finalize(cfg: PipelineConfig, interval: Interval, run_id: str, results: list[dict]) -> dict:
    """Check conservation from the ledger (one row per chunk, rows_in == loaded + quarantined), record the run
    summary (also when the check fails), and return it; raises ConservationError when anything does not add up."""
    import psycopg

    from sluice.connections import pg_dsn

    tgt = _Target.of(cfg)
    dsn = pg_dsn(tgt.conn_id)
    ensure_metadata(dsn, tgt.schema)
    key = {"pipeline": cfg.name, "run_id": run_id}
    with psycopg.connect(dsn, application_name=f"sluice finalize {cfg.name}"[:63], autocommit=True) as conn:
        with conn.transaction():
            deleted = 0
            if not results and tgt.mode is WriteMode.replace_interval:
                deleted = _replace_empty_interval(conn, tgt, interval)
            cur = conn.cursor(row_factory=_dict_row())
            rows = cur.execute(q.ledger_select(one_chunk=False), key).fetchall()
            changes = [
                dict(zip(("change", "column", "type"), r, strict=True))
                for r in conn.execute(q.schema_changes_select(), key)
            ]
            problems = conservation_problems(rows, results, interval)
            total = {f: sum(int(r[f]) for r in rows) for f in COUNTS}
            total["deleted"] += deleted
            summary = {
                **key,
                "target": tgt.name,
                "interval_start": interval.start,
                "interval_end": interval.end,
                "chunks": len(rows),
                **total,
                "schema_changes": changes,
                "status": "failed" if problems else "success",
                "problems": problems,
                "finished_at": datetime.now(UTC),
            }
            from psycopg.types.json import Jsonb

            conn.execute(
                q.run_summary_upsert(), {**summary, "schema_changes": Jsonb(changes), "problems": Jsonb(problems)}
            )
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
    log.info("run %s of %s loaded into %s:\n%s", run_id, cfg.name, tgt.name, summary["table"])
    return summary


# ------------------------------------------------------------------------------------------------ steps


def _copy(conn: psycopg.Connection, statement: Any, table: pa.Table) -> str:
    """Stream the table as CSV into a COPY .. FROM STDIN; return the checksum of exactly the bytes sent."""
    from psycopg.copy import QueuedLibpqWriter

    h = hashlib.sha256()
    with conn.cursor() as cur:
        with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
            for block in arrow_copy.csv_blocks(table):
                h.update(block)
                copy.write(block)
    return "sha256:" + h.hexdigest()


def _copy_temp(
    conn: psycopg.Connection, tgt: _Target, extra: list[q.Col], names: list[str], table: pa.Table
) -> tuple[float, str]:
    conn.execute(q.create_temp([*tgt.columns, *extra]))
    t0 = time.perf_counter()
    checksum = _copy(conn, q.copy_from_stdin(names), table)
    return time.perf_counter() - t0, checksum


def _overlaps(conn: psycopg.Connection, tgt: _Target, bounds: tuple[tuple, tuple]) -> bool:
    """Does the target hold a key between the chunk's first and last key? (A missing table holds none.)"""
    if not conn.execute(q.table_exists(), tgt.where()).fetchone()[0]:
        return False
    lo, hi = bounds
    params = {**{f"lo{i}": v for i, v in enumerate(lo)}, **{f"hi{i}": v for i, v in enumerate(hi)}}
    return conn.execute(q.keys_in_range(tgt.schema, tgt.table, tgt.pk), params).fetchone()[0]


def _recorded(conn: psycopg.Connection, key: dict, table: pa.Table, checksum: str | None = None) -> dict | None:
    """The ledger's result for this chunk of this run, if it committed before (a retry)."""
    row = conn.cursor(row_factory=_dict_row()).execute(q.ledger_select(one_chunk=True), key).fetchone()
    if row is None:
        return None
    checksum = checksum or arrow_copy.checksum(table)
    if row["checksum"] != checksum:
        raise StagedChunkChanged(
            f"chunk {key['chunk']} of run {key['run_id']} ({key['pipeline']}) was loaded with {row['checksum']}, "
            f"but the staged good rows now hash to {checksum}: the run was cleared and its source changed. "
            "A run's load is final; trigger a new run for this interval to load the new data."
        )
    log.info("chunk %d of run %s is already in the ledger: returning the recorded result", key["chunk"], key["run_id"])
    return {
        "index": row["chunk"],
        **{
            k: row[k]
            for k in (
                "rows_in",
                "rows_loaded",
                "rows_quarantined",
                "inserted",
                "updated",
                "checksum",
                "deleted",
                "duplicates",
                "copy_seconds",
                "merge_seconds",
            )
        },
        "replayed": True,
        "schema_changes": [],
        "write_path": "ledger",
    }


def _ensure_table(conn: psycopg.Connection, tgt: _Target, extra: list[q.Col], pipeline: str, run_id: str) -> list:
    """Create the target when missing; otherwise compare it with the config and fail, naming every difference
    (nothing is loaded), or with on_extra_columns: evolve add the new columns as nullable and record it."""
    existing = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(q.table_columns(), tgt.where())}
    wanted = {c.name: c for c in (*tgt.columns, *extra)}
    changes: list[dict] = []

    def record(change: str, column: str | None = None, type_: str | None = None) -> None:
        conn.execute(
            q.schema_change_insert(),
            {
                "pipeline": pipeline,
                "run_id": run_id,
                "target": tgt.name,
                "change": change,
                "column": column,
                "type": type_,
            },
        )
        changes.append({"change": change, "column": column, "type": type_})

    if not existing:
        conn.execute(q.create_table(tgt.schema, tgt.table, list(wanted.values()), tgt.pk, hidden=tgt.keyed))
        record("create_table")
        return changes
    problems, add = [], []
    for name, col in wanted.items():
        if name not in existing:
            (add.append(col) if tgt.evolve else problems.append(f"{name} ({col.pg_type}) is missing in the table"))
        elif _same_type(existing[name][0], col.pg_type) is False:
            problems.append(f"{name} is {existing[name][0]} in the table but {col.pg_type} in the config")
    for name, (type_, notnull, _) in existing.items():
        if name not in wanted and name not in q.HIDDEN and (notnull or not tgt.evolve):
            problems.append(f"{name} ({type_}) is in the table but not declared")
    if tgt.keyed:
        pk = [r[0] for r in conn.execute(q.primary_key_columns(), tgt.where())]
        if sorted(pk) != sorted(tgt.pk):
            problems.append(
                f"primary key is ({', '.join(pk) or 'none'}) in the table but ({', '.join(tgt.pk)}) in the config"
            )
    if problems:
        raise SchemaMismatch(
            f"target table {tgt.name} does not match pipeline {pipeline}: "
            + "; ".join(problems)
            + ". Nothing was loaded. Change the table or target.columns so they agree"
            + ("" if tgt.evolve else " (on_extra_columns: evolve adds new columns)")
            + "."
        )
    for col in add:
        conn.execute(q.add_column(tgt.schema, tgt.table, col))
        record("add_column", col.name, q.pg_type(col.pg_type))
        log.warning("schema evolution: added nullable column %s %s to %s", col.name, col.pg_type, tgt.name)
    if tgt.keyed and not all(h in existing for h in q.HIDDEN):
        conn.execute(q.add_hidden_columns(tgt.schema, tgt.table))
        record("add_hidden_columns")
    if tgt.keyed and "sluice.run_no" not in (existing.get(q.RUN_COL, (None, None, None))[2] or ""):
        conn.execute(q.set_run_default(tgt.schema, tgt.table))
    return changes


def _same_type(actual: str, declared: str) -> bool:
    try:
        return q.pg_type(actual) == q.pg_type(declared)
    except q.UnsafeIdentifier:
        return False


def _write(
    conn: psycopg.Connection,
    tgt: _Target,
    names: list[str],
    run_no: int,
    adopted: list[int],
    strategy: UpsertStrategy,
    bounds: tuple[tuple, tuple] | None,
) -> str:
    """Write the temp table into the target; returns the path taken (empty, insert_new, merge, on_conflict)."""
    if bounds is None:  # key types Arrow cannot order like PostgreSQL (text): ask the temp table
        lo = conn.execute(q.key_bound(tgt.pk, last=False)).fetchone()
        if lo is None:
            return "empty"
        bounds = (lo, conn.execute(q.key_bound(tgt.pk, last=True)).fetchone())
    if not _overlaps(conn, tgt, bounds):
        conn.execute(q.insert_new(tgt.schema, tgt.table, names), {"run_no": run_no})
        return "insert_new"
    params = {"run_no": run_no, "adopted": adopted}
    if strategy is UpsertStrategy.auto:
        sampled, matched = conn.execute(q.matched_sample(tgt.schema, tgt.table, tgt.pk), {"n": SAMPLE_KEYS}).fetchone()
        strategy = UpsertStrategy.merge if 2 * matched >= sampled else UpsertStrategy.on_conflict
    if strategy is UpsertStrategy.merge:
        conn.execute(q.analyze_temp(tgt.pk))
        conn.execute(q.set_local("work_mem", MERGE_WORK_MEM))
        conn.execute(q.merge_upsert(tgt.schema, tgt.table, names, tgt.pk), params)
    else:
        conn.execute(q.on_conflict_upsert(tgt.schema, tgt.table, names, tgt.pk), params)
    return strategy.value


def _counts(conn: psycopg.Connection, tgt: _Target) -> tuple[int, int, int]:
    return tuple(conn.execute(q.xact_tuple_counts(), tgt.where()).fetchone())


def _replace_empty_interval(conn: psycopg.Connection, tgt: _Target, interval: Interval) -> int:
    """replace_interval with an empty source interval: its rows go, as they would with any other content."""
    conn.execute(q.set_local("timezone", "UTC"))
    conn.execute(q.advisory_lock(), {"key": tgt.name})
    if not conn.execute(q.table_columns(), tgt.where()).fetchone():
        return 0
    cur = conn.execute(
        q.delete_interval(tgt.schema, tgt.table, tgt.interval_column), {"start": interval.start, "end": interval.end}
    )
    log.warning(
        "replace_interval: the source had no rows for %s; deleted %d rows of %s", interval.key, cur.rowcount, tgt.name
    )
    return cur.rowcount


def _dict_row() -> Any:
    from psycopg.rows import dict_row

    return dict_row
