"""The load path against the real PostgreSQL: COPY + MERGE + ledger in one transaction, exactly once.
Each test loads into a fresh schema (pg_schema) under a unique pipeline name, so tests never see each other."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest
from sluice import failpoints
from sluice.config import PipelineConfig
from sluice.interval import Interval
from sluice.loading.duplicates import drop_superseded, losers
from sluice.loading.finalize import finalize, refuse_emptying
from sluice.loading.postgres import (
    ConservationError,
    SchemaMismatch,
    StagedChunkChanged,
    UpsertStrategy,
    load_arrow,
    load_chunk,
)
from sluice.loading.target import EmptyingRefused

pytestmark = pytest.mark.integration

DAY = Interval(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
COLUMNS = [
    {"name": "id", "type": "bigint", "nullable": False},
    {"name": "name", "type": "text"},
    {"name": "amount", "type": "numeric(12,2)"},
    {"name": "at", "type": "timestamptz"},
]
ARROW = {"id": pa.int64(), "name": pa.string(), "amount": pa.decimal128(12, 2), "at": pa.timestamp("us", tz="UTC")}


@pytest.fixture
def make_cfg(pg, pg_schema, tmp_path):
    names = []

    def make(columns=None, **target) -> PipelineConfig:
        name = f"it_{uuid.uuid4().hex[:10]}"
        names.append(name)
        return PipelineConfig.model_validate(
            {
                "name": name,
                "start_date": "2024-01-01",
                "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "x/{{ ds }}/", "format": "csv"},
                "staging": {"url": f"file://{tmp_path}/staging"},
                "target": {
                    "schema": pg_schema,
                    "table": "t",
                    "primary_key": ["id"],
                    "columns": columns or COLUMNS,
                    **target,
                },
            }
        )

    yield make
    for table in ("load_ledger", "run_summary", "schema_changes"):
        if pg.execute("SELECT to_regclass(%s)", [f"sluice.{table}"]).fetchone()[0]:
            pg.execute(f"DELETE FROM sluice.{table} WHERE pipeline = ANY(%s)", [names])


def rows(ids, names=None, amounts=None, at=None) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, ARROW["id"]),
            "name": pa.array(names if names is not None else [f"n{i}" for i in ids], ARROW["name"]),
            "amount": pa.array(amounts if amounts is not None else [Decimal(i) / 4 for i in ids], ARROW["amount"]),
            "at": pa.array(at if at is not None else [DAY.start + timedelta(minutes=i) for i in ids], ARROW["at"]),
        }
    )


def deduped(chunks, pk=("id",)):
    """The run-wide duplicate pass (duplicates.py) as the quality gate applies it: (rows to load, superseded)."""
    lost = losers(dict(enumerate(chunks)), list(pk))
    return [(drop_superseded(c, lost.get(i)), len(lost.get(i, []))) for i, c in enumerate(chunks)]


def content(pg, schema, table="t", cols="id, name, amount, at"):
    return pg.execute(f'SELECT {cols} FROM "{schema}"."{table}" ORDER BY 1').fetchall()


def ledger(pg, cfg, run_id=None):
    sql = "SELECT chunk, run_id FROM sluice.load_ledger WHERE pipeline = %s" + (" AND run_id = %s" if run_id else "")
    return pg.execute(sql + " ORDER BY run_id, chunk", [cfg.name, *([run_id] if run_id else [])]).fetchall()


def table_stats(pg, cfg, table="t"):
    """n_tup_ins/upd/del after every loader backend of this pipeline has exited (and so flushed its stats)."""
    deadline = time.monotonic() + 15
    while (
        pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", [f"sluice load {cfg.name}#%"]
        ).fetchone()[0]
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    pg.execute("SELECT pg_stat_force_next_flush()")
    return pg.execute(
        "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s",
        [cfg.target.schema_, table],
    ).fetchone()


def wait_for(pg, predicate_sql, params, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pg.execute(predicate_sql, params).fetchone()[0]:
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {predicate_sql} {params}")


def in_thread(fn, *args, **kwargs):
    box = {}

    def run():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


# ------------------------------------------------------------------------------------------------ basics


def test_creates_missing_table_and_round_trips_every_type(pg, pg_schema, make_cfg):
    cols = [
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "s", "type": "smallint"},
        {"name": "b", "type": "bigint"},
        {"name": "n", "type": "numeric(38,10)"},
        {"name": "d", "type": "double"},
        {"name": "ok", "type": "boolean"},
        {"name": "txt", "type": "text"},
        {"name": "day", "type": "date"},
        {"name": "ts", "type": "timestamp"},
        {"name": "tstz", "type": "timestamptz"},
        {"name": "doc", "type": "jsonb"},
    ]
    cfg = make_cfg(cols)
    texts = [
        "",
        None,
        "plain",
        'quote " comma , semicolon ;',
        "line\nbreak\r\ttab \\ backslash",
        "ünïcödé 漢字 😀 e\u0301",
        "NULL",
        "\\N",
    ]
    n = len(texts)
    t = pa.table(
        {
            "id": pa.array(range(n), pa.int32()),
            "s": pa.array([-32768, 32767, None, 0, 1, 2, 3, 4], pa.int16()),
            "b": pa.array([2**63 - 1, -(2**63), None, 0, 1, 2, 3, 4], pa.int64()),
            "n": pa.array(
                [
                    Decimal("1234567890123456789012345678.0123456789"),
                    Decimal("-0.0000000001"),
                    None,
                    Decimal(0),
                    Decimal("1.5"),
                    Decimal(2),
                    Decimal(3),
                    Decimal(4),
                ],
                pa.decimal128(38, 10),
            ),
            "d": pa.array([0.1, float("inf"), float("-inf"), -0.0, 1e-300, None, 2.5e300, 1 / 3], pa.float64()),
            "ok": pa.array([True, False, None, True, False, True, False, True]),
            "txt": pa.array(texts, pa.string()),
            "day": pa.array(
                [date(2024, 2, 29), None, date(1, 1, 1), date(9999, 12, 31), *[date(2024, 1, 1)] * 4], pa.date32()
            ),
            "ts": pa.array(
                [datetime(2024, 1, 1, 12, 30, 45, 123456), None, *[datetime(2000, 1, 1)] * 6], pa.timestamp("us")
            ),
            "tstz": pa.array(
                [datetime(2024, 1, 1, 23, 59, 59, 999999, tzinfo=UTC), None, *[datetime(2000, 1, 1, tzinfo=UTC)] * 6],
                pa.timestamp("us", tz="UTC"),
            ),
            "doc": pa.array(['{"a": [1, 2.5, null], "ü": "😀"}', None, "[]", '"s"', "{}", "1", "true", "null"]),
        }
    )
    result = load_arrow(cfg, DAY, "run1", 0, t)
    assert (result["inserted"], result["updated"], result["rows_loaded"]) == (n, 0, n)
    types = dict(
        pg.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 't'",
            [pg_schema],
        ).fetchall()
    )
    assert types["tstz"] == "timestamp with time zone" and types["n"] == "numeric" and types["doc"] == "jsonb"
    got = content(pg, pg_schema, cols="id, s, b, n, d, ok, txt, day, ts, tstz, doc")
    assert [r[6] for r in got] == texts  # NULL stays NULL, '' stays '', 'NULL' and '\N' stay text
    assert [r[1:6] for r in got] == list(zip(*(t[c].to_pylist() for c in ("s", "b", "n", "d", "ok")), strict=True))
    assert str(got[3][4]) == "-0.0"
    assert [r[7:10] for r in got] == list(zip(*(t[c].to_pylist() for c in ("day", "ts", "tstz")), strict=True))
    assert [r[10] for r in got] == [{"a": [1, 2.5, None], "ü": "😀"}, None, [], "s", {}, 1, True, None]


def test_rerun_of_the_same_interval_writes_nothing(pg, pg_schema, make_cfg):
    cfg = make_cfg()
    for i, ids in enumerate((range(0, 500), range(500, 1000))):
        load_arrow(cfg, DAY, "run1", i, rows(list(ids)))
    ins0, upd0, _ = table_stats(pg, cfg)
    assert ins0 == 1000  # the counters are live, so the zero below means something
    again = [load_arrow(cfg, DAY, "run2", i, rows(list(ids))) for i, ids in ((1, range(500, 1000)), (0, range(0, 500)))]
    ins1, upd1, _ = table_stats(pg, cfg)
    assert (ins1 - ins0, upd1 - upd0) == (0, 0)
    assert [(r["inserted"], r["updated"]) for r in again] == [(0, 0), (0, 0)]
    changed = rows(list(range(0, 500)), names=["changed" if i == 7 else f"n{i}" for i in range(500)])
    assert load_arrow(cfg, DAY, "run3", 0, changed)["updated"] == 1
    assert table_stats(pg, cfg)[1] - upd1 == 1


def test_duplicate_keys_within_a_chunk_keep_the_last_row(pg, pg_schema, make_cfg):
    cfg = make_cfg()
    result = load_arrow(cfg, DAY, "run1", 0, rows([1, 2, 1, 1, 3], names=["a", "b", "c", "d", "e"]))
    assert (result["duplicates"], result["inserted"], result["rows_loaded"]) == (2, 3, 5)
    assert [r[:2] for r in content(pg, pg_schema)] == [(1, "d"), (2, "b"), (3, "e")]


CHUNKS = [
    rows([1, 2, 10], names=["a0", "b0", "x"]),
    rows([1, 2, 11], names=["a1", "b1", "y"]),
    rows([1, 12], names=["a2", "z"]),
]


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1)])
@pytest.mark.parametrize("strategy", list(UpsertStrategy))
def test_duplicate_keys_across_chunks_last_wins_in_any_load_order(pg, pg_schema, make_cfg, order, strategy):
    cfg = make_cfg()
    gen = deduped(CHUNKS)
    assert [s for _, s in gen] == [2, 1, 0]  # keys 1 and 2: only the last row in source order is loaded

    def load(run_id, generation, i):
        table, superseded = gen[i]
        return load_arrow(cfg, DAY, run_id, i, table, generation=generation, superseded=superseded, strategy=strategy)

    paths = [load("run1", 1, i)["write_path"] for i in order]
    assert paths[0] == "copy"  # the first chunk's keys are all new: straight COPY
    upserts = {"merge", "on_conflict"} if strategy is UpsertStrategy.auto else {strategy.value}
    assert set(paths[1:]) <= {"copy", *upserts}  # a chunk whose key range is still free is COPYed too
    expected = [(1, "a2"), (2, "b1"), (10, "x"), (11, "y"), (12, "z")]
    assert [r[:2] for r in content(pg, pg_schema)] == expected
    run_no = pg.execute("SELECT DISTINCT run_no FROM sluice.load_ledger WHERE pipeline = %s", [cfg.name]).fetchall()
    assert pg.execute(f'SELECT DISTINCT _sluice_run FROM "{pg_schema}".t').fetchall() == run_no  # COPY stamped too
    summary = finalize(cfg, DAY, "run1", [{"index": i} for i in range(3)], generation=1)
    assert (summary["superseded"], summary["inserted"], summary["rows_loaded"]) == (3, 5, 8)
    ins0, upd0, _ = table_stats(pg, cfg)
    for i in reversed(order):  # a cleared run of unchanged data (same run_id, a new generation), other order
        path = load("run1", 2, i)["write_path"]
        assert path == ("merge" if strategy is UpsertStrategy.auto else strategy.value)  # all keys exist
    assert [r[:2] for r in content(pg, pg_schema)] == expected
    assert table_stats(pg, cfg)[:2] == (ins0, upd0)  # nothing rewritten, whatever the order
    assert finalize(cfg, DAY, "run1", [{"index": i} for i in range(3)], generation=2)["unchanged"] == 5


def test_a_new_run_overwrites_an_earlier_run(pg, pg_schema, make_cfg):
    cfg = make_cfg()
    load_arrow(cfg, DAY, "run1", 3, rows([1], names=["old"]), generation=1)
    load_arrow(cfg, DAY, "run2", 0, rows([1], names=["new"]), generation=2)  # lower chunk, but a later extraction
    assert content(pg, pg_schema)[0][1] == "new"
    load_arrow(cfg, DAY, "run1", 3, rows([1], names=["old"]), generation=1)  # a stale retry changes nothing
    assert content(pg, pg_schema)[0][1] == "new"


def test_version_column_never_rolls_a_key_back(pg, pg_schema, make_cfg):
    cfg = make_cfg(version_column="at")
    newer, older = DAY.start + timedelta(days=1), DAY.start
    load_arrow(cfg, DAY, "day2", 0, rows([1, 2], names=["new", "new"], at=[newer, newer]), generation=1)
    # re-running an older interval later (a higher generation) carries older versions of the same keys
    result = load_arrow(cfg, DAY, "day1", 0, rows([1, 2, 3], names=["old", "old", "old"], at=[older] * 3), generation=2)
    assert [r[:2] for r in content(pg, pg_schema)] == [(1, "new"), (2, "new"), (3, "old")]
    assert (result["inserted"], result["updated"], result["unchanged"]) == (1, 0, 2)
    newest = DAY.start + timedelta(days=2)
    load_arrow(cfg, DAY, "day3", 0, rows([1], names=["newest"], at=[newest]), generation=3)
    assert content(pg, pg_schema)[0][1] == "newest"


@pytest.mark.parametrize("strategy", [UpsertStrategy.merge, UpsertStrategy.on_conflict])
def test_newer_interval_wins_never_rolls_a_key_back(pg, pg_schema, make_cfg, strategy):
    """Data time over load time: the later interval's row stays, whichever interval is (re-)loaded later."""
    cfg = make_cfg(newer_interval_wins=True)
    day2 = Interval(DAY.end, DAY.end + timedelta(days=1))

    def load(interval, run_id, generation, ids, name):
        t = rows(ids, names=[name] * len(ids))
        return load_arrow(cfg, interval, run_id, 0, t, generation=generation, strategy=strategy)

    load(DAY, "day1", 1, [1, 2], "old")
    load(day2, "day2", 2, [1, 2], "new")
    assert [r[:2] for r in content(pg, pg_schema)] == [(1, "new"), (2, "new")]
    # day 1 re-run later (a cleared run, a backfill: a higher generation), with changed values and one new key
    result = load(DAY, "day1", 3, [1, 2, 3], "old-fixed")
    assert [r[:2] for r in content(pg, pg_schema)] == [(1, "new"), (2, "new"), (3, "old-fixed")]
    assert (result["inserted"], result["updated"], result["unchanged"]) == (1, 0, 2)
    stamped = pg.execute(f'SELECT id, _sluice_interval FROM "{pg_schema}".t ORDER BY id').fetchall()
    assert stamped == [(1, day2.end), (2, day2.end), (3, DAY.end)]
    load(day2, "day2", 4, [1, 3], "new-fixed")  # the same interval again: a correction, it wins
    assert [r[:2] for r in content(pg, pg_schema)] == [(1, "new-fixed"), (2, "new"), (3, "new-fixed")]
    # off (the default): the latest extraction wins, whichever interval it belongs to
    plain = make_cfg(table="plain")
    load_arrow(plain, day2, "day2", 0, rows([1], names=["new"]), generation=5, strategy=strategy)
    load_arrow(plain, DAY, "day1", 0, rows([1], names=["old"]), generation=6, strategy=strategy)
    assert pg.execute(f'SELECT name FROM "{pg_schema}".plain').fetchall() == [("old",)]


