"""The core promise, through the real scheduler and Celery workers: every good row lands exactly once, every bad row
is quarantined with its reason, a re-run writes nothing, a CLI backfill gives the same table as the daily runs, and
a load task killed with SIGKILL inside COPY is retried into exactly the table a clean run gives."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil
import psycopg
import pytest
from sluice.connections import pg_dsn

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


def sql(query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def table_hash(table: str, cols: str, order: str) -> tuple[int, str]:
    return sql(
        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {order}), '')) "
        f"FROM (SELECT {cols} FROM {table}) t"
    )[0]


def run(api, dag_id: str, day_conf: dict, timeout: float = 300) -> str:
    run_id = api.trigger(dag_id, conf=day_conf)
    state = api.wait_for_run(dag_id, run_id, timeout=timeout)
    assert state == "success", f"{dag_id} {run_id} ended {state}: {api.task_instances(dag_id, run_id)}"
    return run_id


def ledger(run_id: str) -> list[tuple]:
    return sql(
        "SELECT chunk, rows_in, rows_loaded, rows_quarantined FROM sluice.load_ledger WHERE run_id = %s ORDER BY chunk",
        (run_id,),
    )


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
    count = sql("SELECT count(*) FROM e2e.orders")[0][0]
    assert count == orders["landed"]  # the changed duplicate replaced its original instead of adding a row
    comment = sql("SELECT o_comment FROM e2e.orders WHERE o_orderkey = %s", (orders["dup_key"],))[0][0]
    assert comment == "changed by the later file"  # last row in source order wins
    summary = sql(
        "SELECT status, rows_in, rows_loaded, rows_quarantined FROM sluice.run_summary WHERE run_id = %s", (runs[0],)
    )[0]
    assert summary[0] == "success" and summary[1] == summary[2] + summary[3]


def test_rerun_of_an_interval_writes_nothing(api, orders):
    before = table_hash("e2e.orders", ORDERS_COLS, "o_orderkey")
    sql("SELECT pg_stat_clear_snapshot()")
    stats = (
        "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables "
        "WHERE schemaname = 'e2e' AND relname = 'orders'"
    )
    ins0, upd0, del0 = sql(stats)[0]
    run(api, "e2e_orders", conf(DAYS[0]))
    time.sleep(1.5)  # backends flush their table statistics at most once a second
    ins1, upd1, del1 = sql(stats)[0]
    assert (ins1 - ins0, upd1 - upd0, del1 - del0) == (0, 0, 0)
    assert table_hash("e2e.orders", ORDERS_COLS, "o_orderkey") == before


def test_cli_backfill_gives_the_same_table_as_the_daily_runs(api, orders):
    daily = table_hash("e2e.orders", ORDERS_COLS, "o_orderkey")
    sql("TRUNCATE e2e.orders")
    started = time.time()
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
    while time.time() < deadline:
        runs = [
            r
            for r in api.request("GET", "/dags/e2e_orders/dagRuns?limit=100")["dag_runs"]
            if r["run_type"] == "backfill"
        ]
        if len(runs) == len(DAYS) and all(r["state"] in ("success", "failed") for r in runs):
            break
        time.sleep(3)
    assert sorted(r["data_interval_start"][:10] for r in runs) == DAYS
    assert all(r["state"] == "success" for r in runs), runs
    assert table_hash("e2e.orders", ORDERS_COLS, "o_orderkey") == daily
    print(f"backfill of {len(DAYS)} intervals: {time.time() - started:.0f}s")


LINEITEM_COLS = (
    "l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, "
    "l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, "
    "l_comment"
)


class CopyKiller(threading.Thread):
    """Watches pg_stat_activity for a load task's COPY and SIGKILLs the task process that holds that connection,
    each time after a different delay into the COPY."""

    def __init__(self, delays: list[float]):
        super().__init__(daemon=True)
        self.delays, self.kills, self.stop = list(delays), [], threading.Event()
        self.per_chunk: dict[str, int] = {}

    def run(self) -> None:
        seen: set[int] = set()
        with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn:
            while self.delays and not self.stop.is_set():
                rows = conn.execute(
                    "SELECT pid, client_port, application_name FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name LIKE 'sluice load%%' AND query ILIKE 'COPY%%' AND state = 'active'"
                ).fetchall()
                for backend, port, app in rows:
                    if backend in seen or self.per_chunk.get(app, 0) >= 2:  # stay well inside the task's retries
                        continue
                    seen.add(backend)
                    delay = self.delays[0]
                    time.sleep(delay)
                    still = conn.execute(
                        "SELECT query ILIKE 'COPY%%' AND state = 'active' FROM pg_stat_activity WHERE pid = %s",
                        (backend,),
                    ).fetchone()
                    if not (still and still[0]):
                        continue
                    pid = next(
                        (c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port and c.pid),
                        None,
                    )
                    if pid is None or pid == os.getpid():
                        continue
                    os.kill(pid, signal.SIGKILL)
                    self.kills.append((app, delay, pid))
                    self.per_chunk[app] = self.per_chunk.get(app, 0) + 1
                    self.delays.pop(0)
                    break
                time.sleep(0.01)


def test_kill_9_inside_copy_is_retried_into_the_clean_table(api):
    land("--scale", "0.1", "--tables", "lineitem", "--single-day", "2024-01-01", "--prefix", "e2e/lc")
    sql("DROP TABLE IF EXISTS e2e.lineitem_crash")
    api.wait_for_dag("e2e_lineitem_crash")
    api.unpause("e2e_lineitem_crash")
    day = {"interval_start": "2024-01-01T00:00:00+00:00", "interval_end": "2024-01-02T00:00:00+00:00"}
    clean_run = run(api, "e2e_lineitem_crash", day, timeout=600)
    clean = table_hash("e2e.lineitem_crash", LINEITEM_COLS, "l_orderkey, l_linenumber")
    assert clean[0] > 500_000

    sql("TRUNCATE e2e.lineitem_crash")
    killer = CopyKiller([0.0, 0.03, 0.06, 0.1, 0.15, 0.01, 0.08])
    killer.start()
    run_id = api.trigger("e2e_lineitem_crash", conf=day)
    state = api.wait_for_run("e2e_lineitem_crash", run_id, timeout=900)
    killer.stop.set()
    killer.join(5)
    print(f"kills inside COPY: {killer.kills}")
    assert state == "success"
    assert len(killer.kills) >= 5, f"only {len(killer.kills)} kills landed inside COPY"
    retried = [
        ti
        for ti in api.task_instances("e2e_lineitem_crash", run_id)
        if ti["task_id"] == "load_chunk" and ti["try_number"] > 1
    ]
    assert len(retried) >= 1
    assert table_hash("e2e.lineitem_crash", LINEITEM_COLS, "l_orderkey, l_linenumber") == clean
    dups = sql(
        "SELECT count(*) FROM (SELECT 1 FROM e2e.lineitem_crash GROUP BY l_orderkey, l_linenumber "
        "HAVING count(*) > 1) d"
    )[0][0]
    assert dups == 0
    chunks = [c[0] for c in ledger(run_id)]
    assert chunks == sorted(set(chunks)) == list(range(len(ledger(clean_run))))  # exactly one ledger row per chunk


def test_warehouse_down_at_load_time_is_retried_then_succeeds(api, orders):
    """The warehouse refuses the loader's logins while load_chunk starts; Airflow's retry loads once it is back."""
    import json

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
