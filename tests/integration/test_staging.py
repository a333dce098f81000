"""extract_and_stage end to end on the S3 endpoint of the test stack: landing files in, Parquet chunks, rejects and a
manifest out in the staging bucket; each bad-input case of the S3 source."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sluice.config import PipelineConfig
from sluice.interval import Interval
from sluice.sources.s3 import SourceReadError
from sluice.staging import NoDataError, StagingStore, extract_and_stage

pytestmark = pytest.mark.integration

LANDING, STAGING = "sluice-landing", "sluice-staging"
INTERVAL = Interval(datetime(2024, 3, 5, tzinfo=UTC), datetime(2024, 3, 6, tzinfo=UTC))
RUN_ID = "scheduled__2024-03-05T00:00:00+00:00"
DAY = "2024-03-05"


def make_cfg(prefix: str, fmt: str, chunk_rows: int = 100, require_data: bool = False) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": "orders",
            "start_date": "2024-01-01",
            "require_data": require_data,
            "source": {"kind": "s3", "bucket": LANDING, "prefix": prefix + "/{{ ds }}/", "format": fmt},
            "staging": {"url": f"s3://{STAGING}/{prefix}", "conn_id": "sluice_s3", "chunk_rows": chunk_rows},
            "target": {
                "table": "orders",
                "primary_key": ["id"],
                "columns": [{"name": "id", "type": "bigint", "nullable": False}, {"name": "name", "type": "text"}],
            },
        }
    )


def put(s3_client, key: str, data: bytes) -> None:
    s3_client.put_object(Bucket=LANDING, Key=key, Body=data)


def staged_keys(s3_client, prefix: str) -> list[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=STAGING, Prefix=prefix + "/")
    return sorted(o["Key"].rsplit("/", 1)[-1] for page in pages for o in page.get("Contents", []))


def store(cfg: PipelineConfig) -> StagingStore:
    return StagingStore(cfg.staging, cfg.name, INTERVAL, RUN_ID, 1)


def csv_rows(start: int, n: int) -> bytes:
    return b"".join(b"%d,name %d\n" % (i, i) for i in range(start, start + n))


def test_csv_to_chunks_rejects_and_manifest(s3_client, s3_prefix):
    put(s3_client, f"{s3_prefix}/{DAY}/part-0.csv.gz", gzip.compress(b"id,name\n" + csv_rows(0, 150)))
    put(
        s3_client,
        f"{s3_prefix}/{DAY}/part-1.csv",
        b"id,name\n" + csv_rows(150, 20) + b"bad,row,extra\n" + csv_rows(170, 30),
    )
    cfg = make_cfg(s3_prefix, "csv")
    chunks = extract_and_stage(cfg, INTERVAL, RUN_ID, 1)

    assert [(c["rows"], c["rejects"]) for c in chunks] == [(100, 0), (100, 1)]
    run_dir = (
        f"s3://{STAGING}/{s3_prefix}/orders/20240305T000000Z_20240306T000000Z/scheduled__2024-03-05T00_00_00_00_00/g1"
    )
    assert chunks[0]["key"] == f"{run_dir}/chunk-00000.parquet"
    assert chunks[1]["rejects_key"] == f"{run_dir}/chunk-00001.rejects.parquet"
    assert staged_keys(s3_client, s3_prefix) == [
        "chunk-00000.parquet",
        "chunk-00001.parquet",
        "chunk-00001.rejects.parquet",
        "manifest.json",
    ]
    st = store(cfg)
    ids = [int(i) for c in chunks for i in st.read_table(c["key"], columns=["id"])["id"].to_pylist()]
    assert ids == list(range(200))
    (reject,) = st.read_table(chunks[1]["rejects_key"]).to_pylist()
    assert reject == {
        "file": f"s3://{LANDING}/{s3_prefix}/{DAY}/part-1.csv",
        "line": 22,
        "raw": "bad,row,extra",
        "reason": "expected 2 columns, got 3",
    }
    manifest = st.read_manifest()
    assert manifest["chunks"] == chunks and manifest["rows"] == 200 and manifest["rejects"] == 1
    body = s3_client.get_object(Bucket=STAGING, Key=chunks[0]["key"].removeprefix(f"s3://{STAGING}/"))["Body"].read()
    assert chunks[0]["checksum"] == "sha256:" + hashlib.sha256(body).hexdigest()


def test_rerun_with_the_same_run_id_overwrites_the_same_keys(s3_client, s3_prefix):
    put(s3_client, f"{s3_prefix}/{DAY}/part-0.csv", b"id,name\n" + csv_rows(0, 250))
    cfg = make_cfg(s3_prefix, "csv")
    first = extract_and_stage(cfg, INTERVAL, RUN_ID, 1)
    assert extract_and_stage(cfg, INTERVAL, RUN_ID, 1) == first
    assert len(staged_keys(s3_client, s3_prefix)) == 4  # 3 chunks + manifest


def test_jsonl_and_parquet_sources(s3_client, s3_prefix):
    put(s3_client, f"{s3_prefix}/{DAY}/a.jsonl", b'{"id": 1, "name": "a"}\n{"id": 2}\n[]\n')
    chunks = extract_and_stage(make_cfg(s3_prefix, "jsonl"), INTERVAL, RUN_ID, 1)
    assert [(c["rows"], c["rejects"]) for c in chunks] == [(2, 1)]

    table = pa.table({"id": pa.array(range(230), pa.int64()), "name": pa.array(["x"] * 230, pa.string_view())})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    put(s3_client, f"{s3_prefix}-pq/{DAY}/part-0.parquet", buf.getvalue())
    cfg = make_cfg(f"{s3_prefix}-pq", "parquet")
    chunks = extract_and_stage(cfg, INTERVAL, RUN_ID, 1)
    assert [c["rows"] for c in chunks] == [100, 100, 30]
    staged = store(cfg).read_table(chunks[2]["key"])
    assert staged.schema.names == ["id", "name", "_sluice_source", "_sluice_line"]  # + provenance
    assert staged.schema.field("name").type == pa.string()
    assert staged["_sluice_line"].to_pylist() == list(range(201, 231))
    assert staged["_sluice_source"][0].as_py().endswith(f"{s3_prefix}-pq/{DAY}/part-0.parquet")


@pytest.mark.parametrize(("name", "data"), [("empty.csv", b""), ("header.csv", b"id,name\n")])
def test_empty_and_header_only_files_stage_zero_rows(s3_client, s3_prefix, name, data):
    put(s3_client, f"{s3_prefix}/{DAY}/{name}", data)
    assert extract_and_stage(make_cfg(s3_prefix, "csv"), INTERVAL, RUN_ID, 1) == []
    assert staged_keys(s3_client, s3_prefix) == ["manifest.json"]


def test_non_utf8_row_is_staged_as_a_reject(s3_client, s3_prefix):
    put(s3_client, f"{s3_prefix}/{DAY}/part-0.csv", b"id,name\n1,a\n2,caf\xe9\n3,c\n")
    cfg = make_cfg(s3_prefix, "csv")
    (chunk,) = extract_and_stage(cfg, INTERVAL, RUN_ID, 1)
    assert (chunk["rows"], chunk["rejects"]) == (2, 1)
    (reject,) = store(cfg).read_table(chunk["rejects_key"]).to_pylist()
    assert reject["line"] == 3 and reject["raw"] == "2,caf\\xe9" and "invalid UTF-8" in reject["reason"]


@pytest.mark.parametrize("name", ["part-1.parquet", "part-1.csv.gz"])
def test_corrupt_file_fails_naming_it_and_leaves_no_manifest(s3_client, s3_prefix, name):
    fmt = "parquet" if name.endswith("parquet") else "csv"
    if fmt == "parquet":
        buf = io.BytesIO()
        pq.write_table(pa.table({"id": range(300), "name": ["x"] * 300}), buf)
        good = buf.getvalue()
    else:
        good = gzip.compress(b"id,name\n" + csv_rows(0, 300))
    put(s3_client, f"{s3_prefix}/{DAY}/part-0.{name.split('.', 1)[1]}", good)  # a good file first: chunks get written
    put(s3_client, f"{s3_prefix}/{DAY}/{name}", good[: len(good) // 2])
    cfg = make_cfg(s3_prefix, fmt)
    with pytest.raises(SourceReadError, match=rf"^s3://{LANDING}/{s3_prefix}/{DAY}/{name}: "):
        extract_and_stage(cfg, INTERVAL, RUN_ID, 1)
    keys = staged_keys(s3_client, s3_prefix)
    assert "manifest.json" not in keys and "chunk-00000.parquet" in keys


def test_no_files_for_the_interval(s3_client, s3_prefix):
    put(s3_client, f"{s3_prefix}/2024-03-04/part-0.csv", b"id,name\n1,a\n")  # the day before only
    assert extract_and_stage(make_cfg(s3_prefix, "csv"), INTERVAL, RUN_ID, 1) == []
    (obj,) = s3_client.list_objects_v2(Bucket=STAGING, Prefix=s3_prefix + "/")["Contents"]
    assert obj["Key"].endswith("/manifest.json")
    manifest = json.loads(s3_client.get_object(Bucket=STAGING, Key=obj["Key"])["Body"].read())
    assert manifest["chunks"] == [] and manifest["rows"] == 0


def test_no_files_with_require_data_is_a_clear_failure(s3_client, s3_prefix):
    cfg = make_cfg(s3_prefix, "csv", require_data=True)
    with pytest.raises(
        NoDataError,
        match=rf"no data for interval .* in s3://{LANDING}/{s3_prefix}/{DAY}/ and "
        "require_data is true",
    ):
        extract_and_stage(cfg, INTERVAL, RUN_ID, 1)
    assert staged_keys(s3_client, s3_prefix) == []
