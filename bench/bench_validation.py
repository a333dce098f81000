"""validate_chunk throughput (rows/s) on ~1M TPC-H lineitem rows with >= 5 expectations.

The chunk is what a CSV source stages: every column a string, so the cast does real work (bigint, integer,
numeric(15,2), date, text). A small share of rows is broken on purpose (0.1% bad quantity, 0.1% impossible date,
0.05% discount out of range) so that the cast, GX's unexpected_index_list and the quarantine write are all exercised.
Staging is file:// in a temporary directory; quarantine rows go to the warehouse of AIRFLOW_CONN_SLUICE_WAREHOUSE.

    source /tmp/devsvc/env.sh && .venv/bin/python bench/bench_validation.py [--rows 1000000]

Prints the figures and writes bench/results/validation-<utc time>.json. GX's import and context set-up happen once
per worker process; they are measured separately (warm-up) and not counted in the throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
RESULTS = ROOT / "bench" / "results"
COLUMNS = [
    ("l_orderkey", "bigint", False),
    ("l_partkey", "bigint", True),
    ("l_suppkey", "bigint", True),
    ("l_linenumber", "integer", False),
    ("l_quantity", "numeric(15,2)", True),
    ("l_extendedprice", "numeric(15,2)", True),
    ("l_discount", "numeric(15,2)", True),
    ("l_tax", "numeric(15,2)", True),
    ("l_returnflag", "text", True),
    ("l_linestatus", "text", True),
    ("l_shipdate", "date", True),
    ("l_commitdate", "date", True),
    ("l_receiptdate", "date", True),
    ("l_shipinstruct", "text", True),
    ("l_shipmode", "text", True),
    ("l_comment", "text", True),
]
EXPECTATIONS = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "l_orderkey"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "l_quantity", "min_value": 1, "max_value": 50}},
    {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "l_discount", "min_value": 0, "max_value": 0.1},
    },
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "l_returnflag", "value_set": ["A", "N", "R"]}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "l_linestatus", "value_set": ["O", "F"]}},
    {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "l_shipmode", "value_set": ["AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK"]},
    },
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
]


def lineitem(rows: int) -> pa.Table:
    """~rows lineitem rows as strings (tpchgen-cli, cached under bench/results/validation-data)."""
    parts = max(1, round(6_001_215 / rows))
    out = RESULTS / "validation-data" / f"lineitem-part1-of{parts}"
    files = sorted(out.glob("lineitem/*.csv")) + sorted(out.glob("lineitem.csv"))
    if not files:
        out.mkdir(parents=True, exist_ok=True)
        cli = Path(sys.executable).with_name("tpchgen-cli")
        subprocess.run(
            [str(cli), "csv", "-s", "1", "--tables", "lineitem", "--parts", str(parts), "--part", "1", "-o", str(out)],
            check=True,
        )
        files = sorted(out.glob("lineitem/*.csv")) + sorted(out.glob("lineitem.csv"))
    names = [c[0] for c in COLUMNS]
    table = pacsv.read_csv(
        files[0],
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False),
    )
    return table.slice(0, rows)


def spoil(table: pa.Table) -> tuple[pa.Table, int]:
    """Break a few rows on purpose (disjoint sets); returns the table and how many rows were broken."""
    n = table.num_rows
    bad = np.random.default_rng(7).choice(n, size=n // 400, replace=False)  # 0.25% in all
    for col, rows, value in (
        ("l_quantity", bad[: n // 1000], "abc"),
        ("l_shipdate", bad[n // 1000 : n // 500], "1996-02-30"),
        ("l_discount", bad[n // 500 :], "0.50"),
    ):
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        column = pc.if_else(pa.array(mask), pa.scalar(value), table[col])
        table = table.set_column(table.column_names.index(col), col, column)
    return table, len(bad)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="validate the chunk this many times; the best run counts")
    args = ap.parse_args()

    from sluice.config import PipelineConfig
    from sluice.connections import pg_dsn
    from sluice.interval import Interval
    from sluice.staging import StagingStore
    from sluice.validate.cast import cast_table
    from sluice.validate.chunk import validate_chunk
    from sluice.validate.suite import _batch_definition, _registry

    t0 = time.perf_counter()
    table, broken = spoil(lineitem(args.rows))
    print(
        f"data: {table.num_rows} lineitem rows as strings, {broken} broken on purpose "
        f"({time.perf_counter() - t0:.1f}s to prepare)"
    )
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        cfg = PipelineConfig.model_validate(
            {
                "name": "bench_validation",
                "start_date": "2024-01-01",
                "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "bench/", "format": "csv"},
                "staging": {"url": f"file://{tmp}", "chunk_rows": table.num_rows},
                "target": {
                    "table": "lineitem",
                    "primary_key": ["l_orderkey", "l_linenumber"],
                    "columns": [{"name": n, "type": t, "nullable": nl} for n, t, nl in COLUMNS],
                },
                "expectations": EXPECTATIONS,
                "quality": {"max_quarantine_fraction": 0.05},
            }
        )
        interval = Interval(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
        run_id = f"bench_{datetime.now(UTC):%Y%m%dT%H%M%S}"
        store = StagingStore(cfg.staging, cfg.name, interval, run_id)
        ref = store.write_chunk(0, table)

        w0 = time.perf_counter()  # once per task process: GX import + context, Airflow's hook import, first suite
        _registry(), _batch_definition(), pg_dsn(cfg.target.conn_id)
        validate_chunk(cfg, interval, run_id, store.write_chunk(1, table.slice(0, 100)))
        warmup = time.perf_counter() - w0

        c0 = time.perf_counter()
        cast = cast_table(table, cfg.target.columns, cfg.target.on_extra_columns)
        cast_s = time.perf_counter() - c0

        runs = []
        for _ in range(args.repeat):
            v0 = time.perf_counter()
            report = validate_chunk(cfg, interval, run_id, ref)
            runs.append(time.perf_counter() - v0)
        best = min(runs)
        rows_in = report["rows_in"]
        task_rss, task_seconds = _cold_task(cfg, interval, run_id, ref)
        row_level = sum(1 for e in EXPECTATIONS if not e["type"].startswith("expect_table"))
        result = {
            "bench": "validate_chunk",
            "when": datetime.now(UTC).isoformat(),
            "rows": rows_in,
            "expectations": len(EXPECTATIONS),
            "row_level_expectations": row_level,
            "columns": len(COLUMNS),
            "broken_rows": broken,
            "rows_good": report["rows_good"],
            "rows_quarantined": report["rows_quarantined"],
            "seconds": [round(s, 3) for s in runs],
            "rows_per_second": round(rows_in / best),
            "cast_only_seconds": round(cast_s, 3),
            "cast_only_rows_per_second": round(rows_in / cast_s),
            "cast_bad_rows": cast.bad_count,
            "one_time_seconds_per_process": round(warmup, 3),
            "quarantine_reasons": report["quarantine_reasons"],
            "task_peak_rss_mb": task_rss,
            "cold_task_seconds": round(task_seconds, 3),
            "bench_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "load_average_1m": os.getloadavg()[0],
            "cpus": os.cpu_count(),
        }
    assert report["rows_quarantined"] == broken, (report["rows_quarantined"], broken)
    print(
        f"validate_chunk: {rows_in} rows, {len(EXPECTATIONS)} expectations ({row_level} row-level), "
        f"{report['rows_quarantined']} quarantined: best of {len(runs)} {best:.2f}s = "
        f"{rows_in / best:,.0f} rows/s"
    )
    print(
        f"  of which cast_table alone: {cast_s:.2f}s = {rows_in / cast_s:,.0f} rows/s; "
        f"one-time cost per task process (imports, GX context, first suite): {warmup:.1f}s"
    )
    print(
        f"  one cold task (fresh interpreter, as a Celery task runs it, imports included): {task_seconds:.1f}s, "
        f"peak RSS {task_rss} MB"
    )
    print(
        f"  load average {result['load_average_1m']:.2f} on {result['cpus']} CPUs "
        "(other work on the machine slows every figure)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"validation-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)}")
    _cleanup(cfg.name, run_id)


_CHILD = """
import json, sys
sys.path.insert(0, {include!r})
from sluice.config import PipelineConfig
from sluice.interval import Interval
import time
import airflow.providers.postgres.hooks.postgres  # a task process has Airflow loaded before the task starts
args = json.loads(sys.stdin.read())
start = time.perf_counter()
from sluice.validate.chunk import validate_chunk
validate_chunk(PipelineConfig.model_validate(args["cfg"]), Interval.from_dict(args["interval"]), args["run_id"],
               args["ref"])
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so it would include the forking parent's RSS
hwm = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(hwm, seconds)
"""


def _cold_task(cfg, interval, run_id: str, ref: dict) -> tuple[int, float]:
    """Peak RSS (MB) and seconds of validate_chunk in a fresh interpreter that has only Airflow loaded, as a task
    process starts: GX's import and context are paid by every mapped task."""
    payload = json.dumps(
        {
            "cfg": cfg.model_dump(mode="json", by_alias=True),
            "interval": interval.to_dict(),
            "run_id": run_id,
            "ref": ref,
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(include=str(ROOT / "include"))],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
    )
    rss, seconds = out.stdout.strip().splitlines()[-1].split()
    return round(int(rss) / 1024), float(seconds)


def _cleanup(pipeline: str, run_id: str) -> None:
    """Remove the bench's rows from sluice.quarantine."""
    import psycopg
    from sluice.connections import pg_dsn

    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn:
        conn.execute("DELETE FROM sluice.quarantine WHERE pipeline = %s AND run_id = %s", (pipeline, run_id))


if __name__ == "__main__":
    main()
