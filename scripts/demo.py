"""make demo: land realistic demo data, run every example pipeline through the scheduler and Celery workers for a few
days, wait, and print a summary table, the UI URL and the login. The stack keeps running afterwards."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = str(REPO / ".venv" / "bin" / "python")


def load_env() -> None:
    home = Path(os.environ.get("SLUICE_HOME", REPO / ".sluice"))
    env_file = home / "env"
    if not env_file.exists():
        sys.exit(f"no stack environment at {env_file}: run `make up` first")
    for line in env_file.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        os.environ.setdefault(key, value[1:-1].replace("'\"'\"'", "'") if value.startswith("'") else value)
    sys.path.insert(0, str(REPO / "include"))


def step(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def land_data(start: date, days: int, scale: float) -> None:
    if (REPO / "demo" / "land_tpch.py").exists():
        step(f"landing TPC-H SF{scale} orders and lineitem for {days} day(s) from {start} in s3://sluice-landing")
        subprocess.run(
            [
                PY,
                str(REPO / "demo" / "land_tpch.py"),
                "--scale",
                str(scale),
                "--days",
                str(days),
                "--start",
                start.isoformat(),
            ],
            check=True,
        )
    if (REPO / "demo" / "seed_source_db.py").exists():
        step("seeding the source PostgreSQL database (sluice_source_db) with TPC-H orders")
        subprocess.run([PY, str(REPO / "demo" / "seed_source_db.py"), "--scale", str(scale)], check=True)


def run_pipelines(api, pipelines: dict, start: date, days: int) -> list[tuple[str, str, str, str]]:
    """Run each pipeline for `days` daily intervals from `start` (or from its own start_date, when later)."""
    runs = []
    for name, cfg in sorted(pipelines.items()):
        api.wait_for_dag(name)
        api.unpause(name)
        first = max(start, cfg.start_date)
        for i in range(days):
            s = datetime.combine(first + timedelta(days=i), datetime.min.time(), tzinfo=UTC)
            conf = {"interval_start": s.isoformat(), "interval_end": (s + timedelta(days=1)).isoformat()}
            run_id = api.trigger(name, conf=conf)
            runs.append((name, conf["interval_start"][:10], run_id, "queued"))
    step(f"triggered {len(runs)} run(s) of {len(pipelines)} pipeline(s); waiting for the scheduler and Celery workers")
    done = []
    for name, day, run_id, _ in runs:
        done.append((name, day, run_id, api.wait_for_run(name, run_id, timeout=900)))
    return done


def summary_rows(runs) -> dict[str, tuple]:
    import psycopg
    from sluice.connections import pg_dsn

    out = {}
    try:
        with psycopg.connect(pg_dsn("sluice_warehouse")) as conn:
            for _, _, run_id, _ in runs:
                row = conn.execute(
                    "SELECT rows_in, rows_loaded, rows_quarantined FROM sluice.run_summary WHERE run_id = %s", (run_id,)
                ).fetchone()
                if row:
                    out[run_id] = row
    except psycopg.Error as exc:
        step(f"(no run summary available: {exc.__class__.__name__})")
    return out


def show_quarantine(start: date) -> None:
    """What the demo's runs quarantined (pending rows), and the one command that replays them once fixed."""
    print()
    print("Quarantined rows waiting for a fix (python -m sluice quarantine list --status pending):")
    args = ["quarantine", "list", "--status", "pending", "--since", start.isoformat()]
    subprocess.run([PY, "-m", "sluice", *args], check=False, env={**os.environ, "PYTHONPATH": str(REPO / "include")})
    print(
        "Fix the cause (the data, a type or an expectation in config/pipelines/), then replay: "
        "python -m sluice quarantine replay --pipeline tpch_orders"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", default=os.environ.get("SLUICE_DEMO_START", "1995-01-01"))
    parser.add_argument("--days", type=int, default=int(os.environ.get("SLUICE_DEMO_DAYS", "3")))
    parser.add_argument("--scale", type=float, default=float(os.environ.get("SLUICE_DEMO_SCALE", "1")))
    args = parser.parse_args()
    load_env()
    from sluice.airflow_api import AirflowApi
    from sluice.dag_builder import load_configs

    api = AirflowApi.from_env()
    t0 = time.time()
    land_data(date.fromisoformat(args.start), args.days, args.scale)
    result = load_configs()
    for path, err in result.errors.items():
        step(f"skipping invalid pipeline file {path}:\n{err}")
    runs = run_pipelines(api, result.pipelines, date.fromisoformat(args.start), args.days) if result.pipelines else []
    api.wait_for_dag("sluice_platform_check")
    api.unpause("sluice_platform_check")
    check = api.trigger("sluice_platform_check")
    runs.append(("sluice_platform_check", "-", check, api.wait_for_run("sluice_platform_check", check, 300)))
    counts = summary_rows(runs)

    print()
    print(f"{'pipeline':<24} {'interval':<11} {'state':<8} {'extracted':>10} {'loaded':>10} {'quarantined':>12}")
    print("-" * 80)
    for name, day, run_id, state in runs:
        c = counts.get(run_id)
        cells = [f"{v:>10,}" for v in c[:2]] + [f"{c[2]:>12,}"] if c else [f"{'-':>10}", f"{'-':>10}", f"{'-':>12}"]
        print(f"{name:<24} {day:<11} {state:<8} {' '.join(cells)}")
    show_quarantine(date.fromisoformat(args.start))
    secrets = json.loads((Path(os.environ["SLUICE_HOME"]) / "secrets.json").read_text())
    print()
    print(
        f"Finished in {time.time() - t0:.0f}s. Airflow UI: {api.base_url}  user admin, password "
        f"{secrets['admin_password']}"
    )
    print("The stack keeps running: `make down` stops it.")
    return 0 if all(r[3] == "success" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
