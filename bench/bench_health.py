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
from sluice.health import warehouse  # noqa: E402
from sluice.loading import sql as q  # noqa: E402
from sluice.loading.sql.quarantine import quarantine_ddl  # noqa: E402

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


def serve_airflow_app(port: int):
    """Airflow's own api-server app (`airflow.api_fastapi.app.create_app`, the core API with its auth manager and
    the plugins, so /sluice is the plugin's app behind Airflow's auth) on uvicorn in a thread of this process, on
    loopback: the same code path as the stack's api-server, with this process's SLUICE_PIPELINES_DIRS (the bench's
    200 files) instead of the stack's."""
    import threading

    import uvicorn
    from airflow.api_fastapi.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app("core"), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit(f"the api-server app did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    return server, thread


def server_timing(header: str) -> dict[str, float]:
    """`connect;dur=1.2, sql;dur=300.5, ...` -> {"connect": 0.0012, "sql": 0.3005, ...} (seconds)."""
    out = {}
    for part in filter(None, (p.strip() for p in header.split(","))):
        name, _, dur = part.partition(";dur=")
        out[name] = float(dur) / 1000
    return out


def timed_get(session, url: str, headers: dict, repeat: int) -> dict:
    """Cold (first) and warm (median of `repeat`) wall time of an authenticated GET, with the server's own split."""
    runs = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        r = session.get(url, headers=headers, timeout=120)
        wall = time.perf_counter() - t0
        r.raise_for_status()
        runs.append({"wall": wall, "bytes": len(r.content), **server_timing(r.headers.get("server-timing", ""))})
    warm = runs[1:]
    med = {k: statistics.median(w[k] for w in warm) for k in warm[0]}
    return {"cold": runs[0], "warm_median": med, "warm_max_wall": max(w["wall"] for w in warm)}


def cleanup(conn: psycopg.Connection) -> None:
    for t in ("run_summary", "load_ledger", "quarantine", "schema_changes"):
        conn.execute(f"DELETE FROM sluice.{t} WHERE pipeline LIKE 'bench\\_health\\_%'")  # noqa: S608 - fixed names


def breakdown(label: str, m: dict) -> str:
    w = m["warm_median"]
    steps = [k for k in ("connect", "sql", "files", "build", "render") if k in w]
    server = sum(w[k] for k in steps)
    split = ", ".join(f"{k} {w[k] * 1000:.0f}" for k in steps)
    return (
        f"{label}: warm median {w['wall']:.3f} s over HTTP ({w['bytes']:,} bytes; max {m['warm_max_wall']:.3f} s),"
        f" cold {m['cold']['wall']:.3f} s; server ms: {split};"
        f" HTTP, auth and framework {1000 * (w['wall'] - server):.0f}"
    )


def main() -> int:
    import requests
    from sluice.airflow_api import AirflowApi

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", type=int, default=200)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--port", type=int, default=int(os.environ.get("SLUICE_API_PORT", "18080")) + 1)
    args, _ = ap.parse_known_args()  # bench/run.sh hands every benchmark the same arguments
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
            conn.commit()
            cleanup(conn)
            t0 = time.perf_counter()
            n = history(conn, args.pipelines, args.days)
            conn.commit()
            print(
                f"generated {n:,} run summaries for {args.pipelines} pipelines x {args.days} days"
                f" in {time.perf_counter() - t0:.1f} s (deleted at the end)"
            )
            try:
                server, thread = serve_airflow_app(args.port)
                api = AirflowApi.from_env()
                api.base_url = f"http://127.0.0.1:{args.port}"
                auth = {"Authorization": f"Bearer {api.token()}"}
                base = f"{api.base_url}/sluice"
                anonymous = requests.get(base + "/api/overview", timeout=60).status_code
                with requests.Session() as session:
                    results = {
                        "overview_json": timed_get(session, base + "/api/overview", auth, args.repeat),
                        "overview_html": timed_get(session, base + "/", auth, args.repeat),
                        "pipeline_json": timed_get(
                            session, base + "/api/pipelines/bench_health_007", auth, args.repeat
                        ),
                    }
                server.should_exit = True
                thread.join(30)
                explain = conn.execute(
                    psycopg.sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(q.dashboard.overview()),
                    {"intervals": 30, "ok": warehouse.OK_STATUSES},
                ).fetchone()
                conn.rollback()
            finally:
                conn.rollback()
                cleanup(conn)
                conn.commit()
    result = {
        "pipelines": args.pipelines,
        "days": args.days,
        "summaries": n,
        "anonymous_status": anonymous,
        "overview_statement_ms": explain["QUERY PLAN"][0]["Execution Time"],
        **results,
    }
    print(f"anonymous request: HTTP {anonymous}")
    for label, key in (
        ("overview JSON", "overview_json"),
        ("overview page", "overview_html"),
        ("pipeline JSON", "pipeline_json"),
    ):
        print(breakdown(label, results[key]))
    worst = max(results[k]["warm_median"]["wall"] for k in ("overview_json", "overview_html"))
    print(
        f"the overview statement alone: {result['overview_statement_ms']:.0f} ms (EXPLAIN ANALYZE); the page's data"
        f" request, warm median: {worst:.3f} s (target < 1 s: {'met' if worst < 1 else 'NOT met'})"
    )
    out = REPO / "bench" / "results" / f"health-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
