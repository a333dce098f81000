"""Chunked Parquet staging: a run's source rows as zstd Parquet chunks plus a manifest, in S3 or on local disk.

Layout of one extraction, a load generation (all keys deterministic; the generation number comes from the
warehouse's sluice.load_run_seq, so a cleared run, whose run_id Airflow keeps, never overwrites an earlier load):

    <staging.url>/<pipeline>/<interval.key>/<run_id, sanitized>/g<generation>/
        chunk-00000.parquet            source rows, raw source columns (string_view cast to string)
        chunk-00000.rejects.parquet    rows the source could not parse: file, line, raw, reason (only if any)
        chunk-00000.good.parquet       written later by validation (StagingStore.derived_key(0, "good")), unless
                                       validation changed nothing: then the loader reads the chunk file's columns
        chunk-00000.quarantine.parquet the chunk's quarantined rows, by validation
        chunk-00000.gx.json            GX validation result, also by validation (derived_key(0, "gx", ext="json"))
        manifest.json                  written LAST: chunk keys, rows, rejects, checksums; for S3 sources also
                                       source_objects (key, size, ETag of each object read), for `backfill plan`

A generation directory without manifest.json is incomplete: extract_and_stage writes the manifest only after every
chunk is stored. Files of one generation never change (validation and loading check the checksums); files of earlier
generations are kept, for audit and replay, until staging retention (retention.py) deletes them.

Checksum: "sha256:<hex>" over the exact bytes of the chunk's Parquet file (the writer is deterministic for the same
rows and pyarrow version); verify with `sha256(object bytes)` without parsing the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sluice import failpoints
from sluice.failpoints import Point
from sluice.sources.base import Reject

if TYPE_CHECKING:
    from sluice.config import PipelineConfig, StagingConfig
    from sluice.interval import Interval

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
CHECKSUM_ALGORITHM = "sha256 of the Parquet file bytes"
REJECT_SCHEMA = pa.schema([("file", pa.string()), ("line", pa.int64()), ("raw", pa.string()), ("reason", pa.string())])


class ChunkRef(TypedDict):
    """What one staged chunk puts on XCom (small: keys and counts only)."""

    index: int
    generation: int
    key: str
    rows: int
    rejects_key: str | None
    rejects: int
    checksum: str


class StagingError(Exception):
    """Staging cannot go on (bad URL, missing manifest, no data while require_data is set)."""


class NoDataError(StagingError):
    """The source had no rows for the interval and the pipeline sets require_data: true."""


def sanitize_run_id(run_id: str) -> str:
    """Airflow run ids hold ':' and '+' (manual__2024-01-01T00:00:00+00:00); keys keep [A-Za-z0-9._-] only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", run_id).strip(".")
    if not cleaned:
        raise StagingError(f"run_id {run_id!r} has no character usable in a staging key")
    return cleaned


def plain_types(table: pa.Table) -> pa.Table:
    """Cast string_view/binary_view columns (tpchgen, DataFusion, Polars write them) to string/binary: Parquet
    readers and pyarrow's CSV writer downstream expect the classic types."""
    target = pa.schema(
        [
            f.with_type(
                pa.string()
                if pa.types.is_string_view(f.type)
                else pa.binary()
                if pa.types.is_binary_view(f.type)
                else f.type
            )
            for f in table.schema
        ],
        metadata=table.schema.metadata,
    )
    return table if target.equals(table.schema) else table.cast(target)


def parquet_bytes(table: pa.Table) -> pa.Buffer:
    """The zstd Parquet encoding of a table, in memory (a chunk is bounded by chunk_rows, its file much smaller)."""
    sink = pa.BufferOutputStream()
    pq.write_table(plain_types(table), sink, compression="zstd")
    return sink.getvalue()


def checksum(data: pa.Buffer | bytes) -> str:
    return "sha256:" + hashlib.sha256(memoryview(data)).hexdigest()


def rejects_table(rejects: Iterable[Reject]) -> pa.Table:
    rows = [r.to_dict() for r in rejects]
    return pa.Table.from_pylist(rows, schema=REJECT_SCHEMA)


