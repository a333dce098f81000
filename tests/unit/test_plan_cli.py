"""`python -m sluice plan FILE` with no service at all, on every example file; the schedule arithmetic behind it;
and `run`/`plan` on an invalid file (the linter's message, exit 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sluice import schedule
from sluice.cli import main
from sluice.config import load_defaults, load_pipeline

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "config" / "pipelines").glob("*.yaml"))


@pytest.fixture
def no_services(monkeypatch):
    """No connection is configured: nothing can be reached, and plan must not need anything."""
    for name in list(os.environ):
        if name.startswith("AIRFLOW_CONN_") or name.startswith("SLUICE_"):
            monkeypatch.delenv(name)


def cfg_of(path: Path):
    return load_pipeline(path, load_defaults(REPO / "config"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_plan_renders_every_example_file_without_services(path, no_services, capsys):
    assert main(["plan", str(path), "--interval", "1995-01-03"]) == 0
    out = capsys.readouterr().out
    cfg = cfg_of(path)
    for heading in (
        "tasks (DAG",
        "schedule",
        "next intervals:",
        "interval [1995-01-03T00:00:00+00:00,",
        "load SQL (per chunk)",
        "expectations",
        "quality gate",
        "alerts",
        "schema diff",
    ):
        assert heading in out, heading
    assert f'CREATE TABLE "{cfg.target.schema_}"."{cfg.target.table}"' in out
    assert 'INSERT INTO "sluice"."load_ledger"' in out
    assert "skipped: connection sluice_warehouse is not configured" in out
    for channel in cfg.alerts.channels:
        assert channel in out


def test_plan_shows_the_rendered_prefix_of_the_interval(no_services, capsys):
    assert main(["plan", str(REPO / "config/pipelines/tpch_orders.yaml"), "--interval", "1995-02-28"]) == 0
    assert "s3://sluice-landing/tpch/orders/1995-02-28/  (pattern '*.csv.gz'" in capsys.readouterr().out


def test_plan_shows_the_first_http_request_and_the_sql_query(no_services, capsys):
    assert main(["plan", str(REPO / "config/pipelines/api_customers.yaml"), "--interval", "2024-03-01"]) == 0
    out = capsys.readouterr().out
    assert (
        "GET <base URL of connection sluice_demo_api>/v1/customers?updated_since=2024-03-01T00:00:00+00:00"
        "&updated_before=2024-03-02T00:00:00+00:00&per_page=200&page=1"
    ) in out
    assert main(["plan", str(REPO / "config/pipelines/sql_orders.yaml"), "--interval", "2024-03-01"]) == 0
    assert 'SELECT * FROM "public"."orders" WHERE "o_orderdate" >= :interval_start' in capsys.readouterr().out


def test_plan_and_run_of_an_invalid_file_print_the_linters_message(tmp_path, no_services):
    bad = tmp_path / "bad.yaml"
    text = (REPO / "config/pipelines/tpch_orders.yaml").read_text().replace("primary_key:", "primery_key:")
    bad.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO / "include")}
    lint = subprocess.run(
        [sys.executable, "-m", "sluice", "lint", str(bad)], capture_output=True, text=True, env=env, timeout=300
    )
    for cmd in (["plan", str(bad)], ["run", str(bad), "--interval", "1995-01-01"]):
        got = subprocess.run(
            [sys.executable, "-m", "sluice", *cmd], capture_output=True, text=True, env=env, timeout=300
        )
        assert got.returncode == 1
        assert got.stdout == lint.stdout and "did you mean 'primary_key'?" in got.stdout


def test_intervals_of_a_daily_schedule_are_selected_by_their_start_both_ends_inclusive():
    cfg = cfg_of(REPO / "config/pipelines/tpch_orders.yaml")
    got = schedule.intervals_between(cfg, date(1995, 1, 1), date(1995, 1, 3))
    assert [(i.start.day, i.end.day) for i in got] == [(1, 2), (2, 3), (3, 4)]
    assert len(schedule.intervals_between(cfg, date(1992, 1, 1), date(1994, 12, 31))) == 1096
    assert schedule.intervals_between(cfg, date(1990, 1, 1), date(1991, 12, 31)) == []  # before start_date


def test_interval_at_latest_complete_and_next_intervals():
    cfg = cfg_of(REPO / "config/pipelines/tpch_orders.yaml")
    noon = datetime(2024, 5, 5, 12, tzinfo=UTC)
    assert schedule.interval_at(cfg, noon).start == datetime(2024, 5, 5, tzinfo=UTC)
    assert schedule.latest_complete(cfg, noon).start == datetime(2024, 5, 4, tzinfo=UTC)
    assert [i.start.day for i in schedule.next_intervals(cfg, noon)] == [5, 6, 7]
    hourly = cfg.model_copy(update={"schedule": "0 */6 * * *"})
    assert [i.start.hour for i in schedule.next_intervals(hourly, noon)] == [12, 18, 0]
