"""The config model on valid input: types, defaults, templates, round trip."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sluice.config import (
    ColumnSpec,
    ColumnType,
    ConfigError,
    ExtraColumnsPolicy,
    PipelineConfig,
    Severity,
    WriteMode,
    deep_merge,
    find_pipeline_file,
    json_schema,
    load_all,
    load_defaults,
    load_pipeline,
    render,
)
from sluice.interval import Interval

FIXTURES = Path(__file__).parent / "fixtures" / "config"
REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
ORDERS = FIXTURES / "orders.yaml"


@pytest.fixture(scope="module")
def defaults():
    return load_defaults(REPO_CONFIG)


@pytest.fixture(scope="module")
def orders(defaults) -> PipelineConfig:
    return load_pipeline(ORDERS, defaults)


def test_valid_file_loads_with_defaults_merged(orders):
    assert orders.name == "orders" and orders.source_file == str(ORDERS)
    assert orders.source.kind == "s3" and orders.source.csv.delimiter == "|" and orders.source.csv.header is True
    assert orders.target.schema_ == "sales" and orders.target.conn_id == "sluice_warehouse"
    assert orders.target.write_mode is WriteMode.upsert
    assert orders.target.on_extra_columns is ExtraColumnsPolicy.ignore
    assert orders.expectations[0].severity is Severity.quarantine
    assert orders.staging.url == "s3://sluice-staging" and orders.staging.chunk_rows == 250_000
    assert orders.retries.retries == 3 and orders.retries.max_delay_seconds == 300
    assert orders.quality.max_quarantine_fraction == 0.05
    assert orders.alerts.channels == ["sluice_slack", "sluice_discord"] and orders.alerts.on_retry is False
    assert orders.deadline.after_interval_end == timedelta(hours=2)
    assert orders.start_date == date(2024, 1, 1) and orders.catchup is False
    assert orders.cron == "0 2 * * *"
    assert f"{orders.target.write_mode}" == "upsert"  # StrEnum: safe in f-strings, paths and SQL


def test_round_trip_through_json(orders):
    dumped = orders.model_dump(mode="json", by_alias=True)
    assert dumped["target"]["schema"] == "sales"
    assert PipelineConfig.model_validate(dumped) == orders


def test_pipeline_overrides_defaults_and_lists_replace(tmp_path, defaults):
    text = ORDERS.read_text() + "alerts:\n  channels: [team_slack]\nstaging:\n  chunk_rows: 1000\n"
    path = tmp_path / "p.yaml"
    path.write_text(text)
    cfg = load_pipeline(path, defaults)
    assert cfg.alerts.channels == ["team_slack"]
    assert cfg.staging.chunk_rows == 1000 and cfg.staging.url == "s3://sluice-staging"


def test_deep_merge():
    assert deep_merge({"a": {"x": 1, "y": 2}, "l": [1]}, {"a": {"y": 3}, "l": [2]}) == {"a": {"x": 1, "y": 3}, "l": [2]}


@pytest.mark.parametrize(
    ("text", "pg", "arrow"),
    [
        ("smallint", "smallint", pa.int16()),
        ("integer", "integer", pa.int32()),
        ("bigint", "bigint", pa.int64()),
        ("numeric(12, 2)", "numeric(12,2)", pa.decimal128(12, 2)),
        ("double", "double precision", pa.float64()),
        ("boolean", "boolean", pa.bool_()),
        ("text", "text", pa.string()),
        ("jsonb", "jsonb", pa.string()),
        ("date", "date", pa.date32()),
        ("timestamp", "timestamp", pa.timestamp("us")),
        ("timestamptz", "timestamptz", pa.timestamp("us", tz="UTC")),
    ],
)
def test_column_types(text, pg, arrow):
    col = ColumnSpec(name="c", type=text)
    assert col.pg_type == pg and col.arrow_type == arrow
    assert ColumnType.parse(text).pg_type == pg


def test_column_source_name(orders):
    assert [c.source_column for c in orders.target.columns] == ["o_orderkey", "o_totalprice", "orderdate", "o_comment"]
    assert orders.target.columns[1].type == "numeric(12,2)"


def test_render_uses_interval_context():
    iv = Interval("2024-03-05T00:00:00Z", "2024-03-06T00:00:00Z")
    assert render("orders/{{ ds }}/{{ ds_nodash }}", iv) == "orders/2024-03-05/20240305"
    assert render("{{ data_interval_end.strftime('%H') }}", iv) == "00"
    with pytest.raises(ValueError, match="nope"):
        render("{{ nope }}", iv)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", timedelta(hours=2)),
        ("30m", timedelta(minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(minutes=90)),
        ("PT2H", timedelta(hours=2)),
        (600, timedelta(minutes=10)),
    ],
)
def test_deadline_durations(tmp_path, text, expected):
    path = tmp_path / "p.yaml"
    path.write_text(ORDERS.read_text().replace("after_interval_end: 2h", f"after_interval_end: {text}"))
    assert load_pipeline(path).deadline.after_interval_end == expected


@pytest.mark.parametrize(
    "schedule", ["@daily", "@hourly", "@weekly", "@monthly", "@yearly", "*/15 * * * *", "0 6 * * 1-5"]
)
def test_valid_schedules(tmp_path, schedule):
    path = tmp_path / "p.yaml"
    path.write_text(ORDERS.read_text().replace('"0 2 * * *"', f'"{schedule}"'))
    assert load_pipeline(path).schedule == schedule


@pytest.mark.parametrize(
    ("schedule", "needle"), [("@daly", "did you mean '@daily'"), ("61 * * * *", "cron"), ("* * * *", "5 fields")]
)
def test_invalid_schedules(tmp_path, schedule, needle):
    path = tmp_path / "p.yaml"
    path.write_text(ORDERS.read_text().replace('"0 2 * * *"', f'"{schedule}"'))
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    assert err.value.line == 4 and err.value.field == "schedule" and needle in str(err.value)


def test_http_and_sql_sources(tmp_path):
    head, _, tail = ORDERS.read_text().partition("source:\n")
    tail = tail[tail.index("target:") :]
    http = (
        "source:\n  kind: http\n  conn_id: shop_api\n  endpoint: /orders\n  params: {since: '{{ ds }}'}\n"
        "  records_path: data.items\n  pagination: {style: cursor, cursor_param: after, cursor_path: meta.next}\n"
        "  auth: bearer\n"
    )
    (tmp_path / "h.yaml").write_text(head + http + tail)
    cfg = load_pipeline(tmp_path / "h.yaml")
    assert cfg.source.pagination.style == "cursor" and cfg.source.pagination.cursor_path == "meta.next"
    assert cfg.source.auth == "bearer" and cfg.source.max_pages == 10_000
    sql = "source:\n  kind: sql\n  conn_id: src_db\n  table: shop.orders\n  incremental_column: updated_at\n"
    (tmp_path / "s.yaml").write_text(head + sql + tail)
    assert load_pipeline(tmp_path / "s.yaml").source.table == "shop.orders"


def test_default_http_pagination_is_single(tmp_path):
    head, _, tail = ORDERS.read_text().partition("source:\n")
    tail = tail[tail.index("target:") :]
    (tmp_path / "h.yaml").write_text(head + "source: {kind: http, conn_id: api, endpoint: /x}\n" + tail)
    assert load_pipeline(tmp_path / "h.yaml").source.pagination.style == "single"


def test_replace_interval(tmp_path):
    text = ORDERS.read_text().replace(
        "write_mode: upsert", "write_mode: replace_interval\n  interval_column: o_orderdate"
    )
    (tmp_path / "p.yaml").write_text(text)
    assert load_pipeline(tmp_path / "p.yaml").target.interval_column == "o_orderdate"


def test_load_all_reads_defaults_from_config_dir(tmp_path):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "defaults.yaml").write_text("owner: data-team\nalerts: {channels: [ops]}\n")
    (tmp_path / "pipelines" / "orders.yaml").write_text(ORDERS.read_text())
    (tmp_path / "pipelines" / ".hidden.yaml").write_text("not: a pipeline")
    result = load_all(tmp_path / "pipelines")
    assert result.ok and list(result.pipelines) == ["orders"]
    assert result.pipelines["orders"].owner == "data-team" and result.pipelines["orders"].alerts.channels == ["ops"]
    assert find_pipeline_file("orders", tmp_path / "pipelines") == tmp_path / "pipelines" / "orders.yaml"
    assert find_pipeline_file("order", tmp_path / "pipelines") is None


def test_json_schema_describes_every_field():
    schema = json_schema()
    assert "source_file" not in schema["properties"]
    assert set(schema["required"]) >= {"name", "start_date", "source", "target"}
    missing = []
    for model_name, model in [("PipelineConfig", schema), *schema["$defs"].items()]:
        for prop, spec in model.get("properties", {}).items():
            if not spec.get("description"):
                missing.append(f"{model_name}.{prop}")
    assert missing == []


def test_json_schema_accepts_the_fixture(orders):
    import jsonschema  # an Airflow dependency
    import yaml

    data = yaml.safe_load(ORDERS.read_text())
    data["start_date"] = str(data["start_date"])
    jsonschema.validate(data, json_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "nmae": "x"}, json_schema())
