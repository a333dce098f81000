"""`make demo` (scripts/demo.py) against the test stack, small (SF 0.01, one day): every example pipeline and the
platform check succeed, and the summary it prints adds up. It finds the stack as `make demo` does ($SLUICE_HOME/env);
only config/pipelines is given to it, so it runs the examples and not the e2e fixtures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^(?P<name>[a-z0-9_]+)\s+(?P<day>\S+)\s+(?P<state>\S+)\s+(?P<counts>[\d,\s-]+)$")


def summary(stdout: str) -> dict[str, dict]:
    """The table after the dashed line: pipeline -> state and counts (None for '-')."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-" * 20)) + 1
    rows = {}
    for line in lines[start:]:
        if not line.strip():
            break
        m = ROW.match(line)
        assert m, f"unreadable summary line: {line!r}"
        counts = [None if c == "-" else int(c.replace(",", "")) for c in m["counts"].split()]
        rows[m["name"]] = {"day": m["day"], "state": m["state"], "counts": counts}
    return rows


@pytest.mark.timeout(900)
def test_make_demo_runs_every_example_pipeline_and_its_summary_adds_up():
    env = {
        **os.environ,
        "SLUICE_PIPELINES_DIRS": str(REPO / "config" / "pipelines"),
        "SLUICE_DEMO_SCALE": "0.01",
        "SLUICE_DEMO_DAYS": "1",
    }
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")], env=env, capture_output=True, text=True, timeout=840
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = summary(out.stdout)
    examples = {p.stem for p in (REPO / "config" / "pipelines").glob("*.yaml")}  # each file is named after its DAG
    assert set(rows) == examples | {"sluice_platform_check"}, rows
    assert all(r["state"] == "success" for r in rows.values()), rows
    for name in examples:
        extracted, loaded, quarantined = rows[name]["counts"]
        assert extracted and extracted == loaded + quarantined, (name, rows[name])
    assert "Airflow UI: http://" in out.stdout
