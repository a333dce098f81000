"""The values tasks pass through XCom: typed structures (TypedDicts, plain JSON dicts at run time), one XCom per task.
What the type checker cannot see (names derived from the structures, Airflow's own inference) is checked here."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from sluice.config import load_defaults, load_pipeline
from sluice.dag_builder import build_dag
from sluice.loading import sql as q
from sluice.loading.finalize import RunSummary
from sluice.loading.ledger import COUNTS, TIMINGS, Counts
from sluice.loading.postgres import RESULT_FIELDS, ChunkLoadResult
from sluice.staging import ChunkRef
from sluice.validate.chunk import ChunkReport

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_counts_and_timings_are_the_structures_keys_in_order():
    assert COUNTS == ("rows_in", "rows_loaded", "rows_quarantined", "inserted", "updated", "unchanged", "superseded",
                      "deleted")  # fmt: skip
    assert TIMINGS == ("copy_seconds", "merge_seconds")


def test_what_a_chunk_records_in_the_ledger_is_part_of_its_load_result():
    assert set(RESULT_FIELDS) <= ChunkLoadResult.__required_keys__
    assert set(COUNTS) | set(TIMINGS) <= ChunkLoadResult.__required_keys__


def test_the_run_summary_holds_every_count_and_what_sluice_run_summary_records():
    keys = RunSummary.__required_keys__
    assert set(COUNTS) <= keys and "table" in RunSummary.__optional_keys__
    # interval_start/_end are recorded as timestamps; the XCom carries them as `interval`
    assert set(q.SUMMARY_FIELDS) - {"interval_start", "interval_end"} <= keys and "interval" in keys


def test_counts_of_a_run_are_summed_per_key():
    assert set(typing.get_type_hints(Counts).values()) == {int}


@pytest.mark.parametrize("structure", [ChunkRef, ChunkReport, ChunkLoadResult, RunSummary])
def test_structures_hold_only_json_values(structure):
    """XCom serialises results as JSON: no datetime, bytes or Arrow values in any field."""
    allowed = {int, float, str, bool, type(None), typing.Any}

    def json_only(tp: object) -> bool:
        if tp in allowed:
            return True
        if typing.is_typeddict(tp):
            return all(json_only(t) for t in typing.get_type_hints(tp).values())
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.NotRequired:
            return json_only(args[0])
        if origin in (list, dict, typing.Union) or str(origin) == "<class 'types.UnionType'>":
            return all(json_only(a) for a in args)
        return False

    hints = typing.get_type_hints(structure)
    assert {k: v for k, v in hints.items() if not json_only(v)} == {}


def test_each_task_pushes_one_xcom():
    """A dict-returning @task would push every key as an XCom of its own as well (Airflow infers multiple_outputs
    from a `-> dict` annotation); the stages' results travel as one value each."""
    dag = build_dag(load_pipeline(CONFIG / "pipelines" / "tpch_orders.yaml", load_defaults(CONFIG)))
    assert {t: op.multiple_outputs for t, op in dag.task_dict.items()} == dict.fromkeys(dag.task_dict, False)


def test_a_chunk_report_round_trips_through_json():
    report: ChunkReport = {
        "index": 0,
        "generation": 1,
        "rows_in": 3,
        "rows_good": 2,
        "rows_quarantined": 1,
        "rows_cast_failed": 1,
        "rows_expectation_failed": 0,
        "rows_rejected": 0,
        "chunk_key": "s3://b/p/chunk-00000.parquet",
        "checksum": "sha256:00",
        "good_key": "s3://b/p/chunk-00000.good.parquet",
        "good_columns": None,
        "quarantine_key": "s3://b/p/chunk-00000.quarantine.parquet",
        "gx_key": None,
        "warnings": [],
        "failures": [],
        "batch_checks": {"rows_in": 3, "rows_good": 2, "chunkwise": [], "stats": {}},
        "key_bounds": [[1], [2]],
        "extra_columns": [],
        "missing_columns": [],
        "quarantine_reasons": {"cast": 1},
        "seconds": 0.1,
    }
    assert set(report) == ChunkReport.__required_keys__
    assert json.loads(json.dumps(report)) == report
