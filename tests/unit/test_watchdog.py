"""The freshness watchdog's pure decisions (alerts/watchdog.py) and its DAG (dag_builder.build_freshness_dag)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sluice.alerts import AlertContext, AlertKind, Freshness, Rows, format_discord, format_slack
from sluice.alerts.watchdog import duration_text, judge, to_notify
from sluice.config import PipelineConfig
from sluice.dag_builder import FRESHNESS_DAG, FRESHNESS_SCHEDULE, build_freshness_dag

END = datetime(2026, 1, 1, 6, tzinfo=UTC)


def cfg(max_lag: str = "26h") -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": "orders",
            "start_date": "2025-12-31",
            "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "o/", "format": "csv"},
            "target": {
                "table": "t",
                "primary_key": ["id"],
                "columns": [{"name": "id", "type": "bigint", "nullable": False}],
            },
            "freshness": {"max_lag": max_lag},
        }
    )


def test_judge_lag_from_last_loaded_interval_or_start_date():
    fresh = Freshness(last_start=END - timedelta(days=1), last_end=END)
    assert judge(cfg(), fresh, END + timedelta(hours=26)).state == "ok"  # exactly max_lag is still fresh
    assert judge(cfg(), fresh, END + timedelta(hours=26, seconds=1)).state == "breach"
    never = judge(cfg("2h"), Freshness(), datetime(2025, 12, 31, 3, tzinfo=UTC))
    assert never.state == "breach" and never.lag == timedelta(hours=3)


@pytest.mark.parametrize(
    ("state", "rows", "expected"),
    [
        ("ok", {}, []),  # never told anything and fresh: nothing to say
        ("breach", {}, ["a", "b"]),
        ("breach", {"a": ("breach", True), "b": ("breach", False)}, ["b"]),  # b's delivery failed: retried
        ("breach", {"a": ("breach", True), "b": ("breach", True)}, []),  # told once
        ("ok", {"a": ("breach", True), "b": ("ok", True)}, ["a"]),  # recovered: only who heard of the breach
        ("ok", {"a": ("ok", False)}, ["a"]),  # the recovery message did not get there
    ],
)
def test_to_notify(state, rows, expected):
    assert to_notify(state, rows, ["a", "b"]) == expected


def test_duration_text():
    assert [duration_text(timedelta(seconds=s)) for s in (0, 90, 3600, 93784)] == ["0s", "1m30s", "1h", "1d2h3m4s"]


def test_breach_and_recovery_messages_carry_the_deadline_alerts_freshness_fields():
    fresh = Freshness(END - timedelta(hours=1), END, END + timedelta(minutes=5), "run1", "success", Rows(3, 3, 0))
    for kind, icon in ((AlertKind.FRESHNESS_BREACH, "🟠"), (AlertKind.FRESHNESS_RECOVERED, "🟢")):
        ctx = AlertContext(pipeline="orders", kind=kind, freshness=fresh, max_lag="2h", as_of=END + timedelta(hours=3))
        slack = format_slack(ctx)
        fields = {
            f["text"].split("\n")[0].strip("*"): f["text"].split("\n", 1)[1] for f in slack["blocks"][1]["fields"]
        }
        assert slack["blocks"][0]["text"]["text"].startswith(f"{icon} orders: data is ")
        assert fields["Staleness"] == "data ends 3h 0m ago" and fields["Freshness rule"] == "max_lag 2h"
        assert fields["Last loaded interval"].startswith("2026-01-01 05:00 UTC → 2026-01-01 06:00 UTC")
        assert fields["Last run"].startswith("success · 3 extracted · 3 loaded · 0 quarantined")
        assert format_discord(ctx)["embeds"][0]["footer"]["text"] == f"Sluice · {kind.value}"


def test_freshness_dag_shape():
    dag = build_freshness_dag()
    assert dag.dag_id == FRESHNESS_DAG and set(dag.task_dict) == {"check_freshness"}
    assert dag.timetable.expression == FRESHNESS_SCHEDULE and dag.max_active_runs == 1 and not dag.catchup
    assert "now" in dag.params
