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
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.casting import BAD_REASONS, BAD_ROW, cast_table, raw_strings
from sluice.config_errors import suggest
from sluice.quality import CHUNKWISE, COMBINED

if TYPE_CHECKING:
    import pandas as pd
    import psycopg

    from sluice.config import ExpectationSpec, PipelineConfig
    from sluice.interval import Interval

log = logging.getLogger(__name__)

__all__ = ["QUARANTINE_DDL", "QUARANTINE_SCHEMA", "ExpectationError", "Level", "ValidationFailed", "classify",
           "ensure_quarantine_table", "expectation_class", "quarantine_copy_sql", "quarantine_ddl",
           "quarantine_delete_sql", "validate_chunk"]

QUARANTINE_SCHEMA = "sluice"
QUARANTINE_COLUMNS = ("pipeline", "run_id", "interval_start", "interval_end", "chunk", "row_number", "row", "reasons")
QUARANTINE_FILE_SCHEMA = pa.schema([("chunk", pa.int32()), ("row_number", pa.int64()), ("kind", pa.string()),
                                    ("row", pa.string()), ("reasons", pa.string())])
_STRIP = ("unexpected_list", "unexpected_index_list", "unexpected_rows", "unexpected_index_query")


class ValidationFailed(RuntimeError):
    """An expectation with severity fail failed: the task fails with this summary."""


class ExpectationError(ValueError):
    """An expectation in the config cannot run (unknown name, bad kwargs, not evaluable on chunks)."""


class Level(StrEnum):
    row = "row"  # judged row by row per chunk: unexpected rows are quarantined / fail / warn
    combined = "combined"  # batch-level, evaluated by the quality gate on figures summed over the chunks
    chunkwise = "chunkwise"  # batch-level, holds for the interval iff it holds for every chunk: GX runs it per chunk


# ---------------------------------------------------------------- expectations


def _import_gx() -> Any:
    """GX, without usage statistics and without its INFO chatter in the task log."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    gx_log = logging.getLogger("great_expectations")
    if gx_log.level == logging.NOTSET:
        gx_log.setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


@cache
def _classes() -> dict[str, type]:
    gx = _import_gx()

    return {c.expectation_type: c for name in dir(gx.expectations)
            if name.startswith("Expect") and isinstance(c := getattr(gx.expectations, name), type)
            and getattr(c, "expectation_type", None)}


def expectation_class(name: str) -> type:
    """The GX Core class of a snake_case expectation name (expect_column_values_to_not_be_null ->
    ExpectColumnValuesToNotBeNull); ExpectationError with a did-you-mean on an unknown name."""
    classes = _classes()
    if name not in classes:
        hint = suggest(name, classes) or "see https://greatexpectations.io/expectations/"
        raise ExpectationError(f"unknown expectation '{name}' (GX Core has no such expectation); {hint}")
    return classes[name]


def classify(spec: ExpectationSpec) -> Level:
    """Row-level (a GX map expectation) or batch-level; raises ExpectationError for a batch-level expectation that
    cannot be judged on an interval processed in chunks (e.g. a median), instead of judging each chunk wrongly."""
    cls = expectation_class(spec.type)
    _build(spec, -1)  # its kwargs too: a missing column or a typo fails here, before any data is read
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    if spec.type in COMBINED:
        return Level.combined
    if spec.type in CHUNKWISE:
        return Level.chunkwise
    if issubclass(cls, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation):
        return Level.row
    raise ExpectationError(
        f"expectation '{spec.type}' is batch-level and its result on a whole interval cannot be built from "
        f"per-chunk results; supported batch-level expectations: {', '.join(sorted(COMBINED | CHUNKWISE))}")


def _build(spec: ExpectationSpec, index: int) -> Any:
    cls = expectation_class(spec.type)
    try:
        return cls(**spec.kwargs, meta={"sluice_index": index})
    except Exception as exc:  # GX validates kwargs with pydantic; say which expectation, why, and the likely fix
        fields = list(getattr(cls, "__fields__", {}))
        hints = [f"'{k}': {suggest(k, fields)}" for k in spec.kwargs if k not in fields and suggest(k, fields)]
        raise ExpectationError(f"expectation {spec.type} with kwargs {spec.kwargs}: {exc}"
                               + (f"\nhint: {'; '.join(hints)}" if hints else "")) from None


def _columns_of(spec: ExpectationSpec) -> list[str]:
    kw = spec.kwargs
    cols = [kw[k] for k in ("column", "column_A", "column_B") if kw.get(k)]
    return cols + list(kw.get("column_list") or [])


def reason_key(spec: ExpectationSpec) -> str:
    cols = _columns_of(spec)
    return f"{spec.type}({', '.join(cols)})" if cols else spec.type


# ---------------------------------------------------------------- sluice.quarantine


def quarantine_ddl() -> list[str]:
    """Statements creating sluice.quarantine: one row per quarantined row, its reasons, and where it came from."""
    return [
        f"CREATE SCHEMA IF NOT EXISTS {QUARANTINE_SCHEMA}",
        f"""CREATE TABLE IF NOT EXISTS {QUARANTINE_SCHEMA}.quarantine (
    id bigserial PRIMARY KEY, pipeline text NOT NULL, run_id text NOT NULL,
    interval_start timestamptz NOT NULL, interval_end timestamptz NOT NULL, chunk integer NOT NULL,
    row_number bigint, row jsonb NOT NULL, reasons jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())""",
        f"CREATE INDEX IF NOT EXISTS quarantine_run_chunk ON {QUARANTINE_SCHEMA}.quarantine (pipeline, run_id, chunk)",
    ]


QUARANTINE_DDL = ";\n".join(quarantine_ddl()) + ";"


def quarantine_delete_sql() -> str:
    return f"DELETE FROM {QUARANTINE_SCHEMA}.quarantine WHERE pipeline = %s AND run_id = %s AND chunk = %s"


def quarantine_copy_sql() -> str:
    return f"COPY {QUARANTINE_SCHEMA}.quarantine ({', '.join(QUARANTINE_COLUMNS)}) FROM STDIN"


def ensure_quarantine_table(conn: psycopg.Connection) -> None:
    """Create sluice.quarantine if missing, under the same DDL advisory lock the loader takes, so parallel chunks
    (and the loader creating sluice.load_ledger) never race on CREATE ... IF NOT EXISTS."""
    import psycopg

    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{QUARANTINE_SCHEMA}.quarantine",)).fetchone()[0]
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


def replace_quarantine_rows(dsn: str, pipeline: str, run_id: str, interval: Interval, index: int,
                            quarantine: pa.Table) -> None:
    """Delete the chunk's earlier quarantine rows and COPY the new ones, in one transaction (retries are idempotent)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True, application_name=f"sluice validate {pipeline}#{index}"[:63]) as conn:
        ensure_quarantine_table(conn)
        with conn.transaction():
            conn.execute(quarantine_delete_sql(), (pipeline, run_id, index))
            with conn.cursor().copy(quarantine_copy_sql()) as copy:
                cols = [quarantine[c].to_pylist() for c in ("row_number", "row", "reasons")]
                for row_number, row, reasons in zip(*cols, strict=True):
                    copy.write_row((pipeline, run_id, interval.start, interval.end, index, row_number, row, reasons))


