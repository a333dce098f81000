"""A circuit breaker per source connection, shared by every Celery worker and process through Redis.

After `failures` consecutive failed requests to one connection (5xx, timeouts, connection errors: the source is
down, not the request wrong) the breaker opens: every task that would call the source waits instead of calling.
When `cooldown_seconds` have passed, exactly one caller, on whichever worker asks first, gets the probe: a success
closes the breaker for everybody, a failure opens it for another cool-down. A probe whose task died is handed to the
next caller after `PROBE_TIMEOUT_SECONDS`.

Why not pybreaker's CircuitRedisStorage: its half-open state lets every caller through, and its transitions are
separate Redis commands, so N workers whose cool-down ends together send N probes. Here every transition is one Lua
script run atomically by Redis, with Redis's own clock, so one probe is one probe whatever the number of workers
or hosts. Keys: the hash `sluice-breaker:<conn_id>` (state, failures, opened_at, probe) and the list
`sluice-breaker-events:<conn_id>` (the last 200 state changes). `states()` returns them for the UI and metrics.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

REDIS_URL_ENV = "SLUICE_REDIS_URL"
KEY_PREFIX = "sluice-breaker:"
EVENTS_PREFIX = "sluice-breaker-events:"
EVENTS_KEPT = 200
PROBE_TIMEOUT_SECONDS = 120.0  # longer than a request's timeout; a probe not reported by then is handed on
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

# KEYS[1] state hash, KEYS[2] events list. ARGV[1] op, ARGV[2] token, ARGV[3] threshold, ARGV[4] cooldown,
# ARGV[5] probe timeout, ARGV[6] reason, ARGV[7] last event index kept.
# Returns {decision, seconds to wait, new state or ''}.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local op, token = ARGV[1], ARGV[2]
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local function move(to, reason)
  redis.call('HSET', KEYS[1], 'state', to, 'changed_at', now)
  redis.call('LPUSH', KEYS[2], cjson.encode({at = now, from = state, to = to, reason = reason}))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]))
end
if op == 'acquire' then
  if state == 'closed' then return {'go', '0', ''} end
  local cooldown, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
  if state == 'open' then
    local ready = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0') + cooldown
    if now < ready then return {'wait', tostring(ready - now), ''} end
    move('half_open', 'cool-down over: one probe')
    redis.call('HSET', KEYS[1], 'probe', token, 'probe_until', now + ttl)
    redis.call('HINCRBY', KEYS[1], 'probes', 1)
    return {'probe', '0', 'half_open'}
  end
  local until_ = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
  if now < until_ then return {'wait', tostring(math.min(1, until_ - now)), ''} end
  redis.call('HSET', KEYS[1], 'probe', token, 'probe_until', now + ttl)
  redis.call('HINCRBY', KEYS[1], 'probes', 1)
  local note = 'probe not reported: handed on'
  redis.call('LPUSH', KEYS[2], cjson.encode({at = now, from = state, to = state, reason = note}))
  return {'probe', '0', ''}
elseif op == 'success' then
  redis.call('HSET', KEYS[1], 'failures', 0)
  if state ~= 'closed' then
    move('closed', ARGV[6])
    redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
    return {'ok', '0', 'closed'}
  end
  return {'ok', '0', ''}
else
  local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if state == 'half_open' and redis.call('HGET', KEYS[1], 'probe') == token then
    move('open', 'probe failed: ' .. ARGV[6])
    redis.call('HSET', KEYS[1], 'opened_at', now)
    redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
    return {'ok', '0', 'open'}
  end
  if state == 'closed' and failures >= tonumber(ARGV[3]) then
    move('open', failures .. ' consecutive failures, last: ' .. ARGV[6])
    redis.call('HSET', KEYS[1], 'opened_at', now)
    redis.call('HINCRBY', KEYS[1], 'opened', 1)
    return {'ok', '0', 'open'}
  end
  return {'ok', '0', ''}
end
"""


class CircuitOpenError(RuntimeError):
    """The breaker stayed open for longer than the task may wait; the task fails into its Airflow retry."""


