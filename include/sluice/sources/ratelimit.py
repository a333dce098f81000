"""Requests-per-second limits shared by every Celery worker and process, through Redis (`limits` library).

An API's quota belongs to the API, not to one worker: two mapped tasks of one pipeline on two workers must share
it, so the counter lives in Redis (`SLUICE_REDIS_URL`). We use a moving window, which unlike a fixed window never
lets a burst of 2x the limit through at a window edge. Without a Redis URL (a laptop, a unit test) the limit is
kept in process memory, with a warning, because it then only holds within one process.
"""

from __future__ import annotations

import logging
import os
import random
import time
from fractions import Fraction

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

REDIS_URL_ENV = "SLUICE_REDIS_URL"
KEY_PREFIX = "sluice-ratelimit"
_STORAGES: dict[str, Storage] = {}


class RateLimitTimeout(TimeoutError):
    """The limit stayed exhausted for longer than the caller was willing to wait."""


def rate_item(per_second: float) -> RateLimitItem:
    """`per_second` as "amount per N seconds" in whole numbers, e.g. 2.5/s -> 5 per 2 s, 0.2/s -> 1 per 5 s."""
    if per_second <= 0:
        raise ValueError(f"rate_limit_per_second must be > 0, got {per_second}")
    fraction = Fraction(per_second).limit_denominator(1000)
    return RateLimitItemPerSecond(max(fraction.numerator, 1), fraction.denominator, namespace=KEY_PREFIX)


def _storage(uri: str) -> Storage:
    """One storage (one Redis connection pool) per URI and process."""
    if uri not in _STORAGES:
        storage = storage_from_string(uri)
        if not isinstance(storage, Storage):  # an async:// URI: the limiter is synchronous
            raise ValueError(f"rate-limit storage {uri!r} is asynchronous; use a synchronous one (redis://, memory://)")
        _STORAGES[uri] = storage
    return _STORAGES[uri]


def storage_uri() -> str:
    """`SLUICE_REDIS_URL` (a `redis://` URI is a valid `limits` storage URI), else process memory with a warning."""
    uri = os.environ.get(REDIS_URL_ENV, "").strip()
    if uri:
        return uri
    log.warning(
        "%s is not set: rate limits are kept in process memory and are NOT shared between workers", REDIS_URL_ENV
    )
    return "memory://"


class RateLimiter:
    """Blocks until one more request fits in the moving window of `per_second` for `key`."""

    def __init__(self, key: str, per_second: float, uri: str | None = None) -> None:
        self.key, self.per_second = key, per_second
        self.item = rate_item(per_second)
        self.limiter = MovingWindowRateLimiter(_storage(uri or storage_uri()))
        self.waited_seconds = 0.0

    def acquire(self, max_wait_seconds: float = 600.0) -> float:
        """Take one slot, sleeping while the window is full; returns the seconds waited.

        The sleep is until the oldest hit leaves the window (plus a little jitter, so that the workers woken together
        do not all hit Redis in the same millisecond), so waiting costs a few Redis calls, not a busy loop.
        """
        started = time.monotonic()
        while not self.limiter.hit(self.item, self.key):
            stats = self.limiter.get_window_stats(self.item, self.key)
            pause = min(max(stats.reset_time - time.time(), 0.001), 1.0) + random.uniform(0, 0.005)
            if time.monotonic() - started + pause > max_wait_seconds:
                raise RateLimitTimeout(
                    f"rate limit {self.per_second}/s for {self.key!r} stayed exhausted for {max_wait_seconds:.0f}s"
                )
            time.sleep(pause)
        waited = time.monotonic() - started
        self.waited_seconds += waited
        return waited


def limiter_for(pipeline: str, conn_id: str, per_second: float | None) -> RateLimiter | None:
    """The shared limiter of one source (key = pipeline name + connection id), or None when unlimited."""
    if not per_second:
        return None
    return RateLimiter(f"{pipeline}:{conn_id}", per_second)
