"""The health view's pure parts: each kind of pipeline shown for what it is, schedule lag and overdue intervals,
and escaping in the HTML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sluice import schedule
from sluice.config import load_pipeline
from sluice.health import html, report

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 8, 30, tzinfo=UTC)


def day(d: int) -> datetime:
    return datetime(2026, 3, d, tzinfo=UTC)


@pytest.fixture
def cfg():
    c = load_pipeline(REPO / "config" / "pipelines" / "tpch_orders.yaml")
    return c.model_copy(update={"name": "p_ok"})


def row(name: str, ok_end: datetime | None, status: str = "success", volumes=None, **kw) -> dict:
    base = {
        "pipeline": name,
        "ok_start": ok_end - timedelta(days=1) if ok_end else None,
        "ok_end": ok_end,
        "ok_finished": ok_end,
        "last_run_id": "scheduled__x",
        "last_status": status,
        "last_finished": NOW,
        "runs_ok": 3,
        "runs_failed": 1,
        "rows_in": 30,
        "rows_loaded": 27,
        "rows_quarantined": 3,
        "volumes": volumes
        if volumes is not None
        else [["2026-03-08", 10, 1, "success"], ["2026-03-09", 0, 0, "success"]],
        "recent_in": 10,
        "recent_quarantined": 1,
        "intervals": 2,
        "pending_quarantine": 1,
        "empty_intervals": 1,
        "schema_changes": 2,
        "last_schema_change": NOW,
    }
    return base | kw


def test_each_pipeline_is_shown_for_what_it_is(cfg):
    configs = {
        "p_ok": cfg,
        "p_late": cfg.model_copy(update={"name": "p_late"}),
        "p_never": cfg.model_copy(update={"name": "p_never"}),
        "p_failing": cfg.model_copy(update={"name": "p_failing"}),
    }
    invalid = {"p_bad": "config/pipelines/p_bad.yaml:3: schedule: not a cron"}
    rows = [
        row("p_ok", day(10)),
        row("p_late", day(5)),
        row("p_failing", day(10), status="failed"),
        row("p_gone", day(9)),
    ]
    by = {h.name: h for h in report.build(configs, invalid, rows, NOW)}
    assert {n: h.state for n, h in by.items()} == {
        "p_bad": "invalid file",
        "p_failing": "failing",
        "p_gone": "no file",
        "p_late": "late",
        "p_never": "never ran",
        "p_ok": "ok",
    }
    ok = by["p_ok"]
    assert (ok.source_kind, ok.schedule, ok.lag, ok.overdue) == ("s3", "@daily", timedelta(0), 0)
    assert ok.quarantine_rate == pytest.approx(0.1)
    assert (ok.empty_intervals, ok.pending_quarantine, ok.schema_changes) == (1, 1, 2)
    assert by["p_late"].lag == timedelta(days=5)
    assert by["p_late"].overdue == 5  # intervals ending on the 6th..10th; the 10th was due at 06:00
    assert by["p_never"].last_status is None and by["p_never"].lag is None
    assert by["p_bad"].config_error.startswith("config/pipelines/p_bad.yaml:3")


def test_overdue_counts_intervals_past_their_deadline():
    cron, six = "0 0 * * *", timedelta(hours=6)
    assert schedule.overdue_intervals(cron, day(5), six, NOW) == 5  # ends 6, 7, 8, 9, 10 (10th due at 06:00)
    assert schedule.overdue_intervals(cron, day(5), timedelta(hours=9), NOW) == 4
    assert schedule.overdue_intervals(cron, None, six, NOW) is None
    assert schedule.overdue_intervals(cron, day(5), None, NOW) is None
    assert schedule.overdue_intervals(cron, datetime(2000, 1, 1, tzinfo=UTC), six, NOW) == schedule.MAX_OVERDUE
    assert schedule.lag("0 * * * *", datetime(2026, 3, 10, 6, tzinfo=UTC), NOW) == timedelta(hours=2)


def test_pages_escape_values_and_link_into_the_airflow_ui(cfg):
    evil = cfg.model_copy(update={"name": "p_ok"})
    rows = [row("p_ok", day(10), last_run_id="manual__<script>&")]
    ov = report.Overview(report.build({"p_ok": evil}, {"x": "<b>bad</b>"}, rows, NOW), NOW, "warehouse <down>")
    page = html.overview_page(ov, "/sluice", "")
    assert "manual__<script>" not in page and "<b>bad</b>" not in page and "warehouse &lt;down&gt;" in page
    assert 'href="/dags/p_ok/runs/manual__%3Cscript%3E%26"' in page
    assert 'href="/dags/p_ok/runs/manual__%3Cscript%3E%26/tasks/finalize"' in page
    assert 'href="/sluice/pipelines/p_ok"' in page
    assert page.count("<rect") == 2


def test_duration_shows_two_units():
    assert html.duration(timedelta(days=2, hours=3, minutes=4)) == "2d 3h"
    assert html.duration(timedelta(0)) == "0"
    assert html.duration(None) == ""


def test_a_configured_circuit_breaker_is_shown_with_its_state_and_unknown_when_redis_is_unreadable():
    from sluice.sources.breaker import BreakerState

    api = load_pipeline(REPO / "config" / "pipelines" / "api_customers.yaml")
    plain = load_pipeline(REPO / "config" / "pipelines" / "tpch_orders.yaml")
    configs = {api.name: api, plain.name: plain}
    conn = api.source.conn_id
    opened = {conn: BreakerState(conn, "open", 5, 3, 2, 1.0, [])}
    by = {h.name: h for h in report.build(configs, {}, [], NOW, opened)}
    assert (by[api.name].breaker, by[api.name].breaker_conn, by[api.name].breaker_opened) == ("open", conn, 3)
    assert by[plain.name].breaker is None  # no breaker configured: nothing to show
    assert {h.name: h.breaker for h in report.build(configs, {}, [], NOW, {})}[api.name] == "closed"
    assert {h.name: h.breaker for h in report.build(configs, {}, [], NOW, None)}[api.name] == "unknown"
    page = html.overview_page(
        report.Overview(list(by.values()), NOW, breaker_error="circuit breakers unreadable"), "/s", ""
    )
    assert 'data-col="circuit_breaker"><span class="state failing"' in page and "3x" in page
    assert "circuit breakers unreadable" in page
