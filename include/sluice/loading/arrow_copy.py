"""Arrow good rows -> COPY data. pyarrow's CSV writer is 9-13x faster than pandas (DESIGN.md) and needs no
row-by-row Python: NULL is written as an unquoted empty field and every string is quoted, which is exactly how
PostgreSQL's COPY CSV tells NULL from the empty string."""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from sluice.loading import sql as q

if TYPE_CHECKING:
    import pyarrow as pa

COPY_BATCH_ROWS = 50_000


class PrepareError(ValueError):
    """The good rows cannot be loaded as they are (missing declared columns, too many rows for _sluice_seq)."""


class Prepared(NamedTuple):
    table: pa.Table  # declared (+ evolved) columns, CSV-writable, then _sluice_seq
    extra: list[q.Col]  # evolved columns, in table order
    duplicates: int  # rows dropped because a later row of the chunk has the same key
    bounds: tuple[tuple, tuple] | None  # first and last key, when Arrow orders them as PostgreSQL does


def prepare(
    table: pa.Table | None,
    columns: Sequence[q.Col],
    primary_key: Sequence[str],
    *,
    keyed: bool,
    evolve: bool,
    index: int,
) -> Prepared:
    """Declared (+ evolved) columns in CSV-writable types, plus `_sluice_seq` = index << 32 | row number; for
    keyed modes, duplicate keys resolved (the last row wins) and the key bounds, from one sort of the keys."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    declared = [c.name for c in columns]
    if table is None:
        empty = {**{c.name: pa.array([], pa.string()) for c in columns}, q.SEQ_COL: pa.array([], pa.int64())}
        return Prepared(pa.table(empty), [], 0, None)
    missing = [n for n in declared if n not in table.column_names]
    if missing:
        raise PrepareError(f"good rows lack declared columns {missing}; the cast must produce every declared column")
    extra = [n for n in table.column_names if n not in declared and not n.startswith("_sluice_")] if evolve else []
    table = table.select(declared + extra)
    table = pa.table([csv_safe(col) for col in table.columns], names=table.column_names)
    extra_cols = [q.Col(n, pg_type_of(table.schema.field(n).type)) for n in extra]
    for c in extra_cols:  # anything without a natural PostgreSQL type is loaded as text
        if c.pg_type == "text" and not pa.types.is_string(table.schema.field(c.name).type):
            table = table.set_column(table.column_names.index(c.name), c.name, _as_text(table[c.name]))
    n = table.num_rows
    if n >= 1 << 32 or not 0 <= index < 1 << 31:
        raise PrepareError(f"chunk {index} with {n} rows does not fit the _sluice_seq encoding (chunk << 32 | row)")
    table = table.append_column(q.SEQ_COL, pa.array(np.arange(n, dtype=np.int64) + (index << 32)))
    if not keyed or not n:
        return Prepared(table, extra_cols, 0, None)
    keys = table.select(list(primary_key))
    ordered = keys.take(pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in primary_key]))
    duplicates = 0
    if n > 1:
        same = [pc.equal(ordered[k].slice(1), ordered[k].slice(0, n - 1)) for k in primary_key]
        if pc.any(functools.reduce(pc.and_, same)).as_py():
            last = table.select([*primary_key, q.SEQ_COL]).group_by(list(primary_key)).aggregate([(q.SEQ_COL, "max")])
            table = table.filter(pc.is_in(table[q.SEQ_COL], value_set=last[f"{q.SEQ_COL}_max"]))
            duplicates = n - table.num_rows
    return Prepared(table, extra_cols, duplicates, _bounds(ordered))


def _bounds(ordered: pa.Table) -> tuple[tuple, tuple] | None:
    """First and last row of the sorted keys, when Arrow orders the key types exactly as PostgreSQL does
    (integers, decimals, dates, timestamps, booleans; not text, whose order depends on the collation, nor floats)."""
    import pyarrow as pa

    ok = (pa.types.is_integer, pa.types.is_decimal, pa.types.is_date, pa.types.is_timestamp, pa.types.is_boolean)
    if any(col.null_count or not any(f(col.type) for f in ok) for col in ordered.columns):
        return None
    first, last = ordered.slice(0, 1).to_pylist()[0], ordered.slice(ordered.num_rows - 1).to_pylist()[0]
    return tuple(first.values()), tuple(last.values())


def _as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Scalars cast to their text form; nested values (lists, structs) become JSON."""
    import pyarrow as pa

    try:
        return col.cast(pa.string())
    except pa.ArrowNotImplementedError:
        return pa.chunked_array(
            [pa.array([None if v is None else json.dumps(v, default=str) for v in col.to_pylist()], pa.string())]
        )


def csv_safe(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """write_csv rejects string_view and extension types; dictionaries are decoded."""
    import pyarrow as pa

    t = col.type
    if isinstance(t, pa.ExtensionType):
        return csv_safe(pa.chunked_array([c.storage for c in col.chunks], t.storage_type))
    if pa.types.is_dictionary(t):
        return csv_safe(col.cast(t.value_type))
    if pa.types.is_string_view(t):
        return col.cast(pa.string())
    if pa.types.is_binary_view(t):
        return col.cast(pa.binary())
    return col


def pg_type_of(t: pa.DataType) -> str:
    """PostgreSQL type for an evolved (undeclared) column."""
    import pyarrow as pa

    if pa.types.is_decimal(t) and t.precision <= 99:
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    for check, name in (
        (pa.types.is_int8, "smallint"),
        (pa.types.is_int16, "smallint"),
        (pa.types.is_int32, "integer"),
        (pa.types.is_integer, "bigint"),
        (pa.types.is_floating, "double precision"),
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_date32, "date"),
    ):
        if check(t):
            return name
    return "text"


def csv_blocks(table: pa.Table) -> Iterator[memoryview]:
    """The COPY data in blocks of COPY_BATCH_ROWS rows (bounded memory): CSV without header."""
    import pyarrow.csv as pacsv

    opts = pacsv.WriteOptions(include_header=False)
    for batch in table.to_batches(max_chunksize=COPY_BATCH_ROWS):
        buf = io.BytesIO()
        pacsv.write_csv(batch, buf, opts)
        yield buf.getbuffer()


def checksum(table: pa.Table) -> str:
    """sha256 of the COPY data: the same good rows (in the same order) always give the same checksum."""
    h = hashlib.sha256()
    for block in csv_blocks(table):
        h.update(block)
    return "sha256:" + h.hexdigest()
