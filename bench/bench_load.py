"""Load-step benchmark on TPC-H lineitem: Sluice's load path against raw COPY and Airflow's insert_rows, measured
in ONE run on the same database, and printed as ratios (see bench/README.md).

    source /tmp/devsvc/env.sh   # or any shell with AIRFLOW_CONN_SLUICE_WAREHOUSE set
    .venv/bin/python bench/bench_load.py --scale 1

The box is shared (2 cores, other jobs come and go), so the phases are INTERLEAVED chunk by chunk: for each
250k-row chunk, raw COPY of that chunk into a PK table, then Sluice's load_chunk (first run), then load_chunk again
under a new run_id (the re-run), then the same two forcing MERGE, then forcing INSERT .. ON CONFLICT. Every phase thus
sees the same background load, and the sums per phase compare like with like. insert_rows(replace=True) runs on a
subset and is extrapolated. --loaders 2 adds a separate (not interleaved) run with two chunks at a time.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

import psycopg  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from sluice.config import PipelineConfig  # noqa: E402
from sluice.connections import pg_dsn  # noqa: E402
from sluice.interval import Interval  # noqa: E402
from sluice.loading import postgres  # noqa: E402
from sluice.loading.finalize import finalize  # noqa: E402
from sluice.staging import StagingStore, plain_types  # noqa: E402

SCHEMA = "bench_load"
PK = ["l_orderkey", "l_linenumber"]
COLUMNS = [
    ("l_orderkey", "bigint"),
    ("l_partkey", "bigint"),
    ("l_suppkey", "bigint"),
    ("l_linenumber", "integer"),
    ("l_quantity", "numeric(15,2)"),
    ("l_extendedprice", "numeric(15,2)"),
    ("l_discount", "numeric(15,2)"),
    ("l_tax", "numeric(15,2)"),
    ("l_returnflag", "text"),
    ("l_linestatus", "text"),
    ("l_shipdate", "date"),
    ("l_commitdate", "date"),
    ("l_receiptdate", "date"),
    ("l_shipinstruct", "text"),
    ("l_shipmode", "text"),
    ("l_comment", "text"),
]
INTERVAL = Interval(datetime(1992, 1, 1, tzinfo=UTC), datetime(1999, 1, 1, tzinfo=UTC))
TARGETS = {"vs_raw_copy": (">=", 0.6), "vs_insert_rows": (">=", 30.0), "rerun_time_ratio": ("<=", 1.1)}
STRATEGIES = {s.value: s for s in postgres.UpsertStrategy}  # auto (shipped), merge, on_conflict


def say(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


def lineitem(scale: float, data_dir: Path) -> Path:
    """Generate (once) lineitem at this scale with tpchgen-cli from the venv."""
    import subprocess

    out = data_dir / f"sf{scale:g}"
    path = out / "lineitem.parquet"
    if not path.exists():
        say(f"generating lineitem SF{scale:g} with tpchgen-cli into {out}")
        tpchgen = Path(sys.executable).with_name("tpchgen-cli")
        subprocess.run(
            [str(tpchgen), "parquet", "-s", f"{scale:g}", "--tables", "lineitem", "-o", str(out)], check=True
        )
    return path


def config(table: str, staging: Path | str) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": f"bench_{table}",
            "start_date": "1992-01-01",
            "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "tpch/", "format": "parquet"},
            "staging": {"url": f"file://{staging}"},
            "target": {
                "schema": SCHEMA,
                "table": table,
                "primary_key": PK,
                "columns": [{"name": n, "type": t, "nullable": n not in PK} for n, t in COLUMNS],
            },
        }
    )


def counters(conn: psycopg.Connection, table: str, app_prefix: str) -> dict:
    """n_tup_* after the loader backends exited (a backend flushes its statistics when it ends), and the WAL LSN."""
    deadline = time.monotonic() + 30
    while (
        conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", [app_prefix + "%"]
        ).fetchone()[0]
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    conn.execute("SELECT pg_stat_force_next_flush()")
    row = conn.execute(
        "SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s", [SCHEMA, table]
    ).fetchone() or (0, 0)
    return {"n_tup_ins": row[0], "n_tup_upd": row[1]}


def create_pk_table(conn: psycopg.Connection, table: str) -> None:
    cols = ", ".join(f"{n} {t}{' NOT NULL' if n in PK else ''}" for n, t in COLUMNS)
    conn.execute(f"CREATE TABLE {SCHEMA}.{table} ({cols}, PRIMARY KEY ({', '.join(PK)}))")


def raw_copy(conn: psycopg.Connection, part: pa.Table) -> float:
    """The ceiling: COPY of ready CSV bytes (made untimed) into a table with the same primary key."""
    buf = io.BytesIO()
    pacsv.write_csv(part, buf, pacsv.WriteOptions(include_header=False))
    data = buf.getbuffer()
    t0 = time.perf_counter()
    with conn.cursor() as cur, cur.copy(f"COPY {SCHEMA}.raw_copy FROM STDIN (FORMAT csv)") as copy:
        for start in range(0, len(data), 1 << 20):
            copy.write(data[start : start + (1 << 20)])
    return time.perf_counter() - t0


def lsn(conn: psycopg.Connection) -> str:
    return str(conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])


def load(conn, cfg: PipelineConfig, report: dict, run_id: str, strategy: postgres.UpsertStrategy) -> tuple:
    """One load_chunk call: seconds, its result, and the WAL written meanwhile (by anyone on the server)."""
    before = lsn(conn)
    t0 = time.perf_counter()
    with mock.patch.object(postgres, "STRATEGY", strategy):
        result = postgres.load_chunk(cfg, INTERVAL, run_id, report)
    seconds = time.perf_counter() - t0
    wal = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [before]).fetchone()[0]
    return seconds, result, int(wal)


def insert_rows(conn: psycopg.Connection, table: pa.Table, subset: int) -> dict:
    """Airflow's PostgresHook.insert_rows(replace=True) into a PK table; tuples are built untimed."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    create_pk_table(conn, "insert_rows")
    part = table.slice(0, subset)
    rows = list(zip(*(part[c].to_pylist() for c in part.column_names), strict=True))
    hook = PostgresHook(postgres_conn_id="sluice_warehouse")
    quiet = mock.patch.object(
        type(hook),
        "log",
        new_callable=mock.PropertyMock,  # it logs every 1000 rows
        return_value=logging.getLogger("bench.insert_rows"),
    )
    with quiet:
        t0 = time.perf_counter()
        hook.insert_rows(f"{SCHEMA}.insert_rows", rows, target_fields=part.column_names, replace=True, replace_index=PK)
        seconds = time.perf_counter() - t0
    return {"rows": len(rows), "seconds": seconds, "rows_per_second": len(rows) / seconds}


