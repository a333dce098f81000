"""Chunking and the staging layout, on file:// staging with a fake source (no services)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sluice.sources
from sluice.config import PipelineConfig
from sluice.interval import Interval
from sluice.sources.base import Reject
from sluice.staging import NoDataError, StagingError, StagingStore, extract_and_stage, sanitize_run_id

INTERVAL = Interval(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
GEN = 7
RUN_ID = "manual__2024-01-01T00:00:00+00:00"


def make_cfg(tmp_path: Path, chunk_rows: int = 10, require_data: bool = False) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": "orders",
            "start_date": "2024-01-01",
            "require_data": require_data,
            "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "orders/{{ ds }}/", "format": "csv"},
            "staging": {"url": f"file://{tmp_path}/staging", "conn_id": None, "chunk_rows": chunk_rows},
            "target": {
                "table": "orders",
                "primary_key": ["id"],
                "columns": [{"name": "id", "type": "bigint", "nullable": False}, {"name": "name", "type": "text"}],
            },
        }
    )


def batch(start: int, n: int) -> pa.RecordBatch:
    return pa.record_batch(
        {
            "id": pa.array(range(start, start + n), pa.int64()),
            "name": pa.array([f"n{i}" for i in range(start, start + n)]),
        }
    )


def fake_source(monkeypatch, script):
    """script: list of ("rows", n) / ("reject", line) / ("raise", msg) steps, replayed by the fake source."""

    def iter_source(cfg, interval, on_reject, on_objects=None):
        next_id = 0
        for step, arg in script:
            if step == "rows":
                yield batch(next_id, arg)
                next_id += arg
            elif step == "reject":
                on_reject(Reject(file="s3://b/f.csv", line=arg, raw=f"bad,{arg},x", reason="expected 2 columns, got 3"))
            elif step == "batch":
                yield arg
            else:
                raise RuntimeError(arg)

    monkeypatch.setattr(sluice.sources, "iter_source", iter_source)


def read(store: StagingStore, key: str) -> pa.Table:
    return store.read_table(key)


def store_for(cfg, gen=None) -> StagingStore:
    return StagingStore(cfg.staging, cfg.name, INTERVAL, RUN_ID, GEN if gen is None else gen)


def test_chunks_are_cut_exactly_at_chunk_rows_and_keep_the_remainder(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 3), ("rows", 4), ("rows", 7), ("rows", 9)])  # 23 rows
    chunks = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert [c["rows"] for c in chunks] == [10, 10, 3]
    assert [c["index"] for c in chunks] == [0, 1, 2]
    store = store_for(cfg)
    ids = [i for c in chunks for i in read(store, c["key"])["id"].to_pylist()]
    assert ids == list(range(23))  # source order kept, nothing lost or duplicated


def test_exact_multiple_gives_no_empty_trailing_chunk(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 20)])
    assert [c["rows"] for c in extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)] == [10, 10]


def test_one_batch_larger_than_several_chunks(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, chunk_rows=4)
    fake_source(monkeypatch, [("rows", 13)])
    assert [c["rows"] for c in extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)] == [4, 4, 4, 1]


def test_keys_are_deterministic_and_run_id_is_sanitized(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 12)])
    first = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    second = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert first == second  # same keys, same checksums
    run_dir = f"file://{tmp_path}/staging/orders/20240101T000000Z_20240102T000000Z/manual__2024-01-01T00_00_00_00_00/g7"
    assert first[0]["key"] == f"{run_dir}/chunk-00000.parquet"
    assert first[1]["key"] == f"{run_dir}/chunk-00001.parquet"
    store = store_for(cfg)
    assert store.derived_key(7, "good") == f"{run_dir}/chunk-00007.good.parquet"
    assert store.derived_key(7, "quarantine") == f"{run_dir}/chunk-00007.quarantine.parquet"
    assert store.manifest_key == f"{run_dir}/manifest.json"


def test_sanitize_run_id():
    assert sanitize_run_id("scheduled__2024-01-01T00:00:00+00:00") == "scheduled__2024-01-01T00_00_00_00_00"
    assert sanitize_run_id("a/b c") == "a_b_c"
    with pytest.raises(StagingError):
        sanitize_run_id("..")


def test_checksum_is_sha256_of_the_parquet_bytes_and_chunks_are_zstd(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 5)])
    (chunk,) = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    path = chunk["key"].removeprefix("file://")
    assert chunk["checksum"] == "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_manifest_lists_chunks_rows_rejects_and_checksums(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 6), ("reject", 8), ("rows", 6)])
    chunks = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    manifest = store_for(cfg).read_manifest()
    assert manifest["chunks"] == chunks
    assert manifest["rows"] == 12 and manifest["rejects"] == 1
    assert manifest["interval"] == INTERVAL.to_dict() and manifest["run_id"] == RUN_ID
    assert manifest["pipeline"] == "orders"


def test_rejects_attach_to_the_chunk_being_filled(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    # rows 0-5, reject A, rows 6-11 (chunk 0 full at 10), reject B while chunk 1 fills, rows 12-14
    fake_source(monkeypatch, [("rows", 6), ("reject", 8), ("rows", 6), ("reject", 15), ("rows", 3)])
    chunks = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert [(c["rows"], c["rejects"]) for c in chunks] == [(10, 1), (5, 1)]
    store = store_for(cfg)
    assert chunks[0]["rejects_key"] == store.derived_key(0, "rejects")
    rejects = read(store, chunks[1]["rejects_key"]).to_pylist()
    assert rejects == [{"file": "s3://b/f.csv", "line": 15, "raw": "bad,15,x", "reason": "expected 2 columns, got 3"}]


def test_chunk_without_rejects_has_no_rejects_file(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 3)])
    (chunk,) = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert chunk["rejects_key"] is None and chunk["rejects"] == 0
    assert not store_for(cfg).exists(store_for(cfg).derived_key(0, "rejects"))


def test_trailing_rejects_get_a_chunk_of_their_own(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 10), ("reject", 12)])
    chunks = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert [(c["rows"], c["rejects"]) for c in chunks] == [(10, 0), (0, 1)]
    empty = read(store_for(cfg), chunks[1]["key"])
    assert empty.num_rows == 0 and empty.column_names == ["id", "name"]


def test_only_rejects_is_data_not_an_empty_interval(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, require_data=True)
    fake_source(monkeypatch, [("reject", 2), ("reject", 3)])
    (chunk,) = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert (chunk["rows"], chunk["rejects"]) == (0, 2)
    # no batch ever arrived: the empty chunk has the declared source columns, as strings
    assert read(store_for(cfg), chunk["key"]).schema == pa.schema([("id", pa.string()), ("name", pa.string())])


def test_many_rejects_flush_a_chunk_to_bound_memory(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, chunk_rows=3)
    fake_source(monkeypatch, [("rows", 1)] + [("reject", i) for i in range(7)])
    chunks = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert [(c["rows"], c["rejects"]) for c in chunks] == [(1, 3), (0, 3), (0, 1)]


def test_zero_rows_returns_empty_list_and_writes_an_empty_manifest(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [])
    assert extract_and_stage(cfg, INTERVAL, RUN_ID, GEN) == []
    manifest = store_for(cfg).read_manifest()
    assert manifest["chunks"] == [] and manifest["rows"] == 0


def test_zero_rows_with_require_data_fails_clearly_without_manifest(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, require_data=True)
    fake_source(monkeypatch, [("batch", batch(0, 0))])
    with pytest.raises(
        NoDataError,
        match=r"no data for interval 20240101T000000Z_20240102T000000Z in "
        r"s3://sluice-landing/orders/2024-01-01/ and require_data is true",
    ):
        extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert not store_for(cfg).exists(store_for(cfg).manifest_key)


def test_failure_midway_leaves_no_manifest_and_keeps_the_earlier_generation(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 25)])
    extract_and_stage(cfg, INTERVAL, RUN_ID, 1)
    first = store_for(cfg, 1)
    assert first.exists(first.manifest_key)
    fake_source(monkeypatch, [("rows", 15), ("raise", "boom")])
    with pytest.raises(RuntimeError, match="boom"):
        extract_and_stage(cfg, INTERVAL, RUN_ID, 2)
    second = store_for(cfg, 2)
    assert not second.exists(second.manifest_key)
    assert second.exists(second.chunk_key(0))  # chunk 0 was written before the failure
    with pytest.raises(StagingError, match="manifest.json is missing"):
        second.read_manifest()
    assert first.read_manifest()["rows"] == 25  # an earlier generation's files are never touched
    assert first.read_manifest()["generation"] == 1


def test_a_chunk_write_that_fails_in_the_writer_thread_fails_the_extraction(tmp_path, monkeypatch):
    """Chunks are encoded and uploaded in a background thread while the source is read on; a failed upload is the
    extraction's error (at the next chunk or at the end), and no manifest is written."""
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 35)])
    original = StagingStore.write_chunk

    def failing(self, index, table, rejects=()):
        if index == 1:
            raise OSError("S3 endpoint went away")
        return original(self, index, table, rejects)

    monkeypatch.setattr(StagingStore, "write_chunk", failing)
    with pytest.raises(OSError, match="S3 endpoint went away"):
        extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    store = store_for(cfg)
    assert store.exists(store.chunk_key(0)) and not store.exists(store.chunk_key(1))
    assert not store.exists(store.manifest_key)


