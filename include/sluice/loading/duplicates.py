"""One duplicate rule for the whole interval: of the rows of one generation that share a key, the last in source order
wins (files in key order, then rows in file order; a chunk holds consecutive rows, so chunk, then row). The losers are
"superseded": counted, never loaded.

Why run-wide and before loading: chunks load in parallel and in any order, and the loader's IS DISTINCT FROM guard
skips a row that equals the stored one. Resolving duplicates inside each chunk's transaction therefore cannot be
exact (an unchanged later row would be skipped while an earlier duplicate, loading after it, overwrote it). So after
the quality gate, `mark_superseded` finds the keys that occur in more than one chunk and writes, per chunk, the row
numbers that lose (`chunk-NNNNN.superseded.parquet`); `load_chunk` drops them. Within a chunk the loader keeps the last
row itself (arrow_copy.prepare).

Cost: every validated chunk reports the lexicographic first and last key of its good rows (`key_bounds`). Only chunks
whose key ranges overlap another chunk's are read back, and only their key columns. Sources in key order (most
files and tables) overlap nowhere, and the pass reads nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from sluice.staging import StagingStore
    from sluice.validate.chunk import ChunkReport

log = logging.getLogger(__name__)

ROW = "row"  # the one column of a superseded file: row numbers in the chunk's good rows

if TYPE_CHECKING:  # static only: ChunkReport's module imports this one (key_bounds); a TypedDict has no runtime use

    class GatedReport(ChunkReport):
        """A chunk report the quality gate let through, with the rows a later row of their key supersedes run-wide
        (the quality_gate task's XCom, one per chunk, and load_chunk's input)."""

        superseded: int
        superseded_key: str | None  # staged file of their row numbers in the chunk's good rows; None when none


def key_bounds(table: pa.Table, primary_key: Sequence[str]) -> list[list[Any]] | None:
    """[first key, last key] of the table in lexicographic order, as JSON-safe values (temporal types as integers);
    None when there is no row or a key type has no exact order here (decimal, float, nested) or holds NULLs, which
    makes the chunk overlap every other one (correct, only slower)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not table.num_rows or not primary_key:
        return None
    cols = []
    for k in primary_key:
        col = table[k]
        t = col.type
        if col.null_count:
            return None
        if pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t) or pa.types.is_boolean(t):
            col = col.cast(pa.int64())
        elif pa.types.is_string_view(t) or pa.types.is_large_string(t):
            col = col.cast(pa.string())
        elif not (pa.types.is_integer(col.type) or pa.types.is_string(col.type)):
            return None
        cols.append(col)
    keys = pa.table(cols, names=list(primary_key))

    def extreme(fn: Any) -> list[Any]:
        t, out = keys, []
        for k in primary_key:
            value = fn(t[k])
            out.append(value.as_py())
            t = t.filter(pc.equal(t[k], value))
        return out

    return [extreme(pc.min), extreme(pc.max)]


def overlapping(bounds: dict[int, list[list[Any]] | None]) -> set[int]:
    """The chunks whose key range overlaps another chunk's (None overlaps everything)."""
    items = list(bounds.items())
    out: set[int] = set()
    for i, (a, ba) in enumerate(items):
        for b, bb in items[i + 1 :]:
            if ba is None or bb is None or (ba[0] <= bb[1] and bb[0] <= ba[1]):
                out.update((a, b))
    return out


def losers(tables: dict[int, pa.Table], primary_key: Sequence[str]) -> dict[int, pa.Array]:
    """For chunks' key columns (good rows, in order), the row numbers that a later row of the same key supersedes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = []
    for index, t in sorted(tables.items()):
        pos = np.arange(t.num_rows, dtype=np.int64) + (index << 32)
        parts.append(t.select(list(primary_key)).append_column("_pos", pa.array(pos)))
    if not parts:
        return {}
    allkeys = pa.concat_tables(parts, promote_options="permissive")
    winners = allkeys.group_by(list(primary_key)).aggregate([("_pos", "max")])["_pos_max"]
    if len(winners) == allkeys.num_rows:
        return {}
    lost = allkeys["_pos"].filter(pc.invert(pc.is_in(allkeys["_pos"], value_set=winners)))
    lost = np.asarray(lost.to_numpy(), dtype=np.int64)
    out: dict[int, pa.Array] = {}
    for index in np.unique(lost >> 32).tolist():
        rows = lost[(lost >> 32) == index] & 0xFFFFFFFF
        out[int(index)] = pa.array(np.sort(rows), pa.int64())
    return out


def mark_superseded(
    store_for: Callable[[ChunkReport], StagingStore], reports: list[ChunkReport], primary_key: Sequence[str]
) -> list[GatedReport]:
    """Write each chunk's superseded rows next to its good rows and return the reports with `superseded_key` and
    `superseded` set. `store_for(report)` gives the chunk's StagingStore."""
    import time

    import pyarrow as pa

    t0 = time.perf_counter()
    bounds = {int(r["index"]): r.get("key_bounds") for r in reports if r.get("rows_good")}
    suspects = overlapping(bounds) if primary_key else set()
    if not suspects:
        return [_gated(r, 0, None) for r in reports]
    by_index = {int(r["index"]): r for r in reports}
    tables = {
        i: store_for(by_index[i]).read_table(by_index[i]["good_key"], columns=list(primary_key)) for i in suspects
    }
    lost = losers(tables, primary_key)
    out: list[GatedReport] = []
    for r in reports:
        i = int(r["index"])
        rows = lost.get(i)
        if rows is None or not len(rows):
            out.append(_gated(r, 0, None))
            continue
        store = store_for(r)
        key = store.derived_key(i, "superseded")
        store.write_table(key, pa.table({ROW: rows}))
        out.append(_gated(r, len(rows), key))
    total = sum(len(v) for v in lost.values())
    log.info(
        "run-wide duplicates: %d chunk(s) with overlapping keys read back; %d row(s) superseded by a later row of "
        "the same key (%.2f s)",
        len(suspects),
        total,
        time.perf_counter() - t0,
    )
    return out


def _gated(report: ChunkReport, superseded: int, key: str | None) -> GatedReport:
    return {**report, "superseded": superseded, "superseded_key": key}


def drop_superseded(table: pa.Table, rows: pa.Array | None) -> pa.Table:
    """The good rows without the superseded ones (row numbers from mark_superseded)."""
    import numpy as np
    import pyarrow as pa

    if rows is None or not len(rows):
        return table
    keep = np.ones(table.num_rows, dtype=bool)
    keep[np.asarray(rows.to_numpy(zero_copy_only=False), dtype=np.int64)] = False
    return table.filter(pa.array(keep))
