"""Issue 6 through the real scheduler, triggerer and Celery workers (`airflow dags test` cannot run DAGs with
`deadline=`, apache/airflow#73428). Slack and Discord are the stack's loopback receivers (demo/webhook_receiver.py),
which enforce each API's payload contract; the pipelines are tests/e2e/pipelines/e2e_alert_*.yaml.

The receivers are shared by everything on the stack, so every check selects the messages of its own run (the run id
is a field of every message) and the 500s are injected only while no other run of these tests is alerting.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests
from sluice.failpoints import Point

from tests.e2e.conftest import FailpointHold, task_log, wait_log_lines

HOME = Path(os.environ.get("SLUICE_HOME", ".sluice"))
PAYLOADS_OUT = HOME / "logs" / "e2e_alert_payloads.json"  # the alerts as received, for the record

DEADLINE_DAG, FAILURE_DAG, FLAKY_DAG = "e2e_alert_deadline", "e2e_alert_failure", "e2e_alert_flaky"
OURS = (DEADLINE_DAG, FAILURE_DAG, FLAKY_DAG, "e2e_secret_echo")
EXTRACT = "extract_and_stage"
DEADLINE_AFTER = timedelta(seconds=90)  # e2e_alert_deadline.yaml: deadline.after_interval_end
MARGIN = 10  # s: a run created later than its deadline minus this says the stack is too slow to test the deadline
ALERT_WITHIN = 60  # s from the deadline to the message (issue 6)
CHANNELS = ("slack", "discord")
STARTED: list[tuple[str, str]] = []  # (dag_id, run_id) of every run started here, for the secrets check
CAPTURED: dict[str, dict] = {}  # alert kind -> the messages as received, written to PAYLOADS_OUT


# ---------------------------------------------------------------- the receivers
class Receivers:
    """Client of the stack's webhook receivers: what arrived (GET /_received), how to misbehave (POST /_control)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def records(self) -> list[dict]:
        r = requests.get(f"{self.url}/_received", timeout=10)
        r.raise_for_status()
        return r.json()

    def control(self, **body) -> None:
        requests.post(f"{self.url}/_control", json=body, timeout=10).raise_for_status()

    def of_run(self, run_id: str, kind: str | None = None) -> list[dict]:
        """Requests (accepted or not) whose message is about `run_id`, each with its parsed `facts`."""
        out = []
        for rec in self.records():
            facts = message_facts(rec)
            if facts.get("Run") == run_id and kind in (None, facts.get("_kind")):
                out.append({**rec, "facts": facts})
        return out

    def wait_for(self, run_id: str, kind: str, timeout: float) -> list[dict]:
        """Poll until both channels have accepted a `kind` message about `run_id`; returns all its requests."""
        end = time.time() + timeout
        while True:
            got = self.of_run(run_id, kind)
            if all(any(r["accepted"] and r["service"] == s for r in got) for s in CHANNELS) or time.time() > end:
                return got
            time.sleep(0.5)


def message_facts(rec: dict) -> dict[str, str]:
    """Label -> value of one Slack Block Kit or Discord embed message, plus `_kind` (failure, retry, ...)."""
    p = rec.get("payload")
    facts: dict[str, str] = {}
    if not isinstance(p, dict):
        return facts
    if rec.get("service") == "slack":
        for block in p.get("blocks") or []:
            for field in block.get("fields") or []:
                label, _, value = field.get("text", "").partition("\n")
                facts[label.strip("*")] = html.unescape(value)
            if block.get("type") == "context":
                parts = block["elements"][0].get("text", "").split(" · ")
                facts["_kind"] = parts[1] if len(parts) > 1 else ""
            if block.get("type") == "section" and "text" in block and block["text"]["text"].startswith("*Error*"):
                facts["_error"] = html.unescape(block["text"]["text"])
    else:
        embed = (p.get("embeds") or [{}])[0]
        facts = {f["name"]: f["value"] for f in embed.get("fields") or []}
        facts["_kind"] = (embed.get("footer") or {}).get("text", "").rpartition(" · ")[2]
        facts["_error"] = embed.get("description", "")
    return facts