def test_newer_interval_wins_migrates_an_existing_table_in_place(pg, pg_schema, make_cfg):
    """A table made before _sluice_interval existed gets the column (catalog-only, its rows read NULL = older than
    any interval); from then on the later interval wins."""
    cfg = make_cfg(newer_interval_wins=True)
    day2 = Interval(DAY.end, DAY.end + timedelta(days=1))
    load_arrow(cfg, DAY, "day1", 0, rows([1], names=["before"]), generation=1)
    pg.execute(f'ALTER TABLE "{pg_schema}".t DROP COLUMN _sluice_interval')  # as an older Sluice created it
    relfile = pg.execute(f"SELECT pg_relation_filenode('\"{pg_schema}\".t')").fetchone()[0]
    result = load_arrow(cfg, day2, "day2", 0, rows([1, 2], names=["new", "new"]), generation=2)
    assert {"change": "add_interval_column", "column": "_sluice_interval", "type": "timestamp with time zone"} in (
        result["schema_changes"]
    )
    assert pg.execute(f"SELECT pg_relation_filenode('\"{pg_schema}\".t')").fetchone()[0] == relfile  # no rewrite
    assert [r[:2] for r in content(pg, pg_schema)] == [(1, "new"), (2, "new")]  # NULL counts as older
    load_arrow(cfg, DAY, "day1", 0, rows([1, 2], names=["old", "old"]), generation=3)
    assert [r[:2] for r in content(pg, pg_schema)] == [(1, "new"), (2, "new")]
    again = load_arrow(cfg, day2, "day2", 1, rows([3], names=["x"]), generation=4)
    assert again["schema_changes"] == []  # migrated once


