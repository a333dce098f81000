"""backfill plan and run as pure logic: the range checks, the classification of a summary row, the selection and
the backfills a selection becomes (one per contiguous segment, reprocess_behavior completed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sluice.backfill.plan import BackfillPlan, IntervalState, PlanError, Source, State, classify, intervals_in_range
from sluice.backfill.run import segments
from sluice.config import load_defaults, load_pipeline
from sluice.interval import Interval

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def cfg():
    return load_pipeline(REPO / "config/pipelines/tpch_orders.yaml", load_defaults(REPO / "config"))


def day(n: int) -> Interval:
    start = datetime(1995, 1, 1, tzinfo=UTC) + timedelta(days=n)
    return Interval(start, start + timedelta(days=1))


def row(status: str, rows_in=100, quarantined=0, chunks=1, ledger=1, problems=()) -> dict:
    return {"run_id": "r", "generation": 7, "status": status, "rows_in": rows_in, "rows_loaded": rows_in - quarantined,
            "rows_quarantined": quarantined, "chunks": chunks, "ledger_chunks": ledger, "problems": list(problems),
            "finished_at": NOW}  # fmt: skip


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        (date(1995, 1, 5), date(1995, 1, 1), "--to 1995-01-01 is before --from 1995-01-05"),
        (date(2030, 1, 1), date(2030, 2, 1), "--from 2030-01-01 is in the future"),
        (date(1980, 1, 1), date(1980, 2, 1), "no interval starts between 1980-01-01 and 1980-02-01"),
        (date(2024, 6, 1), date(2024, 6, 1), "none of them has ended yet"),
    ],
)
def test_bad_ranges_are_clear_errors(cfg, first, last, message):
    with pytest.raises(PlanError, match=message):
        intervals_in_range(cfg, first, last, NOW)


def test_a_warehouse_not_defined_or_not_reachable_is_a_clear_error(cfg, monkeypatch):
    from sluice.backfill.plan import plan_backfill

    monkeypatch.delenv("AIRFLOW_CONN_SLUICE_WAREHOUSE", raising=False)
    with pytest.raises(PlanError, match="connection 'sluice_warehouse' is not defined here: run `make up`"):
        plan_backfill(cfg, date(1995, 1, 1), date(1995, 1, 3), NOW)
    monkeypatch.setenv("AIRFLOW_CONN_SLUICE_WAREHOUSE", "postgresql://u:secret@127.0.0.1:1/w")  # nothing on port 1
    with pytest.raises(PlanError, match="connection 'sluice_warehouse'\\) is not reachable: .*is the stack up"):
        plan_backfill(cfg, date(1995, 1, 1), date(1995, 1, 3), NOW)


def test_a_range_reaching_into_today_keeps_the_complete_intervals(cfg):
    got, incomplete = intervals_in_range(cfg, date(2024, 5, 30), date(2024, 6, 3), NOW)
    assert [i.start.day for i in got] == [30, 31] and incomplete == 3  # June 1 has not ended, 2 and 3 not begun


@pytest.mark.parametrize(
    ("summary", "state"),
    [
        (None, State.missing),
        (row("success"), State.loaded),
        (row("success", quarantined=2), State.quarantined),  # 2% > the file's 1%: the threshold was lowered since
        (row("success", chunks=3, ledger=2), State.failed),  # the ledger lacks a chunk: not a clean load
        (row("failed", problems=["SourceReadError: boom"]), State.failed),
        (row("quarantined", quarantined=40), State.quarantined),
        (row("running"), State.running),
    ],
)
def test_classify(cfg, summary, state):
    assert classify(cfg, day(0), summary).state is state


def test_failed_notes_the_error(cfg):
    assert (
        classify(cfg, day(0), row("failed", problems=["SourceReadError: boom\nmore"])).note == "SourceReadError: boom"
    )


def plan_of(kinds: str) -> BackfillPlan:
    """L loaded, C loaded from a changed source, M missing, F failed, Q quarantined, R running."""
    states = []
    for n, k in enumerate(kinds):
        s = {"L": State.loaded, "C": State.loaded, "M": State.missing, "F": State.failed, "Q": State.quarantined,
             "R": State.running}[k]  # fmt: skip
        src = Source.changed if k == "C" else Source.unchanged if k == "L" else None
        states.append(IntervalState(day(n), s, src))
    return BackfillPlan("p", date(1995, 1, 1), date(1995, 1, len(kinds)), states)


def test_totals_and_selection():
    plan = plan_of("LMMFCLQRMF")
    assert plan.totals() == {"loaded": 3, "missing": 3, "failed": 2, "quarantined": 1, "running": 1, "changed": 1,
                             "total": 10}  # fmt: skip
    assert [s.interval.start.day for s in plan.select({"missing", "failed", "changed"})] == [2, 3, 4, 5, 9, 10]
    assert "10 interval(s): 3 loaded, 3 missing, 2 failed, 1 quarantined, 1 running" in plan.table()


def test_a_selection_becomes_one_backfill_per_contiguous_segment_reprocessing_completed():
    plan = plan_of("LMMFCLQRMF")
    segs = segments(plan.intervals, {"missing", "failed", "changed"})
    bodies = [s.body("p", 3) for s in segs]
    assert [(b["from_date"][:10], b["to_date"][:10]) for b in bodies] == [
        ("1995-01-02", "1995-01-05"),
        ("1995-01-09", "1995-01-10"),
    ]
    assert {b["reprocess_behavior"] for b in bodies} == {"completed"} and {b["max_active_runs"] for b in bodies} == {3}
    assert segments(plan.intervals, {"running"})[0].intervals[0].interval.start.day == 8
    assert segments(plan_of("LLL").intervals, {"missing"}) == []


def test_json_lists_every_interval():
    import json

    got = json.loads(plan_of("LMC").to_json())
    assert [i["state"] for i in got["intervals"]] == ["loaded", "missing", "loaded"]
    assert got["intervals"][2]["source"] == "changed" and got["totals"]["changed"] == 1
