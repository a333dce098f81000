"""validate_chunk: one staged chunk -> good rows + quarantined rows + a report, with a GX Core suite built from the
pipeline's expectations.

Steps: read the chunk; cast it to the declared types (casting.py; rows that do not cast are quarantined); run the
row-level expectations with GX on the cast rows (ephemeral context, pandas, result_format COMPLETE and its
`unexpected_index_list`, which unlike `unexpected_list` is not capped); quarantine the unexpected rows of expectations
with severity quarantine, raise ValidationFailed for severity fail, log severity warn. Batch-level expectations are
not judged per chunk: the chunk records the figures they need and quality.py decides on the whole interval.
Row-level expectations see one chunk at a time (e.g. expect_column_values_to_be_unique finds duplicates within a
chunk; duplicate keys across chunks are resolved by the loader, last row wins). `mostly` decides success (fail,
warn), but with severity quarantine every unexpected row is quarantined.

The good rows stay Arrow in their declared types (pandas is only GX's input). Quarantined rows -- cast failures,
expectation failures and the chunk's source rejects -- go to staging and to `sluice.quarantine`, where the chunk's
rows are replaced in one transaction, so a retry is idempotent. Conservation is asserted:
rows_in (staged rows + rejects) == rows_good + rows_quarantined.

Dependencies run one way: validation -> casting (types), gx_suite (GX, imported lazily), quarantine (rows and SQL);
the names those modules define are re-exported here for callers that import them from sluice.validation.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.config import WriteMode
from sluice.loading.duplicates import key_bounds
from sluice.validate.cast import cast_table
from sluice.validate.quarantine import (
    cast_reason_counts,
    ensure_quarantine_table,
    quarantine_table,
    replace_quarantine_rows,
    split_origin,
)
from sluice.validate.suite import (
    ExpectationError,
    Level,
    classify,
    columns_of,
    expectation_class,
    reason_key,
    run_suite,
    to_pandas,
)

if TYPE_CHECKING:
    from sluice.config import ExpectationSpec, PipelineConfig
    from sluice.interval import Interval
    from sluice.staging import ChunkRef

log = logging.getLogger(__name__)

__all__ = [
    "ExpectationError",
    "Level",
    "BatchChecks",
    "ChunkReport",
    "ChunkwiseCheck",
    "ColumnStats",
    "ValidationFailed",
    "classify",
    "ensure_quarantine_table",
    "expectation_class",
    "reason_key",
    "replace_quarantine_rows",
    "run_suite",
    "validate_chunk",
]


class ValidationFailed(RuntimeError):
    """An expectation with severity fail failed: the task fails with this summary."""


# ---------------------------------------------------------------- the report (the validate_chunk task's XCom)
# Values are JSON (XCom's serialiser): `Any` below is a JSON value, already passed through _json_value.


class ColumnStats(TypedDict):
    """Figures of one good column, summed by the quality gate for the COMBINED batch expectations."""

    count: int
    nulls: int
    min: Any
    max: Any
    sum: Any


class ChunkwiseCheck(TypedDict):
    """The outcome of one CHUNKWISE batch expectation on one chunk."""

    expectation: str
    severity: str
    success: bool
    observed: Any


class BatchChecks(TypedDict):
    rows_in: int
    rows_good: int
    chunkwise: list[ChunkwiseCheck]
    stats: dict[str, ColumnStats]  # column -> figures, for the columns COMBINED expectations name


class ChunkReport(TypedDict):
    """What validate_chunk returns for one chunk: counts (rows_in = rows_good + rows_quarantined), where its good
    and quarantined rows were written, and the figures the quality gate needs."""

    index: int
    generation: int
    rows_in: int  # staged rows + source rejects
    rows_good: int
    rows_quarantined: int
    rows_cast_failed: int
    rows_expectation_failed: int
    rows_rejected: int  # rows the source could not parse
    chunk_key: str
    checksum: str  # of the staged chunk (ChunkRef.checksum)
    good_key: str  # the chunk file itself when validation changed nothing (then read only good_columns of it)
    good_columns: list[str] | None
    quarantine_key: str
    gx_key: str | None  # GX's validation result document, when a suite ran
    warnings: list[str]
    failures: list[str]
    batch_checks: BatchChecks
    key_bounds: list[list[Any]] | None  # first and last primary key of the good rows (keyed write modes)
    extra_columns: list[str]
    missing_columns: list[str]
    quarantine_reasons: dict[str, int]  # reason -> rows
    seconds: float


# ---------------------------------------------------------------- figures for the quality gate


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | set):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def column_stats(arr: pa.ChunkedArray) -> ColumnStats:
    """count, nulls, min, max, sum of one good column, JSON-ready, for the COMBINED batch expectations."""
    t = arr.type
    sortable = not (pa.types.is_nested(t) or pa.types.is_boolean(t))
    mm = pc.min_max(arr) if sortable and len(arr) else None
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    return {
        "count": int(pc.count(arr).as_py()),
        "nulls": arr.null_count,
        "min": _json_value(mm["min"].as_py()) if mm else None,
        "max": _json_value(mm["max"].as_py()) if mm else None,
        "sum": _json_value(pc.sum(arr).as_py()) if numeric else None,
    }


def _unchanged(good: pa.Table, staged: pa.Table) -> bool:
    """Are the cast good rows the staged chunk's columns of the same names, types and values (every row kept)?"""
    if good.num_rows != staged.num_rows or not set(good.column_names) <= set(staged.column_names):
        return False
    return all(staged[n].type == good[n].type and staged[n].equals(good[n]) for n in good.column_names)