# ------------------------------------------------------------------------------------------------ write modes


def test_append_is_idempotent_per_interval_and_needs_no_key(pg, pg_schema, make_cfg):
    cols = [{"name": "id", "type": "bigint", "nullable": False}, {"name": "name", "type": "text"}]
    cfg = make_cfg(cols, write_mode="append", primary_key=[])
    t = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]})
    pg.execute(f'CREATE TABLE "{pg_schema}".t (id bigint NOT NULL, name text)')  # an event log: no key
    load_arrow(cfg, DAY, "run1", 0, t, generation=1)
    load_arrow(cfg, DAY, "run1", 0, t, generation=1)  # a retry after commit: the ledger row, nothing else
    load_arrow(cfg, DAY, "run1", 0, t, generation=2)  # a cleared run: replaces generation 1's rows
    assert sorted(content(pg, pg_schema, cols="id, name")) == [(1, "a"), (2, "b")]
    next_day = Interval(DAY.end, DAY.end + timedelta(days=1))
    load_arrow(cfg, next_day, "run2", 0, t, generation=3)  # another interval appends
    assert sorted(content(pg, pg_schema, cols="id, name")) == [(1, "a"), (1, "a"), (2, "b"), (2, "b")]
    created = make_cfg(cols, write_mode="append", table="created")
    load_arrow(created, DAY, "run1", 0, t, generation=1)
    load_arrow(created, DAY, "run9", 0, t, generation=4)  # a second run of the interval: no key to violate
    assert pg.execute(f'SELECT count(*) FROM "{pg_schema}".created').fetchone()[0] == 2
    assert [
        r[0]
        for r in pg.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'created' ORDER BY ordinal_position",
            [pg_schema],
        )
    ] == ["id", "name", "_sluice_run", "_sluice_seq", "_sluice_interval"]


