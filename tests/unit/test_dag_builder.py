"""sluice.dag_builder: pipeline config -> DAG, interval resolution, per-file isolation of bad configs.
Pure logic: DAGs are built in memory from the example pipelines or small files in tmp dirs, no services."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk import DAG
from airflow.sdk.definitions.deadline import DeadlineAlert
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.timetables.interval import CronDataIntervalTimetable
from sluice import dag_builder
from sluice.config import load_defaults, load_pipeline
from sluice.dag_builder import (
    PipelineFilesInvalid,
    build_dag,
    raise_config_errors,
    register_pipelines,
    resolve_interval,
)
from sluice.interval import Interval

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
EXAMPLES = ("tpch_orders", "tpch_lineitem")
PARSING_DAG_ID = "_AIRFLOW_PARSING_CONTEXT_DAG_ID"  # what airflow.sdk.get_parsing_context() reads


def pipeline_yaml(name: str, *, schedule: str = "@daily", extra: str = "") -> str:
    return f"""\
name: {name}
description: Test pipeline {name}
tags: [unit, {name}]
schedule: "{schedule}"
start_date: 2024-01-01
source:
  kind: s3
  bucket: sluice-landing
  prefix: "unit/{name}/{{{{ ds }}}}/"
  format: parquet
target:
  schema: unit
  table: {name}
  primary_key: [id]
  columns:
    - {{name: id, type: bigint, nullable: false}}
    - {{name: amount, type: "numeric(12,2)"}}
expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {{column: amount}}
    severity: warn
{extra}"""


BROKEN = """\
name: broken
start_date: 2024-01-01
source:
  kind: s3
  bucket: sluice-landing
  prefix: "x/{{ ds }}/"
  format: csv
target:
  table: broken
  primery_key: [id]
  columns:
    - {name: id, type: bigint, nullable: false}