def slack_webhook_url() -> str:
    """The Slack webhook URL the stack's sluice_slack connection sends to: the README form is the whole URL as the
    password; the older form is the host plus the token path as the password (both are what the provider accepts)."""
    conn = json.loads(os.environ.get("AIRFLOW_CONN_SLUICE_SLACK") or "{}")
    password = conn.get("password") or ""
    if password.startswith(("http://", "https://")):
        return password
    return (conn.get("host") or "").rstrip("/") + "/" + password.lstrip("/") if conn.get("host") else ""


@pytest.fixture(scope="module")
def receivers() -> Receivers:
    """$SLUICE_WEBHOOK_PORT, else the address the alert connections point at (they must point at the receivers)."""
    slack_url = slack_webhook_url()
    port = os.environ.get("SLUICE_WEBHOOK_PORT") or urlsplit(slack_url).port
    if not port:
        pytest.fail(
            "neither SLUICE_WEBHOOK_PORT nor AIRFLOW_CONN_SLUICE_SLACK is set: source $SLUICE_HOME/env", pytrace=False
        )
    rx = Receivers(f"http://127.0.0.1:{port}")
    assert slack_url.startswith(rx.url), f"sluice_slack points at {slack_url.split('/slack')[0]}, not at {rx.url}"
    rx.records()  # reachable
    return rx


def test_the_stack_slack_connection_is_the_readme_form():
    """So the e2e alert tests exercise the form users are told to write."""
    conn = json.loads(os.environ["AIRFLOW_CONN_SLUICE_SLACK"])
    assert conn["conn_type"] == "slackwebhook"
    assert conn.get("password", "").startswith("http") and not conn.get("host"), "README: the whole URL as password"


@pytest.fixture(scope="module")
def dags(api):
    """The three pipelines parsed and paused, with no run left over from an interrupted session (a paused DAG's
    runs stay running for ever and count against max_active_runs); paused again at the end whatever happens."""
    for dag_id in OURS:
        api.wait_for_dag(dag_id, timeout=180)
        api.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
        for state in ("queued", "running"):
            for run in api.request("GET", f"/dags/{dag_id}/dagRuns", params={"state": state})["dag_runs"]:
                api.request("PATCH", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
    yield
    for dag_id in OURS:
        api.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})


# ---------------------------------------------------------------- helpers
def ti_of(api, dag_id: str, run_id: str, task_id: str = EXTRACT) -> dict | None:
    return next((t for t in api.task_instances(dag_id, run_id) if t["task_id"] == task_id), None)


def wait_ti(api, dag_id: str, run_id: str, states: set[str], timeout: float, task_id: str = EXTRACT) -> dict:
    end = time.time() + timeout
    ti = None
    while time.time() < end:
        ti = ti_of(api, dag_id, run_id, task_id)
        if ti and ti["state"] in states:
            return ti
        time.sleep(0.5)
    raise AssertionError(f"{dag_id} {run_id} {task_id} not in {states} after {timeout:.0f}s: {ti and ti['state']}")


def unique_day() -> date:
    """A data interval no other run of these tests uses (each run reads its own S3 prefix)."""
    return date(2001, 1, 1) + timedelta(days=uuid.uuid4().int % 7000)


def trigger_interval(api, dag_id: str, day: date) -> str:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    run_id = api.trigger(
        dag_id, conf={"interval_start": start.isoformat(), "interval_end": (start + timedelta(days=1)).isoformat()}
    )
    STARTED.append((dag_id, run_id))
    return run_id


def put_corrupt_parquet(s3_client, dag_id: str, day: date) -> str:
    key = f"e2e/alerts/{dag_id.removeprefix('e2e_alert_')}/{day.isoformat()}/part-0.parquet"
    s3_client.put_object(Bucket="sluice-landing", Key=key, Body=b"PAR1 this is not a parquet file PAR1")
    return key


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def one_per_channel(messages: list[dict]) -> dict[str, dict]:
    by = {s: [m for m in messages if m["service"] == s] for s in CHANNELS}
    for service, got in by.items():
        assert len(got) == 1, f"{service}: expected exactly one message, got {len(got)}: {[m['facts'] for m in got]}"
        assert got[0]["accepted"], f"{service} rejected the message: {got[0].get('error')}"
    return {s: got[0] for s, got in by.items()}


