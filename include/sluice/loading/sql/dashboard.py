"""What the operator's view reads (the Sluice page in the Airflow UI and the Prometheus exporter): read-only
statements over the run summary, the ledger, the schema changes and the quarantine.

"The latest generation of an interval" is the run summary row with the highest generation for that
(pipeline, interval_start, interval_end): a cleared run or a re-run replaces what an interval holds, so only its
counts describe the table now. Its `rows_quarantined` equals its rows in `sluice.quarantine` (finalize checks it),
so the quarantine rows of the latest generations are summed from the run summary, not counted in the quarantine.
"""

from __future__ import annotations

from psycopg import sql

from sluice.loading.sql.identifiers import META, qualified, regclass_present


def _t(table: str) -> sql.Identifier:
    return qualified(META, table)


def _latest_generations(where: sql.Composable) -> sql.Composed:
    """The latest generation of every interval (of the pipelines `where` selects), newest interval first: the
    order of a backward scan of run_summary_interval, so no sort."""
    return sql.SQL(
        "SELECT DISTINCT ON (pipeline, interval_start, interval_end) pipeline, run_id, generation, interval_start,"
        " interval_end, rows_in, rows_loaded, rows_quarantined, status, finished_at FROM {} {}"
        " ORDER BY pipeline DESC, interval_start DESC, interval_end DESC, generation DESC"
    ).format(_t("run_summary"), where)


def overview() -> sql.Composed:
    """One row per pipeline that has a run summary: the last loaded interval, the last run, run counts by status, the
    last `%(intervals)s` intervals' volumes (latest generation each, oldest first), their quarantine totals, the
    quarantine rows of all latest generations, 0-row intervals and schema changes. `%(ok)s` lists the statuses that
    mean "loaded". The per-pipeline parts are LATERAL index scans (run_summary_interval, run_summary_finished);
    the totals read the whole history once, in the index's order (`latest`: the row holds its interval's highest
    generation)."""
    return sql.SQL(
        "WITH runs AS (SELECT pipeline, count(*) FILTER (WHERE ok) AS runs_ok, count(*) FILTER (WHERE NOT ok)"
        " AS runs_failed, sum(rows_in) AS rows_in, sum(rows_loaded) AS rows_loaded,"
        " sum(rows_quarantined) AS rows_quarantined, count(*) FILTER (WHERE latest) AS intervals,"
        " sum(rows_quarantined) FILTER (WHERE latest) AS pending_quarantine,"
        " count(*) FILTER (WHERE latest AND ok AND rows_in = 0) AS empty_intervals"
        " FROM (SELECT pipeline, rows_in, rows_loaded, rows_quarantined, status = ANY(%(ok)s) AS ok,"
        " generation = max(generation) OVER (PARTITION BY pipeline, interval_start, interval_end) AS latest"
        " FROM {rs}) AS s GROUP BY pipeline),"
        " sc AS (SELECT pipeline, count(*) AS n, max(changed_at) AS last_at FROM {sc} GROUP BY pipeline)"
        " SELECT runs.pipeline, ok.interval_start AS ok_start, ok.interval_end AS ok_end,"
        " ok.finished_at AS ok_finished, last.run_id AS last_run_id, last.status AS last_status,"
        " last.interval_start AS last_start, last.interval_end AS last_end, last.finished_at AS last_finished,"
        " last.rows_in AS last_rows_in, last.rows_loaded AS last_rows_loaded,"
        " last.rows_quarantined AS last_rows_quarantined, runs.runs_ok, runs.runs_failed, runs.rows_in,"
        " runs.rows_loaded, runs.rows_quarantined, vol.volumes, vol.recent_in, vol.recent_quarantined,"
        " runs.intervals, runs.pending_quarantine, runs.empty_intervals, coalesce(sc.n, 0) AS schema_changes,"
        " sc.last_at AS last_schema_change"
        " FROM runs"
        " CROSS JOIN LATERAL (SELECT run_id, status, interval_start, interval_end, finished_at, rows_in,"
        " rows_loaded, rows_quarantined FROM {rs} AS s WHERE s.pipeline = runs.pipeline"
        " ORDER BY finished_at DESC LIMIT 1) AS last"
        " LEFT JOIN LATERAL (SELECT interval_start, interval_end, finished_at FROM {rs} AS s"
        " WHERE s.pipeline = runs.pipeline AND status = ANY(%(ok)s)"
        " ORDER BY interval_start DESC, interval_end DESC, generation DESC LIMIT 1) AS ok ON true"
        " LEFT JOIN LATERAL (SELECT jsonb_agg(jsonb_build_array(v.interval_start, v.rows_in, v.rows_quarantined,"
        " v.status) ORDER BY v.interval_start, v.interval_end) AS volumes, sum(v.rows_in) AS recent_in,"
        " sum(v.rows_quarantined) AS recent_quarantined FROM (SELECT DISTINCT ON (interval_start, interval_end)"
        " interval_start, interval_end, rows_in, rows_quarantined, status FROM {rs} AS s"
        " WHERE s.pipeline = runs.pipeline ORDER BY interval_start DESC, interval_end DESC, generation DESC"
        " LIMIT %(intervals)s) AS v) AS vol ON true"
        " LEFT JOIN sc USING (pipeline) ORDER BY runs.pipeline"
    ).format(rs=_t("run_summary"), sc=_t("schema_changes"))


