"""The health view's statements, read as strings: read-only, Sluice's schema quoted, values as placeholders,
"latest generation" chosen by generation number."""

from __future__ import annotations

import re

import pytest
from sluice.loading.sql import dashboard as d

STATEMENTS = [
    d.overview,
    d.history,
    d.load_seconds,
    d.load_seconds_by_pipeline,
    d.quarantine_reasons,
    d.schema_change_list,
    d.tables_present,
]


def s(composed) -> str:
    return composed.as_string(None)


@pytest.mark.parametrize("stmt", STATEMENTS, ids=lambda f: f.__name__)
def test_every_statement_only_reads(stmt):
    text = s(stmt()).upper()
    assert text.startswith(("SELECT", "WITH"))
    for word in ("INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE", "TRUNCATE", "COPY", "MERGE"):
        assert not re.search(rf"\b{word}\b", text), word


@pytest.mark.parametrize("stmt", STATEMENTS[:-1], ids=lambda f: f.__name__)
def test_tables_are_quoted_in_sluice_schema(stmt):
    text = s(stmt())
    assert re.search(r'"sluice"\."(run_summary|load_ledger|schema_changes|quarantine)"', text)
    assert not re.search(r"(?<![\"'])\bsluice\.\w", text)


def test_overview_takes_latest_generation_per_interval_and_parameters():
    text = s(d.overview())
    assert "generation = max(generation) OVER (PARTITION BY pipeline, interval_start, interval_end) AS latest" in text
    assert "sum(rows_quarantined) FILTER (WHERE latest) AS pending_quarantine" in text
    assert "SELECT DISTINCT ON (interval_start, interval_end)" in text  # the chart: one bar per interval
    assert "ORDER BY interval_start DESC, interval_end DESC, generation DESC LIMIT %(intervals)s" in text
    assert "status = ANY(%(ok)s)" in text
    assert "LEFT JOIN LATERAL (SELECT interval_start, interval_end, finished_at" in text  # only failed runs: a row


def test_run_summary_indexes_serve_the_overview():
    from sluice.loading import sql as q

    idx = [s(x) for x in q.create_run_summary_indexes()]
    assert '"sluice"."run_summary" (pipeline, interval_start, interval_end, generation)' in idx[0]
    assert '"sluice"."run_summary" (pipeline, finished_at)' in idx[1]
    assert "to_regclass('sluice.run_summary_finished')" in s(q.metadata_present())


def test_per_pipeline_statements_filter_by_placeholder():
    for stmt in (d.history, d.load_seconds, d.quarantine_reasons, d.schema_change_list):
        assert "pipeline = %(pipeline)s" in s(stmt())
    assert "LIMIT %(limit)s" in s(d.history())
    assert "ORDER BY interval_start DESC, interval_end DESC, generation DESC" in s(d.history())


def test_quarantine_reasons_join_only_latest_generations():
    text = s(d.quarantine_reasons())
    assert text.startswith("WITH gen AS (SELECT DISTINCT ON (pipeline, interval_start, interval_end)")
    assert "ORDER BY pipeline DESC, interval_start DESC, interval_end DESC, generation DESC" in text
    assert "JOIN gen USING (pipeline, run_id, generation)" in text
    assert "jsonb_array_elements(" in text


def test_load_seconds_add_copy_and_merge():
    assert "sum(copy_seconds + merge_seconds)" in s(d.load_seconds_by_pipeline())
    assert "GROUP BY run_id, run_no" in s(d.load_seconds())


def test_tables_present_names_all_four():
    text = s(d.tables_present())
    for t in ("run_summary", "load_ledger", "schema_changes", "quarantine"):
        assert f"to_regclass('sluice.{t}')" in text
