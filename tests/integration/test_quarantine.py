"""sluice.quarantine against the real PostgreSQL: provenance from the chunk's hidden columns, a later generation
supersedes the pending rows of an earlier one, and a table of the old shape is migrated in place."""

from __future__ import annotations

import pyarrow as pa
import pytest
from sluice.sources.base import with_origin
from sluice.staging import StagingStore
from sluice.validate.chunk import validate_chunk

from tests.integration.test_validation import INTERVAL, QTY_RANGE, RUN_ID, make_cfg, quarantined, rows

pytestmark = pytest.mark.integration


@pytest.fixture
def new_cfg(tmp_path, pg):
    """Config factory with file:// staging in tmp_path; its quarantine rows are deleted afterwards."""
    made = []

    def factory(expectations=()):
        made.append(make_cfg(f"file://{tmp_path}", expectations))
        return made[-1]

    yield factory
    for cfg in made:
        pg.execute("DELETE FROM sluice.quarantine WHERE pipeline = %s", (cfg.name,))


def stage_with_origin(cfg, table: pa.Table, source: str, first_line: int, generation: int | None = None) -> dict:
    staged = pa.Table.from_batches([with_origin(b, source, first_line) for b in table.combine_chunks().to_batches()])
    ref = StagingStore(cfg.staging, cfg.name, INTERVAL, RUN_ID, generation).write_chunk(0, staged)
    return {**ref, **({"generation": generation} if generation is not None else {})}


def test_quarantined_rows_carry_source_object_and_record_number(new_cfg, pg):
    cfg = new_cfg([QTY_RANGE])
    ref = stage_with_origin(cfg, rows(5, qty={1: "abc", 3: "500"}), "s3://landing/orders/a.csv", 2)
    report = validate_chunk(cfg, INTERVAL, RUN_ID, ref)
    assert report["rows_quarantined"] == 2
    q = quarantined(pg, cfg)
    assert [(r["source"], r["source_line"], r["row_number"], r["kind"]) for r in q] == [
        ("s3://landing/orders/a.csv", 3, 1, "cast"),
        ("s3://landing/orders/a.csv", 5, 3, "expectation"),
    ]
    assert "_sluice_source" not in q[0]["row"] and q[1]["row"]["qty"] == "500"
    assert all(r["status"] == "pending" for r in q)
    copy = StagingStore(cfg.staging, cfg.name, INTERVAL, RUN_ID).read_table(report["quarantine_key"])
    assert copy["source_line"].to_pylist() == [3, 5] and copy["pipeline"].to_pylist() == [cfg.name] * 2
    assert copy["reason"].to_pylist() == ["cast qty: not an integer", "expect_column_values_to_be_between(qty)"]


def test_a_later_generation_supersedes_the_pending_rows_of_the_interval(new_cfg, pg):
    cfg = new_cfg([QTY_RANGE])
    validate_chunk(cfg, INTERVAL, RUN_ID, stage_with_origin(cfg, rows(4, qty={0: "x", 2: "y"}), "s3://l/a.csv", 2, 7))
    validate_chunk(cfg, INTERVAL, RUN_ID, stage_with_origin(cfg, rows(4, qty={2: "y"}), "s3://l/a.csv", 2, 9))
    q = quarantined(pg, cfg)
    assert sorted((r["generation"], r["row_number"], r["status"]) for r in q) == [
        (7, 0, "superseded"),
        (7, 2, "superseded"),
        (9, 2, "pending"),
    ]
    # a retry of generation 7 (after 9 exists) replaces its own rows and leaves 9's pending
    validate_chunk(cfg, INTERVAL, RUN_ID, stage_with_origin(cfg, rows(4, qty={0: "x"}), "s3://l/a.csv", 2, 7))
    assert [r["status"] for r in quarantined(pg, cfg) if r["generation"] == 9] == ["pending"]


