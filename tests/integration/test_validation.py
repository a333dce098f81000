"""validate_chunk with real GX Core and a real PostgreSQL (sluice.quarantine); staging on file:// or the S3 endpoint.

The tests without the integration mark need no service (GX and SQL strings only)."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest
from sluice.config import PipelineConfig
from sluice.interval import Interval
from sluice.sources.base import Reject
from sluice.staging import StagingStore
from sluice.validate.chunk import (
    ExpectationError,
    Level,
    ValidationFailed,
    classify,
    validate_chunk,
)
from sluice.validate.gate import QualityGateFailed, quality_gate

INTERVAL = Interval(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))
RUN_ID = "scheduled__2024-03-01T00:00:00+00:00"
NOT_NULL_ID = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}
QTY_RANGE = {
    "type": "expect_column_values_to_be_between",
    "kwargs": {"column": "qty", "min_value": 0, "max_value": 100},
}


def make_cfg(staging_url: str, expectations=(), name: str | None = None, **target) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": name or f"t_{uuid.uuid4().hex[:10]}",
            "start_date": "2024-01-01",
            "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "orders/", "format": "csv"},
            "staging": {"url": staging_url},
            "target": {
                "table": "orders",
                "primary_key": ["id"],
                "columns": [
                    {"name": "id", "type": "bigint", "nullable": False},
                    {"name": "qty", "type": "integer"},
                    {"name": "price", "type": "numeric(10,2)"},
                    {"name": "day", "type": "date"},
                ],
                **target,
            },
            "expectations": list(expectations),
            "quality": {"max_quarantine_fraction": 0.5},
        }
    )


def rows(n: int, **overrides) -> pa.Table:
    """n good raw rows (strings, as a CSV source stages them); overrides: {column: {row: value}}."""
    data = {
        "id": [str(i) for i in range(n)],
        "qty": [str(i % 50) for i in range(n)],
        "price": [f"{i}.25" for i in range(n)],
        "day": ["2024-03-01"] * n,
    }
    for column, changes in overrides.items():
        for i, value in changes.items():
            data[column][i] = value
    return pa.table(data)


def stage(cfg: PipelineConfig, table: pa.Table, index: int = 0, rejects=()) -> dict:
    return StagingStore(cfg.staging, cfg.name, INTERVAL, RUN_ID).write_chunk(index, table, rejects)


def quarantined(pg, cfg: PipelineConfig, chunk: int | None = None) -> list[dict]:
    sql = (
        "SELECT chunk, row_number, row, reasons, interval_start, source, source_line, kind, reason, status, generation "
        "FROM sluice.quarantine WHERE pipeline = %s"
    )
    args = [cfg.name]
    if chunk is not None:
        sql, args = sql + " AND chunk = %s", [*args, chunk]
    cur = pg.execute(sql + " ORDER BY chunk, row_number NULLS LAST, id", args)
    return [dict(zip([d.name for d in cur.description], r, strict=True)) for r in cur.fetchall()]


@pytest.fixture
def new_cfg(tmp_path, pg):
    """Config factory with file:// staging in tmp_path; its quarantine rows are deleted afterwards."""
    made: list[PipelineConfig] = []

    def factory(expectations=(), **target) -> PipelineConfig:
        made.append(make_cfg(f"file://{tmp_path}", expectations, **target))
        return made[-1]

    yield factory
    for cfg in made:
        pg.execute("DELETE FROM sluice.quarantine WHERE pipeline = %s", (cfg.name,))


# ---------------------------------------------------------------- bad input


@pytest.mark.integration
def test_null_in_primary_key_column_is_quarantined(new_cfg, pg):
    cfg = new_cfg([NOT_NULL_ID])
    report = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, rows(5, id={2: None})))
    assert (report["rows_in"], report["rows_good"], report["rows_quarantined"]) == (5, 4, 1)
    [q] = quarantined(pg, cfg)
    assert q["row_number"] == 2 and q["row"]["id"] is None and q["row"]["qty"] == "2"
    assert q["reasons"] == [{"kind": "cast", "column": "id", "value": None, "reason": "null in non-nullable column"}]
    assert q["interval_start"] == INTERVAL.start
    good = StagingStore(cfg.staging, cfg.name, INTERVAL, RUN_ID).read_table(report["good_key"])
    assert good["id"].to_pylist() == [0, 1, 3, 4]


