"""The circuit breaker on the test stack's Redis: two breaker objects stand for two workers (each its own token and
connection); the cool-down is ended by moving `opened_at` back in Redis, so nothing here waits on a clock."""

from __future__ import annotations

import uuid

import pytest
import redis
from sluice.sources import breaker as br

pytestmark = pytest.mark.integration


@pytest.fixture
def conn_id(redis_url):
    name = f"test_breaker_{uuid.uuid4().hex[:8]}"
    yield name
    br.reset(name, redis_url)


def cool_down_over(redis_url: str, conn_id: str) -> None:
    redis.Redis.from_url(redis_url).hset(br.KEY_PREFIX + conn_id, "opened_at", 0)


def state(redis_url: str, conn_id: str) -> br.BreakerState:
    return next(s for s in br.states(redis_url) if s.conn_id == conn_id)


def test_opens_after_n_failures_lets_one_probe_through_and_closes_on_success(redis_url, conn_id):
    a = br.CircuitBreaker(conn_id, failures=3, cooldown_seconds=3600, max_wait_seconds=3600, redis_url=redis_url)
    b = br.CircuitBreaker(conn_id, failures=3, cooldown_seconds=3600, max_wait_seconds=0.3, redis_url=redis_url)
    assert a.acquire() is False  # closed: a plain request
    a.failure("HTTP 503")
    b.failure("HTTP 503")
    assert state(redis_url, conn_id).state == br.CLOSED
    b.success()  # a success resets the consecutive count
    for _ in range(3):
        a.failure("HTTP 503")
    assert state(redis_url, conn_id).state == br.OPEN
    with pytest.raises(br.CircuitOpenError):
        b.acquire()  # open and cooling down: the other worker waits, then gives up after its max wait
    cool_down_over(redis_url, conn_id)
    assert a.acquire() is True  # the one probe
    with pytest.raises(br.CircuitOpenError):
        b.acquire()  # half-open with a probe in flight: nobody else calls
    a.failure("HTTP 503")  # the probe failed: open for another cool-down
    assert state(redis_url, conn_id).state == br.OPEN
    cool_down_over(redis_url, conn_id)
    assert b.acquire() is True  # whichever worker asks first gets the next probe
    b.success()
    assert a.acquire() is False and state(redis_url, conn_id).state == br.CLOSED
    s = state(redis_url, conn_id)
    assert (s.opened, s.probes, s.failures) == (1, 2, 0)
    assert [(e["from"], e["to"]) for e in s.events] == [
        ("half_open", "closed"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("closed", "open"),
    ]


def test_a_probe_whose_task_died_is_handed_on(redis_url, conn_id):
    a = br.CircuitBreaker(conn_id, failures=1, cooldown_seconds=3600, redis_url=redis_url)
    b = br.CircuitBreaker(conn_id, failures=1, cooldown_seconds=3600, redis_url=redis_url)
    a.failure("ConnectionError")
    cool_down_over(redis_url, conn_id)
    assert a.acquire() is True  # a's task is then killed before it reports
    redis.Redis.from_url(redis_url).hset(br.KEY_PREFIX + conn_id, "probe_until", 0)  # its probe timeout passed
    assert b.acquire() is True
    a.success()  # a stale report from a request that did get an answer still counts as the source being up
    assert state(redis_url, conn_id).state == br.CLOSED


def test_breakers_command_shows_and_resets_a_breaker(redis_url, conn_id, monkeypatch, capsys):
    from sluice.cli import main

    monkeypatch.setenv(br.REDIS_URL_ENV, redis_url)
    br.CircuitBreaker(conn_id, failures=1, redis_url=redis_url).failure("HTTP 502")
    assert main(["breakers"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(conn_id))
    assert " open " in line and "opened 1x" in line and "HTTP 502" in line
    assert main(["breakers", "--reset", conn_id]) == 0
    assert all(s.conn_id != conn_id for s in br.states(redis_url))


def test_page_and_metrics_show_an_open_breaker_from_redis(redis_url, conn_id, monkeypatch):
    """What the Sluice page and the Prometheus endpoint read: the breaker's state as Redis holds it."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from sluice.health import metrics, report

    monkeypatch.setenv(br.REDIS_URL_ENV, redis_url)
    a = br.CircuitBreaker(conn_id, failures=2, cooldown_seconds=3600, max_wait_seconds=1, redis_url=redis_url)
    a.failure("HTTP 503")
    a.failure("HTTP 503")
    found, error = report.read_breakers()
    assert error is None and (found[conn_id].state, found[conn_id].opened) == (br.OPEN, 1)
    assert [e["to"] for e in report._breaker_events(conn_id)] == [br.OPEN]

    monkeypatch.setattr(report, "load_configs", lambda: ({}, {}))
    reg = CollectorRegistry()
    reg.register(metrics.WarehouseCollector("postgresql://nobody@127.0.0.1:1/none"))  # the warehouse down too
    samples = [s for f in text_string_to_metric_families(generate_latest(reg).decode()) for s in f.samples]
    mine = {
        s.labels["state"]: s.value
        for s in samples
        if s.name == "sluice_circuit_breaker_state" and s.labels["conn_id"] == conn_id
    }
    assert mine == {"closed": 0, "open": 1, "half_open": 0}
    opened = [
        s.value for s in samples if s.name == "sluice_circuit_breaker_opened_total" and s.labels["conn_id"] == conn_id
    ]
    assert opened == [1]
