"""Holding a failpoint (include/sluice/failpoints.py) from a test: the test takes the point's advisory lock on its
own warehouse connection, and every task that reaches the point waits in pg_locks until the test lets it go. The
e2e and fault tests share this (tests/ is on sys.path through tests/conftest.py)."""

from __future__ import annotations

import contextlib
import time

import psycopg
from sluice import failpoints
from sluice.airflow_api import TERMINAL
from sluice.connections import pg_dsn


class FailpointHold:
    """Held from `__enter__` (or `hold`) until `release` or the end of the `with` block; may be held again."""

    def __init__(self, pipeline: str, point: failpoints.Point, conn_id: str = "sluice_warehouse"):
        self.key = failpoints.lock_key(pipeline, point)
        self.conn = psycopg.connect(pg_dsn(conn_id), autocommit=True)
        self.held = False

    def __enter__(self) -> FailpointHold:
        self.hold()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.release()
        finally:
            self.conn.close()

    def hold(self) -> None:
        self.conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (self.key,))
        self.held = True

    def release(self) -> None:
        """Let waiting tasks pass (a restarted PostgreSQL already dropped the lock with this connection)."""
        if self.held:
            self.held = False
            with contextlib.suppress(psycopg.OperationalError):
                self.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (self.key,))

    def waiting_backends(self) -> list[tuple[int, int, str]]:
        """(backend pid, task pid, application_name) of every task waiting at the point now."""
        out = []
        for backend, task_pid in self.conn.execute(failpoints.waiting_tasks_sql(), {"key": self.key}).fetchall():
            app = self.conn.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s", (backend,))
            out.append((backend, task_pid, (app.fetchone() or ("?",))[0]))
        return out

    def waiting(self) -> list[int]:
        """The task pids waiting at the point now."""
        return [pid for _, pid in self.conn.execute(failpoints.waiting_tasks_sql(), {"key": self.key})]

    def wait_for_backend(self, timeout: float = 600, api=None, dag_id: str = "", run_id: str = "") -> tuple:
        """(backend, task pid, application_name) of the first task to reach the point (polls). Given `api`, fails
        as soon as the run ends without reaching it."""
        end = time.time() + timeout
        while not (waiting := self.waiting_backends()):
            assert time.time() < end, f"no task reached {self.key} within {timeout:.0f}s"
            if api is not None:
                assert api.run_state(dag_id, run_id) not in TERMINAL, "the run ended before reaching the failpoint"
            time.sleep(0.2)
        return waiting[0]

    def wait_for_task(self, timeout: float = 600) -> int:
        """The pid of a task waiting at the point (polls)."""
        return self.wait_for_backend(timeout)[1]

    def wait_until_passed(self, timeout: float) -> None:
        """After `release`: until no task waits at the point any more (each one was granted the lock and went on)."""
        end = time.time() + timeout
        while self.waiting():
            assert time.time() < end, f"tasks still wait at {self.key} {timeout:.0f}s after the release"
            time.sleep(0.2)

    def end_backends(self, backends: list[int]) -> None:
        """End the backends of killed clients (a lock wait never reads from the dead socket), and wait until gone."""
        for b in backends:
            self.conn.execute("SELECT pg_terminate_backend(%s)", (b,))
        while self.conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (backends,)).fetchone():
            time.sleep(0.1)
