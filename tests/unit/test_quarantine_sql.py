"""sluice.quarantine's statements read as strings: one identifier rule (Sluice's own quoted names), values only as
named placeholders, optional filters as `IS NULL OR`, and the in-place migration."""

from __future__ import annotations

from sluice.loading import sql as q
from sluice.loading.sql import quarantine as qs


def s(composed) -> str:
    return composed.as_string(None)


def test_create_and_migrate_give_every_provenance_and_status_column():
    ddl = [s(x) for x in qs.quarantine_ddl()]
    assert ddl[0] == 'CREATE SCHEMA IF NOT EXISTS "sluice"'
    assert ddl[1].startswith('CREATE TABLE IF NOT EXISTS "sluice"."quarantine" (id bigserial PRIMARY KEY')
    added = "\n".join(ddl)
    for column in ('"generation" bigint NOT NULL DEFAULT 0', '"source" text', '"source_line" bigint', '"kind" text'):
        assert column in added
    assert "\"status\" text NOT NULL DEFAULT 'pending'" in added
    assert "CHECK (status IN ('pending', 'superseded', 'replayed', 'discarded'))" in added
    assert all(x.startswith(("CREATE", "ALTER", "UPDATE", "DO", "DROP INDEX IF EXISTS")) for x in ddl)
    assert all("%(" not in x for x in ddl)  # DDL takes no values


def test_migration_fills_old_rows_and_supersedes_older_generations():
    migrate = [s(x) for x in qs.migrate_quarantine()]
    fill = next(x for x in migrate if x.startswith('UPDATE "sluice"."quarantine" SET kind'))
    assert "WHEN reasons->0 ? 'stage' THEN 'parse'" in fill and "source = coalesce(source, row->>'file')" in fill
    assert fill.endswith("WHERE kind IS NULL")  # idempotent: a second run touches nothing
    supersede = next(x for x in migrate if "'superseded'" in x)
    assert "n.generation > q.generation" in supersede and "WHERE status = 'pending'" in supersede


def test_no_index_names_a_column_a_status_change_writes():
    """Marking rows replayed (or superseded, discarded, new reasons) stays a HOT update: no index entry written."""
    idx = [s(x) for x in qs.quarantine_indexes()]
    created = [x for x in idx if x.startswith("CREATE INDEX")]
    assert created == [
        'CREATE INDEX IF NOT EXISTS quarantine_generation ON "sluice"."quarantine" '
        "(pipeline, run_id, generation, chunk)",
        'CREATE INDEX IF NOT EXISTS quarantine_interval ON "sluice"."quarantine" '
        "(pipeline, interval_start, interval_end, generation)",
    ]
    written = ("status", "status_at", "replayed_run", "replayed_generation", "discarded_by", "note", "kind", "reason")
    for x in created:
        columns = x[x.index("(") + 1 : x.index(")")].split(", ")
        assert not set(columns) & set(written) and " WHERE " not in x
    assert 'DROP INDEX IF EXISTS "sluice"."quarantine_listing"' in idx  # an existing install loses it
    assert 'DROP INDEX IF EXISTS "sluice"."quarantine_run_chunk"' in idx


def test_pages_leave_room_for_hot_status_changes():
    assert s(qs.create_quarantine()).endswith("WITH (fillfactor = 50)")
    assert 'ALTER TABLE "sluice"."quarantine" SET (fillfactor = 50)' in [s(x) for x in qs.migrate_quarantine()]


def test_chunk_replace_and_supersede():
    assert s(qs.quarantine_delete_chunk()) == (
        'DELETE FROM "sluice"."quarantine" WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s '
        "AND generation = %(generation)s AND chunk = %(chunk)s"
    )
    assert s(qs.quarantine_copy()) == (
        'COPY "sluice"."quarantine" ("pipeline", "run_id", "generation", "interval_start", "interval_end", "chunk", '
        '"row_number", "source", "source_line", "kind", "reason", "row", "reasons") FROM STDIN'
    )
    assert s(qs.quarantine_supersede()) == (
        'UPDATE "sluice"."quarantine" SET status = \'superseded\', status_at = now() WHERE pipeline = %(pipeline)s '
        "AND interval_start = %(start)s AND interval_end = %(end)s AND generation < %(generation)s "
        "AND status = 'pending'"
    )
    assert s(q.quarantine_count()) == (
        'SELECT count(*) FROM "sluice"."quarantine" WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s '
        "AND generation = %(generation)s"
    )


def test_filters_are_optional_placeholders():
    listing = s(qs.quarantine_list())
    assert listing.startswith(
        "SELECT pipeline, interval_start, interval_end, status, reason, sum(rows)::bigint AS rows "
        'FROM "sluice"."quarantine_counts"'
    )
    assert "HAVING sum(rows) <> 0" in listing
    for part in (
        "(%(pipeline)s::text IS NULL OR pipeline = %(pipeline)s)",
        "(%(status)s::text IS NULL OR status = %(status)s)",
        "(%(since)s::timestamptz IS NULL OR interval_start >= %(since)s)",
        "(%(reason)s::text IS NULL OR reason ILIKE '%%' || %(reason)s || '%%')",
    ):
        assert part in listing
        assert part in s(qs.quarantine_rows()) and part in s(qs.quarantine_discard())
    assert s(qs.quarantine_discard()).endswith("RETURNING id")


def test_replay_marks_only_pending_rows():
    mark = s(qs.quarantine_mark_replayed())
    assert "replayed_run = %(run_id)s" in mark and "FROM unnest(%(ids)s::bigint[]) AS u(id)" in mark
    group = (
        "WHERE q.pipeline = %(pipeline)s AND q.interval_start = %(start)s AND q.interval_end = %(end)s "
        "AND q.generation = %(quarantined_by)s AND q.id = u.id AND q.status = 'pending'"
    )
    assert mark.endswith(group)  # the group's rows only (index quarantine_interval), not every pending row
    assert s(qs.quarantine_new_reasons()).endswith(group)


def test_replay_reads_its_rows_aggregated_per_quarantined_chunk():
    chunks = s(qs.quarantine_replay_chunks())
    assert "array_agg(id ORDER BY row_number, id) FILTER (WHERE kind IS DISTINCT FROM 'parse') AS ids" in chunks
    assert (
        "string_agg(row::text, E'\\n' ORDER BY row_number, id) FILTER (WHERE kind IS DISTINCT FROM 'parse')" in chunks
    )
    assert "array_agg(reason) FILTER (WHERE kind = 'parse') AS parse_reasons" in chunks
    assert "(%(status)s::text IS NULL OR status = %(status)s)" in chunks  # the filter of list, export, discard
    assert chunks.endswith(
        "GROUP BY interval_start, interval_end, generation, run_id, chunk "
        "ORDER BY interval_start, generation, interval_end, run_id, chunk"
    )


def test_copy_columns_match_the_parquet_copy():
    from sluice.validate.quarantine import QUARANTINE_FILE_SCHEMA

    assert tuple(QUARANTINE_FILE_SCHEMA.names) == qs.COPY_COLUMNS
    assert set(qs.COPY_COLUMNS) < set(qs.ROW_COLUMNS)
