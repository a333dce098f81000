"""Fault tests (make test-faults): the whole test stack is up, and each test stops, kills or breaks one component
at a point it controls, then checks that the run still ends as a clean run would. Slow by nature (a lost worker is
only detected after the task heartbeat timeout), so they are not part of `make test`."""

from __future__ import annotations

import os

import pytest
from sluice.airflow_api import AirflowApi

FAULT_TEST_TIMEOUT = 1800  # s; pytest-timeout's 600 s default is less than a clean run plus a fault on a loaded box


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.e2e)
        item.add_marker(pytest.mark.timeout(FAULT_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def api() -> AirflowApi:
    if not os.environ.get("SLUICE_API_URL"):
        pytest.fail("SLUICE_API_URL is not set: run the tests through `make test-faults`", pytrace=False)
    return AirflowApi.from_env()


@pytest.fixture(scope="session")
def clean_crash_run(api):
    """One clean run of e2e_lineitem_crash: the table and ledger every faulted run must end with."""
    from faultkit import CRASH, CRASH_DAY, crash_table, land_crash_data, ledger, sql, wait_for_run

    land_crash_data()
    sql("DROP TABLE IF EXISTS e2e.lineitem_crash")
    api.wait_for_dag(CRASH)
    api.unpause(CRASH)
    run_id = api.trigger(CRASH, conf=CRASH_DAY)
    assert wait_for_run(api, CRASH, run_id) == "success"
    chunks = ledger(run_id)
    assert len(chunks) >= 5, chunks
    return {"table": crash_table(), "chunks": chunks}
