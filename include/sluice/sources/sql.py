"""SQL source: a table (with an incremental column) or a query over one data interval -> Arrow record batches.

- Any Airflow connection SQLAlchemy can open: the connection's own hook engine (`get_sqlalchemy_engine`) when its
  provider is installed, else a SQLAlchemy URL built from the connection (e.g. `sqlite:////abs/path.db`).
- Values travel only as bind parameters (`:interval_start`, `:interval_end`); identifiers from config are checked
  against a strict pattern and always quoted by the dialect's own preparer.
- PostgreSQL: `COPY (query) TO STDOUT (FORMAT csv)` into pyarrow's CSV reader with the server's column types,
  never Python row objects (sql_postgres.py; PG_COPY switches it off).
- Other databases: a server-side cursor (`stream_results`) fetching `min(chunk_rows, FETCH_ROWS_MAX)` rows at a
  time (Python rows take ~10x the memory of Arrow data, so staging assembles the chunk in Arrow, not us).
- Both read in a read-only transaction with a statement timeout (on PostgreSQL it bounds the whole COPY) and a UTC
  session, so a `date`/`timestamp` column compares to the UTC bounds without shifting. Intervals are half-open:
  `col >= start AND col < end`, so a boundary row belongs to exactly one interval.
- Arrow types come from the driver's column description (PostgreSQL type OIDs, numeric precision/scale), else
  from the first non-null value; the schema is fixed after the first batch, so every batch of a run agrees.
  A later value that does not fit its column's type (SQLite's dynamic typing) sends its row to on_reject.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine

from sluice.sources.base import OnReject, Reject, with_origin

if TYPE_CHECKING:
    from sluice.config import PipelineConfig, SqlSourceConfig
    from sluice.interval import Interval

log = logging.getLogger(__name__)

FETCH_ROWS_MAX = 50_000
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# PostgreSQL built-in type OIDs (stable across versions) -> Arrow. numeric is resolved with its precision/scale.
PG_OID_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),
    700: pa.float32(),
    701: pa.float64(),
    25: pa.string(),
    1043: pa.string(),
    1042: pa.string(),
    19: pa.string(),
    18: pa.string(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    1083: pa.time64("us"),
    114: pa.string(),
    3802: pa.string(),
    2950: pa.string(),
    17: pa.binary(),
}
PG_NUMERIC_OID = 1700
PG_COPY = True  # PostgreSQL reads through COPY; tests switch it off to run the cursor path on PostgreSQL too


class SqlSourceError(RuntimeError):
    """The source query cannot run or its rows cannot be read; the message names the connection and query."""


# ---------------------------------------------------------------- SQL text, one small function per statement


def quote_table(table: str, dialect: Dialect) -> str:
    """`schema.table` with each part validated and quoted by the dialect (never trusted from config)."""
    parts = table.split(".")
    if not 1 <= len(parts) <= 2 or not all(IDENTIFIER.match(p) for p in parts):
        raise SqlSourceError(f"table {table!r} is not a valid [schema.]table name")
    return ".".join(dialect.identifier_preparer.quote_identifier(p) for p in parts)


def quote_column(column: str, dialect: Dialect) -> str:
    if not IDENTIFIER.match(column):
        raise SqlSourceError(f"column {column!r} is not a valid identifier")
    return dialect.identifier_preparer.quote_identifier(column)


def incremental_predicate(column_sql: str, dialect: Dialect) -> str:
    """Half-open interval test. SQLite keeps timestamps as text, so both sides are normalized with datetime()."""
    if dialect.name == "sqlite":
        return (
            f"datetime({column_sql}) >= datetime(:interval_start) AND datetime({column_sql}) < datetime(:interval_end)"
        )
    return f"{column_sql} >= :interval_start AND {column_sql} < :interval_end"


def table_query(table: str, incremental_column: str | None, dialect: Dialect) -> str:
    """SELECT of the interval's rows of a table (the whole table when it has no incremental column)."""
    sql = f"SELECT * FROM {quote_table(table, dialect)}"  # noqa: S608 - identifiers validated and quoted; values are bind parameters
    if incremental_column:
        column = quote_column(incremental_column, dialect)
        sql += f" WHERE {incremental_predicate(column, dialect)} ORDER BY {column}"
    return sql


