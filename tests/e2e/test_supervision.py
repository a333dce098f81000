"""The process manager keeps the stack up: a component killed with SIGKILL is restarted and reports healthy again.
Runs last among the e2e tests (file order) because it briefly takes the triggerer away."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime
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


def _triggerer_health(api) -> dict:
    try:
        return requests.get(f"{api.base_url}/api/v2/monitor/health", timeout=5).json().get("triggerer", {})
    except (requests.RequestException, ValueError):
        return {}


def _heartbeat(health: dict) -> datetime | None:
    value = health.get("latest_triggerer_heartbeat")
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def test_killed_triggerer_is_restarted_and_healthy_again(api):
    """Healthy again means a heartbeat written after the kill (the old one stays "healthy" for a while)."""
    old = _pid("airflow-triggerer")
    assert old > 0
    os.killpg(os.getpgid(old), signal.SIGKILL)
    killed_at = datetime.now(UTC)
    deadline = time.time() + 180
    new, health = 0, {}
    while time.time() < deadline:
        new, health = _pid("airflow-triggerer"), _triggerer_health(api)
        beat = _heartbeat(health)
        if new and new != old and health.get("status") == "healthy" and beat and beat > killed_at:
            break
        time.sleep(1)
    assert new and new != old, "supervisord did not restart the triggerer"
    beat = _heartbeat(health)
    assert beat and beat > killed_at, f"no triggerer heartbeat after the kill at {killed_at}: {health}"
    assert health.get("status") == "healthy", health