def capture(kind: str, got: dict[str, dict], **info) -> None:
    CAPTURED[kind] = {
        **info,
        **{
            s: {
                "received_at": m["received_at"],
                "path": re.sub(r"[^/]+$", "<token>", m["path"]),
                "payload": m["payload"],
            }
            for s, m in got.items()
        },
    }
    PAYLOADS_OUT.write_text(json.dumps(CAPTURED, indent=2, ensure_ascii=False))


# ---------------------------------------------------------------- tests
@pytest.mark.timeout(600)
def test_webhook_500_is_retried_logged_and_never_fails_the_task(api, dags, receivers, s3_client):
    """Try 1 fails (corrupt file) and sends a retry notice (on_retry: true) to receivers that answer 500 twice:
    the notice is retried and logged, and try 2 (file removed) succeeds: the reported task is not failed by it.
    The file goes while try 2 waits at the failpoint extract.start, which the test holds, not during the retry delay."""
    day = unique_day()
    key = put_corrupt_parquet(s3_client, FLAKY_DAG, day)
    api.unpause(FLAKY_DAG)  # end_date is in the past: no scheduled run
    receivers.control(fail={"slack": 2, "discord": 2})
    try:
        with FailpointHold(FLAKY_DAG, Point.extract_start) as point:
            run_id = trigger_interval(api, FLAKY_DAG, day)
            point.wait_for_task(timeout=240)  # try 1, before it reads the corrupt file
            point.release()
            point.wait_until_passed(timeout=60)
            point.hold()  # try 1 has passed it: the next task to wait here is try 2, after try 1 failed
            point.wait_for_task(timeout=240)  # try 2, before it reads the source
            assert ti_of(api, FLAKY_DAG, run_id)["try_number"] == 2
            s3_client.delete_object(Bucket="sluice-landing", Key=key)  # try 2 reads an empty prefix
        ti = wait_ti(api, FLAKY_DAG, run_id, {"success", "failed"}, timeout=240)
        api.wait_for_run(FLAKY_DAG, run_id, timeout=120)  # before pausing: a paused DAG's run stops where it is
    finally:
        receivers.control(fail={"slack": 0, "discord": 0})
        api.request("PATCH", f"/dags/{FLAKY_DAG}", json={"is_paused": True})
        s3_client.delete_object(Bucket="sluice-landing", Key=key)
    assert ti["state"] == "success" and ti["try_number"] == 2, ti

    log = wait_log_lines(
        task_log(FLAKY_DAG, run_id, EXTRACT, 1),
        ["Alert (retry) sent to 'sluice_slack'", "Alert (retry) sent to 'sluice_discord'"],
        20,
    )
    messages = receivers.of_run(run_id)
    for service, conn_id in (("slack", "sluice_slack"), ("discord", "sluice_discord")):
        got = [m for m in messages if m["service"] == service]
        assert {m["facts"]["_kind"] for m in got} == {"retry"}, "only the retry notice: try 2 succeeded"
        assert any(m["status"] == 500 for m in got), f"{service}: no 500 reached this run's notice"
        assert sum(m["accepted"] for m in got) == 1, f"{service}: {[m['status'] for m in got]}"
        assert re.search(rf"Alert to '{conn_id}' failed on attempt \d \(HTTP 500\); retrying in", log), (
            f"the {service} retry is not in the task log"
        )
    facts = next(m for m in messages if m["accepted"])["facts"]
    assert facts["Task"] == EXTRACT and facts["Try"] == "1 of 2" and facts["Pipeline"] == FLAKY_DAG


