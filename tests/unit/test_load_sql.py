"""Every statement of the load path, read as a string: quoting, placeholders, and refusal of unsafe identifiers.
Plus the Arrow -> COPY CSV preparation, which is pure logic."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from sluice.loading import arrow_copy
from sluice.loading import sql as q

BAD_NAMES = ['a"b', "a;drop table x", "1abc", "", "a b", "x" * 64, "é", "a-b", "t.c", None, "a\x00"]


def s(composed) -> str:
    return composed.as_string(None)


# ------------------------------------------------------------------------------------------------ identifiers


@pytest.mark.parametrize("name", BAD_NAMES)
def test_ident_rejects_unsafe_names(name):
    with pytest.raises(q.UnsafeIdentifier):
        q.ident(name)


def test_ident_quotes_and_keeps_case():
    assert s(q.ident("Order_2")) == '"Order_2"'
    assert s(q.qualified("public", "select")) == '"public"."select"'


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize(
    "build",
    [
        lambda n: q.create_schema(n),
        lambda n: q.create_table("s", n, [q.Col("id", "bigint")], ["id"]),
        lambda n: q.create_table(n, "t", [q.Col("id", "bigint")], ["id"]),
        lambda n: q.create_table("s", "t", [q.Col(n, "bigint")], ["id"]),
        lambda n: q.create_table("s", "t", [q.Col("id", "bigint")], [n]),
        lambda n: q.add_column("s", "t", q.Col(n, "text")),
        lambda n: q.create_temp([q.Col(n, "text")]),
        lambda n: q.copy_from_stdin(["id", n]),
        lambda n: q.merge_upsert("s", "t", ["id", n], ["id"]),
        lambda n: q.merge_upsert("s", n, ["id", "v"], ["id"]),
        lambda n: q.on_conflict_upsert("s", "t", ["id", "v"], [n]),
        lambda n: q.copy_into_target(n, "t", ["id"]),
        lambda n: q.set_run_default(n, "t"),
        lambda n: q.delete_interval("s", "t", n),
        lambda n: q.lock_key(n, "t"),
        lambda n: q.key_bound(["id", n], last=True),
        lambda n: q.keys_in_range("s", "t", [n]),
        lambda n: q.insert_new("s", "t", ["id", n]),
        lambda n: q.matched_sample("s", "t", ["id", n]),
    ],
    ids=lambda b: "",
)
def test_every_builder_rejects_unsafe_identifiers(build, name):
    with pytest.raises(q.UnsafeIdentifier):
        build(name)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("bigint", "bigint"),
        ("int8", "bigint"),
        ("integer", "integer"),
        ("smallint", "smallint"),
        ("double", "double precision"),
        ("double precision", "double precision"),
        ("boolean", "boolean"),
        ("text", "text"),
        ("date", "date"),
        ("timestamp", "timestamp without time zone"),
        ("timestamptz", "timestamp with time zone"),
        ("timestamp with time zone", "timestamp with time zone"),
        ("jsonb", "jsonb"),
        ("numeric(12,2)", "numeric(12,2)"),
        ("NUMERIC( 12, 2 )", "numeric(12,2)"),
    ],
)
def test_pg_type_canonical(text, canonical):
    assert q.pg_type(text) == canonical


@pytest.mark.parametrize("text", ["text; drop table x", "varchar(10)", "numeric(1,2) default 1", "bytea", ""])
def test_pg_type_rejects_other_types(text):
    with pytest.raises(q.UnsafeIdentifier):
        q.pg_type(text)


# ------------------------------------------------------------------------------------------------ DDL


def test_create_table_with_hidden_columns_and_primary_key():
    cols = [q.Col("id", "bigint", False), q.Col("amt", "numeric(12, 2)"), q.Col("at", "timestamptz")]
    assert s(q.create_table("sales", "Orders", cols, ["id"])) == (
        'CREATE TABLE "sales"."Orders" ("id" bigint NOT NULL, "amt" numeric(12,2), '
        '"at" timestamp with time zone, "_sluice_run" bigint NOT NULL DEFAULT '
        "coalesce(nullif(current_setting('sluice.run_no', true), ''), '0')::bigint, "
        '"_sluice_seq" bigint NOT NULL DEFAULT 0, "_sluice_interval" timestamptz DEFAULT '
        "nullif(current_setting('sluice.interval_end', true), '')::timestamptz, PRIMARY KEY (\"id\"))"
    )


def test_create_table_append_has_no_hidden_columns():
    sql = s(
        q.create_table("s", "t", [q.Col("a", "integer", False), q.Col("b", "text", False)], ["a", "b"], hidden=False)
    )
    assert sql == 'CREATE TABLE "s"."t" ("a" integer NOT NULL, "b" text NOT NULL, PRIMARY KEY ("a", "b"))'


def test_create_table_rejects_injected_type():
    with pytest.raises(q.UnsafeIdentifier):
        q.create_table("s", "t", [q.Col("a", "text); drop table x; --")], ["a"])


def test_schema_and_columns_ddl():
    assert s(q.create_schema("raw")) == 'CREATE SCHEMA IF NOT EXISTS "raw"'
    assert s(q.add_column("s", "t", q.Col("note", "text", nullable=False))) == (
        'ALTER TABLE "s"."t" ADD COLUMN "note" text'
    )  # evolution is always nullable
    assert s(q.add_hidden_columns("s", "t")) == (
        'ALTER TABLE "s"."t" ADD COLUMN IF NOT EXISTS "_sluice_run" bigint NOT NULL DEFAULT 0, '
        'ADD COLUMN IF NOT EXISTS "_sluice_seq" bigint NOT NULL DEFAULT 0'
    )


def test_bookkeeping_tables():
    ledger = s(q.create_ledger())
    assert ledger.startswith('CREATE TABLE IF NOT EXISTS "sluice"."load_ledger" (')
    assert "UNIQUE" not in ledger  # one row per (run, generation, chunk): the unique index of migrate_ledger
    migrate = [s(x) for x in q.migrate_ledger()]
    assert migrate[2] == (
        'CREATE UNIQUE INDEX IF NOT EXISTS load_ledger_generation_chunk ON "sluice"."load_ledger" '
        "(pipeline, run_id, run_no, chunk)"
    )
    assert "DROP CONSTRAINT IF EXISTS load_ledger_pipeline_run_id_chunk_key" in migrate[1]
    for field in q.LEDGER_FIELDS:
        assert f"{field} " in ledger
    summary = s(q.create_run_summary())
    assert summary.startswith('CREATE TABLE IF NOT EXISTS "sluice"."run_summary" (')
    assert "PRIMARY KEY (pipeline, run_id)" in summary
    for field in q.SUMMARY_FIELDS:
        assert f"{field} " in summary
    changes = s(q.create_schema_changes())
    assert changes.startswith('CREATE TABLE IF NOT EXISTS "sluice"."schema_changes" (')
    assert "column_name text" in changes
    assert s(q.create_run_seq()) == 'CREATE SEQUENCE IF NOT EXISTS "sluice"."load_run_seq"'
    assert s(q.next_run_no()) == "SELECT nextval('sluice.load_run_seq'::regclass)"


def test_temp_table_and_copy():
    assert s(q.create_temp([q.Col("id", "bigint", False), q.Col("v", "text")])) == (
        'CREATE TEMP TABLE "_sluice_chunk" ("id" bigint, "v" text, "_sluice_seq" bigint NOT NULL) ON COMMIT DROP'
    )
    assert s(q.copy_from_stdin(["id", "v"])) == (
        'COPY "_sluice_chunk" ("id", "v", "_sluice_seq") FROM STDIN (FORMAT csv)'
    )
    assert s(q.analyze_temp(["a", "b"])) == 'ANALYZE "_sluice_chunk" ("a", "b")'


# ------------------------------------------------------------------------------------------------ writes

GUARD = '"t"."_sluice_run" <= %(run_no)s'


def test_version_guard_never_rolls_a_key_back():
    sql = s(q.merge_upsert("s", "t", ["k", "v", "updated_at"], ["k"], version="updated_at"))
    assert (
        'AND "t"."_sluice_run" <= %(run_no)s AND ("t"."updated_at" IS NULL OR "s"."updated_at" >= "t"."updated_at") '
        "THEN UPDATE" in sql
    )
    sql = s(q.on_conflict_upsert("s", "t", ["k", "v", "updated_at"], ["k"], version="updated_at"))
    assert sql.endswith('AND ("t"."updated_at" IS NULL OR "excluded"."updated_at" >= "t"."updated_at")')


def test_newer_interval_guard():
    """newer_interval_wins: a stored row from a later interval (its _sluice_interval, that interval's end) stays."""
    guard = '("t"."_sluice_interval" IS NULL OR "t"."_sluice_interval" <= %(interval_end)s)'
    sql = s(q.merge_upsert("s", "t", ["k", "v"], ["k"], newer_interval=True))
    assert f"AND {GUARD} AND {guard} THEN UPDATE" in sql
    sql = s(q.on_conflict_upsert("s", "t", ["k", "v", "at"], ["k"], version="at", newer_interval=True))
    assert sql.endswith(f'AND {GUARD} AND ("t"."at" IS NULL OR "excluded"."at" >= "t"."at") AND {guard}')
    assert "_sluice_interval" not in s(q.merge_upsert("s", "t", ["k", "v"], ["k"])).split("THEN UPDATE")[0]
    assert s(q.add_interval_column("s", "t")) == (
        'ALTER TABLE "s"."t" ADD COLUMN IF NOT EXISTS "_sluice_interval" timestamptz'
    )  # no default while adding: catalog-only, and the rows already there read NULL (older than any interval)
    assert s(q.set_interval_default("s", "t")) == (
        'ALTER TABLE "s"."t" ALTER COLUMN "_sluice_interval" SET DEFAULT ' + q.INTERVAL_DEFAULT
    )


def test_last_successful_load():
    assert s(q.last_successful_load()) == (
        'SELECT run_id, generation, rows_loaded, finished_at FROM "sluice"."run_summary" WHERE pipeline = %(pipeline)s '
        "AND interval_start = %(start)s AND interval_end = %(end)s AND status = 'success' "
        "ORDER BY finished_at DESC LIMIT 1"
    )


def test_generation_statements():
    assert s(q.delete_generations("s", "t")) == (
        'DELETE FROM "s"."t" WHERE "_sluice_run" IN (SELECT DISTINCT run_no FROM "sluice"."load_ledger" WHERE '
        "pipeline = %(pipeline)s AND interval_start = %(start)s AND interval_end = %(end)s AND run_no <> %(run_no)s)"
    )
    assert s(q.generation_started()).endswith(
        "WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s AND run_no = %(run_no)s)"
    )
    assert s(q.interval_has_rows("s", "t", "day")) == (
        'SELECT EXISTS (SELECT FROM "s"."t" WHERE "day" >= %(start)s AND "day" < %(end)s)'
    )


def test_merge_upsert():
    assert s(q.merge_upsert("s", "t", ["k1", "k2", "v"], ["k1", "k2"])) == (
        'MERGE INTO "s"."t" AS t USING "_sluice_chunk" AS s ON t."k1" = s."k1" AND t."k2" = s."k2" '
        'WHEN MATCHED AND ("t"."v") IS DISTINCT FROM ("s"."v") AND ' + GUARD.format(src="s") + " "
        'THEN UPDATE SET "v" = s."v", "_sluice_run" = %(run_no)s, "_sluice_seq" = s."_sluice_seq", '
        '"_sluice_interval" = %(interval_end)s '
        'WHEN NOT MATCHED THEN INSERT ("k1", "k2", "v", "_sluice_run", "_sluice_seq", "_sluice_interval") '
        'VALUES ("s"."k1", "s"."k2", "s"."v", %(run_no)s, s."_sluice_seq", %(interval_end)s)'
    )


def test_merge_upsert_key_only_table_only_inserts():
    sql = s(q.merge_upsert("s", "t", ["k"], ["k"]))
    assert "WHEN MATCHED" not in sql and sql.endswith('VALUES ("s"."k", %(run_no)s, s."_sluice_seq", %(interval_end)s)')


def test_on_conflict_upsert():
    assert s(q.on_conflict_upsert("s", "t", ["id", "a", "b"], ["id"])) == (
        'INSERT INTO "s"."t" AS t ("id", "a", "b", "_sluice_run", "_sluice_seq", "_sluice_interval") '
        'SELECT "id", "a", "b", %(run_no)s, "_sluice_seq", %(interval_end)s FROM "_sluice_chunk" ON CONFLICT ("id") '
        'DO UPDATE SET "a" = excluded."a", "b" = excluded."b", "_sluice_run" = excluded."_sluice_run", '
        '"_sluice_seq" = excluded."_sluice_seq", "_sluice_interval" = excluded."_sluice_interval" '
        'WHERE ("t"."a", "t"."b") IS DISTINCT FROM '
        '("excluded"."a", "excluded"."b") AND ' + GUARD.format(src="excluded")
    )
    assert s(q.on_conflict_upsert("s", "t", ["id"], ["id"])).endswith('ON CONFLICT ("id") DO NOTHING')


def test_new_keys_fast_path():
    assert s(q.key_bound(["k1", "k2"], last=False)) == (
        'SELECT "k1", "k2" FROM "_sluice_chunk" ORDER BY "k1", "k2" LIMIT 1'
    )
    assert s(q.key_bound(["k1", "k2"], last=True)) == (
        'SELECT "k1", "k2" FROM "_sluice_chunk" ORDER BY "k1" DESC, "k2" DESC LIMIT 1'
    )
    assert s(q.keys_in_range("s", "t", ["k1", "k2"])) == (
        'SELECT EXISTS (SELECT FROM (SELECT "k1", "k2" FROM "s"."t" WHERE ("k1", "k2") >= (%(lo0)s, %(lo1)s) '
        'ORDER BY "k1", "k2" LIMIT 1) f WHERE ("k1", "k2") <= (%(hi0)s, %(hi1)s))'
    )
    assert s(q.insert_new("s", "t", ["k", "v"])) == (
        'INSERT INTO "s"."t" ("k", "v", "_sluice_run", "_sluice_seq", "_sluice_interval") '
        'SELECT "k", "v", %(run_no)s, "_sluice_seq", %(interval_end)s FROM "_sluice_chunk"'
    )


def test_matched_sample():
    assert s(q.matched_sample("s", "t", ["a", "b"])) == (
        'SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT FROM "s"."t" t WHERE t."a" = s."a" AND t."b" = s."b"))'
        ' FROM (SELECT "a", "b" FROM "_sluice_chunk" LIMIT %(n)s) s'
    )


def test_direct_copy_and_replace_interval():
    assert s(q.copy_into_target("s", "t", ["a", "_sluice_seq"])) == (
        'COPY "s"."t" ("a", "_sluice_seq") FROM STDIN (FORMAT csv)'
    )
    assert s(q.set_run_no()) == (
        "SELECT set_config('sluice.run_no', %(run_no)s, true), "
        "set_config('sluice.interval_end', %(interval_end)s, true)"
    )
    assert s(q.set_run_default("s", "t")) == (
        'ALTER TABLE "s"."t" ALTER COLUMN "_sluice_run" SET DEFAULT ' + q.RUN_DEFAULT
    )
    assert s(q.delete_interval("s", "t", "event_time")) == (
        'DELETE FROM "s"."t" WHERE "event_time" >= %(start)s AND "event_time" < %(end)s'
    )


def test_advisory_lock_and_settings():
    assert s(q.advisory_lock()) == "SELECT pg_advisory_xact_lock(hashtext(%(key)s))"
    assert s(q.advisory_lock(shared=True)) == "SELECT pg_advisory_xact_lock_shared(hashtext(%(key)s))"
    assert q.lock_key("sales", "orders") == "sales.orders"
    assert s(q.set_local("work_mem", "256MB")) == "SET LOCAL work_mem = '256MB'"
    assert s(q.set_local("timezone", "it's")) == "SET LOCAL timezone = 'it''s'"
    with pytest.raises(q.UnsafeIdentifier):
        q.set_local("search_path", "x")


def test_ledger_and_summary_statements():
    ins = s(q.ledger_insert())
    assert ins.startswith('INSERT INTO "sluice"."load_ledger" ("pipeline", "target", ')
    assert ins.count("%(") == len(q.LEDGER_FIELDS)
    assert s(q.ledger_select(one_chunk=True)).endswith(
        'FROM "sluice"."load_ledger" WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s AND run_no = %(run_no)s '
        "AND chunk = %(chunk)s ORDER BY chunk"
    )
    assert "chunk = %(chunk)s" not in s(q.ledger_select(one_chunk=False))
    up = s(q.run_summary_upsert())
    assert up.startswith('INSERT INTO "sluice"."run_summary" ("pipeline", "run_id", ')
    assert 'ON CONFLICT (pipeline, run_id) DO UPDATE SET "target" = excluded."target"' in up
    assert '"pipeline" = excluded' not in up


def test_catalog_queries_take_names_as_values():
    for stmt in (q.table_exists(), q.table_columns(), q.primary_key_columns(), q.xact_tuple_counts()):
        text = s(stmt)
        assert "n.nspname = %(schema)s AND c.relname = %(table)s" in text


# ------------------------------------------------------------------------------------------------ COPY data


def _csv(table: pa.Table) -> str:
    return b"".join(bytes(b) for b in arrow_copy.csv_blocks(table)).decode()


def test_csv_null_is_unquoted_empty_and_empty_string_is_quoted():
    t = pa.table({"v": pa.array(["", None, "a,b", 'q"x'], pa.string())})
    assert _csv(t) == '""\n\n"a,b"\n"q""x"\n'


def test_csv_accepts_string_view_after_csv_safe():
    col = pa.chunked_array([pa.array(["x", None], pa.string_view())])
    with pytest.raises(pa.ArrowInvalid):
        pacsv.write_csv(pa.table({"v": col}), io.BytesIO())
    assert arrow_copy.csv_safe(col).type == pa.string()


def _cols():
    return [q.Col("id", "bigint", False), q.Col("v", "text")]


def test_prepare_keeps_the_last_duplicate_and_numbers_rows():
    t = pa.table({"id": [1, 2, 1, 3, 1], "v": ["a", "b", "c", "d", "e"]})
    out, extra, dups, bounds = arrow_copy.prepare(t, _cols(), ["id"], keyed=True, evolve=False, index=3)
    assert dups == 2 and extra == [] and bounds == ((1,), (3,))
    rows = sorted(zip(out["id"].to_pylist(), out["v"].to_pylist(), out["_sluice_seq"].to_pylist(), strict=True))
    assert rows == [(1, "e", (3 << 32) | 4), (2, "b", (3 << 32) | 1), (3, "d", (3 << 32) | 3)]


def test_prepare_append_keeps_duplicates():
    t = pa.table({"id": [1, 1], "v": ["a", "b"]})
    out, _, dups, bounds = arrow_copy.prepare(t, _cols(), ["id"], keyed=False, evolve=False, index=0)
    assert dups == 0 and out.num_rows == 2 and bounds is None


def test_prepare_evolve_keeps_extra_columns_and_maps_types():
    t = pa.table({"id": [1], "v": ["a"], "n": pa.array([1], pa.int32()), "tags": pa.array([["x"]])})
    out, extra, _, _ = arrow_copy.prepare(t, _cols(), ["id"], keyed=True, evolve=True, index=0)
    assert [(c.name, c.pg_type) for c in extra] == [("n", "integer"), ("tags", "text")]
    assert out.column_names == ["id", "v", "n", "tags", "_sluice_seq"] and out["tags"].type == pa.string()
    out, extra, _, _ = arrow_copy.prepare(t, _cols(), ["id"], keyed=True, evolve=False, index=0)
    assert extra == [] and out.column_names == ["id", "v", "_sluice_seq"]


def test_prepare_rejects_missing_columns():
    with pytest.raises(arrow_copy.PrepareError, match="lack declared columns"):
        arrow_copy.prepare(pa.table({"id": [1]}), _cols(), ["id"], keyed=True, evolve=False, index=0)


def test_checksum_depends_on_content_and_order_only():
    a = pa.table({"id": [1, 2], "v": ["x", None]})
    b = pa.concat_tables([a.slice(0, 1), a.slice(1)])
    assert arrow_copy.checksum(a) == arrow_copy.checksum(b)
    assert arrow_copy.checksum(a) != arrow_copy.checksum(a.take([1, 0]))


def test_key_bounds_are_lexicographic_and_only_for_types_ordered_like_postgres():
    from datetime import date

    t = pa.table(
        {
            "a": [2, 1, 2, 1],
            "b": [date(2024, 1, 1), date(2024, 1, 9), date(2023, 1, 1), date(2024, 1, 2)],
            "s": ["b", "a", "c", "B"],
        }
    )
    cols = [q.Col("a", "bigint"), q.Col("b", "date"), q.Col("s", "text")]

    def bounds(table, pk):
        return arrow_copy.prepare(table, cols, pk, keyed=True, evolve=False, index=0).bounds

    assert bounds(t, ["a", "b"]) == ((1, date(2024, 1, 2)), (2, date(2024, 1, 1)))
    assert bounds(t, ["a", "s"]) is None  # text order depends on the collation
    assert bounds(t.slice(0, 0), ["a"]) is None
    assert bounds(t.set_column(0, "a", pa.array([1, None, 2, 3])), ["a"]) is None


def test_duplicates_with_composite_keys():
    t = pa.table({"a": [1, 1, 2, 1], "b": [1, 2, 1, 1], "s": ["w", "x", "y", "z"]})
    cols = [q.Col("a", "bigint"), q.Col("b", "bigint"), q.Col("s", "text")]
    out, _, dups, bounds = arrow_copy.prepare(t, cols, ["a", "b"], keyed=True, evolve=False, index=0)
    assert dups == 1 and bounds == ((1, 1), (2, 1))
    assert sorted(zip(out["a"].to_pylist(), out["b"].to_pylist(), out["s"].to_pylist(), strict=True)) == [
        (1, 1, "z"),
        (1, 2, "x"),
        (2, 1, "y"),
    ]


def test_conservation_problems_and_table():
    from datetime import UTC, datetime

    from sluice.interval import Interval
    from sluice.loading.ledger import conservation_problems, format_table

    iv = Interval(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
    row = {
        "chunk": 0,
        "rows_in": 5,
        "rows_loaded": 4,
        "rows_quarantined": 1,
        "inserted": 4,
        "updated": 0,
        "unchanged": 0,
        "superseded": 0,
        "deleted": 0,
        "write_mode": "upsert",
        "copy_seconds": 0.5,
        "merge_seconds": 0.25,
        "interval_start": iv.start,
        "interval_end": iv.end,
    }
    assert conservation_problems([row], [{"index": 0, "rows_in": 5}], iv) == []
    assert conservation_problems([{**row, "rows_loaded": 3}], [{"index": 0, "rows_loaded": 4}, {"index": 2}], iv) == [
        "chunk 2 has no ledger row (it was never loaded)",
        "chunk 0: rows_in 5 != loaded 3 + quarantined 1",
        "chunk 0: loaded 3 != inserted 4 + updated 0 + unchanged 0 + superseded 0",
        "chunk 0: the task reported other counts than the ledger recorded",
    ]
    assert conservation_problems([row], [], iv) == ["chunk 0 is in the ledger but not in this run's results"]
    assert conservation_problems([row], [{"index": 0}], iv, quarantined_rows=3) == [
        "sluice.quarantine holds 3 rows of this generation, the ledger 1"
    ]
    lines = format_table([row, {**row, "chunk": 1}]).splitlines()
    assert lines[0].split() == [
        "chunk",
        "rows_in",
        "rows_loaded",
        "rows_quarantined",
        "inserted",
        "updated",
        "unchanged",
        "superseded",
        "deleted",
        "copy_seconds",
        "merge_seconds",
    ]
    assert lines[-1].split() == ["total", "10", "8", "2", "8", "0", "0", "0", "0", "1.00", "0.50"]


def test_one_row_statements_say_when_no_row_came_back():
    class Cursor:
        def __init__(self, row):
            self.row = row

        def fetchone(self):
            return self.row

    assert q.scalar(Cursor((True,))) is True and q.one_row(Cursor((1, 2))) == (1, 2)
    with pytest.raises(RuntimeError, match="returned none"):
        q.scalar(Cursor(None))