# ---------------------------------------------------------------- GX


@cache
def _batch_definition() -> Any:
    """One ephemeral GX context per process, with a pandas datasource whose dataframe is passed per validation."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("sluice").add_dataframe_asset("chunk")
    return asset.add_batch_definition_whole_dataframe("whole chunk")


def run_suite(df: pd.DataFrame, specs: list[tuple[int, ExpectationSpec]], name: str) -> tuple[dict[int, Any], dict]:
    """Validate a dataframe with the given expectations; returns {config index: result} and the result as JSON
    (capped lists stripped). An expectation that raised inside GX is a config error, not a data failure."""
    import great_expectations as gx

    batch_definition = _batch_definition()  # creates the context, which the suite needs
    suite = gx.ExpectationSuite(name=name)
    for i, spec in specs:
        suite.add_expectation(_build(spec, i))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE", "partial_unexpected_count": 20,
                                                  "return_unexpected_index_query": False})
    by_index: dict[int, Any] = {}
    for r in result.results:
        i = r.expectation_config.meta["sluice_index"]
        info = r.exception_info or {}
        infos = [info] if "raised_exception" in info else list(info.values())
        raised = [x for x in infos if isinstance(x, dict) and x.get("raised_exception")]
        if raised:
            raise ExpectationError(f"expectations.{i} {reason_key(dict(specs)[i])} could not run: "
                                   f"{raised[0].get('exception_message')}")
        by_index[i] = r
    doc = result.to_json_dict()
    for r in doc.get("results", []):
        for key in _STRIP:
            (r.get("result") or {}).pop(key, None)
    return by_index, doc


def _to_pandas(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    """GX's input: only the columns the expectations read; decimals as float64 (YAML bounds are floats)."""
    cols = [table[c].cast(pa.float64()) if pa.types.is_decimal(table.schema.field(c).type) else table[c]
            for c in columns]
    return pa.table(cols, names=columns).to_pandas()


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


