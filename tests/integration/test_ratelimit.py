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
from sluice.sources import ratelimit
from werkzeug import Response

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_limiter_blocks_until_the_window_has_room(redis_url):
    limiter = ratelimit.RateLimiter(f"test:{uuid.uuid4().hex}", 5, uri=redis_url)
    started = time.monotonic()
    waits = [limiter.acquire() for _ in range(11)]
    elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 4.0  # 5 at once, 5 one second later, the 11th after two seconds
    assert max(waits[:5]) < 0.2 and limiter.waited_seconds >= 1.9


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
    import json, sys
    from datetime import UTC, datetime
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
    print("ready", flush=True)
    sys.stdin.readline()  # go
    batches = list(iter_source(cfg, Interval(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)),
                               print))
    print(json.dumps(sum(b.num_rows for b in batches)), flush=True)
""")


def test_two_worker_processes_share_one_limit(httpserver, monkeypatch, redis_url):
    """Two processes page through 20 pages each (21 requests with the empty last page) under one 10 req/s limit:
    the requests the server sees never exceed 10 in any window shorter than a second, and the pair finishes in
    about (42 - 10) / 10 s, so neither process got a private allowance."""
    stamps: list[float] = []
    lock = threading.Lock()

    def handler(request):
        with lock:
            stamps.append(time.time())
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
        started = time.time()
        for w in workers:
            w.stdin.write("go\n")
            w.stdin.flush()
        outputs = [w.communicate(timeout=60) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    elapsed = time.time() - started
    assert [w.returncode for w in workers] == [0, 0], [o[1][-2000:] for o in outputs]
    assert [o[0].strip().splitlines()[-1] for o in outputs] == ["20", "20"]
    assert len(stamps) == 42
    busiest = max(sum(1 for t in stamps if s <= t < s + 0.9) for s in stamps)
    assert busiest <= 10, f"{busiest} requests within 0.9 s under a 10/s limit"
    span = max(stamps) - min(stamps)
    assert 3.0 <= span <= elapsed < 30, (span, elapsed)
    assert (len(stamps) - 10) / span <= 10.5  # beyond the first full window, at most the limit per second
