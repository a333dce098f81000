"""How a chunk's rows are written inside its load transaction (postgres.py holds the transaction, the ledger and
the retry rules): COPY straight into the target or into a temp table, the probe for stored keys in the chunk's key
range, the upsert statement chosen per chunk, the transaction's row counts, and the message for a value PostgreSQL
refused. SQL text lives in loading/sql/."""

from __future__ import annotations

import hashlib
import re
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sluice.config import WriteMode
from sluice.loading import arrow_copy
from sluice.loading import sql as q

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa

    from sluice.interval import Interval
    from sluice.loading.target import Target


class UpsertStrategy(StrEnum):
    auto = "auto"  # per chunk, from a sample of its keys: mostly existing -> merge, mostly new -> on_conflict
    merge = "merge"
    on_conflict = "on_conflict"


class WritePath(StrEnum):
    """How a chunk's rows reached the table (ledger column write_path in the task result)."""

    copy = "copy"  # COPY straight into the target (new keys, or append)
    insert_new = "insert_new"  # temp table, then a plain INSERT (no key of the chunk was in the target)
    merge = "merge"
    on_conflict = "on_conflict"
    empty = "empty"
    ledger = "ledger"  # a retry: the chunk had committed, the recorded result is returned


STRATEGY = UpsertStrategy.auto
SAMPLE_KEYS = 1000
MERGE_WORK_MEM = "256MB"


def replace_earlier(conn: psycopg.Connection, tgt: Target, pipeline: str, interval: Interval, generation: int) -> None:
    """The first chunk of a generation removes what the generation replaces (replace_interval, append)."""
    params = {"pipeline": pipeline, "start": interval.start, "end": interval.end, "run_no": generation}
    if tgt.mode is WriteMode.replace_interval:
        conn.execute(q.delete_interval(tgt.schema, tgt.table, tgt.replaced_column), params)
    elif tgt.mode is WriteMode.append:
        conn.execute(q.delete_generations(tgt.schema, tgt.table), params)


def refused(exc: Exception, prepared: pa.Table, tgt: Target, index: int) -> str:
    """Name the chunk, the row (and its key) and the value PostgreSQL refused."""
    diag = getattr(exc, "diag", None)
    context = getattr(diag, "context", None) or ""
    where = ""
    if m := re.search(r"line (\d+)", context):
        row = int(m.group(1)) - 1
        if 0 <= row < prepared.num_rows:
            values = prepared.slice(row, 1).to_pylist()[0]
            shown = {k: values[k] for k in (tgt.pk or list(values)[:3])}
            where = f" at row {row} of its loaded rows (key {shown})"
    primary = getattr(diag, "message_primary", None) or str(exc)
    return (
        f"chunk {index}: PostgreSQL refused a value{where}: {primary} [{context.strip()}]. The cast stage should have "
        "quarantined it; this is not retried. Please report it with this message."
    )


def copy(conn: psycopg.Connection, statement: Any, table: pa.Table) -> tuple[str, int | None]:
    """Stream the table as CSV into a COPY .. FROM STDIN; return the checksum of exactly the bytes sent and the
    row count PostgreSQL reports."""
    from psycopg.copy import QueuedLibpqWriter

    h = hashlib.sha256()
    with conn.cursor() as cur:
        with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
            for block in arrow_copy.csv_blocks(table):
                h.update(block)
                copy.write(block)
        rows = cur.rowcount if cur.rowcount is not None and cur.rowcount >= 0 else None
    return "sha256:" + h.hexdigest(), rows


def copy_temp(
    conn: psycopg.Connection, tgt: Target, extra: list[q.Col], names: list[str], table: pa.Table
) -> tuple[float, str, int | None]:
    conn.execute(q.create_temp([*tgt.columns, *extra]))
    t0 = time.perf_counter()
    checksum, rows = copy(conn, q.copy_from_stdin(names), table)
    return time.perf_counter() - t0, checksum, rows


def overlaps(conn: psycopg.Connection, tgt: Target, bounds: tuple[tuple, tuple] | None) -> bool:
    """Does the target hold a key between the chunk's first and last key? (A missing table holds none.)"""
    if bounds is None:
        return True
    if not q.scalar(conn.execute(q.table_exists(), tgt.where())):
        return False
    lo, hi = bounds
    params = {**{f"lo{i}": v for i, v in enumerate(lo)}, **{f"hi{i}": v for i, v in enumerate(hi)}}
    return q.scalar(conn.execute(q.keys_in_range(tgt.schema, tgt.table, tgt.pk), params))


def write(
    conn: psycopg.Connection,
    tgt: Target,
    names: list[str],
    generation: int,
    interval: Interval,
    strategy: UpsertStrategy,
    bounds: tuple[tuple, tuple] | None,
) -> WritePath:
    """Write the temp table into the target; returns the path taken."""
    if bounds is None:  # key types Arrow cannot order like PostgreSQL (text): ask the temp table
        lo = conn.execute(q.key_bound(tgt.pk, last=False)).fetchone()
        if lo is None:
            return WritePath.empty
        bounds = (lo, q.one_row(conn.execute(q.key_bound(tgt.pk, last=True))))
    params = {"run_no": generation, "interval_end": interval.end}
    if not overlaps(conn, tgt, bounds):
        conn.execute(q.insert_new(tgt.schema, tgt.table, names), params)
        return WritePath.insert_new
    if strategy is UpsertStrategy.auto:
        sampled, matched = q.one_row(conn.execute(q.matched_sample(tgt.schema, tgt.table, tgt.pk), {"n": SAMPLE_KEYS}))
        strategy = UpsertStrategy.merge if 2 * matched >= sampled else UpsertStrategy.on_conflict
    if strategy is UpsertStrategy.merge:
        conn.execute(q.analyze_temp(tgt.pk))
        conn.execute(q.set_local("work_mem", MERGE_WORK_MEM))
        conn.execute(q.merge_upsert(tgt.schema, tgt.table, names, tgt.pk, tgt.version, tgt.newer_interval), params)
        return WritePath.merge
    conn.execute(q.on_conflict_upsert(tgt.schema, tgt.table, names, tgt.pk, tgt.version, tgt.newer_interval), params)
    return WritePath.on_conflict


def counts(conn: psycopg.Connection, tgt: Target) -> tuple[int, int, int]:
    inserted, updated, deleted = q.one_row(conn.execute(q.xact_tuple_counts(), tgt.where()))
    return inserted, updated, deleted
