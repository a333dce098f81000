"""Waiting until the stack is usable: ports accept connections, the api-server reports every component healthy,
a Celery worker answers a ping."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .console import StackError
from .environment import VENV_BIN, Settings, airflow_env

COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts TCP connections on host:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, logs: Path | None = None, fatal: bool = True
) -> bool:
    """Poll `check` once a second; on timeout raise a StackError that names what and where the logs are."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(1)
    if fatal:
        where = f"; see the logs in {logs}" if logs else ""
        raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{where}")
    return False


def api_healthy(settings: Settings) -> bool:
    """The api-server's health endpoint reports the metadatabase, scheduler, triggerer and dag-processor healthy."""
    url = f"http://{settings.host}:{settings.ports['api']}/api/v2/monitor/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            health = json.load(r)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return all(health.get(c, {}).get("status") == "healthy" for c in COMPONENTS)


def worker_answers(settings: Settings) -> bool:
    """A Celery worker answers a ping through the broker, so a queued task will be picked up."""
    code = (
        "from airflow.providers.celery.executors.celery_executor_utils import app;"
        "import sys; r = app.control.ping(timeout=3); print(r); sys.exit(0 if r else 1)"
    )
    res = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code],
        env={**os.environ, **airflow_env(settings)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return res.returncode == 0
