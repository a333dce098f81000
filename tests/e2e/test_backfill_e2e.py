"""backfill plan and backfill run through the real stack, and `sluice run` beside a scheduler-driven run.

Ten daily intervals of e2e_backfill (2021-03-01 .. 03-10), set up as:

    day   1  2  3  4  5  6  7  8  9  10
          L  M  M  F  C  L  L  F  M  L      L loaded, M missing, F failed, C loaded from a file changed since

Days 4-6 are loaded by an Airflow backfill (4 fails: its file lacks a declared column), days 1, 7, 8 (fails), 10 by
`sluice run` in this process. Then the files of 4 and 8 are fixed and 5's is rewritten. `backfill plan` must classify
all ten; `backfill run --only missing,failed,changed` must run exactly those six (two backfills: 2-5 and 8-9), and
leave the table equal to a clean load of the ten current files; a second plan shows all ten loaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from sluice.connections import pg_dsn

REPO = Path(__file__).resolve().parents[2]
DAG = "e2e_backfill"
FILE = REPO / "tests" / "e2e" / "pipelines" / "e2e_backfill.yaml"
BUCKET = "sluice-landing"
DAYS = [date(2021, 3, d) for d in range(1, 11)]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "include")}


def sql(query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def rows_of(d: date, version: int = 1) -> list[tuple]:
    return [(d.day * 100 + i, f"v{version}-{d.day}-{i}", Decimal(i + version) / 4) for i in range(5)]


def put(s3, d: date, rows: list[tuple], header: str = "id,name,amount") -> None:
    body = header + "\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    s3.put_object(Bucket=BUCKET, Key=f"e2e/backfill/{d.isoformat()}/part-0.csv", Body=body.encode())


def sluice(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sluice", *args], capture_output=True, text=True, env=ENV,
                          timeout=900)  # fmt: skip


def plan() -> dict:
    out = sluice("backfill", "plan", "--pipeline", DAG, "--from", "2021-03-01", "--to", "2021-03-10", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def states(p: dict) -> list[str]:
    return [("changed" if i["source"] == "changed" else i["state"]) for i in p["intervals"]]


def wait_backfill(api, backfill_id: int, timeout: float = 600) -> None:
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if api.request("GET", f"/backfills/{backfill_id}")["completed_at"]:
            return
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id} did not complete in {timeout:.0f}s")


def local_run(d: date) -> None:
    """`sluice run` in this process (the same stage functions as the tasks)."""
    from sluice.config import load_defaults, load_pipeline
    from sluice.schedule import interval_at
    from sluice.try_cli import run_pipeline

    cfg = load_pipeline(FILE, load_defaults(REPO / "config"))
    interval = interval_at(cfg, d)
    try:
        run_pipeline(cfg, interval, f"sluice_run__{interval.start.isoformat()}", echo=lambda _: None)
    except Exception:
        if d != DAYS[7]:  # day 8 is meant to fail
            raise


@pytest.fixture(scope="module")
def api(api):
    """The session's client, with room for a slow api-server on a loaded machine."""
    return dataclasses.replace(api, timeout=180, _token=None)


@pytest.fixture(scope="module")
def scenario(api, s3_client):
    from sluice.loading.ledger import ensure_metadata

    sql("DROP SCHEMA IF EXISTS e2e_bf CASCADE")
    ensure_metadata(pg_dsn("sluice_warehouse"), "e2e_bf")
    for table in ("run_summary", "load_ledger"):
        sql(f"DELETE FROM sluice.{table} WHERE pipeline IN (%s, %s)", (DAG, f"{DAG}_local"))  # noqa: S608
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix="e2e/backfill/").get("Contents", [])
    for obj in listed:
        s3_client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    for d in DAYS:
        put(s3_client, d, rows_of(d))
    for d in (DAYS[3], DAYS[7]):  # days 4 and 8: a declared column is missing, the run fails
        put(s3_client, d, rows_of(d), header="id,nam,amount")
    api.wait_for_dag(DAG)
    api.unpause(DAG)
    for b in api.request("GET", "/backfills", params={"dag_id": DAG})["backfills"]:  # a re-used stack
        if not b["completed_at"]:
            api.request("PUT", f"/backfills/{b['id']}/cancel")
    body = {"dag_id": DAG, "from_date": "2021-03-04T00:00:00Z", "to_date": "2021-03-06T00:00:00Z",
            "reprocess_behavior": "completed", "max_active_runs": 3}  # fmt: skip
    wait_backfill(api, api.request("POST", "/backfills", json=body)["id"])
    for d in (DAYS[0], DAYS[6], DAYS[7], DAYS[9]):
        local_run(d)
    put(s3_client, DAYS[3], rows_of(DAYS[3]))  # fixed upstream
    put(s3_client, DAYS[7], rows_of(DAYS[7]))
    put(s3_client, DAYS[4], rows_of(DAYS[4], version=2))  # day 5 rewritten upstream: every value corrected
    return s3_client


