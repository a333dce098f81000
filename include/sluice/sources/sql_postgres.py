"""PostgreSQL read path of the SQL source: `COPY (query) TO STDOUT (FORMAT csv)` parsed by pyarrow's CSV reader.

Arrow is built in C++ with the column types the server describes, never as Python row objects: about 2-3x the
rows/s of the best cursor (see bench/bench_sources.py). COPY takes no parameters, so the interval bounds are bound
to `set_config('sluice.interval_start', %s, true)` first and the query reads them back with
`current_setting('sluice.interval_start')::timestamptz`: the values still never enter the SQL text. The query text
is parsed by SQLAlchemy exactly as on the cursor path, so `::casts`, `%` and quoted colons behave the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from sluice.sources.sql import (
    PG_NUMERIC_OID,
    SqlSourceError,
    bind_values,
    failed,
    pg_type,
    session_statements,
    unique_names,
)

if TYPE_CHECKING:
    from sluice.config import SqlSourceConfig
    from sluice.interval import Interval

BIND_NAMES = ("interval_start", "interval_end")


def pg_server_binds(compiled_sql: str) -> str:
    """psycopg placeholders -> the session settings that `pg_bind_statement` fills (COPY takes no parameters)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        if match.group(1) not in BIND_NAMES:
            raise SqlSourceError(
                f"unknown bind parameter :{match.group(1)}; only :interval_start and :interval_end "
                "are bound (write \\: for a literal colon)"
            )
        return f"current_setting('sluice.{match.group(1)}')::timestamptz"

    return re.sub(r"%%|%\((\w+)\)s", replace, compiled_sql)


def pg_select(sql: str) -> str:
    """The query as PostgreSQL text, its :binds read from session settings; parsed by SQLAlchemy like the cursor
    path, so `::casts` and quoted colons behave the same in both."""
    from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

    return pg_server_binds(sa.text(sql.strip().rstrip(";")).compile(dialect=pg_dialect.dialect()).string)


def pg_bind_statement() -> str:
    return (
        "SELECT set_config('sluice.interval_start', %(interval_start)s, true), "
        "set_config('sluice.interval_end', %(interval_end)s, true)"
    )


def pg_copy_statement(select: str) -> str:
    return f"COPY (\n{select}\n) TO STDOUT (FORMAT csv)"


def _copy_blocks(copy: Any, size: int = 4 << 20) -> Iterator[bytes]:
    """COPY rows (psycopg returns one whole row per read, embedded newlines included) joined into ~4 MB blocks
    that end on a row boundary, so each block parses on its own, synchronously, in the calling thread."""
    parts, total = [], 0
    while data := copy.read():
        parts.append(bytes(data))  # a held memoryview pins its libpq buffer: 3x slower than copying the row
        total += len(data)
        if total >= size:
            yield b"".join(parts)
            parts, total = [], 0
    if parts:
        yield b"".join(parts)


def _unhex_bytea(batch: pa.RecordBatch, types: list[pa.DataType]) -> pa.RecordBatch:
    """bytea arrives as '\\x0a0b' text in CSV; the cursor path yields bytes, so this one does too."""
    arrays = [
        pa.array([None if v is None else bytes.fromhex(v[2:]) for v in col.to_pylist()], pa.binary())
        if pa.types.is_binary(t)
        else col
        for col, t in zip(batch.columns, types, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


@dataclass
class _PgColumn:
    name: str
    type_code: int
    precision: int | None
    scale: int | None


def _pg_describe(conn: Any, select: str) -> list[_PgColumn]:
    """Column names and types of the query, from the server parsing it without running it (an unnamed prepared
    statement). A syntax error then points into the query as written, not into the COPY wrapped around it."""
    from psycopg import pq

    result = conn.pgconn.prepare(b"", select.encode())
    if result.status != pq.ExecStatus.COMMAND_OK:
        state = result.error_field(pq.DiagnosticField.SQLSTATE) or b"?"
        message = result.error_message.decode(errors="replace").removeprefix("ERROR:").strip()
        raise _PgQueryError(f"{message}\n  (SQLSTATE {state.decode()})")
    desc = conn.pgconn.describe_prepared(b"")
    columns = []
    for i in range(desc.nfields):
        oid, mod = desc.ftype(i), desc.fmod(i)
        numeric = oid == PG_NUMERIC_OID and mod >= 4
        columns.append(
            _PgColumn(
                (desc.fname(i) or b"").decode(),
                oid,
                ((mod - 4) >> 16) & 0xFFFF if numeric else None,
                (mod - 4) & 0xFFFF if numeric else None,
            )
        )
    return columns


class _PgQueryError(Exception):
    """The server refused to parse or plan the query."""


def iter_copy(src: SqlSourceConfig, sql: str, interval: Interval, dialect: Dialect) -> Iterator[pa.RecordBatch]:
    import psycopg
    import pyarrow.csv as pacsv

    from sluice.connections import pg_dsn

    select = pg_select(sql)
    with psycopg.connect(pg_dsn(src.conn_id)) as conn, conn.cursor() as cur:
        try:
            for statement, params in session_statements(dialect, src.statement_timeout_seconds):
                cur.execute(sa.text(statement).compile(dialect=dialect).string, params)
            cur.execute(pg_bind_statement(), {k: v.isoformat() for k, v in bind_values(interval, dialect).items()})
            columns = _pg_describe(conn, select)
            names = unique_names([c.name for c in columns], f"{src.conn_id}:{src.table or 'query'}")
            types = [pg_type(c) or pa.string() for c in columns]
            csv_types = {n: pa.string() if pa.types.is_binary(t) else t for n, t in zip(names, types, strict=True)}
            with cur.copy(pg_copy_statement(select)) as copy:
                parse = pacsv.ParseOptions(newlines_in_values=True)
                convert = pacsv.ConvertOptions(
                    column_types=csv_types,
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    true_values=["t"],
                    false_values=["f"],
                )
                has_bytea = any(pa.types.is_binary(t) for t in types)
                for block in _copy_blocks(copy):
                    read = pacsv.ReadOptions(column_names=names, use_threads=False, block_size=len(block) + 1)
                    table = pacsv.read_csv(
                        pa.BufferReader(block), read_options=read, parse_options=parse, convert_options=convert
                    )
                    for batch in table.to_batches():
                        yield _unhex_bytea(batch, types) if has_bytea else batch
        except (psycopg.Error, _PgQueryError) as exc:
            raise failed(src.conn_id, sql, exc, str(exc)) from None
        except pa.ArrowInvalid as exc:
            raise failed(
                src.conn_id,
                sql,
                exc,
                f"a value does not read as its column's type ({exc}); select that column cast to text in a query",
            ) from None