def test_replace_interval_deletes_the_interval_once_per_run(pg, pg_schema, make_cfg):
    cfg = make_cfg(write_mode="replace_interval", interval_column="at")
    inside = [DAY.start + timedelta(hours=h) for h in (0, 5, 23)]
    before, after = DAY.start - timedelta(microseconds=1), DAY.end
    load_arrow(cfg, DAY, "run1", 0, rows([1, 2, 3, 90, 91], at=[*inside, before, after]), generation=1)
    # generation 2: the source now has other rows; chunk 1 commits first, so it is the one that deletes
    load_arrow(cfg, DAY, "run1", 1, rows([5], at=[inside[1]]), generation=2)
    load_arrow(cfg, DAY, "run1", 0, rows([1, 4], names=["again", "new"], at=inside[:2]), generation=2)
    assert [r[:2] for r in content(pg, pg_schema)] == [(1, "again"), (4, "new"), (5, "n5"), (90, "n90"), (91, "n91")]
    summary = finalize(cfg, DAY, "run1", [{"index": 0}, {"index": 1}], generation=2)
    assert summary["deleted"] == 3 and summary["inserted"] == 3
    # a source with no rows for an interval that holds rows: refused before anything is deleted
    with pytest.raises(EmptyingRefused, match="allow_empty") as refused:
        refuse_emptying(cfg, DAY, [{"index": 0, "rows_good": 0}])
    assert "its last successful load (run run1, generation 2," in str(refused.value)
    assert "loaded 3 rows" in str(refused.value)
    assert len(content(pg, pg_schema)) == 5
    refuse_emptying(cfg, Interval(DAY.end + timedelta(days=1), DAY.end + timedelta(days=2)), [])  # none stored
    allowing = cfg.model_copy(update={"target": cfg.target.model_copy(update={"allow_empty": True})})
    refuse_emptying(allowing, DAY, [])
    assert finalize(allowing, DAY, "run3", [], generation=3)["deleted"] == 3
    assert [r[0] for r in content(pg, pg_schema)] == [90, 91]


