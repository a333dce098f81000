"""Infrastructure faults through the real stack: a component is stopped or restarted through the stack's own
supervisorctl while a run is held at a failpoint, then the run is let go. Each run must end in success after
retries with the table and ledger of a clean run; where the retries run out, exactly one alert per channel.

Every fault ends by itself: a stopped component is started again in a `finally`, a held failpoint is released when
its `with` block ends, and every wait polls a state (the run's, a failpoint's queue, a service's answer)."""

from __future__ import annotations

import os
import time
from datetime import datetime

import psycopg
import requests
from faultkit import (
    CRASH,
    CRASH_DAY,
    FailpointHold,
    crash_table,
    ctl,
    ensure_buckets,
    land_crash_data,
    ledger,
    poll,
    sql,
    stopped,
    task_states,
    wait_for_run,
)
from sluice.connections import pg_dsn
from sluice.failpoints import Point


def assert_like_clean(api, run_id: str, clean: dict) -> None:
    assert crash_table() == clean["table"]
    assert ledger(run_id) == clean["chunks"]  # one ledger row per chunk, with the clean run's counts


def retried(api, run_id: str) -> dict[tuple[str, int], int]:
    return {k: t["try_number"] for k, t in task_states(api, CRASH, run_id).items() if t["try_number"] > 1}


def restart(program: str) -> float:
    """supervisorctl restart; returns how long it took (stop + start until supervisord calls it RUNNING)."""
    started = time.monotonic()
    out = ctl("restart", program)
    assert "started" in out, out
    return time.monotonic() - started


def warehouse_answers() -> bool:
    try:
        with psycopg.connect(pg_dsn("sluice_warehouse"), connect_timeout=5) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_warehouse_restarted_mid_load(api, clean_crash_run):
    """PostgreSQL (warehouse and Airflow metadata) restarted while load tasks hold open transactions: those
    transactions are lost, the tasks fail, Airflow retries them, and the table ends exactly as a clean run."""
    sql("TRUNCATE e2e.lineitem_crash")
    with FailpointHold(CRASH, Point.load_before_commit) as hold:
        run_id = api.trigger(CRASH, conf=CRASH_DAY)
        hold.wait_for_backend(api=api, dag_id=CRASH, run_id=run_id)
        took = restart("postgres")
    poll("warehouse back", warehouse_answers, 300)
    state = wait_for_run(api, CRASH, run_id)
    print(f"\npostgres restart took {took:.0f}s; retried {retried(api, run_id)}")
    assert state == "success", api.task_instances(CRASH, run_id)
    assert retried(api, run_id), "no task saw the restart"
    assert_like_clean(api, run_id, clean_crash_run)


def test_redis_broker_restarted_while_tasks_are_queued_and_running(api, clean_crash_run):
    """Two runs (12 load tasks for 8 worker slots): when loads wait at the failpoint and others are queued in the
    broker, Redis restarts. Its append-only file keeps the queued messages; the workers reconnect; both runs end
    like a clean run."""
    sql("TRUNCATE e2e.lineitem_crash")
    with FailpointHold(CRASH, Point.load_before_commit) as hold:
        runs = [api.trigger(CRASH, conf=CRASH_DAY) for _ in range(2)]

        def queued_and_running() -> bool:
            states = [t["state"] for r in runs for t in api.task_instances(CRASH, r)]
            return bool(hold.waiting()) and "queued" in states

        poll("tasks queued in the broker while others run", queued_and_running, 900)
        took = restart("redis")
    states = [wait_for_run(api, CRASH, r) for r in runs]
    print(f"\nredis restart took {took:.0f}s; retried {[retried(api, r) for r in runs]}")
    assert states == ["success", "success"], [api.task_instances(CRASH, r) for r in runs]
    assert crash_table() == clean_crash_run["table"]
    for r in runs:
        assert ledger(r) == clean_crash_run["chunks"]


def api_healthy(api) -> bool:
    r = requests.get(f"{api.base_url}/api/v2/monitor/health", timeout=10)
    return r.status_code == 200 and r.json().get("metadatabase", {}).get("status") == "healthy"


