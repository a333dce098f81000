"""The kept quarantine counts' statements as strings: triggers on every kind of change, deltas appended (no shared
row to lock), one compaction at a time, a seed only when the triggers are created."""

from __future__ import annotations

from sluice.loading.sql import quarantine as qs
from sluice.loading.sql import quarantine_counts as qc


def s(composed) -> str:
    return composed.as_string(None)


def test_the_counts_ddl_runs_last_in_the_migration():
    ddl = [s(x) for x in qs.quarantine_ddl()]
    counts = [s(x) for x in qc.counts_ddl()]
    assert ddl[-len(counts) :] == counts
    assert counts[0].startswith('CREATE TABLE IF NOT EXISTS "sluice"."quarantine_counts" (id bigserial PRIMARY KEY')
    assert "rows bigint NOT NULL, folded boolean NOT NULL DEFAULT false" in counts[0]
    assert all("%(" not in x for x in counts)


def test_one_trigger_per_kind_of_change_with_its_transition_tables():
    do = s(qc.counts_ddl()[-1])
    for part in (
        'AFTER INSERT ON "sluice"."quarantine" REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT',
        'AFTER UPDATE ON "sluice"."quarantine" REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows',
        'AFTER DELETE ON "sluice"."quarantine" REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT',
        'AFTER TRUNCATE ON "sluice"."quarantine" FOR EACH STATEMENT',
    ):
        assert part in do
    # the seed runs only with the triggers' creation, after the old counts are gone, and counts every key
    assert do.index("CREATE TRIGGER") < do.index('DELETE FROM "sluice"."quarantine_counts"')
    assert "SELECT pipeline, interval_start, interval_end, status, reason, count(*), true" in do
    assert "IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'sluice.quarantine'::regclass" in do


def test_the_trigger_function_appends_signed_deltas_only():
    fn = s(qc.counts_ddl()[3])
    assert fn.startswith('CREATE OR REPLACE FUNCTION "sluice"."quarantine_count_delta"() RETURNS trigger')
    assert "SELECT pipeline, interval_start, interval_end, status, reason, count(*) FROM new_rows" in fn
    assert "-count(*) FROM old_rows" in fn
    assert "1 AS d FROM new_rows UNION ALL" in fn and "-1 AS d FROM old_rows" in fn
    assert "HAVING sum(d) <> 0" in fn  # an update that moves no key writes nothing
    assert "UPDATE" not in fn.replace("TG_OP = 'UPDATE'", "") and "ON CONFLICT" not in fn


def test_compaction_folds_touched_intervals_in_one_statement_under_a_lock():
    assert s(qc.counts_lock()) == "SELECT pg_advisory_xact_lock(hashtext('sluice.quarantine_counts'))"
    compact = s(qc.counts_compact())
    assert compact.startswith("WITH touched AS (SELECT DISTINCT pipeline, interval_start, interval_end FROM")
    assert "WHERE NOT folded" in compact and "RETURNING d.pipeline" in compact
    assert compact.endswith(
        "sum(rows), true FROM gone GROUP BY pipeline, interval_start, interval_end, status, reason "
        "HAVING sum(rows) <> 0"
    )


def test_ready_means_the_insert_trigger_exists_and_the_fillfactor_is_set():
    assert s(qs.quarantine_ready()) == (
        "SELECT (SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = to_regclass('sluice.quarantine') "
        "AND tgname = 'quarantine_counts_insert')) AND EXISTS (SELECT FROM pg_class WHERE "
        "oid = to_regclass('sluice.quarantine') AND reloptions @> '{fillfactor=50}')"
    )
    check = s(qc.counts_versus_rows())
    assert "FULL JOIN actual USING" in check and check.endswith("WHERE kept.n IS DISTINCT FROM actual.n")