def test_replace_interval_gate_compares_with_the_last_successful_load(pg, pg_schema, make_cfg):
    """The interval's rows were deleted outside Sluice, but its last successful load had rows: an empty source is
    still refused (it is the source that went empty), naming that load; a source with rows passes."""
    cfg = make_cfg(write_mode="replace_interval", interval_column="at")
    load_arrow(cfg, DAY, "run1", 0, rows([1, 2]), generation=1)
    finalize(cfg, DAY, "run1", [{"index": 0}], generation=1)
    pg.execute(f'DELETE FROM "{pg_schema}".t')
    with pytest.raises(EmptyingRefused, match=r"generation 1, .* loaded 2 rows, and .* holds no rows"):
        refuse_emptying(cfg, DAY, [{"index": 0, "rows_good": 0}])
    refuse_emptying(cfg, DAY, [{"index": 0, "rows_good": 1}])


# ------------------------------------------------------------------------------------------------ schema


def test_column_mismatch_is_a_clear_error_and_nothing_is_loaded(pg, pg_schema, make_cfg):
    cfg = make_cfg()
    pg.execute(
        f'CREATE TABLE "{pg_schema}".t (id bigint PRIMARY KEY, name varchar(5), legacy int NOT NULL, at timestamptz)'
    )
    with pytest.raises(SchemaMismatch) as err:
        load_arrow(cfg, DAY, "run1", 0, rows([1, 2]))
    msg = str(err.value)
    assert f"{pg_schema}.t" in msg and "Nothing was loaded" in msg
    assert "name is character varying(5) in the table but text in the config" in msg
    assert "amount (numeric(12,2)) is missing in the table" in msg
    assert "legacy (integer) is in the table but not declared" in msg
    assert "at is" not in msg and "at (" not in msg and "id " not in msg  # matching columns are not named
    assert pg.execute(f'SELECT count(*) FROM "{pg_schema}".t').fetchone()[0] == 0
    assert ledger(pg, cfg) == []


def test_primary_key_mismatch_is_named(pg, pg_schema, make_cfg):
    cfg = make_cfg()
    pg.execute(f'CREATE TABLE "{pg_schema}".t (id bigint NOT NULL, name text, amount numeric(12,2), at timestamptz)')
    with pytest.raises(SchemaMismatch, match=r"primary key is \(none\) in the table but \(id\) in the config"):
        load_arrow(cfg, DAY, "run1", 0, rows([1]))


def test_evolve_adds_nullable_columns_and_records_them(pg, pg_schema, make_cfg):
    cfg = make_cfg(on_extra_columns="evolve")
    pg.execute(f'CREATE TABLE "{pg_schema}".t (id bigint PRIMARY KEY, name text, at timestamptz)')
    pg.execute(f"INSERT INTO \"{pg_schema}\".t VALUES (1, 'old', now())")
    t = rows([1, 2]).append_column("color", pa.array(["red", None]))
    result = load_arrow(cfg, DAY, "run1", 0, t)
    assert [(c["change"], c["column"]) for c in result["schema_changes"]] == [
        ("add_column", "amount"),
        ("add_column", "color"),
        ("add_hidden_columns", None),
    ]
    assert content(pg, pg_schema, cols="id, name, color") == [(1, "n1", "red"), (2, "n2", None)]
    summary = finalize(cfg, DAY, "run1", [result])
    assert [c["column"] for c in summary["schema_changes"]] == ["amount", "color", None]
    again = load_arrow(cfg, DAY, "run2", 0, t)  # the evolved table now matches: nothing to change
    assert (again["schema_changes"], again["updated"]) == ([], 0)


