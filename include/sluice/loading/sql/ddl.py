"""DDL: the target table, its hidden columns, and Sluice's own tables (ledger, run summary, schema changes)."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from sluice.loading.sql.identifiers import (
    HIDDEN,
    INTERVAL_COL,
    INTERVAL_DEFAULT,
    META,
    RUN_COL,
    RUN_DEFAULT,
    SEQ_COL,
    TEMP_TABLE,
    Col,
    _coldef,
    _cols,
    ident,
    pg_type,
    qualified,
)


def create_schema(schema: str) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(schema))


def create_table(
    schema: str, table: str, columns: Sequence[Col], primary_key: Sequence[str], hidden: bool = True
) -> sql.Composed:
    """The target table from the declared columns; `hidden` adds the ordering columns upserts need."""
    parts = [_coldef(c) for c in columns]
    if hidden:
        parts += [
            sql.SQL("{} bigint NOT NULL DEFAULT {}").format(ident(RUN_COL), sql.SQL(RUN_DEFAULT)),
            sql.SQL("{} bigint NOT NULL DEFAULT 0").format(ident(SEQ_COL)),
            sql.SQL("{} timestamptz DEFAULT {}").format(ident(INTERVAL_COL), sql.SQL(INTERVAL_DEFAULT)),
        ]
    if primary_key:
        parts.append(sql.SQL("PRIMARY KEY ({})").format(_cols(primary_key)))
    return sql.SQL("CREATE TABLE {} ({})").format(qualified(schema, table), sql.SQL(", ").join(parts))


def add_column(schema: str, table: str, col: Col) -> sql.Composed:
    """Schema evolution: always nullable, so existing rows stay valid and no table rewrite happens."""
    return sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
        qualified(schema, table), ident(col.name), sql.SQL(pg_type(col.pg_type))
    )


def add_hidden_columns(schema: str, table: str) -> sql.Composed:
    """For a table created outside Sluice: a constant default makes this a catalog-only change (PostgreSQL 11+)."""
    return sql.SQL("ALTER TABLE {} {}").format(
        qualified(schema, table),
        sql.SQL(", ").join(
            sql.SQL("ADD COLUMN IF NOT EXISTS {} bigint NOT NULL DEFAULT 0").format(ident(h)) for h in HIDDEN
        ),
    )


def set_run_default(schema: str, table: str) -> sql.Composed:
    """After add_hidden_columns (whose constant default keeps that step catalog-only): stamp future rows."""
    return sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
        qualified(schema, table), ident(RUN_COL), sql.SQL(RUN_DEFAULT)
    )


def add_interval_column(schema: str, table: str) -> sql.Composed:
    """Tables made before newer_interval_wins existed: nullable with no default, so a catalog-only change, and the
    rows already there read NULL (older than any interval). set_interval_default then stamps future rows."""
    return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} timestamptz").format(
        qualified(schema, table), ident(INTERVAL_COL)
    )


def set_interval_default(schema: str, table: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
        qualified(schema, table), ident(INTERVAL_COL), sql.SQL(INTERVAL_DEFAULT)
    )


def create_ledger() -> sql.Composed:
    return sql.SQL("""CREATE TABLE IF NOT EXISTS {t} (
    id bigserial PRIMARY KEY, pipeline text NOT NULL, target text NOT NULL,
    interval_start timestamptz NOT NULL, interval_end timestamptz NOT NULL, run_id text NOT NULL,
    run_no bigint NOT NULL, chunk integer NOT NULL, rows_in bigint NOT NULL, rows_loaded bigint NOT NULL,
    rows_quarantined bigint NOT NULL, inserted bigint NOT NULL, updated bigint NOT NULL, deleted bigint NOT NULL,
    duplicates bigint NOT NULL, checksum text NOT NULL, write_mode text NOT NULL, started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL, copy_seconds double precision NOT NULL,
    merge_seconds double precision NOT NULL, superseded bigint NOT NULL DEFAULT 0,
    unchanged bigint NOT NULL DEFAULT 0)""").format(t=qualified(META, "load_ledger"))


def migrate_ledger() -> list[sql.Composed]:
    """Ledgers made before load generations: the counts columns, and one row per (run, generation, chunk) instead of
    one per (run, chunk). run_no is the generation (each extraction takes a new number). Run summaries made before
    the source fingerprint get its columns, NULL for their rows (`backfill plan` then reads their manifests)."""
    t = qualified(META, "load_ledger")
    return [
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS superseded bigint NOT NULL DEFAULT 0, "
            "ADD COLUMN IF NOT EXISTS unchanged bigint NOT NULL DEFAULT 0"
        ).format(t),
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS load_ledger_pipeline_run_id_chunk_key").format(t),
        sql.SQL(
            "CREATE UNIQUE INDEX IF NOT EXISTS load_ledger_generation_chunk ON {} (pipeline, run_id, run_no, chunk)"
        ).format(t),
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 0, "
            "ADD COLUMN IF NOT EXISTS superseded bigint NOT NULL DEFAULT 0, "
            "ADD COLUMN IF NOT EXISTS unchanged bigint NOT NULL DEFAULT 0, "
            "ADD COLUMN IF NOT EXISTS warnings jsonb NOT NULL DEFAULT '[]', "
            "ADD COLUMN IF NOT EXISTS notes jsonb NOT NULL DEFAULT '[]', "
            "ADD COLUMN IF NOT EXISTS source_fingerprint text, "
            "ADD COLUMN IF NOT EXISTS source_object_count integer"
        ).format(qualified(META, "run_summary")),
    ]


def create_ledger_interval_index() -> sql.Composed:
    return sql.SQL("CREATE INDEX IF NOT EXISTS load_ledger_interval ON {} (pipeline, interval_start, chunk)").format(
        qualified(META, "load_ledger")
    )


def create_run_summary_indexes() -> list[sql.Composed]:
    """For the health view (sluice.loading.sql.dashboard): a pipeline's intervals newest first, and its last run,
    each an index scan instead of a sort of the whole history."""
    t = qualified(META, "run_summary")
    return [
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS run_summary_interval ON {} (pipeline, interval_start, interval_end, generation)"
        ).format(t),
        sql.SQL("CREATE INDEX IF NOT EXISTS run_summary_finished ON {} (pipeline, finished_at)").format(t),
    ]


def create_run_seq() -> sql.Composed:
    return sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(qualified(META, "load_run_seq"))


def create_run_summary() -> sql.Composed:
    return sql.SQL("""CREATE TABLE IF NOT EXISTS {t} (
    pipeline text NOT NULL, run_id text NOT NULL, target text NOT NULL,
    interval_start timestamptz NOT NULL, interval_end timestamptz NOT NULL, chunks integer NOT NULL,
    rows_in bigint NOT NULL, rows_loaded bigint NOT NULL, rows_quarantined bigint NOT NULL,
    inserted bigint NOT NULL, updated bigint NOT NULL, deleted bigint NOT NULL, schema_changes jsonb NOT NULL,
    generation bigint NOT NULL DEFAULT 0, superseded bigint NOT NULL DEFAULT 0, unchanged bigint NOT NULL DEFAULT 0,
    status text NOT NULL, problems jsonb NOT NULL, warnings jsonb NOT NULL DEFAULT '[]',
    notes jsonb NOT NULL DEFAULT '[]', finished_at timestamptz NOT NULL,
    source_fingerprint text, source_object_count integer,
    PRIMARY KEY (pipeline, run_id))""").format(t=qualified(META, "run_summary"))


def create_schema_changes() -> sql.Composed:
    return sql.SQL("""CREATE TABLE IF NOT EXISTS {t} (
    id bigserial PRIMARY KEY, pipeline text NOT NULL, run_id text NOT NULL, target text NOT NULL,
    change text NOT NULL, column_name text, column_type text, changed_at timestamptz NOT NULL DEFAULT now())""").format(
        t=qualified(META, "schema_changes")
    )


def create_temp(columns: Sequence[Col]) -> sql.Composed:
    """The chunk's staging table. Built from the declared types, not LIKE the target, so the COPY can run before
    the target exists and before the table lock is taken (chunks COPY in parallel, only the merge serializes)."""
    parts = [sql.SQL("{} {}").format(ident(c.name), sql.SQL(pg_type(c.pg_type))) for c in columns]
    parts.append(sql.SQL("{} bigint NOT NULL").format(ident(SEQ_COL)))
    return sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(ident(TEMP_TABLE), sql.SQL(", ").join(parts))


def analyze_temp(primary_key: Sequence[str]) -> sql.Composed:
    """Key columns only: the planner needs the row count and key spread to pick index lookups over scanning the
    whole target per chunk; statistics of every column would cost as much as the COPY."""
    return sql.SQL("ANALYZE {} ({})").format(ident(TEMP_TABLE), _cols(primary_key))


def create_run_summary_interval_index() -> sql.Composed:
    """`backfill plan` reads a pipeline's summaries by interval."""
    return sql.SQL("CREATE INDEX IF NOT EXISTS run_summary_interval ON {} (pipeline, interval_start)").format(
        qualified(META, "run_summary")
    )