def test_a_table_of_the_old_shape_is_migrated_in_place(pg):
    """Inside one transaction that is rolled back: the real table is renamed away, an old-shape table with rows of
    two generations is created, and the current DDL brings it up to date."""
    from sluice.loading.sql import quarantine as qs

    with pg.transaction(force_rollback=True):
        pg.execute("CREATE SCHEMA IF NOT EXISTS sluice")
        pg.execute("ALTER TABLE IF EXISTS sluice.quarantine RENAME TO quarantine_kept_by_test")
        pg.execute("""CREATE TABLE sluice.quarantine (
    id bigserial PRIMARY KEY, pipeline text NOT NULL, run_id text NOT NULL,
    interval_start timestamptz NOT NULL, interval_end timestamptz NOT NULL, chunk integer NOT NULL,
    row_number bigint, row jsonb NOT NULL, reasons jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
    generation bigint NOT NULL DEFAULT 0)""")
        old = (
            "INSERT INTO sluice.quarantine (pipeline, run_id, interval_start, interval_end, chunk, row_number, row, "
            "reasons, generation) VALUES ('p', 'r', %s, %s, 0, %s, %s::jsonb, %s::jsonb, %s)"
        )
        s, e = INTERVAL.start, INTERVAL.end
        pg.execute(
            old,
            (
                s,
                e,
                None,
                '{"file": "s3://b/a.csv", "line": 4, "raw": "x"}',
                '[{"reason": "bad", "stage": "source"}]',
                1,
            ),
        )
        pg.execute(old, (s, e, 3, '{"qty": "x"}', '[{"column": "qty", "value": "x", "reason": "not an integer"}]', 2))
        for stmt in qs.quarantine_ddl():
            pg.execute(stmt)
        got = pg.execute(
            "SELECT generation, source, source_line, kind, status FROM sluice.quarantine ORDER BY generation"
        ).fetchall()
        assert got == [(1, "s3://b/a.csv", 4, "parse", "superseded"), (2, None, None, "cast", "pending")]
        from sluice.loading.sql import quarantine_counts as qc

        assert pg.execute(qc.counts_versus_rows()).fetchall() == []  # the rows already there are counted
        for stmt in qs.quarantine_ddl():  # idempotent
            pg.execute(stmt)
        assert pg.execute("SELECT count(*) FROM sluice.quarantine WHERE status = 'pending'").fetchone()[0] == 1


def test_an_install_with_the_status_index_is_migrated_and_status_changes_become_hot(pg):
    """An install from before HOT status changes (quarantine_listing on status, packed pages) is not `ready`; the
    DDL drops the index and sets the fillfactor; then marking rows replayed writes no index entry (every update is
    HOT) and the kept counts follow. In one rolled-back transaction, on a table of its own."""
    from sluice.loading.sql import quarantine as qs
    from sluice.loading.sql import quarantine_counts as qc

    with pg.transaction(force_rollback=True):
        pg.execute("CREATE SCHEMA IF NOT EXISTS sluice")
        pg.execute("ALTER TABLE IF EXISTS sluice.quarantine RENAME TO quarantine_kept_by_test")
        for stmt in qs.quarantine_ddl():
            pg.execute(stmt)
        pg.execute("ALTER TABLE sluice.quarantine RESET (fillfactor)")  # the earlier shape
        pg.execute(
            "CREATE INDEX quarantine_listing ON sluice.quarantine "
            "(pipeline, status, interval_start, interval_end, reason)"
        )
        assert pg.execute(qs.quarantine_ready()).fetchone()[0] is False
        for stmt in qs.quarantine_ddl():
            pg.execute(stmt)
        assert pg.execute(qs.quarantine_ready()).fetchone()[0] is True
        indexed = pg.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'sluice' AND tablename = 'quarantine'"
        ).fetchall()
        assert indexed and not [d for (d,) in indexed if "status" in d or "reason" in d], indexed
        s, e = INTERVAL.start, INTERVAL.end
        ids = [
            pg.execute(
                "INSERT INTO sluice.quarantine (pipeline, run_id, generation, interval_start, interval_end, chunk, "
                "row_number, kind, reason, row, reasons) VALUES ('p', 'r', 3, %s, %s, 0, %s, 'expectation', 'x', "
                "'{}', '[]') RETURNING id",
                (s, e, i),
            ).fetchone()[0]
            for i in range(20)
        ]
        before = pg.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = 'sluice.quarantine'::regclass"
        ).fetchone()
        marked = pg.execute(
            qs.quarantine_mark_replayed(),
            {
                "pipeline": "p",
                "start": s,
                "end": e,
                "quarantined_by": 3,
                "ids": "{" + ",".join(map(str, ids[:15])) + "}",
                "run_id": "replay__9",
                "generation": 9,
            },
        ).rowcount
        assert marked == 15
        after = pg.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = 'sluice.quarantine'::regclass"
        ).fetchone()
        assert (after[0] - before[0], after[1] - before[1]) == (15, 15)  # updated, of them HOT
        assert pg.execute(qc.counts_versus_rows()).fetchall() == []
        got = pg.execute("SELECT status, count(*) FROM sluice.quarantine GROUP BY 1 ORDER BY 1").fetchall()
        assert got == [("pending", 5), ("replayed", 15)]