@pytest.mark.integration
def test_type_misfit_is_quarantined_with_column_and_value(new_cfg, pg):
    cfg = new_cfg()
    report = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, rows(4, qty={1: "abc"}, day={3: "2024-02-30"})))
    assert report["rows_quarantined"] == 2 and report["rows_cast_failed"] == 2
    q = quarantined(pg, cfg)
    assert q[0]["reasons"] == [{"kind": "cast", "column": "qty", "value": "abc", "reason": "not an integer"}]
    assert q[0]["row"] == {"id": "1", "qty": "abc", "price": "1.25", "day": "2024-03-01"}
    assert q[1]["reasons"] == [
        {"kind": "cast", "column": "day", "value": "2024-02-30", "reason": "not a date (expected YYYY-MM-DD)"}
    ]
    assert report["quarantine_reasons"] == {
        "cast qty: not an integer": 1,
        "cast day: not a date (expected YYYY-MM-DD)": 1,
    }


@pytest.mark.integration
def test_severity_fail_raises_a_readable_summary(new_cfg, pg):
    cfg = new_cfg([{**QTY_RANGE, "severity": "fail"}])
    with pytest.raises(ValidationFailed) as err:
        validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, rows(10, qty={3: "500", 7: "-1"})))
    msg = str(err.value)
    assert f"pipeline {cfg.name}, chunk 0" in msg
    assert "expect_column_values_to_be_between(qty) [fail]: 2 of 10 row(s) unexpected, e.g. [500" in msg
    assert quarantined(pg, cfg) == []


@pytest.mark.integration
def test_severity_warn_only_logs(new_cfg, pg, caplog):
    cfg = new_cfg([{**QTY_RANGE, "severity": "warn"}])
    with caplog.at_level(logging.WARNING, logger="sluice.validate.chunk"):
        report = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, rows(10, qty={3: "500"})))
    assert report["rows_good"] == 10 and report["rows_quarantined"] == 0
    assert "expect_column_values_to_be_between(qty) [warn]: 1 of 10" in caplog.text
    assert report["warnings"] and quarantined(pg, cfg) == []


@pytest.mark.integration
def test_more_than_200_failing_rows_are_all_quarantined(new_cfg, pg):
    """GX caps unexpected_list at 200 values; unexpected_index_list is complete, so all 450 rows go."""
    cfg = new_cfg([QTY_RANGE])
    bad = {i: "1000" for i in range(0, 900, 2)}
    report = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, rows(1000, qty=bad)))
    assert report["rows_quarantined"] == 450 and report["rows_expectation_failed"] == 450
    q = quarantined(pg, cfg)
    assert len(q) == 450 and [r["row_number"] for r in q] == sorted(bad)
    assert q[0]["reasons"] == [
        {"kind": "expectation", "expectation": "expect_column_values_to_be_between", "column": "qty", "value": "1000"}
    ]
    assert q[0]["row"]["qty"] == "1000"


@pytest.mark.integration
def test_a_row_failing_several_checks_is_quarantined_once_with_every_reason(new_cfg, pg):
    cfg = new_cfg(
        [QTY_RANGE, {"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "max_value": 100}}]
    )
    report = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, rows(3, qty={1: "101"}, price={1: "200"})))
    assert report["rows_quarantined"] == 1
    [q] = quarantined(pg, cfg)
    assert [r["column"] for r in q["reasons"]] == ["qty", "price"]


