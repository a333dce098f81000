"""The kept quarantine counts (`sluice.quarantine_counts`) agree with the rows after every kind of change: a chunk's
quarantine, its retry, a later generation's supersede, discard, replay, new reasons, a DELETE by hand, a rolled-back
change, a change that commits while a compaction runs; `quarantine list` reads them."""

from __future__ import annotations

import threading

import pytest
from sluice.loading.sql import quarantine as qs
from sluice.loading.sql import quarantine_counts as qc
from sluice.validate.chunk import validate_chunk
from sluice.validate.quarantine import compact_counts, ensure_quarantine_table

from tests.integration.test_quarantine import new_cfg, stage_with_origin  # noqa: F401 - the fixture
from tests.integration.test_validation import INTERVAL, QTY_RANGE, RUN_ID, rows

pytestmark = pytest.mark.integration
ALL = {"pipeline": None, "status": None, "since": None, "until": None, "reason": None}


def disagreements(pg) -> list:
    return pg.execute(qc.counts_versus_rows()).fetchall()


def listed(pg, pipeline: str) -> dict:
    got = pg.execute(qs.quarantine_list(), {**ALL, "pipeline": pipeline}).fetchall()
    return {(st, reason): n for _, _, _, st, reason, n in got}


def test_counts_follow_every_change_of_the_rows(new_cfg, pg):  # noqa: F811
    cfg = new_cfg([QTY_RANGE])
    ensure_quarantine_table(pg)
    cast, between = "cast qty: not an integer", "expect_column_values_to_be_between(qty)"
    validate_chunk(cfg, INTERVAL, RUN_ID, stage_with_origin(cfg, rows(6, qty={0: "x", 2: "y", 4: "500"}), "a", 2, 7))
    assert disagreements(pg) == [] and listed(pg, cfg.name) == {("pending", cast): 2, ("pending", between): 1}
    # a later generation supersedes; a retry of it replaces its own rows
    for _ in range(2):
        validate_chunk(cfg, INTERVAL, RUN_ID, stage_with_origin(cfg, rows(6, qty={2: "y", 3: "900"}), "a", 2, 9))
        assert disagreements(pg) == []
    assert listed(pg, cfg.name) == {
        ("pending", cast): 1,
        ("pending", between): 1,
        ("superseded", cast): 2,
        ("superseded", between): 1,
    }
    compact_counts(pg)
    assert disagreements(pg) == [] and pg.execute(
        "SELECT count(*) FROM sluice.quarantine_counts WHERE pipeline = %s AND NOT folded", (cfg.name,)
    ).fetchone() == (0,)
    # discard, replay, new reasons, a delete by hand
    pg.execute(
        qs.quarantine_discard(),
        {**ALL, "pipeline": cfg.name, "reason": "between", "status": "pending", "by": "test", "note": "n"},
    )
    pending = pg.execute(
        "SELECT id, interval_start, interval_end, generation FROM sluice.quarantine "
        "WHERE pipeline = %s AND status = 'pending'",
        (cfg.name,),
    ).fetchall()
    ids = [r[0] for r in pending]
    group = {"pipeline": cfg.name, "start": pending[0][1], "end": pending[0][2], "quarantined_by": pending[0][3]}
    pg.execute(
        qs.quarantine_new_reasons(),
        {**group, "ids": ids, "kinds": ["cast"], "reasons_key": ["cast qty: other"], "reasons": ["[]"]},
    )
    assert listed(pg, cfg.name)[("pending", "cast qty: other")] == 1 and disagreements(pg) == []
    pg.execute(qs.quarantine_mark_replayed(), {**group, "ids": ids, "run_id": "replay", "generation": 10})
    assert listed(pg, cfg.name)[("replayed", "cast qty: other")] == 1 and disagreements(pg) == []
    pg.execute("DELETE FROM sluice.quarantine WHERE pipeline = %s AND status = 'superseded'", (cfg.name,))
    assert listed(pg, cfg.name) == {("discarded", between): 1, ("replayed", "cast qty: other"): 1}
    assert disagreements(pg) == []
    # a rolled-back change leaves the counts as they were
    with pg.transaction(force_rollback=True):
        pg.execute("DELETE FROM sluice.quarantine WHERE pipeline = %s", (cfg.name,))
        assert listed(pg, cfg.name) == {}
    assert disagreements(pg) == [] and len(listed(pg, cfg.name)) == 2


def test_a_change_that_commits_during_a_compaction_is_counted(new_cfg, pg, warehouse_dsn):  # noqa: F811
    """An open transaction holds new rows (and their delta) while a compaction runs and commits; the delta is
    outside the compaction's snapshot, so it is neither folded nor lost."""
    import psycopg

    cfg = new_cfg([QTY_RANGE])
    validate_chunk(cfg, INTERVAL, RUN_ID, stage_with_origin(cfg, rows(4, qty={0: "x"}), "a", 2, 3))
    with psycopg.connect(warehouse_dsn) as writer:  # a transaction, open until commit below
        writer.execute(
            "INSERT INTO sluice.quarantine (pipeline, run_id, generation, interval_start, interval_end, chunk, row, "
            "reasons, reason) SELECT pipeline, run_id, generation, interval_start, interval_end, 1, row, reasons, "
            "reason FROM sluice.quarantine WHERE pipeline = %s",
            (cfg.name,),
        )
        done = threading.Event()

        def compact() -> None:
            with psycopg.connect(warehouse_dsn, autocommit=True) as other:
                compact_counts(other)
            done.set()

        t = threading.Thread(target=compact)
        t.start()
        t.join(60)
        assert done.is_set()  # appended deltas lock nothing a compaction waits for
        writer.commit()
    assert disagreements(pg) == []
    assert listed(pg, cfg.name) == {("pending", "cast qty: not an integer"): 2}
    compact_counts(pg)
    assert disagreements(pg) == [] and listed(pg, cfg.name) == {("pending", "cast qty: not an integer"): 2}
