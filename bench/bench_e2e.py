"""End to end through Airflow and Celery: TPC-H lineitem (SF1 by default) from S3 Parquet to PostgreSQL with the
tpch_lineitem example pipeline (its 6 expectations included), from trigger to success, on the running local stack.

Also samples, every 0.2 s, the RSS of every process under the Celery workers, and reports the largest one (a task
process; the preloaded pool processes are listed apart). Target (issue 4): <= 120 s, <= 1.5 GB per task.

    .venv/bin/python bench/bench_e2e.py [--scale 1] [--day 2031-01-01]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "include"))


class RssSampler(threading.Thread):
    def __init__(self, roots: list[int]):
        super().__init__(daemon=True)
        self.roots, self.peak, self.peak_cmd, self.stop = roots, 0, "", threading.Event()
        self.pool_peak = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for root in self.roots:
                try:
                    procs = psutil.Process(root).children(recursive=True)
                except psutil.NoSuchProcess:
                    continue
                for p in procs:
                    try:
                        rss = p.memory_info().rss
                        is_pool = p.parent() is not None and p.parent().pid == root
                    except psutil.Error:
                        continue
                    if is_pool:
                        self.pool_peak = max(self.pool_peak, rss)
                    elif rss > self.peak:
                        self.peak = rss
            time.sleep(0.2)


def worker_pids(home: Path) -> list[int]:
    """PIDs of the `airflow celery worker` programs of the stack, from supervisord."""
    ctl = [str(REPO / ".venv/bin/supervisorctl"), "-c", str(home / "supervisord.conf")]
    names = [
        line.split()[0]
        for line in subprocess.run([*ctl, "status"], capture_output=True, text=True).stdout.splitlines()
        if line.startswith("airflow-worker")
    ]
    pids = [subprocess.run([*ctl, "pid", n], capture_output=True, text=True).stdout.strip() for n in names]
    return [int(p) for p in pids if p.isdigit()]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="1")
    ap.add_argument("--day", default="2031-01-01")
    args, _ = ap.parse_known_args()
    from sluice.airflow_api import AirflowApi
    from sluice.connections import pg_dsn

    home = Path(os.environ.get("SLUICE_HOME", REPO / ".sluice"))
    print(f"landing lineitem SF{args.scale} as one interval ({args.day}) ...", flush=True)
    subprocess.run(
        [
            sys.executable,
            str(REPO / "demo/land_tpch.py"),
            "--scale",
            args.scale,
            "--tables",
            "lineitem",
            "--single-day",
            args.day,
            "--prefix",
            "tpch",
        ],
        check=True,
        capture_output=True,
    )
    import psycopg

    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS tpch.lineitem")
    api = AirflowApi.from_env()
    api.wait_for_dag("tpch_lineitem")
    api.unpause("tpch_lineitem")
    sampler = RssSampler(worker_pids(home))
    sampler.start()
    start = f"{args.day}T00:00:00+00:00"
    end = (date.fromisoformat(args.day) + timedelta(days=1)).isoformat() + "T00:00:00+00:00"
    t0 = time.time()
    run_id = api.trigger("tpch_lineitem", conf={"interval_start": start, "interval_end": end})
    state = api.wait_for_run("tpch_lineitem", run_id, timeout=1800)
    elapsed = time.time() - t0
    sampler.stop.set()
    tis = api.task_instances("tpch_lineitem", run_id)
    by_task: dict[str, float] = {}
    for ti in tis:
        by_task[ti["task_id"]] = max(by_task.get(ti["task_id"], 0.0), ti.get("duration") or 0.0)
    with psycopg.connect(pg_dsn("sluice_warehouse")) as conn:
        rows = conn.execute(
            "SELECT rows_in, rows_loaded, rows_quarantined, chunks FROM sluice.run_summary WHERE run_id = %s", (run_id,)
        ).fetchone()
    result = {
        "scale": args.scale,
        "state": state,
        "seconds_trigger_to_success": round(elapsed, 1),
        "rows_in": rows[0] if rows else None,
        "rows_loaded": rows[1] if rows else None,
        "rows_quarantined": rows[2] if rows else None,
        "chunks": rows[3] if rows else None,
        "rows_per_second": round((rows[0] if rows else 0) / elapsed),
        "peak_task_rss_mb": round(sampler.peak / 2**20),
        "peak_pool_process_rss_mb": round(sampler.pool_peak / 2**20),
        "longest_task_seconds": {k: round(v, 1) for k, v in by_task.items()},
        "target": "<= 120 s trigger to success; <= 1536 MB per task",
    }
    print(json.dumps(result, indent=2))
    out = REPO / "bench" / "results" / f"e2e-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
