"""The core promise, through the real scheduler and Celery workers: every good row lands exactly once, every bad row
is quarantined with its reason, a re-run writes nothing, a CLI backfill gives the same table as the daily runs, and
a load task killed with SIGKILL before or after its chunk's commit (held there by a loader failpoint the test
holds, include/sluice/failpoints.py) is retried into exactly the table a clean run gives."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil
import psycopg
import pytest
import requests
from failpoint_hold import FailpointHold
from sluice import failpoints
from sluice.failpoints import Point
from warehouse_sql import ledger, sql, table_hash

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
DAYS = ["1995-01-01", "1995-01-02", "1995-01-03"]
ORDERS_COLS = (
    "o_orderkey, o_custkey, o_orderstatus, o_totalprice, o_orderdate, o_orderpriority, o_clerk, "
    "o_shippriority, o_comment"
)


def conf(day: str) -> dict:
    """Trigger-form params for the daily interval starting on `day`."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    return {"interval_start": start.isoformat(), "interval_end": (start + timedelta(days=1)).isoformat()}


def land(*args: str) -> None:
    subprocess.run([PY, str(REPO / "demo" / "land_tpch.py"), *args], check=True, capture_output=True)


def run(api, dag_id: str, day_conf: dict, timeout: float = 300) -> str:
    run_id = api.trigger(dag_id, conf=day_conf)
    state = api.wait_for_run(dag_id, run_id, timeout=timeout)
    assert state == "success", f"{dag_id} {run_id} ended {state}: {api.task_instances(dag_id, run_id)}"
    return run_id


@pytest.fixture(scope="module")
def orders(api, s3_client):
    """Three days of TPC-H orders (SF 0.1) plus, on day one, a second file with a changed duplicate of a day-one
    key, a NULL key, an unknown status and a ragged line."""
    land("--scale", "0.1", "--days", "3", "--start", DAYS[0], "--tables", "orders", "--prefix", "e2e")
    day1 = s3_client.get_object(Bucket="sluice-landing", Key=f"e2e/orders/{DAYS[0]}/part-0.csv.gz")["Body"].read()
    lines = gzip.decompress(day1).decode().splitlines()
    header, first = lines[0], lines[1].split(",")
    dup = list(first)
    dup[-1] = "changed by the later file"
    bad_null = [""] + first[1:]
    bad_status = list(first)
    bad_status[0], bad_status[2] = "999999999", "X"
    body = "\n".join([header, ",".join(dup), ",".join(bad_null), ",".join(bad_status), "1,2,3"]) + "\n"
    s3_client.put_object(
        Bucket="sluice-landing", Key=f"e2e/orders/{DAYS[0]}/part-1.csv.gz", Body=gzip.compress(body.encode())
    )
    landed = sum(
        len(
            gzip.decompress(
                s3_client.get_object(Bucket="sluice-landing", Key=f"e2e/orders/{d}/part-0.csv.gz")["Body"].read()
            ).splitlines()
        )
        - 1
        for d in DAYS
    )
    sql("DROP SCHEMA IF EXISTS e2e CASCADE")
    if sql("SELECT to_regclass('sluice.load_ledger')")[0][0]:
        # A backfill's run ids are fixed (backfill__<date>) and the ledger answers a run id it knows without
        # writing, so on a reused stack the dropped table's ledger rows would turn the backfill into a no-op.
        sql("DELETE FROM sluice.load_ledger WHERE pipeline = 'e2e_orders'")
    api.wait_for_dag("e2e_orders")
    api.unpause("e2e_orders")
    return {"landed": landed, "dup_key": int(first[0])}