def history() -> sql.Composed:
    """One pipeline's intervals, newest first, each with its latest generation's counts (at most `%(limit)s`)."""
    return sql.SQL(
        "SELECT DISTINCT ON (interval_start, interval_end) interval_start, interval_end, run_id, generation, status,"
        " chunks, rows_in, rows_loaded, rows_quarantined, inserted, updated, unchanged, superseded, deleted,"
        " jsonb_array_length(schema_changes) AS schema_changes, problems, finished_at FROM {}"
        " WHERE pipeline = %(pipeline)s ORDER BY interval_start DESC, interval_end DESC, generation DESC,"
        " finished_at DESC LIMIT %(limit)s"
    ).format(_t("run_summary"))


def load_seconds() -> sql.Composed:
    """Seconds spent in COPY and MERGE per generation of one pipeline (from the ledger, one row per chunk)."""
    return sql.SQL(
        "SELECT run_id, run_no AS generation, sum(copy_seconds + merge_seconds) AS seconds FROM {}"
        " WHERE pipeline = %(pipeline)s GROUP BY run_id, run_no"
    ).format(_t("load_ledger"))


def load_seconds_by_pipeline() -> sql.Composed:
    """All COPY and MERGE seconds per pipeline, with the chunks and rows they loaded (for load throughput)."""
    return sql.SQL(
        "SELECT pipeline, sum(copy_seconds + merge_seconds) AS seconds, count(*) AS chunks,"
        " sum(rows_loaded) AS rows_loaded FROM {} GROUP BY pipeline"
    ).format(_t("load_ledger"))


def quarantine_reasons() -> sql.Composed:
    """Why rows of one pipeline's latest generations are in quarantine: rows per (stage, column, reason), most
    frequent first (at most `%(limit)s`). A reason is an expectation's name or a cast/parse failure."""
    return sql.SQL(
        "WITH gen AS ({gen}) SELECT r->>'stage' AS stage, r->>'column' AS column_name,"
        " coalesce(r->>'expectation', r->>'reason', r::text) AS reason, count(DISTINCT q.id) AS rows,"
        " max(q.interval_start) AS last_interval FROM {q} AS q JOIN gen USING (pipeline, run_id, generation),"
        " jsonb_array_elements(CASE jsonb_typeof(q.reasons) WHEN 'array' THEN q.reasons"
        " ELSE jsonb_build_array(q.reasons) END) AS r"
        " WHERE q.pipeline = %(pipeline)s GROUP BY 1, 2, 3 ORDER BY rows DESC, reason LIMIT %(limit)s"
    ).format(gen=_latest_generations(sql.SQL("WHERE pipeline = %(pipeline)s")), q=_t("quarantine"))


def schema_change_list() -> sql.Composed:
    """One pipeline's schema changes, newest first."""
    return sql.SQL(
        "SELECT changed_at, run_id, target, change, column_name, column_type FROM {}"
        " WHERE pipeline = %(pipeline)s ORDER BY changed_at DESC, id DESC LIMIT %(limit)s"
    ).format(_t("schema_changes"))


def tables_present() -> sql.Composed:
    """Which of Sluice's tables exist (a warehouse where nothing was ever loaded has none)."""
    tables = ("run_summary", "load_ledger", "schema_changes", "quarantine")
    return sql.SQL("SELECT {}").format(
        sql.SQL(", ").join(sql.SQL("{} AS {}").format(regclass_present(t), sql.Identifier(t)) for t in tables)
    )
