"""The S3 source's file readers (CSV, JSON Lines, Parquet; gzip) on local files: parsing, rejects and bad input.
The same readers run over pyarrow's S3 filesystem in tests/integration/test_s3_source.py."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from sluice.config import PipelineConfig
from sluice.sources.base import LINE_COL, ORIGIN_COLS, SOURCE_COL
from sluice.sources.s3 import SourceReadError, batch_rows, matches, read_object


def make_cfg(fmt: str, chunk_rows: int = 1000, **source) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": "orders",
            "start_date": "2024-01-01",
            "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "in/", "format": fmt, **source},
            "staging": {"url": "file:///tmp/unused", "conn_id": None, "chunk_rows": chunk_rows},
            "target": {
                "table": "orders",
                "primary_key": ["id"],
                "columns": [
                    {"name": "id", "type": "bigint", "nullable": False},
                    {"name": "name", "type": "text"},
                    {"name": "price", "type": "numeric(10,2)", "source_name": "Price"},
                ],
            },
        }
    )


def read(cfg: PipelineConfig, path: Path):
    """(table of all batches, rejects as dicts, batch sizes)."""
    rejects = []
    batches = list(read_object(cfg, pafs.LocalFileSystem(), str(path), f"s3://b/{path.name}", rejects.append))
    table = pa.Table.from_batches(batches).drop_columns(list(ORIGIN_COLS)) if batches else None
    return table, [r.to_dict() for r in rejects], [b.num_rows for b in batches]


def origin(cfg: PipelineConfig, path: Path) -> list[tuple[str, int]]:
    """(source, record number) of every row the reader yields."""
    batches = list(read_object(cfg, pafs.LocalFileSystem(), str(path), f"s3://b/{path.name}", lambda r: None))
    table = pa.Table.from_batches(batches)
    return list(zip(table[SOURCE_COL].cast(pa.string()).to_pylist(), table[LINE_COL].to_pylist(), strict=True))


def test_csv_rows_carry_file_and_record_number_past_ragged_and_non_utf8_lines(tmp_path):
    data = b"id,name\n1,a\n2,b,extra\n3,c\n4\n5,\xff\n6,f\n"
    assert origin(make_cfg("csv"), write(tmp_path, "o.csv", data)) == [
        ("s3://b/o.csv", 2),
        ("s3://b/o.csv", 4),
        ("s3://b/o.csv", 7),
    ]


def test_jsonl_rows_carry_their_line_past_blank_and_bad_lines(tmp_path):
    data = b'{"id": "1"}\n\nnot json\n{"id": "2"}\n[1]\n{"id": "3"}\n'
    assert [n for _, n in origin(make_cfg("jsonl"), write(tmp_path, "o.jsonl", data))] == [1, 4, 6]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    return path


# ---------------------------------------------------------------- csv


def test_csv_columns_are_strings_and_empty_fields_null(tmp_path):
    table, rejects, _ = read(make_cfg("csv"), write(tmp_path, "a.csv", b'id,name,Price\n1,"a, b",1.50\n2,,007\n'))
    assert table.schema == pa.schema([("id", pa.string()), ("name", pa.string()), ("Price", pa.string())])
    assert table.to_pylist() == [
        {"id": "1", "name": "a, b", "Price": "1.50"},
        {"id": "2", "name": None, "Price": "007"},
    ]
    assert rejects == []


def test_csv_options_delimiter_quote_encoding(tmp_path):
    cfg = make_cfg("csv", csv={"delimiter": ";", "quote_char": "'", "encoding": "latin-1"})
    table, _, _ = read(cfg, write(tmp_path, "a.csv", "id;name;Price\n1;'Zoë; Jr';2\n".encode("latin-1")))
    assert table.to_pylist() == [{"id": "1", "name": "Zoë; Jr", "Price": "2"}]


def test_csv_without_header_takes_the_declared_source_columns(tmp_path):
    table, _, _ = read(make_cfg("csv", csv={"header": False}), write(tmp_path, "a.csv", b"1,a,2.5\n2,b,3\n"))
    assert table.column_names == ["id", "name", "Price"] and table.num_rows == 2


def test_csv_gzip_by_suffix_and_explicit(tmp_path):
    data = b"id,name,Price\n1,a,2\n2,b,3\n"
    assert read(make_cfg("csv"), write(tmp_path, "a.csv.gz", data))[0].num_rows == 2
    plain_name = tmp_path / "b.csv"
    plain_name.write_bytes(gzip.compress(data))
    assert read(make_cfg("csv", compression="gzip"), plain_name)[0].num_rows == 2


def test_csv_ragged_rows_are_rejected_with_file_line_reason_and_the_rest_continue(tmp_path):
    data = b"id,name,Price\n1,a,2\n2,b\n3,c,4\n4,d,5,extra\n5,e,6\n"
    table, rejects, _ = read(make_cfg("csv"), write(tmp_path, "r.csv", data))
    assert table["id"].to_pylist() == ["1", "3", "5"]
    assert rejects == [
        {"file": "s3://b/r.csv", "line": 3, "raw": "2,b", "reason": "expected 3 columns, got 2"},
        {"file": "s3://b/r.csv", "line": 5, "raw": "4,d,5,extra", "reason": "expected 3 columns, got 4"},
    ]


def test_an_error_of_on_reject_is_not_reported_as_a_read_error(tmp_path):
    def on_reject(reject):
        raise OSError("staging is down")

    path = write(tmp_path, "r.csv", b"id,name,Price\n1,a,2\n2,b\n")
    with pytest.raises(OSError, match="^staging is down$"):
        list(read_object(make_cfg("csv"), pafs.LocalFileSystem(), str(path), "s3://b/r.csv", on_reject))


def test_csv_invalid_utf8_rejects_the_row_not_the_file(tmp_path):
    data = b"id,name,Price\n1,a,2\n2,b\n3,caf\xe9,4\n4,d,5\n"
    table, rejects, _ = read(make_cfg("csv"), write(tmp_path, "u.csv", data))
    assert table["id"].to_pylist() == ["1", "4"]
    table.validate(full=True)
    assert [r["line"] for r in rejects] == [3, 4]  # the ragged row counts in the numbering
    assert rejects[1]["raw"] == "3,caf\\xe9,4"
    assert rejects[1]["reason"].startswith("invalid UTF-8 bytes in column(s) name;")
    assert "source.csv.encoding" in rejects[1]["reason"]


def test_csv_bytes_the_declared_codec_cannot_decode_fail_the_file(tmp_path):
    cfg = make_cfg("csv", csv={"encoding": "cp1252"})
    with pytest.raises(SourceReadError, match=r"^s3://b/c\.csv: "):
        read(cfg, write(tmp_path, "c.csv", b"id,name,Price\n1,\x81,2\n"))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.csv", b""),
        ("empty.csv.gz", b""),
        ("header.csv", b"id,name,Price\n"),
        ("header.csv.gz", b"id,name,Price\n"),
        ("header_no_eol.csv", b"id,name"),
    ],
)
def test_csv_empty_and_header_only_give_zero_rows(tmp_path, name, data):
    table, rejects, _ = read(make_cfg("csv"), write(tmp_path, name, data))
    assert (table.num_rows if table else 0) == 0 and rejects == []


def test_truncated_gzip_names_the_file(tmp_path):
    whole = gzip.compress(b"id,name,Price\n" + b"1,abcdefgh,2\n" * 5000)
    path = tmp_path / "t.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceReadError, match=r"^s3://b/t\.csv\.gz: "):
        read(make_cfg("csv"), path)


def test_csv_batches_are_bounded(tmp_path):
    data = b"id,name,Price\n" + b"".join(b"%d,n,1\n" % i for i in range(2500))
    table, _, sizes = read(make_cfg("csv", chunk_rows=1000), write(tmp_path, "big.csv", data))
    assert table.num_rows == 2500 and max(sizes) <= 1000


# ---------------------------------------------------------------- json lines


def test_jsonl_values_become_text_and_bad_lines_are_rejected(tmp_path):
    data = (
        b'{"id": 1, "name": "a", "Price": 1.5, "ok": true, "tags": ["x", 2], "meta": {"k": null}}\n'
        b"\n"
        b'{"id": 2, "name": null}\n'
        b"{not json}\n"
        b"[1, 2]\n"
        b'{"id": 3, "name": "caf\xe9"}\n'
        b'{"id": 4, "new": "x"}\r\n'
    )
    table, rejects, _ = read(make_cfg("jsonl"), write(tmp_path, "a.jsonl", data))
    assert table.to_pylist() == [
        {"id": "1", "name": "a", "Price": "1.5", "ok": "true", "tags": '["x",2]', "meta": '{"k":null}', "new": None},
        {"id": "2", "name": None, "Price": None, "ok": None, "tags": None, "meta": None, "new": None},
        {"id": "4", "name": None, "Price": None, "ok": None, "tags": None, "meta": None, "new": "x"},
    ]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejects] == [
        (4, "invalid JSON"),
        (5, "not a JSON object but list"),
        (6, "invalid UTF-8 at byte 22"),
    ]
    assert rejects[2]["raw"] == '{"id": 3, "name": "caf\\xe9"}'


def test_jsonl_gzip_empty_and_bounded(tmp_path):
    data = b"".join(b'{"id": %d}\n' % i for i in range(2500))
    table, _, sizes = read(make_cfg("jsonl", chunk_rows=1000), write(tmp_path, "a.jsonl.gz", data))
    assert table["id"].to_pylist() == [str(i) for i in range(2500)] and max(sizes) <= 1000
    assert read(make_cfg("jsonl"), write(tmp_path, "e.jsonl", b""))[0] is None
    assert read(make_cfg("jsonl"), write(tmp_path, "e.jsonl.gz", b""))[0] is None


# ---------------------------------------------------------------- parquet


def parquet_file(tmp_path: Path, rows: int = 3000, name: str = "a.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.table({"id": range(rows), "name": [f"n{i}" for i in range(rows)]}), path, row_group_size=1200)
    return path


def test_parquet_keeps_types_and_bounds_batches(tmp_path):
    table, _, sizes = read(make_cfg("parquet", chunk_rows=500), parquet_file(tmp_path))
    assert table.schema.field("id").type == pa.int64() and table.num_rows == 3000
    assert max(sizes) <= 500 == batch_rows(make_cfg("parquet", chunk_rows=500))


def test_gzipped_parquet_is_read_through_a_spool_file(tmp_path):
    path = parquet_file(tmp_path)
    gz = write(tmp_path, "a.parquet.gz", path.read_bytes())
    assert read(make_cfg("parquet"), gz)[0].num_rows == 3000


@pytest.mark.parametrize("damage", ["garbage", "truncated", "footer_only"])
def test_corrupt_parquet_names_the_file(tmp_path, damage):
    good = parquet_file(tmp_path).read_bytes()
    data = {
        "garbage": b"this is not parquet at all" * 10,
        "truncated": good[: len(good) // 2],
        "footer_only": b"PAR1" + b"\0" * 64 + good[-8:],
    }[damage]
    with pytest.raises(SourceReadError, match=r"^s3://b/bad\.parquet: "):
        read(make_cfg("parquet"), write(tmp_path, "bad.parquet", data))


def test_empty_parquet_object_gives_zero_rows(tmp_path):
    assert read(make_cfg("parquet"), write(tmp_path, "e.parquet", b""))[0] is None


# ---------------------------------------------------------------- listing


@pytest.mark.parametrize(
    ("key", "pattern", "expected"),
    [
        ("part-0.csv.gz", "*", True),
        ("sub/part-0.csv.gz", "*.csv.gz", True),  # no '/' in the pattern: the file name is matched
        ("sub/part-0.csv", "*.csv.gz", False),
        ("sub/part-0.csv", "sub/*.csv", True),  # a '/' in the pattern: the key below the prefix is matched
        ("other/part-0.csv", "sub/*.csv", False),
        ("_SUCCESS", "part-*", False),
    ],
)
def test_pattern_matching(key, pattern, expected):
    assert matches(key, pattern) is expected
