"""e2e fixtures: the whole test stack (api-server, scheduler, dag-processor, triggerer, Celery workers) is up."""

from __future__ import annotations

import os

import pytest
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
