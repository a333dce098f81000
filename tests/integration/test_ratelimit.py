"""The shared rate limit against the real Redis: one limit per source, held across worker processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from limits.strategies import MovingWindowRateLimiter
from sluice.sources import ratelimit
from werkzeug import Response

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def record_grants(grants: list, monkeypatch) -> None:
    """Wrap the limiter's hit (which stamps the window entry with time.time() inside it): every granted permit as
    (time before, time after), so the stamp the window counts lies between them, however slow the machine is."""
    _hit = MovingWindowRateLimiter.hit

    def hit(self, *args, **kwargs):
        before = time.time()
        ok = _hit(self, *args, **kwargs)
        if ok:
            grants.append((before, time.time()))
        return ok

    monkeypatch.setattr(MovingWindowRateLimiter, "hit", hit)


def crowded(grants: list[tuple[float, float]], limit: int, window: float = 1.0) -> list[tuple[float, float]]:
    """limit + 1 grants that certainly fell inside one window (latest 'after' - earliest 'before' < window), or []."""
    for start, _ in grants:
        later = sorted((g for g in grants if g[0] >= start), key=lambda g: g[1])[: limit + 1]
        if len(later) == limit + 1 and later[-1][1] - start < window:
            return later
    return []


def test_limiter_blocks_until_the_window_has_room(redis_url, monkeypatch):
    grants: list[tuple[float, float]] = []
    record_grants(grants, monkeypatch)
    limiter = ratelimit.RateLimiter(f"test:{uuid.uuid4().hex}", 5, uri=redis_url)
    for _ in range(11):
        limiter.acquire()
    assert len(grants) == 11
    assert not crowded(grants, 5), crowded(grants, 5)  # never 6 permits within a second
    grants.sort()
    assert grants[-1][1] - grants[0][0] >= 2.0  # 5, 5 a second later, the 11th two seconds after the first
    assert limiter.waited_seconds > 0


def test_fractional_rates_and_timeout(redis_url):
    limiter = ratelimit.RateLimiter(f"test:{uuid.uuid4().hex}", 0.5, uri=redis_url)  # 1 per 2 s
    limiter.acquire()
    with pytest.raises(ratelimit.RateLimitTimeout, match="0.5/s"):
        limiter.acquire(max_wait_seconds=0.5)


def test_without_redis_the_limit_is_per_process_with_a_warning(monkeypatch, caplog):
    monkeypatch.delenv(ratelimit.REDIS_URL_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="sluice.sources.ratelimit"):
        limiter = ratelimit.limiter_for("p", "c", 100)
    assert limiter is not None and "NOT shared" in caplog.text
    assert ratelimit.limiter_for("p", "c", None) is None


WORKER = textwrap.dedent("""
    import json, sys, time
    from datetime import UTC, datetime
    from limits.strategies import MovingWindowRateLimiter
    from sluice.config import PipelineConfig
    from sluice.interval import Interval
    from sluice.sources import iter_source
    import sluice.sources.http.source  # noqa: F401  (import everything before "ready", so both start together)
    import airflow.providers.http.hooks.http  # noqa: F401
    from airflow.sdk import BaseHook
    BaseHook.get_connection(sys.argv[1])

    cfg = PipelineConfig.model_validate({
        "name": "shared_limit", "start_date": "2024-01-01",
        "source": {"kind": "http", "conn_id": sys.argv[1], "endpoint": "/items", "rate_limit_per_second": 10,
                   "pagination": {"style": "page_number"}},
        "staging": {"url": "file:///tmp/unused", "conn_id": None},
        "target": {"table": "t", "primary_key": ["id"], "columns": [{"name": "id", "type": "text", "nullable": False}]},
    })
    GRANTS = []
    _hit = MovingWindowRateLimiter.hit
    def hit(self, *args, **kwargs):  # the permit's window stamp is time.time() inside hit: record around it
        before = time.time()
        ok = _hit(self, *args, **kwargs)
        if ok:
            GRANTS.append((before, time.time()))
        return ok
    MovingWindowRateLimiter.hit = hit
    print("ready", flush=True)
    sys.stdin.readline()  # go
    batches = list(iter_source(cfg, Interval(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)),
                               print))
    print(json.dumps({"rows": sum(b.num_rows for b in batches), "grants": GRANTS}), flush=True)
""")


def test_two_worker_processes_share_one_limit(httpserver, monkeypatch, redis_url):
    """Two processes page through 20 pages each (21 requests with the empty last page) under one 10 req/s limit.
    Time is taken where each permit is granted (around the limiter's hit, which stamps the window), so the checks
    hold however late a request reaches the server: no 11 permits of the two processes within one second, so
    neither got a private allowance; the server saw every request."""
    served: list[str] = []
    lock = threading.Lock()

    def handler(request):
        with lock:
            served.append(request.args.get("page", "1"))
        page = int(request.args.get("page", 1))
        body = [{"id": f"{uuid.uuid4().hex}"}] if page <= 20 else []
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/items").respond_with_handler(handler)
    conn_id = f"t_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        f"AIRFLOW_CONN_{conn_id.upper()}": httpserver.url_for("/").rstrip("/"),
        "SLUICE_REDIS_URL": redis_url,
        "PYTHONPATH": str(REPO / "include"),
    }
    # a fresh key per test run: the pipeline name is fixed, the connection id is unique
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, conn_id],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for w in workers:
            line = w.stdout.readline()
            assert line.strip() == "ready", w.stderr.read()
        for w in workers:
            w.stdin.write("go\n")
            w.stdin.flush()
        outputs = [w.communicate(timeout=60) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert [w.returncode for w in workers] == [0, 0], [o[1][-2000:] for o in outputs]
    results = [json.loads(o[0].strip().splitlines()[-1]) for o in outputs]
    assert [r["rows"] for r in results] == [20, 20]
    assert len(served) == 42
    grants = [tuple(g) for r in results for g in r["grants"]]
    assert [len(r["grants"]) for r in results] == [21, 21]
    assert not crowded(grants, 10), f"11 permits within a second under a 10/s limit: {crowded(grants, 10)}"
    # 42 permits at 10/s: the 41st is at least 4 s after the first
    assert max(a for _, a in grants) - min(b for b, _ in grants) >= 4.0
