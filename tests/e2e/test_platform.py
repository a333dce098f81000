"""The platform check through the real api-server, scheduler and Celery workers, by REST and by browser."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import requests
from sluice.connections import pg_dsn

DAG = "sluice_platform_check"


def test_api_rejects_requests_without_token(api):
    r = requests.get(f"{api.base_url}/api/v2/dags", timeout=10)
    assert r.status_code == 401
    r = requests.get(f"{api.base_url}/api/v2/dags", headers={"Authorization": "Bearer not-a-token"}, timeout=10)
    assert r.status_code == 403  # Airflow 3 answers a token it cannot verify with 403 Forbidden


def test_platform_check_via_rest_runs_on_celery(api):
    api.wait_for_dag(DAG)
    api.unpause(DAG)
    run_id = api.trigger(DAG)
    assert api.wait_for_run(DAG, run_id, timeout=300) == "success"
    tis = {ti["task_id"]: ti for ti in api.task_instances(DAG, run_id)}
    assert set(tis) == {"warehouse", "staging", "alert_connections"}
    assert all(ti["state"] == "success" for ti in tis.values())
    assert all(ti["queue"] == "default" and ti["hostname"] for ti in tis.values())  # ran on a Celery worker
    with psycopg.connect(pg_dsn("sluice_warehouse")) as conn:
        row = conn.execute("SELECT token FROM sluice.platform_check WHERE run_id = %s", (run_id,)).fetchone()
    assert row is not None and len(row[0]) == 16


def test_ui_login_find_dag_trigger_and_see_success(api, page):
    api.wait_for_dag(DAG)
    api.unpause(DAG)
    before = {r["dag_run_id"] for r in api.request("GET", f"/dags/{DAG}/dagRuns")["dag_runs"]}
    page.goto(api.base_url + "/dags")
    page.get_by_placeholder("Search Dags").first.fill(DAG)
    page.get_by_role("link", name=DAG).first.click()
    page.wait_for_url(re.compile(rf"/dags/{DAG}(\?.*)?$"))
    page.get_by_role("heading", name=DAG).first.wait_for()
    page.wait_for_load_state("networkidle")
    page.get_by_test_id("trigger-dag-button").click()
    submit = page.get_by_test_id("trigger-dag-submit")
    submit.wait_for(state="visible")
    page.wait_for_load_state("networkidle")  # the form re-renders once it has loaded the DAG's params
    submit.click()

    deadline = time.time() + 300
    new: set[str] = set()
    while time.time() < deadline and not new:
        new = {r["dag_run_id"] for r in api.request("GET", f"/dags/{DAG}/dagRuns")["dag_runs"]} - before
        time.sleep(1)
    assert len(new) == 1, "clicking Trigger in the UI created no run"
    run_id = new.pop()
    assert api.wait_for_run(DAG, run_id, timeout=300) == "success"
    page.goto(f"{api.base_url}/dags/{DAG}/runs/{run_id}")
    page.get_by_text("success").first.wait_for(timeout=60_000)


UI_DAG = "e2e_ui_interval"  # tests/e2e/pipelines/e2e_ui_interval.yaml: one row holding the interval it processed


def manual_runs(api, dag_id: str) -> set[str]:
    runs = api.request("GET", f"/dags/{dag_id}/dagRuns", params={"run_type": "manual", "limit": 100})["dag_runs"]
    return {r["dag_run_id"] for r in runs}


def test_ui_trigger_form_interval_fields_set_the_processed_interval(api, page):
    """Fill the trigger form's interval_start / interval_end: the run carries them in its conf and processes
    exactly that interval (run_summary and the row the source query stamped with it)."""
    api.wait_for_dag(UI_DAG)
    day = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 7000)
    start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
    before = manual_runs(api, UI_DAG)
    page.goto(f"{api.base_url}/dags/{UI_DAG}")
    page.get_by_role("heading", name=UI_DAG).first.wait_for()
    page.wait_for_load_state("networkidle")
    page.get_by_test_id("trigger-dag-button").click()
    submit = page.get_by_test_id("trigger-dag-submit")
    submit.wait_for(state="visible")
    page.wait_for_load_state("networkidle")  # the form re-renders once it has loaded the DAG's params
    page.locator("#element_interval_start").fill(start)
    page.locator("#element_interval_end").fill(end)
    submit.click()

    deadline = time.time() + 120
    new: set[str] = set()
    while time.time() < deadline and not new:
        new = manual_runs(api, UI_DAG) - before
        time.sleep(1)
    assert len(new) == 1, "clicking Trigger in the UI created no run"
    run_id = new.pop()
    try:
        assert api.wait_for_run(UI_DAG, run_id, timeout=300) == "success"
    finally:
        api.request("PATCH", f"/dags/{UI_DAG}", json={"is_paused": True})  # the form unpaused it
    run = api.request("GET", f"/dags/{UI_DAG}/dagRuns/{run_id}")
    assert run["conf"].get("interval_start") == start and run["conf"].get("interval_end") == end, run["conf"]
    with psycopg.connect(pg_dsn("sluice_warehouse")) as conn:
        summary = conn.execute(
            "SELECT interval_start, interval_end, status FROM sluice.run_summary WHERE run_id = %s", (run_id,)
        ).fetchone()
        stamped = conn.execute("SELECT slot_end FROM e2e_ui.ui_intervals WHERE slot_start = %s", (day,)).fetchall()
    assert summary == (day, day + timedelta(days=1), "success"), summary
    tis = api.task_instances(UI_DAG, run_id)
    assert tis and all(t["state"] == "success" for t in tis), tis
    assert stamped == [(day + timedelta(days=1),)], stamped
