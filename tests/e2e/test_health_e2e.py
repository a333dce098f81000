"""Issue 13 through the real scheduler and Celery workers: the quality gate's checks against history
(tests/e2e/pipelines/e2e_history.yaml) and the freshness watchdog, DAG sluice_freshness (e2e_fresh.yaml). Alerts are
read from the stack's loopback Slack/Discord receivers, as in test_alerts_e2e.py.

No clock is raced: the history runs are triggered with explicit intervals, and the watchdog is triggered with an
explicit `now` param and polled for completion; its scheduled runs (real time, years before the test's `now`) can
change nothing for e2e_fresh once the test's first check has judged it (a check older than the last one is ignored).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from sluice.airflow_api import AirflowApi, AirflowApiError
from test_alerts_e2e import CHANNELS, receivers  # noqa: F401 - the receivers fixture

HISTORY_DAG, FRESH_DAG, WATCHDOG = "e2e_history", "e2e_fresh", "sluice_freshness"


class PatientApi(AirflowApi):
    """The REST client with patience for a shared, overloaded machine (load averages of 50-100 were seen): a request
    that times out is sent again, and a trigger names its run id, so sending it again is harmless (409: it exists),
    and waits while the DAG is briefly missing (the dag-processor killed a parse that ran over its timeout)."""

    def request(self, method: str, path: str, **kwargs):
        for attempt in range(6):
            try:
                return super().request(method, path, **kwargs)
            except requests.exceptions.RequestException:
                if attempt == 5:
                    raise
                time.sleep(5)

    def trigger(self, dag_id: str, logical_date=None, conf=None, run_id=None) -> str:
        run_id = run_id or f"manual__health_{uuid.uuid4().hex[:12]}"
        end = time.time() + 600
        while True:
            try:
                return super().trigger(dag_id, logical_date, conf, run_id)
            except AirflowApiError as exc:
                if exc.status == 409:
                    return run_id
                if exc.status != 404 or time.time() > end:
                    raise
                time.sleep(5)


@pytest.fixture(scope="module")
def api():
    patient = PatientApi.from_env()
    patient.timeout = 90
    return patient


@pytest.fixture
def own_dags(api):
    """Each test's DAGs: parsed, with no run left over from an interrupted session (a paused DAG's runs stay running
    for ever), unpaused by the test (the pipelines' dates never schedule a run; the watchdog's scheduled runs are
    harmless, see the module docstring) and paused again at its end whatever happens."""
    mine: list[str] = []

    def take(*dag_ids: str) -> None:
        for dag_id in dag_ids:
            api.wait_for_dag(dag_id, timeout=180)
            for state in ("queued", "running"):
                for run in api.request("GET", f"/dags/{dag_id}/dagRuns", params={"state": state})["dag_runs"]:
                    api.request("PATCH", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
            api.unpause(dag_id)
            mine.append(dag_id)

    yield take
    for dag_id in mine:
        api.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})


def forget(pg, table: str, pipeline: str) -> None:
    """This test's pipelines are its own: their history and watchdog state start empty in every session."""
    if pg.execute("SELECT to_regclass(%s)", [f"sluice.{table}"]).fetchone()[0]:
        pg.execute(f"DELETE FROM sluice.{table} WHERE pipeline = %s", [pipeline])  # noqa: S608 - constant names


def trigger_day(api, dag_id: str, start: datetime, hours: int = 24) -> str:
    end = start + timedelta(hours=hours)
    return api.trigger(dag_id, conf={"interval_start": start.isoformat(), "interval_end": end.isoformat()})


def put_csv(s3_client, day: date, amounts: list[float]) -> None:
    body = "id,amount\n" + "".join(f"{i},{a}\n" for i, a in enumerate(amounts, 1))
    s3_client.put_object(Bucket="sluice-landing", Key=f"e2e/history/{day.isoformat()}/part-0.csv", Body=body.encode())


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def summary_of(pg, run_id: str) -> tuple[str, list, list] | None:
    return pg.execute(
        "SELECT status, warnings, notes FROM sluice.run_summary WHERE pipeline = %s AND run_id = %s",
        [HISTORY_DAG, run_id],
    ).fetchone()


def gate_state(api, dag_id: str, run_id: str) -> str:
    return next(t["state"] for t in api.task_instances(dag_id, run_id) if t["task_id"] == "quality_gate")


