"""Pipeline health against the real PostgreSQL: the per-interval statistics finalize keeps (successful loads only),
the history the gate reads back, and the freshness watchdog's per-channel state with real webhook deliveries to the
loopback receivers."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sluice.config import PipelineConfig
from sluice.interval import Interval
from sluice.loading.finalize import finalize
from sluice.loading.postgres import ConservationError, load_arrow
from sluice.validate.gate import QualityGateFailed, run_gate
from sluice.validate.history import read_history

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "demo"))
from test_alerts_delivery import channels, rx  # noqa: E402, F401 - fixtures: loopback receivers and connections

pytestmark = pytest.mark.integration
D0 = datetime(2024, 1, 1, tzinfo=UTC)


def day(i: int) -> Interval:
    return Interval(D0 + timedelta(days=i), D0 + timedelta(days=i + 1))


@pytest.fixture
def make_cfg(pg, pg_schema):
    names = []

    def make(**extra) -> PipelineConfig:
        name = f"it_{uuid.uuid4().hex[:10]}"
        names.append(name)
        return PipelineConfig.model_validate(
            {
                "name": name,
                "start_date": "2024-01-01",
                "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "x/", "format": "csv"},
                "target": {
                    "schema": pg_schema,
                    "table": "t",
                    "primary_key": ["id"],
                    "columns": [{"name": "id", "type": "bigint", "nullable": False}, {"name": "v", "type": "double"}],
                },
                **extra,
            }
        )

    yield make
    for table in ("load_ledger", "run_summary", "interval_stats", "freshness_state"):
        if pg.execute("SELECT to_regclass(%s)", [f"sluice.{table}"]).fetchone()[0]:
            pg.execute(f"DELETE FROM sluice.{table} WHERE pipeline = ANY(%s)", [names])  # noqa: S608


def load_day(cfg: PipelineConfig, interval: Interval, n: int, run_id: str, top: float = 10.0) -> dict:
    ids = list(range(n))
    table = pa.table({"id": pa.array(ids, pa.int64()), "v": pa.array([top * i / max(n - 1, 1) for i in ids])})
    result = load_arrow(cfg, interval, run_id, 0, table)
    figures = {"v": {"count": n, "nulls": 0, "min": 0.0, "max": top, "sum": None, "mean": None}}
    return finalize(cfg, interval, run_id, [result], figures=figures, gate={"warnings": [], "notes": ["a note"]})


def test_only_successful_loads_are_history_newest_first_before_the_interval(pg, make_cfg):
    cfg = make_cfg(history={"lookback": 3, "min_intervals": 2, "volume": {"severity": "fail"}})
    assert read_history(cfg, day(9)) == []  # a new pipeline: no history, no error
    for i in range(4):
        load_day(cfg, day(i), 10, f"run{i}")
    # a failed run of day 4 (a chunk without its ledger row): recorded as failed, not as history
    first = load_arrow(cfg, day(4), "bad", 0, pa.table({"id": pa.array([1], pa.int64()), "v": [1.0]}))
    with pytest.raises(ConservationError):
        finalize(cfg, day(4), "bad", [first, {"index": 1, "rows_in": 1000, "rows_loaded": 1000, "rows_quarantined": 0}])
    load_day(cfg, day(2), 12, "rerun2")  # a later successful load of an interval replaces its figures

    history = read_history(cfg, day(5))
    assert [(p.start, p.rows_in) for p in history] == [(day(3).start, 10), (day(2).start, 12), (day(1).start, 10)]
    assert history[0].columns["v"]["max"] == 10.0
    assert [p.start for p in read_history(cfg, day(2))] == [day(1).start, day(0).start]  # never itself or later
    assert pg.execute(
        "SELECT status, notes FROM sluice.run_summary WHERE pipeline = %s AND run_id = 'run0'", [cfg.name]
    ).fetchone() == ("success", ["a note"])

    report = {"index": 0, "rows_in": 100, "rows_good": 100, "rows_quarantined": 0, "batch_checks": {"stats": {}}}
    with pytest.raises(QualityGateFailed, match=r"the last 3 successful interval\(s\) .* had median 10 "):
        run_gate(cfg, [report], history)  # day 4's failed run (1001 rows in) is not part of it


def test_watchdog_breach_once_per_channel_retry_failed_delivery_then_recover(pg, make_cfg, rx, channels):  # noqa: F811
    from sluice.alerts.watchdog import check_pipeline

    cfg = make_cfg(freshness={"max_lag": "2h"}, alerts={"channels": channels.ids})
    # nothing loaded yet: the lag counts from start_date (2024-01-01), so 1h after it is fresh
    assert check_pipeline(cfg, D0 + timedelta(hours=1)).startswith("ok, lag 1h (max 2h); nobody to tell")
    load_day(cfg, day(0), 3, "run0")
    end = day(0).end
    assert check_pipeline(cfg, end + timedelta(hours=1)).startswith("ok, lag 1h (max 2h); nobody to tell")

    rx.fail_next("discord", 3)  # every attempt of the breach message to Discord fails
    out = check_pipeline(cfg, end + timedelta(hours=3))
    assert f"{channels.slack}: sent, {channels.discord}: failed" in out, out
    out = check_pipeline(cfg, end + timedelta(hours=4))  # Slack was told; Discord is retried
    assert out.endswith(f"; {channels.discord}: sent"), out
    assert check_pipeline(cfg, end + timedelta(hours=5)).endswith("nobody to tell")
    assert check_pipeline(cfg, end + timedelta(hours=2, minutes=30)).startswith("breach (not changed: a later check")
    assert len(rx.accepted("slack")) == 1 and len(rx.accepted("discord")) == 1

    load_day(cfg, day(1), 3, "run1")
    out = check_pipeline(cfg, day(1).end + timedelta(minutes=30))
    assert out.startswith("ok, lag 30m") and f"{channels.slack}: sent, {channels.discord}: sent" in out, out
    assert check_pipeline(cfg, day(1).end + timedelta(minutes=40)).endswith("nobody to tell")
    slack = [r["payload"]["blocks"][0]["text"]["text"] for r in rx.accepted("slack")]
    assert slack == [
        f"🟠 {cfg.name}: data is stale, older than max_lag 2h",
        f"🟢 {cfg.name}: data is fresh again, within max_lag 2h",
    ]
    states = pg.execute(
        "SELECT channel, state, sent FROM sluice.freshness_state WHERE pipeline = %s ORDER BY channel", [cfg.name]
    ).fetchall()
    assert states == sorted([(channels.slack, "ok", True), (channels.discord, "ok", True)])
