"""`python -m sluice lint` checks expectations as validation will (GX builds each one): unknown names, bad kwargs
and batch-level expectations that cannot be judged on chunks fail at lint time, pointing at file and line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ORDERS = (Path(__file__).parent / "fixtures" / "config" / "orders.yaml").read_text()
GOOD_EXPECTATIONS = """expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {column: o_totalprice}
    severity: quarantine
"""
BAD_EXPECTATIONS = """expectations:
  - type: expect_column_values_to_not_be_nul
    kwargs: {column: o_totalprice}
  - type: expect_column_values_to_be_between
    kwargs:
      column: o_totalprice
      min_value: 0
      maxvalue: 10
  - type: expect_column_median_to_be_between
    kwargs: {column: o_totalprice, min_value: 1}
  - type: expect_column_values_to_be_in_set
    kwargs:
      column: o_comment
  - type: expect_table_row_count_to_be_between
    kwargs: {min_value: 1}
"""


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "include")}
    env.pop("SLUICE_CONFIG_DIR", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def pipeline(name: str, expectations: str | None) -> str:
    assert GOOD_EXPECTATIONS in ORDERS
    text = ORDERS.replace("name: orders", f"name: {name}")
    return text.replace(GOOD_EXPECTATIONS, expectations or "")


def test_bad_expectations_fail_lint_with_file_line_field_and_hint(tmp_path):
    """One lint run (GX is imported once): own expectations, expectations inherited from defaults, a good file."""
    (tmp_path / "pipelines").mkdir()
    defaults = (REPO / "config" / "defaults.yaml").read_text()
    (tmp_path / "defaults.yaml").write_text(
        defaults + "expectations:\n  - type: expect_column_valeus_to_be_unique\n    kwargs: {column: o_orderkey}\n"
    )
    defaults_line = len(defaults.splitlines()) + 2
    bad, inherits = tmp_path / "pipelines" / "bad.yaml", tmp_path / "pipelines" / "inherits.yaml"
    bad.write_text(pipeline("bad", BAD_EXPECTATIONS))
    inherits.write_text(pipeline("inherits", None))
    (tmp_path / "pipelines" / "good.yaml").write_text(pipeline("good", GOOD_EXPECTATIONS))
    lines = bad.read_text().splitlines()

    def line_of(text: str, after: int = 0) -> int:
        return next(i for i, line in enumerate(lines, 1) if i > after and text in line)

    out = run("-m", "sluice", "lint", "--config-dir", str(tmp_path))
    assert out.returncode == 1, out.stdout + out.stderr
    text = out.stdout
    first = line_of("expect_column_values_to_not_be_nul")
    assert (
        f"{bad}:{first}: expectations[0].type: unknown expectation 'expect_column_values_to_not_be_nul' "
        "(GX Core has no such expectation)\n    hint: did you mean 'expect_column_values_to_not_be_null'?"
    ) in text
    assert f"{bad}:{line_of('maxvalue')}: expectations[1].kwargs.maxvalue: unknown kwarg 'maxvalue'\n" in text
    assert "    expected: one of: column, mostly, row_condition, condition_parser, min_value, max_value" in text
    assert "    hint: did you mean 'max_value'?" in text
    assert (
        f"{bad}:{line_of('median')}: expectations[2].type: expectation 'expect_column_median_to_be_between' is "
        "batch-level and its result on a whole interval cannot be built from per-chunk results"
    ) in text
    in_set = line_of("kwargs:", after=line_of("to_be_in_set"))
    assert f"{bad}:{in_set}: expectations[3].kwargs: missing required kwarg 'value_set'" in text
    assert "expectations[4]" not in text  # a supported batch-level expectation is fine
    assert (
        f"{inherits}: expectations[0].type: unknown expectation 'expect_column_valeus_to_be_unique' (GX Core "
        f"has no such expectation)\n    from defaults: {tmp_path / 'defaults.yaml'}:{defaults_line}\n"
        "    hint: did you mean 'expect_column_values_to_be_unique'?"
    ) in text
    assert f"{tmp_path / 'pipelines' / 'good.yaml'}" not in text
    assert "5 problem(s) in 2 file(s); 1 pipeline(s) OK" in out.stderr


def test_lint_imports_gx_only_for_pipelines_with_expectations(tmp_path):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "plain.yaml").write_text(pipeline("plain", None))
    code = (
        "import sys; from sluice.cli import main; "
        f"rc = main(['lint', '--config-dir', {str(tmp_path)!r}]); print(rc, 'great_expectations' in sys.modules)"
    )
    out = run("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 False"