class StagingStore:
    """The staging directory of one (pipeline, interval, run_id): chunk keys, Parquet I/O and the manifest."""

    def __init__(
        self, staging: StagingConfig, pipeline: str, interval: Interval, run_id: str, generation: int | None = None
    ):
        self.staging = staging
        self.pipeline = pipeline
        self.interval = interval
        self.run_id = run_id
        self.generation = generation
        parsed = urlparse(staging.url)
        self.scheme = parsed.scheme
        if parsed.scheme == "s3":
            if not staging.conn_id:
                raise StagingError(f"staging url {staging.url} needs staging.conn_id (an Airflow AWS connection)")
            base = (parsed.netloc + parsed.path).rstrip("/")
        elif parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise StagingError(f"staging url {staging.url}: use file:///absolute/path")
            base = parsed.path.rstrip("/")
        else:
            raise StagingError(f"staging url {staging.url}: only s3://bucket[/prefix] and file:///path are supported")
        self.root = f"{base}/{pipeline}/{interval.key}/{sanitize_run_id(run_id)}"
        if generation is not None:
            self.root += f"/g{int(generation)}"
        self._fs: pafs.FileSystem | None = None

    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            if self.scheme == "s3":
                from sluice.sources.s3 import arrow_s3_filesystem

                self._fs = arrow_s3_filesystem(self.staging.conn_id)
            else:
                self._fs = pafs.LocalFileSystem()
        return self._fs

    # ------------------------------------------------------------ keys

    @property
    def url(self) -> str:
        """URL of the run directory."""
        return self._url(self.root)

    def _url(self, path: str) -> str:
        return f"{self.scheme}://{path}"

    def _path(self, key: str) -> str:
        """Filesystem path of a key: a full URL (as in ChunkRef) or a name inside the run directory."""
        prefix = f"{self.scheme}://"
        if key.startswith(prefix):
            return key[len(prefix) :]
        if "://" in key:
            raise StagingError(f"{key} is not a {self.scheme}:// key of staging {self.staging.url}")
        return f"{self.root}/{key.lstrip('/')}"

    def chunk_key(self, index: int) -> str:
        return self._url(f"{self.root}/chunk-{index:05d}.parquet")

    def derived_key(self, index: int, suffix: str, ext: str = "parquet") -> str:
        """Key of a file derived from chunk `index`: derived_key(7, "good") -> .../chunk-00007.good.parquet,
        derived_key(7, "gx", ext="json") -> .../chunk-00007.gx.json."""
        if not re.fullmatch(r"[a-z][a-z0-9_]*", suffix) or not re.fullmatch(r"[a-z0-9]+", ext):
            raise StagingError(f"derived key suffix {suffix!r} must match [a-z][a-z0-9_]*, ext {ext!r} [a-z0-9]+")
        return self._url(f"{self.root}/chunk-{index:05d}.{suffix}.{ext}")

    def rejects_key(self, index: int) -> str:
        return self.derived_key(index, "rejects")

    @property
    def manifest_key(self) -> str:
        return self._url(f"{self.root}/{MANIFEST_NAME}")

    # ------------------------------------------------------------ I/O

    def _put(self, key: str, data: pa.Buffer | bytes) -> None:
        path = self._path(key)
        if self.scheme == "file":
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(path) as out:
            out.write(data)

    def write_table(self, key: str, table: pa.Table) -> str:
        """Write a table as zstd Parquet; returns its checksum."""
        data = parquet_bytes(table)
        self._put(key, data)
        return checksum(data)

    def read_table(self, key: str, columns: list[str] | None = None) -> pa.Table:
        with self.fs.open_input_file(self._path(key)) as f:
            return pq.ParquetFile(f, pre_buffer=True).read(columns=columns)  # coalesced ranged reads

    def write_bytes(self, key: str, data: bytes) -> str:
        """Store a small non-tabular object (e.g. a JSON document about a chunk); returns its checksum."""
        self._put(key, data)
        return checksum(data)

    def read_bytes(self, key: str) -> bytes:
        with self.fs.open_input_stream(self._path(key)) as f:
            return f.read()

    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self._path(key)).type == pafs.FileType.File

    def write_chunk(self, index: int, table: pa.Table, rejects: Iterable[Reject] = ()) -> ChunkRef:
        """Store one chunk (and its rejects, if any) and return its ChunkRef."""
        key = self.chunk_key(index)
        digest = self.write_table(key, table)
        bad = rejects_table(rejects)
        rejects_key = None
        if bad.num_rows:
            rejects_key = self.rejects_key(index)
            self.write_table(rejects_key, bad)
        return ChunkRef(
            index=index,
            generation=int(self.generation or 0),
            key=key,
            rows=table.num_rows,
            rejects_key=rejects_key,
            rejects=bad.num_rows,
            checksum=digest,
        )

    def write_manifest(self, chunks: list[ChunkRef], source: list[dict] | None = None) -> str:
        """Write manifest.json; call it last, after every chunk is stored. `source`: the objects read (S3 sources:
        key, size, ETag), listed just before reading, so a file changed meanwhile shows as changed later."""
        manifest = {
            "version": MANIFEST_VERSION,
            "pipeline": self.pipeline,
            "interval": self.interval.to_dict(),
            "run_id": self.run_id,
            "generation": self.generation,
            "checksum_algorithm": CHECKSUM_ALGORITHM,
            "rows": sum(c["rows"] for c in chunks),
            "rejects": sum(c["rejects"] for c in chunks),
            "chunks": list(chunks),
        }
        if source is not None:
            manifest["source_objects"] = source
        self._put(self.manifest_key, json.dumps(manifest, indent=2, sort_keys=True).encode())
        return self.manifest_key

    def read_manifest(self) -> dict:
        path = self._path(self.manifest_key)
        try:
            with self.fs.open_input_stream(path) as f:
                return json.loads(f.read())
        except FileNotFoundError:
            raise StagingError(
                f"{self.manifest_key} is missing: extract_and_stage did not finish for this run"
            ) from None