def column_stats(arr: pa.ChunkedArray) -> dict[str, Any]:
    """count, nulls, min, max, sum of one good column, JSON-ready, for the COMBINED batch expectations."""
    t = arr.type
    sortable = not (pa.types.is_nested(t) or pa.types.is_boolean(t))
    mm = pc.min_max(arr) if sortable and len(arr) else None
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    return {"count": int(pc.count(arr).as_py()), "nulls": arr.null_count,
            "min": _json_value(mm["min"].as_py()) if mm else None,
            "max": _json_value(mm["max"].as_py()) if mm else None,
            "sum": _json_value(pc.sum(arr).as_py()) if numeric else None}


# ---------------------------------------------------------------- quarantine rows


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


def _quarantine(index: int, table: pa.Table, bad: pa.Table, expectation_rows: list[int], reasons: list[list[dict]],
                rejects: pa.Table | None) -> pa.Table:
    """All of a chunk's quarantined rows in one shape: raw row as JSON, reasons as JSON, row number in the chunk."""
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
    out = pa.table({"chunk": pa.array([index] * len(rows), pa.int32()), "row_number": pa.array(numbers, pa.int64()),
                    "kind": kinds, "row": rows, "reasons": why}, schema=QUARANTINE_FILE_SCHEMA)
    return out.sort_by([("row_number", "ascending", "at_end")])  # source order, rejects last


def _cast_reason_counts(bad: pa.Table) -> dict[str, int]:
    counts: dict[str, int] = {}
    for text in bad[BAD_REASONS].to_pylist():
        for r in {(x["column"], x["reason"]) for x in json.loads(text)}:
            key = f"cast {r[0]}: {r[1]}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def _summary(spec: ExpectationSpec, result: Any) -> str:
    res = result.result or {}
    sample = [_json_value(v) for v in (res.get("partial_unexpected_list") or [])[:5]]
    if "unexpected_count" in res:
        return (f"{reason_key(spec)} [{spec.severity}]: {res['unexpected_count']} of {res.get('element_count')} "
                f"row(s) unexpected, e.g. {sample}")
    return f"{reason_key(spec)} [{spec.severity}]: failed, observed {res.get('observed_value')!r}"


@dataclass
class _Verdict:
    """What the expectations said about one chunk's cast rows."""

    flagged: np.ndarray  # rows (positions in the cast good rows) to quarantine
    why: dict[int, list[dict]] = field(default_factory=dict)  # position -> reasons
    counts: dict[str, int] = field(default_factory=dict)  # reason key -> rows quarantined for it
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    chunkwise: list[dict] = field(default_factory=list)


def _judge(good: pa.Table, specs: list[tuple[int, ExpectationSpec]], levels: dict[int, Level],
           label: str) -> tuple[_Verdict, dict | None]:
    """Run the row-level and chunkwise expectations on the cast rows and sort the outcome by severity."""
    verdict = _Verdict(np.zeros(good.num_rows, dtype=bool))
    run = [(i, s) for i, s in specs if levels[i] in (Level.row, Level.chunkwise)]
    if not run or not good.num_rows:
        return verdict, None
    everything = any(levels[i] is Level.chunkwise or "row_condition" in s.kwargs for i, s in run)
    columns = good.column_names if everything else sorted({c for _, s in run for c in _columns_of(s)})
    results, doc = run_suite(_to_pandas(good, columns), run, label)
    for i, spec in run:
        r, res = results[i], results[i].result or {}
        positions = res.get("unexpected_index_list")
        if levels[i] is Level.chunkwise or positions is None:  # also map expectations pandas judges as a whole
            verdict.chunkwise.append({"expectation": reason_key(spec), "severity": str(spec.severity),
                                      "success": bool(r.success), "observed": _json_value(res.get("observed_value"))})
            if not r.success and spec.severity == "fail":
                verdict.failures.append(_summary(spec, r))
        elif spec.severity == "quarantine" and positions:
            where = np.asarray(positions, dtype=np.int64)
            verdict.flagged[where] = True
            cols = _columns_of(spec)
            reason = {"expectation": spec.type, **({"column": cols[0]} if len(cols) == 1 else {"columns": cols})}
            for p in where.tolist():
                verdict.why.setdefault(p, []).append(reason)
            verdict.counts[reason_key(spec)] = verdict.counts.get(reason_key(spec), 0) + len(where)
        elif (spec.severity == "fail" and not r.success) or (spec.severity == "warn" and positions):
            (verdict.failures if spec.severity == "fail" else verdict.warnings).append(_summary(spec, r))
    return verdict, doc


