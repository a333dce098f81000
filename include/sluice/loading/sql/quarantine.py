"""The statements of `sluice.quarantine`: its DDL and in-place migration, the chunk's replace, the status changes
(pending, superseded, replayed, discarded) and the queries of `python -m sluice quarantine`.

One identifier rule, as in the rest of `loading/sql/`: Sluice's own names are validated and quoted with `qualified`
/ `ident`; every value is a named placeholder or COPY data. Filters are optional: a `None` placeholder matches all
(`%(p)s::text IS NULL OR ...`), so each statement is one fixed string a test can read.
"""

from __future__ import annotations

from enum import StrEnum

from psycopg import sql

from sluice.loading.sql.identifiers import META, _cols, qualified
from sluice.loading.sql.quarantine_counts import counts_ddl, counts_list, counts_ready

__all__ = [
    "COPY_COLUMNS",
    "DROPPED_INDEXES",
    "FILLFACTOR",
    "QUARANTINE_TABLE",
    "ROW_COLUMNS",
    "ReasonKind",
    "Status",
    "create_quarantine",
    "migrate_quarantine",
    "quarantine_copy",
    "quarantine_count",
    "quarantine_ddl",
    "quarantine_delete_chunk",
    "quarantine_discard",
    "quarantine_exists",
    "quarantine_indexes",
    "quarantine_list",
    "quarantine_mark_replayed",
    "quarantine_new_reasons",
    "quarantine_ready",
    "quarantine_replay_chunks",
    "quarantine_rows",
    "quarantine_show",
    "quarantine_supersede",
]

QUARANTINE_TABLE = "quarantine"
# Half-filled pages: every row can take its one status change (pending -> replayed, superseded or discarded) as a
# HOT update on its own page, even when one statement changes all the rows of a page at once.
FILLFACTOR = 50
DROPPED_INDEXES = ("quarantine_run_chunk", "quarantine_listing")  # of earlier shapes of the table


class Status(StrEnum):
    """Where a quarantined row stands. Only the latest generation of an interval has pending rows."""

    pending = "pending"  # waits for a fix and a replay, or a discard
    superseded = "superseded"  # a later extraction of the interval quarantined (or loaded) its own copy
    replayed = "replayed"  # loaded by a replay (replayed_run, replayed_generation say which)
    discarded = "discarded"  # given up on (discarded_by, note say who and why)


class ReasonKind(StrEnum):
    parse = "parse"  # the source could not parse the record (ragged CSV line, bad JSON, bad UTF-8)
    cast = "cast"  # a value does not cast to its declared type
    expectation = "expectation"  # a row-level expectation with severity quarantine


# What a validation COPYs per quarantined row (id, status and its details, created_at take their defaults).
COPY_COLUMNS = (
    "pipeline",
    "run_id",
    "generation",
    "interval_start",
    "interval_end",
    "chunk",
    "row_number",
    "source",
    "source_line",
    "kind",
    "reason",
    "row",
    "reasons",
)
# What `quarantine show` and `export` print per row.
ROW_COLUMNS = (
    "id",
    *COPY_COLUMNS,
    "status",
    "status_at",
    "replayed_run",
    "replayed_generation",
    "discarded_by",
    "note",
    "created_at",
)
# Added to a table created before provenance and status (the in-place migration); type and default of each.
_ADDED = (
    ("generation", "bigint NOT NULL DEFAULT 0"),
    ("source", "text"),
    ("source_line", "bigint"),
    ("kind", "text"),
    ("reason", "text"),
    ("status", "text NOT NULL DEFAULT 'pending'"),
    ("status_at", "timestamptz"),
    ("replayed_run", "text"),
    ("replayed_generation", "bigint"),
    ("discarded_by", "text"),
    ("note", "text"),
)


def _table() -> sql.Identifier:
    return qualified(META, QUARANTINE_TABLE)


