"""Freshness: the last loaded interval and a run's progress (read by alerts), and the freshness watchdog's state
per pipeline and alert channel (kept in the warehouse, beside the run summaries it is computed from)."""

from __future__ import annotations

from psycopg import sql

from sluice.loading.sql.identifiers import META, qualified

FRESHNESS_STATE_FIELDS = ("pipeline", "channel", "state", "sent", "checked_at", "last_end", "outcome")


def last_loaded(schema: str = META) -> sql.Composed:
    """Last successfully loaded interval, and the most recent run of any outcome, of one pipeline."""
    s = qualified(schema, "run_summary")
    return sql.SQL(
        "SELECT ok.interval_start, ok.interval_end, ok.finished_at, lr.run_id, lr.status, lr.rows_in, "
        "lr.rows_loaded, lr.rows_quarantined FROM (SELECT 1) AS one "
        "LEFT JOIN LATERAL (SELECT interval_start, interval_end, finished_at FROM {s} "
        "WHERE pipeline = %(pipeline)s AND lower(status) = ANY(%(ok)s) "
        "ORDER BY interval_end DESC, finished_at DESC NULLS LAST LIMIT 1) AS ok ON true "
        "LEFT JOIN LATERAL (SELECT run_id, status, rows_in, rows_loaded, rows_quarantined FROM {s} "
        "WHERE pipeline = %(pipeline)s ORDER BY finished_at DESC NULLS LAST LIMIT 1) AS lr ON true"
    ).format(s=s)


def run_progress(schema: str = META) -> sql.Composed:
    """Rows one run has committed so far, chunk by chunk (the ledger is written with each chunk's upsert)."""
    return sql.SQL(
        "SELECT count(*), sum(rows_in), sum(rows_loaded), sum(rows_quarantined) FROM {} "
        "WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s"
    ).format(qualified(schema, "load_ledger"))


def create_freshness_state() -> sql.Composed:
    """One row per (pipeline, alert channel): the state last reported to that channel, and whether it got there."""
    return sql.SQL("""CREATE TABLE IF NOT EXISTS {t} (
    pipeline text NOT NULL, channel text NOT NULL, state text NOT NULL CHECK (state IN ('ok', 'breach')),
    sent boolean NOT NULL, checked_at timestamptz NOT NULL, last_end timestamptz, outcome text,
    changed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (pipeline, channel))""").format(
        t=qualified(META, "freshness_state")
    )


def freshness_state_select() -> sql.Composed:
    """The channels' states of one pipeline, locked until the watchdog has decided and sent (one watchdog at a time
    per pipeline, whatever runs overlap)."""
    return sql.SQL(
        "SELECT channel, state, sent, checked_at FROM {} WHERE pipeline = %(pipeline)s ORDER BY channel FOR UPDATE"
    ).format(qualified(META, "freshness_state"))


def freshness_state_upsert() -> sql.Composed:
    fields = FRESHNESS_STATE_FIELDS
    rest = [f for f in fields if f not in ("pipeline", "channel")]
    return sql.SQL(
        "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (pipeline, channel) DO UPDATE SET {sets}, "
        "changed_at = CASE WHEN {t}.state IS DISTINCT FROM excluded.state THEN now() ELSE {t}.changed_at END"
    ).format(
        t=qualified(META, "freshness_state"),
        cols=sql.SQL(", ").join(sql.Identifier(f) for f in fields),
        vals=sql.SQL(", ").join(sql.Placeholder(f) for f in fields),
        sets=sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in rest),
    )
