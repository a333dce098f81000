"""Failpoints: named points in a task where a test can hold it, so fault tests wait on a state instead of a clock.

Off unless the process has SLUICE_FAILPOINTS=1 (the test stack sets it; production never does), and then each
point costs one round trip. At a point, the task takes and drops a shared advisory lock on
`hashtext('sluice.failpoint:<pipeline>:<name>')`. A test that holds that lock exclusively sees the task's backend
wait in pg_locks (`waiting_sql`), can kill the task there as often as it wants, and lets it pass by unlocking.
The waiting statement carries the task process's pid as a comment, so a test finds the process (and, with psutil,
the Celery worker above it) from the database alone (`waiting_tasks_sql`).
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any

ENV = "SLUICE_FAILPOINTS"


class Point(StrEnum):
    extract_start = "extract.start"  # extract_and_stage, before the source is read
    extract_after_chunk = "extract.after_chunk"  # the first chunk is staged, the source is still being read
    load_before_commit = "load.before_commit"  # rows and ledger row written, transaction still open
    load_after_commit = "load.after_commit"  # the chunk's transaction committed, the task has not returned


def enabled() -> bool:
    return os.environ.get(ENV, "") == "1"


def lock_key(pipeline: str, point: Point | str) -> str:
    return f"sluice.failpoint:{pipeline}:{point}"


PID_TAG = "sluice-task-pid="


def hit_sql(pid: int | None = None) -> str:
    tag = f" /* {PID_TAG}{int(pid)} */" if pid is not None else ""
    return "SELECT pg_advisory_lock_shared(hashtext(%(key)s)), pg_advisory_unlock_shared(hashtext(%(key)s))" + tag


def waiting_sql() -> str:
    """Backends (pid, client_port) waiting at a failpoint; the test runs this on its own connection."""
    return (
        "SELECT a.pid, a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objid::int = hashtext(%(key)s)"
    )


def waiting_tasks_sql() -> str:
    """Backends waiting at a failpoint and the pid of the task process behind each (from the statement's tag)."""
    return (
        "SELECT a.pid, substring(a.query from 'sluice-task-pid=([0-9]+)')::int FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objid::int = hashtext(%(key)s)"
    )


def hit(conn: Any, pipeline: str, point: Point) -> None:
    """Pass the failpoint (blocks while a test holds it)."""
    if enabled():
        conn.execute(hit_sql(os.getpid()), {"key": lock_key(pipeline, point)})


def hit_conn_id(conn_id: str, pipeline: str, point: Point) -> None:
    """Pass the failpoint on a short connection of its own to the Postgres connection `conn_id` (for stages that
    hold none, such as extraction); nothing is opened unless failpoints are on."""
    if enabled():
        import psycopg

        from sluice.connections import pg_dsn

        with psycopg.connect(pg_dsn(conn_id), autocommit=True, application_name=f"sluice failpoint {point}") as conn:
            hit(conn, pipeline, point)