def test_parallel_chunks_adding_the_same_column_do_not_deadlock(pg, pg_schema, make_cfg, warehouse_dsn):
    """Both chunks bring a new column. The schema step runs under the advisory lock in its own transaction and no
    load transaction reads the target before taking that lock, so the two serialize; one change is recorded."""
    cfg = make_cfg(on_extra_columns="evolve")
    load_arrow(cfg, DAY, "run0", 0, rows([1]))
    with psycopg.connect(warehouse_dsn) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{pg_schema}.t"])
        threads = [
            in_thread(load_arrow, cfg, DAY, "run1", i, rows(ids).append_column("color", pa.array(["c"] * len(ids))))
            for i, ids in enumerate(([10, 11], [1, 20]))
        ]
        wait_for(
            pg,
            "SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name LIKE %s AND wait_event = 'advisory'",
            [f"sluice load {cfg.name}#%"],
        )
        holder.rollback()
    for thread, _ in threads:
        thread.join(60)
    assert [box.get("error") for _, box in threads] == [None, None]
    recorded = pg.execute(
        "SELECT change, column_name FROM sluice.schema_changes WHERE pipeline = %s AND run_id = 'run1'", [cfg.name]
    ).fetchall()
    assert recorded == [("add_column", "color")]
    assert content(pg, pg_schema, cols="id, color") == [(1, "c"), (10, "c"), (11, "c"), (20, "c")]


# ------------------------------------------------------------------------------------------------ exactly once


def test_same_run_twice_is_one_ledger_row(pg, pg_schema, make_cfg):
    cfg = make_cfg()
    first = load_arrow(cfg, DAY, "run1", 0, rows([1, 2]), rows_quarantined=1)
    second = load_arrow(cfg, DAY, "run1", 0, rows([1, 2]), rows_quarantined=1)
    assert second["replayed"] and {k: second[k] for k in ("inserted", "rows_in", "checksum")} == {
        k: first[k] for k in ("inserted", "rows_in", "checksum")
    }
    assert ledger(pg, cfg) == [(0, "run1")]
    with pytest.raises(StagedChunkChanged, match="Files of one generation never change"):
        load_arrow(cfg, DAY, "run1", 0, rows([1, 2, 3]), rows_quarantined=1)


def test_conservation_is_checked_before_loading(pg, pg_schema, make_cfg):
    cfg = make_cfg()
    with pytest.raises(ConservationError, match="rows_in 5 != good rows 2 \\+ quarantined 1"):
        load_arrow(cfg, DAY, "run1", 0, rows([1, 2]), rows_in=5, rows_quarantined=1)


@pytest.mark.parametrize("blocker", ["advisory", "ledger"])
def test_killed_backend_commits_nothing_and_the_retry_loads(pg, pg_schema, make_cfg, warehouse_dsn, blocker):
    """The loader is killed (pg_terminate_backend) mid-transaction: after its COPY while waiting for the table
    lock, or after its MERGE while waiting to write the ledger row. Nothing survives; the retry loads cleanly."""
    cfg = make_cfg()
    load_arrow(cfg, DAY, "run0", 0, rows([100]))  # bookkeeping tables and target exist
    pg.execute(f'DROP TABLE "{pg_schema}".t')  # ... and the crashed attempt is the one that creates the table
    with psycopg.connect(warehouse_dsn) as holder:
        if blocker == "advisory":
            holder.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{pg_schema}.t"])
        else:
            holder.execute("LOCK TABLE sluice.load_ledger IN EXCLUSIVE MODE")
        thread, box = in_thread(load_arrow, cfg, DAY, "run1", 0, rows(list(range(1000))))
        wait_for(
            pg,
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock')",
            [f"sluice load {cfg.name}#0"],
        )
        pid = pg.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [f"sluice load {cfg.name}#0"]
        ).fetchone()[0]
        assert pg.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
        thread.join(30)
        holder.rollback()
    assert isinstance(box.get("error"), psycopg.OperationalError)
    if blocker == "advisory":  # killed in the schema step: the table was never created
        assert pg.execute("SELECT to_regclass(%s)", [f"{pg_schema}.t"]).fetchone()[0] is None
    else:  # the schema step committed on its own; the rows did not
        assert pg.execute(f'SELECT count(*) FROM "{pg_schema}".t').fetchone()[0] == 0
    assert ledger(pg, cfg, "run1") == []
    retry = load_arrow(cfg, DAY, "run1", 0, rows(list(range(1000))))
    assert (retry["inserted"], retry["replayed"]) == (1000, False)
    assert ledger(pg, cfg, "run1") == [(0, "run1")]