@pytest.mark.timeout(2400)
def test_history_volume_anomaly_fails_and_outlier_warns(api, own_dags, receivers, s3_client, pg):  # noqa: F811
    """Three normal intervals (10 rows, max amount 109-111) make the history; the first ones pass with a note
    (history too short). Then, in parallel: an interval with 10x the rows fails the gate (volume, severity fail)
    naming the check, the value and the history; an interval with one amount far out loads with a warning (outlier,
    severity warn) in the run summary and one alert per channel, compared with exactly the 3 successful intervals
    (the failed 10x run is not history)."""
    own_dags(HISTORY_DAG)
    forget(pg, "interval_stats", HISTORY_DAG)
    base = date(2001, 1, 1) + timedelta(days=uuid.uuid4().int % 7000)
    days = [base + timedelta(days=i) for i in range(5)]
    for i, day in enumerate(days[:3]):
        put_csv(s3_client, day, [100 + j + i for j in range(10)])
    put_csv(s3_client, days[3], [100 + j % 10 for j in range(100)])  # 10x the rows, ordinary values
    put_csv(s3_client, days[4], [*(100 + j for j in range(9)), 1_000_000])  # one value far out
    normal = [trigger_day(api, HISTORY_DAG, midnight(d)) for d in days[:3]]
    assert [api.wait_for_run(HISTORY_DAG, r, timeout=900) for r in normal] == ["success"] * 3
    for run_id in normal:
        status, warnings, notes = summary_of(pg, run_id)
        assert status == "success" and warnings == [], (run_id, warnings)
        if run_id == normal[0] or notes:  # which ones saw a short history depends on the runs' order
            assert any("history.volume: not checked" in n for n in notes), notes

    volume, outlier = (trigger_day(api, HISTORY_DAG, midnight(d)) for d in days[3:])
    assert api.wait_for_run(HISTORY_DAG, volume, timeout=900) == "failed"
    assert api.wait_for_run(HISTORY_DAG, outlier, timeout=900) == "success"
    assert gate_state(api, HISTORY_DAG, volume) == "failed"
    assert summary_of(pg, volume) == ("failed", [], [])  # the gate's failure is recorded (steps.gate); nothing loaded

    span = f"the last 3 successful interval(s) ({days[0]:%Y-%m-%d} 00:00"
    failure = wait_messages(receivers, volume, "failure")
    for service, msg in failure.items():
        text = json.dumps(msg["payload"], ensure_ascii=False)
        assert "history.volume (median, fail): 100 row(s) arrived, 10.0× the median" in text, (service, text[:800])
        assert f"{span} → {days[3]:%Y-%m-%d} 00:00 UTC) had median 10" in text, text[:800]

    status, warnings, notes = summary_of(pg, outlier)
    assert status == "success" and len(warnings) == 1 and notes == [], (warnings, notes)
    assert warnings[0].startswith("history.outliers amount.max (zscore, warn): 1,000,000 is an outlier, z-score ")
    assert f"over the limit 4; {span} → {days[3]:%Y-%m-%d} 00:00 UTC): mean 110, stddev 1" in warnings[0], warnings
    for service, msg in wait_messages(receivers, outlier, "quality_warning").items():
        text = json.dumps(msg["payload"], ensure_ascii=False)
        assert "history.outliers amount.max (zscore, warn): 1,000,000 is an outlier" in text, (service, text[:800])

    stats = pg.execute(
        "SELECT interval_start::date, rows_in, (columns->'amount'->>'max')::float FROM sluice.interval_stats "
        "WHERE pipeline = %s ORDER BY interval_start",
        [HISTORY_DAG],
    ).fetchall()
    assert stats == [(days[0], 10, 109.0), (days[1], 10, 110.0), (days[2], 10, 111.0), (days[4], 10, 1_000_000.0)]


def wait_messages(receivers, run_id: str, kind: str) -> dict[str, dict]:  # noqa: F811
    """One accepted message per channel about `run_id` (the alert is sent by the task before or as it ends)."""
    got = receivers.wait_for(run_id, kind, timeout=60)
    by = {s: [m for m in got if m["service"] == s and m["accepted"]] for s in CHANNELS}
    assert all(len(v) == 1 for v in by.values()), {s: len(v) for s, v in by.items()}
    return {s: v[0] for s, v in by.items()}


# ---------------------------------------------------------------- the freshness watchdog
def watchdog(api, now: datetime) -> dict[str, str]:
    """One watchdog run as of `now`, to completion; what it did per pipeline (its return value)."""
    run_id = api.trigger(WATCHDOG, conf={"now": now.isoformat()})
    assert api.wait_for_run(WATCHDOG, run_id, timeout=600) == "success", run_id
    value = api.request(
        "GET", f"/dags/{WATCHDOG}/dagRuns/{run_id}/taskInstances/check_freshness/xcomEntries/return_value"
    )["value"]
    return value if isinstance(value, dict) else json.loads(value)