@pytest.mark.timeout(1500)  # includes the module's set-up (one backfill, four in-process runs); ~3 min when idle
def test_plan_classifies_run_reprocesses_exactly_the_selected_and_the_table_is_a_clean_load(api, scenario):
    first = plan()
    assert states(first) == ["loaded", "missing", "missing", "failed", "changed", "loaded", "loaded", "failed",
                             "missing", "loaded"], first  # fmt: skip
    assert first["totals"] == {"loaded": 5, "missing": 3, "failed": 2, "quarantined": 0, "running": 0, "changed": 1,
                               "total": 10}  # fmt: skip
    assert first["intervals"][3]["note"] and first["intervals"][7]["note"]  # the error, in short
    # decided by the source fingerprint finalize recorded (the manifest fallback's note counts added/removed/rewritten)
    assert first["intervals"][4]["note"] == "source changed: 1 object(s) at the load, 1 now"
    assert [i["source"] for i in first["intervals"] if i["state"] == "loaded"] == ["unchanged", "changed",
                                                                                    "unchanged", "unchanged",
                                                                                    "unchanged"]  # fmt: skip
    (watermark,) = sql("SELECT last_value FROM sluice.load_run_seq")[0]

    dry = sluice("backfill", "run", "--pipeline", DAG, "--from", "2021-03-01", "--to", "2021-03-10", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "6 of 10 interval(s) selected" in dry.stdout and "in 2 backfill(s)" in dry.stdout
    assert "backfill 2021-03-02T00:00 .. 2021-03-05T00:00: 4 interval(s)" in dry.stdout
    assert "backfill 2021-03-08T00:00 .. 2021-03-09T00:00: 2 interval(s)" in dry.stdout
    assert sql("SELECT last_value FROM sluice.load_run_seq")[0][0] == watermark  # a dry run runs nothing

    out = sluice("backfill", "run", "--pipeline", DAG, "--from", "2021-03-01", "--to", "2021-03-10",
                 "--only", "missing,failed,changed", "--max-active-runs", "4")  # fmt: skip
    print(out.stdout)  # the README's example (pytest -s shows it)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "e2e_backfill: 6/6 interval(s) done" in out.stdout and "0 failed" in out.stdout
    assert "progress: 6/6 intervals done" in out.stdout
    assert "pool sluice_source__sluice_s3:" in out.stdout
    reprocessed = sql(
        "SELECT DISTINCT interval_start::date FROM sluice.run_summary WHERE pipeline = %s AND generation > %s",
        (DAG, watermark),
    )
    assert sorted(r[0] for r in reprocessed) == [DAYS[i] for i in (1, 2, 3, 4, 7, 8)]  # exactly those six

    clean = sorted(r for i, d in enumerate(DAYS) for r in rows_of(d, 2 if i == 4 else 1))
    assert sql("SELECT id, name, amount FROM e2e_bf.items ORDER BY id") == clean

    second = plan()
    assert states(second) == ["loaded"] * 10 and second["totals"]["changed"] == 0
    latest = sql(
        "SELECT DISTINCT ON (interval_start) source_fingerprint, source_object_count FROM sluice.run_summary "
        "WHERE pipeline = %s ORDER BY interval_start, generation DESC",
        (DAG,),
    )
    assert len(latest) == 10 and all(fp.startswith("sha256:") and n == 1 for fp, n in latest)  # one object a day


def test_sluice_run_loads_the_same_rows_as_the_scheduled_run(api, scenario, tmp_path):
    """Day 6 was loaded by a scheduler-driven (backfill) run; `sluice run` of the same file, pointed at another
    table, loads the same rows and prints the same counts."""
    local = tmp_path / "e2e_backfill_local.yaml"
    local.write_text(FILE.read_text().replace("name: e2e_backfill", "name: e2e_backfill_local")
                     .replace("table: items", "table: items_local"))  # fmt: skip
    out = sluice("run", str(local), "--interval", "2021-03-06", "--config-dir", str(REPO / "config"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "chunk  rows_in  rows_loaded  rows_quarantined  inserted" in out.stdout
    assert "finalize: success" in out.stdout
    day6 = "SELECT id, name, amount FROM e2e_bf.{} WHERE id BETWEEN 600 AND 699 ORDER BY id"
    assert sql(day6.format("items_local")) == sql(day6.format("items")) == rows_of(DAYS[5])
    counts = "SELECT rows_in, rows_loaded, rows_quarantined FROM sluice.run_summary WHERE pipeline = %s AND status = 'success' AND interval_start = %s"  # noqa: E501
    start = datetime.combine(DAYS[5], datetime.min.time(), tzinfo=UTC)
    assert sql(counts, ("e2e_backfill_local", start)) == sql(counts, (DAG, start)) == [(5, 5, 0)]


def test_bad_input_and_a_running_backfill_are_clear_errors(api, scenario):
    future = sluice("backfill", "plan", "--pipeline", DAG, "--from", "2099-01-01", "--to", "2099-01-02")
    assert future.returncode == 2 and "is in the future" in future.stderr
    reversed_ = sluice("backfill", "plan", "--pipeline", DAG, "--from", "2021-03-05", "--to", "2021-03-01")
    assert reversed_.returncode == 2 and "is before --from" in reversed_.stderr
    empty = sluice("backfill", "plan", "--pipeline", DAG, "--from", "2020-01-01", "--to", "2020-01-31")
    assert empty.returncode == 2 and "no interval starts between 2020-01-01 and 2020-01-31" in empty.stderr
    unknown = sluice("backfill", "plan", "--pipeline", "e2e_backfil", "--from", "2021-03-01", "--to", "2021-03-02")
    assert unknown.returncode == 2 and "did you mean 'e2e_backfill'?" in unknown.stderr
    # a backfill of the DAG that is still running (the DAG paused, so its run never starts): a clear error
    api.request("PATCH", f"/dags/{DAG}", json={"is_paused": True})
    body = {"dag_id": DAG, "from_date": "2021-03-01T00:00:00Z", "to_date": "2021-03-01T00:00:00Z",
            "reprocess_behavior": "completed", "max_active_runs": 1}  # fmt: skip
    held = api.request("POST", "/backfills", json=body)
    try:
        out = sluice("backfill", "run", "--pipeline", DAG, "--from", "2021-03-01", "--to", "2021-03-10",
                     "--only", "loaded")  # fmt: skip
        assert out.returncode == 2
        assert (
            f"backfill {held['id']} of {DAG}" in out.stderr and "Wait for it" in out.stderr and "cancel" in out.stderr
        )
    finally:
        api.request("PUT", f"/backfills/{held['id']}/cancel")
        api.unpause(DAG)
    down = subprocess.run([sys.executable, "-m", "sluice", "backfill", "run", "--pipeline", DAG, "--from", "2021-03-01",
                           "--to", "2021-03-10", "--only", "loaded"], capture_output=True, text=True, timeout=900,
                          env={**ENV, "SLUICE_API_URL": "http://127.0.0.1:9"})  # fmt: skip
    assert down.returncode == 2 and "is not reachable" in down.stderr and "make up" in down.stderr
