"""Quarantined rows: their one shape (raw row and reasons as JSON), and the table `sluice.quarantine` they go to.

A chunk's quarantine rows are replaced in one transaction (delete the chunk's earlier rows, COPY the new ones), so a
retried validation never duplicates them. Raw values are kept as strings: a row is quarantined because its values
may not fit the declared types.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sluice.validate.cast import BAD_REASONS, BAD_ROW, raw_strings

if TYPE_CHECKING:
    import psycopg

    from sluice.interval import Interval

__all__ = [
    "QUARANTINE_COLUMNS",
    "QUARANTINE_DDL",
    "QUARANTINE_FILE_SCHEMA",
    "QUARANTINE_SCHEMA",
    "cast_reason_counts",
    "ensure_quarantine_table",
    "quarantine_copy_sql",
    "quarantine_ddl",
    "quarantine_delete_sql",
    "quarantine_table",
    "replace_quarantine_rows",
]

QUARANTINE_SCHEMA = "sluice"
QUARANTINE_COLUMNS = (
    "pipeline",
    "run_id",
    "generation",
    "interval_start",
    "interval_end",
    "chunk",
    "row_number",
    "row",
    "reasons",
)
QUARANTINE_FILE_SCHEMA = pa.schema(
    [
        ("chunk", pa.int32()),
        ("row_number", pa.int64()),
        ("kind", pa.string()),
        ("row", pa.string()),
        ("reasons", pa.string()),
    ]
)


# ---------------------------------------------------------------- SQL


def quarantine_ddl() -> list[str]:
    """Statements creating sluice.quarantine: one row per quarantined row, its reasons, and where it came from."""
    return [
        f"CREATE SCHEMA IF NOT EXISTS {QUARANTINE_SCHEMA}",
        f"""CREATE TABLE IF NOT EXISTS {QUARANTINE_SCHEMA}.quarantine (
    id bigserial PRIMARY KEY, pipeline text NOT NULL, run_id text NOT NULL,
    interval_start timestamptz NOT NULL, interval_end timestamptz NOT NULL, chunk integer NOT NULL,
    row_number bigint, row jsonb NOT NULL, reasons jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())""",
        f"CREATE INDEX IF NOT EXISTS quarantine_run_chunk ON {QUARANTINE_SCHEMA}.quarantine (pipeline, run_id, chunk)",
        # load generations: a later extraction of the interval adds its own rows; earlier ones are kept
        f"ALTER TABLE {QUARANTINE_SCHEMA}.quarantine ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 0",
        f"CREATE INDEX IF NOT EXISTS quarantine_generation ON {QUARANTINE_SCHEMA}.quarantine "
        "(pipeline, run_id, generation, chunk)",
    ]


QUARANTINE_DDL = ";\n".join(quarantine_ddl()) + ";"


def quarantine_delete_sql() -> str:
    return (
        f"DELETE FROM {QUARANTINE_SCHEMA}.quarantine WHERE pipeline = %s AND run_id = %s AND generation = %s "  # noqa: S608 - identifiers validated and quoted; values are bind parameters
        "AND chunk = %s"
    )


def quarantine_count_sql() -> str:
    """The rows a generation left in quarantine: finalize reconciles them with the ledger."""
    return (
        f"SELECT count(*) FROM {QUARANTINE_SCHEMA}.quarantine WHERE pipeline = %s AND run_id = %s AND generation = %s"  # noqa: S608 - identifiers validated and quoted; values are bind parameters
    )


def quarantine_copy_sql() -> str:
    return f"COPY {QUARANTINE_SCHEMA}.quarantine ({', '.join(QUARANTINE_COLUMNS)}) FROM STDIN"


def ensure_quarantine_table(conn: psycopg.Connection) -> None:
    """Create sluice.quarantine if missing, under the same DDL advisory lock the loader takes, so parallel chunks
    (and the loader creating sluice.load_ledger) never race on CREATE ... IF NOT EXISTS."""
    import psycopg

    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'generation')",
        (f"{QUARANTINE_SCHEMA}.quarantine",),
    ).fetchone()
    exists = bool(row and row[0])
    for attempt in range(3):
        if exists:
            return
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("sluice.ddl",))
                for stmt in quarantine_ddl():
                    conn.execute(stmt)
            return
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
            if attempt == 2:
                raise


def replace_quarantine_rows(
    dsn: str, pipeline: str, run_id: str, interval: Interval, index: int, quarantine: pa.Table, generation: int = 0
) -> None:
    """Replace this generation's quarantine rows of the chunk, in one transaction (a retry of the task is idempotent;
    rows of earlier generations of the run stay)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True, application_name=f"sluice validate {pipeline}#{index}"[:63]) as conn:
        ensure_quarantine_table(conn)
        with conn.transaction():
            conn.execute(quarantine_delete_sql(), (pipeline, run_id, generation, index))
            with conn.cursor().copy(quarantine_copy_sql()) as copy:
                cols = [quarantine[c].to_pylist() for c in ("row_number", "row", "reasons")]
                for row_number, row, reasons in zip(*cols, strict=True):
                    copy.write_row(
                        (pipeline, run_id, generation, interval.start, interval.end, index, row_number, row, reasons)
                    )


