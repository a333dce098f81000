"""sluice_retention through the scheduler and a Celery worker (issue 11, item 4): three runs of one interval of
tests/e2e/pipelines/e2e_retention.yaml stage three generations (each with quarantine Parquet: one row fails its cast);
a run of sluice_retention triggered through the REST API for that pipeline, with an `as_of` whose 30-day cutoff falls
between the first and the second generation's S3 times, deletes exactly the first (archived whole in GLACIER first),
keeps the second (younger than 30d) and the third (the latest), and leaves the loaded table alone; the daily run that
unpausing starts, over every pipeline, succeeds too. The cutoff comes from the objects' own LastModified, which
retention reads too, so no clock is raced. The rules in all their cases (running, uncommitted, dry run, archive only)
are tests/integration/test_retention_s3.py."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from botocore.exceptions import ClientError
from sluice.connections import pg_dsn

DAG, PIPELINE = "sluice_retention", "e2e_retention"
LANDING, STAGING, ARCHIVE = "sluice-landing", "sluice-staging", "sluice-archive"
BASE = f"e2e-retention/{PIPELINE}/"  # e2e_retention.yaml: staging.url + the pipeline's name
CSV = b"id,name\n1,one\n2,two\nabc,not a number\n"
OLDER_THAN = timedelta(days=30)  # e2e_retention.yaml: staging.retention.older_than


def listing(s3_client, bucket: str, prefix: str) -> dict[str, dict]:
    """key -> the ListObjectsV2 entry of every object below prefix."""
    out = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"]: o for o in page.get("Contents", [])})
    return out


def by_generation(objects: dict[str, dict]) -> dict[int, dict[str, dict]]:
    """gN -> its objects (keys are <base><interval>/<run>/g<n>/<file>)."""
    found: dict[int, dict[str, dict]] = {}
    for key, o in objects.items():
        found.setdefault(int(key.rsplit("/", 2)[-2][1:]), {})[key] = o
    return found


def delete_prefix(s3_client, bucket: str, prefix: str) -> None:
    keys = list(listing(s3_client, bucket, prefix))
    for i in range(0, len(keys), 1000):
        s3_client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})


def xcom(api, dag_id: str, run_id: str, task_id: str) -> dict:
    entry = api.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) else value


def scheduled_run(api, timeout: float = 180) -> str:
    """The newest scheduled run of sluice_retention (unpausing creates one; polls until the scheduler has)."""
    end = time.time() + timeout
    while not (runs := api.request("GET", f"/dags/{DAG}/dagRuns", params={"run_type": "scheduled"})["dag_runs"]):
        assert time.time() < end, f"the scheduler created no run of {DAG} within {timeout:.0f}s of unpausing"
        time.sleep(1)
    return max(runs, key=lambda r: r["run_after"])["dag_run_id"]


@pytest.mark.timeout(1200)  # four DAG runs one after the other on a loaded machine
def test_retention_dag_deletes_exactly_the_old_committed_generation(api, s3_client):
    day = date(2001, 1, 1) + timedelta(days=uuid.uuid4().int % 7000)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    interval = {"interval_start": start.isoformat(), "interval_end": (start + timedelta(days=1)).isoformat()}
    with contextlib.suppress(ClientError):  # made by an earlier test or run
        s3_client.create_bucket(Bucket=ARCHIVE)
    # this pipeline's staging and archive hold only what this test stages (the rules count every generation)
    delete_prefix(s3_client, STAGING, BASE)
    delete_prefix(s3_client, ARCHIVE, BASE)
    landing_key = f"e2e/retention/{day.isoformat()}/part-0.csv"
    s3_client.put_object(Bucket=LANDING, Key=landing_key, Body=CSV)
    api.wait_for_dag(PIPELINE)
    api.wait_for_dag(DAG)
    api.unpause(PIPELINE)  # end_date is in the past: no scheduled run
    try:
        for _ in range(3):  # one after the other: generation numbers and S3 times in the same order
            run_id = api.trigger(PIPELINE, conf=interval)
            assert api.wait_for_run(PIPELINE, run_id, timeout=600) == "success", api.task_instances(PIPELINE, run_id)
    finally:
        api.request("PATCH", f"/dags/{PIPELINE}", json={"is_paused": True})
        s3_client.delete_object(Bucket=LANDING, Key=landing_key)

    before = by_generation(listing(s3_client, STAGING, BASE))
    assert len(before) == 3, sorted(before)
    old, young, latest = sorted(before)
    for g in before.values():
        names = {k.rsplit("/", 1)[1] for k in g}
        assert {"manifest.json", "chunk-00000.parquet", "chunk-00000.quarantine.parquet"} <= names, names
    newest = {g: max(o["LastModified"] for o in before[g].values()) for g in before}
    assert newest[old] < newest[young] < newest[latest], newest
    cutoff = newest[old] + (newest[young] - newest[old]) / 2
    as_of = (cutoff + OLDER_THAN).astimezone(UTC)

    api.unpause(DAG)  # catchup false: this also starts a run as of now, which deletes nothing younger than 30 days
    try:
        run_id = api.trigger(DAG, conf={"pipeline": PIPELINE, "as_of": as_of.isoformat()})
        state = api.wait_for_run(DAG, run_id, timeout=600)
        daily = scheduled_run(api)  # before pausing: a paused DAG's queued run never starts
        daily_state = api.wait_for_run(DAG, daily, timeout=600)
    finally:
        api.request("PATCH", f"/dags/{DAG}", json={"is_paused": True})
    assert state == "success", api.task_instances(DAG, run_id)

    after = by_generation(listing(s3_client, STAGING, BASE))
    assert after == {g: before[g] for g in (young, latest)}, sorted(after)  # what stays is whole
    archived = listing(s3_client, ARCHIVE, BASE)
    assert set(archived) == set(before[old]), sorted(archived)  # the archive mirrors the staging keys
    assert {o["Size"] for o in archived.values()} == {o["Size"] for o in before[old].values()}
    assert {o.get("StorageClass") for o in archived.values()} == {"GLACIER"}

    report = xcom(api, DAG, run_id, "staging_retention")
    assert set(report) == {PIPELINE}, sorted(report)  # the pipeline param: no other pipeline was touched
    r = report[PIPELINE]
    assert not r["dry_run"] and r["deleted_generations"] == 1 and r["deleted_objects"] == len(before[old]), r
    assert r["deleted_bytes"] == sum(o["Size"] for o in before[old].values()), r
    assert r["archived_objects"] == len(before[old]) and r["already_archived"] == 0, r
    assert r["kept"] == {"the latest generation of its interval": 1, "younger than 30d": 1}, r

    # the run that unpausing started (catchup false), for every pipeline as of its run_after: the daily path. On the
    # test stack nothing is 30 days old, so it deleted nothing.
    assert daily_state == "success", api.task_instances(DAG, daily)
    every = xcom(api, DAG, daily, "staging_retention")
    assert PIPELINE in every and len(every) > 1, sorted(every)
    assert all(r["deleted_generations"] == 0 and not r["dry_run"] for r in every.values()), every

    with psycopg.connect(pg_dsn("sluice_warehouse")) as conn:  # retention changes staging only
        assert conn.execute("SELECT count(*) FROM e2e_retention.items").fetchone()[0] == 2
