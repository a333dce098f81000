"""The history the quality gate's checks compare with: per-interval row counts and column statistics of successful
loads only."""

from __future__ import annotations

from psycopg import sql

from sluice.loading.sql.identifiers import META, qualified

STATS_FIELDS = (
    "pipeline",
    "interval_start",
    "interval_end",
    "run_id",
    "generation",
    "rows_in",
    "rows_loaded",
    "rows_quarantined",
    "columns",
)


def create_interval_stats() -> sql.Composed:
    """The last successful load of each interval: its row counts and per-column statistics (JSON: count, nulls,
    min, max, sum, mean per numeric column). Only finalize writes it, and only for a run that added up."""
    return sql.SQL("""CREATE TABLE IF NOT EXISTS {t} (
    pipeline text NOT NULL, interval_start timestamptz NOT NULL, interval_end timestamptz NOT NULL,
    run_id text NOT NULL, generation bigint NOT NULL, rows_in bigint NOT NULL, rows_loaded bigint NOT NULL,
    rows_quarantined bigint NOT NULL, columns jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, interval_start, interval_end))""").format(t=qualified(META, "interval_stats"))


def interval_stats_upsert() -> sql.Composed:
    """A later successful load of an interval replaces the earlier one's figures."""
    rest = [f for f in STATS_FIELDS if f not in ("pipeline", "interval_start", "interval_end")]
    return sql.SQL(
        "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (pipeline, interval_start, interval_end) "
        "DO UPDATE SET {sets}, recorded_at = now()"
    ).format(
        t=qualified(META, "interval_stats"),
        cols=sql.SQL(", ").join(sql.Identifier(f) for f in STATS_FIELDS),
        vals=sql.SQL(", ").join(sql.Placeholder(f) for f in STATS_FIELDS),
        sets=sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in rest),
    )


def interval_history() -> sql.Composed:
    """The %(n)s latest successfully loaded intervals that end at or before %(start)s (this interval's start), so a
    re-run or backfill of an old interval is compared with its own past, never with itself or its future."""
    return sql.SQL(
        "SELECT interval_start, interval_end, rows_in, columns FROM {} WHERE pipeline = %(pipeline)s "
        "AND interval_end <= %(start)s ORDER BY interval_end DESC LIMIT %(n)s"
    ).format(qualified(META, "interval_stats"))
