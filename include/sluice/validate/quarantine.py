"""Quarantined rows: their one shape (provenance, raw row and reasons as JSON), and the table `sluice.quarantine`.

Every quarantined row says where it came from (the source object and the record number in it, from the chunk's
hidden provenance columns; for a source reject, its file and line), which chunk, generation and run, its raw values
(as strings: a row is quarantined because its values may not fit the declared types) and every reason, each
`{"kind": parse|cast|expectation, "column", "expectation", "value", "reason"}`. The Parquet copy beside the chunk
has exactly the columns the table gets (`COPY_COLUMNS`).

A chunk's quarantine rows are replaced in one transaction (delete the chunk's earlier rows, COPY the new ones, mark
the pending rows of earlier generations of the interval superseded), so a retried validation never duplicates them.
The SQL is in `sluice.loading.sql.quarantine`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sluice.loading.sql import quarantine as qs
from sluice.loading.sql.results import scalar
from sluice.sources.base import LINE_COL, ORIGIN_COLS, SOURCE_COL
from sluice.validate.cast import BAD_REASONS, BAD_ROW, raw_strings

if TYPE_CHECKING:
    import psycopg

    from sluice.interval import Interval

__all__ = [
    "QUARANTINE_FILE_SCHEMA",
    "cast_reason_counts",
    "compact_counts",
    "ensure_quarantine_table",
    "quarantine_table",
    "reason_key",
    "replace_quarantine_rows",
    "split_origin",
]

QUARANTINE_FILE_SCHEMA = pa.schema(
    [
        ("pipeline", pa.string()),
        ("run_id", pa.string()),
        ("generation", pa.int64()),
        ("interval_start", pa.timestamp("us", tz="UTC")),
        ("interval_end", pa.timestamp("us", tz="UTC")),
        ("chunk", pa.int32()),
        ("row_number", pa.int64()),
        ("source", pa.string()),
        ("source_line", pa.int64()),
        ("kind", pa.string()),
        ("reason", pa.string()),
        ("row", pa.string()),
        ("reasons", pa.string()),
    ]
)
assert tuple(QUARANTINE_FILE_SCHEMA.names) == qs.COPY_COLUMNS


def ensure_quarantine_table(conn: psycopg.Connection) -> None:
    """Create or migrate sluice.quarantine if it is not in its current shape, under the same DDL advisory lock the
    loader takes, so parallel chunks (and the loader creating sluice.load_ledger) never race on DDL."""
    import psycopg

    for attempt in range(3):
        if scalar(conn.execute(qs.quarantine_ready())):
            return
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("sluice.ddl",))
                for stmt in qs.quarantine_ddl():
                    conn.execute(stmt)
            return
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
            if attempt == 2:
                raise


def compact_counts(conn: psycopg.Connection) -> None:
    """Fold the kept counts' new deltas (`loading/sql/quarantine_counts.py`): one compaction at a time, exact
    whatever runs beside it. Cheap when nothing changed (a partial index finds no unfolded delta)."""
    from sluice.loading.sql import quarantine_counts as qc

    with conn.transaction():
        conn.execute(qc.counts_lock())
        conn.execute(qc.counts_compact())


def replace_quarantine_rows(
    dsn: str, pipeline: str, run_id: str, interval: Interval, index: int, quarantine: pa.Table, generation: int = 0
) -> None:
    """Replace this generation's quarantine rows of the chunk and supersede the pending rows of earlier generations
    of the interval, in one transaction (a retry of the task is idempotent). `quarantine` is quarantine_table()'s."""
    import psycopg

    key = {"pipeline": pipeline, "run_id": run_id, "generation": generation, "chunk": index}
    app = f"sluice validate {pipeline}#{index}"[:63]
    with psycopg.connect(dsn, autocommit=True, application_name=app) as conn:
        ensure_quarantine_table(conn)
        with conn.transaction():
            conn.execute(qs.quarantine_delete_chunk(), key)
            if quarantine.num_rows:
                with conn.cursor().copy(qs.quarantine_copy()) as copy:
                    for row in zip(*(quarantine[c].to_pylist() for c in qs.COPY_COLUMNS), strict=True):
                        copy.write_row(row)
            conn.execute(qs.quarantine_supersede(), {**key, "start": interval.start, "end": interval.end})


# ---------------------------------------------------------------- rows


def _nul_safe(text: str) -> str:
    """PostgreSQL's jsonb rejects \\u0000: NUL characters in JSON text become U+FFFD."""
    return re.sub(r"(?<!\\)((?:\\\\)*)\\u0000", r"\1\\ufffd", text) if "\\u0000" in text else text