def test_daily_runs_conserve_rows_quarantine_bad_ones_and_keep_the_last_duplicate(api, orders):
    runs = [run(api, "e2e_orders", conf(d)) for d in DAYS]
    totals = [sum(x[1] for x in ledger(r)) for r in runs]
    assert sum(totals) == orders["landed"] + 4  # every row that arrived is accounted for
    for r in runs:
        for chunk, rows_in, loaded, quarantined in ledger(r):
            assert rows_in == loaded + quarantined, (r, chunk)
    quarantined = sql("SELECT reasons::text FROM sluice.quarantine WHERE run_id = %s", (runs[0],))
    assert len(quarantined) == 3, quarantined  # NULL key, unknown status, ragged line
    text = " ".join(q[0] for q in quarantined)
    assert "o_orderkey" in text and "o_orderstatus" in text
    origin = sql("SELECT source, source_line, kind, status FROM sluice.quarantine WHERE run_id = %s", (runs[0],))
    assert all(src.startswith("s3://") and line > 1 and status == "pending" for src, line, _, status in origin), origin
    assert sorted(kind for _, _, kind, _ in origin) == ["cast", "expectation", "parse"], origin
    count = sql("SELECT count(*) FROM e2e.orders")[0][0]
    assert count == orders["landed"]  # the changed duplicate replaced its original instead of adding a row
    comment = sql("SELECT o_comment FROM e2e.orders WHERE o_orderkey = %s", (orders["dup_key"],))[0][0]
    assert comment == "changed by the later file"  # last row in source order wins
    summary = sql(
        "SELECT status, rows_in, rows_loaded, rows_quarantined FROM sluice.run_summary WHERE run_id = %s", (runs[0],)
    )[0]
    assert summary[0] == "success" and summary[1] == summary[2] + summary[3]


def row_versions(table: str, key: str) -> list[tuple]:
    """Every row's key, physical version (xmin: any UPDATE or re-INSERT changes it) and hidden columns."""
    return sql(f"SELECT {key}, xmin::text, _sluice_run, _sluice_seq FROM {table} ORDER BY {key}")


def test_rerun_of_an_interval_writes_nothing(api, orders):
    before = table_hash("e2e.orders", ORDERS_COLS, "o_orderkey")
    versions = row_versions("e2e.orders", "o_orderkey")
    assert versions
    run(api, "e2e_orders", conf(DAYS[0]))
    after = row_versions("e2e.orders", "o_orderkey")
    changed = [(b, a) for b, a in zip(versions, after, strict=False) if b != a]
    assert len(after) == len(versions) and not changed, f"{len(changed)} rows rewritten, e.g. {changed[:3]}"
    assert table_hash("e2e.orders", ORDERS_COLS, "o_orderkey") == before


def metadata_sql(query: str, params: tuple = ()) -> list[tuple]:
    """The Airflow metadata database (its SQLAlchemy URL from the stack's env, as a libpq URI)."""
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def received_webhooks() -> list[dict]:
    r = requests.get(f"http://127.0.0.1:{os.environ['SLUICE_WEBHOOK_PORT']}/_received", timeout=10)
    r.raise_for_status()
    return r.json()


def test_cli_backfill_gives_the_same_table_as_the_daily_runs_and_no_deadline_alert(api, orders):
    """e2e_orders has a deadline (1 s after the interval's end, long past for 1995): a backfill run gets none, so no
    alert comes, now or later (no deadline row exists for its runs)."""
    daily = table_hash("e2e.orders", ORDERS_COLS, "o_orderkey")
    sql("TRUNCATE e2e.orders")
    started = time.time()
    before = {b["id"] for b in api.request("GET", "/backfills", params={"dag_id": "e2e_orders"})["backfills"]}
    out = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "airflow"),
            "backfill",
            "create",
            "--dag-id",
            "e2e_orders",
            "--from-date",
            DAYS[0],
            "--to-date",
            DAYS[-1],
            "--reprocess-behavior",
            "completed",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    deadline = time.time() + 420
    while True:  # the backfill itself says when it is done
        new = [
            b
            for b in api.request("GET", "/backfills", params={"dag_id": "e2e_orders"})["backfills"]
            if b["id"] not in before
        ]
        assert len(new) <= 1, new
        if new and new[0]["completed_at"]:
            break
        assert time.time() < deadline, f"backfill not completed after 420 s: {new}"
        time.sleep(3)
    runs = metadata_sql(
        "SELECT run_id, state, data_interval_start::date::text FROM dag_run WHERE dag_id = %s AND backfill_id = %s",
        ("e2e_orders", new[0]["id"]),
    )
    assert sorted(r[2] for r in runs) == DAYS, runs
    assert all(r[1] == "success" for r in runs), runs
    assert table_hash("e2e.orders", ORDERS_COLS, "o_orderkey") == daily
    run_ids = [r[0] for r in runs]
    deadlines = metadata_sql(
        "SELECT count(*) FROM deadline d JOIN dag_run r ON r.id = d.dagrun_id WHERE r.run_id = ANY(%s)", (run_ids,)
    )[0][0]
    assert deadlines == 0, f"{deadlines} deadlines on backfill runs"
    alerts = [m for m in received_webhooks() if any(r in json.dumps(m, ensure_ascii=False) for r in run_ids)]
    assert not alerts, alerts
    print(f"backfill of {len(DAYS)} intervals: {time.time() - started:.0f}s")


