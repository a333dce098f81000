"""The load's statements: COPY, the guarded MERGE / upsert, interval deletes, the duplicate probes, locks."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from sluice.loading.sql.identifiers import (
    HIDDEN,
    INTERVAL_COL,
    META,
    RUN_COL,
    SEQ_COL,
    TEMP_TABLE,
    UnsafeIdentifier,
    _cols,
    ident,
    qualified,
)


def copy_from_stdin(names: Sequence[str]) -> sql.Composed:
    """CSV: an unquoted empty field is NULL, a quoted one ("") is the empty string; pyarrow writes exactly that."""
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(ident(TEMP_TABLE), _cols([*names, SEQ_COL]))


def copy_into_target(schema: str, table: str, names: Sequence[str]) -> sql.Composed:
    """New keys only (checked under the table lock) or append: COPY straight into the target, as fast as it gets."""
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(qualified(schema, table), _cols(names))


def set_run_no() -> sql.SQL:
    """Transaction-local, read by RUN_DEFAULT and INTERVAL_DEFAULT; the values travel as bind parameters (text)."""
    return sql.SQL(
        "SELECT set_config('sluice.run_no', %(run_no)s, true), "
        "set_config('sluice.interval_end', %(interval_end)s, true)"
    )


def _newer_guard(target: str, source: str, version: str | None = None, newer_interval: bool = False) -> sql.Composed:
    """True when the incoming row may replace the stored one: a generation extracted later wins (after the run-wide
    duplicate pass a key occurs once per generation); with a version column the stored version must not be newer;
    with newer_interval the stored row must not come from a later interval (its _sluice_interval, the end of the
    interval that wrote it, is NULL for rows written before the column existed: those count as older)."""
    guard = sql.SQL("{t}.{run} <= {run_no}").format(
        t=ident(target), run=ident(RUN_COL), run_no=sql.Placeholder("run_no")
    )
    if version is not None:
        guard = sql.SQL("{g} AND ({t}.{v} IS NULL OR {s}.{v} >= {t}.{v})").format(
            g=guard, t=ident(target), s=ident(source), v=ident(version)
        )
    if newer_interval:
        guard = sql.SQL("{g} AND ({t}.{i} IS NULL OR {t}.{i} <= {end})").format(
            g=guard, t=ident(target), i=ident(INTERVAL_COL), end=sql.Placeholder("interval_end")
        )
    return guard


def _changed(names: Sequence[str], target: str, source: str) -> sql.Composed:
    return sql.SQL("({}) IS DISTINCT FROM ({})").format(_cols(names, target), _cols(names, source))


def merge_upsert(
    schema: str,
    table: str,
    names: Sequence[str],
    primary_key: Sequence[str],
    version: str | None = None,
    newer_interval: bool = False,
) -> sql.Composed:
    """MERGE with a guard: an unchanged row matches no WHEN clause, so it is neither locked nor rewritten."""
    rest = [n for n in names if n not in primary_key]
    on = sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=ident(k)) for k in primary_key)
    matched: sql.Composable = sql.SQL("")
    if rest:
        sets = sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=ident(c)) for c in rest)
        matched = sql.SQL(
            " WHEN MATCHED AND {chg} AND {guard} THEN UPDATE SET {sets}, {run} = {run_no}, {seq} = s.{seq}, "
            "{ivl} = {end}"
        ).format(
            chg=_changed(rest, "t", "s"),
            guard=_newer_guard("t", "s", version, newer_interval),
            sets=sets,
            run=ident(RUN_COL),
            seq=ident(SEQ_COL),
            run_no=sql.Placeholder("run_no"),
            ivl=ident(INTERVAL_COL),
            end=sql.Placeholder("interval_end"),
        )
    return sql.SQL(
        "MERGE INTO {tab} AS t USING {tmp} AS s ON {on}{matched} WHEN NOT MATCHED THEN "
        "INSERT ({cols}, {run}, {seq}, {ivl}) VALUES ({vals}, {run_no}, s.{seq}, {end})"
    ).format(
        ivl=ident(INTERVAL_COL),
        end=sql.Placeholder("interval_end"),
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
    return sql.SQL("INSERT INTO {} ({}, {}, {}) SELECT {}, {}, {}, {} FROM {}").format(
        qualified(schema, table),
        _cols(names),
        _cols(HIDDEN),
        ident(INTERVAL_COL),
        _cols(names),
        sql.Placeholder("run_no"),
        ident(SEQ_COL),
        sql.Placeholder("interval_end"),
        ident(TEMP_TABLE),
    )


def on_conflict_upsert(
    schema: str,
    table: str,
    names: Sequence[str],
    primary_key: Sequence[str],
    version: str | None = None,
    newer_interval: bool = False,
) -> sql.Composed:
    """INSERT .. ON CONFLICT with the same guard; the alternative the benchmark measures (UpsertStrategy)."""
    rest = [n for n in names if n not in primary_key]
    action: sql.Composable = sql.SQL("DO NOTHING")
    if rest:
        sets = sql.SQL(", ").join(
            sql.SQL("{c} = excluded.{c}").format(c=ident(c)) for c in (*rest, *HIDDEN, INTERVAL_COL)
        )
        action = sql.SQL("DO UPDATE SET {sets} WHERE {chg} AND {guard}").format(
            sets=sets,
            chg=_changed(rest, "t", "excluded"),
            guard=_newer_guard("t", "excluded", version, newer_interval),
        )
    return sql.SQL(
        "INSERT INTO {tab} AS t ({cols}, {hidden}, {ivl}) SELECT {cols}, {run_no}, {seq}, {end} FROM {tmp} "
        "ON CONFLICT ({pk}) {action}"
    ).format(
        ivl=ident(INTERVAL_COL),
        end=sql.Placeholder("interval_end"),
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


def advisory_lock(shared: bool = False) -> sql.Composed:
    """Per target table, held to the end of the transaction; the key is '<schema>.<table>' (see lock_key). Shared:
    held by upsert chunks COPYed straight into a key range the target holds nothing of, which may run together;
    exclusive (every other write, every schema change) excludes them and each other."""
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    return sql.SQL("SELECT {}(hashtext({}))").format(sql.SQL(fn), sql.Placeholder("key"))


def lock_key(schema: str, table: str) -> str:
    ident(schema), ident(table)
    return f"{schema}.{table}"


def set_local(setting: str, value: str, local: bool = True) -> sql.Composed:
    if setting not in ("work_mem", "timezone", "temp_buffers", "lock_timeout"):
        raise UnsafeIdentifier(f"setting {setting!r} is not one the loader changes")
    return sql.SQL("SET {}{} = {}").format(sql.SQL("LOCAL " if local else ""), sql.SQL(setting), sql.Literal(value))