@pytest.mark.timeout(480)
def test_failure_after_retries_alerts_once_per_channel(api, dags, receivers, s3_client):
    """A corrupt Parquet file fails extract on both tries (retries: 1, delay 1 s): one alert per channel, none for
    the retry (on_retry: false), naming the pipeline, task, interval, try and error, with links."""
    day = unique_day()
    key = put_corrupt_parquet(s3_client, FAILURE_DAG, day)
    api.unpause(FAILURE_DAG)  # end_date is in the past: no scheduled run
    try:
        run_id = trigger_interval(api, FAILURE_DAG, day)
        assert api.wait_for_run(FAILURE_DAG, run_id, timeout=300) == "failed"
    finally:
        api.request("PATCH", f"/dags/{FAILURE_DAG}", json={"is_paused": True})
        s3_client.delete_object(Bucket="sluice-landing", Key=key)
    ti = ti_of(api, FAILURE_DAG, run_id)
    assert ti["state"] == "failed" and ti["try_number"] == 2, ti

    # the callback runs after the task reported its state: its log says when both channels are done
    wait_log_lines(
        task_log(FAILURE_DAG, run_id, EXTRACT, 2),
        ["Alert (failure) sent to 'sluice_slack'", "Alert (failure) sent to 'sluice_discord'"],
        30,
    )
    # Nothing else can still come: on_retry is false (no retry callback exists); every other task never ran
    # (upstream_failed, try 0), and Airflow 3 runs a task's callbacks in its own process, or in the dag-processor
    # only for a killed or lost one (airflow/callbacks/callback_requests.py); and the one callback that ran logged
    # both sends, which it does after the receiver answered (the receiver records a request before it answers).
    others = [t for t in api.task_instances(FAILURE_DAG, run_id) if t["task_id"] != EXTRACT]
    assert others and all(t["state"] == "upstream_failed" and not t["try_number"] for t in others), others
    messages = receivers.of_run(run_id)
    assert {m["facts"]["_kind"] for m in messages} == {"failure"}, [m["facts"] for m in messages]
    got = one_per_channel(messages)
    for service, msg in got.items():
        f = msg["facts"]
        assert f["Pipeline"] == FAILURE_DAG and f["Task"] == EXTRACT and f["Try"] == "2 of 2", f
        assert f["Data interval"].startswith(f"{day.isoformat()} 00:00 UTC → "), f
        assert "SourceReadError" in f["_error"] and key in f["_error"], f"{service}: {f['_error'][:300]}"
    capture("failure", got, run_id=run_id)
    slack, discord = got["slack"]["payload"], got["discord"]["payload"]
    assert "View task log" in json.dumps(slack) and discord["embeds"][0]["url"].startswith(api.base_url)
    assert f"task {EXTRACT} failed" in slack["text"]


def scheduled_runs(api) -> list[dict]:
    return api.request(
        "GET", f"/dags/{DEADLINE_DAG}/dagRuns", params={"run_type": "scheduled", "order_by": "-id", "limit": 20}
    )["dag_runs"]


def start_one_scheduled_run(api) -> dict:
    """Unpause at any moment and take the first scheduled run after it. Whichever interval that run gets (the one
    that just ended, or the next one), it is created at most ~60 s after its interval's end, and its deadline is
    90 s after that end, so no minute boundary has to be caught."""
    file_token = api.request("GET", f"/dags/{DEADLINE_DAG}")["file_token"]
    api.request("PUT", f"/parseDagFile/{file_token}")  # next_dagrun from now, not from an old parse
    end = time.time() + 120
    while (
        ts(api.request("GET", f"/dags/{DEADLINE_DAG}")["next_dagrun_data_interval_end"])
        or datetime.min.replace(tzinfo=UTC)
    ) < datetime.now(UTC) - timedelta(seconds=60):
        assert time.time() < end, f"the dag-processor never refreshed {DEADLINE_DAG}'s next run"
        time.sleep(0.5)
    seen = {r["dag_run_id"] for r in scheduled_runs(api)}
    api.unpause(DEADLINE_DAG)
    end = time.time() + 150
    while time.time() < end:
        if new := [r for r in scheduled_runs(api) if r["dag_run_id"] not in seen]:
            run = min(new, key=lambda r: r["data_interval_end"])
            STARTED.append((DEADLINE_DAG, run["dag_run_id"]))
            return run
        time.sleep(0.5)
    api.request("PATCH", f"/dags/{DEADLINE_DAG}", json={"is_paused": True})
    raise AssertionError(f"the scheduler created no run of {DEADLINE_DAG} within 150 s of unpausing")


