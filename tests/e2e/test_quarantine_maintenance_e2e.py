"""sluice_maintenance through the scheduler and a Celery worker: its replay task, triggered with the form's params,
leaves the same result as `python -m sluice quarantine replay` does for an identical set of rows (the passing row
loaded and `replayed`, the failing one `pending` with its reason)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sluice.connections import pg_dsn
from sluice.loading.sql import quarantine as qs
from sluice.validate.quarantine import ensure_quarantine_table

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "e2e_orders"
GOOD = {
    "o_custkey": "1",
    "o_orderstatus": "O",
    "o_totalprice": "10.00",
    "o_orderdate": "1995-06-01",
    "o_orderpriority": "1-URGENT",
    "o_clerk": "Clerk#000000001",
    "o_shippriority": "0",
    "o_comment": "replayed",
}


def seed(conn, day: datetime, first_key: int) -> None:
    """Two pending rows of a made-up interval: one that passes the current config, one negative price."""
    rows = [
        ({**GOOD, "o_orderkey": str(first_key)}, 3),
        ({**GOOD, "o_orderkey": str(first_key + 1), "o_totalprice": "-1"}, 4),
    ]
    with conn.cursor().copy(qs.quarantine_copy()) as copy:
        for row, line in rows:
            reason = "expect_column_values_to_be_between(o_totalprice)"
            why = [
                {"kind": "expectation", "expectation": "expect_column_values_to_be_between", "column": "o_totalprice"}
            ]
            copy.write_row(
                (
                    PIPELINE,
                    "manual__seeded",
                    0,
                    day,
                    day + timedelta(days=1),
                    0,
                    line - 2,
                    "s3://x/seed.csv",
                    line,
                    "expectation",
                    reason,
                    json.dumps(row),
                    json.dumps(why),
                )
            )


def outcome(conn, day: datetime) -> list[tuple]:
    return conn.execute(
        "SELECT source_line, status, replayed_run IS NOT NULL, reason FROM sluice.quarantine "
        "WHERE pipeline = %s AND interval_start = %s ORDER BY source_line",
        (PIPELINE, day),
    ).fetchall()


def test_maintenance_replay_from_the_trigger_form_matches_the_cli(api):
    day_ui, day_cli = datetime(2001, 1, 1, tzinfo=UTC), datetime(2001, 1, 2, tzinfo=UTC)
    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn:
        ensure_quarantine_table(conn)
        conn.execute(
            "DELETE FROM sluice.quarantine WHERE pipeline = %s AND interval_start IN (%s, %s)",
            (PIPELINE, day_ui, day_cli),
        )
        seed(conn, day_ui, 990_000_001)
        seed(conn, day_cli, 990_000_011)
        try:
            api.wait_for_dag("sluice_maintenance")
            api.unpause("sluice_maintenance")
            params = {
                "pipeline": PIPELINE,
                "interval_start": day_ui.isoformat(),
                "interval_end": (day_ui + timedelta(days=1)).isoformat(),
                "reason": None,
                "dry_run": False,
            }
            run_id = api.trigger("sluice_maintenance", conf=params)
            state = api.wait_for_run("sluice_maintenance", run_id, timeout=600)
            assert state == "success", api.task_instances("sluice_maintenance", run_id)
            env = {**os.environ, "PYTHONPATH": str(REPO / "include")}
            cli = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sluice",
                    "quarantine",
                    "replay",
                    "--pipeline",
                    PIPELINE,
                    "--interval",
                    f"{day_cli.isoformat()}/{(day_cli + timedelta(days=1)).isoformat()}",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert cli.returncode == 3, cli.stdout + cli.stderr  # one row still fails
            assert (
                outcome(conn, day_ui)
                == outcome(conn, day_cli)
                == [
                    (3, "replayed", True, "expect_column_values_to_be_between(o_totalprice)"),
                    (4, "pending", False, "expect_column_values_to_be_between(o_totalprice)"),
                ]
            )
            loaded = conn.execute(
                "SELECT o_orderkey FROM e2e.orders WHERE o_orderkey IN (990000001, 990000002, 990000011, 990000012) "
                "ORDER BY 1"
            ).fetchall()
            assert loaded == [(990_000_001,), (990_000_011,)]
        finally:
            conn.execute(
                "DELETE FROM sluice.quarantine WHERE pipeline = %s AND interval_start IN (%s, %s)",
                (PIPELINE, day_ui, day_cli),
            )
            if conn.execute("SELECT to_regclass('e2e.orders') IS NOT NULL").fetchone()[0]:
                conn.execute("DELETE FROM e2e.orders WHERE o_orderkey BETWEEN 990000001 AND 990000012")
