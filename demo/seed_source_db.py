"""Seed the demo's source PostgreSQL database with TPC-H orders (tpchgen-cli), for the `sql_orders` pipeline.

The table is rebuilt in one transaction (drop, create, COPY, index), so a reader never sees it half-loaded; a
table already seeded with the same settings (recorded in its COMMENT) is left alone, so re-running is cheap.
TPC-H order dates run from 1992-01-01 to 1998-08-02; `--shift-to 2024-06-30` moves them so the last one lands on
that day, which gives a daily schedule recent, non-empty intervals.

    python demo/seed_source_db.py [--conn-id sluice_source_db] [--scale 0.01] [--table public.orders]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

log = logging.getLogger("seed_source_db")

TPCH_LAST_ORDER_DATE = date(1998, 8, 2)
COLUMNS = """
    o_orderkey bigint PRIMARY KEY,
    o_custkey bigint NOT NULL,
    o_orderstatus char(1) NOT NULL,
    o_totalprice numeric(15,2) NOT NULL,
    o_orderdate date NOT NULL,
    o_orderpriority text NOT NULL,
    o_clerk text NOT NULL,
    o_shippriority integer NOT NULL,
    o_comment text NOT NULL
"""


def generate_orders(scale: float, out_dir: Path) -> Path:
    exe = Path(sys.executable).with_name("tpchgen-cli")
    cmd = [str(exe) if exe.exists() else "tpchgen-cli", "csv", "-s", str(scale), "-T", "orders", "-o", str(out_dir)]
    subprocess.run(cmd, check=True)
    return out_dir / "orders.csv"


def _table(name: str) -> sql.Composable:
    return sql.Identifier(*name.split("."))


def seed(dsn: str, scale: float, table: str, shift_to: date | None, force: bool = False) -> int:
    """Rebuild `table` with TPC-H orders at `scale`; returns the row count."""
    marker = f"tpch orders sf={scale} shift_to={shift_to}"
    with psycopg.connect(dsn) as conn:
        current = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", [table]).fetchone()[0]
        if current == marker and not force:
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_table(table))).fetchone()[0]
            log.info("%s already seeded (%s, %d rows)", table, marker, count)
            return count
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            path = generate_orders(scale, Path(tmp))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_table(table)))
            conn.execute(sql.SQL("CREATE TABLE {} (" + COLUMNS + ")").format(_table(table)))
            copy = sql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER true)").format(_table(table))
            with conn.cursor().copy(copy) as cp, open(path, "rb") as f:
                while block := f.read(1 << 20):
                    cp.write(block)
        if shift_to:
            days = (shift_to - TPCH_LAST_ORDER_DATE).days
            conn.execute(sql.SQL("UPDATE {} SET o_orderdate = o_orderdate + %s").format(_table(table)), [days])
        index = sql.Identifier(f"{table.split('.')[-1]}_o_orderdate_idx")
        conn.execute(sql.SQL("CREATE INDEX {} ON {} (o_orderdate)").format(index, _table(table)))
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(_table(table), sql.Literal(marker)))
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_table(table))).fetchone()[0]
        conn.commit()
    conn.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(_table(table)))
    log.info("seeded %s with %d orders (%s) in %.1fs", table, count, marker, time.monotonic() - started)
    return count


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conn-id", default="sluice_source_db", help="Airflow connection of the source database")
    p.add_argument("--dsn", help="libpq URI instead of --conn-id")
    p.add_argument("--scale", type=float, default=0.01, help="TPC-H scale factor (0.01 = 15,000 orders)")
    p.add_argument("--table", default="public.orders")
    p.add_argument("--shift-to", type=date.fromisoformat, help="move order dates so the last is this day")
    p.add_argument("--force", action="store_true", help="rebuild even when already seeded the same way")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.dsn:
        dsn = args.dsn
    else:
        from sluice.connections import pg_dsn

        dsn = pg_dsn(args.conn_id)
    print(seed(dsn, args.scale, args.table, args.shift_to, args.force))


if __name__ == "__main__":
    main()
