"""e2e fixtures: the whole test stack (api-server, scheduler, dag-processor, triggerer, Celery workers) is up."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from failpoint_hold import FailpointHold  # noqa: F401 - the e2e tests import it from here
from sluice.airflow_api import AirflowApi

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


HOME = Path(os.environ.get("SLUICE_HOME", ".sluice"))
TASK_LOGS = Path(os.environ.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER", HOME / "logs" / "airflow"))


def task_log(dag_id: str, run_id: str, task_id: str, attempt: int) -> Path:
    """The log file of one try of a task, as the worker writes it."""
    return TASK_LOGS / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}" / f"attempt={attempt}.log"


def wait_log_lines(path: Path, needles: list[str], timeout: float) -> str:
    """A task's log once it holds every needle (callbacks write after the task state is reported)."""
    end = time.time() + timeout
    text = ""
    while time.time() < end:
        text = path.read_text(errors="replace") if path.exists() else ""
        if all(n in text for n in needles):
            return text
        time.sleep(0.5)
    missing = [n for n in needles if n not in text]
    raise AssertionError(f"{path} lacks {missing} after {timeout:.0f}s:\n{text[-3000:]}")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def api() -> AirflowApi:
    if not os.environ.get("SLUICE_API_URL"):
        pytest.fail("SLUICE_API_URL is not set: run the tests through `make test`", pytrace=False)
    return AirflowApi.from_env()


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API keeps an event loop running while it is open."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, api):
    """A logged-in page (the login redirect is JavaScript, so wait for /auth/login)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(api.base_url + "/")
    page.wait_for_url("**/auth/login**", timeout=60_000)
    page.get_by_label("Username").fill(api.username)
    page.get_by_label("Password").fill(api.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)
    yield page
    context.close()
