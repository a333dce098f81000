"""The small vectorised helpers the per-type casters share (masks, strings, a cast that flags what Arrow refuses)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# a caster's failures: (mask of the values that failed, the reason), one pair per reason
Failures = list[tuple[pa.BooleanArray, str]]


def as_mask(values: pa.Array) -> pa.BooleanArray:
    """A comparison's result as a mask: NULL counts as false."""
    return pc.fill_null(values, False)


def any_true(mask: pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def keep(mask: pa.Array, values: pa.Array) -> pa.Array:
    """values where mask, else NULL."""
    return pc.if_else(as_mask(mask), values, pa.scalar(None, values.type))


def flags(n: int, rows: list[int] | pa.Array) -> pa.BooleanArray:
    """A boolean mask of length n, true at the given row positions."""
    out = np.zeros(n, dtype=bool)
    out[np.asarray(rows, dtype=np.int64)] = True
    return pa.array(out)


def plain_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array in a classic type: no chunks, dictionaries, views, large strings or extensions."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if isinstance(arr.type, pa.ExtensionType):
        arr = arr.storage
    t = arr.type
    if pa.types.is_dictionary(t):
        return plain_array(arr.cast(t.value_type))
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return arr.cast(pa.string())
    if pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
        return arr.cast(pa.binary())
    return arr


def _py_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, default=str, ensure_ascii=False)


def to_strings(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Any column as strings (nested values as JSON, invalid UTF-8 replaced): how raw values are kept."""
    arr = plain_array(arr)
    if pa.types.is_string(arr.type):
        return arr
    try:
        return pc.cast(arr, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_py_text(v) for v in arr.to_pylist()], pa.string())


def cast_or_null(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.BooleanArray]:
    """Cast, turning the values Arrow refuses into NULL + a failure flag. One cast when all is well; otherwise
    bisection, so k bad values cost O(k log n) casts instead of a Python loop over every row."""
    try:  # an unsupported cast (ArrowNotImplementedError) is a bug, not bad data: it propagates
        return pc.cast(arr, target), pa.repeat(False, len(arr))
    except pa.ArrowInvalid:
        pass
    pieces: list[pa.Array] = []
    failed: list[int] = []

    def split(part: pa.Array, offset: int) -> None:
        try:
            pieces.append(pc.cast(part, target))
            return
        except pa.ArrowInvalid:
            if len(part) == 1:
                pieces.append(pa.nulls(1, target))
                failed.append(offset)
                return
        half = len(part) // 2
        split(part.slice(0, half), offset)
        split(part.slice(half), offset + half)

    split(arr, 0)
    return pa.concat_arrays(pieces), flags(len(arr), failed)


def text_in(arr: pa.Array) -> pa.Array:
    """Strings prepared for parsing into a non-text type: trimmed, empty -> NULL."""
    s = pc.utf8_trim_whitespace(to_strings(arr))
    return keep(pc.not_equal(s, ""), s)


def outside(values: pa.Array, lo: int, hi: int) -> pa.BooleanArray:
    """values < lo or > hi, for any integer or decimal array (bounds the type cannot hold are skipped)."""
    out = pa.repeat(False, len(values))
    for bound, op in ((lo, pc.less), (hi, pc.greater)):
        try:
            out = pc.or_(out, as_mask(op(values, pa.scalar(bound).cast(values.type))))
        except (pa.ArrowInvalid, OverflowError):  # the bound lies beyond the type: no value can cross it
            continue
    return out
