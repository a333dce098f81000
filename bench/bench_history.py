"""What the checks against history add to the quality gate, at 1 year of daily history (issue 13: at most 5 %).

One process, one warehouse (AIRFLOW_CONN_SLUICE_WAREHOUSE), interleaved iteration by iteration so both sides see the
same background load:

- without: `run_gate` over the run's chunk reports for a pipeline without `history:` (what the gate decides today);
- with: `read_history` (a new connection, one indexed query of 365 rows from sluice.interval_stats, seeded here for a
  throw-away pipeline) + `run_gate` with a volume check and an outlier check on each of the 10 numeric columns.

Printed: the median of each, the added milliseconds, and two ratios. (1) in-process: with / without; the in-process
gate is pure arithmetic over a few dicts (well under a millisecond), so any database read is many times it. (2) the
gate TASK: added time / the median duration Airflow recorded for quality_gate task instances on this stack (read
from the REST API in the same run, when SLUICE_API_URL is set): that is the gate's time a run pays, and the figure
the 5 % target is about.

    set -a; source .sluice/env; set +a; .venv/bin/python bench/bench_history.py [--days 365] [--iterations 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
RESULTS = ROOT / "bench" / "results"
NUMERIC = [f"m{i}" for i in range(10)]


def config(name: str, history: bool):
    from sluice.config import PipelineConfig

    cols = [{"name": "id", "type": "bigint", "nullable": False}, *({"name": c, "type": "double"} for c in NUMERIC)]
    extra = (
        {
            "history": {
                "lookback": 365,
                "min_intervals": 5,
                "volume": {"severity": "warn"},
                "outliers": [{"column": c, "statistic": "mean"} for c in NUMERIC],
            }
        }
        if history
        else {}
    )
    return PipelineConfig.model_validate(
        {
            "name": name,
            "start_date": "2024-01-01",
            "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "p/", "format": "csv"},
            "target": {"schema": "bench_history", "table": "t", "primary_key": ["id"], "columns": cols},
            **extra,
        }
    )


def reports(chunks: int = 4, rows: int = 250_000) -> list[dict]:
    stats = {c: {"count": rows, "nulls": 0, "min": 0.0, "max": 100.0, "sum": 50.0 * rows} for c in ["id", *NUMERIC]}
    return [
        {"index": i, "rows_in": rows, "rows_good": rows, "rows_quarantined": 0, "batch_checks": {"stats": stats}}
        for i in range(chunks)
    ]


def seed(dsn: str, name: str, days: int, start: datetime) -> None:
    import psycopg
    from psycopg.types.json import Jsonb
    from sluice.loading import sql as q
    from sluice.loading.ledger import ensure_metadata

    ensure_metadata(dsn, "bench_history")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        rows = []
        for d in range(days):
            s = start + timedelta(days=d)
            cols = {
                c: {"count": 1e6, "nulls": 0, "min": 0, "max": 100, "sum": 5e7, "mean": 50 + d % 7} for c in NUMERIC
            }
            rows.append(
                {
                    "pipeline": name,
                    "interval_start": s,
                    "interval_end": s + timedelta(days=1),
                    "run_id": f"seed{d}",
                    "generation": d,
                    "rows_in": 1_000_000 + d % 13,
                    "rows_loaded": 1_000_000,
                    "rows_quarantined": 0,
                    "columns": Jsonb(cols),
                }
            )
        cur.executemany(q.interval_stats_upsert(), rows)


def task_seconds() -> list[float]:
    """Durations Airflow recorded for successful quality_gate task instances on this stack (newest 50)."""
    if not os.environ.get("SLUICE_API_URL"):
        return []
    from sluice.airflow_api import AirflowApi

    api = AirflowApi.from_env()
    body = {"task_ids": ["quality_gate"], "state": ["success"], "page_limit": 50, "order_by": "-start_date"}
    tis = api.request("POST", "/dags/~/dagRuns/~/taskInstances/list", json=body)["task_instances"]
    return [float(t["duration"]) for t in tis if t.get("duration")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--iterations", type=int, default=60)
    args, _ = ap.parse_known_args()  # bench/run.sh hands every benchmark the same arguments

    import psycopg
    from sluice.connections import pg_dsn
    from sluice.interval import Interval
    from sluice.validate.gate import run_gate
    from sluice.validate.history import read_history

    dsn = pg_dsn("sluice_warehouse")
    name = f"bench_history_{uuid.uuid4().hex[:8]}"
    start = datetime(2024, 1, 1, tzinfo=UTC)
    seed(dsn, name, args.days, start)
    interval = Interval(start + timedelta(days=args.days), start + timedelta(days=args.days + 1))
    plain, checked, rep = config(name, False), config(name, True), reports()
    assert len(read_history(checked, interval)) == args.days
    without, with_ = [], []
    try:
        for _ in range(args.iterations):
            t0 = time.perf_counter()
            run_gate(plain, rep)
            t1 = time.perf_counter()
            result = run_gate(checked, rep, read_history(checked, interval))
            t2 = time.perf_counter()
            without.append(t1 - t0)
            with_.append(t2 - t1)
        assert not result.notes, result.notes
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM sluice.interval_stats WHERE pipeline = %s", [name])
    a, b = statistics.median(without), statistics.median(with_)
    durations = task_seconds()
    task = statistics.median(durations) if durations else None
    out = {
        "days": args.days,
        "iterations": args.iterations,
        "gate_without_ms": round(a * 1000, 3),
        "gate_with_history_ms": round(b * 1000, 3),
        "added_ms": round((b - a) * 1000, 3),
        "in_process_ratio": round(b / a, 1),
        "quality_gate_task_median_s": task,
        "quality_gate_tasks_sampled": len(durations),
        "added_share_of_task": round((b - a) / task, 4) if task else None,
    }
    print(json.dumps(out, indent=2))
    if task:
        print(
            f"history checks add {(b - a) * 1000:.1f} ms = {100 * (b - a) / task:.2f} % of the quality_gate task's "
            f"median {task:.2f} s ({len(durations)} task instances); target <= 5 %"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"history-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