def delete_later_runs(api, run: dict) -> list[str]:
    """The DAG stays unpaused while its run goes on (a paused DAG's runs do not progress), so the scheduler starts
    one run a minute: delete those (their deadlines go with them, so they never alert)."""
    later = [r["dag_run_id"] for r in scheduled_runs(api) if r["data_interval_end"] > run["data_interval_end"]]
    for run_id in later:  # a running run cannot be deleted: stop it first
        api.request("PATCH", f"/dags/{DEADLINE_DAG}/dagRuns/{quote(run_id)}", json={"state": "failed"})
        api.request("DELETE", f"/dags/{DEADLINE_DAG}/dagRuns/{quote(run_id)}")
    return later


def finish(api, run: dict, timeout: float = 240) -> str:
    """Wait for the run to finish, deleting the runs that start meanwhile; then pause and delete any left."""
    end = time.time() + timeout
    state = api.run_state(DEADLINE_DAG, run["dag_run_id"])
    try:
        while state not in ("success", "failed") and time.time() < end:
            delete_later_runs(api, run)
            time.sleep(2)
            state = api.run_state(DEADLINE_DAG, run["dag_run_id"])
    finally:
        api.request("PATCH", f"/dags/{DEADLINE_DAG}", json={"is_paused": True})
        delete_later_runs(api, run)
        if state not in ("success", "failed"):
            api.request("PATCH", f"/dags/{DEADLINE_DAG}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
    return state


@pytest.mark.timeout(480)
def test_missed_deadline_alerts_once_per_channel_with_freshness(api, dags, receivers):
    """A scheduled run still running 90 s after its interval's end (its extract waits until 115 s after it, on a
    Celery worker): exactly one Slack and one Discord message, within 60 s of the deadline, with freshness fields;
    still exactly one each once the run has finished."""
    from sluice.alerts import read_warehouse

    fresh, _ = read_warehouse("sluice_warehouse", DEADLINE_DAG)  # as the callback will read it: no run ends between
    run = start_one_scheduled_run(api)
    try:
        check_deadline_alert(api, receivers, run, fresh)
    finally:
        outcome = finish(api, run)
        print(f"{run['dag_run_id']}: {outcome}")
    assert outcome == "success", outcome
    one_per_channel(receivers.of_run(run["dag_run_id"], "deadline_missed"))  # nothing more came after the run


def check_deadline_alert(api, receivers, run: dict, fresh) -> None:
    run_id = run["dag_run_id"]
    deadline = ts(run["data_interval_end"]) + DEADLINE_AFTER
    created = ts(run["queued_at"]) or ts(run["run_after"])
    margin = (deadline - created).total_seconds()
    print(f"\n{run_id}: created {margin:.1f}s before its deadline {deadline:%H:%M:%S}")
    assert margin > MARGIN, f"{run_id} was created {margin:.1f}s before its deadline (scheduler overloaded?)"

    messages = receivers.wait_for(
        run_id, "deadline_missed", timeout=max(5.0, (deadline - datetime.now(UTC)).total_seconds()) + ALERT_WITHIN + 5
    )
    assert messages, f"no deadline alert for {run_id} (see airflow-triggerer.log)"
    got = one_per_channel(receivers.of_run(run_id, "deadline_missed"))

    delays = {s: m["received_at"] - deadline.timestamp() for s, m in got.items()}
    print("deadline -> receipt: " + ", ".join(f"{s} {d:.2f}s" for s, d in delays.items()))
    capture(
        "deadline_missed",
        got,
        run_id=run_id,
        deadline=deadline.isoformat(),
        run_created=created.isoformat(),
        delay_seconds=delays,
    )
    for service, delay in delays.items():
        assert 0 <= delay <= ALERT_WITHIN, f"{service}: {delay:.1f}s from the deadline to the message"

    assert fresh is not None and not fresh.unavailable, f"warehouse freshness unreadable: {fresh}"
    for msg in got.values():
        f = msg["facts"]
        assert f["Pipeline"] == DEADLINE_DAG and f["Run"] == run_id, f
        assert (
            f["Data interval"] == f"{run['data_interval_start'][:16].replace('T', ' ')} UTC → "
            f"{run['data_interval_end'][:16].replace('T', ' ')} UTC"
        ), f
        assert f["Deadline"] == f"1m 30s after the interval end ({deadline:%Y-%m-%d %H:%M:%S} UTC)", f
        assert f["Run state"] in ("queued", "running"), f
        assert "Freshness" not in f, f"freshness unavailable in the alert: {f['Freshness']}"
        assert "This run so far" in f, f
        if fresh.last_end is None:
            assert f["Last loaded interval"] == "none: no successful run recorded", f
        else:
            assert f"→ {fresh.last_end.astimezone(UTC):%Y-%m-%d %H:%M} UTC" in f["Last loaded interval"], f
            assert f["Staleness"].startswith("data ends "), f
        if fresh.last_run_id:
            assert f["Last run"].startswith(f"{fresh.last_run_status} · ") and fresh.last_run_id in f["Last run"], f
    extract = wait_ti(api, DEADLINE_DAG, run_id, {"running", "success", "failed"}, timeout=30)
    assert extract["hostname"], extract  # a Celery worker ran it
    assert extract["end_date"] is None or ts(extract["end_date"]) > deadline, extract  # still working at the deadline
    assert "Open run in Airflow" in json.dumps(got["slack"]["payload"])
    assert got["discord"]["payload"]["embeds"][0]["url"].endswith(f"/runs/{quote(run_id)}")


def secret_values() -> dict[str, str]:
    """Every credential the stack generated, and the token part of each webhook path on its own."""
    s = json.loads((HOME / "secrets.json").read_text())
    values = {k: v for k, v in s.items() if k != "s3_access_key"}  # an access key id is a user name, not a secret
    for key in ("slack_token", "discord_token"):
        values[f"{key} (last part)"] = s[key].rsplit("/", 1)[-1]
    return values


SECRET_DAG = "e2e_secret_echo"  # its error text holds the sluice_demo_api password, before masking


def webhook_path_token(line: str) -> str:
    """A webhooks.jsonl record without its request path: the path IS the webhook URL (token included)."""
    rec = json.loads(line)
    rec.pop("path", None)
    return json.dumps(rec, ensure_ascii=False)


@pytest.mark.timeout(240)
def test_no_secret_in_any_log_under_the_stack_home_after_an_error_that_held_one(api, dags, receivers):
    """A run fails with an error whose raw text names a URL carrying the sluice_demo_api password (api_key_query),
    and alerts. Then, once every run started here has finished, no value of secrets.json appears in any file under
    $SLUICE_HOME/logs (task logs, every component's log, the receivers' records)."""
    password = json.loads(os.environ["AIRFLOW_CONN_SLUICE_DEMO_API"])["password"]
    secrets = secret_values()
    assert password in secrets.values(), "the demo API connection's password is not a generated secret"
    api.wait_for_dag(SECRET_DAG, timeout=180)
    api.unpause(SECRET_DAG)  # end_date is in the past: no scheduled run
    try:
        run_id = trigger_interval(api, SECRET_DAG, unique_day())
        assert api.wait_for_run(SECRET_DAG, run_id, timeout=120) == "failed"
    finally:
        api.request("PATCH", f"/dags/{SECRET_DAG}", json={"is_paused": True})
    wait_log_lines(
        task_log(SECRET_DAG, run_id, EXTRACT, 1),
        ["Alert (failure) sent to 'sluice_slack'", "Alert (failure) sent to 'sluice_discord'"],
        30,
    )
    got = one_per_channel(receivers.of_run(run_id, "failure"))
    for service, msg in got.items():
        error = msg["facts"]["_error"]
        assert "api_key=" in error and password not in error, f"{service}: {error[:400]}"  # there, and masked

    end = time.time() + 120
    for dag_id, started_run in STARTED:
        while api.run_state(dag_id, started_run) not in ("success", "failed") and time.time() < end:
            time.sleep(2)
    files = [p for p in (HOME / "logs").rglob("*") if p.is_file()]
    assert any(f"run_id={run_id}" in str(p) for p in files), f"no task log of {run_id}"
    leaks = []
    for path in files:
        text = path.read_text(errors="replace")
        if path.name == "webhooks.jsonl":
            text = "\n".join(webhook_path_token(line) for line in text.splitlines() if line.strip())
        leaks += [f"{name} in {path.relative_to(HOME)}" for name, value in secrets.items() if value in text]
    assert not leaks, leaks
    print(f"\nno secret in {len(files)} files under {HOME / 'logs'}")
