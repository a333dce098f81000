"""Cast raw source columns to the declared column types, vectorised with pyarrow.compute.

A value that does not cast never fails the chunk: its row goes to the bad rows with one reason per failing column
(`{"column", "value", "reason"}`) and every other row continues. A clean string column costs one Arrow cast (the
optimistic path); a column with bad values takes the careful path of its type's caster in casting_types.py (regexes,
arithmetic and masks, still vectorised), where the conventions for each type are described.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.config import ColumnSpec, ExtraColumnsPolicy, MissingColumnsPolicy
from sluice.config.errors import suggest
from sluice.validate.casters import (
    CASTERS,
    Failures,
    any_true,
    as_mask,
    nul_failures,
    optimistic_cast,
    out_of_range,
    plain_array,
    to_strings,
)

__all__ = [
    "BAD_REASONS",
    "BAD_ROW",
    "CastResult",
    "CastSchemaError",
    "cast_column",
    "cast_table",
    "raw_strings",
    "to_strings",
]

BAD_ROW = "_sluice_row"
BAD_REASONS = "_sluice_reasons"
MAX_VALUE_CHARS = 200


class CastSchemaError(ValueError):
    """The source's columns cannot produce the declared ones (a declared column is absent under on_missing_columns:
    fail, a non-nullable one is absent, or extra columns under on_extra_columns: fail). The whole chunk stops: this
    is a config or upstream problem, not a bad row. (Not to be confused with sluice.loading.postgres.SchemaMismatch:
    the target table differs from the config.)"""

    retryable = False  # the same source fails the same way: fail the task at once (dag_builder.unretryable)


@dataclass(frozen=True)
class CastResult:
    good: pa.Table  # declared columns in declared Arrow types (+ evolved extra columns), rows in source order
    bad_rows: pa.Table  # raw source values as strings + _sluice_row (row in the chunk) + _sluice_reasons (JSON list)
    extra_columns: list[str]  # source columns not declared (ignored, or kept in `good` under evolve)
    missing: list[str]  # declared nullable columns absent from the source (NULL, under on_missing_columns: null)
    good_index: pa.Array = field(default_factory=lambda: pa.array([], pa.int64()))  # input row of each good row

    @property
    def bad_count(self) -> int:
        return self.bad_rows.num_rows


def cast_column(arr: pa.Array | pa.ChunkedArray, spec: ColumnSpec) -> tuple[pa.Array, Failures]:
    """One source column -> the declared type, plus (mask, reason) pairs of the values that did not cast; a NULL in a
    non-nullable column is a failure too."""
    arr, target, ct = plain_array(arr), spec.arrow_type, spec.column_type
    early = out_of_range(arr, ct)  # typed dates and timestamps: before a cast to another unit can overflow
    if early:
        arr = pc.if_else(early[0][0], pa.scalar(None, arr.type), arr)
    failures: Failures
    if pa.types.is_null(arr.type):
        values, failures = pa.nulls(len(arr), target), []
    elif (fast := optimistic_cast(arr, ct, target)) is not None:
        values, failures = fast, []
    else:
        values, failures = CASTERS[ct.name](arr, ct, target)
    failures = [(as_mask(m), r) for m, r in early + failures]
    for mask, reason in out_of_range(values, ct):  # parsed text too, and after the optimistic cast ("0000-01-01")
        values = pc.if_else(mask, pa.scalar(None, values.type), values)
        failures.append((mask, reason))
    if not spec.nullable:
        failed = pa.repeat(False, len(arr))
        for mask, _ in failures:
            failed = pc.or_(failed, mask)
        failures.append((pc.and_(pc.is_null(values), pc.invert(failed)), "null in non-nullable column"))
    return values, [(m, r) for m, r in failures if any_true(m)]


# ---------------------------------------------------------------- the table


def _missing_message(specs: list[ColumnSpec], source: list[str], unused: list[str]) -> str:
    """One line per missing column (with a did-you-mean from the source's header), then the source's columns."""
    lines = []
    for spec in specs:
        label = spec.name if not spec.source_name else f"{spec.name} (source name '{spec.source_name}')"
        kind = "nullable" if spec.nullable else "non-nullable"
        hint = suggest(spec.source_column, unused or source)
        name = spec.source_column.lower()
        near = [u for u in unused if name in u.lower() or u.lower() in name]
        if not hint and len(near) == 1:  # "id" -> "order_id": a prefix or suffix added upstream
            hint = f"did you mean '{near[0]}'?"
        if not hint and len(unused) == 1:
            hint = f"the source has one undeclared column, '{unused[0]}': was the column renamed upstream?"
        lines.append(
            f"{kind} column {label} is missing from the source." + (f" {hint[0].upper()}{hint[1:]}" if hint else "")
        )
    shown = ", ".join(source[:50]) + (f", ... ({len(source)} in all)" if len(source) > 50 else "")
    names = ", ".join(f"'{s.name}'" for s in specs)
    if all(s.nullable for s in specs):
        fix = (
            f"set source_name for {names} to the source's column name, or set target.on_missing_columns: null "
            "to load NULL"
        )
    else:
        fix = (
            f"set source_name for {names} to the source's column name, or declare the column(s) nullable: true "
            "with target.on_missing_columns: null to load NULL"
        )
    return " ".join(lines) + f" Source columns: {shown or '(none)'}. Fix: {fix}. Nothing was loaded."


def _evolved(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An undeclared column kept under on_extra_columns: evolve: primitive types stay, the rest becomes text."""
    arr = plain_array(arr)
    t = arr.type
    if (
        pa.types.is_null(t)
        or pa.types.is_nested(t)
        or pa.types.is_binary(t)
        or pa.types.is_time(t)
        or pa.types.is_duration(t)
        or pa.types.is_interval(t)
        or pa.types.is_decimal256(t)
    ):
        return to_strings(arr)
    return arr


def cast_table(
    table: pa.Table,
    columns: list[ColumnSpec],
    policy: ExtraColumnsPolicy,
    on_missing: MissingColumnsPolicy = MissingColumnsPolicy.fail,
) -> CastResult:
    """Raw source table -> the declared columns (good rows) and the rows that did not cast (bad rows, with reasons).
    Raises CastSchemaError when a declared column is absent (a nullable one is filled with NULL under on_missing
    null), or on extra columns under policy fail. An empty chunk never fails for a missing column."""
    policy, on_missing = ExtraColumnsPolicy(policy), MissingColumnsPolicy(on_missing)
    source = table.column_names
    wanted = {c.source_column for c in columns}
    extra = [n for n in source if n not in wanted and not n.startswith("_sluice_")]
    absent = [spec for spec in columns if spec.source_column not in source]
    refused = [s for s in absent if not s.nullable or on_missing is MissingColumnsPolicy.fail]
    if refused and table.num_rows:  # before the extra-column check: a renamed column is both, and this names it
        raise CastSchemaError(_missing_message(refused, source, extra))
    if extra and policy is ExtraColumnsPolicy.fail:
        raise CastSchemaError(
            f"the source has columns that target.columns does not declare: {', '.join(extra)} "
            "(on_extra_columns: fail). Declare them, or set on_extra_columns to ignore or evolve."
        )
    clash = [n for n in extra if n in {c.name for c in columns}]
    if clash and policy is ExtraColumnsPolicy.evolve:
        raise CastSchemaError(
            f"undeclared source column(s) {', '.join(clash)} would be added under a name a declared "
            "column already uses (it reads another source column via source_name); rename one."
        )
    n = table.num_rows
    names, values, missing = [], [], []
    failures: list[tuple[str, str, Failures]] = []
    for spec in columns:
        if spec.source_column not in source:
            missing.append(spec.name)
            names.append(spec.name)
            values.append(pa.nulls(n, spec.arrow_type))
            continue
        arr, fails = cast_column(table[spec.source_column], spec)
        names.append(spec.name)
        values.append(arr)
        if fails:
            failures.append((spec.name, spec.source_column, fails))
    if policy is ExtraColumnsPolicy.evolve:
        for name in extra:
            arr = _evolved(table[name])
            if pa.types.is_string(arr.type) and (nul := nul_failures(arr)) and any_true(nul[0][0]):
                failures.append((name, name, nul))
            names.append(name)
            values.append(arr)
    good = pa.Table.from_arrays(values, names=names)
    if not failures:
        return CastResult(good, _bad_rows(table, [], []), extra, missing, pa.array(np.arange(n, dtype=np.int64)))
    bad_mask = pa.repeat(False, n)
    for _, _, fails in failures:
        for mask, _ in fails:
            bad_mask = pc.or_(bad_mask, mask)
    good_index = pc.cast(pc.indices_nonzero(pc.invert(bad_mask)), pa.int64())
    bad_index = pc.cast(pc.indices_nonzero(bad_mask), pa.int64()).to_pylist()
    good = good.filter(pc.invert(bad_mask))  # filter, not take: much cheaper for a dense selection
    return CastResult(good, _bad_rows(table, bad_index, failures), extra, missing, good_index)


def raw_strings(column: pa.ChunkedArray | pa.Array, rows: pa.Array) -> pa.Array:
    """The given rows of a source column as strings (view types have no take kernel: they are cast first)."""
    t = column.type
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        column = column.cast(pa.string() if pa.types.is_string_view(t) else pa.binary())
    return to_strings(column.take(rows))


def _short(value: str | None) -> str | None:
    return value if value is None or len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "…"


def _bad_rows(table: pa.Table, rows: list[int], failures: list[tuple[str, str, Failures]]) -> pa.Table:
    """Raw values (as strings) of the failing rows, their position in the chunk, and a JSON list of reasons."""
    reasons: dict[int, list[dict]] = {row: [] for row in rows}
    for column, source_column, fails in failures:
        for mask, reason in fails:
            idx = pc.indices_nonzero(mask)
            raw = raw_strings(table[source_column], idx).to_pylist()
            for row, value in zip(idx.to_pylist(), raw, strict=True):
                reasons[row].append({"column": column, "value": _short(value), "reason": reason})
    take = pa.array(rows, pa.int64())
    cols = {name: raw_strings(table[name], take) for name in table.column_names}
    cols[BAD_ROW] = take
    cols[BAD_REASONS] = pa.array([json.dumps(reasons[r], ensure_ascii=False) for r in rows], pa.string())
    return pa.table(cols)
