"""Every SQL statement of the load path, one small function each, so a unit test can read it as a string.

Identifiers (schemas, tables, columns, types) are validated here and quoted with psycopg's `sql.Identifier`;
values never enter the text: they travel as named placeholders (`%(name)s`) or as COPY data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

META = "sluice"  # schema of the ledger, run summary and schema-change tables
RUN_COL = "_sluice_run"  # hidden: the load generation (sluice.load_run_seq) that last wrote the row
SEQ_COL = "_sluice_seq"  # hidden: (chunk << 32) | row number of that row in its chunk's good rows
HIDDEN = (RUN_COL, SEQ_COL)
TEMP_TABLE = "_sluice_chunk"
# Default of _sluice_run: the load-run number the loader sets for its transaction (set_run_no), so a COPY straight
# into the target stamps every row without sending the number on every CSV line; 0 (another run) for other writers.
RUN_DEFAULT = "coalesce(nullif(current_setting('sluice.run_no', true), ''), '0')::bigint"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_NUMERIC = re.compile(r"^(?:numeric|decimal)\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")
_TYPE_ALIASES = {
    "smallint": "smallint",
    "int2": "smallint",
    "integer": "integer",
    "int": "integer",
    "int4": "integer",
    "bigint": "bigint",
    "int8": "bigint",
    "double": "double precision",
    "double precision": "double precision",
    "float8": "double precision",
    "boolean": "boolean",
    "bool": "boolean",
    "text": "text",
    "date": "date",
    "timestamp": "timestamp without time zone",
    "timestamp without time zone": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "timestamp with time zone": "timestamp with time zone",
    "jsonb": "jsonb",
}


class UnsafeIdentifier(ValueError):
    """An identifier or type that is not allowed into SQL text."""


@dataclass(frozen=True)
class Col:
    """A column as the SQL builders need it: name, PostgreSQL type, nullability."""

    name: str
    pg_type: str
    nullable: bool = True


def ident(name: str) -> sql.Identifier:
    """A validated, quoted identifier. Rejects anything that is not a plain 63-byte SQL name."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise UnsafeIdentifier(f"unsafe SQL identifier {name!r}: use letters, digits and _ (max 63, not a digit first)")
    return sql.Identifier(name)


def qualified(schema: str, table: str) -> sql.Identifier:
    ident(schema), ident(table)
    return sql.Identifier(schema, table)


def pg_type(text: str) -> str:
    """Canonical spelling of an allowed column type (as PostgreSQL's format_type prints it)."""
    norm = " ".join(str(text).strip().lower().split())
    if norm in _TYPE_ALIASES:
        return _TYPE_ALIASES[norm]
    m = _NUMERIC.match(norm)
    if m:
        return f"numeric({int(m.group(1))},{int(m.group(2))})"
    raise UnsafeIdentifier(f"column type {text!r} is not one Sluice creates")


def _cols(names: Sequence[str], alias: str | None = None) -> sql.Composed:
    if alias:
        return sql.SQL(", ").join(sql.SQL("{}.{}").format(ident(alias), ident(n)) for n in names)
    return sql.SQL(", ").join(ident(n) for n in names)


def _coldef(col: Col) -> sql.Composed:
    null = sql.SQL("") if col.nullable else sql.SQL(" NOT NULL")
    return sql.SQL("{} {}{}").format(ident(col.name), sql.SQL(pg_type(col.pg_type)), null)


