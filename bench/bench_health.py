"""The Sluice page's data request (not a test): 200 pipelines x 365 daily intervals of generated history, target
under 1 s.

What is timed, in one process against the stack's warehouse: `sluice.health.report.overview_from` (the overview
statement, the pipeline files, lag and deadline arithmetic) plus the HTML of the page, i.e. everything the
/sluice/ route does but the TCP connect; and the pipeline page of one pipeline (history, load seconds, quarantine
reasons, schema changes). The history is written inside one transaction that is rolled back at the end, so the
warehouse keeps nothing (the bench's pipelines are named bench_health_NNN). Generated: one run summary and one
ledger row per interval, a second generation for every 20th interval (a re-run), 3 quarantine rows with reasons in
every 10th, a 0-row interval every 50th, a failed run every 97th, 2 schema changes per pipeline; plus 200 pipeline
files (copies of config/pipelines/*.yaml under the new names). Cold = the first request (files parsed), warm = the
median of --repeat after it (files cached by mtime).

    .venv/bin/python bench/bench_health.py [--pipelines 200] [--days 365] [--repeat 5]

Prints the figures and writes bench/results/health-<UTC time>.json (gitignored).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

from sluice.connections import pg_dsn  # noqa: E402
from sluice.health import html, report, warehouse  # noqa: E402
from sluice.loading import sql as q  # noqa: E402
from sluice.validate.quarantine import quarantine_ddl  # noqa: E402

SUMMARY_COPY = (
    "COPY sluice.run_summary (pipeline, run_id, target, interval_start, interval_end, chunks, rows_in, rows_loaded,"
    " rows_quarantined, inserted, updated, deleted, schema_changes, generation, superseded, unchanged, status,"
    " problems, finished_at) FROM STDIN"
)
LEDGER_COPY = (
    "COPY sluice.load_ledger (pipeline, target, interval_start, interval_end, run_id, run_no, chunk, rows_in,"
    " rows_loaded, rows_quarantined, inserted, updated, deleted, duplicates, checksum, write_mode, started_at,"
    " finished_at, copy_seconds, merge_seconds) FROM STDIN"
)
QUARANTINE_COPY = (
    "COPY sluice.quarantine (pipeline, run_id, generation, interval_start, interval_end, chunk, row_number, row,"
    " reasons) FROM STDIN"
)


def pipeline_files(directory: Path, n: int) -> None:
    """n pipeline files, copies of the shipped ones under new names, with defaults.yaml beside their folder."""
    src = sorted((REPO / "config" / "pipelines").glob("*.yaml"))
    (directory / "pipelines").mkdir(parents=True)
    (directory / "defaults.yaml").write_text((REPO / "config" / "defaults.yaml").read_text())
    for i in range(n):
        data = yaml.safe_load(src[i % len(src)].read_text())
        data["name"] = f"bench_health_{i:03d}"
        (directory / "pipelines" / f"bench_health_{i:03d}.yaml").write_text(yaml.safe_dump(data))


def history(conn: psycopg.Connection, pipelines: int, days: int) -> int:
    """Write the generated history with COPY; returns the run summary rows written."""
    end0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    summary, ledger, quarantine = io.StringIO(), io.StringIO(), io.StringIO()
    gen, n = 0, 0
    for p in range(pipelines):
        name = f"bench_health_{p:03d}"
        for d in range(days):
            start, end = end0 + timedelta(days=d), end0 + timedelta(days=d + 1)
            for g in range(2 if d % 20 == 0 else 1):
                gen += 1
                run_id = f"scheduled__{start.isoformat()}" + (f"_r{g}" if g else "")
                rows = 0 if d % 50 == 49 else 1000 + (p * 37 + d * 11) % 500
                quar = 3 if d % 10 == 0 and rows else 0
                status = "failed" if d % 97 == 96 else "success"
                fin = end + timedelta(minutes=5 + g)
                summary.write(
                    f"{name}\t{run_id}\tbench.t{p}\t{start}\t{end}\t1\t{rows}\t{rows - quar}\t{quar}\t{rows - quar}"
                    f"\t0\t0\t[]\t{gen}\t0\t0\t{status}\t[]\t{fin}\n"
                )
                ledger.write(
                    f"{name}\tbench.t{p}\t{start}\t{end}\t{run_id}\t{gen}\t0\t{rows}\t{rows - quar}\t{quar}"
                    f"\t{rows - quar}\t0\t0\t0\tx\tupsert\t{fin}\t{fin}\t0.05\t0.02\n"
                )
                for r in range(quar):
                    why = json.dumps([{"column": "amount", "reason": "not a number", "stage": "cast"}])
                    quarantine.write(f"{name}\t{run_id}\t{gen}\t{start}\t{end}\t0\t{r}\t{{}}\t{why}\n")
                n += 1
    for stmt, buf in ((SUMMARY_COPY, summary), (LEDGER_COPY, ledger), (QUARANTINE_COPY, quarantine)):
        with conn.cursor().copy(stmt) as cp:
            cp.write(buf.getvalue())
    for p in range(pipelines):
        for c in ("add_column", "add_column"):
            conn.execute(
                "INSERT INTO sluice.schema_changes (pipeline, run_id, target, change, column_name, column_type)"
                " VALUES (%s, 'r', 't', %s, 'c', 'text')",
                (f"bench_health_{p:03d}", c),
            )
    for t in ("run_summary", "load_ledger", "quarantine", "schema_changes"):
        conn.execute(f"ANALYZE sluice.{t}")  # noqa: S608 - fixed names
    return n


def timed(fn, repeat: int) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    fn()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return cold, warm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", type=int, default=200)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_files(Path(tmp), args.pipelines)
        os.environ["SLUICE_PIPELINES_DIRS"] = str(Path(tmp) / "pipelines")
        with psycopg.connect(pg_dsn(warehouse.conn_id()), row_factory=psycopg.rows.dict_row) as conn:
            for stmt in [
                q.create_schema("sluice"),
                q.create_ledger(),
                q.create_run_summary(),
                q.create_schema_changes(),
                *quarantine_ddl(),
            ]:
                conn.execute(stmt)
            t0 = time.perf_counter()
            n = history(conn, args.pipelines, args.days)
            print(
                f"generated {n:,} run summaries for {args.pipelines} pipelines x {args.days} days"
                f" in {time.perf_counter() - t0:.1f} s (rolled back at the end)"
            )
            now = datetime.now(UTC)
            page = {}

            def overview() -> None:
                ov = report.overview_from(conn, now)
                page["html"] = html.overview_page(ov, "/sluice", "")
                page["n"] = len(ov.pipelines)

            def detail() -> None:
                rows = warehouse.detail_rows(conn, "bench_health_007")
                page["history"] = len(rows["history"])

            ov_cold, ov_warm = timed(overview, args.repeat)
            dt_cold, dt_warm = timed(detail, args.repeat)
            explain = conn.execute(
                psycopg.sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(q.dashboard.overview()),
                {"intervals": 30, "ok": warehouse.OK_STATUSES},
            ).fetchone()
            conn.rollback()
    sql_ms = explain["QUERY PLAN"][0]["Execution Time"]
    result = {
        "pipelines": args.pipelines,
        "days": args.days,
        "summaries": n,
        "rows_on_page": page["n"],
        "html_bytes": len(page["html"]),
        "overview_cold_s": ov_cold,
        "overview_warm_median_s": statistics.median(ov_warm),
        "overview_statement_ms": sql_ms,
        "detail_cold_s": dt_cold,
        "detail_warm_median_s": statistics.median(dt_warm),
        "detail_history_rows": page["history"],
    }
    print(
        f"overview page ({page['n']} rows, {len(page['html']):,} bytes of HTML): cold {ov_cold:.3f} s, warm median"
        f" {result['overview_warm_median_s']:.3f} s (target < 1 s: "
        f"{'met' if max(ov_cold, result['overview_warm_median_s']) < 1 else 'NOT met'}); the statement alone"
        f" {sql_ms:.0f} ms"
    )
    print(
        f"pipeline page ({page['history']} intervals): cold {dt_cold:.3f} s, warm median"
        f" {result['detail_warm_median_s']:.3f} s"
    )
    out = REPO / "bench" / "results" / f"health-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
