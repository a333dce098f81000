"""`backfill plan` over three years of daily intervals (1096), against the running stack's warehouse and S3 endpoint.

Sets up, untimed: a copy of tpch_orders named bench_backfill_plan whose 1096 intervals all look loaded (one
run_summary row with its source fingerprint and one ledger row each, one landed object each, one staging manifest
each with its source objects), with every 20th landed object rewritten after "the load" and every 50th interval
missing. Then times, in the same run:

- plan_backfill() in this process (3 repeats; the figure the 2 s target is about), with its profile: the warehouse
  query, the one listing of the landing prefix, the in-memory classification, the manifest reads (only the changed
  intervals', for the note);
- `python -m sluice backfill plan` as a subprocess (wall clock, interpreter and imports included);
- the same plan with the fingerprints set to NULL (generations loaded before Sluice recorded them): the manifest
  fallback, one GET per loaded interval, once; its classification must equal the fingerprint path's.

    set -a; source .sluice/env; set +a      # or .sluice-test/env
    .venv/bin/python bench/bench_backfill_plan.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

NAME = "bench_backfill_plan"
FIRST, LAST = date(1992, 1, 1), date(1994, 12, 31)


def main() -> int:
    import psycopg
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from sluice.backfill import plan as bp
    from sluice.config import load_defaults, load_pipeline
    from sluice.connections import pg_dsn
    from sluice.loading.ledger import ensure_metadata
    from sluice.schedule import intervals_between
    from sluice.sources.fingerprint import record_of
    from sluice.staging import StagingStore

    tmp = Path(tempfile.mkdtemp())
    (tmp / "pipelines").mkdir()
    text = (REPO / "config/pipelines/tpch_orders.yaml").read_text()
    text = text.replace("name: tpch_orders", f"name: {NAME}").replace("tpch/orders/", "bench/backfill_plan/")
    path = tmp / "pipelines" / f"{NAME}.yaml"
    path.write_text(text)
    (tmp / "defaults.yaml").write_text((REPO / "config/defaults.yaml").read_text())
    cfg = load_pipeline(path, load_defaults(tmp))
    intervals = intervals_between(cfg, FIRST, LAST)
    dsn = pg_dsn(cfg.target.conn_id)
    ensure_metadata(dsn, "sluice")
    s3 = S3Hook(aws_conn_id="sluice_s3").get_conn()

    t0 = time.perf_counter()
    recorded = {}
    for n, i in enumerate(intervals):
        key = f"bench/backfill_plan/{i.start:%Y-%m-%d}/part-0.csv.gz"
        s3.put_object(Bucket="sluice-landing", Key=key, Body=b"x" * 10)
        head = s3.head_object(Bucket="sluice-landing", Key=key)
        obj = {"key": key, "size": 10, "etag": head["ETag"].strip('"')}
        store = StagingStore(cfg.staging, NAME, i, f"scheduled__{i.start.isoformat()}", n + 1)
        store._put(store.manifest_key, json.dumps({"chunks": [], "source_objects": [obj]}).encode())
        recorded[n] = record_of([obj])  # what finalize records from that manifest (steps.source_record)
        if n % 20 == 19:
            s3.put_object(Bucket="sluice-landing", Key=key, Body=b"y" * 12)  # rewritten after the load
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM sluice.run_summary WHERE pipeline = %s", (NAME,))
        conn.execute("DELETE FROM sluice.load_ledger WHERE pipeline = %s", (NAME,))
        with conn.cursor() as cur:
            summaries, ledger = [], []
            for n, i in enumerate(intervals):
                if n % 50 == 49:
                    continue
                run_id = f"scheduled__{i.start.isoformat()}"
                summaries.append((NAME, run_id, "tpch.orders", i.start, i.end, 1, 100, 100, 0, 100, 0, 0, "[]", n + 1,
                                  0, 0, "success", "[]", i.end, recorded[n]["source_fingerprint"],
                                  recorded[n]["source_object_count"]))  # fmt: skip
                ledger.append((NAME, "tpch.orders", i.start, i.end, run_id, n + 1, 0, 100, 100, 0, 100, 0, 0, 0,
                               "sha256:x", "upsert", i.end, i.end, 0.0, 0.0, 0, 0))  # fmt: skip
            cur.executemany(
                "INSERT INTO sluice.run_summary (pipeline, run_id, target, interval_start, interval_end, chunks, "
                "rows_in, rows_loaded, rows_quarantined, inserted, updated, deleted, schema_changes, generation, "
                "superseded, unchanged, status, problems, finished_at, source_fingerprint, source_object_count) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                summaries,
            )
            cur.executemany(
                "INSERT INTO sluice.load_ledger (pipeline, target, interval_start, interval_end, run_id, run_no, "
                "chunk, "
                "rows_in, rows_loaded, rows_quarantined, inserted, updated, deleted, duplicates, checksum, write_mode, "
                "started_at, finished_at, copy_seconds, merge_seconds, superseded, unchanged) VALUES "
                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                ledger,
            )
    print(f"set-up: {len(intervals)} intervals in {time.perf_counter() - t0:.1f}s (untimed)")

    times, profiles = [], []
    for _ in range(3):
        t = time.perf_counter()
        plan = bp.plan_backfill(cfg, FIRST, LAST, now=datetime.now(UTC), dsn=dsn)
        times.append(time.perf_counter() - t)
        profiles.append(plan.profile)
    totals = plan.totals()
    best = profiles[times.index(min(times))]
    env = {**os.environ, "PYTHONPATH": str(REPO / "include"), "SLUICE_PIPELINES_DIRS": str(tmp / "pipelines")}
    t = time.perf_counter()
    cli = subprocess.run(
        [sys.executable, "-m", "sluice", "backfill", "plan", "--pipeline", NAME, "--from", str(FIRST), "--to",
         str(LAST), "--json"], capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    t_cli = time.perf_counter() - t
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["totals"] == totals, "the CLI's plan differs from the in-process one"

    with psycopg.connect(dsn, autocommit=True) as conn:  # as if loaded before the fingerprint existed
        conn.execute(
            "UPDATE sluice.run_summary SET source_fingerprint = NULL, source_object_count = NULL WHERE pipeline = %s",
            (NAME,),
        )
    t = time.perf_counter()
    legacy = bp.plan_backfill(cfg, FIRST, LAST, now=datetime.now(UTC), dsn=dsn)
    t_legacy = time.perf_counter() - t
    same = [(s.state, s.source) for s in legacy.intervals] == [(s.state, s.source) for s in plan.intervals]
    n = range(len(intervals))
    expected = {"total": len(n), "missing": sum(k % 50 == 49 for k in n),
                "changed": sum(k % 20 == 19 and k % 50 != 49 for k in n)}  # fmt: skip
    exact = all(totals[k] == v for k, v in expected.items()) and same

    def part(p: dict[str, float]) -> dict[str, float]:
        return {k: round(v, 3) for k, v in p.items()}

    result = {
        "intervals": totals["total"],
        "totals": totals,
        "plan_seconds": [round(x, 3) for x in times],
        "best_profile": part(best),
        "cli_wall_seconds": round(t_cli, 2),
        "manifest_fallback_seconds": round(t_legacy, 3),
        "manifest_fallback_profile": part(legacy.profile),
        "fallback_over_fingerprint": round(t_legacy / min(times), 1),
        "classification_exact": exact,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))
    print(
        f"backfill plan over {totals['total']} daily intervals ({totals['loaded']} loaded, {totals['missing']} "
        f"missing, {totals['changed']} changed; {'exact' if exact else 'NOT EXACT'}): best {min(times):.2f}s "
        f"in-process (target < 2 s: {'met' if min(times) < 2 else 'NOT met'}) = warehouse {best['warehouse']:.3f}s "
        f"+ S3 listing {best['listing']:.3f}s + classification {best['classification']:.3f}s "
        f"({best['manifests_read']:.0f} manifests read); "
        f"CLI wall clock {t_cli:.1f}s (interpreter, Airflow's connection hooks imported); the manifest fallback "
        f"(no fingerprints recorded) {t_legacy:.1f}s = {t_legacy / min(times):.0f}x; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "backfill_plan.json").write_text(json.dumps(result, indent=2))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM sluice.run_summary WHERE pipeline = %s", (NAME,))
        conn.execute("DELETE FROM sluice.load_ledger WHERE pipeline = %s", (NAME,))
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