# ------------------------------------------------------------------------------------------------ DDL


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
    one per (run, chunk). run_no is the generation (each extraction takes a new number)."""
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
            "ADD COLUMN IF NOT EXISTS unchanged bigint NOT NULL DEFAULT 0"
        ).format(qualified(META, "run_summary")),
    ]


def create_ledger_interval_index() -> sql.Composed:
    return sql.SQL("CREATE INDEX IF NOT EXISTS load_ledger_interval ON {} (pipeline, interval_start, chunk)").format(
        qualified(META, "load_ledger")
    )


def create_run_seq() -> sql.Composed:
    return sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(qualified(META, "load_run_seq"))


def create_run_summary() -> sql.Composed:
    return sql.SQL("""CREATE TABLE IF NOT EXISTS {t} (
    pipeline text NOT NULL, run_id text NOT NULL, target text NOT NULL,
    interval_start timestamptz NOT NULL, interval_end timestamptz NOT NULL, chunks integer NOT NULL,
    rows_in bigint NOT NULL, rows_loaded bigint NOT NULL, rows_quarantined bigint NOT NULL,
    inserted bigint NOT NULL, updated bigint NOT NULL, deleted bigint NOT NULL, schema_changes jsonb NOT NULL,
    generation bigint NOT NULL DEFAULT 0, superseded bigint NOT NULL DEFAULT 0, unchanged bigint NOT NULL DEFAULT 0,
    status text NOT NULL, problems jsonb NOT NULL, finished_at timestamptz NOT NULL,
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


# ------------------------------------------------------------------------------------------------ DML


def copy_from_stdin(names: Sequence[str]) -> sql.Composed:
    """CSV: an unquoted empty field is NULL, a quoted one ("") is the empty string; pyarrow writes exactly that."""
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(ident(TEMP_TABLE), _cols([*names, SEQ_COL]))


def copy_into_target(schema: str, table: str, names: Sequence[str]) -> sql.Composed:
    """New keys only (checked under the table lock) or append: COPY straight into the target, as fast as it gets."""
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(qualified(schema, table), _cols(names))


def set_run_no() -> sql.SQL:
    """Transaction-local, read by RUN_DEFAULT; the value travels as a bind parameter."""
    return sql.SQL("SELECT set_config('sluice.run_no', %(run_no)s, true)")


def _newer_guard(target: str, source: str, version: str | None = None) -> sql.Composed:
    """True when the incoming row may replace the stored one: a generation extracted later wins (after the run-wide
    duplicate pass a key occurs once per generation), and with a version column the stored version must not be newer."""
    guard = sql.SQL("{t}.{run} <= {run_no}").format(
        t=ident(target), run=ident(RUN_COL), run_no=sql.Placeholder("run_no")
    )
    if version is None:
        return guard
    return sql.SQL("{g} AND ({t}.{v} IS NULL OR {s}.{v} >= {t}.{v})").format(
        g=guard, t=ident(target), s=ident(source), v=ident(version)
    )


def _changed(names: Sequence[str], target: str, source: str) -> sql.Composed:
    return sql.SQL("({}) IS DISTINCT FROM ({})").format(_cols(names, target), _cols(names, source))


def merge_upsert(
    schema: str, table: str, names: Sequence[str], primary_key: Sequence[str], version: str | None = None
) -> sql.Composed:
    """MERGE with a guard: an unchanged row matches no WHEN clause, so it is neither locked nor rewritten."""
    rest = [n for n in names if n not in primary_key]
    on = sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=ident(k)) for k in primary_key)
    matched = sql.SQL("")
    if rest:
        sets = sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=ident(c)) for c in rest)
        matched = sql.SQL(
            " WHEN MATCHED AND {chg} AND {guard} THEN UPDATE SET {sets}, {run} = {run_no}, {seq} = s.{seq}"
        ).format(
            chg=_changed(rest, "t", "s"),
            guard=_newer_guard("t", "s", version),
            sets=sets,
            run=ident(RUN_COL),
            seq=ident(SEQ_COL),
            run_no=sql.Placeholder("run_no"),
        )
    return sql.SQL(
        "MERGE INTO {tab} AS t USING {tmp} AS s ON {on}{matched} WHEN NOT MATCHED THEN "
        "INSERT ({cols}, {run}, {seq}) VALUES ({vals}, {run_no}, s.{seq})"
    ).format(
        tab=qualified(schema, table),
        tmp=ident(TEMP_TABLE),
        on=on,
        matched=matched,
        cols=_cols(names),
        run=ident(RUN_COL),
        seq=ident(SEQ_COL),
        vals=_cols(names, "s"),
        run_no=sql.Placeholder("run_no"),
    )


def key_bound(primary_key: Sequence[str], last: bool) -> sql.Composed:
    """The chunk's smallest (or largest) key, in the target's own ordering (collation included)."""
    direction = sql.SQL(" DESC") if last else sql.SQL("")
    return sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT 1").format(
        _cols(primary_key),
        ident(TEMP_TABLE),
        sql.SQL(", ").join(sql.SQL("{}{}").format(ident(k), direction) for k in primary_key),
    )


def keys_in_range(schema: str, table: str, primary_key: Sequence[str]) -> sql.Composed:
    """Does the target hold any key between the chunk's first and last key? When it does not, no row of the chunk
    can match, and a COPY or plain INSERT does exactly what the MERGE would. Written as "the first key at or after
    the chunk's first key" so that it is always one primary-key index probe: a plain EXISTS over the range lets the
    planner pick a sequential scan when the range holds many rows."""
    lo = sql.SQL(", ").join(sql.Placeholder(f"lo{i}") for i in range(len(primary_key)))
    hi = sql.SQL(", ").join(sql.Placeholder(f"hi{i}") for i in range(len(primary_key)))
    return sql.SQL(
        "SELECT EXISTS (SELECT FROM (SELECT {k} FROM {t} WHERE ({k}) >= ({lo}) ORDER BY {k} LIMIT 1) f "
        "WHERE ({k}) <= ({hi}))"
    ).format(t=qualified(schema, table), k=_cols(primary_key), lo=lo, hi=hi)


def matched_sample(schema: str, table: str, primary_key: Sequence[str]) -> sql.Composed:
    """Of the chunk's first %(n)s keys, how many the target already holds: picks MERGE (mostly existing: a re-run)
    or INSERT .. ON CONFLICT (mostly new) for UpsertStrategy.auto. At most n index probes."""
    match = sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=ident(k)) for k in primary_key)
    return sql.SQL(
        "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT FROM {t} t WHERE {match})) "
        "FROM (SELECT {k} FROM {tmp} LIMIT %(n)s) s"
    ).format(t=qualified(schema, table), match=match, k=_cols(primary_key), tmp=ident(TEMP_TABLE))