def _dumps(obj: Any) -> str:
    return _nul_safe(json.dumps(obj, ensure_ascii=False, default=str))


def _raw_dicts(table: pa.Table, rows: list[int]) -> list[dict[str, str | None]]:
    """Raw source values of the given rows as dicts of strings."""
    take = pa.array(rows, pa.int64())
    names = table.column_names
    values = [raw_strings(table[n], take).to_pylist() for n in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def split_origin(table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
    """A staged chunk -> (its source columns, its provenance columns or None for a chunk staged without them)."""
    if SOURCE_COL not in table.column_names:
        return table, None
    origin = pa.table({SOURCE_COL: table[SOURCE_COL].cast(pa.string()), LINE_COL: table[LINE_COL].cast(pa.int64())})
    return table.drop_columns(list(ORIGIN_COLS)), origin


def reason_key(reason: dict) -> str:
    """The short name of one reason, what `quarantine list` groups by and `--reason` matches."""
    kind = reason.get("kind")
    if kind == qs.ReasonKind.expectation:
        cols = reason.get("columns") or ([reason["column"]] if reason.get("column") else [])
        return f"{reason['expectation']}({', '.join(cols)})"
    if kind == qs.ReasonKind.parse:
        return f"parse: {str(reason.get('reason', '')).split(': line')[0]}"[:120]
    return f"cast {reason.get('column')}: {reason.get('reason')}"


def _row_reason(reasons: list[dict]) -> str:
    return "; ".join(sorted({reason_key(r) for r in reasons}))


def _short(value: Any) -> Any:
    return value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "…"


def quarantine_table(
    owner: dict[str, Any],
    index: int,
    table: pa.Table,
    bad: pa.Table,
    expectation_rows: list[int],
    reasons: list[list[dict]],
    rejects: pa.Table | None,
    origin: pa.Table | None = None,
) -> pa.Table:
    """All of a chunk's quarantined rows in one shape (QUARANTINE_FILE_SCHEMA). `owner` holds pipeline, run_id,
    generation and interval; `bad` is CastResult.bad_rows; `expectation_rows` are rows of the raw `table` failed by
    expectations; `origin` the chunk's provenance columns (split_origin)."""
    raw_cols = [c for c in bad.column_names if c not in (BAD_ROW, BAD_REASONS)]
    numbers = bad[BAD_ROW].to_pylist() + expectation_rows
    rows = _raw_dicts(bad.select(raw_cols), list(range(bad.num_rows))) + _raw_dicts(table, expectation_rows)
    why = [[{"kind": "cast", **r} for r in json.loads(text)] for text in bad[BAD_REASONS].to_pylist()]
    for raw, listed in zip(rows[bad.num_rows :], reasons, strict=True):
        why.append(
            [
                {"kind": "expectation", **r, "value": _short(raw.get(r["column"])) if "column" in r else None}
                for r in listed
            ]
        )
    if origin is not None and numbers:
        take = pa.array(numbers, pa.int64())
        sources, lines = origin[SOURCE_COL].take(take).to_pylist(), origin[LINE_COL].take(take).to_pylist()
    else:
        sources, lines = [None] * len(numbers), [None] * len(numbers)
    texts = [_dumps(r) for r in rows]
    if rejects is not None and rejects.num_rows:
        rj = rejects.to_pylist()
        numbers += [None] * len(rj)
        sources += [r["file"] for r in rj]
        lines += [r["line"] for r in rj]
        texts += [_dumps({"file": r["file"], "line": r["line"], "raw": r["raw"]}) for r in rj]
        why += [[{"kind": "parse", "reason": r["reason"], "value": _short(r["raw"])}] for r in rj]
    n = len(texts)
    out = pa.table(
        {
            "pipeline": [owner["pipeline"]] * n,
            "run_id": [owner["run_id"]] * n,
            "generation": pa.array([owner["generation"]] * n, pa.int64()),
            "interval_start": pa.array([owner["interval"].start] * n, pa.timestamp("us", tz="UTC")),
            "interval_end": pa.array([owner["interval"].end] * n, pa.timestamp("us", tz="UTC")),
            "chunk": pa.array([index] * n, pa.int32()),
            "row_number": pa.array(numbers, pa.int64()),
            "source": pa.array(sources, pa.string()),
            "source_line": pa.array(lines, pa.int64()),
            "kind": [w[0]["kind"] if w else None for w in why],
            "reason": [_row_reason(w) for w in why],
            "row": texts,
            "reasons": [_dumps(w) for w in why],
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