@pytest.mark.integration
def test_retry_replaces_the_chunks_quarantine_rows(new_cfg, pg):
    cfg = new_cfg([QTY_RANGE])
    other = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, rows(5, qty={0: "x"}), index=1))
    first = stage(cfg, rows(10, qty={1: "x", 2: "999"}))
    validate_chunk(cfg, INTERVAL, RUN_ID, first)
    validate_chunk(cfg, INTERVAL, RUN_ID, first)  # a retry of the same task
    assert len(quarantined(pg, cfg, chunk=0)) == 2
    changed = stage(cfg, rows(10, qty={4: "y"}))  # the run was cleared and re-staged: one bad row now
    report = validate_chunk(cfg, INTERVAL, RUN_ID, changed)
    assert report["rows_quarantined"] == 1
    assert [q["row_number"] for q in quarantined(pg, cfg, chunk=0)] == [4]
    assert len(quarantined(pg, cfg, chunk=1)) == other["rows_quarantined"] == 1


@pytest.mark.integration
def test_source_rejects_are_quarantined_and_conservation_holds(new_cfg, pg):
    cfg = new_cfg([QTY_RANGE])
    rejects = [
        Reject("s3://sluice-landing/orders/a.csv", 7, "1,2,3,4,5,6", "expected 4 fields, saw 6"),
        Reject("s3://sluice-landing/orders/a.csv", 9, "\x00oops", "invalid UTF-8"),
    ]
    ref = stage(cfg, rows(6, qty={0: "nope", 5: "101"}), rejects=rejects)
    report = validate_chunk(cfg, INTERVAL, RUN_ID, ref)
    assert report["rows_in"] == 8 == report["rows_good"] + report["rows_quarantined"]
    assert (report["rows_cast_failed"], report["rows_expectation_failed"], report["rows_rejected"]) == (1, 1, 2)
    q = quarantined(pg, cfg)
    assert [r["row_number"] for r in q] == [0, 5, None, None]
    assert q[2]["row"] == {"file": "s3://sluice-landing/orders/a.csv", "line": 7, "raw": "1,2,3,4,5,6"}
    assert q[2]["reasons"] == [{"kind": "parse", "reason": "expected 4 fields, saw 6", "value": "1,2,3,4,5,6"}]
    assert [(r["source"], r["source_line"], r["kind"]) for r in q[2:]] == [
        ("s3://sluice-landing/orders/a.csv", 7, "parse"),
        ("s3://sluice-landing/orders/a.csv", 9, "parse"),
    ]
    assert [r["reason"] for r in q[:2]] == ["cast qty: not an integer", "expect_column_values_to_be_between(qty)"]
    assert q[3]["row"]["raw"] == "\ufffdoops"  # jsonb cannot hold NUL
    store = StagingStore(cfg.staging, cfg.name, INTERVAL, RUN_ID)
    assert store.read_table(report["quarantine_key"]).num_rows == 4


@pytest.mark.integration
def test_chunk_with_only_rejects(new_cfg, pg):
    cfg = new_cfg([QTY_RANGE])
    empty = pa.table({c: pa.array([], pa.string()) for c in ("id", "qty", "price", "day")})
    report = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, empty, rejects=[Reject("a.csv", 1, "x", "bad")]))
    assert (report["rows_in"], report["rows_good"], report["rows_quarantined"]) == (1, 0, 1)
    assert report["gx_key"] is None and len(quarantined(pg, cfg)) == 1


@pytest.mark.integration
def test_good_rows_keep_declared_types_and_the_gx_result_is_kept(new_cfg, pg):
    cfg = new_cfg([NOT_NULL_ID, QTY_RANGE], on_extra_columns="evolve")
    table = rows(300, qty={i: "1000" for i in range(250)}).append_column("channel", pa.array(["web"] * 300))
    report = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, table))
    store = StagingStore(cfg.staging, cfg.name, INTERVAL, RUN_ID)
    good = store.read_table(report["good_key"])
    assert good.schema.types == [pa.int64(), pa.int32(), pa.decimal128(10, 2), pa.date32(), pa.string()]
    assert good.column_names[-1] == "channel" and report["extra_columns"] == ["channel"]
    assert report["gx_key"].endswith("/chunk-00000.gx.json")
    doc = json.loads(store.read_bytes(report["gx_key"]))
    assert {r["expectation_config"]["type"] for r in doc["results"]} == {NOT_NULL_ID["type"], QTY_RANGE["type"]}
    between = next(r for r in doc["results"] if r["expectation_config"]["type"] == QTY_RANGE["type"])
    assert between["result"]["unexpected_count"] == 250 and "unexpected_index_list" not in between["result"]