def test_api_server_restarted_mid_run(api, clean_crash_run):
    """The api-server (UI, REST and the execution API every task talks to) restarted while loads are held."""
    sql("TRUNCATE e2e.lineitem_crash")
    with FailpointHold(CRASH, Point.load_before_commit) as hold:
        run_id = api.trigger(CRASH, conf=CRASH_DAY)
        hold.wait_for_backend(api=api, dag_id=CRASH, run_id=run_id)
        down = time.monotonic()
        restart("airflow-api-server")
        poll("api-server healthy", lambda: api_healthy(api), 600, every=0.5)
        back = time.monotonic() - down
    state = wait_for_run(api, CRASH, run_id)
    print(f"\napi-server back {back:.0f}s after the restart began; retried {retried(api, run_id)}")
    assert state == "success", api.task_instances(CRASH, run_id)
    assert_like_clean(api, run_id, clean_crash_run)


def test_s3_endpoint_stopped_mid_extract_then_started(api, clean_crash_run, s3_client):
    """The S3 endpoint stops after the first chunk is staged: the extraction fails and is retried; the retry is
    held at extract.start until the endpoint is back (moto keeps objects in memory, so the test lands the same
    deterministic files again, as a persistent store would have kept them), then stages everything anew."""
    sql("TRUNCATE e2e.lineitem_crash")
    with FailpointHold(CRASH, Point.extract_after_chunk) as first:
        run_id = api.trigger(CRASH, conf=CRASH_DAY)
        first.wait_for_backend(api=api, dag_id=CRASH, run_id=run_id)
        with FailpointHold(CRASH, Point.extract_start) as retry:  # try 1 is past it; its retry will wait here
            with stopped("s3"):
                first.release()  # try 1 goes on against the stopped endpoint
                retry.wait_for_backend(api=api, dag_id=CRASH, run_id=run_id)
            ensure_buckets(s3_client)
            land_crash_data()
    state = wait_for_run(api, CRASH, run_id)
    print(f"\nS3 stopped mid-extract: retried {retried(api, run_id)}")
    assert state == "success", api.task_instances(CRASH, run_id)
    assert retried(api, run_id).get(("extract_and_stage", -1)) == 2
    assert_like_clean(api, run_id, clean_crash_run)


def test_s3_down_through_every_retry_alerts_once_per_channel(api, s3_client):
    """e2e_alert_failure (retries: 1) with the S3 endpoint stopped for the whole run: the extraction fails on both
    tries and exactly one alert per channel arrives, within 60 s of the final failure."""
    dag = "e2e_alert_failure"
    api.wait_for_dag(dag)
    api.unpause(dag)
    try:
        with stopped("s3"):
            run_id = api.trigger(
                dag, conf={"interval_start": "2000-01-01T00:00:00+00:00", "interval_end": "2000-01-02T00:00:00+00:00"}
            )
            assert wait_for_run(api, dag, run_id) == "failed"
    finally:
        api.request("PATCH", f"/dags/{dag}", json={"is_paused": True})
        ensure_buckets(s3_client)
        land_crash_data()
    ti = task_states(api, dag, run_id)[("extract_and_stage", -1)]
    assert ti["state"] == "failed" and ti["try_number"] == 2, ti
    failed_at = ti["end_date"]
    hooks = f"http://127.0.0.1:{os.environ['SLUICE_WEBHOOK_PORT']}/_received"

    def alerts() -> dict[str, list[dict]]:
        got: dict[str, list[dict]] = {"slack": [], "discord": []}
        for rec in requests.get(hooks, timeout=10).json():
            if rec.get("accepted") and run_id in rec.get("raw", ""):
                got[rec["service"]].append(rec)
        return got

    got = poll("one alert per channel", lambda: (a := alerts()) and all(a.values()) and a, 60)
    end = datetime.fromisoformat(failed_at.replace("Z", "+00:00")).timestamp()
    assert {k: len(v) for k, v in got.items()} == {"slack": 1, "discord": 1}, got
    for service, recs in got.items():
        assert recs[0]["received_at"] - end <= 60, f"{service} alert {recs[0]['received_at'] - end:.0f}s late"
