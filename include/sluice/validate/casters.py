"""The per-type casters of cast.py: one function per declared column type, looked up in CASTERS. The numeric and
boolean casters live in casters_numeric.py, the date and time ones in casters_temporal.py, the helpers they share in
vectors.py; text and jsonb are here.

A caster takes one source column and returns the values in the declared Arrow type (NULL where a value did not cast)
plus (mask, reason) pairs naming the values that failed. Per-row Python runs only on failing rows and in three narrow
cases: jsonb text (each value is parsed by json.loads), numeric strings with an exponent or over 38 digits, and any
value Arrow refuses although the checks passed (found by bisection, O(k log n) casts).

Conventions (PostgreSQL's unless said otherwise): surrounding whitespace is ignored and an empty string is NULL for
every type but text; numeric rounds half away from zero to its scale and fails only when the integer part is too
long; naive timestamps are UTC, and a string with an offset given to a `timestamp` column is converted to UTC
(PostgreSQL would drop the offset silently); a date column accepts a timestamp only at midnight.

What PostgreSQL would refuse at COPY time fails here, per value, so one bad value costs one quarantined row and not
the chunk: NUL in text, \\u0000 and lone surrogate escapes in jsonb, NaN/Infinity for numeric(p,s), and dates and
timestamps outside years 1..9999 (out_of_range, applied by cast.cast_column to every temporal column).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.config import ColumnType
from sluice.validate.casters_numeric import boolean, double, integer, numeric
from sluice.validate.casters_temporal import date, out_of_range, timestamp
from sluice.validate.vectors import Failures, any_true, as_mask, cast_or_null, flags, keep, plain_array, to_strings

__all__ = [
    "CASTERS",
    "Failures",
    "any_true",
    "as_mask",
    "nul_failures",
    "optimistic_cast",
    "out_of_range",
    "plain_array",
    "to_strings",
]

_NUL_REASON = "contains a NUL character (\\x00), which PostgreSQL cannot store in text"


def _may_hold_nul(values: pa.Array) -> bool:
    """Whether the bytes of a string array's values contain a zero byte: one memchr over the data buffer (the exact
    per-value search costs ~35 ms per million short strings; this, ~1 ms). A zero byte under a NULL slot is a false
    positive, never a false negative."""
    offsets, data = values.buffers()[1:3]
    if data is None or not len(values):
        return False
    width = np.int64 if pa.types.is_large_string(values.type) else np.int32
    bounds = np.frombuffer(offsets, dtype=width)[[values.offset, values.offset + len(values)]]
    return data.slice(int(bounds[0]), int(bounds[1] - bounds[0])).to_pybytes().find(b"\x00") >= 0


def nul_failures(values: pa.Array) -> Failures:
    """Strings holding a NUL character, which PostgreSQL text cannot store (COPY would refuse the whole chunk)."""
    if not _may_hold_nul(values):
        return []
    return [(as_mask(pc.match_substring(values, "\x00")), _NUL_REASON)]


def _text(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    failures: Failures = []
    if pa.types.is_binary(arr.type):
        values, bad = cast_or_null(arr, target)
        failures.append((bad, "not valid UTF-8"))
    else:
        values = to_strings(arr)
    nul = nul_failures(values)
    return (keep(pc.invert(nul[0][0]), values) if nul else values), failures + nul


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _jsonb(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    """JSON text is parsed once per value (no vectorised JSON validator in Arrow); other values are serialised.
    Valid JSON that PostgreSQL's jsonb refuses fails too: the escape \\u0000 (an escaped backslash before it is
    fine) and a lone UTF-16 surrogate escape such as \\ud800 (json.loads accepts both)."""
    bad: list[int] = []
    if not pa.types.is_string(arr.type):
        arr = pa.array(
            [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in arr.to_pylist()], target
        )
    else:
        for i, value in enumerate(arr.to_pylist()):
            if value is not None:
                try:
                    json.loads(value, parse_constant=_reject_constant)
                except ValueError:
                    bad.append(i)
    invalid = flags(len(arr), bad)
    nul = as_mask(pc.match_substring(arr, "\\u0000"))
    if any_true(nul):  # the cheap search first; the escape counts only after an even run of backslashes
        nul = pc.and_(as_mask(pc.match_substring_regex(arr, r"(^|[^\\])(\\\\)*\\u0000")), pc.invert(invalid))
    failures: Failures = [
        (invalid, "not valid JSON"),
        (nul, "contains \\u0000 (NUL), which PostgreSQL jsonb cannot store"),
    ]
    maybe = pc.and_(as_mask(pc.match_substring_regex(arr, r"(?i)\\ud[89a-f]")), pc.invert(pc.or_(nul, invalid)))
    if any_true(maybe):  # rare: decide in Python (a valid pair decodes to one character, a lone half cannot encode)
        lone = []
        for i in pc.indices_nonzero(maybe).to_pylist():
            try:
                json.dumps(json.loads(arr[i].as_py()), ensure_ascii=False).encode("utf-8")
            except (ValueError, UnicodeEncodeError):
                lone.append(i)
        failures.append((flags(len(arr), lone), "has a lone UTF-16 surrogate escape, which PostgreSQL jsonb refuses"))
    failures = [(m, r) for m, r in failures if any_true(m)]
    if not failures:
        return arr, []
    failed = failures[0][0]
    for mask, _ in failures[1:]:
        failed = pc.or_(failed, mask)
    return keep(pc.invert(failed), arr), failures


def optimistic_cast(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> pa.Array | None:
    """The happy path for strings: one Arrow cast straight to the declared type (Arrow checks integer ranges and
    decimal precision). Arrow accepts a subset of what the careful casters accept, with the same result, so any
    refusal (a bad value, whitespace, an offset, rounding needed) just means: take the careful path."""
    if not pa.types.is_string(arr.type) or ct.name not in _OPTIMISTIC:
        return None
    try:
        values = pc.cast(arr, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return None if ct.name == "double" and any_true(pc.is_inf(values)) else values


_OPTIMISTIC = frozenset({"smallint", "integer", "bigint", "numeric", "double", "date", "timestamp", "timestamptz"})

CASTERS: dict[str, Callable[[pa.Array, ColumnType, pa.DataType], tuple[pa.Array, Failures]]] = {
    "smallint": integer,
    "integer": integer,
    "bigint": integer,
    "numeric": numeric,
    "double": double,
    "boolean": boolean,
    "text": _text,
    "date": date,
    "timestamp": timestamp,
    "timestamptz": timestamp,
    "jsonb": _jsonb,
}