def insert_new(schema: str, table: str, names: Sequence[str]) -> sql.Composed:
    """The upsert of a chunk whose keys are all new (see keys_in_range): no join, no probe per row."""
    return sql.SQL("INSERT INTO {} ({}, {}) SELECT {}, {}, {} FROM {}").format(
        qualified(schema, table),
        _cols(names),
        _cols(HIDDEN),
        _cols(names),
        sql.Placeholder("run_no"),
        ident(SEQ_COL),
        ident(TEMP_TABLE),
    )


def on_conflict_upsert(
    schema: str, table: str, names: Sequence[str], primary_key: Sequence[str], version: str | None = None
) -> sql.Composed:
    """INSERT .. ON CONFLICT with the same guard; the alternative the benchmark measures (UpsertStrategy)."""
    rest = [n for n in names if n not in primary_key]
    action = sql.SQL("DO NOTHING")
    if rest:
        sets = sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=ident(c)) for c in (*rest, *HIDDEN))
        action = sql.SQL("DO UPDATE SET {sets} WHERE {chg} AND {guard}").format(
            sets=sets, chg=_changed(rest, "t", "excluded"), guard=_newer_guard("t", "excluded", version)
        )
    return sql.SQL(
        "INSERT INTO {tab} AS t ({cols}, {hidden}) SELECT {cols}, {run_no}, {seq} FROM {tmp} "
        "ON CONFLICT ({pk}) {action}"
    ).format(
        tab=qualified(schema, table),
        cols=_cols(names),
        hidden=_cols(HIDDEN),
        run_no=sql.Placeholder("run_no"),
        seq=ident(SEQ_COL),
        tmp=ident(TEMP_TABLE),
        pk=_cols(primary_key),
        action=action,
    )


def delete_interval(schema: str, table: str, interval_column: str) -> sql.Composed:
    """replace_interval: the interval's rows are those whose interval_column is in [start, end)."""
    return sql.SQL("DELETE FROM {} WHERE {c} >= {start} AND {c} < {end}").format(
        qualified(schema, table), c=ident(interval_column), start=sql.Placeholder("start"), end=sql.Placeholder("end")
    )


def delete_generations(schema: str, table: str) -> sql.Composed:
    """append: the rows earlier generations of this interval appended (found by their _sluice_run in the ledger),
    so a re-run replaces them instead of appending twice."""
    return sql.SQL(
        "DELETE FROM {t} WHERE {run} IN (SELECT DISTINCT run_no FROM {l} WHERE pipeline = %(pipeline)s "
        "AND interval_start = %(start)s AND interval_end = %(end)s AND run_no <> %(run_no)s)"
    ).format(t=qualified(schema, table), run=ident(RUN_COL), l=qualified(META, "load_ledger"))


def interval_has_rows(schema: str, table: str, interval_column: str) -> sql.Composed:
    """replace_interval: does the table hold rows of [start, end) (which an empty source would delete)?"""
    return sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE {c} >= {start} AND {c} < {end})").format(
        qualified(schema, table), c=ident(interval_column), start=sql.Placeholder("start"), end=sql.Placeholder("end")
    )


def advisory_lock() -> sql.SQL:
    """Per target table, held to the end of the transaction; the key is '<schema>.<table>' (see lock_key)."""
    return sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(sql.Placeholder("key"))


def lock_key(schema: str, table: str) -> str:
    ident(schema), ident(table)
    return f"{schema}.{table}"


def set_local(setting: str, value: str, local: bool = True) -> sql.Composed:
    if setting not in ("work_mem", "timezone", "temp_buffers", "lock_timeout"):
        raise UnsafeIdentifier(f"setting {setting!r} is not one the loader changes")
    return sql.SQL("SET {}{} = {}").format(sql.SQL("LOCAL " if local else ""), sql.SQL(setting), sql.Literal(value))


# ------------------------------------------------------------------------------------------------ catalog


def table_exists() -> sql.SQL:
    return sql.SQL(
        "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s)"
    )


def table_columns() -> sql.SQL:
    """Name, type, NOT NULL and default expression of every column of a table."""
    return sql.SQL(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid) "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum"
    )


def primary_key_columns() -> sql.SQL:
    return sql.SQL(
        "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND i.indisprimary ORDER BY a.attnum"
    )


def xact_tuple_counts() -> sql.SQL:
    """Rows this transaction inserted/updated/deleted in a table: exact counts for MERGE, which has no RETURNING."""
    return sql.SQL(
        "SELECT pg_stat_get_xact_tuples_inserted(c.oid), pg_stat_get_xact_tuples_updated(c.oid), "
        "pg_stat_get_xact_tuples_deleted(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s"
    )


# ------------------------------------------------------------------------------------------------ bookkeeping

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
        "AND EXISTS (SELECT FROM pg_namespace WHERE nspname = %(schema)s)"
    ).format(
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
