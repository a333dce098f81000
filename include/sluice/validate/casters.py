"""The per-type casters of casting.py: one function per declared column type, and the vectorised helpers they share.

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
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.config import ColumnType

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

_INT_RANGE = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
_TRUE = ["true", "t", "yes", "y", "on", "1"]
_FALSE = ["false", "f", "no", "n", "off", "0"]
_MONTH_DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
_DAY = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_TIME = r"[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?"
_OFFSET = r"(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)"
_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)$"
_FLOAT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_NON_FINITE = r"(?i)^[+-]?(nan|inf|infinity)$"
_NUL_REASON = "contains a NUL character (\\x00), which PostgreSQL cannot store in text"
_FIRST_DAY, _PAST_LAST_DAY = -719_162, 2_932_897  # 0001-01-01 and 10000-01-01, in days since 1970-01-01
_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}

Failures = list[tuple[pa.BooleanArray, str]]


# ---------------------------------------------------------------- small vectorised helpers


def as_mask(values: pa.Array) -> pa.BooleanArray:
    """A comparison's result as a mask: NULL counts as false."""
    return pc.fill_null(values, False)


def any_true(mask: pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def _keep(mask: pa.Array, values: pa.Array) -> pa.Array:
    """values where mask, else NULL."""
    return pc.if_else(as_mask(mask), values, pa.scalar(None, values.type))


def _flags(n: int, rows: list[int] | pa.Array) -> pa.BooleanArray:
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


def _cast_or_null(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.BooleanArray]:
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
    return pa.concat_arrays(pieces), _flags(len(arr), failed)


def _text_in(arr: pa.Array) -> pa.Array:
    """Strings prepared for parsing into a non-text type: trimmed, empty -> NULL."""
    s = pc.utf8_trim_whitespace(to_strings(arr))
    return _keep(pc.not_equal(s, ""), s)


def _outside(values: pa.Array, lo: int, hi: int) -> pa.BooleanArray:
    """values < lo or > hi, for any integer or decimal array (bounds the type cannot hold are skipped)."""
    out = pa.repeat(False, len(values))
    for bound, op in ((lo, pc.less), (hi, pc.greater)):
        try:
            out = pc.or_(out, as_mask(op(values, pa.scalar(bound).cast(values.type))))
        except (pa.ArrowInvalid, OverflowError):  # the bound lies beyond the type: no value can cross it
            continue
    return out


# ---------------------------------------------------------------- one function per declared type


def _integer(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    lo, hi = _INT_RANGE[ct.name]
    t = arr.type
    if pa.types.is_boolean(t):
        return pc.cast(arr, target), []
    if pa.types.is_floating(t):
        whole = as_mask(pc.and_(pc.is_finite(arr), pc.equal(arr, pc.trunc(arr))))
        out = pc.and_(whole, as_mask(pc.or_(pc.less(arr, float(lo)), pc.greater_equal(arr, float(hi + 1)))))
        values = pc.cast(_keep(pc.and_(whole, pc.invert(out)), arr), target, safe=False)
        not_int = pc.and_(pc.is_valid(arr), pc.invert(whole))
        return values, [(not_int, "not an integer"), (out, f"out of range for {ct}")]
    if pa.types.is_decimal(t):
        whole = as_mask(pc.equal(arr, pc.round(arr, 0)))
        not_int = pc.and_(pc.is_valid(arr), pc.invert(whole))
        arr, failures = _cast_or_null(_keep(whole, arr), pa.decimal128(38, 0))[0], [(not_int, "not an integer")]
    elif not pa.types.is_integer(t):  # text: exact through decimal128(38, 0), then the range check below
        s = pc.replace_substring_regex(_text_in(arr), r"\.0*$", "")
        syntax = as_mask(pc.match_substring_regex(s, r"^[+-]?\d+$"))
        fits = as_mask(pc.match_substring_regex(s, r"^[+-]?\d{1,38}$"))
        failures = [
            (pc.and_(pc.is_valid(s), pc.invert(syntax)), "not an integer"),
            (pc.and_(syntax, pc.invert(fits)), f"out of range for {ct}"),
        ]
        arr = pc.cast(_keep(fits, s), pa.decimal128(38, 0))
    else:
        failures = []
    out = _outside(arr, lo, hi)
    failures.append((out, f"out of range for {ct}"))
    return pc.cast(_keep(pc.invert(out), arr), target), failures


def _numeric(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    p, s = ct.precision, ct.scale
    overflow = f"numeric field overflow: numeric({p},{s}) holds absolute values below 10^{p - s}"
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return _fit_decimal(pc.cast(arr, pa.decimal128(38, 0)), p, s, target, overflow, [])
    if pa.types.is_decimal(t):
        return _fit_decimal(arr, p, s, target, overflow, [])
    text = _text_in(arr)  # floats too: their shortest repr ("1.005") rounds as PostgreSQL's float8 -> numeric does
    plain = as_mask(pc.match_substring_regex(text, _DECIMAL))
    digits = pc.utf8_ltrim(pc.replace_substring_regex(text, r"^[+-]", ""), characters="0")
    point = pc.find_substring(digits, ".")
    length = pc.utf8_length(digits)
    int_len = pc.if_else(pc.less(point, 0), length, point)
    frac_len = pc.if_else(pc.less(point, 0), 0, pc.subtract(pc.subtract(length, point), 1))
    too_big = pc.and_(plain, as_mask(pc.greater(int_len, p - s)))
    room = 37 - (p - s)
    fast = pc.and_(pc.and_(plain, pc.invert(too_big)), as_mask(pc.less_equal(frac_len, room)))
    scale = max(s, min(room, int(pc.max(_keep(fast, frac_len)).as_py() or 0)))
    parsed, _ = _cast_or_null(_keep(fast, text), pa.decimal128(38, scale))
    values, failures = _fit_decimal(parsed, p, s, target, overflow, [(too_big, overflow)])
    slow = pc.and_(pc.is_valid(text), pc.invert(pc.or_(fast, too_big)))
    if any_true(slow):  # exponents, non-finite floats, long fractions: exact with Python's decimal, row by row
        idx = pc.indices_nonzero(slow)
        fixed, reasons = zip(*(_py_numeric(v, p, s) for v in text.take(idx).to_pylist()), strict=True)
        values = pc.replace_with_mask(values, slow, pa.array(fixed, target))
        for reason in set(reasons) - {None}:
            flagged = [i for i, r in zip(idx.to_pylist(), reasons, strict=True) if r == reason]
            failures.append((_flags(len(arr), flagged), reason if reason != "overflow" else overflow))
    return values, failures


def _py_numeric(text: str, p: int, s: int) -> tuple[Decimal | None, str | None]:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None, "not a number"
    if not value.is_finite():
        return None, "not a finite number (NaN and Infinity do not fit numeric)"
    value = value.quantize(Decimal(1).scaleb(-s), rounding=ROUND_HALF_UP)
    return (None, "overflow") if abs(value) >= Decimal(10) ** (p - s) else (value, None)


def _fit_decimal(
    d: pa.Array, p: int, s: int, target: pa.DataType, overflow: str, failures: Failures
) -> tuple[pa.Array, Failures]:
    """Round to scale s (half away from zero), then flag values whose integer part is too long for numeric(p,s)."""
    if d.type.scale > s:
        d = pc.round(d, ndigits=s, round_mode="half_towards_infinity")
    d, too_long = _cast_or_null(d, pa.decimal128(38, s))
    if p < 38:
        bound = pa.scalar(Decimal(10) ** (p - s), pa.decimal128(38, s))
        too_long = pc.or_(too_long, as_mask(pc.greater_equal(pc.abs(d), bound)))
    return pc.cast(_keep(pc.invert(too_long), d), target), [*failures, (too_long, overflow)]


def _double(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        return pc.cast(arr, target, safe=False), []
    text = _text_in(arr)
    special = as_mask(pc.match_substring_regex(text, _NON_FINITE))
    syntax = pc.or_(as_mask(pc.match_substring_regex(text, _FLOAT)), special)
    values, refused = _cast_or_null(_keep(syntax, text), target)
    bad = pc.or_(pc.and_(pc.is_valid(text), pc.invert(syntax)), refused)
    huge = pc.and_(as_mask(pc.is_inf(values)), pc.invert(special))  # "1e999": PostgreSQL says out of range
    return _keep(pc.invert(huge), values), [(bad, "not a number"), (huge, "out of range for double precision")]


def _boolean(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    if pa.types.is_boolean(arr.type):
        return arr, []
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        ok = as_mask(pc.is_in(arr, value_set=pa.array([0, 1]).cast(arr.type)))
        bad = pc.and_(pc.is_valid(arr), pc.invert(ok))
        return pc.cast(_keep(ok, arr), target), [(bad, "not a boolean (expected 0 or 1)")]
    text = pc.utf8_lower(_text_in(arr))
    true = as_mask(pc.is_in(text, value_set=pa.array(_TRUE)))
    false = as_mask(pc.is_in(text, value_set=pa.array(_FALSE)))
    values = _keep(pc.or_(true, false), true)
    bad = pc.and_(pc.is_valid(text), pc.is_null(values))
    return values, [(bad, "not a boolean (expected true/false, t/f, yes/no, y/n, on/off or 1/0)")]


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
        values, bad = _cast_or_null(arr, target)
        failures.append((bad, "not valid UTF-8"))
    else:
        values = to_strings(arr)
    nul = nul_failures(values)
    return (_keep(pc.invert(nul[0][0]), values) if nul else values), failures + nul


def _temporal_in(arr: pa.Array) -> pa.Array:
    """Typed date/time input as naive UTC timestamp[us] (tz-aware values are converted, ns truncated)."""
    if pa.types.is_date(arr.type):
        return pc.cast(arr, pa.timestamp("us"))
    return pc.cast(pc.cast(arr, pa.timestamp(arr.type.unit, "UTC")), pa.timestamp("us"), safe=False)


def _real_days(text: pa.Array, syntax: pa.BooleanArray) -> pa.BooleanArray:
    """syntax, minus days the calendar lacks (2023-02-29, 2024-04-31), which the regex cannot tell: month lengths
    are checked with integer arithmetic on the few strings whose day is 29-31 (no bisection, no per-row Python)."""
    late = pc.and_(syntax, as_mask(pc.match_substring_regex(text, r"^\d{4}-\d{2}-(29|3[01])")))
    if not any_true(late):
        return syntax
    part = text.filter(late)
    y, m, d = (pc.cast(pc.utf8_slice_codeunits(part, a, b), pa.int32()) for a, b in ((0, 4), (5, 7), (8, 10)))

    def divisible(k: int) -> pa.BooleanArray:
        return pc.equal(pc.multiply(pc.divide(y, k), k), y)

    leap = pc.or_(pc.and_(divisible(4), pc.invert(divisible(100))), divisible(400))
    length = pc.add(pc.take(pa.array(_MONTH_DAYS, pa.int32()), m), pc.cast(pc.and_(pc.equal(m, 2), leap), pa.int32()))
    wrong = pc.indices_nonzero(late).filter(pc.greater(d, length))
    return pc.and_(syntax, pc.invert(_flags(len(text), wrong)))


def _parse_timestamps(text: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.BooleanArray]:
    """ISO-8601 strings -> target; naive strings are UTC; fractions beyond microseconds are truncated."""
    text = pc.replace_substring_regex(text, r"(\.\d{6})\d+", r"\1")
    syntax = as_mask(pc.match_substring_regex(text, rf"^{_DAY}({_TIME}{_OFFSET}?)?$"))
    syntax = _real_days(text, syntax)
    zoned = as_mask(pc.match_substring_regex(text, rf"{_TIME}{_OFFSET}$"))
    naive, bad_naive = _cast_or_null(_keep(pc.and_(syntax, pc.invert(zoned)), text), pa.timestamp("us"))
    aware, bad_aware = _cast_or_null(_keep(zoned, text), pa.timestamp("us", "UTC"))
    values = pc.if_else(zoned, pc.cast(aware, target), pc.cast(naive, target))
    bad = pc.or_(pc.or_(pc.and_(pc.is_valid(text), pc.invert(syntax)), bad_naive), bad_aware)
    return values, bad


def _timestamp(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        return pc.cast(_temporal_in(arr), target), []
    values, bad = _parse_timestamps(_text_in(arr), target)
    return values, [(bad, "not a timestamp (expected ISO 8601, e.g. 2024-01-31T12:00:00 or with +02:00 / Z)")]


def _date(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    reason = "not a date (expected YYYY-MM-DD)"
    if pa.types.is_date(arr.type):
        return pc.cast(arr, target), []
    if pa.types.is_timestamp(arr.type):
        ts = _temporal_in(arr)
        days = pc.cast(ts, target)
        midnight = as_mask(pc.equal(pc.cast(days, pa.timestamp("us")), ts))
        return _keep(midnight, days), [(pc.and_(pc.is_valid(ts), pc.invert(midnight)), f"{reason}: has a time")]
    text = pc.replace_substring_regex(_text_in(arr), r"[T ]00:00(:00(\.0+)?)?$", "")
    syntax = _real_days(text, as_mask(pc.match_substring_regex(text, rf"^{_DAY}$")))
    values, refused = _cast_or_null(_keep(syntax, text), target)
    return values, [(pc.or_(pc.and_(pc.is_valid(text), pc.invert(syntax)), refused), reason)]


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
    invalid = _flags(len(arr), bad)
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
        failures.append((_flags(len(arr), lone), "has a lone UTF-16 surrogate escape, which PostgreSQL jsonb refuses"))
    failures = [(m, r) for m, r in failures if any_true(m)]
    if not failures:
        return arr, []
    failed = failures[0][0]
    for mask, _ in failures[1:]:
        failed = pc.or_(failed, mask)
    return _keep(pc.invert(failed), arr), failures


def out_of_range(values: pa.Array, ct: ColumnType) -> Failures:
    """Dates and timestamps (any Arrow date or timestamp type, compared on their integer storage, so no cast can
    overflow first) outside 0001-01-01 .. 9999-12-31. PostgreSQL's range is wider (4713 BC to 5874897 AD for date,
    294276 AD for timestamps) but its ISO input has no year 0 or negative years, which is how the load's CSV writer
    would spell them; beyond 9999 Python cannot hold the value (column stats, quarantine) and the writer misprints
    years over 32767. Source text can only spell 4-digit years anyway."""
    t = values.type
    if not ct.is_temporal or not (pa.types.is_date(t) or pa.types.is_timestamp(t)) or values.null_count == len(values):
        return []
    if pa.types.is_date32(t):
        per_day, storage = 1, pa.int32()
    else:
        per_day, storage = 86_400 * _PER_SECOND["ms" if pa.types.is_date64(t) else t.unit], pa.int64()
    lo, hi = _FIRST_DAY * per_day, _PAST_LAST_DAY * per_day - 1
    raw = values.view(storage)
    out = pa.repeat(False, len(values))
    if lo >= -(2**63):
        out = pc.or_(out, as_mask(pc.less(raw, pa.scalar(lo, storage))))
    if hi < 2**63:
        out = pc.or_(out, as_mask(pc.greater(raw, pa.scalar(hi, storage))))
    return [(out, f"out of range for {ct}: Sluice loads 0001-01-01 to 9999-12-31 (PostgreSQL has no year 0)")]


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
    "smallint": _integer,
    "integer": _integer,
    "bigint": _integer,
    "numeric": _numeric,
    "double": _double,
    "boolean": _boolean,
    "text": _text,
    "date": _date,
    "timestamp": _timestamp,
    "timestamptz": _timestamp,
    "jsonb": _jsonb,
}