def stage(cfg: PipelineConfig, table: pa.Table, chunk_rows: int) -> list[dict]:
    """Good-rows Parquet files exactly as validation leaves them (untimed), and their ChunkReports."""
    store = StagingStore(cfg.staging, cfg.name, INTERVAL, "staged")
    reports = []
    for i, start in enumerate(range(0, table.num_rows, chunk_rows)):
        part = table.slice(start, chunk_rows)
        key = store.derived_key(i, "good")
        store.write_table(key, part)
        reports.append(
            {"index": i, "rows_in": part.num_rows, "rows_good": part.num_rows, "rows_quarantined": 0, "good_key": key}
        )
    return reports


def interleaved(conn, table, reports, staging: Path, strategies: list[str], chunk_rows: int) -> dict:
    create_pk_table(conn, "raw_copy")
    cfgs = {name: config(f"sluice_{name}", staging) for name in strategies}
    out = {"raw_copy": {"seconds": 0.0}}
    for name in strategies:
        out[name] = {
            phase: {
                "seconds": 0.0,
                "copy_seconds": 0.0,
                "write_seconds": 0.0,
                "wal_bytes": 0,
                "paths": {},
                "results": [],
            }
            for phase in ("first", "rerun")
        }
    for report in reports:
        part = table.slice(report["index"] * chunk_rows, report["rows_in"])
        out["raw_copy"]["seconds"] += raw_copy(conn, part)
        for name in strategies:
            for phase, run_id in (("first", "run-1"), ("rerun", "run-2")):
                seconds, r, wal = load(conn, cfgs[name], report, run_id, STRATEGIES[name])
                p = out[name][phase]
                p["seconds"] += seconds
                p["wal_bytes"] += wal
                p["copy_seconds"] += r["copy_seconds"]
                p["write_seconds"] += r["merge_seconds"]
                p["paths"][r["write_path"]] = p["paths"].get(r["write_path"], 0) + 1
                p["results"].append(r)
        if report["index"] % 4 == 3:
            say(f"  {report['index'] + 1}/{len(reports)} chunks")
    for name in strategies:
        table_name = cfgs[name].target.table
        after = counters(conn, table_name, f"sluice load {cfgs[name].name}#")
        for phase, run_id in (("first", "run-1"), ("rerun", "run-2")):
            p = out[name][phase]
            finalize(cfgs[name], INTERVAL, run_id, p.pop("results"))
        # n_tup_upd counts only updates; every row of the table was inserted by the first run
        out[name]["rerun"]["n_tup_upd"] = after["n_tup_upd"]
        out[name]["rerun"]["n_tup_ins_beyond_first"] = after["n_tup_ins"] - table.num_rows
    return out


