"""Shared pieces of the fault tests: the warehouse, the stack's supervisorctl, failpoint holds, process trees.

Every fault here is triggered at a point the test controls (a failpoint it holds, a state it polled for), never by a
timer, and every stopped service is started again by the test itself (`stopped`), whatever the test's outcome."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import requests
from failpoint_hold import FailpointHold  # noqa: F401 - the fault tests import it from here
from sluice.airflow_api import TERMINAL, AirflowApiError
from warehouse_sql import ledger, sql, table_hash  # noqa: F401 - the fault tests import them from here

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable

CRASH = "e2e_lineitem_crash"  # tests/e2e/pipelines/e2e_lineitem_crash.yaml: 6 chunks of 20k rows, retries 4
CRASH_DAY = {"interval_start": "2024-01-01T00:00:00+00:00", "interval_end": "2024-01-02T00:00:00+00:00"}
LINEITEM_COLS = (
    "l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, "
    "l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, "
    "l_comment, _sluice_seq"
)


def crash_table() -> tuple[int, str]:
    return table_hash("e2e.lineitem_crash", LINEITEM_COLS, "l_orderkey, l_linenumber")


def land(*args: str) -> None:
    subprocess.run([PY, str(REPO / "demo" / "land_tpch.py"), *args], check=True, capture_output=True)


# ---------------------------------------------------------------- the stack's processes


def ctl(*args: str) -> str:
    """supervisorctl of this test stack (scripts/stack/supervision.py writes its config)."""
    home = Path(os.environ["SLUICE_HOME"])
    out = subprocess.run(
        [str(REPO / ".venv/bin/supervisorctl"), "-c", str(home / "supervisord.conf"), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return out.stdout + out.stderr


def program_pid(program: str) -> int:
    out = ctl("pid", program).strip()
    return int(out) if out.isdigit() else 0


@contextlib.contextmanager
def stopped(program: str) -> Iterator[None]:
    """`program` stopped for the body, started again afterwards whatever happens (the fault always ends)."""
    out = ctl("stop", program)
    assert "stopped" in out or "not running" in out, out
    try:
        yield
    finally:
        out = ctl("start", program)
        assert "started" in out or "already started" in out, out


def worker_of(pid: int) -> tuple[str, psutil.Process]:
    """The supervised Celery worker (program name, main process) whose process tree holds `pid`."""
    workers = {program_pid(f"airflow-worker-{i}"): f"airflow-worker-{i}" for i in range(1, 9)}
    workers.pop(0, None)
    proc = psutil.Process(pid)
    for p in [proc, *proc.parents()]:
        if p.pid in workers:
            return workers[p.pid], p
    raise AssertionError(f"pid {pid} is not under any worker {workers}: {[p.pid for p in proc.parents()]}")


def kill_tree(main: psutil.Process) -> list[int]:
    """SIGKILL a whole worker: its main process and every descendant (pool processes, task supervisors, tasks)."""
    tree = [main, *main.children(recursive=True)]
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    gone, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, f"survived SIGKILL: {alive}"
    return [p.pid for p in tree]


# ---------------------------------------------------------------- failpoints


# ---------------------------------------------------------------- waiting on the API through outages


def poll(what: str, fn: Callable[[], object], timeout: float, every: float = 1.0) -> object:
    """fn() until truthy; an api-server that is down or restarting answers nothing, so errors are waited out."""
    end = time.time() + timeout
    last: object = None
    while time.time() < end:
        try:
            last = fn()
        except (requests.RequestException, AirflowApiError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


def wait_for_run(api, dag_id: str, run_id: str, timeout: float = 1500) -> str:
    def state() -> str | None:
        s = api.run_state(dag_id, run_id)
        return s if s in TERMINAL else None

    return poll(f"{dag_id} {run_id} finished", state, timeout, every=2)


def task_states(api, dag_id: str, run_id: str) -> dict[tuple[str, int], dict]:
    return {(t["task_id"], t["map_index"]): t for t in api.task_instances(dag_id, run_id)}


def ensure_buckets(s3_client) -> None:
    """The local S3 endpoint (moto) keeps objects in memory: after a restart its buckets are gone. Waits until the
    restarted endpoint answers (supervisord calls it running before it listens)."""
    import botocore.exceptions

    def listed() -> dict | None:
        try:
            return s3_client.list_buckets()
        except botocore.exceptions.EndpointConnectionError:
            return None

    have = {b["Name"] for b in poll("S3 endpoint answers", listed, 300).get("Buckets", [])}
    for bucket in ("sluice-staging", "sluice-landing"):
        if bucket not in have:
            s3_client.create_bucket(Bucket=bucket)


def land_crash_data() -> None:
    """The lineitem day of e2e_lineitem_crash (tpchgen is deterministic: the same rows every time)."""
    land("--scale", "0.02", "--tables", "lineitem", "--single-day", "2024-01-01", "--prefix", "e2e/lc")
