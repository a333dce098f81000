"""What staging retention reads from the warehouse: which generations committed, and which runs are in progress."""

from __future__ import annotations

from psycopg import sql

from sluice.loading.sql.identifiers import META, qualified


def committed_chunks() -> sql.Composed:
    """Per generation of a pipeline among %(generations)s: how many of its chunks have a ledger row (a generation
    is committed when every chunk of its manifest has one) and when its last chunk committed."""
    return sql.SQL(
        "SELECT run_no, count(DISTINCT chunk), max(finished_at) FROM {} WHERE pipeline = %(pipeline)s "
        "AND run_no = ANY(%(generations)s) GROUP BY run_no"
    ).format(qualified(META, "load_ledger"))


def run_statuses() -> sql.Composed:
    """The run summary of each generation among %(generations)s, and of every run of the pipeline still `running`
    (whatever its generation): retention keeps what those runs use."""
    return sql.SQL(
        "SELECT generation, status FROM {} WHERE pipeline = %(pipeline)s "
        "AND (generation = ANY(%(generations)s) OR status = 'running')"
    ).format(qualified(META, "run_summary"))
