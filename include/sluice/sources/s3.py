"""S3 source: the files under an interval-templated prefix, streamed as Arrow record batches.

Credentials and the endpoint come from the Airflow AWS connection (`S3Hook`); listing goes through the hook, and the
bytes are read with pyarrow's S3 filesystem, which gives ranged reads (Parquet row groups) and streaming decompression
(gzip), so no file is ever held whole in memory.

What the reader yields, per format:
- parquet: the file's own columns and types, by record batches of at most `batch_rows(cfg)` rows.
- csv: every column as `string` (the cast to declared types happens later, so a bad value quarantines one row instead
  of failing the file mid-stream). Empty fields are null. Without a header, the columns are the target's columns in
  declared order (their `source_name` if set). Ragged or unparseable rows go to `on_reject` with the file, the record
  number (header = 1; equal to the line number unless quoted fields span lines) and the reason.
- jsonl: one object per line, each value as `string` (nested objects/arrays as JSON text). A line that is not a JSON
  object goes to `on_reject` with its line number. Blank lines are not rows.

Non-UTF-8 bytes: with `encoding: utf-8` (the default) a row holding invalid UTF-8 is rejected, not the file: one
corrupt row is quarantined like any other bad row, while a file in the wrong encoding shows up as a high quarantine
fraction that the quality gate stops. Set `csv.encoding` (e.g. latin-1) for files in another encoding; JSON Lines is
UTF-8 by definition (RFC 8259). A byte sequence the declared non-UTF-8 codec cannot decode fails the file.

Corrupt or truncated Parquet and gzip files raise `SourceReadError` naming the `s3://bucket/key`.
Empty files and header-only CSV files give 0 rows.
"""

from __future__ import annotations

import codecs
import fnmatch
import logging
import tempfile
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

import pyarrow as pa

from sluice.sources.base import ORIGIN_COLS, OnReject, Reject, with_origin
from sluice.sources.jsonlines import read_jsonl

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from sluice.config import PipelineConfig, S3SourceConfig
    from sluice.interval import Interval

log = logging.getLogger(__name__)

MAX_BATCH_ROWS = 65_536
CSV_BLOCK_BYTES = 1 << 20


class SourceReadError(Exception):
    """A source file cannot be read (corrupt, truncated, undecodable). The message starts with the file's URL."""


READ_ERRORS = (pa.ArrowException, OSError, UnicodeError, EOFError, ValueError)


def source_of(cfg: PipelineConfig) -> S3SourceConfig:
    """The pipeline's source, which this module is only ever given when it is an S3 source."""
    from sluice.config import S3SourceConfig

    if not isinstance(cfg.source, S3SourceConfig):
        raise TypeError(f"pipeline {cfg.name}: the S3 reader got a {cfg.source.kind} source")
    return cfg.source


def batch_rows(cfg: PipelineConfig) -> int:
    """Upper bound of the rows in one yielded batch: small enough to keep memory bounded by the chunk size."""
    return max(1, min(cfg.staging.chunk_rows, MAX_BATCH_ROWS))


@lru_cache(maxsize=8)
def arrow_s3_filesystem(conn_id: str) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem built from an Airflow AWS connection (keys, session token, region, endpoint_url)."""
    import pyarrow.fs as pafs
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=conn_id)
    creds = hook.get_credentials()
    config = hook.conn_config
    return pafs.S3FileSystem(
        access_key=creds.access_key,
        secret_key=creds.secret_key,
        session_token=creds.token,
        region=config.region_name or "us-east-1",
        endpoint_override=config.endpoint_url,
        allow_bucket_creation=False,
        allow_bucket_deletion=False,
    )


def matches(relative_key: str, pattern: str) -> bool:
    """A pattern without '/' matches the file name; with '/', the key below the prefix (like .gitignore)."""
    name = relative_key if "/" in pattern else relative_key.rsplit("/", 1)[-1]
    return fnmatch.fnmatchcase(name, pattern)


def list_source_keys(cfg: PipelineConfig, interval: Interval) -> list[str]:
    """Keys under the rendered prefix that match the pattern, in sorted order (deterministic source order)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from sluice.config import render

    src = source_of(cfg)
    prefix = render(src.prefix, interval).lstrip("/")
    keys = S3Hook(aws_conn_id=src.conn_id).list_keys(bucket_name=src.bucket, prefix=prefix) or []
    return sorted(k for k in keys if not k.endswith("/") and matches(k[len(prefix) :].lstrip("/"), src.pattern))