def session_statements(dialect: Dialect, statement_timeout_seconds: int) -> list[tuple[str, dict[str, Any]]]:
    """What makes the read safe, per dialect: read-only, bounded in time, UTC session."""
    if dialect.name == "postgresql":
        return [
            ("SET TRANSACTION READ ONLY", {}),
            ("SELECT set_config('statement_timeout', :timeout, true)", {"timeout": f"{statement_timeout_seconds}s"}),
            ("SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO', true)", {}),
        ]
    if dialect.name == "sqlite":
        return [("PRAGMA query_only = ON", {})]
    if dialect.name in ("mysql", "mariadb"):
        return [("SET SESSION TRANSACTION READ ONLY", {}), ("SET time_zone = '+00:00'", {})]
    return []


def bind_values(interval: Interval, dialect: Dialect) -> dict[str, Any]:
    """The interval bounds as bind values: aware UTC datetimes, or SQLite's canonical text form."""
    if dialect.name == "sqlite":
        fmt = "%Y-%m-%d %H:%M:%S"
        return {"interval_start": interval.start.strftime(fmt), "interval_end": interval.end.strftime(fmt)}
    return {"interval_start": interval.start, "interval_end": interval.end}


# ---------------------------------------------------------------- engine


def sqlalchemy_url(conn: Any) -> sa.engine.URL:
    """A SQLAlchemy URL from an Airflow connection whose provider (hook) is not installed."""
    kind = {"postgres": "postgresql", "postgresql": "postgresql", "sqlite": "sqlite"}.get(
        conn.conn_type, conn.conn_type
    )
    if kind == "sqlite":
        return sa.engine.URL.create("sqlite", database=conn.schema or conn.host or None)
    return sa.engine.URL.create(
        kind,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )


def make_engine(conn_id: str) -> Engine:
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    try:
        hook = conn.get_hook()
    except Exception:  # noqa: BLE001 - no provider for this conn type: fall back to a plain SQLAlchemy URL
        hook = None
    if hook is not None and hasattr(hook, "get_sqlalchemy_engine"):
        return hook.get_sqlalchemy_engine()
    return sa.create_engine(sqlalchemy_url(conn))


# ---------------------------------------------------------------- rows -> Arrow


def pg_type(column: Any) -> pa.DataType | None:
    code = getattr(column, "type_code", None)
    if code == PG_NUMERIC_OID:
        precision, scale = getattr(column, "precision", None), getattr(column, "scale", None)
        if precision and scale is not None and 0 < precision <= 38 and 0 <= scale <= precision:
            return pa.decimal128(precision, scale)
        return pa.string()  # unconstrained numeric: exact decimal text, cast by the casting stage
    return PG_OID_TYPES.get(code) if isinstance(code, int) else None


