"""The casters of the date and time column types (date, timestamp, timestamptz) and the range every temporal
column is checked against (out_of_range); their conventions are in casters.py."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from sluice.config import ColumnType
from sluice.validate.vectors import Failures, any_true, as_mask, cast_or_null, flags, keep, text_in

_MONTH_DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
_DAY = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_TIME = r"[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?"
_OFFSET = r"(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)"
_FIRST_DAY, _PAST_LAST_DAY = -719_162, 2_932_897  # 0001-01-01 and 10000-01-01, in days since 1970-01-01
_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


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
    return pc.and_(syntax, pc.invert(flags(len(text), wrong)))


def _parse_timestamps(text: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.BooleanArray]:
    """ISO-8601 strings -> target; naive strings are UTC; fractions beyond microseconds are truncated."""
    text = pc.replace_substring_regex(text, r"(\.\d{6})\d+", r"\1")
    syntax = as_mask(pc.match_substring_regex(text, rf"^{_DAY}({_TIME}{_OFFSET}?)?$"))
    syntax = _real_days(text, syntax)
    zoned = as_mask(pc.match_substring_regex(text, rf"{_TIME}{_OFFSET}$"))
    naive, bad_naive = cast_or_null(keep(pc.and_(syntax, pc.invert(zoned)), text), pa.timestamp("us"))
    aware, bad_aware = cast_or_null(keep(zoned, text), pa.timestamp("us", "UTC"))
    values = pc.if_else(zoned, pc.cast(aware, target), pc.cast(naive, target))
    bad = pc.or_(pc.or_(pc.and_(pc.is_valid(text), pc.invert(syntax)), bad_naive), bad_aware)
    return values, bad


def timestamp(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        return pc.cast(_temporal_in(arr), target), []
    values, bad = _parse_timestamps(text_in(arr), target)
    return values, [(bad, "not a timestamp (expected ISO 8601, e.g. 2024-01-31T12:00:00 or with +02:00 / Z)")]


def date(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    reason = "not a date (expected YYYY-MM-DD)"
    if pa.types.is_date(arr.type):
        return pc.cast(arr, target), []
    if pa.types.is_timestamp(arr.type):
        ts = _temporal_in(arr)
        days = pc.cast(ts, target)
        midnight = as_mask(pc.equal(pc.cast(days, pa.timestamp("us")), ts))
        return keep(midnight, days), [(pc.and_(pc.is_valid(ts), pc.invert(midnight)), f"{reason}: has a time")]
    text = pc.replace_substring_regex(text_in(arr), r"[T ]00:00(:00(\.0+)?)?$", "")
    syntax = _real_days(text, as_mask(pc.match_substring_regex(text, rf"^{_DAY}$")))
    values, refused = cast_or_null(keep(syntax, text), target)
    return values, [(pc.or_(pc.and_(pc.is_valid(text), pc.invert(syntax)), refused), reason)]


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