LINEITEM_COLS = (
    "l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, "
    "l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, "
    "l_comment"
)


HIDDEN_SEQ = "_sluice_seq"  # deterministic (chunk << 32 | row): equal across clean runs; _sluice_run is per run
CRASH = "e2e_lineitem_crash"
CRASH_DAY = {"interval_start": "2024-01-01T00:00:00+00:00", "interval_end": "2024-01-02T00:00:00+00:00"}
CRASH_RETRIES = 4  # e2e_lineitem_crash.yaml: retries.retries; K kills stay below it


class FailpointHolder(FailpointHold):
    """Holds a loader failpoint, so every load task that reaches it waits in pg_locks; `kill` SIGKILLs the task
    process behind a waiting backend.

    A SIGKILLed client's backend would sit in the lock wait (PostgreSQL notices a dead client only when it next
    reads from it), so after the kill the test ends that backend too: the same thing the server does to a dead
    client's open transaction, which is what a crash at this point means."""

    def __init__(self, pipeline: str, point: Point):
        super().__init__(pipeline, point)
        self.kills: list[tuple[str, int, int]] = []  # (application_name, backend pid, task pid)

    def _task_pid(self, client_port: int) -> int | None:
        pg_port = int(os.environ["SLUICE_PG_PORT"])
        for c in psutil.net_connections("tcp"):
            if c.laddr and c.laddr.port == client_port and c.raddr and c.raddr.port == pg_port and c.pid:
                return c.pid
        return None

    def kill(self, count: int, api, run_id: str, timeout: float = 600) -> None:
        """Kill `count` task processes, one at a time, each when its backend waits at the failpoint."""
        end = time.time() + timeout
        done: set[int] = set()
        while len(self.kills) < count:
            assert time.time() < end, f"only {len(self.kills)} of {count} kills after {timeout:.0f}s: {self.kills}"
            waiting = [w for w in self.conn.execute(failpoints.waiting_sql(), {"key": self.key}) if w[0] not in done]
            if not waiting:
                state = api.run_state(CRASH, run_id)
                assert state not in ("success", "failed"), f"run ended {state} after {len(self.kills)} kills"
                time.sleep(0.2)
                continue
            backend, port = waiting[0]
            task_pid = self._task_pid(port)
            assert task_pid and task_pid != os.getpid(), f"no task process holds client port {port}"
            app = self.conn.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s", (backend,))
            app = (app.fetchone() or ("?",))[0]
            os.kill(task_pid, signal.SIGKILL)
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(task_pid).wait(30)  # gone before its backend is ended
            self.conn.execute("SELECT pg_terminate_backend(%s)", (backend,))
            while self.conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone():
                assert time.time() < end, f"backend {backend} outlived its killed client"
                time.sleep(0.1)
            done.add(backend)
            self.kills.append((app, backend, task_pid))


def crash_table() -> tuple[int, str]:
    return table_hash("e2e.lineitem_crash", f"{LINEITEM_COLS}, {HIDDEN_SEQ}", "l_orderkey, l_linenumber")


@pytest.fixture(scope="module")
def clean_crash_run(api):
    """One clean run of the lineitem pipeline: the table and ledger every killed run must end with."""
    land("--scale", "0.02", "--tables", "lineitem", "--single-day", "2024-01-01", "--prefix", "e2e/lc")
    sql("DROP TABLE IF EXISTS e2e.lineitem_crash")
    api.wait_for_dag(CRASH)
    api.unpause(CRASH)
    run_id = run(api, CRASH, CRASH_DAY, timeout=600)
    table = crash_table()
    chunks = ledger(run_id)
    assert table[0] > 100_000 and len(chunks) >= 5, (table, chunks)
    return {"table": table, "chunks": chunks, "written": written(run_id)}


def written(run_id: str) -> tuple:
    return sql("SELECT sum(inserted), sum(updated) FROM sluice.load_ledger WHERE run_id = %s", (run_id,))[0]


