"""A 30-interval backfill of the demo's tpch_orders pipeline through `python -m sluice backfill run` (not a test).

Lands --days days of TPC-H orders (demo/land_tpch.py, the demo's data and scale) from --start, makes sure the DAG is
parsed and unpaused (as `make demo` leaves it), then times `python -m sluice backfill run --pipeline tpch_orders
--from START --to START+days-1` as a subprocess (every state selected, so intervals loaded before are reprocessed
too): the backfill goes through Airflow's REST API, the real scheduler and the stack's Celery workers. From the
metadata database it then reads the backfill's runs and their task instances (every try, task_instance_history
included) and prints, side by side:

- wall: the CLI's wall clock, from start to the last run followed;
- the sum of the runs' task times (every task instance's duration) and the sum of the runs' own spans;
- wall / sum of task times (below 1: runs overlapped, max-active-runs at a time) and, per run, span / task time
  (the scheduling overhead within a run: queueing, task start-up, the gaps between tasks).

    set -a; source .sluice/env; set +a      # or .sluice-test/env: a running stack (make up)
    .venv/bin/python bench/bench_backfill_run.py [--days 30] [--start 1996-01-01] [--scale 1] [--max-active-runs 4]

Writes bench/results/backfill_run.json. Exit 0 only when the CLI exited 0 and every run succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))
PIPELINE = "tpch_orders"
ALL = "missing,failed,quarantined,running,loaded,changed"


def metadata_conn():
    import psycopg

    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")
    return psycopg.connect(url, autocommit=True)


def backfill_runs(conn, since_backfill: int) -> list[tuple]:
    """(run_id, state, span seconds, task seconds, task instances) of the runs of the backfills created after
    `since_backfill` (the highest backfill id before this bench)."""
    return conn.execute(
        "SELECT dr.run_id, dr.state, extract(epoch FROM dr.end_date - dr.start_date), "
        "coalesce((SELECT sum(duration) FROM task_instance ti WHERE ti.dag_id = dr.dag_id "
        "AND ti.run_id = dr.run_id), 0) + coalesce((SELECT sum(duration) FROM task_instance_history h "
        "WHERE h.dag_id = dr.dag_id "
        "AND h.run_id = dr.run_id), 0), "
        "(SELECT count(*) FROM task_instance ti WHERE ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id) "
        "FROM dag_run dr WHERE dr.dag_id = %s AND dr.backfill_id > %s ORDER BY dr.logical_date",
        (PIPELINE, since_backfill),
    ).fetchall()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--start", type=date.fromisoformat, default=date(1996, 1, 1))
    ap.add_argument("--scale", type=float, default=float(os.environ.get("SLUICE_DEMO_SCALE", "1")))
    ap.add_argument("--max-active-runs", type=int, default=4)
    args, _ = ap.parse_known_args(argv)  # bench/run.sh passes the same arguments to every benchmark
    from sluice.airflow_api import AirflowApi

    py = sys.executable
    last = args.start + timedelta(days=args.days - 1)
    subprocess.run([py, str(REPO / "demo/land_tpch.py"), "--scale", str(args.scale), "--days", str(args.days),
                    "--start", args.start.isoformat(), "--tables", "orders"], check=True)  # fmt: skip
    api = AirflowApi.from_env()
    api.wait_for_dag(PIPELINE, timeout=600)
    api.unpause(PIPELINE)  # as the demo does (catchup false: one scheduled run of the latest interval, not counted)
    conn = metadata_conn()
    before = conn.execute("SELECT coalesce(max(id), 0) FROM backfill").fetchone()[0]
    env = {**os.environ, "PYTHONPATH": str(REPO / "include")}
    cmd = [py, "-m", "sluice", "backfill", "run", "--pipeline", PIPELINE, "--from", args.start.isoformat(), "--to",
           last.isoformat(), "--only", ALL, "--max-active-runs", str(args.max_active_runs)]  # fmt: skip
    print("$ " + " ".join(cmd[1:]), flush=True)
    load = [os.getloadavg()[0]]
    t = time.perf_counter()
    cli = subprocess.run(cmd, env=env, text=True, capture_output=True)
    wall = time.perf_counter() - t
    load.append(os.getloadavg()[0])
    print(cli.stdout[-3000:], cli.stderr[-3000:], sep="\n")
    runs = backfill_runs(conn, before)
    spans = [float(r[2] or 0) for r in runs]
    tasks = [float(r[3] or 0) for r in runs]
    states = {s: sum(r[1] == s for r in runs) for s in {r[1] for r in runs}}
    task_sum, span_sum = sum(tasks), sum(spans)
    per_run = [s / t for s, t in zip(spans, tasks, strict=True) if t]
    result = {
        "pipeline": PIPELINE,
        "intervals": args.days,
        "from": args.start.isoformat(),
        "to": last.isoformat(),
        "scale": args.scale,
        "max_active_runs": args.max_active_runs,
        "cli_exit": cli.returncode,
        "runs": len(runs),
        "run_states": states,
        "wall_seconds": round(wall, 1),
        "task_seconds_sum": round(task_sum, 1),
        "run_span_seconds_sum": round(span_sum, 1),
        "wall_over_task_sum": round(wall / task_sum, 2) if task_sum else None,
        "run_span_over_task_time_median": round(statistics.median(per_run), 2) if per_run else None,
        "task_instances": sum(int(r[4]) for r in runs),
        "load_average_start_end": load,
        "workers": int(os.environ.get("SLUICE_WORKERS", "2")),
    }
    print(json.dumps(result, indent=2))
    print(
        f"backfill run of {PIPELINE}, {args.days} intervals ({len(runs)} runs {states}, max-active-runs "
        f"{args.max_active_runs}, {result['workers']} workers): wall {wall:.0f} s beside {task_sum:.0f} s summed over "
        f"the runs' {result['task_instances']} task instances = wall/task-time {result['wall_over_task_sum']}; runs' "
        f"own spans sum to {span_sum:.0f} s, median span/task time per run {result['run_span_over_task_time_median']}"
        f" (load average {load[0]:.1f} -> {load[1]:.1f})"
    )
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "backfill_run.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if cli.returncode == 0 and states == {"success": args.days} else 1


if __name__ == "__main__":
    raise SystemExit(main())
