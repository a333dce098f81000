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
import psycopg
import requests
from sluice import failpoints
from sluice.airflow_api import TERMINAL, AirflowApiError
from sluice.connections import pg_dsn
from sluice.failpoints import Point
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


class FailpointHold:
    """Holds a failpoint (include/sluice/failpoints.py) on the test's own connection; tasks that reach it wait."""

    def __init__(self, pipeline: str, point: Point):
        self.key = failpoints.lock_key(pipeline, point)
        self.conn: psycopg.Connection | None = None

    def __enter__(self) -> FailpointHold:
        self.conn = psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True)
        self.conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (self.key,))
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        """Let waiting tasks pass (a restarted PostgreSQL already dropped the lock with this connection)."""
        if self.conn is not None:
            try:
                with contextlib.suppress(psycopg.OperationalError):
                    self.conn.execute("SELECT pg_advisory_unlock_all()")
            finally:
                self.conn.close()
                self.conn = None

    def waiting(self) -> list[tuple[int, int, str]]:
        """(backend pid, task pid, application_name) of every task waiting here."""
        rows = self.conn.execute(failpoints.waiting_tasks_sql(), {"key": self.key}).fetchall()
        out = []
        for backend, task_pid in rows:
            app = self.conn.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s", (backend,))
            out.append((backend, task_pid, (app.fetchone() or ("?",))[0]))
        return out

    def wait_for_task(self, api, dag_id: str, run_id: str, timeout: float = 600) -> tuple[int, int, str]:
        """The first task to reach the point (polls; fails if the run ends first)."""
        end = time.time() + timeout
        while True:
            waiting = self.waiting()
            if waiting:
                return waiting[0]
            assert time.time() < end, f"no task reached {self.key} within {timeout:.0f}s"
            assert api.run_state(dag_id, run_id) not in TERMINAL, "the run ended before reaching the failpoint"
            time.sleep(0.2)

    def end_backends(self, backends: list[int]) -> None:
        """End the backends of killed clients (a lock wait never reads from the dead socket)."""
        for b in backends:
            self.conn.execute("SELECT pg_terminate_backend(%s)", (b,))
        while self.conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (backends,)).fetchone():
            time.sleep(0.1)


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