def test_concurrent_loads_of_one_table_wait_on_the_advisory_lock(pg, pg_schema, make_cfg, warehouse_dsn):
    cfg = make_cfg()
    load_arrow(cfg, DAY, "run0", 9, rows([1]))
    with psycopg.connect(warehouse_dsn) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{pg_schema}.t"])
        gen = deduped(CHUNKS)
        threads = [in_thread(load_arrow, cfg, DAY, "run1", i, c, superseded=s) for i, (c, s) in enumerate(gen)]
        wait_for(
            pg,
            "SELECT count(*) = 3 FROM pg_stat_activity WHERE application_name LIKE %s AND wait_event = 'advisory'",
            [f"sluice load {cfg.name}#%"],
        )
        holder.rollback()  # releases the lock: the merge goes alone, the straight COPYs side by side
    for thread, _ in threads:
        thread.join(60)
    assert [box.get("error") for _, box in threads] == [None, None, None]
    assert [r[:2] for r in content(pg, pg_schema)] == [(1, "a2"), (2, "b1"), (10, "x"), (11, "y"), (12, "z")]
    assert ledger(pg, cfg, "run1") == [(0, "run1"), (1, "run1"), (2, "run1")]


def before_commit_key(pipeline: str) -> str:
    return failpoints.lock_key(pipeline, failpoints.Point.load_before_commit)


@pytest.fixture
def held_before_commit(monkeypatch, warehouse_dsn):
    """Holds the load.before_commit failpoint of a pipeline: hold(pipeline) -> the holding connection."""
    monkeypatch.setenv(failpoints.ENV, "1")
    conns = []

    def hold(pipeline: str) -> psycopg.Connection:
        conn = psycopg.connect(warehouse_dsn, autocommit=True)
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [before_commit_key(pipeline)])
        conns.append(conn)
        return conn

    yield hold
    for conn in conns:
        conn.close()


def test_upsert_chunks_into_new_key_ranges_load_side_by_side(pg, pg_schema, make_cfg, held_before_commit):
    """Chunks whose key ranges the target holds nothing of take the table lock shared: both reach the point just
    before COMMIT together (with an exclusive lock the second would wait for the first to commit)."""
    cfg = make_cfg()
    load_arrow(cfg, DAY, "run0", 9, rows([1]))
    hold = held_before_commit(cfg.name)
    threads = [in_thread(load_arrow, cfg, DAY, "run1", i, rows(ids)) for i, ids in enumerate(([10, 11], [20, 21]))]
    wait_for(pg, f"SELECT count(*) = 2 FROM ({failpoints.waiting_sql()}) w", {"key": before_commit_key(cfg.name)})
    held = pg.execute(
        "SELECT l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.granted AND l.objid::int = hashtext(%s) AND a.application_name LIKE %s",
        [f"{pg_schema}.t", f"sluice load {cfg.name}#%"],
    ).fetchall()
    assert held == [("ShareLock",), ("ShareLock",)]
    hold.close()
    for thread, _ in threads:
        thread.join(60)
    assert [box["result"]["write_path"] for _, box in threads] == ["copy", "copy"]
    assert [r[0] for r in content(pg, pg_schema)] == [1, 10, 11, 20, 21]
    assert ledger(pg, cfg, "run1") == [(0, "run1"), (1, "run1")]


def test_two_runs_copying_the_same_new_keys_at_once_end_as_the_later_generation(
    pg, pg_schema, make_cfg, held_before_commit
):
    """Generation 1 COPYs keys 1-3 straight in and waits before COMMIT; generation 2 probes the same range, finds
    nothing committed and COPYs too, so the primary key makes it wait for generation 1. Once that commits,
    generation 2's COPY fails on the key, rolls back and merges under the exclusive lock: its rows win (the later
    extraction), and both ledger rows count what they wrote."""
    cfg = make_cfg()
    load_arrow(cfg, DAY, "run0", 9, rows([100]))
    hold = held_before_commit(cfg.name)
    first, box1 = in_thread(load_arrow, cfg, DAY, "run1", 0, rows([1, 2, 3], names=["g1"] * 3), generation=1)
    wait_for(pg, f"SELECT count(*) = 1 FROM ({failpoints.waiting_sql()}) w", {"key": before_commit_key(cfg.name)})
    second, box2 = in_thread(load_arrow, cfg, DAY, "run2", 0, rows([1, 2, 3], names=["g2"] * 3), generation=2)
    wait_for(
        pg,
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = %s AND wait_event = 'transactionid')",
        [f"sluice load {cfg.name}#0"],
    )
    hold.close()  # generation 1 commits; generation 2's COPY fails on the key and it merges instead
    for thread in (first, second):
        thread.join(60)
    assert (box1.get("error"), box2.get("error")) == (None, None)
    assert box1["result"]["write_path"] == "copy" and box1["result"]["inserted"] == 3
    assert box2["result"]["write_path"] != "copy" and (box2["result"]["inserted"], box2["result"]["updated"]) == (0, 3)
    assert [r[:2] for r in content(pg, pg_schema)] == [(1, "g2"), (2, "g2"), (3, "g2"), (100, "n100")]
    assert ledger(pg, cfg) == [(9, "run0"), (0, "run1"), (0, "run2")]


# ------------------------------------------------------------------------------------------------ finalize


