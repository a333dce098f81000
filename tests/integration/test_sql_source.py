"""The SQL source: its statements as strings (no database), then against a real PostgreSQL (both read paths: COPY
and the server-side cursor) and a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from sluice.config import PipelineConfig
from sluice.interval import Interval
from sluice.sources import iter_source, sql, sql_postgres
from sluice.sources.base import ORIGIN_COLS
from sqlalchemy.dialects import postgresql, sqlite

integration = pytest.mark.integration
PG, SQLITE = postgresql.psycopg.dialect(), sqlite.dialect()
DAY1 = Interval(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
DAY2 = Interval(datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))


# ---------------------------------------------------------------- statements as strings


def test_table_query_quotes_identifiers_and_is_half_open():
    assert sql.table_query("sales.orders", "o_orderdate", PG) == (
        'SELECT * FROM "sales"."orders" WHERE "o_orderdate" >= :interval_start AND "o_orderdate" < :interval_end '
        'ORDER BY "o_orderdate"'
    )
    assert sql.table_query("Orders", None, PG) == 'SELECT * FROM "Orders"'


def test_sqlite_predicate_normalizes_text_timestamps():
    assert sql.table_query("events", "ts", SQLITE) == (
        'SELECT * FROM "events" WHERE datetime("ts") >= datetime(:interval_start) AND datetime("ts") < '
        'datetime(:interval_end) ORDER BY "ts"'
    )


@pytest.mark.parametrize("table", ['orders"; DROP TABLE x; --', "a.b.c", "1abc", "", "sch.", "x y"])
def test_bad_table_names_are_refused(table):
    with pytest.raises(sql.SqlSourceError, match="not a valid"):
        sql.quote_table(table, PG)


def test_bad_column_name_is_refused():
    with pytest.raises(sql.SqlSourceError, match="not a valid identifier"):
        sql.table_query("t", "a) OR (1=1", PG)


def test_session_statements_bind_the_timeout():
    assert sql.session_statements(PG, 90) == [
        ("SET TRANSACTION READ ONLY", {}),
        ("SELECT set_config('statement_timeout', :timeout, true)", {"timeout": "90s"}),
        ("SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO', true)", {}),
    ]
    assert sql.session_statements(SQLITE, 90) == [("PRAGMA query_only = ON", {})]


def test_copy_path_reads_bounds_from_bound_session_settings():
    query = "SELECT '100%' AS p, ts::date FROM t WHERE ts >= :interval_start AND ts < :interval_end;"
    select = sql_postgres.pg_select(query)
    assert select == (
        "SELECT '100%' AS p, ts::date FROM t WHERE ts >= current_setting('sluice.interval_start')"
        "::timestamptz AND ts < current_setting('sluice.interval_end')::timestamptz"
    )
    assert sql_postgres.pg_copy_statement("SELECT 1 -- note") == "COPY (\nSELECT 1 -- note\n) TO STDOUT (FORMAT csv)"
    assert sql_postgres.pg_bind_statement() == (
        "SELECT set_config('sluice.interval_start', %(interval_start)s, true), "
        "set_config('sluice.interval_end', %(interval_end)s, true)"
    )
    with pytest.raises(sql.SqlSourceError, match="unknown bind parameter :customer"):
        sql_postgres.pg_select("SELECT * FROM t WHERE c = :customer")


def test_bind_values_per_dialect():
    assert sql.bind_values(DAY1, PG) == {"interval_start": DAY1.start, "interval_end": DAY1.end}
    assert sql.bind_values(DAY1, SQLITE) == {
        "interval_start": "2024-01-01 00:00:00",
        "interval_end": "2024-01-02 00:00:00",
    }


# ---------------------------------------------------------------- helpers


def make_cfg(conn_id: str, chunk_rows: int = 1000, **source) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": "sql_test",
            "start_date": "2024-01-01",
            "source": {"kind": "sql", "conn_id": conn_id, **source},
            "staging": {"url": "file:///tmp/unused", "conn_id": None, "chunk_rows": chunk_rows},
            "target": {
                "table": "t",
                "primary_key": ["id"],
                "columns": [{"name": "id", "type": "bigint", "nullable": False}],
            },
        }
    )


def read(cfg: PipelineConfig, interval: Interval = DAY1):
    rejects = []
    batches = [b.drop_columns(list(ORIGIN_COLS)) for b in iter_source(cfg, interval, rejects.append)]
    table = pa.Table.from_batches(batches) if batches else None
    return table, batches, rejects


def ids(table) -> list[int]:
    return sorted(table.column("id").to_pylist()) if table is not None else []


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(params=["copy", "cursor"])
def pg_source(request, pg, pg_schema, warehouse_dsn, monkeypatch):
    """The warehouse database plays the source, in a fresh schema, through its own Airflow connection."""
    monkeypatch.setattr(sql, "PG_COPY", request.param == "copy")
    conn_id = f"src_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", warehouse_dsn)
    pg.execute(f"""CREATE TABLE "{pg_schema}".events (
        id bigint PRIMARY KEY, ts timestamptz NOT NULL, day date, local_ts timestamp, amount numeric(12,2),
        big numeric, ratio double precision, flag boolean, note text, doc jsonb, raw bytea)""")
    rows = [  # the boundary rows: exactly one interval each
        (1, "2024-01-01 00:00:00+00", "2024-01-01"),
        (2, "2024-01-01 23:59:59.999999+00", "2024-01-01"),
        (3, "2024-01-02 00:00:00+00", "2024-01-02"),
        (4, "2024-01-01 23:30:00-05", "2024-01-02"),
        (5, "2023-12-31 23:59:59+00", "2023-12-31"),
    ]
    with pg.cursor() as cur:
        cur.executemany(f'INSERT INTO "{pg_schema}".events (id, ts, day) VALUES (%s, %s, %s)', rows)
    return conn_id, pg_schema


@integration
@pytest.mark.parametrize("column", ["ts", "day"])
def test_pg_half_open_intervals_put_each_boundary_row_in_one_interval(pg_source, column):
    conn_id, schema = pg_source
    cfg = make_cfg(conn_id, table=f"{schema}.events", incremental_column=column)
    day1, day2 = ids(read(cfg, DAY1)[0]), ids(read(cfg, DAY2)[0])
    assert (day1, day2) == ([1, 2], [3, 4])


@integration
def test_pg_types_nulls_unicode_and_a_1mb_value(pg_source, pg):
    conn_id, schema = pg_source
    big = "ß東🚀\n," * 200_000  # > 1 MB, with newlines and commas (CSV-hostile)
    pg.execute(
        f'UPDATE "{schema}".events SET local_ts = %s, amount = %s, big = %s, ratio = %s, flag = %s, note = %s, '
        f"doc = %s, raw = %s WHERE id = 1",
        [
            datetime(2024, 1, 1, 8, 30),
            Decimal("-12.50"),
            Decimal("12345678901234567890.123456789"),
            0.1,
            True,
            big,
            json.dumps({"a": [1, "ü"]}),
            b"\x00\x01\xff",
        ],
    )
    pg.execute(f"""UPDATE "{schema}".events SET note = '' WHERE id = 2""")
    table, _, rejects = read(make_cfg(conn_id, table=f"{schema}.events", incremental_column="ts"))
    assert not rejects
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    assert types == {
        "id": pa.int64(),
        "ts": pa.timestamp("us", tz="UTC"),
        "day": pa.date32(),
        "local_ts": pa.timestamp("us"),
        "amount": pa.decimal128(12, 2),
        "big": pa.string(),
        "ratio": pa.float64(),
        "flag": pa.bool_(),
        "note": pa.string(),
        "doc": pa.string(),
        "raw": pa.binary(),
    }
    one, two = table.to_pylist()
    assert one["note"] == big and one["amount"] == Decimal("-12.50") and one["big"] == "12345678901234567890.123456789"
    assert one["ratio"] == 0.1 and one["flag"] is True and one["raw"] == b"\x00\x01\xff"
    assert json.loads(one["doc"]) == {"a": [1, "ü"]} and one["local_ts"] == datetime(2024, 1, 1, 8, 30)
    assert one["ts"] == datetime(2024, 1, 1, tzinfo=UTC) and one["day"] == date(2024, 1, 1)
    assert two["note"] == "" and all(
        two[c] is None for c in ("local_ts", "amount", "big", "ratio", "flag", "doc", "raw")
    )


@integration
def test_pg_batches_are_bounded_by_chunk_rows(pg_source, pg):
    conn_id, schema = pg_source
    pg.execute(f"""INSERT INTO "{schema}".events (id, ts) SELECT 100 + g, '2024-01-01'::timestamptz + g * interval '1s'
                   FROM generate_series(1, 2500) g""")
    _, batches, _ = read(make_cfg(conn_id, chunk_rows=1000, table=f"{schema}.events", incremental_column="ts"))
    assert all(b.num_rows <= 1000 for b in batches) and sum(b.num_rows for b in batches) == 2502


@integration
def test_pg_query_with_binds_casts_and_percent(pg_source):
    conn_id, schema = pg_source
    query = (
        f"SELECT id, 'x%' AS pct, ts::date AS d FROM \"{schema}\".events\n"
        "WHERE ts >= :interval_start AND ts < :interval_end ORDER BY id"
    )
    table, _, _ = read(make_cfg(conn_id, query=query), DAY2)
    assert table.to_pylist() == [
        {"id": 3, "pct": "x%", "d": date(2024, 1, 2)},
        {"id": 4, "pct": "x%", "d": date(2024, 1, 2)},
    ]


@integration
def test_pg_interval_with_no_rows(pg_source):
    conn_id, schema = pg_source
    empty = Interval(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC))
    assert read(make_cfg(conn_id, table=f"{schema}.events", incremental_column="ts"), empty) == (None, [], [])


@integration
def test_pg_syntax_error_names_the_query_and_the_database_message(pg_source):
    conn_id, schema = pg_source
    cfg = make_cfg(conn_id, query=f'SELEC id\nFROM "{schema}".events WHERE ts >= :interval_start')
    with pytest.raises(sql.SqlSourceError, match=r'(?s)syntax error at or near "SELEC".*query starts: SELEC id'):
        read(cfg)


@integration
def test_pg_read_is_read_only_and_has_a_statement_timeout(pg_source, pg):
    conn_id, schema = pg_source
    pg.execute(f'CREATE SEQUENCE "{schema}".counter')
    write = f'SELECT id, nextval(\'"{schema}".counter\') AS n FROM "{schema}".events WHERE ts >= :interval_start'
    with pytest.raises(sql.SqlSourceError, match=r"cannot execute nextval\(\) in a read-only transaction"):
        read(make_cfg(conn_id, query=write))
    slow = f'SELECT id FROM "{schema}".events, pg_sleep(2) WHERE ts >= :interval_start AND ts < :interval_end'
    with pytest.raises(sql.SqlSourceError, match="statement timeout"):
        read(make_cfg(conn_id, query=slow, statement_timeout_seconds=1))


@integration
def test_pg_column_renamed_upstream_is_reported_under_its_new_name(pg_source, pg):
    conn_id, schema = pg_source
    cfg = make_cfg(conn_id, table=f"{schema}.events", incremental_column="ts")
    assert "note" in read(cfg)[0].schema.names
    pg.execute(f'ALTER TABLE "{schema}".events RENAME COLUMN note TO remark')
    names = read(cfg)[0].schema.names
    assert "remark" in names and "note" not in names


@integration
def test_pg_duplicate_output_names_are_refused(pg_source):
    conn_id, schema = pg_source
    cfg = make_cfg(conn_id, query=f'SELECT id, id FROM "{schema}".events WHERE ts >= :interval_start')
    with pytest.raises(sql.SqlSourceError, match=r"\['id'\] more than once"):
        read(cfg)


# ---------------------------------------------------------------- SQLite


@pytest.fixture
def sqlite_source(tmp_path, monkeypatch):
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, qty INTEGER, note TEXT)")
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?)",
            [
                (1, "2024-01-01 00:00:00", 1, "Zürich"),
                (2, "2024-01-01T23:59:59", None, None),
                (3, "2024-01-02 00:00:00", 3, "東京 🚀"),
                (4, "2024-01-02T01:00:00+02:00", 4, "x" * 1_100_000),
                (5, "2024-01-02", 5, "date only"),
            ],
        )
    conn_id = f"lite_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", f"sqlite:///{path}")  # -> sqlite:////abs/path.db
    return conn_id, path


@integration
def test_sqlite_half_open_intervals_on_text_timestamps(sqlite_source):
    conn_id, _ = sqlite_source
    cfg = make_cfg(conn_id, table="events", incremental_column="ts")
    assert (ids(read(cfg, DAY1)[0]), ids(read(cfg, DAY2)[0])) == ([1, 2, 4], [3, 5])  # 01:00+02:00 is 23:00 UTC


@integration
def test_sqlite_values_nulls_unicode_and_a_1mb_value(sqlite_source):
    conn_id, _ = sqlite_source
    table, _, rejects = read(make_cfg(conn_id, query="SELECT * FROM events ORDER BY id"))
    assert not rejects and table.schema.types == [pa.int64(), pa.string(), pa.int64(), pa.string()]
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows[1]["note"] == "Zürich" and rows[2]["qty"] is None and rows[2]["note"] is None
    assert rows[3]["note"] == "東京 🚀" and len(rows[4]["note"]) == 1_100_000


@integration
def test_sqlite_value_that_does_not_fit_its_column_is_rejected_not_dropped(sqlite_source):
    conn_id, path = sqlite_source
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", [(i, "2024-01-05", i, None) for i in range(10, 20)])
        db.execute("UPDATE events SET qty = 'lots' WHERE id = 15")
    table, _, rejects = read(make_cfg(conn_id, chunk_rows=4, query="SELECT id, qty FROM events ORDER BY id"))
    assert 15 not in ids(table) and len(ids(table)) + len(rejects) == 15
    assert len(rejects) == 1 and "column qty: 'lots' does not fit int64" in rejects[0].reason
    assert json.loads(rejects[0].raw) == {"id": 15, "qty": "lots"} and rejects[0].line == 11


@integration
def test_sqlite_syntax_error_and_read_only(sqlite_source):
    conn_id, _ = sqlite_source
    with pytest.raises(sql.SqlSourceError, match=r"(?s)syntax error.*query starts: SELEC"):
        read(make_cfg(conn_id, query="SELEC * FROM events"))
    with pytest.raises(sql.SqlSourceError, match="readonly"):
        read(make_cfg(conn_id, query="DELETE FROM events RETURNING id"))
