"""The S3 source against the real S3 endpoint of the test stack (moto server), through the sluice_s3 connection."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sluice.config import PipelineConfig
from sluice.interval import Interval
from sluice.sources import iter_source
from sluice.sources.base import ORIGIN_COLS
from sluice.sources.s3 import SourceReadError, list_source_keys

pytestmark = pytest.mark.integration

BUCKET = "sluice-landing"
INTERVAL = Interval(datetime(2024, 3, 5, tzinfo=UTC), datetime(2024, 3, 6, tzinfo=UTC))


def make_cfg(prefix: str, fmt: str, chunk_rows: int = 1000, **source) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": "orders",
            "start_date": "2024-01-01",
            "source": {"kind": "s3", "bucket": BUCKET, "prefix": prefix + "/{{ ds }}/", "format": fmt, **source},
            "staging": {"url": "file:///tmp/unused", "conn_id": None, "chunk_rows": chunk_rows},
            "target": {
                "table": "orders",
                "primary_key": ["id"],
                "columns": [{"name": "id", "type": "bigint", "nullable": False}, {"name": "name", "type": "text"}],
            },
        }
    )


def put(s3_client, key: str, data: bytes) -> None:
    s3_client.put_object(Bucket=BUCKET, Key=key, Body=data)


def parquet_bytes(table: pa.Table, **kwargs) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


def collect(cfg: PipelineConfig):
    rejects = []
    batches = [b.drop_columns(list(ORIGIN_COLS)) for b in iter_source(cfg, INTERVAL, rejects.append)]
    return (pa.Table.from_batches(batches) if batches else None), rejects, [b.num_rows for b in batches]


def test_lists_only_the_interval_prefix_matching_the_pattern_in_key_order(s3_client, s3_prefix):
    for key in [
        "2024-03-05/b.csv",
        "2024-03-05/a.csv",
        "2024-03-05/sub/c.csv",
        "2024-03-05/_SUCCESS",
        "2024-03-05/notes.txt",
        "2024-03-06/a.csv",
    ]:
        put(s3_client, f"{s3_prefix}/{key}", b"id,name\n1,x\n")
    keys = list_source_keys(make_cfg(s3_prefix, "csv", pattern="*.csv"), INTERVAL)
    assert keys == [f"{s3_prefix}/2024-03-05/{k}" for k in ("a.csv", "b.csv", "sub/c.csv")]


def test_csv_files_stream_in_key_order(s3_client, s3_prefix):
    put(s3_client, f"{s3_prefix}/2024-03-05/part-1.csv", b"id,name\n3,c\n4,d\n")
    put(s3_client, f"{s3_prefix}/2024-03-05/part-0.csv.gz", gzip.compress(b"id,name\n1,a\n2,b\n"))
    table, rejects, _ = collect(make_cfg(s3_prefix, "csv"))
    assert table.to_pylist() == [{"id": str(i), "name": n} for i, n in zip(range(1, 5), "abcd", strict=True)]
    assert rejects == []


def test_csv_ragged_row_is_a_reject_with_the_object_url(s3_client, s3_prefix):
    key = f"{s3_prefix}/2024-03-05/part-0.csv"
    put(s3_client, key, b"id,name\n1,a\n2,b,oops\n3,c\n")
    table, rejects, _ = collect(make_cfg(s3_prefix, "csv"))
    assert table["id"].to_pylist() == ["1", "3"]
    assert [r.to_dict() for r in rejects] == [
        {"file": f"s3://{BUCKET}/{key}", "line": 3, "raw": "2,b,oops", "reason": "expected 2 columns, got 3"}
    ]


def test_csv_non_utf8_row_is_a_reject(s3_client, s3_prefix):
    put(s3_client, f"{s3_prefix}/2024-03-05/part-0.csv", b"id,name\n1,a\n2,\xff\xfe\n3,c\n")
    table, rejects, _ = collect(make_cfg(s3_prefix, "csv"))
    assert table["id"].to_pylist() == ["1", "3"]
    assert rejects[0].line == 3 and rejects[0].reason.startswith("invalid UTF-8")


def test_jsonl_gzip(s3_client, s3_prefix):
    data = b"".join(b'{"id": %d, "name": "n%d"}\n' % (i, i) for i in range(2500)) + b"oops\n"
    put(s3_client, f"{s3_prefix}/2024-03-05/events.jsonl.gz", gzip.compress(data))
    table, rejects, sizes = collect(make_cfg(s3_prefix, "jsonl", chunk_rows=1000))
    assert table.num_rows == 2500 and max(sizes) <= 1000
    assert [(r.line, r.raw) for r in rejects] == [(2501, "oops")]


def test_parquet_by_row_groups(s3_client, s3_prefix):
    table = pa.table(
        {"id": pa.array(range(5000), pa.int64()), "name": pa.array([f"n{i}" for i in range(5000)], pa.string_view())}
    )
    put(s3_client, f"{s3_prefix}/2024-03-05/part-0.parquet", parquet_bytes(table, row_group_size=2000))
    got, rejects, sizes = collect(make_cfg(s3_prefix, "parquet", chunk_rows=1500))
    assert got["id"].to_pylist() == list(range(5000)) and max(sizes) <= 1500 and rejects == []


@pytest.mark.parametrize(
    ("name", "data"), [("empty.csv", b""), ("header.csv", b"id,name\n"), ("header.csv.gz", gzip.compress(b"id,name\n"))]
)
def test_empty_and_header_only_csv_give_zero_rows(s3_client, s3_prefix, name, data):
    put(s3_client, f"{s3_prefix}/2024-03-05/{name}", data)
    table, rejects, _ = collect(make_cfg(s3_prefix, "csv"))
    assert (table.num_rows if table else 0) == 0 and rejects == []


def test_corrupt_parquet_error_names_the_object(s3_client, s3_prefix):
    good = parquet_bytes(pa.table({"id": range(1000)}))
    key = f"{s3_prefix}/2024-03-05/part-0.parquet"
    put(s3_client, key, good[: len(good) // 2])
    with pytest.raises(SourceReadError, match=rf"^s3://{BUCKET}/{key}: "):
        collect(make_cfg(s3_prefix, "parquet"))


def test_truncated_gzip_error_names_the_object(s3_client, s3_prefix):
    whole = gzip.compress(b"id,name\n" + b"1,abcdefgh\n" * 5000)
    key = f"{s3_prefix}/2024-03-05/part-0.csv.gz"
    put(s3_client, key, whole[:-40])
    with pytest.raises(SourceReadError, match=rf"^s3://{BUCKET}/{key}: "):
        collect(make_cfg(s3_prefix, "csv"))


def test_no_files_for_the_interval_yields_nothing(s3_client, s3_prefix):
    put(s3_client, f"{s3_prefix}/2024-03-04/part-0.csv", b"id,name\n1,a\n")  # another day
    assert collect(make_cfg(s3_prefix, "csv")) == (None, [], [])
