"""Issue 11, item 5, through the real stack: a run whose quality gate fails has GX Data Docs in staging; the failure
alert (as the stack's Slack and Discord receivers got it) links them; the link, fetched with an Airflow token,
serves the HTML with the pipeline's expectation names; without a token it is refused. Pipeline:
tests/e2e/pipelines/e2e_datadocs.yaml (five rows in two chunks, two with an unknown status)."""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from tests.e2e.conftest import task_log, wait_log_lines

DAG = "e2e_datadocs"
CSV = b"id,status\n1,paid\n2,lost\n3,shipped\n4,paid\n5,teleported\n"


@pytest.fixture(scope="module")
def receivers_url() -> str:
    port = os.environ.get("SLUICE_WEBHOOK_PORT")
    if not port:
        pytest.fail("SLUICE_WEBHOOK_PORT is not set: source $SLUICE_HOME/env", pytrace=False)
    return f"http://127.0.0.1:{port}"


def _alerts_of(receivers_url: str, run_id: str) -> dict[str, dict]:
    """service -> the accepted payload that names run_id (the receivers are shared by every test on the stack)."""
    got = {}
    for rec in requests.get(f"{receivers_url}/_received", timeout=10).json():
        text = str(rec.get("payload"))
        if rec.get("accepted") and run_id in text and "failure" in text:
            got[rec["service"]] = rec["payload"]
    return got


def _docs_link(service: str, payload: dict) -> str:
    if service == "slack":
        texts = [b["text"]["text"] for b in payload["blocks"] if b.get("type") == "section" and "text" in b]
        found = [m for t in texts for m in re.findall(r"<([^|>]+)\|Data Docs>", t)]
    else:
        fields = [f["value"] for f in payload["embeds"][0]["fields"] if f["name"] == "Links"]
        found = [m for v in fields for m in re.findall(r"\[Data Docs\]\(([^)]+)\)", v)]
    assert len(found) == 1, f"{service}: no single Data Docs link in {payload}"
    return found[0]


def test_failure_alert_links_data_docs_that_resolve(api, receivers_url, s3_client):
    day = date(2001, 1, 1) + timedelta(days=uuid.uuid4().int % 7000)
    key = f"e2e/datadocs/{day.isoformat()}/orders.csv"
    s3_client.put_object(Bucket="sluice-landing", Key=key, Body=CSV)
    api.wait_for_dag(DAG)
    api.unpause(DAG)  # end_date is in the past: no scheduled run
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        run_id = api.trigger(
            DAG, conf={"interval_start": start.isoformat(), "interval_end": (start + timedelta(days=1)).isoformat()}
        )
        assert api.wait_for_run(DAG, run_id, timeout=300) == "failed"
    finally:
        api.request("PATCH", f"/dags/{DAG}", json={"is_paused": True})
        s3_client.delete_object(Bucket="sluice-landing", Key=key)
    gate = next(t for t in api.task_instances(DAG, run_id) if t["task_id"] == "quality_gate")
    assert gate["state"] == "failed", gate

    # the gate's task log names the link; the callback logs when both channels got the alert
    text = wait_log_lines(
        task_log(DAG, run_id, "quality_gate", 1),
        ["Alert (failure) sent to 'sluice_slack'", "Alert (failure) sent to 'sluice_discord'"],
        60,
    )
    logged = re.findall(r"Data Docs of this run \(GX validation results of 2 chunk\(s\)[^:]*: (\S+)", text)
    assert logged, f"the gate's log has no Data Docs line:\n{text[-3000:]}"

    end = time.time() + 30
    while set(got := _alerts_of(receivers_url, run_id)) != {"slack", "discord"} and time.time() < end:
        time.sleep(0.5)
    assert set(got) == {"slack", "discord"}, got
    links = {service: _docs_link(service, payload) for service, payload in got.items()}
    assert set(links.values()) == {logged[0]}, (links, logged)
    link = logged[0]
    assert link.startswith(api.base_url + "/sluice/datadocs/"), link

    page = requests.get(link, headers={"Authorization": f"Bearer {api.token()}"}, timeout=120)
    assert page.status_code == 200, page.text[:500]
    html = page.text
    for name in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_null"):
        assert name in html, name
    assert run_id in html and "2 unexpected values found" in html, html[:2000]
    assert requests.get(link, timeout=120, allow_redirects=False).status_code in (401, 403)
