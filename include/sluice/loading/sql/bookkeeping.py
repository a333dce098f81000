"""Sluice's own rows: ledger, generations, schema changes, run summary."""

from __future__ import annotations

from psycopg import sql

from sluice.loading.sql.identifiers import (
    META,
    _cols,
    ident,
    qualified,
    regclass_present,
)

LEDGER_FIELDS = (
    "pipeline",
    "target",
    "interval_start",
    "interval_end",
    "run_id",
    "run_no",
    "chunk",
    "rows_in",
    "rows_loaded",
    "rows_quarantined",
    "inserted",
    "updated",
    "deleted",
    "duplicates",
    "checksum",
    "write_mode",
    "started_at",
    "finished_at",
    "copy_seconds",
    "merge_seconds",
    "superseded",
    "unchanged",
)
SUMMARY_FIELDS = (
    "pipeline",
    "run_id",
    "target",
    "interval_start",
    "interval_end",
    "chunks",
    "rows_in",
    "rows_loaded",
    "rows_quarantined",
    "inserted",
    "updated",
    "deleted",
    "generation",
    "superseded",
    "unchanged",
    "schema_changes",
    "status",
    "problems",
    "warnings",
    "notes",
    "finished_at",
    "source_fingerprint",
    "source_object_count",
)


def ledger_insert() -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        qualified(META, "load_ledger"),
        _cols(LEDGER_FIELDS),
        sql.SQL(", ").join(sql.Placeholder(f) for f in LEDGER_FIELDS),
    )


def ledger_select(one_chunk: bool) -> sql.Composed:
    """The ledger rows of a generation of a run (or of one chunk of it), as dicts in chunk order."""
    where = sql.SQL(" AND chunk = %(chunk)s") if one_chunk else sql.SQL("")
    return sql.SQL(
        "SELECT {} FROM {} WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s AND run_no = %(run_no)s{} "
        "ORDER BY chunk"
    ).format(_cols(LEDGER_FIELDS), qualified(META, "load_ledger"), where)


def next_run_no() -> sql.Composed:
    return sql.SQL("SELECT nextval({}::regclass)").format(sql.Literal(f"{META}.load_run_seq"))


def generation_started() -> sql.Composed:
    """Has a chunk of this generation committed already (then its first-chunk work, a delete, is done)?"""
    return sql.SQL(
        "SELECT EXISTS (SELECT FROM {} WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s AND run_no = %(run_no)s)"
    ).format(qualified(META, "load_ledger"))


# what ensure_metadata creates; interval_stats and freshness_state last, run_summary_finished the last health index
_METADATA = (
    "load_ledger",
    "run_summary",
    "schema_changes",
    "load_run_seq",
    "load_ledger_generation_chunk",
    "run_summary_finished",
    "interval_stats",
    "freshness_state",
)


def metadata_present() -> sql.Composed:
    """One cheap query, so the DDL lock is only taken the first time."""
    return sql.SQL(
        "SELECT {} AND EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass({s}) "
        "AND attname = 'source_object_count') AND EXISTS (SELECT FROM pg_namespace WHERE nspname = %(schema)s)"
    ).format(sql.SQL(" AND ").join(regclass_present(n) for n in _METADATA), s=sql.Literal(f"{META}.run_summary"))


def schema_change_insert() -> sql.Composed:
    return sql.SQL(
        "INSERT INTO {} (pipeline, run_id, target, change, column_name, column_type) "
        "VALUES (%(pipeline)s, %(run_id)s, %(target)s, %(change)s, %(column)s, %(type)s)"
    ).format(qualified(META, "schema_changes"))


def schema_changes_select() -> sql.Composed:
    return sql.SQL(
        "SELECT change, column_name, column_type FROM {} WHERE pipeline = %(pipeline)s "
        "AND run_id = %(run_id)s ORDER BY id"
    ).format(qualified(META, "schema_changes"))


def last_successful_load() -> sql.Composed:
    """The interval's last successful load before this run (run_id, generation, rows loaded, finished_at): what the
    replace_interval gate compares the source's row count with."""
    return sql.SQL(
        "SELECT run_id, generation, rows_loaded, finished_at FROM {} WHERE pipeline = %(pipeline)s "
        "AND interval_start = %(start)s AND interval_end = %(end)s AND status = 'success' "
        "ORDER BY finished_at DESC LIMIT 1"
    ).format(qualified(META, "run_summary"))


