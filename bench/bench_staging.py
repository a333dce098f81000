"""Benchmark: stage TPC-H lineitem (SF1 = 6,001,215 rows) from S3 Parquet into Parquet chunks (not a test).

Measures extract_and_stage's rows/s and peak RSS at a given chunk size for 1x the data and for 4x (the same file four
times under the prefix), each run in a fresh subprocess whose peak RSS is its resource.getrusage ru_maxrss. The
issue's targets: peak RSS at 1M-row chunks at most 1.5 GB, and the 4x peak within 10% of the 1x peak (memory bounded by
the chunk, not by the interval).

    source the stack env (AIRFLOW_CONN_SLUICE_S3, PYTHONPATH=include), then
    .venv/bin/python bench/bench_staging.py [--scale 1] [--chunk-rows 1000000] [--copies 1,4] [--keep]

Input is landed by demo/land_tpch.py --single-day under s3://sluice-landing/bench/staging-sf<scale>x<copies>/ and
removed afterwards with the staged output unless --keep. Results: a table on stdout and
bench/results/staging-<UTC timestamp>.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAY = "2030-01-01"
LANDING, STAGING = "sluice-landing", "sluice-staging"


def input_prefix(scale: float, copies: int) -> str:
    return f"bench/staging-sf{scale:g}x{copies}"


def child(scale: float, copies: int, chunk_rows: int) -> dict:
    """One measured run, in this (fresh) process."""
    sys.path.insert(0, str(REPO / "include"))
    from sluice.config import PipelineConfig
    from sluice.interval import Interval
    from sluice.staging import extract_and_stage

    logging.basicConfig(level=logging.WARNING)
    cfg = PipelineConfig.model_validate(
        {
            "name": "bench_lineitem",
            "start_date": DAY,
            "source": {
                "kind": "s3",
                "bucket": LANDING,
                "prefix": input_prefix(scale, copies) + "/lineitem/{{ ds }}/",
                "format": "parquet",
            },
            "staging": {"url": f"s3://{STAGING}/bench", "conn_id": "sluice_s3", "chunk_rows": chunk_rows},
            "target": {
                "table": "lineitem",
                "primary_key": ["l_orderkey"],
                "columns": [{"name": "l_orderkey", "type": "bigint", "nullable": False}],
            },
        }
    )
    start = datetime.fromisoformat(DAY).replace(tzinfo=UTC)
    interval = Interval(start, start + timedelta(days=1))
    from sluice.sources.s3 import arrow_s3_filesystem

    arrow_s3_filesystem("sluice_s3")  # imports Airflow and starts the AWS SDK outside the timed part
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    chunks = extract_and_stage(cfg, interval, f"bench_x{copies}_c{chunk_rows}", 1)
    seconds = time.monotonic() - started
    rows = sum(c["rows"] for c in chunks)
    return {
        "copies": copies,
        "chunk_rows": chunk_rows,
        "rows": rows,
        "chunks": len(chunks),
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": baseline / 1024,
    }


def run_child(scale: float, copies: int, chunk_rows: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--scale",
        f"{scale:g}",
        "--copies",
        str(copies),
        "--chunk-rows",
        str(chunk_rows),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def land(scale: float, copies: int) -> None:
    subprocess.run(
        [
            sys.executable,
            str(REPO / "demo" / "land_tpch.py"),
            "--scale",
            f"{scale:g}",
            "--tables",
            "lineitem",
            "--single-day",
            DAY,
            "--copies",
            str(copies),
            "--prefix",
            input_prefix(scale, copies),
        ],
        check=True,
        capture_output=True,
    )


def cleanup(prefixes: list[tuple[str, str]]) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id="sluice_s3")
    client = hook.get_conn()
    for bucket, prefix in prefixes:
        keys = hook.list_keys(bucket_name=bucket, prefix=prefix) or []
        for i in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--chunk-rows", default="1000000", help="comma-separated chunk sizes")
    p.add_argument("--copies", default="1,4", help="comma-separated data multiples")
    p.add_argument("--keep", action="store_true", help="keep the landed input and staged output in S3")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.scale, int(args.copies), int(args.chunk_rows))))
        return 0

    sys.path.insert(0, str(REPO / "include"))
    copies = [int(c) for c in args.copies.split(",")]
    sizes = [int(c) for c in args.chunk_rows.split(",")]
    results = []
    try:
        for n in copies:
            t = time.monotonic()
            land(args.scale, n)
            print(f"landed SF{args.scale:g} lineitem x{n} in {time.monotonic() - t:.0f}s", flush=True)
            for size in sizes:
                results.append(run_child(args.scale, n, size))
                r = results[-1]
                print(
                    f"  chunk_rows={size:,}: {r['rows']:,} rows in {r['seconds']:.1f}s, "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    finally:
        if not args.keep:
            cleanup([(LANDING, input_prefix(args.scale, n) + "/") for n in copies] + [(STAGING, "bench/")])

    print()
    print(
        f"lineitem SF{args.scale:g} from s3://{LANDING} (moto), staged to s3://{STAGING}; "
        f"RSS after imports {results[0]['rss_before_mb']:.0f} MB"
        if results
        else "no results"
    )
    print(
        f"{'data':>5} {'chunk_rows':>11} {'rows':>12} {'chunks':>7} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12}"
    )
    for r in results:
        print(
            f"{r['copies']:>4}x {r['chunk_rows']:>11,} {r['rows']:>12,} {r['chunks']:>7} {r['seconds']:>8.1f} "
            f"{r['rows_per_s']:>10,.0f} {r['peak_rss_mb']:>12,.0f}"
        )
    for size in sizes:
        peaks = {r["copies"]: r["peak_rss_mb"] for r in results if r["chunk_rows"] == size}
        if 1 in peaks and len(peaks) > 1:
            ratio = max(peaks.values()) / peaks[1]
            print(
                f"chunk_rows={size:,}: peak RSS {max(peaks.values()) / 1024:.2f} GB max "
                f"(target <= 1.5 GB at 1M rows); largest/1x peak = {ratio:.3f} (target <= 1.10)"
            )

    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"staging-{stamp}.json"
    path.write_text(json.dumps({"scale": args.scale, "host_cpus": os.cpu_count(), "results": results}, indent=2))
    print(f"saved {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