def list_objects(conn_id: str, bucket: str, prefix: str) -> dict[str, dict]:
    """Every object under a prefix: key -> {key, size, etag} (one paginated ListObjectsV2, 1000 keys a page)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id=conn_id).get_conn()
    found: dict[str, dict] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = {"key": obj["Key"], "size": int(obj["Size"]), "etag": obj["ETag"].strip('"')}
    return found


def selected(cfg: PipelineConfig, prefix: str, objects: dict[str, dict]) -> list[dict]:
    """The objects of a listing that an interval with this rendered prefix reads (pattern applied), in key order."""
    return [
        objects[k]
        for k in sorted(objects)
        if k.startswith(prefix)
        and not k.endswith("/")
        and matches(k[len(prefix) :].lstrip("/"), source_of(cfg).pattern)
    ]


def source_objects(cfg: PipelineConfig, interval: Interval) -> list[dict]:
    """What an interval's extraction reads: key, size and ETag of every matching object. Recorded in the staging
    manifest, so `backfill plan` can tell whether the source changed since the load."""
    from sluice.config import render

    src = source_of(cfg)
    prefix = render(src.prefix, interval).lstrip("/")
    return selected(cfg, prefix, list_objects(src.conn_id, src.bucket, prefix))


def is_gzip(key: str, compression: str) -> bool:
    return compression == "gzip" or (compression == "auto" and key.endswith(".gz"))


def iter_batches(
    cfg: PipelineConfig, interval: Interval, on_reject: OnReject, on_objects: Callable[[list[dict]], None] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream every matching file of the interval, in key order, as record batches of at most batch_rows(cfg);
    the objects listed (key, size, ETag) go to `on_objects` first, for the staging manifest."""
    from sluice.config import render

    src = source_of(cfg)
    fs = arrow_s3_filesystem(src.conn_id)
    objects = source_objects(cfg, interval)
    if on_objects is not None:
        on_objects(objects)
    keys = [o["key"] for o in objects]
    log.info("s3://%s/%s: %d file(s) for %s", src.bucket, render(src.prefix, interval), len(keys), interval.key)
    for key in keys:
        yield from read_object(cfg, fs, f"{src.bucket}/{key}", f"s3://{src.bucket}/{key}", on_reject)


def read_object(
    cfg: PipelineConfig, fs: pafs.FileSystem, path: str, url: str, on_reject: OnReject
) -> Iterator[pa.RecordBatch]:
    """Stream one object (any pyarrow filesystem, so unit tests can use local files); read errors name the URL."""
    limit = batch_rows(cfg)

    failed: list[Exception] = []

    def guarded(reject: Reject) -> None:
        try:
            on_reject(reject)
        except Exception as exc:
            failed.append(exc)
            raise

    try:
        for batch in _read_file(cfg, fs, path, url, guarded):
            for start in range(0, batch.num_rows, limit):
                yield batch.slice(start, limit)
    except Exception as exc:
        if failed:  # the callback failed (e.g. staging I/O): that is not a read error of this file
            raise failed[0] from None
        if isinstance(exc, SourceReadError) or not isinstance(exc, READ_ERRORS):
            raise
        raise SourceReadError(f"{url}: {type(exc).__name__}: {exc}") from exc


def _read_file(
    cfg: PipelineConfig, fs: pafs.FileSystem, path: str, url: str, on_reject: OnReject
) -> Iterator[pa.RecordBatch]:
    src = source_of(cfg)
    gz = is_gzip(path, str(src.compression))
    fmt = str(src.format)
    if fs.get_file_info(path).size == 0:
        log.info("%s: empty file, 0 rows", url)
        return
    if fmt == "parquet":
        line = 1
        for batch in _read_parquet(fs, path, gz, batch_rows(cfg)):
            yield with_origin(batch, url, line)
            line += batch.num_rows
        return
    stream = fs.open_input_stream(path, compression="gzip" if gz else None)
    with stream:
        if fmt == "csv":
            yield from _read_csv(cfg, fs, path, gz, url, stream, on_reject)
        elif fmt == "jsonl":
            yield from read_jsonl(stream, url, batch_rows(cfg), on_reject)
        else:  # pragma: no cover - the config model only admits the formats above
            raise SourceReadError(f"{url}: unsupported format {fmt!r}")


# ---------------------------------------------------------------- parquet


def _read_parquet(fs: pafs.FileSystem, path: str, gz: bool, rows: int) -> Iterator[pa.RecordBatch]:
    """Row group by row group over ranged reads. A gzipped Parquet file (rare) is spooled to a local temp file first,
    since Parquet needs random access."""
    import pyarrow.parquet as pq

    if not gz:
        with fs.open_input_file(path) as f:  # pre_buffer: a row group's column chunks in a few coalesced reads
            yield from pq.ParquetFile(f, pre_buffer=True).iter_batches(batch_size=rows)
        return
    with tempfile.NamedTemporaryFile(suffix=".parquet") as tmp:
        with fs.open_input_stream(path, compression="gzip") as src:
            while block := src.read(CSV_BLOCK_BYTES):
                tmp.write(block)
        tmp.flush()
        yield from pq.ParquetFile(tmp.name).iter_batches(batch_size=rows)


