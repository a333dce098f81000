"""Sluice's own rows: ledger, generations, schema changes, run summary."""

from __future__ import annotations

from psycopg import sql

from sluice.loading.sql.identifiers import (
    META,
    _cols,
    ident,
    qualified,
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


def metadata_present() -> sql.Composed:
    """One cheap query, so the DDL lock is only taken the first time."""
    return sql.SQL(
        "SELECT to_regclass({l}) IS NOT NULL AND to_regclass({s}) IS NOT NULL AND to_regclass({c}) IS NOT NULL "
        "AND to_regclass({q}) IS NOT NULL AND to_regclass({g}) IS NOT NULL "
        "AND to_regclass({h}) IS NOT NULL AND to_regclass({f}) IS NOT NULL "
        "AND EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass({s}) AND attname = 'notes') "
        "AND EXISTS (SELECT FROM pg_namespace WHERE nspname = %(schema)s)"
    ).format(
        h=sql.Literal(f"{META}.interval_stats"),
        f=sql.Literal(f"{META}.freshness_state"),
        g=sql.Literal(f"{META}.load_ledger_generation_chunk"),
        l=sql.Literal(f"{META}.load_ledger"),
        s=sql.Literal(f"{META}.run_summary"),
        c=sql.Literal(f"{META}.schema_changes"),
        q=sql.Literal(f"{META}.load_run_seq"),
    )


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


def run_summary_upsert() -> sql.Composed:
    rest = [f for f in SUMMARY_FIELDS if f not in ("pipeline", "run_id")]
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (pipeline, run_id) DO UPDATE SET {}").format(
        qualified(META, "run_summary"),
        _cols(SUMMARY_FIELDS),
        sql.SQL(", ").join(sql.Placeholder(f) for f in SUMMARY_FIELDS),
        sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=ident(c)) for c in rest),
    )
