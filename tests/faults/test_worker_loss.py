"""A whole Celery worker (main process and every child) killed with SIGKILL while it holds a load task: nobody
intervenes, the scheduler finds the task without a heartbeat ([scheduler] task_instance_heartbeat_timeout, 60 s in
the stack), the task is retried on a worker that is alive, and the table and ledger end exactly as a clean run's.

The load is held at the loader's failpoint (load.before_commit: rows and ledger row written, not committed); the
failpoint reports the task's pid, psutil walks up to the worker's main process, and the whole tree is killed at once.
The tasks held on the other worker keep heartbeating while they wait: none of them may time out (no false timeout)."""

from __future__ import annotations

import time

from faultkit import (
    CRASH,
    CRASH_DAY,
    FailpointHold,
    crash_table,
    kill_tree,
    ledger,
    program_pid,
    sql,
    task_states,
    wait_for_run,
    worker_of,
)
from sluice.failpoints import Point


def test_whole_worker_killed_during_load_is_recovered_without_a_person(api, clean_crash_run):
    sql("TRUNCATE e2e.lineitem_crash")
    with FailpointHold(CRASH, Point.load_before_commit) as hold:
        run_id = api.trigger(CRASH, conf=CRASH_DAY)
        _, task_pid, _ = hold.wait_for_backend(api=api, dag_id=CRASH, run_id=run_id)
        program, main = worker_of(task_pid)
        killed = set(kill_tree(main))
        killed_at = time.monotonic()
        lost = [(b, app) for b, pid, app in hold.waiting_backends() if pid in killed]
        hold.end_backends([b for b, _ in lost])
        # The surviving worker's tasks stay held until every lost one is back in the queue: their heartbeats must
        # keep them alive through the whole timeout.
        lost_chunks = {int(app.rsplit("#", 1)[1]) for _, app in lost}
        assert lost_chunks, f"no waiting load task was in the killed tree {sorted(killed)}"
        while True:
            tis = task_states(api, CRASH, run_id)
            if all((tis[("load_chunk", c)]["try_number"] or 0) > 1 for c in lost_chunks):
                break
            assert time.monotonic() - killed_at < 600, f"lost tasks not retried within 600 s: {lost_chunks}"
            time.sleep(1)
        detected = time.monotonic() - killed_at
    state = wait_for_run(api, CRASH, run_id)
    recovered = time.monotonic() - killed_at
    print(
        f"\nworker loss: {program} and its {len(killed) - 1} children SIGKILLed holding chunks {sorted(lost_chunks)}; "
        f"retried {detected:.0f}s after the kill, run {state} {recovered:.0f}s after the kill"
    )
    assert state == "success", api.task_instances(CRASH, run_id)
    assert program_pid(program) not in (0, main.pid), "supervisord did not restart the killed worker"
    retried = {k: t for k, t in task_states(api, CRASH, run_id).items() if t["try_number"] > 1}
    assert {("load_chunk", c) for c in lost_chunks} <= set(retried), retried
    for (task, index), _ in retried.items():  # every retry is of a task the kill took: no false timeout
        tries = api.request("GET", f"/dags/{CRASH}/dagRuns/{run_id}/taskInstances/{task}/{index}/tries")
        first = min(tries["task_instances"], key=lambda t: t["try_number"])
        assert first["pid"] in killed, f"{task}[{index}] try 1 (pid {first['pid']}) was not on the killed worker"
    assert crash_table() == clean_crash_run["table"]
    assert ledger(run_id) == clean_crash_run["chunks"]  # one ledger row per chunk, with the clean run's counts