def _redis(url: str | None = None) -> Any:
    import redis

    return redis.Redis.from_url(url or os.environ[REDIS_URL_ENV], decode_responses=True, socket_timeout=10)


@dataclass
class CircuitBreaker:
    """One source's breaker. `acquire` before each request (it blocks while open), then `success` or `failure`."""

    conn_id: str
    failures: int = 5
    cooldown_seconds: float = 30.0
    max_wait_seconds: float = 600.0
    redis_url: str | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    waited_seconds: float = 0.0
    probes: int = 0

    def __post_init__(self) -> None:
        self._client = _redis(self.redis_url)
        self._script = self._client.register_script(_SCRIPT)

    def _run(self, op: str, reason: str = "") -> tuple[str, float, str]:
        keys = [KEY_PREFIX + self.conn_id, EVENTS_PREFIX + self.conn_id]
        args = [op, self.token, self.failures, self.cooldown_seconds, PROBE_TIMEOUT_SECONDS, reason[:300]]
        args.append(EVENTS_KEPT - 1)
        decision, wait, changed = self._script(keys=keys, args=args)
        if changed:
            log.warning("circuit breaker %s: %s (%s)", self.conn_id, changed, reason or op)
        return decision, float(wait), changed

    def acquire(self) -> bool:
        """Wait until a request may go out; True when it is the probe of a half-open breaker."""
        started = time.monotonic()
        logged = False
        while True:
            decision, wait, _ = self._run("acquire")
            if decision == "go":
                break
            if decision == "probe":
                self.probes += 1
                log.warning("circuit breaker %s: this request is the probe", self.conn_id)
                break
            if not logged:
                log.warning("circuit breaker %s is open: waiting instead of calling the source", self.conn_id)
                logged = True
            pause = max(0.05, min(wait, 1.0)) + random.uniform(0, 0.1)
            if time.monotonic() - started + pause > self.max_wait_seconds:
                raise CircuitOpenError(
                    f"circuit breaker of connection {self.conn_id!r} stayed open for {self.max_wait_seconds:.0f}s "
                    f"(circuit_breaker.max_wait_seconds); the source is down"
                )
            time.sleep(pause)
        self.waited_seconds += time.monotonic() - started
        return decision == "probe"

    def success(self, reason: str = "request succeeded") -> None:
        self._run("success", reason)

    def failure(self, reason: str) -> None:
        self._run("failure", reason)


@dataclass(frozen=True)
class BreakerState:
    """What the UI and metrics show for one connection's breaker."""

    conn_id: str
    state: str
    failures: int
    opened: int  # times it opened (from closed)
    probes: int  # probes let through
    changed_at: float | None
    events: list[dict]


def states(redis_url: str | None = None, events: int = 20) -> list[BreakerState]:
    """Every breaker that has seen a request, with its last `events` state changes (newest first)."""
    client = _redis(redis_url)
    found = (_state(client, key.removeprefix(KEY_PREFIX), events) for key in client.scan_iter(match=KEY_PREFIX + "*"))
    return sorted((s for s in found if s is not None), key=lambda s: s.conn_id)


def state(conn_id: str, redis_url: str | None = None, events: int = 20) -> BreakerState | None:
    """One connection's breaker, None when it has never seen a request (a closed breaker)."""
    return _state(_redis(redis_url), conn_id, events)


def _state(client: Any, conn_id: str, events: int) -> BreakerState | None:
    h = client.hgetall(KEY_PREFIX + conn_id)
    if not h:
        return None
    raw = client.lrange(EVENTS_PREFIX + conn_id, 0, events - 1) if events else []
    return BreakerState(
        conn_id=conn_id,
        state=h.get("state", CLOSED),
        failures=int(h.get("failures", 0)),
        opened=int(h.get("opened", 0)),
        probes=int(h.get("probes", 0)),
        changed_at=float(h["changed_at"]) if "changed_at" in h else None,
        events=[json.loads(e) for e in raw],
    )


def reset(conn_id: str, redis_url: str | None = None) -> None:
    """Forget a breaker (an operator after fixing the source, or a test)."""
    _redis(redis_url).delete(KEY_PREFIX + conn_id, EVENTS_PREFIX + conn_id)
