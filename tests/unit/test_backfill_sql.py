"""The statements behind run status recording and `backfill plan`, read as strings."""

from __future__ import annotations

from sluice.loading import sql as q


def s(composed) -> str:
    return composed.as_string(None)


def test_run_started_upsert_resets_the_summary_to_running_for_the_new_generation():
    text = s(q.run_started_upsert())
    assert text.startswith('INSERT INTO "sluice"."run_summary" ("pipeline", "run_id", "target"')
    assert "'running'" in text and "%(generation)s" in text and "'[]'::jsonb" in text
    assert 'ON CONFLICT (pipeline, run_id) DO UPDATE SET "target" = excluded."target"' in text
    assert '"status" = excluded."status"' in text and '"rows_in" = excluded."rows_in"' in text


def test_run_status_update_touches_only_its_own_generation():
    text = s(q.run_status_update())
    assert text.startswith('UPDATE "sluice"."run_summary" SET status = %(status)s, problems = %(problems)s')
    assert text.endswith("WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s AND generation = %(generation)s")


def test_interval_states_takes_the_latest_generation_of_each_interval():
    text = s(q.interval_states())
    assert 'SELECT DISTINCT ON (interval_start, interval_end) * FROM "sluice"."run_summary"' in text
    assert "ORDER BY interval_start, interval_end, generation DESC" in text
    assert "interval_start >= %(lo)s AND interval_start <= %(hi)s" in text
    assert 'FROM "sluice"."load_ledger" l WHERE l.pipeline = s.pipeline AND l.run_id = s.run_id' in text


def test_generation_watermark_and_rows_loaded_since():
    assert (
        s(q.last_generation()) == 'SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM "sluice"."load_run_seq"'
    )
    assert "generation > %(generation)s AND status = 'success'" in s(q.loaded_since())
    assert s(q.create_run_summary_interval_index()) == (
        'CREATE INDEX IF NOT EXISTS run_summary_interval ON "sluice"."run_summary" (pipeline, interval_start)'
    )


def test_the_source_fingerprint_is_a_run_summary_column_reset_per_generation_and_read_by_the_plan():
    assert "source_fingerprint text, source_object_count integer" in s(q.create_run_summary())
    migrate = s(q.migrate_ledger()[-1])
    assert "ADD COLUMN IF NOT EXISTS source_fingerprint text, ADD COLUMN IF NOT EXISTS source_object_count integer" in (
        migrate
    )
    assert "attname = 'source_object_count'" in s(q.metadata_present())  # an older warehouse gets migrated
    started = s(q.run_started_upsert())
    assert started.endswith(
        '"source_fingerprint" = excluded."source_fingerprint", "source_object_count" = excluded."source_object_count"'
    )
    assert ", now(), NULL, NULL) ON CONFLICT" in started  # a new generation has not read anything yet
    assert "s.source_fingerprint, s.source_object_count, " in s(q.interval_states())
