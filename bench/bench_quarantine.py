"""Quarantine figures (issue 11), on the warehouse of the running stack (AIRFLOW_CONN_SLUICE_WAREHOUSE):

1. `quarantine list` over 1,000,000 quarantined rows (target: under 1 s), for the filters the command offers.
2. Replay of N rows (default 100,000) vs the first load of the same rows, measured in the same run (target >= 0.5x):
   first load = validate_chunk + load_chunk of the staged chunk into an empty table; replay = the same rows
   quarantined by an expectation, the expectation dropped, `replay()` into another empty table.

    .venv/bin/python bench/bench_quarantine.py [--list-rows 1000000] [--replay-rows 100000]

Everything it writes (pipelines bench_q_*, schema bench_quarantine) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from sluice.config import PipelineConfig  # noqa: E402
from sluice.connections import pg_dsn  # noqa: E402
from sluice.interval import Interval  # noqa: E402
from sluice.loading.sql import quarantine as qs  # noqa: E402
from sluice.loading.sql import quarantine_counts as qc  # noqa: E402
from sluice.validate.quarantine import compact_counts, ensure_quarantine_table  # noqa: E402

SCHEMA = "bench_quarantine"
INTERVAL = Interval(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))
REASONS = [
    "cast price: not a decimal",
    "expect_column_values_to_be_in_set(status)",
    "expect_column_values_to_be_between(price)",
    "parse: expected 3 columns, got 2",
    "cast id: null in non-nullable column",
]


def fill(dsn: str, pipeline: str, rows: int) -> None:
    """rows quarantine rows over 200 daily intervals, 5 reasons, 4 statuses, 10 generations."""
    base = datetime(2023, 1, 1, tzinfo=UTC)
    statuses = ["pending"] * 6 + ["superseded", "superseded", "replayed", "discarded"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_quarantine_table(conn)
        with (
            conn.transaction(),
            conn.cursor().copy(
                qs.sql.SQL("COPY {} ({}, status) FROM STDIN").format(
                    qs.qualified(qs.META, qs.QUARANTINE_TABLE), qs._cols(qs.COPY_COLUMNS)
                )
            ) as copy,
        ):
            for i in range(rows):
                day = base + timedelta(days=i % 200)
                reason = REASONS[i % 5]
                copy.write_row(
                    (
                        pipeline if i % 4 else pipeline + "_other",
                        f"scheduled__{day:%Y-%m-%d}",
                        i % 10,
                        day,
                        day + timedelta(days=1),
                        i % 8,
                        i,
                        f"s3://landing/orders/{day:%Y-%m-%d}/part-{i % 8}.csv",
                        i + 2,
                        reason.split()[0] if not reason.startswith("expect") else "expectation",
                        reason,
                        json.dumps({"id": str(i), "status": "x", "price": "-1"}),
                        json.dumps([{"kind": "cast", "column": "price", "value": "-1", "reason": "x"}]),
                        statuses[i % 10],
                    )
                )
        conn.execute("VACUUM ANALYZE sluice.quarantine")  # what autovacuum does after a bulk insert


def bench_list(dsn: str, rows: int) -> dict:
    pipeline = f"bench_q_{uuid.uuid4().hex[:6]}"
    t0 = time.perf_counter()
    fill(dsn, pipeline, rows)
    fill_s = time.perf_counter() - t0
    cases = {
        "no filter": {},
        "--pipeline": {"pipeline": pipeline},
        "--pipeline --status pending": {"pipeline": pipeline, "status": "pending"},
        "--status pending --since": {"status": "pending", "since": datetime(2023, 6, 1, tzinfo=UTC)},
        "--reason in_set": {"reason": "in_set"},
    }
    out = {"rows": rows, "fill_seconds": round(fill_s, 1)}
    with psycopg.connect(dsn, autocommit=True) as conn:
        first = True
        for label, params in cases.items():
            full = {"pipeline": None, "status": None, "since": None, "until": None, "reason": None, **params}
            if first:  # the first listing after the fill also folds the fill's deltas
                out["first listing after the fill"] = round(_timed(conn, full), 3)
                print(f"quarantine list {'(first, folds the deltas)':32s} {out['first listing after the fill']:6.3f} s")
                first = False
            best = min(_timed(conn, full) for _ in range(3))
            out[label] = round(best, 3)
            print(f"quarantine list {label:32s} {best:6.3f} s  (target < 1 s)")
        wrong = conn.execute(qc.counts_versus_rows()).fetchall()
        assert not wrong, f"kept counts differ from the rows: {wrong[:5]}"
        out["trigger_copy_overhead"] = copy_overhead(conn, pipeline)
        conn.execute("DELETE FROM sluice.quarantine WHERE pipeline IN (%s, %s)", (pipeline, pipeline + "_other"))
    return out


def _timed(conn, params) -> float:
    """What `quarantine list` does against the warehouse: fold new deltas, then read the counts."""
    t = time.perf_counter()
    compact_counts(conn)
    conn.execute(qs.quarantine_list(), params).fetchall()
    return time.perf_counter() - t


def copy_overhead(conn, pipeline: str, rows: int = 100_000, rounds: int = 3) -> dict:
    """What the count triggers add to a COPY into the quarantine: the same rows copied with the triggers and with
    them disabled, interleaved, each inside a transaction that is rolled back."""
    cols = qs._cols(qs.COPY_COLUMNS)
    copy = qs.sql.SQL("COPY {} ({}) FROM STDIN").format(qs.qualified(qs.META, qs.QUARANTINE_TABLE), cols)
    day = datetime(2023, 1, 1, tzinfo=UTC)
    data = [
        (pipeline, "r", 99, day, day + timedelta(days=1), 0, i, "s", i, "cast", REASONS[i % 5], "{}", "[]")
        for i in range(rows)
    ]
    times: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(rounds):
        for side in ("with", "without"):
            with conn.transaction(force_rollback=True):
                if side == "without":
                    conn.execute("ALTER TABLE sluice.quarantine DISABLE TRIGGER USER")
                t = time.perf_counter()
                with conn.cursor().copy(copy) as cp:
                    for row in data:
                        cp.write_row(row)
                times[side].append(time.perf_counter() - t)
    a, b = min(times["without"]), min(times["with"])
    print(f"COPY of {rows:,} quarantine rows: {a:.2f} s without the count triggers, {b:.2f} s with ({b / a:.2f}x)")
    return {"rows": rows, "without_s": round(a, 3), "with_s": round(b, 3), "ratio": round(b / a, 3)}


def _cfg(name: str, staging: str, table: str, expectations: list) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": name,
            "start_date": "2024-01-01",
            "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "x/", "format": "csv"},
            "staging": {"url": staging, "chunk_rows": 10_000_000},
            "target": {
                "schema": SCHEMA,
                "table": table,
                "primary_key": ["id"],
                "columns": [
                    {"name": "id", "type": "bigint", "nullable": False},
                    {"name": "status", "type": "text"},
                    {"name": "price", "type": "numeric(10,2)"},
                    {"name": "day", "type": "date"},
                ],
            },
            "expectations": expectations,
            "quality": {"max_quarantine_fraction": 1.0},
        }
    )


def bench_replay(dsn: str, n: int) -> dict:
    from sluice.loading.postgres import load_chunk
    from sluice.sources.base import with_origin
    from sluice.staging import StagingStore
    from sluice.validate.chunk import validate_chunk
    from sluice.validate.replay import replay

    raw = pa.table(
        {
            "id": [str(i) for i in range(n)],
            "status": ["new"] * n,
            "price": [f"{i % 1000}.25" for i in range(n)],
            "day": ["2024-03-01"] * n,
        }
    )
    raw = pa.Table.from_batches([with_origin(b, "s3://landing/x.csv", 2) for b in raw.to_batches()])
    strict = [{"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["paid"]}}]
    tag = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory() as tmp, psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        first = _cfg(f"bench_q_first_{tag}", f"file://{tmp}", "first_load", [])
        ref = StagingStore(first.staging, first.name, INTERVAL, "run1", 1).write_chunk(0, raw)
        t0 = time.perf_counter()
        report = validate_chunk(first, INTERVAL, "run1", {**ref, "generation": 1})
        load_chunk(first, INTERVAL, "run1", report)
        first_s = time.perf_counter() - t0

        name = f"bench_q_replay_{tag}"
        quarantining = _cfg(name, f"file://{tmp}", "replayed", strict)
        ref = StagingStore(quarantining.staging, name, INTERVAL, "run1", 2).write_chunk(0, raw)
        report = validate_chunk(quarantining, INTERVAL, "run1", {**ref, "generation": 2})
        assert report["rows_quarantined"] == n, report
        load_chunk(quarantining, INTERVAL, "run1", report)
        fixed = _cfg(name, f"file://{tmp}", "replayed", [])
        params = {"pipeline": name, "status": None, "since": None, "until": None, "reason": None}
        t0 = time.perf_counter()
        result = replay(fixed, dsn, params)
        replay_s = time.perf_counter() - t0
        assert result.loaded == n, result.to_dict()
        conn.execute("DELETE FROM sluice.quarantine WHERE pipeline IN (%s, %s)", (first.name, name))
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    ratio = (n / replay_s) / (n / first_s)
    print(
        f"first load (validate + load) of {n} rows: {first_s:.2f} s ({n / first_s:,.0f} rows/s); replay: "
        f"{replay_s:.2f} s ({n / replay_s:,.0f} rows/s); replay / first load throughput = {ratio:.2f}x (target >= 0.5x)"
    )
    return {"rows": n, "first_load_seconds": round(first_s, 2), "replay_seconds": round(replay_s, 2), "ratio": ratio}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--list-rows", type=int, default=1_000_000)
    p.add_argument("--replay-rows", type=int, default=100_000)
    p.add_argument("--conn-id", default="sluice_warehouse")
    p.add_argument("--skip-replay", action="store_true", help="only the listing figures")
    args, _ = p.parse_known_args()  # make bench passes the same arguments to every benchmark
    dsn = pg_dsn(args.conn_id)
    results = {"list": bench_list(dsn, args.list_rows)}
    if not args.skip_replay:
        results["replay"] = bench_replay(dsn, args.replay_rows)
    out = Path(__file__).parent / "results" / "bench_quarantine.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