# ---------------------------------------------------------------- rows


def _nul_safe(text: str) -> str:
    """PostgreSQL's jsonb rejects \\u0000: NUL characters in JSON text become U+FFFD."""
    return re.sub(r"(?<!\\)((?:\\\\)*)\\u0000", r"\1\\ufffd", text) if "\\u0000" in text else text


def _dumps(obj: Any) -> str:
    return _nul_safe(json.dumps(obj, ensure_ascii=False, default=str))


def _raw_rows(table: pa.Table, rows: list[int]) -> list[str]:
    """Raw source values of the given rows as JSON objects of strings."""
    take = pa.array(rows, pa.int64())
    names = table.column_names
    values = [raw_strings(table[n], take).to_pylist() for n in names]
    return [_dumps(dict(zip(names, row, strict=True))) for row in zip(*values, strict=True)]


def quarantine_table(
    index: int,
    table: pa.Table,
    bad: pa.Table,
    expectation_rows: list[int],
    reasons: list[list[dict]],
    rejects: pa.Table | None,
) -> pa.Table:
    """All of a chunk's quarantined rows in one shape: raw row as JSON, reasons as JSON, row number in the chunk.
    `bad` is CastResult.bad_rows; `expectation_rows` are rows of the raw `table` failed by expectations."""
    raw_cols = [c for c in bad.column_names if c not in (BAD_ROW, BAD_REASONS)]
    numbers = bad[BAD_ROW].to_pylist() + expectation_rows
    rows = _raw_rows(bad.select(raw_cols), list(range(bad.num_rows))) + _raw_rows(table, expectation_rows)
    why = [_nul_safe(r) for r in bad[BAD_REASONS].to_pylist()] + [_dumps(r) for r in reasons]
    kinds = ["cast"] * bad.num_rows + ["expectation"] * len(expectation_rows)
    if rejects is not None and rejects.num_rows:
        rj = rejects.to_pylist()
        numbers += [None] * len(rj)
        rows += [_dumps({"file": r["file"], "line": r["line"], "raw": r["raw"]}) for r in rj]
        why += [_dumps([{"reason": r["reason"], "stage": "source"}]) for r in rj]
        kinds += ["reject"] * len(rj)
    out = pa.table(
        {
            "chunk": pa.array([index] * len(rows), pa.int32()),
            "row_number": pa.array(numbers, pa.int64()),
            "kind": kinds,
            "row": rows,
            "reasons": why,
        },
        schema=QUARANTINE_FILE_SCHEMA,
    )
    return out.sort_by([("row_number", "ascending", "at_end")])  # source order, rejects last


def cast_reason_counts(bad: pa.Table) -> dict[str, int]:
    """Rows per (column, cast failure), for the report's quarantine_reasons."""
    counts: dict[str, int] = {}
    for text in bad[BAD_REASONS].to_pylist():
        for r in {(x["column"], x["reason"]) for x in json.loads(text)}:
            key = f"cast {r[0]}: {r[1]}"
            counts[key] = counts.get(key, 0) + 1
    return counts
