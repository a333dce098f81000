"""The casters of the numeric and boolean column types (smallint, integer, bigint, numeric(p,s), double, boolean);
their conventions are in casters.py."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

from sluice.config import ColumnType
from sluice.validate.vectors import Failures, any_true, as_mask, cast_or_null, flags, keep, outside, text_in

_INT_RANGE = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
_TRUE = ["true", "t", "yes", "y", "on", "1"]
_FALSE = ["false", "f", "no", "n", "off", "0"]
_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)$"
_FLOAT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_NON_FINITE = r"(?i)^[+-]?(nan|inf|infinity)$"


def integer(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    lo, hi = _INT_RANGE[ct.name]
    t = arr.type
    if pa.types.is_boolean(t):
        return pc.cast(arr, target), []
    if pa.types.is_floating(t):
        whole = as_mask(pc.and_(pc.is_finite(arr), pc.equal(arr, pc.trunc(arr))))
        out = pc.and_(whole, as_mask(pc.or_(pc.less(arr, float(lo)), pc.greater_equal(arr, float(hi + 1)))))
        values = pc.cast(keep(pc.and_(whole, pc.invert(out)), arr), target, safe=False)
        not_int = pc.and_(pc.is_valid(arr), pc.invert(whole))
        return values, [(not_int, "not an integer"), (out, f"out of range for {ct}")]
    if pa.types.is_decimal(t):
        whole = as_mask(pc.equal(arr, pc.round(arr, 0)))
        not_int = pc.and_(pc.is_valid(arr), pc.invert(whole))
        arr, failures = cast_or_null(keep(whole, arr), pa.decimal128(38, 0))[0], [(not_int, "not an integer")]
    elif not pa.types.is_integer(t):  # text: exact through decimal128(38, 0), then the range check below
        s = pc.replace_substring_regex(text_in(arr), r"\.0*$", "")
        syntax = as_mask(pc.match_substring_regex(s, r"^[+-]?\d+$"))
        fits = as_mask(pc.match_substring_regex(s, r"^[+-]?\d{1,38}$"))
        failures = [
            (pc.and_(pc.is_valid(s), pc.invert(syntax)), "not an integer"),
            (pc.and_(syntax, pc.invert(fits)), f"out of range for {ct}"),
        ]
        arr = pc.cast(keep(fits, s), pa.decimal128(38, 0))
    else:
        failures = []
    out = outside(arr, lo, hi)
    failures.append((out, f"out of range for {ct}"))
    return pc.cast(keep(pc.invert(out), arr), target), failures


def numeric(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    p, s = ct.precision, ct.scale
    if p is None or s is None:  # ColumnType.parse gives every numeric both
        raise ValueError(f"{ct}: a numeric column needs a precision and a scale")
    overflow = f"numeric field overflow: numeric({p},{s}) holds absolute values below 10^{p - s}"
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return _fit_decimal(pc.cast(arr, pa.decimal128(38, 0)), p, s, target, overflow, [])
    if pa.types.is_decimal(t):
        return _fit_decimal(arr, p, s, target, overflow, [])
    text = text_in(arr)  # floats too: their shortest repr ("1.005") rounds as PostgreSQL's float8 -> numeric does
    plain = as_mask(pc.match_substring_regex(text, _DECIMAL))
    digits = pc.utf8_ltrim(pc.replace_substring_regex(text, r"^[+-]", ""), characters="0")
    point = pc.find_substring(digits, ".")
    length = pc.utf8_length(digits)
    int_len = pc.if_else(pc.less(point, 0), length, point)
    frac_len = pc.if_else(pc.less(point, 0), 0, pc.subtract(pc.subtract(length, point), 1))
    too_big = pc.and_(plain, as_mask(pc.greater(int_len, p - s)))
    room = 37 - (p - s)
    fast = pc.and_(pc.and_(plain, pc.invert(too_big)), as_mask(pc.less_equal(frac_len, room)))
    scale = max(s, min(room, int(pc.max(keep(fast, frac_len)).as_py() or 0)))
    parsed, _ = cast_or_null(keep(fast, text), pa.decimal128(38, scale))
    values, failures = _fit_decimal(parsed, p, s, target, overflow, [(too_big, overflow)])
    slow = pc.and_(pc.is_valid(text), pc.invert(pc.or_(fast, too_big)))
    if any_true(slow):  # exponents, non-finite floats, long fractions: exact with Python's decimal, row by row
        idx = pc.indices_nonzero(slow)
        fixed, reasons = zip(*(_py_numeric(v, p, s) for v in text.take(idx).to_pylist()), strict=True)
        values = pc.replace_with_mask(values, slow, pa.array(fixed, target))
        for reason in set(reasons) - {None}:
            flagged = [i for i, r in zip(idx.to_pylist(), reasons, strict=True) if r == reason]
            failures.append((flags(len(arr), flagged), reason if reason != "overflow" else overflow))
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
    d, too_long = cast_or_null(d, pa.decimal128(38, s))
    if p < 38:
        bound = pa.scalar(Decimal(10) ** (p - s), pa.decimal128(38, s))
        too_long = pc.or_(too_long, as_mask(pc.greater_equal(pc.abs(d), bound)))
    return pc.cast(keep(pc.invert(too_long), d), target), [*failures, (too_long, overflow)]


def double(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        return pc.cast(arr, target, safe=False), []
    text = text_in(arr)
    special = as_mask(pc.match_substring_regex(text, _NON_FINITE))
    syntax = pc.or_(as_mask(pc.match_substring_regex(text, _FLOAT)), special)
    values, refused = cast_or_null(keep(syntax, text), target)
    bad = pc.or_(pc.and_(pc.is_valid(text), pc.invert(syntax)), refused)
    huge = pc.and_(as_mask(pc.is_inf(values)), pc.invert(special))  # "1e999": PostgreSQL says out of range
    return keep(pc.invert(huge), values), [(bad, "not a number"), (huge, "out of range for double precision")]


def boolean(arr: pa.Array, ct: ColumnType, target: pa.DataType) -> tuple[pa.Array, Failures]:
    if pa.types.is_boolean(arr.type):
        return arr, []
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        ok = as_mask(pc.is_in(arr, value_set=pa.array([0, 1]).cast(arr.type)))
        bad = pc.and_(pc.is_valid(arr), pc.invert(ok))
        return pc.cast(keep(ok, arr), target), [(bad, "not a boolean (expected 0 or 1)")]
    text = pc.utf8_lower(text_in(arr))
    true = as_mask(pc.is_in(text, value_set=pa.array(_TRUE)))
    false = as_mask(pc.is_in(text, value_set=pa.array(_FALSE)))
    values = keep(pc.or_(true, false), true)
    bad = pc.and_(pc.is_valid(text), pc.is_null(values))
    return values, [(bad, "not a boolean (expected true/false, t/f, yes/no, y/n, on/off or 1/0)")]