def killed_run(api, point: Point, kills: int) -> tuple[str, FailpointHolder]:
    sql("TRUNCATE e2e.lineitem_crash")
    holder = FailpointHolder(CRASH, point)
    with holder:  # released in __exit__, whatever the kills did
        run_id = api.trigger(CRASH, conf=CRASH_DAY)
        holder.kill(kills, api, run_id)
    state = api.wait_for_run(CRASH, run_id, timeout=600)
    print(f"kills at {point}: {holder.kills}")
    assert state == "success", api.task_instances(CRASH, run_id)
    return run_id, holder


def assert_like_clean(api, run_id: str, clean: dict, kills: int) -> None:
    tis = api.task_instances(CRASH, run_id)
    retries = {(t["task_id"], t["map_index"]): t["try_number"] - 1 for t in tis if t["try_number"] > 1}
    assert sum(retries.values()) == kills, f"{kills} kills but retries {retries}"
    assert all(task == "load_chunk" for task, _ in retries), retries
    assert crash_table() == clean["table"]  # every column, and the position each row came from
    rows = ledger(run_id)
    assert rows == clean["chunks"]  # exactly one ledger row per chunk, with the clean run's counts
    run_nos = sql("SELECT DISTINCT run_no FROM sluice.load_ledger WHERE run_id = %s", (run_id,))
    written_by = sql("SELECT DISTINCT _sluice_run FROM e2e.lineitem_crash")
    assert written_by == run_nos and len(run_nos) == 1, (written_by, run_nos)
    assert written(run_id) == clean["written"]  # as many rows inserted and updated as in the clean run


def test_kill_9_before_commit_is_retried_into_the_clean_table(api, clean_crash_run):
    """SIGKILL while the chunk's rows and ledger row are written but not committed, three times (any chunks):
    each retry finds nothing and loads the chunk again; the run ends as the clean run did."""
    run_id, holder = killed_run(api, Point.load_before_commit, kills=3)
    assert len(holder.kills) == 3
    assert_like_clean(api, run_id, clean_crash_run, kills=3)


def test_kill_9_after_commit_finds_the_ledger_row_and_loads_nothing_twice(api, clean_crash_run):
    """SIGKILL after the chunk's transaction committed, before the task returned: the retry finds the ledger row
    and returns what it recorded."""
    run_id, holder = killed_run(api, Point.load_after_commit, kills=2)
    assert len(holder.kills) == 2
    assert_like_clean(api, run_id, clean_crash_run, kills=2)


def test_warehouse_down_at_load_time_is_retried_then_succeeds(api, orders):
    """The warehouse refuses the loader's logins while load_chunk starts; Airflow's retry loads once it is back."""
    secrets = json.loads((Path(os.environ["SLUICE_HOME"]) / "secrets.json").read_text())
    admin = f"postgresql://postgres:{secrets['pg_superuser']}@127.0.0.1:{os.environ['SLUICE_PG_PORT']}/postgres"
    before = table_hash("e2e.orders", ORDERS_COLS, "o_orderkey")
    sql("DELETE FROM e2e.orders WHERE o_orderdate = %s", (DAYS[1],))
    run_id = api.trigger("e2e_orders", conf=conf(DAYS[1]))
    deadline, blocked = time.time() + 300, False
    with psycopg.connect(admin, autocommit=True) as su:
        try:
            while time.time() < deadline:
                tis = {(t["task_id"], t["map_index"]): t for t in api.task_instances("e2e_orders", run_id)}
                gate = tis.get(("quality_gate", -1), {})
                if not blocked and gate.get("state") in ("running", "success"):
                    su.execute('ALTER ROLE "sluice" NOLOGIN')  # the warehouse is "down" for the loader
                    blocked = True
                loads = [t for k, t in tis.items() if k[0] == "load_chunk"]
                if blocked and any(t["state"] == "up_for_retry" or (t["try_number"] or 0) > 1 for t in loads):
                    break
                time.sleep(0.3)
        finally:
            su.execute('ALTER ROLE "sluice" LOGIN')
    assert blocked
    assert api.wait_for_run("e2e_orders", run_id, timeout=300) == "success"
    loads = [t for t in api.task_instances("e2e_orders", run_id) if t["task_id"] == "load_chunk"]
    assert any(t["try_number"] > 1 for t in loads), loads
    assert table_hash("e2e.orders", ORDERS_COLS, "o_orderkey") == before