def test_manifest_is_the_last_file_written(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 7), ("reject", 3), ("rows", 7)])
    written = []
    original = StagingStore._put

    def spy(self, key, data):
        written.append(key.rsplit("/", 1)[-1])
        return original(self, key, data)

    monkeypatch.setattr(StagingStore, "_put", spy)
    extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert written == ["chunk-00000.parquet", "chunk-00000.rejects.parquet", "chunk-00001.parquet", "manifest.json"]


def test_a_new_generation_has_its_own_directory(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 30)])
    first = extract_and_stage(cfg, INTERVAL, RUN_ID, 1)
    fake_source(monkeypatch, [("rows", 5)])
    (chunk,) = extract_and_stage(cfg, INTERVAL, RUN_ID, 2)
    assert chunk["generation"] == 2 and "/g2/chunk-00000.parquet" in chunk["key"]
    assert len(first) == 3 and all(store_for(cfg, 1).exists(c["key"]) for c in first)
    manifest = Path(store_for(cfg, 2).manifest_key.removeprefix("file://"))
    assert len(json.loads(manifest.read_text())["chunks"]) == 1


def test_string_view_is_cast_to_string(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    views = pa.record_batch({"id": pa.array([1, 2], pa.int64()), "name": pa.array(["a", "b"], pa.string_view())})
    fake_source(monkeypatch, [("batch", views)])
    (chunk,) = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert read(store_for(cfg), chunk["key"]).schema.field("name").type == pa.string()


def test_batches_with_different_columns_are_unified(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    a = pa.record_batch({"id": pa.array(["1"])})
    b = pa.record_batch({"id": pa.array(["2"]), "extra": pa.array(["x"])})
    fake_source(monkeypatch, [("batch", a), ("batch", b)])
    (chunk,) = extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    assert read(store_for(cfg), chunk["key"]).to_pylist() == [{"id": "1", "extra": None}, {"id": "2", "extra": "x"}]


def test_progress_is_logged_per_chunk(tmp_path, monkeypatch, caplog):
    cfg = make_cfg(tmp_path)
    fake_source(monkeypatch, [("rows", 15)])
    with caplog.at_level(logging.INFO, logger="sluice.staging"):
        extract_and_stage(cfg, INTERVAL, RUN_ID, GEN)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("chunk ")]
    assert len(lines) == 2
    assert lines[0].startswith("chunk 0: 10 rows, 0 rejects, ") and " rows/s" in lines[0]
    assert lines[1].startswith("chunk 1: 5 rows, ")


def test_read_and_write_table_for_derived_files(tmp_path):
    cfg = make_cfg(tmp_path)
    store = store_for(cfg)
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    key = store.derived_key(3, "good")
    store.write_table(key, table)
    assert store.read_table(key) == table
    assert store.read_table(key, columns=["name"]).column_names == ["name"]
    assert store.read_table("chunk-00003.good.parquet") == table  # a name inside the run directory works too
    with pytest.raises(StagingError):
        store.read_table("s3://elsewhere/x.parquet")
    with pytest.raises(StagingError):
        store.derived_key(3, "../x")


def test_unsupported_staging_url_is_rejected(tmp_path):
    cfg = make_cfg(tmp_path)
    bad = cfg.staging.model_copy(update={"url": "gs://bucket"})
    with pytest.raises(StagingError, match="only s3://"):
        StagingStore(bad, "orders", INTERVAL, RUN_ID)
    s3_without_conn = cfg.staging.model_copy(update={"url": "s3://sluice-staging", "conn_id": None})
    with pytest.raises(StagingError, match="conn_id"):
        StagingStore(s3_without_conn, "orders", INTERVAL, RUN_ID)
