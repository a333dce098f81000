"""The target table as the loader sees it, the loader's errors, and the schema step.

The schema step (create the table, check it against the config, add evolved or hidden columns) runs in its own short
transaction under the table's advisory lock, before a chunk's load transaction. So a load transaction never alters the
table, and no transaction reads the target before it holds the advisory lock: two chunks adding the same column in
parallel cannot deadlock (the second finds the column and records nothing), and `lock_timeout` bounds every wait on a
table lock held by someone outside Sluice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from sluice.config import ExtraColumnsPolicy, WriteMode
from sluice.loading import sql as q

if TYPE_CHECKING:
    import psycopg

    from sluice.config import PipelineConfig

log = logging.getLogger(__name__)

LOCK_TIMEOUT = "120s"  # waits on table locks (not on Sluice's own advisory lock, which queues chunks on purpose)


class SchemaChange(TypedDict):
    """One change the schema step made to a target (also a row of sluice.schema_changes)."""

    change: str  # create_table, add_column, add_hidden_columns
    column: str | None
    type: str | None


class LoadError(RuntimeError):
    """The chunk was not loaded; the transaction rolled back."""


class SchemaMismatch(LoadError):
    """The existing target table differs from the config; nothing was loaded."""


class ConservationError(LoadError):
    """Rows in != rows loaded + rows quarantined, or a chunk has no ledger row."""


class StagedChunkChanged(LoadError):
    """The ledger has this chunk of this generation with another checksum: files of one generation never change."""


class UnstorableValue(LoadError):
    """PostgreSQL refused a value at load time (the cast stage should have quarantined it). Not retryable: a retry
    would fail the same way; the message names the chunk, the row and the value."""

    retryable = False


class EmptyingRefused(LoadError):
    """replace_interval with a source that returned no rows for an interval that holds rows (allow_empty is off)."""

    retryable = False


@dataclass(frozen=True)
class Target:
    conn_id: str
    schema: str
    table: str
    columns: tuple[q.Col, ...]
    pk: tuple[str, ...]
    mode: WriteMode
    interval_column: str | None
    evolve: bool
    version: str | None = None
    newer_interval: bool = False  # target.newer_interval_wins

    @property
    def replaced_column(self) -> str:
        """The interval column a replace_interval target clears by (the config requires it for that mode)."""
        if self.interval_column is None:
            raise LoadError(f"{self.schema}.{self.table}: replace_interval needs target.interval_column")
        return self.interval_column

    @classmethod
    def of(cls, cfg: PipelineConfig) -> Target:
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
            t.version_column,
            t.newer_interval_wins,
        )

    @property
    def name(self) -> str:
        return q.lock_key(self.schema, self.table)

    @property
    def keyed(self) -> bool:
        return self.mode is not WriteMode.append

    def where(self) -> dict[str, str]:
        return {"schema": self.schema, "table": self.table}


def lock(conn: psycopg.Connection, tgt: Target, shared: bool = False) -> None:
    """The table's advisory lock (to the end of the transaction), then a bound on any table-lock wait."""
    conn.execute(q.advisory_lock(shared), {"key": tgt.name})
    conn.execute(q.set_local("lock_timeout", LOCK_TIMEOUT))


def ensure_table(
    conn: psycopg.Connection, tgt: Target, extra: list[q.Col], pipeline: str, run_id: str
) -> list[SchemaChange]:
    """In its own transaction: create the target when missing; otherwise compare it with the config and fail, naming
    every difference (nothing is loaded), or with on_extra_columns: evolve add the new columns and record it.

    A table that already matches is only read (catalog reads take no lock on it), so the chunks of a run do not
    queue behind one another's loads for the exclusive lock; the lock and a second look come when something is to
    change or to refuse."""
    if _ensure(conn, tgt, extra, pipeline, run_id, check_only=True) == []:
        return []
    with conn.transaction():
        lock(conn, tgt)
        return _ensure(conn, tgt, extra, pipeline, run_id) or []  # a list whenever check_only is False


def _ensure(
    conn: psycopg.Connection, tgt: Target, extra: list[q.Col], pipeline: str, run_id: str, check_only: bool = False
) -> list[SchemaChange] | None:
    """The schema step; with check_only, [] when the table needs nothing, None when it would change or refuse."""
    existing = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(q.table_columns(), tgt.where())}
    wanted = {c.name: c for c in (*tgt.columns, *extra)}
    changes: list[SchemaChange] = []

    def record(change: str, column: str | None = None, type_: str | None = None) -> None:
        params = {"pipeline": pipeline, "run_id": run_id, "target": tgt.name}
        conn.execute(q.schema_change_insert(), {**params, "change": change, "column": column, "type": type_})
        changes.append({"change": change, "column": column, "type": type_})

    if not existing:
        if check_only:
            return None
        pk = tgt.pk if tgt.keyed else ()  # append keeps every row: a key would refuse a second interval's repeat
        conn.execute(q.create_table(tgt.schema, tgt.table, list(wanted.values()), pk, hidden=True))
        record("create_table")
        return changes
    problems, add = [], []
    for name, col in wanted.items():
        if name not in existing:
            (add.append(col) if tgt.evolve else problems.append(f"{name} ({col.pg_type}) is missing in the table"))
        elif same_type(existing[name][0], col.pg_type) is False:
            problems.append(f"{name} is {existing[name][0]} in the table but {col.pg_type} in the config")
    for name, (type_, notnull, _) in existing.items():
        if name not in wanted and name not in q.RESERVED and (notnull or not tgt.evolve):
            problems.append(f"{name} ({type_}) is in the table but not declared")
    if tgt.keyed:
        table_pk = [r[0] for r in conn.execute(q.primary_key_columns(), tgt.where())]
        if sorted(table_pk) != sorted(tgt.pk):
            problems.append(
                f"primary key is ({', '.join(table_pk) or 'none'}) in the table but ({', '.join(tgt.pk)}) in the config"
            )
    hidden = all(h in existing for h in q.HIDDEN)
    run_default = "sluice.run_no" in (existing.get(q.RUN_COL, (None, None, None))[2] or "")
    if check_only:
        return [] if not (problems or add or not hidden or not run_default or q.INTERVAL_COL not in existing) else None
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
    if not hidden:  # a table created outside Sluice
        conn.execute(q.add_hidden_columns(tgt.schema, tgt.table))
        record("add_hidden_columns")
    if not run_default:
        conn.execute(q.set_run_default(tgt.schema, tgt.table))
    if q.INTERVAL_COL not in existing:  # also a table from before _sluice_interval existed: migrated in place
        conn.execute(q.add_interval_column(tgt.schema, tgt.table))
        conn.execute(q.set_interval_default(tgt.schema, tgt.table))
        if hidden:
            record("add_interval_column", q.INTERVAL_COL, "timestamp with time zone")
    return changes


def same_type(actual: str, declared: str) -> bool:
    try:
        return q.pg_type(actual) == q.pg_type(declared)
    except q.UnsafeIdentifier:
        return False