def freshness_messages(receivers, since: float) -> list[dict]:  # noqa: F811
    from test_alerts_e2e import message_facts

    out = []
    for rec in receivers.records():
        facts = message_facts(rec)
        if rec["received_at"] >= since and facts.get("Pipeline") == FRESH_DAG and "freshness" in facts.get("_kind", ""):
            out.append({**rec, "facts": facts})
    return out


def kinds_per_channel(messages: list[dict]) -> dict[str, list[str]]:
    return {s: [m["facts"]["_kind"] for m in messages if m["service"] == s and m["accepted"]] for s in CHANNELS}


@pytest.mark.timeout(2400)
def test_watchdog_alerts_once_per_channel_then_recovers_once(api, own_dags, receivers, pg):  # noqa: F811
    """e2e_fresh (max_lag 2h) loads [T, T+1h). As of T+2h: fresh, nothing sent. As of T+4h (lag 3h): one breach
    message per channel, with the deadline alert's freshness fields; as of T+5h, still breached: nothing more.
    Then [T+3h, T+4h) loads; as of T+5h+1m (lag 1h): one "recovered" per channel; as of T+6h: nothing more."""
    own_dags(FRESH_DAG, WATCHDOG)
    forget(pg, "freshness_state", FRESH_DAG)
    latest = (
        pg.execute("SELECT max(interval_end) FROM sluice.run_summary WHERE pipeline = %s", [FRESH_DAG]).fetchone()[0]
        if pg.execute("SELECT to_regclass('sluice.run_summary')").fetchone()[0]
        else None
    )
    t = max(datetime(2100, 1, 1, tzinfo=UTC), (latest or datetime.min.replace(tzinfo=UTC)) + timedelta(days=1))
    t = t.replace(minute=0, second=0, microsecond=0)
    since = time.time()
    first = trigger_day(api, FRESH_DAG, t, hours=1)
    assert api.wait_for_run(FRESH_DAG, first, timeout=900) == "success"

    assert watchdog(api, t + timedelta(hours=2))[FRESH_DAG].startswith("ok, lag 1h (max 2h); nobody to tell")
    assert freshness_messages(receivers, since) == []

    breach = watchdog(api, t + timedelta(hours=4))[FRESH_DAG]
    assert breach.startswith("breach, lag 3h (max 2h); sluice_slack: sent, sluice_discord: sent"), breach
    got = freshness_messages(receivers, since)
    assert kinds_per_channel(got) == {s: ["freshness_breach"] for s in CHANNELS}, got
    for msg in got:
        f = msg["facts"]
        assert f["Freshness rule"] == "max_lag 2h" and f["Checked at"] == f"{t + timedelta(hours=4):%Y-%m-%d %H:%M} UTC"
        assert f["Last loaded interval"].startswith(
            f"{t:%Y-%m-%d %H:%M} UTC → {t + timedelta(hours=1):%Y-%m-%d %H:%M} UTC"
        ), f
        assert f["Staleness"] == "data ends 3h 0m ago", f
        assert f["Last run"].startswith("success · 3 extracted · 3 loaded · 0 quarantined") and first in f["Last run"]

    again = watchdog(api, t + timedelta(hours=5))[FRESH_DAG]
    assert again.startswith("breach, lag 4h (max 2h); nobody to tell"), again
    assert kinds_per_channel(freshness_messages(receivers, since)) == {s: ["freshness_breach"] for s in CHANNELS}

    second = trigger_day(api, FRESH_DAG, t + timedelta(hours=3), hours=1)
    assert api.wait_for_run(FRESH_DAG, second, timeout=900) == "success"
    recovered = watchdog(api, t + timedelta(hours=5, minutes=1))[FRESH_DAG]
    assert recovered.startswith("ok, lag 1h1m (max 2h); sluice_slack: sent, sluice_discord: sent"), recovered
    assert watchdog(api, t + timedelta(hours=6))[FRESH_DAG].startswith("ok, lag 2h (max 2h); nobody to tell")
    got = freshness_messages(receivers, since)
    assert kinds_per_channel(got) == {s: ["freshness_breach", "freshness_recovered"] for s in CHANNELS}, got
    done = next(m["facts"] for m in got if m["facts"]["_kind"] == "freshness_recovered")
    assert done["Staleness"] == "data ends 1h 1m ago" and second in done["Last run"], done