def _summary(spec: ExpectationSpec, result: Any) -> str:
    res = result.result or {}
    sample = [_json_value(v) for v in (res.get("partial_unexpected_list") or [])[:5]]
    if "unexpected_count" in res:
        return (
            f"{reason_key(spec)} [{spec.severity}]: {res['unexpected_count']} of {res.get('element_count')} "
            f"row(s) unexpected, e.g. {sample}"
        )
    return f"{reason_key(spec)} [{spec.severity}]: failed, observed {res.get('observed_value')!r}"


@dataclass
class _Verdict:
    """What the expectations said about one chunk's cast rows."""

    flagged: np.ndarray  # rows (positions in the cast good rows) to quarantine
    why: dict[int, list[dict]] = field(default_factory=dict)  # position -> reasons
    counts: dict[str, int] = field(default_factory=dict)  # reason key -> rows quarantined for it
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    chunkwise: list[ChunkwiseCheck] = field(default_factory=list)


def _judge(
    good: pa.Table, specs: list[tuple[int, ExpectationSpec]], levels: dict[int, Level], label: str
) -> tuple[_Verdict, dict | None]:
    """Run the row-level and chunkwise expectations on the cast rows and sort the outcome by severity."""
    verdict = _Verdict(np.zeros(good.num_rows, dtype=bool))
    run = [(i, s) for i, s in specs if levels[i] in (Level.row, Level.chunkwise)]
    if not run or not good.num_rows:
        return verdict, None
    everything = any(levels[i] is Level.chunkwise or "row_condition" in s.kwargs for i, s in run)
    columns = good.column_names if everything else sorted({c for _, s in run for c in columns_of(s)})
    results, doc = run_suite(to_pandas(good, columns), run, label)
    for i, spec in run:
        r, res = results[i], results[i].result or {}
        positions = res.get("unexpected_index_list")
        if levels[i] is Level.chunkwise or positions is None:  # also map expectations pandas judges as a whole
            verdict.chunkwise.append(
                {
                    "expectation": reason_key(spec),
                    "severity": str(spec.severity),
                    "success": bool(r.success),
                    "observed": _json_value(res.get("observed_value")),
                }
            )
            if not r.success and spec.severity == "fail":
                verdict.failures.append(_summary(spec, r))
        elif spec.severity == "quarantine" and positions:
            where = np.asarray(positions, dtype=np.int64)
            verdict.flagged[where] = True
            cols = columns_of(spec)
            reason = {"expectation": spec.type, **({"column": cols[0]} if len(cols) == 1 else {"columns": cols})}
            for p in where.tolist():
                verdict.why.setdefault(p, []).append(reason)
            verdict.counts[reason_key(spec)] = verdict.counts.get(reason_key(spec), 0) + len(where)
        elif (spec.severity == "fail" and not r.success) or (spec.severity == "warn" and positions):
            (verdict.failures if spec.severity == "fail" else verdict.warnings).append(_summary(spec, r))
    return verdict, doc