@pytest.mark.integration
def test_batch_expectations_are_judged_on_the_interval_by_the_gate(new_cfg, pg):
    cfg = new_cfg(
        [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 15}},
            {"type": "expect_column_max_to_be_between", "kwargs": {"column": "price", "max_value": 20}},
            {"type": "expect_column_min_to_be_between", "kwargs": {"column": "day", "min_value": "2024-03-01"}},
            {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["id", "qty", "price", "day"]}},
        ]
    )
    reports = [validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, rows(10), index=i)) for i in range(2)]
    assert reports[0]["batch_checks"]["stats"]["price"]["max"] == 9.25
    assert reports[0]["batch_checks"]["stats"]["day"]["min"] == "2024-03-01"
    assert json.loads(json.dumps(reports)) == reports  # XCom-ready
    assert reports[0]["batch_checks"]["chunkwise"][0]["success"] is True
    assert len(quality_gate(cfg, reports)) == 2  # 20 rows in all: each chunk alone (10) would have failed
    with pytest.raises(QualityGateFailed, match="expect_table_row_count_to_be_between"):
        quality_gate(cfg, reports[:1])


@pytest.mark.integration
def test_missing_required_column_fails_the_chunk_clearly(new_cfg, pg):
    from sluice.validate.cast import CastSchemaError

    cfg = new_cfg()
    table = rows(3).rename_columns(["order_id", "qty", "price", "day"])
    with pytest.raises(CastSchemaError, match="Did you mean 'order_id'"):
        validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, table))


@pytest.mark.integration
def test_missing_nullable_column_fails_by_default_and_is_null_and_reported_under_on_missing_null(new_cfg, pg):
    from sluice.validate.cast import CastSchemaError

    table = rows(3).rename_columns(["id", "quantity", "price", "day"])  # qty renamed upstream
    cfg = new_cfg()
    with pytest.raises(
        CastSchemaError, match="nullable column qty is missing from the source. Did you mean 'quantity'"
    ):
        validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, table))
    assert quarantined(pg, cfg) == []
    cfg = new_cfg(on_missing_columns="null")
    report = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, table))
    assert report["missing_columns"] == ["qty"] and report["rows_good"] == 3
    good = StagingStore(cfg.staging, cfg.name, INTERVAL, RUN_ID).read_table(report["good_key"])
    assert good["qty"].to_pylist() == [None, None, None]


UNSTORABLE_COLUMNS = [
    {"name": "id", "type": "bigint", "nullable": False},
    {"name": "note", "type": "text"},
    {"name": "doc", "type": "jsonb"},
    {"name": "day", "type": "date"},
    {"name": "at", "type": "timestamptz"},
    {"name": "amount", "type": "numeric(10,2)"},
    {"name": "ratio", "type": "double"},
]


