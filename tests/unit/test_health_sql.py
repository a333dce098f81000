"""The freshness and history statements (loading/sql/freshness.py, history.py), read as strings."""

from __future__ import annotations

import pytest
from sluice.loading import sql as q


def s(composed) -> str:
    return composed.as_string(None)


def test_last_loaded():
    text = s(q.last_loaded())
    assert 'FROM "sluice"."run_summary" WHERE pipeline = %(pipeline)s AND lower(status) = ANY(%(ok)s)' in text
    assert "ORDER BY interval_end DESC, finished_at DESC NULLS LAST LIMIT 1) AS ok ON true" in text
    assert "ORDER BY finished_at DESC NULLS LAST LIMIT 1) AS lr ON true" in text


def test_run_progress():
    assert s(q.run_progress("t_abc")) == (
        'SELECT count(*), sum(rows_in), sum(rows_loaded), sum(rows_quarantined) FROM "t_abc"."load_ledger"'
        " WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s"
    )


@pytest.mark.parametrize("build", [q.last_loaded, q.run_progress])
def test_freshness_reads_refuse_unsafe_schema(build):
    with pytest.raises(q.UnsafeIdentifier):
        build('x"; drop table y; --')


def test_freshness_state():
    assert s(q.create_freshness_state()).startswith('CREATE TABLE IF NOT EXISTS "sluice"."freshness_state" (')
    assert "PRIMARY KEY (pipeline, channel)" in s(q.create_freshness_state())
    assert s(q.freshness_state_select()) == (
        'SELECT channel, state, sent, checked_at FROM "sluice"."freshness_state" WHERE pipeline = %(pipeline)s '
        "ORDER BY channel FOR UPDATE"
    )
    upsert = s(q.freshness_state_upsert())
    assert upsert.startswith(
        'INSERT INTO "sluice"."freshness_state" ("pipeline", "channel", "state", "sent", "checked_at", "last_end", '
        '"outcome") VALUES (%(pipeline)s, %(channel)s, %(state)s, %(sent)s, %(checked_at)s, %(last_end)s, '
        "%(outcome)s) ON CONFLICT (pipeline, channel) DO UPDATE SET "
    )
    assert '"pipeline" = excluded' not in upsert and '"state" = excluded."state"' in upsert


def test_interval_stats():
    assert "PRIMARY KEY (pipeline, interval_start, interval_end)" in s(q.create_interval_stats())
    upsert = s(q.interval_stats_upsert())
    assert upsert.startswith('INSERT INTO "sluice"."interval_stats" ("pipeline", "interval_start", ')
    assert "ON CONFLICT (pipeline, interval_start, interval_end) DO UPDATE SET " in upsert
    assert '"rows_in" = excluded."rows_in"' in upsert and '"interval_end" = excluded' not in upsert
    assert s(q.interval_history()) == (
        'SELECT interval_start, interval_end, rows_in, columns FROM "sluice"."interval_stats" '
        "WHERE pipeline = %(pipeline)s AND interval_end <= %(start)s ORDER BY interval_end DESC LIMIT %(n)s"
    )


def test_metadata_covers_the_health_tables():
    present = s(q.metadata_present())
    assert "'sluice.interval_stats'" in present and "'sluice.freshness_state'" in present