"""


@pytest.fixture(autouse=True)
def _no_parsing_context(monkeypatch):
    """Each test starts as the dag-processor does (no parsing context), whatever the environment says."""
    monkeypatch.delenv(PARSING_DAG_ID, raising=False)


@pytest.fixture
def config_dir(tmp_path, monkeypatch) -> Path:
    """<tmp>/config/{defaults.yaml, pipelines/} in use through $SLUICE_PIPELINES_DIRS; starts empty."""
    pipelines = tmp_path / "config" / "pipelines"
    pipelines.mkdir(parents=True)
    (tmp_path / "config" / "defaults.yaml").write_text("owner: unit-tests\nretries: {retries: 1}\n")
    monkeypatch.setenv("SLUICE_PIPELINES_DIRS", str(pipelines))
    return pipelines


@pytest.fixture(scope="module")
def examples() -> dict[str, DAG]:
    defaults = load_defaults(CONFIG)
    return {n: build_dag(load_pipeline(CONFIG / "pipelines" / f"{n}.yaml", defaults)) for n in EXAMPLES}


def build(text: str, tmp_path: Path) -> DAG:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return build_dag(load_pipeline(path, {}))


# ---------------------------------------------------------------- the DAG


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_dag_id_is_the_pipeline_name(examples, name):
    assert examples[name].dag_id == name


@pytest.mark.parametrize("name", EXAMPLES)
def test_task_shape(examples, name):
    dag = examples[name]
    t = dag.task_dict
    assert set(t) == {"extract_and_stage", "validate_chunk", "quality_gate", "load_chunk", "finalize"}
    assert t["extract_and_stage"].upstream_task_ids == set()
    assert t["extract_and_stage"].downstream_task_ids == {"validate_chunk"}
    assert t["validate_chunk"].downstream_task_ids == {"quality_gate"}
    assert t["quality_gate"].downstream_task_ids == {"load_chunk", "finalize"}
    assert t["load_chunk"].downstream_task_ids == {"finalize"}
    assert t["finalize"].upstream_task_ids == {"load_chunk", "quality_gate"}
    mapped = {task_id for task_id, task in t.items() if isinstance(task, MappedOperator)}
    assert mapped == {"validate_chunk", "load_chunk"}
    # an interval without data maps to zero chunks: the gate and finalize must still run
    assert t["quality_gate"].trigger_rule == "none_failed" and t["finalize"].trigger_rule == "none_failed"


@pytest.mark.parametrize("name", EXAMPLES)
def test_timetable_is_a_utc_cron_data_interval(examples, name):
    tt = examples[name].timetable
    assert isinstance(tt, CronDataIntervalTimetable)
    assert tt._timezone.name == "UTC"
    assert tt.summary == "0 0 * * *"  # @daily
    interval = tt.infer_manual_data_interval(run_after=datetime(2024, 3, 5, 13, 7, tzinfo=UTC))
    assert interval.start != interval.end
    assert (interval.start, interval.end) == (datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC))


def test_cron_schedule_and_dates(tmp_path):
    dag = build(pipeline_yaml("hourly", schedule="15 * * * *"), tmp_path)
    assert isinstance(dag.timetable, CronDataIntervalTimetable) and dag.timetable.summary == "15 * * * *"
    assert dag.start_date == datetime(2024, 1, 1, tzinfo=UTC)
    assert dag.catchup is False


def test_examples_schedule_and_start(examples):
    for dag in examples.values():
        assert dag.start_date == datetime(1992, 1, 1, tzinfo=UTC)
        assert dag.catchup is False


@pytest.mark.parametrize("name", EXAMPLES)
def test_interval_params_with_descriptions(examples, name):
    params = examples[name].params
    assert set(params) >= {"interval_start", "interval_end"}
    for key in ("interval_start", "interval_end"):
        param = params.get_param(key)
        assert param.value is None  # empty by default: a plain trigger processes the run's interval
        assert "UTC" in param.description and "interval" in param.description
        assert param.schema["type"] == ["null", "string"]


def test_retries_and_backoff_come_from_config(tmp_path):
    extra = "retries: {retries: 5, delay_seconds: 10, multiplier: 3, max_delay_seconds: 120}\n"
    dag = build(pipeline_yaml("retrying", extra=extra), tmp_path)
    for task in dag.tasks:
        assert task.retries == 5
        assert task.retry_delay == timedelta(seconds=10)
        assert task.retry_exponential_backoff == 3
        assert task.max_retry_delay == timedelta(seconds=120)


def test_queue_routes_every_task_to_its_celery_queue(tmp_path):
    """`queue:` sends every task (mapped ones too) to one Celery queue; without it Airflow's default queue."""
    routed = build(pipeline_yaml("routed", extra="queue: remote_hosts\n"), tmp_path)
    assert {t.queue for t in routed.tasks} == {"remote_hosts"}
    plain = build(pipeline_yaml("plain"), tmp_path)
    assert {t.queue for t in plain.tasks} == {"default"}


def test_queue_name_is_validated(tmp_path):
    from sluice.config import ConfigError

    with pytest.raises(ConfigError, match="queue"):
        build(pipeline_yaml("badqueue", extra="queue: 'no spaces'\n"), tmp_path)


def test_example_retries_and_owner(examples):
    task = examples["tpch_orders"].task_dict["extract_and_stage"]
    assert (task.retries, task.retry_delay, task.max_retry_delay) == (3, timedelta(seconds=30), timedelta(minutes=10))
    assert task.owner == "data-platform"


def test_tags(examples, tmp_path):
    assert examples["tpch_orders"].tags == {"sluice", "source:s3", "tpch", "demo", "orders"}
    assert examples["tpch_lineitem"].tags == {"sluice", "source:s3", "tpch", "demo", "lineitem"}
    assert build(pipeline_yaml("tagged"), tmp_path).tags == {"sluice", "source:s3", "unit", "tagged"}


