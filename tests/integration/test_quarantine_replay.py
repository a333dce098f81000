"""Quarantine end to end on the real PostgreSQL and S3 endpoint: each stage runs as its task runs it (extract_and_stage,
validate_chunk, the gate and duplicate pass, load_chunk, finalize), then `python -m sluice quarantine ...` runs as
a user runs it, in a subprocess that reads the pipeline file and the warehouse connection like a task.

CSV, JSONL and HTTP rows carry their source object and line; after the expectation is fixed in the YAML, a replay
loads exactly the now-passing rows (status replayed), a second replay loads nothing, a key a later generation wrote
is not overwritten by its replayed older row, and a replay killed at its load commit ends as one clean replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import yaml
from sluice import failpoints
from sluice.config import load_pipeline
from sluice.connections import pg_dsn
from sluice.interval import Interval
from sluice.loading.duplicates import mark_superseded
from sluice.loading.finalize import finalize
from sluice.loading.ledger import new_generation
from sluice.loading.postgres import load_chunk
from sluice.staging import StagingStore, extract_and_stage
from sluice.validate.chunk import validate_chunk
from sluice.validate.gate import quality_gate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUCKET = "sluice-landing"
DAY1 = Interval(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))
DAY2 = Interval(datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 3, tzinfo=UTC))
STATUS_SET = {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["new", "paid"]}}
PRICE_MIN = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "min_value": 0}}
CSV_DAY1 = b"id,status,price\n1,new,10.00\n2,unknown,5.00\n3,new,-1.00\n4,new,abc\n5,new\n6,paid,2.50\n"


def pipeline(tmp_path: Path, schema: str, source: dict, expectations: list[dict]) -> Path:
    """A pipeline file in tmp_path/pipelines (the directory the CLI subprocess reads)."""
    name = f"q_{uuid.uuid4().hex[:8]}"
    doc = {
        "name": name,
        "start_date": "2024-03-01",
        "source": source,
        "staging": {"url": f"file://{tmp_path}/staging"},
        "target": {
            "schema": schema,
            "table": "orders",
            "primary_key": ["id"],
            "columns": [
                {"name": "id", "type": "bigint", "nullable": False},
                {"name": "status", "type": "text"},
                {"name": "price", "type": "numeric(10,2)"},
            ],
        },
        "expectations": expectations,
        "quality": {"max_quarantine_fraction": 0.9},
    }
    path = tmp_path / "pipelines" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_interval(path: Path, interval: Interval) -> dict:
    """One run of the pipeline for the interval, stage by stage as the DAG runs it."""
    cfg = load_pipeline(path)
    run_id = f"manual__{uuid.uuid4().hex[:8]}"
    generation = new_generation(pg_dsn(cfg.target.conn_id))
    chunks = extract_and_stage(cfg, interval, run_id, generation)
    reports = [validate_chunk(cfg, interval, run_id, c) for c in chunks]
    gated = quality_gate(cfg, reports)

    def store_for(report: dict) -> StagingStore:
        return StagingStore(cfg.staging, cfg.name, interval, run_id, report.get("generation"))

    gated = mark_superseded(store_for, gated, cfg.target.primary_key)
    results = [load_chunk(cfg, interval, run_id, r) for r in gated]
    return finalize(cfg, interval, run_id, results, generation)


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m sluice quarantine ...` in this process (a subprocess costs the Airflow and GX imports each time;
    the kill test below runs it as one), reading the pipelines of tmp_path like the command line does."""
    import contextlib
    import io

    from sluice.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = os.environ.get("SLUICE_PIPELINES_DIRS")
    os.environ["SLUICE_PIPELINES_DIRS"] = str(tmp_path / "pipelines")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["quarantine", *args])
    finally:
        if saved is None:
            os.environ.pop("SLUICE_PIPELINES_DIRS")
        else:
            os.environ["SLUICE_PIPELINES_DIRS"] = saved
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def last_json(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fix_expectations(path: Path, expectations: list[dict]) -> None:
    doc = yaml.safe_load(path.read_text())
    doc["expectations"] = expectations
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def quarantine_rows(pg, name: str) -> list[dict]:
    cur = pg.execute(
        "SELECT id, generation, source, source_line, kind, reason, row, status, replayed_run FROM sluice.quarantine "
        "WHERE pipeline = %s ORDER BY generation, source_line",
        (name,),
    )
    return [dict(zip([d.name for d in cur.description], r, strict=True)) for r in cur.fetchall()]


@pytest.fixture
def landing(s3_client, s3_prefix):
    def put(key: str, body: bytes) -> str:
        s3_client.put_object(Bucket=BUCKET, Key=f"{s3_prefix}/{key}", Body=body)
        return f"s3://{BUCKET}/{s3_prefix}/{key}"

    put.prefix = s3_prefix
    return put


def s3_source(prefix: str, fmt: str) -> dict:
    return {"kind": "s3", "bucket": BUCKET, "prefix": prefix + "/{{ ds }}/", "format": fmt}


def test_csv_rows_carry_file_and_line_and_replay_loads_exactly_the_fixed_ones(tmp_path, pg, pg_schema, landing):
    url = landing("2024-03-01/orders.csv", CSV_DAY1)
    path = pipeline(tmp_path, pg_schema, s3_source(landing.prefix, "csv"), [STATUS_SET, PRICE_MIN])
    name = path.stem
    summary = run_interval(path, DAY1)
    assert summary["rows_loaded"] == 2 and summary["rows_quarantined"] == 4
    q = quarantine_rows(pg, name)
    assert [(r["source"], r["source_line"], r["kind"]) for r in q] == [
        (url, 3, "expectation"),  # unknown status (the header is line 1)
        (url, 4, "expectation"),  # negative price
        (url, 5, "cast"),  # price abc
        (url, 6, "parse"),  # ragged line
    ]
    assert q[0]["reason"] == "expect_column_values_to_be_in_set(status)" and q[1]["row"]["price"] == "-1.00"

    listing = cli(tmp_path, "list", "--pipeline", name)
    assert listing.returncode == 0, listing.stderr
    assert (
        "expect_column_values_to_be_in_set(status)" in listing.stdout and "4 row(s) in 1 interval(s)" in listing.stdout
    )
    dry = cli(tmp_path, "replay", "--pipeline", name, "--dry-run", "--json")
    assert dry.returncode == 3 and last_json(dry)["passing"] == 0  # nothing fixed yet

    # key 3 gets a newer version from a later generation (another interval) before the replay
    landing("2024-03-02/orders.csv", b"id,status,price\n3,paid,7.00\n")
    run_interval(path, DAY2)

    fix_expectations(path, [{**STATUS_SET, "kwargs": {"column": "status", "value_set": ["new", "paid", "unknown"]}}])
    first = cli(tmp_path, "replay", "--pipeline", name, "--json")
    assert first.returncode == 3, first.stderr  # the cast and parse rows still fail
    result = last_json(first)
    assert (result["selected"], result["passing"], result["still_failing"]) == (4, 2, 2)
    q = {r["source_line"]: r for r in quarantine_rows(pg, name) if r["source"] == url}
    assert {n: r["status"] for n, r in q.items()} == {3: "replayed", 4: "replayed", 5: "pending", 6: "pending"}
    assert q[3]["replayed_run"] == result["run_id"]
    table = dict(pg.execute(f'SELECT id, price::text FROM "{pg_schema}".orders ORDER BY id').fetchall())
    assert table == {1: "10.00", 2: "5.00", 3: "7.00", 6: "2.50"}  # 3 keeps the newer version

    second = cli(tmp_path, "replay", "--pipeline", name, "--json")
    assert second.returncode == 3 and last_json(second)["passing"] == 0
    assert pg.execute("SELECT count(*) FROM sluice.load_ledger WHERE run_id = %s", (result["run_id"],)).fetchone() == (
        1,
    )

    nothing = cli(tmp_path, "discard", "--pipeline", name, "--reason", "no such reason", "--note", "x")
    assert nothing.returncode == 1 and "nothing discarded" in nothing.stderr
    gone = cli(tmp_path, "discard", "--pipeline", name, "--reason", "parse", "--note", "ragged upstream", "--by", "t")
    assert gone.returncode == 0 and "discarded 1 row(s)" in gone.stdout
    shown = json.loads(cli(tmp_path, "show", str(q[6]["id"])).stdout)
    assert (shown["status"], shown["discarded_by"], shown["note"]) == ("discarded", "t", "ragged upstream")
    exported = cli(tmp_path, "export", "--pipeline", name, "--format", "jsonl").stdout.splitlines()
    assert len(exported) == 4 and json.loads(exported[0])["source"] == url


def test_a_replay_killed_at_its_commit_ends_as_one_clean_replay(tmp_path, pg, pg_schema, landing, warehouse_dsn):
    landing("2024-03-01/orders.csv", CSV_DAY1)
    path = pipeline(tmp_path, pg_schema, s3_source(landing.prefix, "csv"), [STATUS_SET, PRICE_MIN])
    name = path.stem
    run_interval(path, DAY1)
    fix_expectations(path, [])
    key = failpoints.lock_key(name, failpoints.Point.load_before_commit)
    with psycopg.connect(warehouse_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        environ = {**os.environ, "SLUICE_PIPELINES_DIRS": str(tmp_path / "pipelines"), "SLUICE_FAILPOINTS": "1"}
        environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "include"), environ.get("PYTHONPATH", "")])
        proc = subprocess.Popen(
            [sys.executable, "-m", "sluice", "quarantine", "replay", "--pipeline", name],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not holder.execute(failpoints.waiting_sql(), {"key": key}).fetchall():  # the replay waits there
                assert proc.poll() is None, "the replay ended before reaching its commit"
                holder.execute("SELECT pg_sleep(0.2)")
            proc.kill()  # kill -9 with rows and ledger row written, uncommitted
            proc.wait()
        finally:
            holder.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
    assert [r["status"] for r in quarantine_rows(pg, name)] == ["pending"] * 4
    again = cli(tmp_path, "replay", "--pipeline", name, "--json")
    result = last_json(again)
    assert (result["passing"], result["still_failing"]) == (2, 2)
    table = dict(pg.execute(f'SELECT id, price::text FROM "{pg_schema}".orders ORDER BY id').fetchall())
    assert table == {1: "10.00", 2: "5.00", 3: "-1.00", 6: "2.50"}
    assert [r["status"] for r in quarantine_rows(pg, name)].count("replayed") == 2
    runs = pg.execute(
        "SELECT count(DISTINCT run_id) FROM sluice.load_ledger WHERE pipeline = %s AND run_id LIKE 'replay%%'", (name,)
    ).fetchone()[0]
    assert runs == 1


def test_jsonl_and_http_rows_carry_their_object_and_line(tmp_path, pg, pg_schema, landing, httpserver, monkeypatch):
    url = landing(
        "2024-03-01/orders.jsonl", b'{"id": "1", "status": "new", "price": "1"}\n\n{"id": "2", "status": "x"}\n'
    )
    path = pipeline(tmp_path, pg_schema, s3_source(landing.prefix, "jsonl"), [STATUS_SET])
    run_interval(path, DAY1)
    assert [(r["source"], r["source_line"]) for r in quarantine_rows(pg, path.stem)] == [(url, 3)]

    records = [{"id": 1, "status": "new", "price": "1"}, {"id": 2, "status": "odd", "price": "2"}]
    httpserver.expect_request("/orders").respond_with_json({"data": records})
    conn_id = f"t_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", f"http://{httpserver.url_for('/').split('://')[1]}")
    source = {"kind": "http", "conn_id": conn_id, "auth": "none", "endpoint": "/orders", "records_path": "data"}
    source |= {"pagination": {"style": "single"}, "params": {"since": "{{ ds }}"}}
    http = pipeline(tmp_path, pg_schema, source, [STATUS_SET])
    run_interval(http, DAY1)
    [row] = quarantine_rows(pg, http.stem)
    assert row["source"] == httpserver.url_for("/orders") + "?since=2024-03-01" and row["source_line"] == 2
