"""Land TPC-H demo data (tpchgen-cli) in the landing bucket, split into daily folders, through the sluice_s3
Airflow connection:

    s3://sluice-landing/tpch/orders/<YYYY-MM-DD>/part-0.csv.gz     orders by o_orderdate, gzip CSV with a header
    s3://sluice-landing/tpch/lineitem/<YYYY-MM-DD>/part-0.parquet  lineitem by l_shipdate, Parquet

Only the days in [--start, --start + --days) are landed, so the demo stays quick; TPC-H dates run from 1992-01-01 to
1998-12-01 (orders end 1998-08-02). Generated files are cached in --workdir, and landing again overwrites the same
keys. For the staging benchmark, --single-day puts the whole lineitem file (no split) under one day folder, --copies
times (part-0.parquet, part-1.parquet, ...):

    python demo/land_tpch.py --scale 0.01 --days 3 --start 1995-01-01
    python demo/land_tpch.py --scale 1 --tables lineitem --single-day 2030-01-01 --prefix bench/sf1x4 --copies 4
"""

from __future__ import annotations

import argparse
import gzip
import logging
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

log = logging.getLogger("land_tpch")

DATE_COLUMN = {"orders": "o_orderdate", "lineitem": "l_shipdate"}
FORMAT = {"orders": "csv.gz", "lineitem": "parquet"}


def generate(scale: float, tables: list[str], workdir: Path) -> dict[str, Path]:
    """tpchgen-cli Parquet files for the tables, generated once per scale and cached in workdir."""
    out = workdir / f"sf{scale:g}"
    paths = {t: out / f"{t}.parquet" for t in tables}
    missing = [t for t, p in paths.items() if not p.exists()]
    if missing:
        exe = Path(sys.executable).with_name("tpchgen-cli")
        cmd = [
            str(exe) if exe.exists() else "tpchgen-cli",
            "parquet",
            "-s",
            f"{scale:g}",
            "--tables",
            ",".join(missing),
            "--output-dir",
            str(out),
            "--overwrite",
            "--no-progress",
            "-q",
        ]
        started = time.monotonic()
        subprocess.run(cmd, check=True)
        log.info("generated TPC-H SF%g %s in %.1fs", scale, ",".join(missing), time.monotonic() - started)
    return paths


def plain(table: pa.Table) -> pa.Table:
    """string_view -> string: pyarrow's CSV writer rejects view types."""
    return table.cast(
        pa.schema([f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in table.schema])
    )


def encode(table: pa.Table, fmt: str) -> bytes:
    sink = pa.BufferOutputStream()
    if fmt == "csv.gz":
        with pa.CompressedOutputStream(sink, "gzip") as gz:
            pcsv.write_csv(plain(table), gz)
    else:
        pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def daily_tables(path: Path, column: str, start: date, days: int):
    """(day, rows of that day) for each day in [start, start + days); only the range is held in memory.
    Columns come out as plain string (compute kernels do not filter string_view)."""
    end = start + timedelta(days=days)
    parts = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=256_000):
        batch = plain(pa.Table.from_batches([batch]))
        dates = batch[column]
        parts.append(batch.filter(pc.and_(pc.greater_equal(dates, pa.scalar(start)), pc.less(dates, pa.scalar(end)))))
    table = pa.concat_tables(parts)
    for i in range(days):
        day = start + timedelta(days=i)
        yield day, table.filter(pc.equal(table[column], pa.scalar(day)))


# Three orders a real feed would send now and then, landed beside the first day's file when that day is big enough
# for them to stay under tpch_orders' max_quarantine_fraction (1 %): they show what quarantine keeps and why.
BAD_ORDERS = (
    b"o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,o_orderpriority,o_clerk,o_shippriority,o_comment\n"
    b"900000001,1,O,-12.50,{day},1-URGENT,Clerk#000000001,0,negative price\n"
    b"900000002,1,X,100.00,{day},2-HIGH,Clerk#000000001,0,unknown status\n"
    b"900000003,1,O,100.00,{day}\n"
)
MIN_ROWS_FOR_BAD = 400  # 3 of >= 400 rows: under 0.75 %