def test_doc_md_shows_source_target_and_expectations(examples):
    doc = examples["tpch_orders"].doc_md
    assert "TPC-H orders" in doc  # the description
    assert "`s3`" in doc and "sluice-landing" in doc and "tpch/orders/{{ ds }}/" in doc
    assert "'format': 'csv'" in doc and "<S3Format" not in doc  # enum values, not reprs
    assert "`tpch.orders`" in doc and "upsert" in doc and "o_orderkey" in doc
    assert "| `o_totalprice` | numeric(15,2) | no |" in doc
    for exp in (
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_match_regex",
    ):
        assert f"`{exp}`" in doc
    assert "**quarantine**" in doc and "**warn**" in doc
    assert "tpch_orders.yaml" in doc


# ---------------------------------------------------------------- resolve_interval


@dataclass
class FakeDagRun:
    """Stands in for the context's dag_run: resolve_interval only reads run_after."""

    run_after: datetime


MAR4 = Interval(datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC))
DAILY = CronDataIntervalTimetable("@daily", timezone="UTC")
D = datetime(2024, 3, 1, tzinfo=UTC)


def test_params_win_over_the_data_interval():
    context = {
        "params": {"interval_start": "2024-01-01T00:00:00+00:00", "interval_end": "2024-01-08T00:00:00Z"},
        "data_interval_start": D,
        "data_interval_end": D + timedelta(days=1),
        "dag_run": FakeDagRun(D + timedelta(days=2)),
    }
    assert resolve_interval(context, DAILY) == Interval(
        datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 8, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    "params",
    [
        {"interval_start": "2024-01-01T00:00:00+00:00"},
        {"interval_end": "2024-01-02T00:00:00+00:00", "interval_start": None},
    ],
)
def test_params_both_or_neither(params):
    context = {"params": params, "data_interval_start": D, "data_interval_end": D + timedelta(days=1)}
    with pytest.raises(ValueError, match="both interval_start and interval_end"):
        resolve_interval(context, DAILY)


def test_params_must_be_an_interval():
    context = {"params": {"interval_start": "2024-01-02T00:00:00+00:00", "interval_end": "2024-01-01T00:00:00+00:00"}}
    with pytest.raises(ValueError, match="empty interval"):
        resolve_interval(context, DAILY)


def test_the_runs_data_interval():
    context = {
        "params": {"interval_start": None, "interval_end": None},
        "data_interval_start": D,
        "data_interval_end": D + timedelta(days=1),
        "dag_run": FakeDagRun(D),
    }
    assert resolve_interval(context, DAILY) == Interval(D, D + timedelta(days=1))


@pytest.mark.parametrize(("dis", "die"), [(None, None), (datetime(2024, 3, 5, 9, 30, tzinfo=UTC),) * 2])
def test_manual_run_without_logical_date_takes_the_latest_complete_interval(dis, die):
    """Airflow 3 manual runs may have no logical date (no interval, or an empty one at run_after)."""
    context = {
        "params": {},
        "data_interval_start": dis,
        "data_interval_end": die,
        "dag_run": FakeDagRun(datetime(2024, 3, 5, 9, 30, tzinfo=UTC)),
    }
    assert resolve_interval(context, DAILY) == MAR4


def test_manual_run_follows_the_cron_schedule():
    tt = CronDataIntervalTimetable("0 2 * * *", timezone="UTC")
    context = {"params": {}, "dag_run": FakeDagRun(datetime(2024, 3, 5, 1, 0, tzinfo=UTC))}
    assert resolve_interval(context, tt) == Interval(
        datetime(2024, 3, 3, 2, tzinfo=UTC), datetime(2024, 3, 4, 2, tzinfo=UTC)
    )


def test_manual_run_at_an_interval_boundary():
    context = {"params": {}, "dag_run": FakeDagRun(datetime(2024, 3, 5, tzinfo=UTC))}
    assert resolve_interval(context, DAILY) == MAR4


# ---------------------------------------------------------------- register_pipelines / raise_config_errors


