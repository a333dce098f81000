"""The process manager keeps the stack up: a component killed with SIGKILL is restarted and reports healthy again.
Runs last among the e2e tests (file order) because it briefly takes the triggerer away."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def _pid(program: str) -> int:
    home = Path(os.environ["SLUICE_HOME"])
    out = subprocess.run(
        [str(REPO / ".venv/bin/supervisorctl"), "-c", str(home / "supervisord.conf"), "pid", program],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return int(out) if out.isdigit() else 0


def _healthy(api) -> bool:
    try:
        health = requests.get(f"{api.base_url}/api/v2/monitor/health", timeout=5).json()
    except (requests.RequestException, ValueError):
        return False
    return health.get("triggerer", {}).get("status") == "healthy"


def test_killed_triggerer_is_restarted_and_healthy_again(api):
    old = _pid("airflow-triggerer")
    assert old > 0
    os.killpg(os.getpgid(old), signal.SIGKILL)
    deadline = time.time() + 180
    new = 0
    while time.time() < deadline:
        new = _pid("airflow-triggerer")
        if new and new != old and _healthy(api):
            break
        time.sleep(2)
    assert new and new != old, "supervisord did not restart the triggerer"
    assert _healthy(api), "the restarted triggerer never reported healthy"
