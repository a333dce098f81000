"""JSON records -> Arrow record batches of string columns, for the sources that read JSON (http; jsonl may share it).

Columns are raw and all strings: a JSON string as is, numbers and booleans as their JSON text, objects and arrays
as compact JSON text (what the casting stage casts to jsonb), null as null. One type per column whatever a page
holds, so there is no int-on-page-1, float-on-page-2 schema clash; the casting stage parses strings for every
source anyway. Records that are not JSON objects go to on_reject (never dropped).
"""

from __future__ import annotations

import json
import json.encoder
import operator
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sluice.sources.base import OnReject, Reject

try:  # optional speed-up (see loads); the results are the same without it
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]  # the optional module's name is None when it is absent


def _no_default(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Re-encoding nested values is, after parsing, the source's largest cost. orjson does both 3-10x faster than the
# stdlib; without it, the stdlib's C encoder made once is still 4x faster than json.dumps (which builds one per call).
_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # CPython's C encoder (typeshed does not list it)
_C_ENCODER = _MAKE_ENCODER and _MAKE_ENCODER(
    None, _no_default, json.encoder.encode_basestring, None, ":", ",", False, False, True
)
_DIGITS = bytes(0x31 if 0x30 <= i <= 0x39 else 0x30 for i in range(256))
_LONG_INTEGER = b"1" * 19


def loads(content: bytes) -> Any:
    """Parse a body: orjson, unless it holds a run of 19+ digits (orjson turns integers beyond 64 bits into floats,
    the stdlib keeps them exact; the check is one C translate + find) or orjson refuses it (then the stdlib's error,
    with line, column and position, is the one reported)."""
    if orjson is not None and _LONG_INTEGER not in content.translate(_DIGITS):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return json.loads(content)


def json_text(value: Any) -> str:
    """Compact JSON text of a value, non-ASCII kept (what the casting stage casts to jsonb)."""
    if orjson is not None:
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError:  # an integer beyond 64 bits: the stdlib encoder keeps it exact
            pass
    if _C_ENCODER is not None:
        return "".join(_C_ENCODER(value, 0))
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Columnizer:
    """JSON records -> a RecordBatch of string columns (see the module docstring for the rendering)."""

    _ARROW_TO_TEXT = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_null)

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}  # column -> "text" | "arrow" | "python", learned from the previous page

    def _column(self, name: str, values: Sequence[Any]) -> pa.Array:
        kind = self.kinds.get(name, "text")
        if kind == "text":  # all strings (the common case): no inference, no cast
            try:
                return pa.array(values, pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                kind = "arrow"
        if kind == "arrow":  # numbers and booleans: Arrow infers and renders them as text in C++
            try:
                arr = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                arr = None
            if arr is not None and any(check(arr.type) for check in self._ARROW_TO_TEXT):
                self.kinds[name] = "arrow"
                return pc.cast(arr, pa.string())
            if arr is not None and pa.types.is_string(arr.type):
                self.kinds[name] = "text"
                return arr
        self.kinds[name] = "python"  # nested or mixed values
        return pa.array([v if v is None or type(v) is str else json_text(v) for v in values], pa.string())

    def batch(self, records: list[Any], url: str, first_index: int, on_reject: OnReject) -> pa.RecordBatch | None:
        """The records' string columns; `self.lines` holds each row's record number on its page (1-based)."""
        rows = records
        self.lines: list[int] | int = first_index + 1
        if set(map(type, records)) != {dict}:
            rows, self.lines = [], []
            for i, r in enumerate(records):
                if type(r) is dict and r:
                    rows.append(r)
                    self.lines.append(first_index + i + 1)
                else:
                    what = "an empty object" if type(r) is dict else f"a JSON {type(r).__name__}, not an object"
                    on_reject(Reject(file=url, line=first_index + i + 1, raw=json_text(r), reason=f"record is {what}"))
        if not rows:
            return None
        names, columns = _uniform_columns(rows)
        if columns is None:  # records disagree on their keys: the union, in order of first appearance
            union: dict[str, None] = {}
            for r in rows:
                union.update(dict.fromkeys(r))
            names = list(union)
            columns = [[r.get(name) for r in rows] for name in names]
        arrays = [self._column(name, values) for name, values in zip(names, columns, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, names=names)


def _uniform_columns(rows: list[dict]) -> tuple[list[str], list[Sequence[Any]] | None]:
    """Columns transposed in C (itemgetter + zip) when every record has exactly the first record's keys: the
    common case, and 3x cheaper than one Python comprehension per column. None when the keys differ."""
    names = list(rows[0])
    if set(map(len, rows)) != {len(names)}:
        return names, None
    getter = operator.itemgetter(*names)
    try:
        return names, (list(zip(*map(getter, rows), strict=True)) if len(names) > 1 else [tuple(map(getter, rows))])
    except KeyError:
        return names, None