def _value_type(values: tuple[Any, ...]) -> pa.DataType:
    """Type of a column the driver does not describe, from its first non-null value (string when all null)."""
    value = next((v for v in values if v is not None), None)
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, bytes | memoryview):
        return pa.binary()
    if isinstance(value, dt.datetime):
        return pa.timestamp("us", tz="UTC") if value.tzinfo else pa.timestamp("us")
    if isinstance(value, dt.date):
        return pa.date32()
    if isinstance(value, dt.time):
        return pa.time64("us")
    return pa.string()  # str, Decimal (exact text), uuid, json, anything else


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def converter(arrow_type: pa.DataType) -> Callable[[tuple[Any, ...]], pa.Array]:
    """values -> Arrow array of `arrow_type`; string columns accept anything (rendered as text), others are strict."""
    if pa.types.is_string(arrow_type):

        def to_text(values: tuple[Any, ...]) -> pa.Array:
            try:
                return pa.array(values, pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                return pa.array([None if v is None or type(v) is str else _text(v) for v in values], pa.string())

        return to_text
    if pa.types.is_binary(arrow_type):
        return lambda values: pa.array([None if v is None else bytes(v) for v in values], pa.binary())
    return lambda values: pa.array(values, arrow_type)


def unique_names(names: list[str], where: str) -> list[str]:
    """Chunks are addressed by column name downstream: two output columns with one name would shadow each other."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SqlSourceError(f"{where} returns column(s) {dupes} more than once; alias them apart")
    return names


class RowBatcher:
    """Fixes one Arrow schema for the whole result and turns fetched rows into batches of it."""

    def __init__(self, names: list[str], description: Any, dialect: Dialect, where: str) -> None:
        self.names, self.where = unique_names(names, where), where
        described = [pg_type(c) for c in description] if dialect.name == "postgresql" else [None] * len(names)
        self.types: list[pa.DataType | None] = described
        self.converters: list[Callable[[tuple[Any, ...]], pa.Array]] = []
        self.position = 0  # rows fetched so far, rejected ones included (for Reject.line)

    def batch(self, rows: Sequence[Any], on_reject: OnReject) -> pa.RecordBatch:
        fetched = len(rows)
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.names]
        if not self.converters:
            self.types = [t or _value_type(col) for t, col in zip(self.types, columns, strict=True)]
            self.converters = [converter(t) for t in self.types]
        try:
            arrays = [conv(col) for conv, col in zip(self.converters, columns, strict=True)]
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            rows = self._reject_misfits(rows, on_reject)
            columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.names]
            arrays = [conv(col) for conv, col in zip(self.converters, columns, strict=True)]
        self.position += fetched
        schema = pa.schema([pa.field(n, t) for n, t in zip(self.names, self.types, strict=True)])
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _reject_misfits(self, rows: Sequence[Any], on_reject: OnReject) -> list[Any]:
        """Slow path, only for a batch that failed: keep the rows whose every value fits, reject the others."""
        kept = []
        for i, row in enumerate(rows):
            for name, arrow_type, conv, value in zip(self.names, self.types, self.converters, row, strict=True):
                try:
                    conv((value,))
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError) as exc:
                    raw = json.dumps(dict(zip(self.names, row, strict=True)), ensure_ascii=False, default=str)
                    on_reject(
                        Reject(
                            file=self.where,
                            line=self.position + i + 1,
                            raw=raw,
                            reason=f"column {name}: {value!r} does not fit {arrow_type} ({exc})",
                        )
                    )
                    break
            else:
                kept.append(row)
        return kept


# ---------------------------------------------------------------- the source


def _first_line(sql: str) -> str:
    return next((line.strip() for line in sql.strip().splitlines() if line.strip()), "")[:200]


def failed(conn_id: str, sql: str, exc: BaseException, message: str) -> SqlSourceError:
    return SqlSourceError(
        f"query on connection {conn_id!r} failed ({type(exc).__name__}): {message.strip()}\n"
        f"  query starts: {_first_line(sql)}"
    )


def _iter_cursor(
    src: SqlSourceConfig, sql: str, interval: Interval, engine: Engine, fetch_rows: int, on_reject: OnReject
) -> Iterator[pa.RecordBatch]:
    dialect = engine.dialect
    with engine.connect() as conn:
        try:
            for statement, params in session_statements(dialect, src.statement_timeout_seconds):
                conn.execute(sa.text(statement), params)
            query = sa.text(sql).execution_options(stream_results=True, yield_per=fetch_rows)
            result = conn.execute(query, bind_values(interval, dialect))
            batcher = RowBatcher(
                list(result.keys()), result.cursor.description or [], dialect, f"{src.conn_id}:{src.table or 'query'}"
            )
            for part in result.partitions(fetch_rows):
                yield batcher.batch(part, on_reject)
        except sa.exc.StatementError as exc:
            message = str(exc.orig) if exc.orig is not None else str(exc)
            if isinstance(exc.orig, sa.exc.InvalidRequestError):
                message += (
                    " (':name' in a query is a bind parameter; only :interval_start and :interval_end are "
                    "bound; write \\: for a literal colon)"
                )
            raise failed(src.conn_id, sql, exc.orig or exc, message) from None


def iter_batches(cfg: PipelineConfig, interval: Interval, on_reject: OnReject) -> Iterator[pa.RecordBatch]:
    """Stream the interval's rows as record batches of at most chunk_rows rows (one fixed schema per run)."""
    src: SqlSourceConfig = cfg.source  # type: ignore[assignment]
    chunk_rows = cfg.staging.chunk_rows
    engine = make_engine(src.conn_id)
    dialect = engine.dialect
    sql = src.query if src.query is not None else table_query(src.table or "", src.incremental_column, dialect)
    started, rows = time.monotonic(), 0
    try:
        if dialect.name == "postgresql" and PG_COPY:
            from sluice.sources.sql_postgres import iter_copy

            batches = iter_copy(src, sql, interval, dialect)
        else:
            batches = _iter_cursor(src, sql, interval, engine, min(chunk_rows, FETCH_ROWS_MAX), on_reject)
        where = f"sql:{src.conn_id}/{src.table or 'query'} {interval.key}"  # provenance: source and interval
        for batch in batches:
            for offset in range(0, batch.num_rows, chunk_rows):
                part = batch.slice(offset, chunk_rows)
                yield with_origin(part, where, rows + 1)  # record number in the interval's result
                rows += part.num_rows
    finally:
        engine.dispose()
    log.info(
        "sql source %s: %d rows from %s:%s in %.1fs",
        cfg.name,
        rows,
        src.conn_id,
        src.table or "query",
        time.monotonic() - started,
    )
