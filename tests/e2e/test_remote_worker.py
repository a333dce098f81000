"""A Celery worker on another host: its own network namespace (tests/e2e/netns.py), its own AIRFLOW_HOME and temp
dirs on a private tmpfs, and none of this host's files but the code checkout (this stack's home is covered too).
Its environment is what `python scripts/stack worker-env --host ADDR` prints, so it reaches the broker, the
metadata database, the warehouse, the S3 endpoint and the execution API over the veth pair only. The pipeline
e2e_remote_host routes every task to the Celery queue only this worker serves; staging is S3. The task log is then
read through the REST API, which the api-server can only answer by fetching it from the worker's log server."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import netns  # tests/e2e/netns.py
import psycopg
import pytest
import requests
from sluice.connections import pg_dsn

REPO = Path(__file__).resolve().parents[2]
DAG = QUEUE = "e2e_remote_host"
DAY = "2021-03-02"
ROWS = [(1, "a", "1.50"), (2, "b", "2.00"), (3, "c", "3.25"), (4, "d", "4.00"), (5, "e", "5.75"), (6, "f", "6.00"),
        (7, "g", "7.10")]  # fmt: skip
REMOTE = "/tmp/sluice-remote"
REACHED_OVER_THE_VETH = (
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW_CONN_SLUICE_WAREHOUSE",
    "AIRFLOW_CONN_SLUICE_S3",
)  # on the other host's own tmpfs


def sql(query: str) -> list[tuple]:
    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def parse_env(text: str) -> dict[str, str]:
    """The `export K='v'` lines of worker-env."""
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def patient(call, timeout: float = 300):
    """`call()`, again while the api-server is too busy to answer in time (the shared box runs at load 10-40)."""
    deadline = time.time() + timeout
    while True:
        try:
            return call()
        except requests.RequestException:
            if time.time() > deadline:
                raise
            time.sleep(2)


def wait_for_run(api, run_id: str, worker: subprocess.Popen, log: Path, timeout: float = 900) -> str:
    """The run's final state; fails at once, with the worker's log, if the remote worker dies."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = patient(lambda: api.run_state(DAG, run_id))
        if state in ("success", "failed"):
            return state
        if worker.poll() is not None:
            pytest.fail(f"the remote worker exited ({worker.returncode}):\n{log.read_text()[-4000:]}")
        time.sleep(2)
    pytest.fail(f"run {run_id} still {state} after {timeout:.0f}s; remote worker log:\n{log.read_text()[-4000:]}")


def stop(worker: subprocess.Popen) -> None:
    """SIGTERM the worker's process group (it started its own session), SIGKILL whatever is left after 60 s."""
    try:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    except ProcessLookupError:
        pass


def test_worker_on_another_host_runs_a_pipeline_and_serves_its_logs(api, s3_client, tmp_path):
    netns.require()
    if os.environ.get("SLUICE_BIND_ADDRESS", "127.0.0.1") == "127.0.0.1":
        pytest.fail(
            "the test stack listens on 127.0.0.1 only, so no other host can reach it: start it with "
            "SLUICE_BIND_ADDRESS=0.0.0.0 (scripts/test.sh does)",
            pytrace=False,
        )
    sql("DROP SCHEMA IF EXISTS e2e_remote CASCADE")
    body = "id,name,amount\n" + "".join(f"{i},{n},{a}\n" for i, n, a in ROWS)
    s3_client.put_object(Bucket="sluice-landing", Key=f"e2e/remote_host/{DAY}/part-0.csv", Body=body.encode())
    api.wait_for_dag(DAG)
    api.unpause(DAG)  # end_date is in the past: unpausing schedules nothing

    host = netns.Host.create(seed=int(os.environ.get("SLUICE_API_PORT", "0")))
    worker = None
    try:
        printed = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "stack"), "worker-env", "--host", host.gateway, "--advertise",
             host.address], capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        remote_env = parse_env(printed)
        for key in REACHED_OVER_THE_VETH:
            assert f"{host.gateway}:" in remote_env[key], key
        assert not [k for k, v in remote_env.items() if "127.0.0.1" in v or ".sluice-test" in v]
        env = {
            "PATH": os.environ["PATH"],
            "LANG": "C.UTF-8",
            "HOME": f"{REMOTE}/home",
            "TMPDIR": f"{REMOTE}/tmp",
            "AIRFLOW_HOME": f"{REMOTE}/airflow",
            **remote_env,
        }
        log = tmp_path / "remote-worker.log"
        cmd = host.command(
            [os.environ["SLUICE_HOME"]],
            str(REPO),
            str(REPO / ".venv" / "bin" / "airflow"), "celery", "worker", "--celery-hostname", f"remote@{host.address}",
            "--queues", QUEUE, "--concurrency", "2", "--without-gossip", "--without-mingle",
        )  # fmt: skip
        with log.open("w") as out:
            worker = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        start = datetime.fromisoformat(DAY).replace(tzinfo=UTC)
        conf = {"interval_start": start.isoformat(), "interval_end": (start + timedelta(days=1)).isoformat()}
        run_id = api.trigger(DAG, conf=conf)

        state = wait_for_run(api, run_id, worker, log)
        tis = patient(lambda: api.task_instances(DAG, run_id))
        assert state == "success", tis
        # every task ran on the other host, through its queue (the stack's own workers serve only the default one)
        assert {t["queue"] for t in tis} == {QUEUE}
        assert {t["hostname"] for t in tis} == {host.address}
        assert len([t for t in tis if t["task_id"] == "load_chunk"]) == 3  # 7 rows, chunks of 3
        assert sql("SELECT id, name, amount::text FROM e2e_remote.events ORDER BY id") == ROWS
        staged = s3_client.list_objects_v2(Bucket="sluice-staging", Prefix=f"{DAG}/").get("Contents", [])
        assert any(o["Key"].endswith(".parquet") for o in staged)  # chunks went through S3, not a shared disk

        # the log lives only on the other host: the api-server fetches it from the worker's log server
        local_logs = Path(os.environ["SLUICE_HOME"]) / "logs" / "airflow"
        assert not list(local_logs.glob(f"dag_id={DAG}/**/*.log"))
        path = f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/extract_and_stage/logs/1"
        task_log = patient(lambda: api.request("GET", path, params={"full_content": True}))
        text = json.dumps(task_log)
        assert f"http://{host.address}:{os.environ['SLUICE_WORKER_LOG_PORT']}/log/" in text, text[:2000]
        assert f"pipeline {DAG}: interval" in text, text[:2000]
    finally:
        if worker is not None:
            stop(worker)
        host.remove()