def test_register_pipelines_builds_every_valid_pipeline(config_dir):
    for name in ("alpha", "beta"):
        (config_dir / f"{name}.yaml").write_text(pipeline_yaml(name))
    namespace: dict = {}
    dags = register_pipelines(namespace)
    assert set(dags) == {"alpha", "beta"}
    assert namespace == {"sluice__alpha": dags["alpha"], "sluice__beta": dags["beta"]}
    assert dags["alpha"].owner == "unit-tests"  # defaults.yaml next to the first pipelines dir


def test_worker_builds_only_its_dag(config_dir, monkeypatch):
    for name in ("alpha", "beta", "gamma"):
        (config_dir / f"{name}.yaml").write_text(pipeline_yaml(name))
    (config_dir / "zz_broken.yaml").write_text(BROKEN)
    monkeypatch.setenv(PARSING_DAG_ID, "beta")
    namespace: dict = {}
    assert set(register_pipelines(namespace)) == {"beta"}
    assert set(namespace) == {"sluice__beta"}
    # the worker reads only the file that declares its DAG, so another file's error costs it nothing
    result = dag_builder.load_configs("beta")
    assert set(result.pipelines) == {"beta"} and not result.errors


def test_worker_parsing_context_via_airflow_context_manager(config_dir, monkeypatch):
    from airflow.sdk.definitions._internal.dag_parsing_context import _airflow_parsing_context_manager

    for name in ("alpha", "beta"):
        (config_dir / f"{name}.yaml").write_text(pipeline_yaml(name))
    monkeypatch.setenv(PARSING_DAG_ID, "")  # restored by monkeypatch; the context manager keeps whatever it set
    with _airflow_parsing_context_manager(dag_id="alpha"):
        assert set(register_pipelines({})) == {"alpha"}
        assert raise_config_errors() is None


def test_bad_file_is_one_error_naming_file_line_field_and_fix(config_dir):
    (config_dir / "good.yaml").write_text(pipeline_yaml("good"))
    (config_dir / "broken.yaml").write_text(BROKEN)
    with pytest.raises(PipelineFilesInvalid) as info:
        raise_config_errors()
    text = str(info.value)
    assert text.startswith("1 pipeline file(s) invalid")
    assert f"{config_dir / 'broken.yaml'}:10:" in text  # file and line of `primery_key`
    assert "target.primery_key" in text and "unknown key" in text
    assert "did you mean 'primary_key'?" in text
    assert "good.yaml" not in text
    assert set(info.value.errors) == {str(config_dir / "broken.yaml")}
    # ...and the DAG file of the valid pipelines is unaffected
    assert set(register_pipelines({})) == {"good"}


def test_no_error_when_every_file_is_valid(config_dir):
    (config_dir / "good.yaml").write_text(pipeline_yaml("good"))
    assert raise_config_errors() is None


def test_workers_skip_the_error_file(config_dir, monkeypatch):
    """A worker running a healthy DAG never needs the error report (nor the cost of loading every file)."""
    (config_dir / "broken.yaml").write_text(BROKEN)
    monkeypatch.setenv(PARSING_DAG_ID, "good")
    assert raise_config_errors() is None


def test_duplicate_name_across_dirs_names_both_files(config_dir, tmp_path, monkeypatch):
    other = tmp_path / "more"
    other.mkdir()
    (config_dir / "one.yaml").write_text(pipeline_yaml("same"))
    (other / "two.yaml").write_text(pipeline_yaml("same"))
    (other / "fine.yaml").write_text(pipeline_yaml("fine"))
    monkeypatch.setenv("SLUICE_PIPELINES_DIRS", f"{config_dir}:{other}")
    with pytest.raises(PipelineFilesInvalid) as info:
        raise_config_errors()
    assert set(info.value.errors) == {str(config_dir / "one.yaml"), str(other / "two.yaml")}
    assert "pipeline name 'same' is also used by" in str(info.value)
    assert set(register_pipelines({})) == {"fine"}


