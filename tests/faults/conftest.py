"""Fault tests (make test-faults): the whole test stack is up, and each test stops, kills or breaks one component
at a point it controls, then checks that the run still ends as a clean run would. Slow by nature (a lost worker is
only detected after the task heartbeat timeout), so they are not part of `make test`."""

from __future__ import annotations

import os

import pytest
from sluice.airflow_api import AirflowApi


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def api() -> AirflowApi:
    if not os.environ.get("SLUICE_API_URL"):
        pytest.fail("SLUICE_API_URL is not set: run the tests through `make test-faults`", pytrace=False)
    return AirflowApi.from_env()
