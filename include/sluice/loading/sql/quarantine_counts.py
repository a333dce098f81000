"""Exact row counts of `sluice.quarantine` per (pipeline, interval, status, reason), for `quarantine list`.

Counting 1,000,000 raw rows takes ~2 s whatever the index, so the counts are kept beside the rows:
`sluice.quarantine_counts` holds signed deltas, written by statement-level AFTER triggers on the quarantine table
in the transaction of the statement that changed the rows (the chunk's COPY and replace, supersede, discard,
replay, new reasons, and any DELETE or TRUNCATE by hand). A key's count is the sum of its deltas: exact, never
estimated, and it commits or rolls back with the rows.

Deltas are appended, never updated, so parallel chunks of one interval take no lock on a shared count row (an
upserted counter would be a lock held to commit, and a deadlock with the supersede step's row locks). `compact`
folds the deltas of the keys that got new ones into one row per key (`folded`), under an advisory lock so two
compactions never interleave; a delta committed meanwhile is outside the statement's snapshot and stays for the
next one. The listing sums what is there, so it is exact before and after a compaction.
"""

from __future__ import annotations

from psycopg import sql

from sluice.loading.sql.identifiers import META, qualified

__all__ = [
    "COUNTS_TABLE",
    "COUNT_KEY",
    "counts_compact",
    "counts_ddl",
    "counts_list",
    "counts_lock",
    "counts_ready",
    "counts_versus_rows",
]

COUNTS_TABLE = "quarantine_counts"
COUNT_KEY = ("pipeline", "interval_start", "interval_end", "status", "reason")
TRIGGER_PREFIX = "quarantine_counts_"  # + insert, update, delete, truncate
_KEY = ", ".join(COUNT_KEY)


def _counts() -> sql.Identifier:
    return qualified(META, COUNTS_TABLE)


def _rows() -> sql.Identifier:
    return qualified(META, "quarantine")


def _function() -> sql.Identifier:
    return qualified(META, "quarantine_count_delta")


def counts_ddl() -> list[sql.Composed]:
    """The counts table, its trigger function, and (once, in the migration's transaction) the triggers plus the
    counts of the rows already there. CREATE TRIGGER locks the quarantine table against writes until commit, so the
    seed counts exactly the rows the triggers did not see."""
    c, t = _counts(), _rows()
    insert = sql.SQL("INSERT INTO {} ({}, rows)").format(c, sql.SQL(_KEY))
    return [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, pipeline text NOT NULL, "
            "interval_start timestamptz NOT NULL, interval_end timestamptz NOT NULL, status text NOT NULL, "
            "reason text, rows bigint NOT NULL, folded boolean NOT NULL DEFAULT false)"
        ).format(c),
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS quarantine_counts_key ON {} (pipeline, interval_start, interval_end)"
        ).format(c),
        sql.SQL("CREATE INDEX IF NOT EXISTS quarantine_counts_new ON {} (id) WHERE NOT folded").format(c),
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN "
            "IF TG_OP = 'TRUNCATE' THEN DELETE FROM {c}; "
            "ELSIF TG_OP = 'INSERT' THEN {ins} SELECT {k}, count(*) FROM new_rows GROUP BY {k}; "
            "ELSIF TG_OP = 'DELETE' THEN {ins} SELECT {k}, -count(*) FROM old_rows GROUP BY {k}; "
            "ELSE {ins} SELECT {k}, sum(d) FROM (SELECT {k}, 1 AS d FROM new_rows UNION ALL "
            "SELECT {k}, -1 AS d FROM old_rows) AS moved GROUP BY {k} HAVING sum(d) <> 0; "
            "END IF; RETURN NULL; END $fn$"
        ).format(f=_function(), c=c, ins=insert, k=sql.SQL(_KEY)),
        sql.SQL(
            "DO $do$ BEGIN IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = {reg}::regclass "
            "AND tgname = {first}) THEN "
            "CREATE TRIGGER quarantine_counts_insert AFTER INSERT ON {t} REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION {f}(); "
            "CREATE TRIGGER quarantine_counts_update AFTER UPDATE ON {t} REFERENCING OLD TABLE AS old_rows "
            "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {f}(); "
            "CREATE TRIGGER quarantine_counts_delete AFTER DELETE ON {t} REFERENCING OLD TABLE AS old_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION {f}(); "
            "CREATE TRIGGER quarantine_counts_truncate AFTER TRUNCATE ON {t} FOR EACH STATEMENT "
            "EXECUTE FUNCTION {f}(); "
            "DELETE FROM {c}; "
            "INSERT INTO {c} ({k}, rows, folded) SELECT {k}, count(*), true FROM {t} GROUP BY {k}; "
            "END IF; END $do$"
        ).format(
            reg=sql.Literal(f"{META}.quarantine"),
            first=sql.Literal(TRIGGER_PREFIX + "insert"),
            t=t,
            c=c,
            f=_function(),
            k=sql.SQL(_KEY),
        ),
    ]


