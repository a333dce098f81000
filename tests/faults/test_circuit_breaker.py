"""An HTTP source down (503) for a period the test controls, behind a circuit breaker shared through Redis: after 3
consecutive failures the breaker opens, and every task that would call the source waits instead, the second run's
task included (it starts while the breaker is open, so on whichever worker it lands it must not call). While the
breaker is not closed the server receives only the probes; the runs succeed once the test lets the source recover.
This is also the fault "an HTTP source answering 503 for a while, then 200"."""

from __future__ import annotations

import pytest
from faultkit import poll, sql, table_hash, wait_for_run
from flaky_api import FlakyApi
from sluice.airflow_api import AirflowApiError
from sluice.sources import breaker as br

DAG = "e2e_faults_breaker"
CONN = "faults_flaky_api"
DAY = {"interval_start": "2000-01-01T00:00:00+00:00", "interval_end": "2000-01-02T00:00:00+00:00"}
PROBES_WHILE_DOWN = 2  # the source recovers only after this many failed probes


def breaker() -> br.BreakerState | None:
    return next((s for s in br.states() if s.conn_id == CONN), None)


@pytest.fixture
def flaky(api, redis_url):
    br.reset(CONN, redis_url)
    with FlakyApi(redis_url, CONN) as server:
        try:
            api.request("DELETE", f"/connections/{CONN}")
        except AirflowApiError as exc:
            if exc.status != 404:
                raise
        api.request(
            "POST",
            "/connections",
            json={"connection_id": CONN, "conn_type": "http", "host": "127.0.0.1", "port": server.port},
        )
        api.wait_for_dag(DAG)
        api.unpause(DAG)
        yield server
    br.reset(CONN, redis_url)


def items() -> tuple[int, str]:
    return table_hash("e2e_faults.breaker_items", "id, name", "id")


def test_open_breaker_stops_calls_across_workers_and_the_runs_succeed_after_recovery(api, flaky):
    clean = api.trigger(DAG, conf=DAY)
    assert wait_for_run(api, DAG, clean) == "success"
    expected = items()
    assert expected[0] == 100
    sql("TRUNCATE e2e_faults.breaker_items")
    flaky.received.clear()

    flaky.set_failing(True)
    first = api.trigger(DAG, conf=DAY)
    poll("breaker open", lambda: (s := breaker()) and s.state != br.CLOSED, 600)
    second = api.trigger(DAG, conf=DAY)  # its task starts against an open breaker
    poll(f"{PROBES_WHILE_DOWN} probes", lambda: (s := breaker()) and s.probes >= PROBES_WHILE_DOWN, 600)
    while_down = flaky.counts()
    flaky.set_failing(False)  # the source recovers; the next probe succeeds and closes the breaker
    states = [wait_for_run(api, DAG, r) for r in (first, second)]
    final = breaker()
    counts = flaky.counts()
    print(
        f"\nbreaker: requests by breaker state on arrival {counts} (while down {while_down}); "
        f"opened {final.opened}x, {final.probes} probes; events {[(e['from'], e['to']) for e in final.events]}"
    )
    assert states == ["success", "success"], [api.task_instances(DAG, r) for r in (first, second)]
    assert final.state == br.CLOSED and final.opened == 1
    not_closed = counts.get(br.OPEN, 0) + counts.get(br.HALF_OPEN, 0)
    assert not_closed <= final.probes, f"{not_closed} requests reached the source while open, {final.probes} probes"
    assert counts.get(br.OPEN, 0) == 0, counts  # a probe arrives while half-open; nothing arrives while open
    assert while_down.get(br.CLOSED, 0) == 3, while_down  # the 3 failures that opened it, then only probes
    assert items() == expected