def land_daily(hook, bucket: str, prefix: str, paths: dict[str, Path], start: date, days: int) -> int:
    total = 0
    for name, path in paths.items():
        fmt = FORMAT[name]
        for day, table in daily_tables(path, DATE_COLUMN[name], start, days):
            key = f"{prefix}/{name}/{day.isoformat()}/part-0.{fmt}"
            hook.load_bytes(encode(table, fmt), key=key, bucket_name=bucket, replace=True)
            log.info("s3://%s/%s: %d rows", bucket, key, table.num_rows)
            total += table.num_rows
            bad_key = f"{prefix}/{name}/{day.isoformat()}/part-bad.csv.gz"
            if name == "orders" and day == start and table.num_rows >= MIN_ROWS_FOR_BAD:
                data = gzip.compress(BAD_ORDERS.replace(b"{day}", day.isoformat().encode()), mtime=0)
                hook.load_bytes(data, key=bad_key, bucket_name=bucket, replace=True)
                log.info("s3://%s/%s: 3 bad rows (negative price, unknown status, ragged line)", bucket, bad_key)
                total += 3
            elif name == "orders" and hook.check_for_key(bad_key, bucket_name=bucket):
                hook.delete_objects(bucket=bucket, keys=[bad_key])  # a smaller re-land of the day: too many bad
    return total


def land_single_day(hook, bucket: str, prefix: str, paths: dict[str, Path], day: date, copies: int) -> int:
    """Whole files, unsplit, under one day folder (the staging benchmark's input); Parquet as generated."""
    total = 0
    for name, path in paths.items():
        rows = pq.ParquetFile(path).metadata.num_rows
        for i in range(copies):
            key = f"{prefix}/{name}/{day.isoformat()}/part-{i}.parquet"
            if i == 0:
                hook.load_file(str(path), key=key, bucket_name=bucket, replace=True)
                first = key
            else:  # server-side copy: no second upload
                hook.copy_object(
                    source_bucket_key=first, dest_bucket_key=key, source_bucket_name=bucket, dest_bucket_name=bucket
                )
            log.info("s3://%s/%s: %d rows (%.0f MB)", bucket, key, rows, path.stat().st_size / 1e6)
            total += rows
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=0.01, help="TPC-H scale factor (0.01: 15k orders, 60k lineitems)")
    p.add_argument("--start", type=date.fromisoformat, default=date(1995, 1, 1), help="first day to land")
    p.add_argument("--days", type=int, default=3, help="number of days to land from --start")
    p.add_argument("--tables", default="orders,lineitem", help="comma-separated: orders, lineitem")
    p.add_argument("--bucket", default="sluice-landing")
    p.add_argument("--prefix", default="tpch", help="key prefix; files go to <prefix>/<table>/<day>/")
    p.add_argument("--conn-id", default="sluice_s3", help="Airflow AWS connection")
    p.add_argument("--single-day", type=date.fromisoformat, help="land whole unsplit Parquet files under this day")
    p.add_argument("--copies", type=int, default=1, help="with --single-day: the same file this many times")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sluice-tpch",
        help="where generated files are cached",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = sorted(set(tables) - set(DATE_COLUMN))
    if unknown:
        p.error(f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(DATE_COLUMN)}")

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=args.conn_id)
    paths = generate(args.scale, tables, args.workdir)
    if args.single_day:
        rows = land_single_day(hook, args.bucket, args.prefix, paths, args.single_day, args.copies)
    else:
        rows = land_daily(hook, args.bucket, args.prefix, paths, args.start, args.days)
    log.info("landed %d rows in s3://%s/%s/", rows, args.bucket, args.prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
