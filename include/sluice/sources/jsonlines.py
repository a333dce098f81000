"""JSON Lines from a byte stream, in bounded blocks: one object per line, each value as `string` (nested objects and
arrays as JSON text), blank lines skipped. Used by the S3 source (`format: jsonl`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from sluice.sources.base import OnReject, Reject, with_origin

JSON_READ_BYTES = 1 << 20


def _lines(stream: Any) -> Iterator[bytes]:
    """Lines of a byte stream, read in bounded blocks (no line-ending characters)."""
    tail = b""
    while block := stream.read(JSON_READ_BYTES):
        parts = (tail + block).split(b"\n")
        tail = parts.pop()
        yield from parts
    if tail:
        yield tail


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _to_batch(records: list[dict[str, object]], url: str, lines: list[int]) -> pa.RecordBatch:
    names: dict[str, None] = {}
    for rec in records:
        names.update(dict.fromkeys(rec))
    arrays = [pa.array([_as_text(rec.get(n)) for rec in records], type=pa.string()) for n in names]
    return with_origin(pa.RecordBatch.from_arrays(arrays, names=list(names)), url, lines)


def read_jsonl(stream: Any, url: str, rows: int, on_reject: OnReject) -> Iterator[pa.RecordBatch]:
    """Record batches of at most `rows` objects, every value as string; a line that is not a JSON object (or not
    UTF-8) goes to `on_reject` with its line number."""
    records: list[dict[str, object]] = []
    lines: list[int] = []
    for number, raw in enumerate(_lines(stream), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            on_reject(
                Reject(
                    file=url,
                    line=number,
                    raw=raw.decode("utf-8", "backslashreplace"),
                    reason=f"invalid UTF-8 at byte {exc.start}: JSON Lines must be UTF-8",
                )
            )
            continue
        except json.JSONDecodeError as exc:
            on_reject(Reject(file=url, line=number, raw=raw.decode("utf-8"), reason=f"invalid JSON: {exc}"))
            continue
        if not isinstance(record, dict):
            on_reject(
                Reject(
                    file=url,
                    line=number,
                    raw=raw.decode("utf-8"),
                    reason=f"not a JSON object but {type(record).__name__}",
                )
            )
            continue
        records.append(record)
        lines.append(number)
        if len(records) >= rows:
            yield _to_batch(records, url, lines)
            records, lines = [], []
    if records:
        yield _to_batch(records, url, lines)