def create_quarantine() -> sql.Composed:
    """One row per quarantined row: where it came from, its raw values, every reason, and its status. Pages are
    half filled (FILLFACTOR) so that a row's status change finds room on its own page: a HOT update."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, pipeline text NOT NULL, run_id text NOT NULL, "
        "interval_start timestamptz NOT NULL, interval_end timestamptz NOT NULL, chunk integer NOT NULL, "
        "row_number bigint, row jsonb NOT NULL, reasons jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now()) "
        "WITH (fillfactor = {})"
    ).format(_table(), sql.Literal(FILLFACTOR))


def migrate_quarantine() -> list[sql.Composed]:
    """Bring a table of any earlier shape to the current one, in place: add the columns, fill provenance of old
    source rejects from their row (file, line), the kind and reason from the first reason, and mark the rows of
    older generations of an interval superseded. Every statement is idempotent."""
    t = _table()
    stmts = [
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(t, sql.Identifier(name), sql.SQL(ddl))
        for name, ddl in _ADDED
    ]
    stmts += [
        # an existing table: pages written from now on leave room for HOT status changes (older pages keep their
        # packing until a VACUUM FULL rewrites them; their status changes still work, only not HOT)
        sql.SQL("ALTER TABLE {} SET (fillfactor = {})").format(t, sql.Literal(FILLFACTOR)),
        sql.SQL(
            "UPDATE {} SET kind = CASE WHEN reasons->0 ? 'stage' THEN 'parse' WHEN reasons->0 ? 'expectation' "
            "THEN 'expectation' ELSE 'cast' END, source = coalesce(source, row->>'file'), "
            "source_line = coalesce(source_line, (row->>'line')::bigint), "
            "reason = coalesce(reason, reasons->0->>'expectation', reasons->0->>'reason') WHERE kind IS NULL"
        ).format(t),
        sql.SQL(
            "UPDATE {t} q SET status = 'superseded', status_at = now() WHERE status = 'pending' AND EXISTS "
            "(SELECT FROM {t} n WHERE n.pipeline = q.pipeline AND n.interval_start = q.interval_start "
            "AND n.interval_end = q.interval_end AND n.generation > q.generation)"
        ).format(t=t),
        sql.SQL(
            "DO $$ BEGIN ALTER TABLE {} ADD CONSTRAINT quarantine_status CHECK (status IN "
            "('pending', 'superseded', 'replayed', 'discarded')); EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ).format(t),
    ]
    return stmts


def quarantine_indexes() -> list[sql.Composed]:
    """The chunk's replace (by run, generation, chunk), and the supersede, replay, mark and export steps (by pipeline
    and interval). No index names a column a status change writes (status, status_at, replayed_*, kind, reason,
    reasons; nor in an index predicate): with the free room FILLFACTOR leaves, marking 100,000 rows replayed is a
    HOT update that writes no index entry (bench/README.md). `quarantine list` reads the kept counts, not an index
    of the rows; the dropped `quarantine_listing` (pipeline, status, ...) made every status change write four index
    entries."""
    t = _table()
    return [
        sql.SQL("CREATE INDEX IF NOT EXISTS quarantine_generation ON {} (pipeline, run_id, generation, chunk)").format(
            t
        ),
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS quarantine_interval ON {} (pipeline, interval_start, interval_end, generation)"
        ).format(t),
        *(sql.SQL("DROP INDEX IF EXISTS {}").format(qualified(META, name)) for name in DROPPED_INDEXES),
    ]


def quarantine_ddl() -> list[sql.Composed]:
    """Everything `ensure_quarantine_table` runs under the DDL lock, in order (the kept counts last: see
    `quarantine_counts`)."""
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(META)),
        create_quarantine(),
        *migrate_quarantine(),
        *quarantine_indexes(),
        *counts_ddl(),
    ]


def quarantine_ready() -> sql.Composed:
    """Is the table there in its current shape, with its kept counts (then no DDL lock is taken)? The fillfactor is
    set in the same migration transaction that drops `quarantine_listing`, so an install from before HOT status
    changes is migrated once."""
    return sql.SQL(
        "SELECT ({}) AND EXISTS (SELECT FROM pg_class WHERE oid = to_regclass({}) AND reloptions @> {})"
    ).format(
        counts_ready(),
        sql.Literal(f"{META}.{QUARANTINE_TABLE}"),
        sql.Literal([f"fillfactor={FILLFACTOR}"]),
    )


def quarantine_delete_chunk() -> sql.Composed:
    """A retried validation first removes what its earlier try wrote for the chunk."""
    return sql.SQL(
        "DELETE FROM {} WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s AND generation = %(generation)s "
        "AND chunk = %(chunk)s"
    ).format(_table())


def quarantine_copy() -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(_table(), _cols(COPY_COLUMNS))


def quarantine_supersede() -> sql.Composed:
    """A new generation of an interval quarantined its rows: the pending rows of earlier generations are superseded
    (the latest extraction's rows are the pending ones; replayed and discarded rows keep their status)."""
    return sql.SQL(
        "UPDATE {} SET status = 'superseded', status_at = now() WHERE pipeline = %(pipeline)s "
        "AND interval_start = %(start)s AND interval_end = %(end)s AND generation < %(generation)s "
        "AND status = 'pending'"
    ).format(_table())


def quarantine_count() -> sql.Composed:
    """The rows a generation left in quarantine: finalize reconciles them with the ledger."""
    return sql.SQL(
        "SELECT count(*) FROM {} WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s AND generation = %(generation)s"
    ).format(_table())


def quarantine_exists() -> sql.Composed:
    return sql.SQL("SELECT to_regclass({}) IS NOT NULL").format(sql.Literal(f"{META}.{QUARANTINE_TABLE}"))


# ---------------------------------------------------------------- the command line

_FILTER = sql.SQL(
    "(%(pipeline)s::text IS NULL OR pipeline = %(pipeline)s) "
    "AND (%(status)s::text IS NULL OR status = %(status)s) "
    "AND (%(since)s::timestamptz IS NULL OR interval_start >= %(since)s) "
    "AND (%(until)s::timestamptz IS NULL OR interval_end <= %(until)s) "
    "AND (%(reason)s::text IS NULL OR reason ILIKE '%%' || %(reason)s || '%%')"
)


def quarantine_list() -> sql.Composed:
    """Counts by pipeline, interval, status and reason (params: pipeline, status, since, until, reason; None = all),
    from the counts the triggers keep (`sluice.quarantine_counts`), not by counting the rows."""
    return counts_list(_FILTER)


def quarantine_show() -> sql.Composed:
    return sql.SQL("SELECT {} FROM {} WHERE id = %(id)s").format(_cols(ROW_COLUMNS), _table())


def quarantine_rows() -> sql.Composed:
    """The matching rows in full, in source order (export, replay); the same filter as quarantine_list."""
    return sql.SQL(
        "SELECT {} FROM {} WHERE {} ORDER BY pipeline, interval_start, generation, chunk, row_number, id"
    ).format(_cols(ROW_COLUMNS), _table(), _FILTER)


def quarantine_replay_chunks() -> sql.Composed:
    """What a replay needs of the matching rows, one result row per quarantined chunk (interval, quarantining
    generation, run, chunk), in source order: the ids and the raw rows as newline-separated JSON text of the rows it
    can re-cast (parsed in bulk by pyarrow), and the reasons of the source rejects (kind parse), which it cannot.
    Aggregated by PostgreSQL, so a replay builds no Python object per row; per chunk, so one text stays far below
    PostgreSQL's 1 GB limit (a chunk holds at most `staging.chunk_rows` rows)."""
    return sql.SQL(
        "SELECT interval_start, interval_end, generation, "
        "array_agg(id ORDER BY row_number, id) FILTER (WHERE kind IS DISTINCT FROM 'parse') AS ids, "
        "string_agg(row::text, E'\\n' ORDER BY row_number, id) FILTER (WHERE kind IS DISTINCT FROM 'parse') AS rows, "
        "array_agg(reason) FILTER (WHERE kind = 'parse') AS parse_reasons FROM {} WHERE {} "
        "GROUP BY interval_start, interval_end, generation, run_id, chunk "
        "ORDER BY interval_start, generation, interval_end, run_id, chunk"
    ).format(_table(), _FILTER)


def quarantine_discard() -> sql.Composed:
    """Give up on the pending rows that match; returns their ids (none: the command says so and exits 1)."""
    return sql.SQL(
        "UPDATE {} SET status = 'discarded', status_at = now(), discarded_by = %(by)s, note = %(note)s "
        "WHERE {} RETURNING id"
    ).format(_table(), _FILTER)


_GROUP = sql.SQL(
    "q.pipeline = %(pipeline)s AND q.interval_start = %(start)s AND q.interval_end = %(end)s "
    "AND q.generation = %(quarantined_by)s"
)


def quarantine_mark_replayed() -> sql.Composed:
    """In the replay's load transaction: the rows it loaded, only while still pending (a second replay finds none).
    A join with the unnested ids, not `id = ANY(array)`: that is a scan per array element on a large replay. The
    group's predicate (pipeline, interval, quarantining generation: index quarantine_interval) keeps the join's other
    side to the group's rows instead of every pending row of the table, which a replay of many intervals would
    otherwise scan once per interval."""
    return sql.SQL(
        "UPDATE {} AS q SET status = 'replayed', status_at = now(), replayed_run = %(run_id)s, "
        "replayed_generation = %(generation)s FROM unnest(%(ids)s::bigint[]) AS u(id) "
        "WHERE {} AND q.id = u.id AND q.status = 'pending'"
    ).format(_table(), _GROUP)


def quarantine_new_reasons() -> sql.Composed:
    """A replayed row that still fails stays pending with the reasons of the current config."""
    return sql.SQL(
        "UPDATE {} AS q SET kind = u.kind, reason = u.reason, reasons = u.reasons::jsonb, status_at = now() "
        "FROM unnest(%(ids)s::bigint[], %(kinds)s::text[], %(reasons_key)s::text[], %(reasons)s::text[]) "
        "AS u(id, kind, reason, reasons) WHERE {} AND q.id = u.id AND q.status = 'pending'"
    ).format(_table(), _GROUP)