@pytest.mark.integration
def test_values_postgres_cannot_store_are_quarantined_and_the_good_rows_copy(new_cfg, pg, pg_schema):
    """One chunk with a NUL in text, the \\u0000 escape in jsonb, year 0, a timestamp before year 1 once in UTC and
    NaN/Infinity for numeric(p,s): those rows are quarantined with their reasons (NUL kept readable in
    sluice.quarantine), and the rest, including the edges PostgreSQL does store, COPY into a real table."""
    from sluice.loading.postgres import load_chunk

    good = {
        "id": "0",
        "note": "plain",
        "doc": '{"k": "a\\\\u0000b"}',  # an escaped backslash before u0000: stored as is
        "day": "0001-01-01",
        "at": "9999-12-31T23:59:59.999999Z",
        "amount": "12.34",
        "ratio": "NaN",
    }
    bad = {
        1: ("note", "a\x00b", "contains a NUL character"),
        2: ("doc", '{"k": "a\\u0000b"}', "contains \\u0000 (NUL)"),
        3: ("day", "0000-01-01", "out of range for date"),
        4: ("at", "0001-01-01T00:30:00+01:00", "out of range for timestamptz"),
        5: ("amount", "NaN", "not a finite number"),
        6: ("amount", "Infinity", "not a finite number"),
    }
    data = {c["name"]: [] for c in UNSTORABLE_COLUMNS}
    for i in range(10):
        row = {**good, "id": str(i), "ratio": {7: "-Infinity", 8: "1.5", 9: "Infinity"}.get(i, "NaN")}
        if i == 9:
            row.update(day="9999-12-31", at="0001-01-01T00:00:00Z", doc='"\\ud83d\\ude00"')
        if i in bad:
            row[bad[i][0]] = bad[i][1]
        for k, v in row.items():
            data[k].append(v)
    cfg = new_cfg(schema=pg_schema, table="unstorable", columns=UNSTORABLE_COLUMNS)
    report = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, pa.table(data)))
    assert (report["rows_in"], report["rows_good"], report["rows_quarantined"]) == (10, 4, 6)
    q = quarantined(pg, cfg)
    assert [r["row_number"] for r in q] == sorted(bad)
    for r in q:
        column, value, reason = bad[r["row_number"]]
        [why] = r["reasons"]
        assert why["column"] == column and why["reason"].startswith(reason), why
        assert r["row"][column] == value.replace("\x00", "\ufffd")  # jsonb cannot hold NUL: shown as U+FFFD
    try:
        result = load_chunk(cfg, INTERVAL, RUN_ID, report)
        assert result["rows_loaded"] == 4
        stored = pg.execute(
            f"SELECT id, note, doc::text, day::text, at AT TIME ZONE 'UTC', amount, ratio::text "
            f'FROM "{pg_schema}".unstorable ORDER BY id'
        ).fetchall()
    finally:
        pg.execute("DELETE FROM sluice.load_ledger WHERE pipeline = %s", (cfg.name,))
    assert [r[0] for r in stored] == [0, 7, 8, 9]
    assert [r[6] for r in stored] == ["NaN", "-Infinity", "1.5", "Infinity"]  # float8 keeps NaN and ±Infinity
    assert stored[0][2] == '{"k": "a\\\\u0000b"}' and stored[3][2] == '"😀"'
    assert (stored[0][3], stored[3][3]) == ("0001-01-01", "9999-12-31")
    assert stored[0][4] == datetime(9999, 12, 31, 23, 59, 59, 999999) and stored[3][4] == datetime(1, 1, 1)
    assert {r[5] for r in stored} == {Decimal("12.34")}


@pytest.mark.integration
def test_s3_staging(s3_client, s3_prefix, pg):
    cfg = make_cfg(f"s3://sluice-staging/{s3_prefix}", [QTY_RANGE])
    try:
        report = validate_chunk(cfg, INTERVAL, RUN_ID, stage(cfg, rows(20, qty={3: "500"})))
        assert report["good_key"].startswith(f"s3://sluice-staging/{s3_prefix}/{cfg.name}/")
        keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket="sluice-staging", Prefix=s3_prefix)["Contents"]}
        assert {k.rsplit("/", 1)[1] for k in keys} == {
            "chunk-00000.parquet",
            "chunk-00000.good.parquet",
            "chunk-00000.quarantine.parquet",
            "chunk-00000.gx.json",
        }
        assert len(quarantined(pg, cfg)) == 1
    finally:
        pg.execute("DELETE FROM sluice.quarantine WHERE pipeline = %s", (cfg.name,))
        for obj in s3_client.list_objects_v2(Bucket="sluice-staging", Prefix=s3_prefix).get("Contents", []):
            s3_client.delete_object(Bucket="sluice-staging", Key=obj["Key"])


# ---------------------------------------------------------------- config errors and SQL (no services)


