"""`python -m sluice lint|schema`, run as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ORDERS = (Path(__file__).parent / "fixtures" / "config" / "orders.yaml").read_text()


def sluice(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "include")}
    env.pop("SLUICE_CONFIG_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "sluice", *args], capture_output=True, text=True, env=env, cwd=cwd or REPO, timeout=120
    )


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "defaults.yaml").write_text((REPO / "config" / "defaults.yaml").read_text())
    (tmp_path / "pipelines" / "orders.yaml").write_text(ORDERS)
    return tmp_path


def test_lint_ok(config_dir):
    run = sluice("lint", "--config-dir", str(config_dir))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "sluice lint: OK, 1 pipeline(s) in 1 file(s)"


def test_lint_reports_every_error_and_exits_1(config_dir):
    pipes = config_dir / "pipelines"
    (pipes / "typo.yaml").write_text(ORDERS.replace("name: orders", "name: typo").replace("  bucket:", "  bukcet:"))
    (pipes / "kind.yaml").write_text(ORDERS.replace("name: orders", "name: kind").replace("kind: s3", "kind: s4"))
    (pipes / "empty.yaml").write_text("")
    run = sluice("lint", "--config-dir", str(config_dir))
    assert run.returncode == 1
    out = run.stdout
    assert f"{pipes}/typo.yaml:8: source.bukcet: unknown key 'bukcet'\n" in out
    assert "hint: did you mean 'bucket'?" in out
    assert f"{pipes}/kind.yaml:7: source.kind: unknown kind 's4'\n" in out and "did you mean 's3'?" in out
    assert f"{pipes}/empty.yaml:1: file is empty" in out
    assert "3 problem(s) in 3 file(s); 1 pipeline(s) OK" in run.stderr


def test_lint_explicit_paths_and_missing_path(config_dir, tmp_path):
    good = config_dir / "pipelines" / "orders.yaml"
    assert sluice("lint", "--config-dir", str(config_dir), str(good)).returncode == 0
    run = sluice("lint", "--config-dir", str(config_dir), str(good), str(tmp_path / "nope.yaml"))
    assert run.returncode == 1 and f"{tmp_path}/nope.yaml: no such file or directory" in run.stdout


def test_lint_duplicate_names_across_files(config_dir):
    pipes = config_dir / "pipelines"
    (pipes / "copy.yaml").write_text(ORDERS)
    run = sluice("lint", "--config-dir", str(config_dir))
    assert run.returncode == 1
    assert f"{pipes}/copy.yaml:1: name: pipeline name 'orders' is also used by {pipes}/orders.yaml:1" in run.stdout
    assert f"{pipes}/orders.yaml:1: name: pipeline name 'orders' is also used by {pipes}/copy.yaml:1" in run.stdout


def test_schema_to_stdout_and_file(tmp_path):
    run = sluice("schema")
    assert run.returncode == 0, run.stderr
    schema = json.loads(run.stdout)
    assert schema["title"] == "Sluice pipeline" and "source_file" not in schema["properties"]
    assert schema["properties"]["target"]["description"]
    assert schema["$defs"]["ColumnSpec"]["properties"]["type"]["description"].startswith("Column type")
    out = tmp_path / "pipeline.schema.json"
    assert sluice("schema", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text()) == schema


def test_no_command_is_a_usage_error():
    run = sluice()
    assert run.returncode == 2 and "lint" in sluice("--help").stdout
