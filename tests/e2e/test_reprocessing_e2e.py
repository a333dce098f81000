"""The week after the first load, through the real scheduler and Celery workers: a run cleared after its source
changed, a backfill with --reprocess-behavior completed, a late file, duplicates across chunks, an older interval
re-run (version_column, newer_interval_wins), append re-runs, an emptied source, a column renamed upstream and a NUL
byte in one value. Each leaves the table as one clean load of the current source would,
or fails loudly with nothing changed. One pipeline per scenario (tests/e2e/pipelines/e2e_re_*.yaml)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from sluice.connections import pg_dsn

REPO = Path(__file__).resolve().parents[2]
DAY = "2020-01-02"
BUCKET = "sluice-landing"


def conf(day: str) -> dict:
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    return {"interval_start": start.isoformat(), "interval_end": (start + timedelta(days=1)).isoformat()}


def sql(query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def put_csv(s3, pipeline: str, day: str, name: str, header: str, rows: list[tuple]) -> None:
    body = header + "\n" + "".join(",".join("" if v is None else str(v) for v in r) + "\n" for r in rows)
    s3.put_object(Bucket=BUCKET, Key=f"e2e/re_{pipeline}/{day}/{name}", Body=body.encode())


def drop_files(s3, pipeline: str) -> None:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"e2e/re_{pipeline}/").get("Contents", [])
    for obj in listed:
        s3.delete_object(Bucket=BUCKET, Key=obj["Key"])


def ready(api, dag_id: str) -> None:
    api.wait_for_dag(dag_id)
    api.unpause(dag_id)  # end_date is in the past: unpausing schedules nothing


def finish(api, dag_id: str, run_id: str, want: str = "success") -> None:
    state = api.wait_for_run(dag_id, run_id, timeout=300)
    assert state == want, f"{dag_id} {run_id} ended {state}: {api.task_instances(dag_id, run_id)}"


def clear(api, dag_id: str, run_id: str, want: str = "success") -> None:
    api.clear_run(dag_id, run_id)
    assert api.run_state(dag_id, run_id) in ("queued", "running")  # the clear resets the run before it returns
    finish(api, dag_id, run_id, want)


def table(name: str, cols: str = "id, name, amount") -> list[tuple]:
    return sql(f"SELECT {cols} FROM e2e_re.{name} ORDER BY id")


def generations(pipeline: str, run_id: str) -> list[int]:
    rows = sql(
        "SELECT DISTINCT run_no FROM sluice.load_ledger WHERE pipeline = %s AND run_id = %s ORDER BY 1",
        (pipeline, run_id),
    )
    return [r[0] for r in rows]


@pytest.fixture(scope="module")
def fresh(s3_client):
    sql("DROP SCHEMA IF EXISTS e2e_re CASCADE")
    for p in ("reproc", "dups", "versions", "events", "daily", "newer", "renamed", "nul"):
        drop_files(s3_client, p)
    return s3_client


def source_rows(n: int, changed: dict | None = None) -> list[tuple]:
    changed = changed or {}
    return [(i, changed.get(i, f"n{i}"), Decimal(i) / 4) for i in range(n)]


def test_cleared_run_after_a_source_change_loads_the_new_file(api, fresh):
    s3, dag = fresh, "e2e_re_reproc"
    ready(api, dag)
    first = [*source_rows(100), (1000, "bad", Decimal(-1))]  # one row quarantined
    put_csv(s3, "reproc", DAY, "part-0.csv", "id,name,amount", first)
    run_id = api.trigger(dag, conf=conf(DAY))
    finish(api, dag, run_id)
    assert table("reproc") == source_rows(100)
    (gen1,) = generations(dag, run_id)
    # upstream fixes the file: 10 values change, 5 rows are added; the user clears the run (same run_id)
    changed = {i: f"fixed{i}" for i in range(0, 100, 10)}
    second = [*source_rows(105, changed), (1000, "bad", Decimal(-1))]
    put_csv(s3, "reproc", DAY, "part-0.csv", "id,name,amount", second)
    clear(api, dag, run_id)
    assert table("reproc") == source_rows(105, changed)
    gens = generations(dag, run_id)
    assert len(gens) == 2 and gens[0] == gen1
    q = dict(sql("SELECT generation, count(*) FROM sluice.quarantine WHERE run_id = %s GROUP BY 1", (run_id,)))
    assert q == {gen1: 1, gens[1]: 1}  # the first generation's quarantine rows are kept
    summary = sql(
        "SELECT status, generation, inserted, updated, unchanged, rows_quarantined FROM sluice.run_summary "
        "WHERE pipeline = %s AND run_id = %s",
        (dag, run_id),
    )[0]
    assert summary == ("success", gens[1], 5, 10, 90, 1)
    # a late file lands in the folder already loaded; clear again: its rows load, nothing else changes
    put_csv(s3, "reproc", DAY, "part-1.csv", "id,name,amount", [(200, "late", Decimal(2)), (201, "late", None)])
    before = {r[0]: r for r in table("reproc")}
    xmin = dict(sql("SELECT id, xmin::text FROM e2e_re.reproc"))
    clear(api, dag, run_id)
    after = {r[0]: r for r in table("reproc")}
    assert {k: v for k, v in after.items() if k not in (200, 201)} == before
    assert after[200] == (200, "late", Decimal(2)) and after[201] == (201, "late", None)
    assert {k: v for k, v in sql("SELECT id, xmin::text FROM e2e_re.reproc") if k in xmin} == xmin  # untouched


def test_backfill_with_reprocessing_loads_the_corrected_data(api, fresh):
    s3, dag = fresh, "e2e_re_dups"
    ready(api, dag)
    days = ["2020-01-03", "2020-01-04"]
    for d in days:
        put_csv(s3, "dups", d, "part-0.csv", "id,name,amount", [(int(d[-1]) * 100 + i, f"v1-{i}", 1) for i in range(7)])

    def backfill(behavior: str) -> list[dict]:
        """Create a backfill and wait until Airflow marks it completed (only one backfill per DAG may run)."""
        before = {b["id"] for b in api.request("GET", "/backfills", params={"dag_id": dag})["backfills"]}
        out = subprocess.run(
            [str(REPO / ".venv" / "bin" / "airflow"), "backfill", "create", "--dag-id", dag, "--from-date", days[0],
             "--to-date", days[-1], "--reprocess-behavior", behavior],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        deadline = time.time() + 420
        while time.time() < deadline:
            new = [
                b
                for b in api.request("GET", "/backfills", params={"dag_id": dag})["backfills"]
                if b["id"] not in before
            ]
            if new and new[0]["completed_at"]:
                runs = api.request("GET", f"/dags/{dag}/dagRuns?limit=100")["dag_runs"]
                return [r for r in runs if r["run_type"] == "backfill" and r["data_interval_start"][:10] in days]
            time.sleep(2)
        raise AssertionError(f"backfill of {dag} did not complete within 420 s")

    runs = backfill("completed")  # creates the runs (or, on a re-used stack, re-runs them)
    assert all(r["state"] == "success" for r in runs), runs
    put_csv(s3, "dups", days[0], "part-0.csv", "id,name,amount", [(300 + i, f"v2-{i}", 2) for i in range(7)])
    again = backfill("completed")
    assert {r["dag_run_id"] for r in again} == {r["dag_run_id"] for r in runs}  # the same runs, re-run
    assert all(r["state"] == "success" for r in again), again
    got = table("dups")
    assert [r for r in got if 300 <= r[0] < 400] == [(300 + i, f"v2-{i}", Decimal(2)) for i in range(7)]
    assert [r for r in got if 400 <= r[0] < 500] == [(400 + i, f"v1-{i}", Decimal(1)) for i in range(7)]


def test_keys_repeated_across_chunks_last_row_in_source_order_wins_every_time(api, fresh):
    s3, dag, day = fresh, "e2e_re_dups", "2020-01-05"
    ready(api, dag)
    sql("CREATE SCHEMA IF NOT EXISTS e2e_re")
    # chunk_rows 3: key 1 in chunks 0, 1 and 2; key 2 in chunks 0 and 2; the table already holds key 1's last version
    rows = [(1, "a", 1), (2, "b", 1), (3, "c", 1), (1, "a2", 1), (4, "d", 1), (5, "e", 1), (2, "b2", 1), (1, "last", 1)]
    put_csv(s3, "dups", day, "part-0.csv", "id,name,amount", rows)
    run_id = api.trigger(dag, conf=conf(day))
    finish(api, dag, run_id)
    expected = [(1, "last", Decimal(1)), (2, "b2", Decimal(1)), (3, "c", Decimal(1)), (4, "d", Decimal(1)),
                (5, "e", Decimal(1))]  # fmt: skip
    assert [r for r in table("dups") if r[0] < 100] == expected
    for _ in range(4):  # the same data again, four more times: chunks load in whatever order the workers take
        clear(api, dag, run_id)
        assert [r for r in table("dups") if r[0] < 100] == expected
    ledger = sql(
        "SELECT run_no, sum(superseded), sum(rows_loaded) FROM sluice.load_ledger WHERE pipeline = %s AND "
        "run_id = %s GROUP BY 1 ORDER BY 1",
        (dag, run_id),
    )
    assert len(ledger) == 5 and all(r[1:] == (3, 8) for r in ledger), ledger


def test_version_column_keeps_the_newer_values_when_an_older_interval_is_re_run(api, fresh):
    s3, dag = fresh, "e2e_re_versions"
    ready(api, dag)
    older, newer = "2020-01-02T10:00:00+00:00", "2020-01-03T10:00:00+00:00"
    put_csv(s3, "versions", "2020-01-02", "part-0.csv", "id,name,updated_at", [(1, "old", older), (2, "old", older)])
    put_csv(s3, "versions", "2020-01-03", "part-0.csv", "id,name,updated_at", [(1, "new", newer)])
    day2 = api.trigger(dag, conf=conf("2020-01-02"))
    finish(api, dag, day2)
    finish(api, dag, api.trigger(dag, conf=conf("2020-01-03")))
    clear(api, dag, day2)  # last week's interval re-run after the newer one
    assert table("versions", "id, name") == [(1, "new"), (2, "old")]


def test_append_re_runs_replace_their_own_rows(api, fresh):
    s3, dag = fresh, "e2e_re_events"
    ready(api, dag)
    put_csv(s3, "events", DAY, "part-0.csv", "id,name", [(i % 3, f"e{i}") for i in range(10)])  # repeats: no key
    run_id = api.trigger(dag, conf=conf(DAY))
    finish(api, dag, run_id)
    first = sorted(table("events", "id, name"))
    assert len(first) == 10
    clear(api, dag, run_id)
    finish(api, dag, api.trigger(dag, conf=conf(DAY)))  # and a second manual run of the same interval
    assert sorted(table("events", "id, name")) == first


def test_replace_interval_refuses_to_empty_an_interval_when_the_files_vanished(api, fresh):
    s3, dag = fresh, "e2e_re_daily"
    ready(api, dag)
    put_csv(s3, "daily", DAY, "part-0.csv", "id,name,day", [(i, f"r{i}", DAY) for i in range(20)])
    run_id = api.trigger(dag, conf=conf(DAY))
    finish(api, dag, run_id)
    assert len(table("daily", "id")) == 20
    drop_files(s3, "daily")  # the files expired upstream
    api.clear_run(dag, run_id)
    finish(api, dag, run_id, want="failed")
    gate = next(t for t in api.task_instances(dag, run_id) if t["task_id"] == "quality_gate")
    assert gate["state"] == "failed" and gate["try_number"] == 2  # not retried: retrying cannot help
    assert len(table("daily", "id")) == 20  # nothing was deleted
    log = api.request("GET", f"/dags/{dag}/dagRuns/{run_id}/taskInstances/quality_gate/logs/2?full_content=true")
    assert "allow_empty" in str(log)


def test_newer_interval_wins_keeps_the_newer_values_when_an_older_interval_is_re_run(api, fresh):
    s3, dag = fresh, "e2e_re_newer"
    ready(api, dag)
    put_csv(s3, "newer", "2020-01-02", "part-0.csv", "id,name,note", [(1, "old", "a"), (2, "old", "a")])
    put_csv(s3, "newer", "2020-01-03", "part-0.csv", "id,name,note", [(1, "new", "b")])
    day2 = api.trigger(dag, conf=conf("2020-01-02"))
    finish(api, dag, day2)
    finish(api, dag, api.trigger(dag, conf=conf("2020-01-03")))
    # upstream corrects the older day's file (no version column in the data) and the user clears that run
    put_csv(s3, "newer", "2020-01-02", "part-0.csv", "id,name,note", [(1, "old-fixed", "c"), (2, "old-fixed", "c")])
    clear(api, dag, day2)
    assert table("newer", "id, name, note") == [(1, "new", "b"), (2, "old-fixed", "c")]
    stamped = sql("SELECT id, _sluice_interval FROM e2e_re.newer ORDER BY id")
    assert [(i, t.date().isoformat()) for i, t in stamped] == [(1, "2020-01-04"), (2, "2020-01-03")]


def mapped_log(api, dag: str, run_id: str, task_id: str) -> tuple[dict, str]:
    """The failed mapped instance of task_id and its log (the try that failed)."""
    ti = next(t for t in api.task_instances(dag, run_id) if t["task_id"] == task_id and t["state"] == "failed")
    path = f"/dags/{dag}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{ti['try_number']}"
    log = api.request("GET", path, params={"map_index": ti["map_index"], "full_content": "true"})
    return ti, str(log)


def test_a_column_renamed_upstream_fails_naming_it_and_leaves_the_table(api, fresh):
    s3, dag = fresh, "e2e_re_renamed"
    ready(api, dag)
    put_csv(s3, "renamed", DAY, "part-0.csv", "id,name,note", [(i, f"n{i}", f"note{i}") for i in range(20)])
    run_id = api.trigger(dag, conf=conf(DAY))
    finish(api, dag, run_id)
    before = sql("SELECT id, name, note, xmin::text FROM e2e_re.renamed ORDER BY id")
    assert len(before) == 20 and before[3][:3] == (3, "n3", "note3")
    # upstream renames note -> notes; the user clears the run
    put_csv(s3, "renamed", DAY, "part-0.csv", "id,name,notes", [(i, f"n{i}", f"x{i}") for i in range(20)])
    api.clear_run(dag, run_id)
    finish(api, dag, run_id, want="failed")
    ti, log = mapped_log(api, dag, run_id, "validate_chunk")
    assert "nullable column note is missing from the source. Did you mean 'notes'?" in log, log[-3000:]
    assert "Nothing was loaded" in log
    tis = api.task_instances(dag, run_id)
    assert ti["try_number"] == 2  # the clear's try, not retried: the same file fails the same way
    assert {t["state"] for t in tis if t["task_id"] in ("load_chunk", "finalize")} <= {"upstream_failed", None}
    assert sql("SELECT id, name, note, xmin::text FROM e2e_re.renamed ORDER BY id") == before  # untouched


def test_a_nul_byte_in_one_value_quarantines_that_row_and_loads_the_rest(api, fresh):
    s3, dag = fresh, "e2e_re_nul"
    ready(api, dag)
    rows = [(i, f"n{i}", "bad\x00value" if i == 14 else f"note{i}") for i in range(30)]  # chunk 1 of 3
    put_csv(s3, "nul", DAY, "part-0.csv", "id,name,note", rows)
    run_id = api.trigger(dag, conf=conf(DAY))
    finish(api, dag, run_id)
    assert table("nul", "id, name, note") == [(i, f"n{i}", f"note{i}") for i in range(30) if i != 14]
    quarantined = sql(
        "SELECT chunk, row->>'id', reasons::text FROM sluice.quarantine WHERE pipeline = %s AND run_id = %s",
        (dag, run_id),
    )
    assert len(quarantined) == 1 and quarantined[0][:2] == (1, "14"), quarantined
    assert "NUL" in quarantined[0][2], quarantined
    summary = sql(
        "SELECT status, rows_in, rows_loaded, rows_quarantined FROM sluice.run_summary WHERE pipeline = %s "
        "AND run_id = %s",
        (dag, run_id),
    )
    assert summary == [("success", 30, 29, 1)]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
