"""The failpoint statements as strings: the waiting task's pid travels in the statement, so a test can find it."""

from __future__ import annotations

from sluice import failpoints


def test_hit_statement_tags_the_task_pid():
    sql = failpoints.hit_sql(4242)
    assert sql.startswith("SELECT pg_advisory_lock_shared(hashtext(%(key)s))")
    assert sql.endswith("/* sluice-task-pid=4242 */")
    assert failpoints.hit_sql() == (
        "SELECT pg_advisory_lock_shared(hashtext(%(key)s)), pg_advisory_unlock_shared(hashtext(%(key)s))"
    )


def test_waiting_tasks_reads_the_pid_back_from_the_tag():
    sql = failpoints.waiting_tasks_sql()
    assert "substring(a.query from 'sluice-task-pid=([0-9]+)')::int" in sql
    assert "NOT l.granted AND l.objid::int = hashtext(%(key)s)" in sql