def validate_chunk(cfg: PipelineConfig, interval: Interval, run_id: str, chunk: ChunkRef) -> ChunkReport:
    """Cast and validate one staged chunk; write its good and quarantined rows; return its ChunkReport."""
    from sluice.connections import pg_dsn
    from sluice.staging import StagingStore

    started = time.perf_counter()
    index, generation = int(chunk["index"]), int(chunk.get("generation") or 0)
    store = StagingStore(cfg.staging, cfg.name, interval, run_id, generation if "generation" in chunk else None)
    specs = list(enumerate(cfg.expectations))
    levels = {i: classify(spec) for i, spec in specs}  # config errors surface before any work
    table, origin = split_origin(store.read_table(chunk["key"]))
    if chunk.get("rows") is not None and table.num_rows != int(chunk["rows"]):
        raise ValidationFailed(
            f"chunk {index}: {chunk['key']} holds {table.num_rows} rows, its ChunkRef says "
            f"{chunk['rows']}; the staged file changed after extraction"
        )
    rejects_key = chunk.get("rejects_key")
    rejects = store.read_table(rejects_key) if rejects_key else None
    n_rejects = rejects.num_rows if rejects is not None else 0
    cast = cast_table(table, cfg.target.columns, cfg.target.on_extra_columns, cfg.target.on_missing_columns)
    if cast.missing and table.num_rows:
        (log.warning if index == 0 else log.debug)(
            "declared columns missing from the source, loaded as NULL (on_missing_columns: null): %s",
            ", ".join(cast.missing),
        )
    if cast.extra_columns:
        (log.warning if index == 0 else log.debug)(
            "source columns not in target.columns (on_extra_columns: %s): %s",
            cfg.target.on_extra_columns,
            ", ".join(cast.extra_columns),
        )
    good, gx_key = cast.good, None
    verdict, doc = _judge(good, specs, levels, f"{cfg.name}.chunk{index}")
    if doc is not None:
        gx_key = store.derived_key(index, "gx", ext="json")
        store.write_bytes(gx_key, json.dumps(doc, default=str).encode())
    for warning in verdict.warnings:
        log.warning("chunk %d: %s", index, warning)
    if verdict.failures:
        raise ValidationFailed(
            f"pipeline {cfg.name}, chunk {index}: {len(verdict.failures)} expectation(s) with "
            "severity fail failed:\n- " + "\n- ".join(verdict.failures)
        )
    flagged, why, counts = verdict.flagged, verdict.why, {**cast_reason_counts(cast.bad_rows), **verdict.counts}
    positions = np.flatnonzero(flagged)
    source_rows = cast.good_index.take(pa.array(positions)).to_pylist() if len(positions) else []
    owner = {"pipeline": cfg.name, "run_id": run_id, "generation": generation, "interval": interval}
    quarantine = quarantine_table(
        owner, index, table, cast.bad_rows, source_rows, [why[p] for p in positions.tolist()], rejects, origin
    )
    if n_rejects:
        counts["source rejects (rows the source could not parse)"] = n_rejects
    rows_in = table.num_rows + n_rejects
    cast_failed, extra, missing = cast.bad_count, cast.extra_columns, cast.missing
    # nothing quarantined and the cast changed nothing (a Parquet source in the declared types): the good rows are
    # the staged chunk's own columns, so the loader reads them from the chunk file instead of a second copy
    reused = not quarantine.num_rows and _unchanged(good, table)  # the flagged rows are in quarantine too
    del (
        table,
        cast,
        origin,
    )  # the raw chunk is done with: free it before the good rows are copied and written (peak RSS)
    pa.default_memory_pool().release_unused()
    if len(positions):
        good = good.filter(pa.array(~flagged))
    if rows_in != good.num_rows + quarantine.num_rows:
        raise RuntimeError(
            f"chunk {index}: conservation broken in validation: {rows_in} in != {good.num_rows} good "
            f"+ {quarantine.num_rows} quarantined (a bug: please report it)"
        )
    good_key, quarantine_key = store.derived_key(index, "good"), store.derived_key(index, "quarantine")
    if reused:
        good_key = chunk["key"]
    else:
        store.write_table(good_key, good)
    store.write_table(quarantine_key, quarantine)
    replace_quarantine_rows(pg_dsn(cfg.target.conn_id), cfg.name, run_id, interval, index, quarantine, generation)
    keyed = cfg.target.write_mode is not WriteMode.append
    # figures of the COMBINED expectations' columns, and of every numeric column: finalize keeps the latter per
    # interval (sluice.interval_stats) for the gate's history checks, so enabling an outlier check finds a history
    numeric = {c.name for c in cfg.target.columns if c.column_type.is_numeric}
    stats_cols = sorted(
        numeric | {s.kwargs["column"] for i, s in specs if levels[i] is Level.combined and "column" in s.kwargs}
    )
    seconds = time.perf_counter() - started
    report: ChunkReport = {
        "index": index,
        "generation": generation,
        "rows_in": rows_in,
        "rows_good": good.num_rows,
        "rows_quarantined": quarantine.num_rows,
        "rows_cast_failed": cast_failed,
        "rows_expectation_failed": len(positions),
        "rows_rejected": n_rejects,
        "chunk_key": chunk["key"],
        "checksum": chunk.get("checksum"),
        "good_key": good_key,
        "good_columns": good.column_names if reused else None,
        "quarantine_key": quarantine_key,
        "gx_key": gx_key,
        "warnings": verdict.warnings,
        "failures": [],
        "batch_checks": {
            "rows_in": rows_in,
            "rows_good": good.num_rows,
            "chunkwise": verdict.chunkwise,
            "stats": {c: column_stats(good[c]) for c in stats_cols},
        },
        "key_bounds": key_bounds(good, cfg.target.primary_key) if keyed else None,
        "extra_columns": extra,
        "missing_columns": missing,
        "quarantine_reasons": counts,
        "seconds": round(seconds, 3),
    }
    log.info(
        "chunk %d: %d rows in, %d good, %d quarantined (cast %d, expectations %d, source rejects %d) in %.2fs "
        "(%.0f rows/s)",
        index,
        rows_in,
        good.num_rows,
        quarantine.num_rows,
        cast_failed,
        len(positions),
        n_rejects,
        seconds,
        rows_in / max(seconds, 1e-9),
    )
    return report