# ---------------------------------------------------------------- extract and stage


def _source_label(cfg: PipelineConfig, interval: Interval) -> str:
    if cfg.source.kind == "s3":
        from sluice.config import render

        return f"s3://{cfg.source.bucket}/{render(cfg.source.prefix, interval)}"
    return f"{cfg.source.kind} source"


def _concat(parts: list[pa.Table]) -> pa.Table:
    """Zero-copy when the parts share a schema; otherwise unify them (a column missing from a part becomes null,
    e.g. a JSON key that appears only in later lines, or int32 vs int64 across Parquet files)."""
    if all(p.schema.equals(parts[0].schema) for p in parts[1:]):
        return pa.concat_tables(parts)
    return pa.concat_tables(parts, promote_options="permissive")


class _ChunkWriter:
    """Accumulates batches and writes a chunk each time chunk_rows rows are buffered. The Parquet encoding, checksum
    and upload of a chunk run in a background thread (they release the GIL) while the source is read on: at most one
    chunk is being written while the next one fills, so memory stays bounded by two chunks."""

    def __init__(self, store: StagingStore, chunk_rows: int):
        self.store = store
        self.chunk_rows = chunk_rows
        self.parts: list[pa.Table] = []
        self.buffered = 0
        self.rejects: list[Reject] = []
        self.chunks: list[ChunkRef] = []  # written, in order
        self.schema: pa.Schema | None = None
        self.started = self.last = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-stage")
        self._pending: Future[ChunkRef] | None = None
        self._next = 0

    def on_reject(self, reject: Reject) -> None:
        self.rejects.append(reject)
        if len(self.rejects) >= self.chunk_rows:  # keep memory bounded when a file is mostly unparseable
            self._flush(self.chunk_rows)

    def add(self, batch: pa.RecordBatch) -> None:
        self.schema = batch.schema
        if not batch.num_rows:
            return
        self.parts.append(pa.Table.from_batches([batch]))
        self.buffered += batch.num_rows
        while self.buffered >= self.chunk_rows:
            self._flush(self.chunk_rows)

    def finish(self, fallback: pa.Schema) -> list[ChunkRef]:
        try:
            if self.buffered or self.rejects:
                self._flush(self.buffered, fallback)
            self._wait()
        finally:
            self.close()
        return self.chunks

    def close(self) -> None:
        """Stop the writer thread (after the chunk being written, whose error, if any, is dropped)."""
        self._pool.shutdown(wait=True)

    def _flush(self, rows: int, fallback: pa.Schema | None = None) -> None:
        if self.parts:
            table = _concat(self.parts)
            chunk, rest = table.slice(0, rows), table.slice(rows)
        else:
            chunk = rest = (self.schema or fallback or pa.schema([])).empty_table()
        rejects, self.rejects = self.rejects, []
        self.parts = [rest] if rest.num_rows else []
        self.buffered = rest.num_rows
        self._wait()
        self._pending = self._pool.submit(self.store.write_chunk, self._next, chunk, rejects)
        self._next += 1

    def _wait(self) -> None:
        """Collect the chunk being written (its error, if the write failed)."""
        if self._pending is None:
            return
        ref, self._pending = self._pending.result(), None
        self.chunks.append(ref)
        now = time.monotonic()
        rate = ref["rows"] / max(now - self.last, 1e-9)
        self.last = now
        index, rows, rejects = ref["index"], ref["rows"], ref["rejects"]
        log.info("chunk %d: %d rows, %d rejects, %.0f rows/s -> %s", index, rows, rejects, rate, ref["key"])