def counts_ready() -> sql.Composed:
    """Are the counts kept (the insert trigger is the migration's last step, so it also means the rows' columns are
    current)?"""
    return sql.SQL("SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = to_regclass({}) AND tgname = {})").format(
        sql.Literal(f"{META}.quarantine"), sql.Literal(TRIGGER_PREFIX + "insert")
    )


def counts_lock() -> sql.Composed:
    """One compaction at a time (transaction-scoped)."""
    return sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(sql.Literal(f"{META}.{COUNTS_TABLE}"))


def counts_compact() -> sql.Composed:
    """Fold every delta of each interval that has unfolded ones into one row per key (a zero sum leaves no row).
    One statement, one snapshot: deltas committed after it started are neither deleted nor counted."""
    c = _counts()
    return sql.SQL(
        "WITH touched AS (SELECT DISTINCT pipeline, interval_start, interval_end FROM {c} WHERE NOT folded), "
        "gone AS (DELETE FROM {c} AS d USING touched AS k WHERE d.pipeline = k.pipeline "
        "AND d.interval_start = k.interval_start AND d.interval_end = k.interval_end "
        "RETURNING d.pipeline, d.interval_start, d.interval_end, d.status, d.reason, d.rows) "
        "INSERT INTO {c} ({k}, rows, folded) SELECT {k}, sum(rows), true FROM gone GROUP BY {k} "
        "HAVING sum(rows) <> 0"
    ).format(c=c, k=sql.SQL(_KEY))


def counts_list(where: sql.Composable) -> sql.Composed:
    """`quarantine list` from the counts: rows by pipeline, interval, status and reason (`where` is the command's
    filter over those columns)."""
    return sql.SQL(
        "SELECT pipeline, interval_start, interval_end, status, reason, sum(rows)::bigint AS rows FROM {} WHERE {} "
        "GROUP BY pipeline, interval_start, interval_end, status, reason HAVING sum(rows) <> 0 "
        "ORDER BY pipeline, interval_start, status, reason"
    ).format(_counts(), where)


def counts_versus_rows() -> sql.Composed:
    """Keys whose kept count differs from the rows (none when the counts are right): for tests and a health check."""
    return sql.SQL(
        "WITH kept AS (SELECT {kc}, sum(rows) AS n FROM {c} GROUP BY 1, 2, 3, 4, 5 HAVING sum(rows) <> 0), "
        "actual AS (SELECT {kc}, count(*) AS n FROM {t} GROUP BY 1, 2, 3, 4, 5) "
        "SELECT {k}, kept.n AS kept, actual.n AS actual FROM kept FULL JOIN actual USING ({k}) "
        "WHERE kept.n IS DISTINCT FROM actual.n"
    ).format(
        c=_counts(), t=_rows(), k=sql.SQL(_KEY), kc=sql.SQL(_KEY.replace("reason", "coalesce(reason, '') AS reason"))
    )