def run_summary_upsert() -> sql.Composed:
    rest = [f for f in SUMMARY_FIELDS if f not in ("pipeline", "run_id")]
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (pipeline, run_id) DO UPDATE SET {}").format(
        qualified(META, "run_summary"),
        _cols(SUMMARY_FIELDS),
        sql.SQL(", ").join(sql.Placeholder(f) for f in SUMMARY_FIELDS),
        sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=ident(c)) for c in rest),
    )


def run_started_upsert() -> sql.Composed:
    """A generation begins: the run's summary row says `running` for it (zero counts until finalize), so an interval
    whose run dies before loading anything is not mistaken for one that never ran."""
    zero = (
        "chunks",
        "rows_in",
        "rows_loaded",
        "rows_quarantined",
        "inserted",
        "updated",
        "deleted",
        "superseded",
        "unchanged",
    )
    values: dict[str, sql.Composable] = {
        f: sql.Placeholder(f) for f in ("pipeline", "run_id", "target", "interval_start", "interval_end")
    }
    values |= {f: sql.SQL("0") for f in zero}
    values |= {
        "generation": sql.Placeholder("generation"),
        "schema_changes": sql.SQL("'[]'::jsonb"),
        "problems": sql.SQL("'[]'::jsonb"),
        "warnings": sql.SQL("'[]'::jsonb"),
        "notes": sql.SQL("'[]'::jsonb"),
        "status": sql.Literal("running"),
        "finished_at": sql.SQL("now()"),
        "source_fingerprint": sql.SQL("NULL"),  # finalize records what this generation read
        "source_object_count": sql.SQL("NULL"),
    }
    rest = [f for f in SUMMARY_FIELDS if f not in ("pipeline", "run_id")]
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (pipeline, run_id) DO UPDATE SET {}").format(
        qualified(META, "run_summary"),
        _cols(SUMMARY_FIELDS),
        sql.SQL(", ").join(values[f] for f in SUMMARY_FIELDS),
        sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=ident(c)) for c in rest),
    )


def run_status_update() -> sql.Composed:
    """A stage of a generation failed (or the gate refused it): its summary row says so, with the reason and the
    counts known so far. Only that generation's row: a newer generation of the run is never overwritten."""
    return sql.SQL(
        "UPDATE {} SET status = %(status)s, problems = %(problems)s, rows_in = GREATEST(rows_in, %(rows_in)s), "
        "rows_quarantined = GREATEST(rows_quarantined, %(rows_quarantined)s), finished_at = now() "
        "WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s AND generation = %(generation)s"
    ).format(qualified(META, "run_summary"))


def interval_states() -> sql.Composed:
    """Per interval of a pipeline whose start is in [%(lo)s, %(hi)s]: its latest generation's summary (any run_id:
    scheduled, manual, backfill, `sluice run`), with the fingerprint of the source it read, and how many ledger rows
    that generation has."""
    return sql.SQL(
        "SELECT s.interval_start, s.interval_end, s.run_id, s.generation, s.status, s.chunks, s.rows_in, "
        "s.rows_loaded, s.rows_quarantined, s.problems, s.finished_at, s.source_fingerprint, s.source_object_count, "
        "(SELECT count(*) FROM {l} l WHERE l.pipeline = s.pipeline AND l.run_id = s.run_id "
        "AND l.run_no = s.generation) AS ledger_chunks "
        "FROM (SELECT DISTINCT ON (interval_start, interval_end) * FROM {s} WHERE pipeline = %(pipeline)s "
        "AND interval_start >= %(lo)s AND interval_start <= %(hi)s "
        "ORDER BY interval_start, interval_end, generation DESC, finished_at DESC) s ORDER BY s.interval_start"
    ).format(s=qualified(META, "run_summary"), l=qualified(META, "load_ledger"))


def last_generation() -> sql.Composed:
    """The newest generation number handed out so far (0 before the first): generations after it are newer runs."""
    return sql.SQL("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {}").format(
        qualified(META, "load_run_seq")
    )


def loaded_since() -> sql.Composed:
    """Runs of a pipeline that finished successfully with a generation newer than %(generation)s, and their rows."""
    return sql.SQL(
        "SELECT count(*), coalesce(sum(rows_loaded), 0) FROM {} WHERE pipeline = %(pipeline)s "
        "AND generation > %(generation)s AND status = 'success'"
    ).format(qualified(META, "run_summary"))