# ---------------------------------------------------------------- csv


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _csv_options(cfg: PipelineConfig, on_invalid, column_names: list[str] | None):
    import pyarrow.csv as pcsv

    opts = source_of(cfg).csv
    utf8 = _is_utf8(opts.encoding)
    read = pcsv.ReadOptions(
        use_threads=False,  # gives the record number of each invalid row
        block_size=CSV_BLOCK_BYTES,
        encoding="utf8" if utf8 else opts.encoding,
        column_names=None if opts.header else column_names,
    )
    parse = pcsv.ParseOptions(
        delimiter=opts.delimiter, quote_char=opts.quote_char, newlines_in_values=True, invalid_row_handler=on_invalid
    )
    return read, parse


def _read_csv(
    cfg: PipelineConfig, fs: pafs.FileSystem, path: str, gz: bool, url: str, stream, on_reject: OnReject
) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pcsv

    opts = source_of(cfg).csv
    names = None if opts.header else [c.source_column for c in cfg.target.columns]
    header_rows = 1 if opts.header else 0
    if names is None:
        # First pass over the first block only: the header's column names, so every column can be read as string.
        read, parse = _csv_options(cfg, lambda row: "skip", None)
        try:
            names = pcsv.open_csv(stream, read_options=read, parse_options=parse).schema.names
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                log.info("%s: empty file, 0 rows", url)
                return
            raise
        stream.close()
        stream = fs.open_input_stream(path, compression="gzip" if gz else None)

    rejected: list[int] = []  # record numbers of ragged rows, ascending; used to number the non-UTF-8 rows

    def on_invalid(row) -> str:
        if row.number is not None:
            rejected.append(row.number)
        reason = f"expected {row.expected_columns} columns, got {row.actual_columns}"
        try:
            on_reject(Reject(file=url, line=row.number, raw=row.text, reason=reason))
        except Exception:
            return "error"  # pyarrow cannot carry the exception; read_object re-raises it
        return "skip"

    read, parse = _csv_options(cfg, on_invalid, names if not opts.header else None)
    convert = pcsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=False,
        check_utf8=False,
    )
    try:
        reader = pcsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            log.info("%s: empty file, 0 rows", url)
            return
        raise
    check_utf8 = _is_utf8(opts.encoding)
    parsed = 0  # rows the reader produced so far (ragged rows excluded)
    with stream:
        for batch in reader:
            produced = batch.num_rows
            batch = with_origin(batch, url, _record_numbers(parsed, produced, header_rows, rejected))
            if check_utf8:
                batch = _reject_invalid_utf8(batch, url, parsed, header_rows, rejected, opts.delimiter, on_reject)
            parsed += produced
            yield batch


def _reject_invalid_utf8(
    batch: pa.RecordBatch,
    url: str,
    seen_before: int,
    header_rows: int,
    rejected: list[int],
    delimiter: str,
    on_reject: OnReject,
) -> pa.RecordBatch:
    """Pass a batch that is valid UTF-8 through; otherwise reject its invalid rows and return the rest.
    The full validation is one C++ pass; the per-value scan runs only for a batch that failed it."""
    try:
        batch.validate(full=True)
        return batch
    except pa.ArrowInvalid:
        pass
    names = [n for n in batch.schema.names if n not in ORIGIN_COLS]
    columns = [batch.column(n).cast(pa.binary()).to_pylist() for n in names]
    keep = []
    for i in range(batch.num_rows):
        values = [col[i] for col in columns]
        bad = [names[j] for j, v in enumerate(values) if v is not None and not _valid_utf8(v)]
        keep.append(not bad)
        if bad:
            raw = delimiter.join("" if v is None else v.decode("utf-8", "backslashreplace") for v in values)
            line = _record_number(seen_before + i + 1, header_rows, rejected)
            reason = (
                f"invalid UTF-8 bytes in column(s) {', '.join(bad)}; "
                "if the file uses another encoding, set source.csv.encoding"
            )
            on_reject(Reject(file=url, line=line, raw=raw, reason=reason))
    return batch.filter(pa.array(keep))


def _valid_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _record_numbers(seen_before: int, n: int, header_rows: int, rejected: list[int]):
    """Record numbers of the next n parsed rows (ordinals seen_before+1 ..): the k-th parsed row is record
    header + k + (ragged records before it). Vectorised: with R the sorted ragged numbers, R - arange(len(R)) is
    the ordinal (plus header) each ragged record precedes."""
    import numpy as np

    ordinals = np.arange(seen_before + 1, seen_before + n + 1, dtype=np.int64) + header_rows
    if not rejected:
        return ordinals
    shifted = np.asarray(rejected, dtype=np.int64) - np.arange(len(rejected), dtype=np.int64)
    return ordinals + np.searchsorted(shifted, ordinals, side="right")


def _record_number(ordinal: int, header_rows: int, rejected: list[int]) -> int:
    """The record number of the ordinal-th parsed (non-ragged) row, counting the header and the ragged rows."""
    number = header_rows + ordinal
    for r in rejected:
        if r <= number:
            number += 1
        else:
            break
    return number


__all__ = [
    "SourceReadError",
    "arrow_s3_filesystem",
    "batch_rows",
    "iter_batches",
    "list_source_keys",
    "matches",
    "read_object",
]