def extract_and_stage(cfg: PipelineConfig, interval: Interval, run_id: str, generation: int) -> list[ChunkRef]:
    """Stream the source into Parquet chunks of cfg.staging.chunk_rows rows; return their ChunkRefs.

    A chunk is written as soon as it holds chunk_rows rows (in a background thread, while the next one fills), so
    memory is bounded by two chunks, not by the interval.
    Rejected source rows attach to the chunk being filled when they arrived (a trailing chunk may hold 0 rows and only
    rejects). 0 rows and 0 rejects: an empty manifest and [] — or NoDataError when cfg.require_data is set.
    """
    from sluice.sources import iter_source

    store = StagingStore(cfg.staging, cfg.name, interval, run_id, generation)
    writer = _ChunkWriter(store, cfg.staging.chunk_rows)
    log.info(
        "staging %s for %s into %s (chunk_rows=%d)",
        _source_label(cfg, interval),
        interval.key,
        store.url,
        cfg.staging.chunk_rows,
    )
    listed: list[list[dict]] = []  # what an S3 source read (key, size, ETag), reported by the source
    failpoints.hit_conn_id(cfg.target.conn_id, cfg.name, Point.extract_start)
    try:
        for batch in iter_source(cfg, interval, writer.on_reject, on_objects=listed.append):
            staged = len(writer.chunks)
            writer.add(batch)
            if not staged and writer.chunks:
                failpoints.hit_conn_id(cfg.target.conn_id, cfg.name, Point.extract_after_chunk)
    except BaseException:
        writer.close()
        raise
    fallback = pa.schema([(c.source_column, pa.string()) for c in cfg.target.columns])
    chunks = writer.finish(fallback)
    if not chunks and cfg.require_data:
        raise NoDataError(
            f"pipeline {cfg.name}: no data for interval {interval.key} in {_source_label(cfg, interval)}"
            " and require_data is true (set require_data: false to accept empty intervals)"
        )
    store.write_manifest(chunks, listed[0] if listed else None)
    rows = sum(c["rows"] for c in chunks)
    elapsed = time.monotonic() - writer.started
    log.info(
        "staged %d rows, %d rejects in %d chunk(s) in %.1fs (%.0f rows/s); manifest %s",
        rows,
        sum(c["rejects"] for c in chunks),
        len(chunks),
        elapsed,
        rows / max(elapsed, 1e-9),
        store.manifest_key,
    )
    return chunks