def test_broken_defaults_are_reported_and_pipelines_still_load(config_dir):
    (config_dir.parent / "defaults.yaml").write_text("ownr: someone\n")
    (config_dir / "good.yaml").write_text(pipeline_yaml("good"))
    with pytest.raises(PipelineFilesInvalid, match="did you mean 'owner'"):
        raise_config_errors()
    assert set(register_pipelines({})) == {"good"}


def test_example_files_load_through_the_builder(monkeypatch, tmp_path):
    pipelines = tmp_path / "config" / "pipelines"
    pipelines.mkdir(parents=True)
    shutil.copy(CONFIG / "defaults.yaml", tmp_path / "config")
    for name in EXAMPLES:
        shutil.copy(CONFIG / "pipelines" / f"{name}.yaml", pipelines)
    monkeypatch.setenv("SLUICE_PIPELINES_DIRS", str(pipelines))
    raise_config_errors()
    assert set(register_pipelines({})) == set(EXAMPLES)


# ---------------------------------------------------------------- deadline


def test_deadline_becomes_a_deadline_alert(examples):
    from sluice.alerts import IntervalEndDeadline

    alerts = examples["tpch_orders"].deadline
    assert isinstance(alerts, list) and len(alerts) == 1
    alert = alerts[0]
    assert isinstance(alert, DeadlineAlert)
    assert isinstance(alert.reference, IntervalEndDeadline)
    assert alert.interval == timedelta(hours=6)
    assert alert.callback.path == dag_builder.DEADLINE_CALLBACK
    assert alert.callback.kwargs["pipeline"] == "tpch_orders"
    assert alert.callback.kwargs["deadline"] == "6h after the interval end"


def test_no_deadline_no_alert(tmp_path):
    assert not build(pipeline_yaml("relaxed"), tmp_path).deadline


# ---------------------------------------------------------------- parse-time cost


def test_parsing_the_dag_file_imports_no_stage_dependency(tmp_path):
    """Parsing must stay light and offline: no pyarrow, GX, pandas or database driver at import time. (boto3 is
    not checked: Airflow's own asset-URI normalizer discovery imports the Amazon provider for the finalize outlet.)"""
    code = (
        "import runpy, sys\n"
        f"runpy.run_path({str(REPO / 'dags' / 'pipelines.py')!r})\n"
        "heavy = [m for m in ('pyarrow', 'great_expectations', 'pandas', 'psycopg', 'psycopg2') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO / "include"),
        "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "SLUICE_PIPELINES_DIRS": str(CONFIG / "pipelines"),
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), f"imported at parse time: {out.stdout}"


# ---------------------------------------------------------------- sluice_maintenance


def test_maintenance_dag_offers_every_pipeline_and_the_replay_params(config_dir):
    from sluice.dag_builder import MAINTENANCE_DAG, register_maintenance

    for name in ("alpha", "beta"):
        (config_dir / f"{name}.yaml").write_text(pipeline_yaml(name))
    namespace: dict = {}
    dag = register_maintenance(namespace)
    assert dag.dag_id == MAINTENANCE_DAG and namespace == {"sluice__maintenance": dag}
    assert [t.task_id for t in dag.tasks] == ["replay_quarantine"]
    params = dag.params.dump()
    assert set(params) == {"pipeline", "interval_start", "interval_end", "reason", "dry_run"}
    assert dag.params.get_param("pipeline").schema["enum"] == ["alpha", "beta"]
    assert params["dry_run"] is False and type(dag.timetable).__name__ == "NullTimetable"  # manual runs only


def test_a_worker_of_another_dag_does_not_build_the_maintenance_dag(config_dir, monkeypatch):
    from sluice.dag_builder import register_maintenance

    (config_dir / "alpha.yaml").write_text(pipeline_yaml("alpha"))
    monkeypatch.setenv(PARSING_DAG_ID, "alpha")
    assert register_maintenance({}) is None