def test_expectations_are_classified_and_bad_ones_explained(tmp_path):
    cfg = make_cfg(
        f"file://{tmp_path}",
        [
            NOT_NULL_ID,
            {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 3}},
            {"type": "expect_column_to_exist", "kwargs": {"column": "id"}},
            {
                "type": "expect_column_pair_values_a_to_be_greater_than_b",
                "kwargs": {"column_A": "price", "column_B": "qty"},
            },
        ],
    )
    assert [classify(s) for s in cfg.expectations] == [Level.row, Level.combined, Level.chunkwise, Level.row]
    typo = make_cfg(f"file://{tmp_path}", [{"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "id"}}])
    with pytest.raises(ExpectationError, match="did you mean 'expect_column_values_to_not_be_null'"):
        classify(typo.expectations[0])
    median = make_cfg(
        f"file://{tmp_path}",
        [{"type": "expect_column_median_to_be_between", "kwargs": {"column": "qty", "min_value": 1}}],
    )
    with pytest.raises(ExpectationError, match="cannot be built from per-chunk results"):
        classify(median.expectations[0])


def test_expectation_kwargs_are_checked_by_gx_before_any_data_is_read(tmp_path):
    cfg = make_cfg(
        f"file://{tmp_path}",
        [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "qty", "min_value": 0, "maxvalue": 3}}],
    )
    with pytest.raises(ExpectationError, match="expect_column_values_to_be_between"):
        classify(cfg.expectations[0])
    with pytest.raises(ExpectationError) as err:
        classify(cfg.expectations[0])
    problem = err.value.problems[0]  # structured, so `sluice lint` can point at the line of the kwarg
    assert (problem.loc, problem.message, problem.hint) == (
        ("kwargs", "maxvalue"),
        "unknown kwarg 'maxvalue'",
        "did you mean 'max_value'?",
    )


@pytest.mark.integration
def test_a_chunk_validation_left_unchanged_is_not_written_twice(new_cfg, pg, warehouse_dsn):
    """Rows already in the declared types (a Parquet source) with nothing quarantined: the report points the loader
    at the staged chunk itself and names the columns to read (the provenance columns stay behind); one bad row and
    the good rows get a file of their own again."""
    from sluice.loading.postgres import load_chunk
    from sluice.sources.base import ORIGIN_COLS, with_origin

    cfg = new_cfg([QTY_RANGE], schema=f"it_{uuid.uuid4().hex[:8]}")
    typed = pa.record_batch(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "qty": pa.array([5, 6, 7], pa.int32()),
            "price": pa.array([Decimal("1.25"), Decimal("2.50"), None], pa.decimal128(10, 2)),
            "day": pa.array([datetime(2024, 3, 1).date()] * 3, pa.date32()),
        }
    )
    chunk = stage(cfg, pa.Table.from_batches([with_origin(typed, "s3://b/part-0.parquet", 1)]))
    report = validate_chunk(cfg, INTERVAL, RUN_ID, chunk)
    assert (report["good_key"], report["good_columns"]) == (chunk["key"], ["id", "qty", "price", "day"])
    store = StagingStore(cfg.staging, cfg.name, INTERVAL, RUN_ID, chunk["generation"])
    assert store.exists(store.derived_key(0, "quarantine")) and not store.exists(store.derived_key(0, "good"))
    assert set(ORIGIN_COLS) <= set(store.read_table(chunk["key"]).column_names)
    result = load_chunk(cfg, INTERVAL, RUN_ID, {**report, "superseded_key": None})
    assert result["inserted"] == 3
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        assert conn.execute(f'SELECT id, qty, price FROM "{cfg.target.schema_}".orders ORDER BY id').fetchall() == [
            (1, 5, Decimal("1.25")),
            (2, 6, Decimal("2.50")),
            (3, 7, None),
        ]
        conn.execute(f'DROP SCHEMA "{cfg.target.schema_}" CASCADE')
    bad = typed.set_column(1, "qty", pa.array([5, 600, 7], pa.int32()))
    staged = stage(cfg, pa.Table.from_batches([with_origin(bad, "s3://b/p", 1)]), 1)
    again = validate_chunk(cfg, INTERVAL, RUN_ID, staged)
    assert again["good_key"] == store.derived_key(1, "good") and again["good_columns"] is None
    assert store.read_table(again["good_key"])["id"].to_pylist() == [1, 3]
