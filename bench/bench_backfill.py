"""Load (not a test): N pipelines x a D-day backfill through the real scheduler and the stack's Celery workers.

Default 100 pipelines x 7 days = 700 runs. Every pipeline is a small S3 -> PostgreSQL upsert (the shape of
config/pipelines/tpch_orders.yaml, ROWS rows a day, one chunk), so the figure measures the platform (scheduling,
Celery, task start-up, the five tasks of a run), not the data path (bench_load.py measures that). It reports:
every run's final state (all must succeed), the wall time from the first backfill created to the last run ended,
runs/minute, the scheduler's health while it ran (its heartbeat age from the metadata database, sampled every
5 s, and the api-server's health endpoint), and the load average beside each figure (the box is shared).

The pipeline files are written to --dir, which must be one of the stack's SLUICE_PIPELINES_DIRS (not the first:
the first one's parent holds defaults.yaml), so start the stack with it:

    export SLUICE_HOME=$PWD/.sluice-bench    # plus SLUICE_*_PORT if the default ports are taken
    export SLUICE_PIPELINES_DIRS=$PWD/config/pipelines:$SLUICE_HOME/bench-pipelines
    .venv/bin/python scripts/stack up && set -a && source $SLUICE_HOME/env && set +a
    .venv/bin/python bench/bench_backfill.py [--pipelines 100] [--days 7]
    .venv/bin/python scripts/stack down

Writes bench/results/backfill-<UTC time>.json. Exit 0 only when every run succeeded and the scheduler stayed healthy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))
RESULTS = REPO / "bench" / "results"
START = date(2024, 1, 1)
ROWS = 50
SCHEMA = "bench_backfill"


def pipeline(prefix: str, i: int, days: int) -> dict:
    name = f"{prefix}{i:03d}"
    return {
        "name": name,
        "description": "bench/bench_backfill.py: one of N small pipelines backfilled together.",
        "tags": ["bench"],
        "schedule": "@daily",
        "start_date": START.isoformat(),
        "end_date": (START + timedelta(days=days)).isoformat(),  # in the past: unpausing schedules nothing
        "catchup": False,
        "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": f"bench/{name}/{{{{ ds }}}}/", "format": "csv"},
        "target": {
            "schema": SCHEMA,
            "table": name,
            "primary_key": ["id"],
            "columns": [
                {"name": "id", "type": "bigint", "nullable": False},
                {"name": "day", "type": "date", "nullable": False},
                {"name": "amount", "type": "numeric(12,2)"},
            ],
        },
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}, "severity": "quarantine"}
        ],
        "retries": {"retries": 2, "delay_seconds": 5, "multiplier": 2.0, "max_delay_seconds": 60},
        "alerts": {"channels": []},
    }


def generate(directory: Path, n: int, days: int) -> list[str]:
    """Fresh names on every invocation (load<HHMMSS>_pNNN), so a second bench on the same stack starts clean."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("load*_p*.yaml"):
        old.unlink()
    prefix = f"load{datetime.now(UTC):%H%M%S}_p"
    names = []
    for i in range(n):
        doc = pipeline(prefix, i, days)
        (directory / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        names.append(doc["name"])
    return names


def land(names: list[str], days: int) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    s3 = S3Hook(aws_conn_id="sluice_s3").get_conn()
    for name in names:
        for d in range(days):
            day = START + timedelta(days=d)
            body = "id,day,amount\n" + "".join(f"{d * ROWS + r},{day},{r}.25\n" for r in range(ROWS))
            s3.put_object(Bucket="sluice-landing", Key=f"bench/{name}/{day}/part-0.csv", Body=body.encode())


def metadata_conn():
    import psycopg

    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")
    return psycopg.connect(url, autocommit=True)


def run_states(conn, names: list[str]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT state, count(*) FROM dag_run WHERE dag_id = ANY(%s) GROUP BY state", (names,)
    ).fetchall()
    return {state: n for state, n in rows}


def heartbeat_age(conn) -> float | None:
    row = conn.execute(
        "SELECT extract(epoch FROM now() - max(latest_heartbeat)) FROM job "
        "WHERE job_type = 'SchedulerJob' AND state = 'running'"
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def scheduler_healthy(api) -> bool:
    try:
        return api.request("GET", "/monitor/health")["scheduler"]["status"] == "healthy"
    except Exception:  # noqa: BLE001 - a busy api-server is not an unhealthy scheduler; counted apart
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", type=int, default=100)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("SLUICE_HOME", ".sluice")) / "bench-pipelines")
    ap.add_argument("--timeout", type=float, default=6 * 3600, help="give up after this many seconds")
    args, _ = ap.parse_known_args(argv)  # bench/run.sh passes the same arguments to every benchmark
    dirs = [Path(p).resolve() for p in os.environ.get("SLUICE_PIPELINES_DIRS", "").split(os.pathsep) if p]
    if args.dir.resolve() not in dirs[1:]:
        print(f"bench_backfill: {args.dir} is not among the stack's SLUICE_PIPELINES_DIRS (after the first); "
              "start the stack as the docstring says", file=sys.stderr)  # fmt: skip
        return 2

    import psycopg
    from sluice.airflow_api import AirflowApi
    from sluice.connections import pg_dsn

    api = AirflowApi.from_env()
    api.timeout = 120
    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as wh:
        wh.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    names = generate(args.dir, args.pipelines, args.days)
    print(f"bench_backfill: {len(names)} pipelines {names[0]}..{names[-1]} in {args.dir}", flush=True)
    land(names, args.days)
    conn = metadata_conn()
    t_parse = time.monotonic()
    for name in names:
        api.wait_for_dag(name, timeout=1800)
    parsed_s = time.monotonic() - t_parse
    for name in names:
        api.unpause(name)

    load_samples, heartbeat, unhealthy, samples = [], [], 0, 0
    started = time.monotonic()
    first = datetime.combine(START, datetime.min.time(), tzinfo=UTC)
    for name in names:
        api.request("POST", "/backfills", json={
            "dag_id": name, "from_date": first.isoformat(),
            "to_date": (first + timedelta(days=args.days - 1)).isoformat(),
            "reprocess_behavior": "none", "max_active_runs": 4, "run_backwards": False, "dag_run_conf": {},
        })  # fmt: skip
    created_s = time.monotonic() - started
    expected = args.pipelines * args.days
    states: dict[str, int] = {}
    while time.monotonic() - started < args.timeout:
        states = run_states(conn, names)
        age = heartbeat_age(conn)
        heartbeat.append(age if age is not None else float("inf"))
        samples += 1
        unhealthy += not scheduler_healthy(api)
        load_samples.append(os.getloadavg()[0])
        done = states.get("success", 0) + states.get("failed", 0)
        if sum(states.values()) >= expected and done == sum(states.values()):
            break
        time.sleep(5)
    wall = time.monotonic() - started
    ended = conn.execute(
        "SELECT extract(epoch FROM max(end_date) - min(start_date)) FROM dag_run WHERE dag_id = ANY(%s)", (names,)
    ).fetchone()[0]
    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as wh:
        loaded = sum(wh.execute(f"SELECT count(*) FROM {SCHEMA}.{n}").fetchone()[0] for n in names)

    runs_span = float(ended or wall)
    figures = {
        "pipelines": args.pipelines,
        "days": args.days,
        "runs_expected": expected,
        "runs": states,
        "rows_loaded": loaded,
        "rows_expected": expected * ROWS,
        "parse_all_s": parsed_s,
        "create_backfills_s": created_s,
        "wall_s": wall,
        "first_run_start_to_last_run_end_s": runs_span,
        "runs_per_minute": states.get("success", 0) / (runs_span / 60) if runs_span else 0,
        "scheduler_heartbeat_age_s": {"max": max(heartbeat), "median": statistics.median(heartbeat)},
        "health_samples": samples,
        "health_unhealthy_samples": unhealthy,
        "load_avg_1m": {"min": min(load_samples), "median": statistics.median(load_samples), "max": max(load_samples)},
        "cpus": os.cpu_count(),
        "workers": int(os.environ.get("SLUICE_WORKERS", "2")),
    }
    la = figures["load_avg_1m"]
    ok = states.get("success", 0) == expected and loaded == expected * ROWS and max(heartbeat) < 60
    print(f"backfill: {args.pipelines} pipelines x {args.days} days = {expected} runs on {figures['workers']} workers "
          f"(load average {la['min']:.1f}/{la['median']:.1f}/{la['max']:.1f} min/median/max on {figures['cpus']} "
          "CPUs)")  # fmt: skip
    print(f"  runs: {states}; rows loaded {loaded} of {expected * ROWS}")
    print(f"  wall {wall:.0f} s from the first backfill created; first run start -> last run end {runs_span:.0f} s "
          f"= {figures['runs_per_minute']:.1f} runs/minute")  # fmt: skip
    print(f"  scheduler heartbeat age: max {max(heartbeat):.1f} s, median {statistics.median(heartbeat):.1f} s; "
          f"health endpoint not 'healthy' in {unhealthy} of {samples} samples")  # fmt: skip
    print(f"  {'OK' if ok else 'NOT OK'}: every run succeeded and the scheduler's heartbeat stayed under 60 s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"backfill-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"results: {path.relative_to(REPO)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