def parallel(conn, reports, staging: Path, loaders: int) -> dict:
    """Two (or N) chunks at a time, in whatever order they finish, like mapped tasks on N Celery workers."""
    cfg = config(f"sluice_auto_x{loaders}", staging)
    out = {}
    for phase, run_id in (("first", "run-1"), ("rerun", "run-2")):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(loaders) as pool:
            results = list(pool.map(lambda rep, run=run_id: postgres.load_chunk(cfg, INTERVAL, run, rep), reports))
        out[phase] = {"seconds": time.perf_counter() - t0}
        finalize(cfg, INTERVAL, run_id, results)
    out["rerun"]["n_tup_upd"] = counters(conn, cfg.target.table, f"sluice load {cfg.name}#")["n_tup_upd"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (SF1 = 6,001,215 rows)")
    ap.add_argument("--chunk-rows", type=int, default=250_000, help="rows per staged chunk (config default)")
    ap.add_argument("--subset", type=int, default=200_000, help="rows for insert_rows (then extrapolated)")
    ap.add_argument(
        "--strategy",
        choices=[*STRATEGIES, "all"],
        default="all",
        help="upsert statement(s) to measure; auto is what Sluice ships",
    )
    ap.add_argument("--loaders", type=int, default=0, help="also run the whole load with N chunks at a time")
    ap.add_argument(
        "--shuffle",
        action="store_true",
        help="shuffle rows before chunking, so every chunk's key "
        "range overlaps the table and the first load goes through MERGE instead of a straight COPY",
    )
    ap.add_argument("--data-dir", type=Path, default=REPO / "data" / "tpch")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` drops the bench schema on kill
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("sluice").setLevel(logging.WARNING)
    logging.getLogger("airflow").setLevel(logging.WARNING)

    table = plain_types(pq.read_table(lineitem(args.scale, args.data_dir)))
    if args.shuffle:
        import numpy as np

        table = table.take(np.random.default_rng(0).permutation(table.num_rows))
    strategies = list(STRATEGIES) if args.strategy == "all" else [args.strategy]
    say(
        f"lineitem SF{args.scale:g}: {table.num_rows:,} rows, chunks of {args.chunk_rows:,}"
        + (" (shuffled)" if args.shuffle else "")
        + f"; interleaved: raw COPY, {', '.join(strategies)}"
    )
    report: dict = {
        "scale": args.scale,
        "rows": table.num_rows,
        "chunk_rows": args.chunk_rows,
        "shuffled": args.shuffle,
        "started": datetime.now(UTC).isoformat(),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "note": "2 cores shared with other work; phases interleaved chunk by chunk",
    }
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with (
        psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn,
        tempfile.TemporaryDirectory(dir=args.data_dir) as tmp,
    ):
        report["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        try:
            reports = stage(config("staged", Path(tmp) / "staging"), table, args.chunk_rows)
            report["interleaved"] = interleaved(
                conn, table, reports, Path(tmp) / "staging", strategies, args.chunk_rows
            )
            if args.loaders > 1:
                say(f"{args.loaders} loaders at a time, first load and re-run ...")
                report[f"parallel_x{args.loaders}"] = parallel(conn, reports, Path(tmp) / "staging", args.loaders)
            say(f"PostgresHook.insert_rows(replace=True) on {args.subset:,} rows ...")
            report["insert_rows"] = insert_rows(conn, table, min(args.subset, table.num_rows))
        finally:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            for t in ("load_ledger", "run_summary", "schema_changes"):
                conn.execute(f"DELETE FROM sluice.{t} WHERE pipeline LIKE 'bench_%'")
    report["load_average_end"] = os.getloadavg()
    report["ratios"] = ratios(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"load-sf{args.scale:g}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print_summary(report)
    say(f"results: {path}")
    return 0


def ratios(r: dict) -> dict:
    raw, ir = r["interleaved"]["raw_copy"]["seconds"], r["insert_rows"]["rows_per_second"]
    out = {"raw_copy_vs_insert_rows": r["rows"] / raw / ir}
    for name, run in r["interleaved"].items():
        if name == "raw_copy":
            continue
        out[name] = {
            "vs_raw_copy": raw / run["first"]["seconds"],
            "vs_insert_rows": r["rows"] / run["first"]["seconds"] / ir,
            "rerun_time_ratio": run["rerun"]["seconds"] / run["first"]["seconds"],
            "rerun_n_tup_upd": run["rerun"]["n_tup_upd"],
        }
    for key, run in r.items():
        if key.startswith("parallel_x"):
            out[key] = {
                "vs_raw_copy_interleaved": raw / run["first"]["seconds"],
                "rerun_time_ratio": run["rerun"]["seconds"] / run["first"]["seconds"],
                "rerun_n_tup_upd": run["rerun"]["n_tup_upd"],
            }
    return out


def verdict(value: float, key: str) -> str:
    op, target = TARGETS[key]
    return "ok" if (value >= target if op == ">=" else value <= target) else "MISSED"


def print_summary(r: dict) -> None:
    rows, il, ir, q = r["rows"], r["interleaved"], r["insert_rows"], r["ratios"]
    load = f"{r['load_average_start'][0]:.1f} -> {r['load_average_end'][0]:.1f}"
    print(
        f"\nlineitem SF{r['scale']:g}: {rows:,} rows in {r['chunk_rows']:,}-row chunks, PostgreSQL "
        f"{r['postgres']}, {r['cpus']} cores shared (load average {load})"
    )
    raw = il["raw_copy"]["seconds"]
    print(f"  raw COPY into a PK table        {raw:7.1f} s  {rows / raw:>9,.0f} rows/s")
    for name, run in il.items():
        if name == "raw_copy":
            continue
        for phase in ("first", "rerun"):
            p = run[phase]
            print(
                f"  sluice {name:<11} {phase:<6}     {p['seconds']:7.1f} s  {rows / p['seconds']:>9,.0f} rows/s  "
                f"(COPY {p['copy_seconds']:.1f} s, write {p['write_seconds']:.1f} s, WAL "
                f"{p['wal_bytes'] / 2**20:,.0f} MB, paths {p['paths']})"
            )
    for key, run in r.items():
        if key.startswith("parallel_x"):
            print(
                f"  sluice auto, {key[9:]} loaders (separate)   first {run['first']['seconds']:.1f} s, "
                f"re-run {run['rerun']['seconds']:.1f} s"
            )
    print(
        f"  insert_rows(replace=True)       {ir['seconds']:7.1f} s  {ir['rows_per_second']:>9,.0f} rows/s on "
        f"{ir['rows']:,} rows; EXTRAPOLATED to {rows:,} rows: {rows / ir['rows_per_second']:,.0f} s "
        f"(raw COPY itself is {q['raw_copy_vs_insert_rows']:.0f}x insert_rows)"
    )
    print("\nratios (target)")
    for name, v in q.items():
        if not isinstance(v, dict):
            continue
        parts = []
        if "vs_raw_copy" in v:
            parts += [
                f"load vs raw COPY {v['vs_raw_copy']:.2f}x (>= 0.6x: {verdict(v['vs_raw_copy'], 'vs_raw_copy')})",
                f"vs insert_rows {v['vs_insert_rows']:.0f}x extrapolated (>= 30x: "
                f"{verdict(v['vs_insert_rows'], 'vs_insert_rows')})",
            ]
        else:
            parts.append(f"load vs interleaved raw COPY {v['vs_raw_copy_interleaved']:.2f}x (not interleaved)")
        parts += [
            f"re-run n_tup_upd {v['rerun_n_tup_upd']} (0: {'ok' if v['rerun_n_tup_upd'] == 0 else 'MISSED'})",
            f"re-run time {v['rerun_time_ratio']:.2f}x first (<= 1.1x: "
            f"{verdict(v['rerun_time_ratio'], 'rerun_time_ratio')})",
        ]
        print(f"  {name}: " + "; ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