def validate_chunk(cfg: PipelineConfig, interval: Interval, run_id: str, chunk: dict) -> dict:
    """Cast and validate one staged chunk; write its good and quarantined rows; return its ChunkReport."""
    from sluice.connections import pg_dsn
    from sluice.staging import StagingStore

    started = time.perf_counter()
    index = int(chunk["index"])
    store = StagingStore(cfg.staging, cfg.name, interval, run_id)
    specs = list(enumerate(cfg.expectations))
    levels = {i: classify(spec) for i, spec in specs}  # config errors surface before any work
    table = store.read_table(chunk["key"])
    if chunk.get("rows") is not None and table.num_rows != int(chunk["rows"]):
        raise ValidationFailed(f"chunk {index}: {chunk['key']} holds {table.num_rows} rows, its ChunkRef says "
                               f"{chunk['rows']}; the staged file changed after extraction")
    rejects = store.read_table(chunk["rejects_key"]) if chunk.get("rejects_key") else None
    n_rejects = rejects.num_rows if rejects is not None else 0
    cast = cast_table(table, cfg.target.columns, cfg.target.on_extra_columns)
    if cast.extra_columns:
        (log.warning if index == 0 else log.debug)("source columns not in target.columns (on_extra_columns: %s): %s",
                                                   cfg.target.on_extra_columns, ", ".join(cast.extra_columns))
    good, gx_key = cast.good, None
    verdict, doc = _judge(good, specs, levels, f"{cfg.name}.chunk{index}")
    if doc is not None:
        gx_key = store.derived_key(index, "gx")
        store.write_table(gx_key, pa.table({"result": [json.dumps(doc, default=str)]}))
    for warning in verdict.warnings:
        log.warning("chunk %d: %s", index, warning)
    if verdict.failures:
        raise ValidationFailed(f"pipeline {cfg.name}, chunk {index}: {len(verdict.failures)} expectation(s) with "
                               "severity fail failed:\n- " + "\n- ".join(verdict.failures))
    flagged, why, counts = verdict.flagged, verdict.why, {**_cast_reason_counts(cast.bad_rows), **verdict.counts}
    positions = np.flatnonzero(flagged)
    source_rows = cast.good_index.take(pa.array(positions)).to_pylist() if len(positions) else []
    quarantine = _quarantine(index, table, cast.bad_rows, source_rows, [why[p] for p in positions.tolist()], rejects)
    if n_rejects:
        counts["source rejects (rows the source could not parse)"] = n_rejects
    rows_in = table.num_rows + n_rejects
    cast_failed, extra, missing = cast.bad_count, cast.extra_columns, cast.missing
    del table, cast  # the raw chunk is done with: free it before the good rows are copied and written (peak RSS)
    pa.default_memory_pool().release_unused()
    if len(positions):
        good = good.filter(pa.array(~flagged))
    if rows_in != good.num_rows + quarantine.num_rows:
        raise RuntimeError(f"chunk {index}: conservation broken in validation: {rows_in} in != {good.num_rows} good "
                           f"+ {quarantine.num_rows} quarantined (a bug: please report it)")
    good_key, quarantine_key = store.derived_key(index, "good"), store.derived_key(index, "quarantine")
    store.write_table(good_key, good)
    store.write_table(quarantine_key, quarantine)
    replace_quarantine_rows(pg_dsn(cfg.target.conn_id), cfg.name, run_id, interval, index, quarantine)
    stats_cols = sorted({s.kwargs["column"] for i, s in specs if levels[i] is Level.combined and "column" in s.kwargs})
    seconds = time.perf_counter() - started
    report = {
        "index": index, "rows_in": rows_in, "rows_good": good.num_rows, "rows_quarantined": quarantine.num_rows,
        "rows_cast_failed": cast_failed, "rows_expectation_failed": len(positions), "rows_rejected": n_rejects,
        "chunk_key": chunk["key"], "checksum": chunk.get("checksum"), "good_key": good_key,
        "quarantine_key": quarantine_key, "gx_key": gx_key, "warnings": verdict.warnings, "failures": [],
        "batch_checks": {"rows_in": rows_in, "rows_good": good.num_rows, "chunkwise": verdict.chunkwise,
                         "stats": {c: column_stats(good[c]) for c in stats_cols}},
        "extra_columns": extra, "missing_columns": missing, "quarantine_reasons": counts,
        "seconds": round(seconds, 3),
    }
    log.info("chunk %d: %d rows in, %d good, %d quarantined (cast %d, expectations %d, source rejects %d) in %.2fs "
             "(%.0f rows/s)", index, rows_in, good.num_rows, quarantine.num_rows, cast_failed, len(positions),
             n_rejects, seconds, rows_in / max(seconds, 1e-9))
    return report