def quarantined(pg, cfg, run_id: str, n: int) -> None:
    """`n` rows in sluice.quarantine for the run's generation 0: what validation leaves behind when a ledger row
    says it quarantined rows (finalize reconciles the two once the table exists, so the test does not depend on
    whether an earlier test created it)."""
    from sluice.validate.quarantine import ensure_quarantine_table

    ensure_quarantine_table(pg)
    for _ in range(n):
        pg.execute(
            "INSERT INTO sluice.quarantine (pipeline, run_id, generation, interval_start, interval_end, chunk, row, "
            "reasons, reason) VALUES (%s, %s, 0, %s, %s, 0, '{}', '[]', 'test')",
            (cfg.name, run_id, DAY.start, DAY.end),
        )


def test_finalize_summarizes_and_records_the_run(pg, pg_schema, make_cfg):
    cfg = make_cfg()
    results = [load_arrow(cfg, DAY, "run1", i, CHUNKS[i], rows_quarantined=i) for i in range(3)]
    quarantined(pg, cfg, "run1", 3)
    summary = finalize(cfg, DAY, "run1", results)
    assert {k: summary[k] for k in ("chunks", "rows_in", "rows_loaded", "rows_quarantined", "status")} == {
        "chunks": 3,
        "rows_in": 11,
        "rows_loaded": 8,
        "rows_quarantined": 3,
        "status": "success",
    }
    assert summary["table"].splitlines()[0].split()[:4] == ["chunk", "rows_in", "rows_loaded", "rows_quarantined"]
    assert summary["table"].splitlines()[-1].split()[:4] == ["total", "11", "8", "3"]
    assert pg.execute(
        "SELECT status, rows_in FROM sluice.run_summary WHERE pipeline = %s AND run_id = 'run1'", [cfg.name]
    ).fetchone() == ("success", 11)


def test_finalize_detects_a_missing_ledger_row(pg, pg_schema, make_cfg):
    cfg = make_cfg()
    first = load_arrow(cfg, DAY, "run1", 0, CHUNKS[0])
    with pytest.raises(ConservationError, match="chunk 1 has no ledger row"):
        finalize(cfg, DAY, "run1", [first, {"index": 1, "rows_in": 3, "rows_loaded": 3, "rows_quarantined": 0}])
    status, problems = pg.execute(
        "SELECT status, problems FROM sluice.run_summary WHERE pipeline = %s", [cfg.name]
    ).fetchone()
    assert status == "failed" and problems == ["chunk 1 has no ledger row (it was never loaded)"]


def test_load_chunk_reads_the_staged_good_rows(pg, pg_schema, make_cfg):
    from sluice.staging import StagingStore

    cfg = make_cfg()
    store = StagingStore(cfg.staging, cfg.name, DAY, "manual__1")
    key = store.derived_key(0, "good")
    store.write_table(key, rows([1, 2, 3]))
    report = {"index": 0, "rows_in": 4, "rows_good": 3, "rows_quarantined": 1, "good_key": key}
    result = load_chunk(cfg, DAY, "manual__1", report)
    assert (result["rows_loaded"], result["inserted"]) == (3, 3)
    empty = load_chunk(
        cfg, DAY, "manual__1", {"index": 1, "rows_in": 2, "rows_good": 0, "rows_quarantined": 2, "good_key": None}
    )
    assert (empty["rows_loaded"], empty["rows_quarantined"]) == (0, 2)
    quarantined(pg, cfg, "manual__1", 3)
    assert finalize(cfg, DAY, "manual__1", [result, empty])["rows_in"] == 6


def test_new_key_ranges_skip_the_merge_and_overlaps_do_not(pg, pg_schema, make_cfg):
    cols = [
        {"name": "k", "type": "text", "nullable": False},
        {"name": "n", "type": "integer", "nullable": False},
        {"name": "v", "type": "text"},
    ]
    cfg = make_cfg(cols, primary_key=["k", "n"])

    def chunk(keys, value):
        return pa.table(
            {"k": [k for k, _ in keys], "n": pa.array([n for _, n in keys], pa.int32()), "v": [value] * len(keys)}
        )

    paths = [
        load_arrow(cfg, DAY, "run1", i, t)["write_path"]
        for i, t in enumerate(
            [
                chunk([("a", 1), ("a", 2), ("b", 1)], "x"),
                chunk(
                    [("a", 3), ("a", 4)], "y"
                ),  # inside ("a", *) but after ("a", 2): a new range of the composite key
                chunk([("a", 0), ("b", 1), ("z", 1)], "z"),  # spans stored keys: an upsert (1 of 3 exists: ON CONFLICT)
                chunk([("B", 1), ("é", 1)], "w"),  # whatever the collation says, the result is the same
            ]
        )
    ]
    assert paths[:3] == ["insert_new", "insert_new", "on_conflict"]
    assert {r[:3] for r in content(pg, pg_schema, cols="k, n, v")} == {
        ("a", 0, "z"),
        ("a", 1, "x"),
        ("a", 2, "x"),
        ("a", 3, "y"),
        ("a", 4, "y"),
        ("b", 1, "z"),
        ("z", 1, "z"),
        ("B", 1, "w"),
        ("é", 1, "w"),
    }
