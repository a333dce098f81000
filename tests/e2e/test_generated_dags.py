"""Generated DAGs through the real api-server: every example pipeline is a DAG with its tags, and a broken pipeline
file (tests/e2e/pipelines/broken_pipeline.yaml, loaded by the stack next to config/pipelines) is ONE import error on
dags/sluice_config_errors.py naming the file, line, field and fix, while the healthy DAGs stay loaded and fresh."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sluice.config import load_all

REPO = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).parent / "pipelines" / "broken_pipeline.yaml"
ERRORS_FILE = "sluice_config_errors.py"
PIPELINES_FILE = "pipelines.py"
PARSE_TIMEOUT = 180  # the dag-processor re-lists the folder every ~15 s and re-parses a file every ~10 s


@pytest.fixture(scope="module")
def examples() -> dict:
    """The example pipelines as the stack sees them (same files, same defaults)."""
    result = load_all(REPO / "config" / "pipelines")
    assert not result.errors, "an example pipeline is invalid: run `python -m sluice lint`"
    assert {"tpch_orders", "tpch_lineitem"} <= set(result.pipelines)
    return result.pipelines


def broken_line() -> int:
    lines = BROKEN.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith("primery_key:"))


def import_errors_when(api, ready) -> list[dict]:
    """Poll /importErrors until `ready(errors)`: a just-changed file takes a parse cycle to show up."""
    deadline = time.time() + PARSE_TIMEOUT
    while True:
        errors = api.request("GET", "/importErrors", params={"limit": 100})["import_errors"]
        if ready(errors) or time.time() > deadline:
            return errors
        time.sleep(3)


def test_example_dags_are_listed_with_their_tags(api, examples):
    for name in examples:
        api.wait_for_dag(name, timeout=PARSE_TIMEOUT)
    listed = {d["dag_id"]: d for d in api.request("GET", "/dags", params={"limit": 100, "tags": ["sluice"]})["dags"]}
    for name, cfg in examples.items():
        assert name in listed, f"{name} missing from the DAG list filtered by tag 'sluice'"
        dag = listed[name]
        tags = {t["name"] for t in dag["tags"]}
        assert tags == {"sluice", f"source:{cfg.source.kind}", *cfg.tags}
        assert dag["relative_fileloc"] == PIPELINES_FILE
        assert dag["timetable_summary"] == cfg.cron
        assert dag["owners"] == [cfg.owner]


def test_example_dag_details_task_shape_and_trigger_params(api):
    details = api.request("GET", "/dags/tpch_orders/details")
    assert details["timezone"] == "UTC" and details["catchup"] is False
    assert details["start_date"].startswith("1992-01-01")
    assert "tpch.orders" in details["doc_md"] and "expect_column_values_to_be_in_set" in details["doc_md"]
    for key in ("interval_start", "interval_end"):
        assert details["params"][key]["value"] is None
        assert "UTC" in details["params"][key]["description"]
    tasks = {t["task_id"]: t for t in api.request("GET", "/dags/tpch_orders/tasks")["tasks"]}
    assert set(tasks) == {"extract_and_stage", "validate_chunk", "quality_gate", "load_chunk", "finalize"}
    assert tasks["extract_and_stage"]["downstream_task_ids"] == ["validate_chunk"]
    assert tasks["validate_chunk"]["is_mapped"] and tasks["load_chunk"]["is_mapped"]
    assert sorted(tasks["quality_gate"]["downstream_task_ids"]) == ["finalize", "load_chunk"]


def test_broken_file_is_one_import_error_beside_healthy_dags(api, examples):
    name_in_error = BROKEN.name

    def shows_broken(errors: list[dict]) -> bool:
        return any(e["filename"] == ERRORS_FILE and name_in_error in e["stack_trace"] for e in errors)

    errors = import_errors_when(api, shows_broken)
    ours = [e for e in errors if e["filename"] == ERRORS_FILE]
    assert len(ours) == 1, f"expected one import error on {ERRORS_FILE}, got {ours}"
    text = ours[0]["stack_trace"]
    assert f"{name_in_error}:{broken_line()}:" in text  # file and line
    assert "target.primery_key" in text and "unknown key 'primery_key'" in text  # field
    assert "did you mean 'primary_key'?" in text  # the fix
    assert "1 pipeline file(s) invalid" in text  # only the broken file, no healthy one
    assert not [e for e in errors if e["filename"] == PIPELINES_FILE], "the healthy pipelines' DAG file must load"

    # the broken file's DAG does not exist; every healthy pipeline's DAG is loaded, fresh and error-free
    listed = {d["dag_id"]: d for d in api.request("GET", "/dags", params={"limit": 100})["dags"]}
    assert "e2e_broken_pipeline" not in listed
    for name in [*examples, "sluice_platform_check"]:
        dag = api.wait_for_dag(name, timeout=PARSE_TIMEOUT)
        assert dag["is_stale"] is False, f"{name} is stale"
        assert dag["has_import_errors"] is False, f"{name} reports an import error"
