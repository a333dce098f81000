"""First load, re-run and cleared run of one interval through Airflow and Celery, against raw COPY, in one run.

TPC-H lineitem (SF1 by default) is landed as one S3 Parquet file for one day and loaded by the tpch_lineitem example
pipeline (its expectations included) through the scheduler and both Celery workers of the running stack:

1. raw COPY: the same rows as CSV made beforehand (untimed), COPY into a table with the same primary key (the
   database's ceiling); timed before the Airflow runs and again after them, and averaged (the box is shared);
2. Sluice's first load: trigger to success (tpch.lineitem dropped before);
3. a re-run (a new manual run of the same interval) and a cleared run (the REST clear of the re-run, what the UI
   calls): trigger or clear to success, with the rows written (n_tup_ins + n_tup_upd of tpch.lineitem);
4. the task timeline of each run from the REST API: every task's span, the idle gaps between stages (scheduling),
   and the quality gate (which holds the run-wide duplicate pass) as a share of the first load.

    .venv/bin/python bench/bench_reprocessing.py [--scale 1] [--day 2031-02-01]

Ratios, with their targets (issue 9): first load / raw COPY <= 2.5; re-run and cleared run / first load <= 1.0 with
0 rows written; quality gate / first load <= 0.10.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "include"))

DAG = "tpch_lineitem"
STAGES = ("extract_and_stage", "validate_chunk", "quality_gate", "load_chunk", "finalize")


def say(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


def ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def timeline(tis: list[dict], t0: float, t_end: float) -> dict:
    """Per stage: span (first start to last end, from t0), summed task seconds, count; the idle gaps between one
    stage's last end and the next one's first start; and the gap from trigger to the first task."""
    out: dict = {"stages": {}, "gaps": {}}
    prev_end, prev = t0, "trigger"
    for stage in STAGES:
        mine = [t for t in tis if t["task_id"] == stage and t.get("start_date")]
        if not mine:
            continue
        starts = [ts(t["start_date"]) for t in mine]
        ends = [ts(t["end_date"]) or t_end for t in mine]
        queued = [ts(t.get("queued_when")) for t in mine if t.get("queued_when")]
        out["stages"][stage] = {
            "tasks": len(mine),
            "start": round(min(starts) - t0, 1),
            "end": round(max(ends) - t0, 1),
            "task_seconds": round(sum(e - s for s, e in zip(starts, ends, strict=True)), 1),
            "longest": round(max(e - s for s, e in zip(starts, ends, strict=True)), 1),
            "queued_to_start_max": round(max((s - q for s, q in zip(starts, queued, strict=False)), default=0), 1),
        }
        out["gaps"][f"{prev} -> {stage}"] = round(min(starts) - prev_end, 1)
        prev_end, prev = max(ends), stage
    out["gaps"][f"{prev} -> run success seen"] = round(t_end - prev_end, 1)
    out["gaps_total"] = round(sum(out["gaps"].values()), 1)
    return out


def raw_copy(dsn: str, parquet: Path) -> float:
    """COPY of ready CSV (written to a file beforehand, untimed: the box's memory is shared) into a fresh table with
    lineitem's columns and primary key."""
    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from sluice.config import load_pipeline

    cfg = load_pipeline(REPO / "config/pipelines/tpch_lineitem.yaml")
    with tempfile.NamedTemporaryFile(suffix=".csv") as f:
        source = pq.ParquetFile(parquet)
        schema = source.schema_arrow.empty_table().select(cfg.target.column_names).schema
        schema = pa.schema([pa.field(x.name, pa.string() if x.type == pa.string_view() else x.type) for x in schema])
        with pacsv.CSVWriter(f.name, schema, write_options=pacsv.WriteOptions(include_header=False)) as w:
            for batch in source.iter_batches(batch_size=250_000, columns=cfg.target.column_names):
                w.write_table(pa.Table.from_batches([batch]).cast(schema))
        cols = ", ".join(f"{c.name} {c.pg_type}{'' if c.nullable else ' NOT NULL'}" for c in cfg.target.columns)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS bench_reproc")
            conn.execute("DROP TABLE IF EXISTS bench_reproc.raw_copy")
            conn.execute(f"CREATE TABLE bench_reproc.raw_copy ({cols}, PRIMARY KEY (l_orderkey, l_linenumber))")
            t0 = time.perf_counter()
            with conn.cursor() as cur, cur.copy("COPY bench_reproc.raw_copy FROM STDIN (FORMAT csv)") as copy:
                while block := f.read(1 << 20):
                    copy.write(block)
            seconds = time.perf_counter() - t0
            conn.execute("DROP SCHEMA bench_reproc CASCADE")
    return seconds


def written(dsn: str) -> tuple[int, int]:
    """n_tup_ins, n_tup_upd of tpch.lineitem once no loader backend of the pipeline is left (they flush on exit)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'sluice load tpch_lineitem#%'"
            ).fetchone()[0]
        ):
            time.sleep(0.2)
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE schemaname = 'tpch' AND relname = 'lineitem'"
        ).fetchone()
    return (row[0], row[1]) if row else (0, 0)


def run(api, dsn: str, label: str, start, clear_run: str | None = None) -> dict:
    before = written(dsn)
    t0 = time.time()
    if clear_run:
        api.clear_run(DAG, clear_run)
        run_id = clear_run
    else:
        run_id = api.trigger(DAG, conf={"interval_start": start[0], "interval_end": start[1]})
    state = api.wait_for_run(DAG, run_id, timeout=3600)
    t_end = time.time()
    after = written(dsn)
    tis = api.task_instances(DAG, run_id)
    import psycopg

    with psycopg.connect(dsn) as conn:
        summary = conn.execute(
            "SELECT rows_in, rows_loaded, rows_quarantined, inserted, updated, unchanged, superseded, chunks "
            "FROM sluice.run_summary WHERE pipeline = %s AND run_id = %s",
            (DAG, run_id),
        ).fetchone()
    result = {
        "label": label,
        "run_id": run_id,
        "state": state,
        "seconds": round(t_end - t0, 1),
        "n_tup_ins": after[0] - before[0],
        "n_tup_upd": after[1] - before[1],
        "summary": dict(
            zip(
                ("rows_in", "rows_loaded", "quarantined", "inserted", "updated", "unchanged", "superseded", "chunks"),
                summary or (),
                strict=False,
            )
        ),
        "timeline": timeline(tis, t0, t_end),
    }
    say(f"{label}: {state} in {result['seconds']} s, rows written {result['n_tup_ins'] + result['n_tup_upd']}")
    return result


def duplicate_pass_worst_case(api, run_id: str) -> dict:
    """The run-wide duplicate pass as if every chunk's key range overlapped another's (lineitem in key order has
    none, so the gate reads nothing): read the key columns of every staged good-rows file of the run's generation and
    resolve the losers, as loading/duplicates.py does for overlapping chunks. In this process, timed."""
    from sluice.config import load_pipeline
    from sluice.interval import Interval
    from sluice.loading.duplicates import losers
    from sluice.staging import StagingStore

    cfg = load_pipeline(REPO / "config/pipelines/tpch_lineitem.yaml")
    path = f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/quality_gate/xcomEntries/return_value"
    reports = api.request("GET", path, params={"deserialize": "true"})["value"]
    reports = json.loads(reports) if isinstance(reports, str) else reports
    conf = api.request("GET", f"/dags/{DAG}/dagRuns/{run_id}")["conf"]
    interval = Interval(datetime.fromisoformat(conf["interval_start"]), datetime.fromisoformat(conf["interval_end"]))
    pk = list(cfg.target.primary_key)
    t0 = time.perf_counter()
    tables = {}
    for r in reports:
        if r.get("rows_good"):
            store = StagingStore(cfg.staging, cfg.name, interval, run_id, r.get("generation"))
            tables[int(r["index"])] = store.read_table(r["good_key"], columns=pk)
    lost = losers(tables, pk)
    return {
        "chunks": len(tables),
        "keys": sum(t.num_rows for t in tables.values()),
        "superseded": sum(len(v) for v in lost.values()),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="1")
    ap.add_argument("--day", default="2031-02-01")
    args, _ = ap.parse_known_args()
    import psycopg
    from sluice.airflow_api import AirflowApi
    from sluice.connections import pg_dsn

    workdir = Path(tempfile.gettempdir()) / "sluice-tpch"
    say(f"landing lineitem SF{args.scale} as one interval ({args.day})")
    subprocess.run(
        [sys.executable, str(REPO / "demo/land_tpch.py"), "--scale", args.scale, "--tables", "lineitem",
         "--single-day", args.day, "--prefix", "tpch", "--workdir", str(workdir)],
        check=True, capture_output=True,
    )  # fmt: skip
    parquet = workdir / f"sf{float(args.scale):g}" / "lineitem.parquet"
    dsn = pg_dsn("sluice_warehouse")
    load = [os.getloadavg()[0]]
    raw = [raw_copy(dsn, parquet)]
    say(f"raw COPY into a PK table: {raw[0]:.1f} s")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS tpch.lineitem")
    api = AirflowApi.from_env()
    api.wait_for_dag(DAG)
    api.unpause(DAG)
    start = f"{args.day}T00:00:00+00:00"
    end = (date.fromisoformat(args.day) + timedelta(days=1)).isoformat() + "T00:00:00+00:00"
    runs = [run(api, dsn, "first load", (start, end))]
    load.append(os.getloadavg()[0])
    runs.append(run(api, dsn, "re-run (new manual run)", (start, end)))
    load.append(os.getloadavg()[0])
    runs.append(run(api, dsn, "cleared run (REST clear)", (start, end), clear_run=runs[1]["run_id"]))
    load.append(os.getloadavg()[0])
    worst = duplicate_pass_worst_case(api, runs[0]["run_id"])
    say(f"duplicate pass, every chunk treated as overlapping: {worst}")
    raw.append(raw_copy(dsn, parquet))
    say(f"raw COPY again: {raw[1]:.1f} s")
    raw_s = sum(raw) / len(raw)
    first = runs[0]["seconds"]
    gate = runs[0]["timeline"]["stages"].get("quality_gate", {})
    ratios = {
        "first load / raw COPY (target <= 2.5)": round(first / raw_s, 2),
        "re-run / first load (target <= 1.0)": round(runs[1]["seconds"] / first, 2),
        "cleared run / first load (target <= 1.0)": round(runs[2]["seconds"] / first, 2),
        "quality gate task (duplicate pass + checks) / first load (target <= 0.10)": round(
            gate.get("longest", 0) / first, 3
        ),
        "duplicate pass, every chunk overlapping / first load (target <= 0.10)": round(worst["seconds"] / first, 3),
    }
    result = {
        "scale": args.scale,
        "raw_copy_seconds": [round(r, 1) for r in raw],
        "runs": runs,
        "duplicate_pass_worst_case": worst,
        "ratios": ratios,
        "load_average_1min": [round(x, 1) for x in load],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    out = REPO / "bench" / "results" / f"reprocessing-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    ok = all(r["state"] == "success" for r in runs) and all(r["n_tup_ins"] + r["n_tup_upd"] == 0 for r in runs[1:])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
