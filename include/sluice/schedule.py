"""The data intervals of a pipeline's schedule, computed without Airflow (croniter, as Airflow's
CronDataIntervalTimetable does), so `plan` and `backfill plan` work with no Airflow installed or running and stay fast.

An interval of a cron schedule runs from one cron tick to the next, [tick, next tick), in UTC. Its logical date (what
Airflow's backfill `from_date`/`to_date` select on) is its start.

Also the health view's arithmetic (how far the last loaded interval is behind, how many intervals are past their
deadline): pure functions of the cron, the dates and `now`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from croniter import croniter

from sluice.interval import Interval

_EPSILON = timedelta(microseconds=1)
_FAR = datetime(9999, 1, 1, tzinfo=UTC)
MAX_OVERDUE = 100  # counting stops here; the Sluice page shows "100+"


def _at_midnight(d: date | datetime) -> datetime:
    if isinstance(d, datetime):
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    return datetime.combine(d, time.min, tzinfo=UTC)


def iter_intervals(cron: str, start: datetime, stop: datetime) -> Iterator[Interval]:
    """Every interval whose start (logical date) is in [start, stop], in order; `start` is aligned up to a tick."""
    it = croniter(cron, start - _EPSILON)  # a tick exactly at `start` counts
    tick = it.get_next(datetime).replace(fold=0)
    while tick <= stop:
        nxt = it.get_next(datetime).replace(fold=0)
        yield Interval(tick, nxt)
        tick = nxt


def intervals_between(cfg, first: date | datetime, last: date | datetime) -> list[Interval]:
    """The pipeline's intervals whose logical date is in [first, last] (both inclusive, like `airflow backfill
    create --from-date/--to-date`), clipped to start_date and end_date."""
    lo = max(_at_midnight(first), _at_midnight(cfg.start_date))
    hi = _at_midnight(last)
    if cfg.end_date:
        hi = min(hi, _at_midnight(cfg.end_date))
    return list(iter_intervals(cfg.cron, lo, hi)) if lo <= hi else []


def next_intervals(cfg, now: datetime, n: int = 3) -> list[Interval]:
    """The interval in progress at `now` (or the first one, before start_date) and the ones after it, at most `n`,
    none starting after end_date."""
    first = interval_at(cfg, max(now, _at_midnight(cfg.start_date)))
    if first.start < _at_midnight(cfg.start_date):
        first = next(iter_intervals(cfg.cron, _at_midnight(cfg.start_date), _FAR))
    limit = _at_midnight(cfg.end_date) if cfg.end_date else _FAR
    return list(itertools.islice(iter_intervals(cfg.cron, first.start, limit), n))


def latest_complete(cfg, now: datetime) -> Interval | None:
    """The latest interval that has ended by `now` (what a manual run without params processes), if any."""
    current = interval_at(cfg, now)
    start = croniter(cfg.cron, current.start).get_prev(datetime).replace(fold=0)
    prev = Interval(start, current.start) if current.end > now else current
    return prev if prev.start >= _at_midnight(cfg.start_date) else None


def interval_at(cfg, when: date | datetime) -> Interval:
    """The interval of the schedule that starts at `when` (a date means its midnight UTC), or, when `when` is not
    a tick, the one that contains it."""
    t = _at_midnight(when)
    start = croniter(cfg.cron, t + _EPSILON).get_prev(datetime).replace(fold=0)
    return Interval(start, croniter(cfg.cron, start).get_next(datetime).replace(fold=0))


def parse_when(text: str) -> datetime:
    """A date (2024-01-01) or an ISO timestamp; naive values are UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@lru_cache(maxsize=4096)
def latest_complete_end(cron: str, now: datetime, end_date: date | None = None) -> datetime:
    """End of the latest interval that is complete at `now` (the last cron tick at or before it), at most the end of
    the interval that starts on end_date. Cached: the Sluice page asks it for every pipeline with the same `now`, and
    croniter's parse of the expression is most of its cost."""
    end = croniter(cron, now + _EPSILON).get_prev(datetime)
    if end_date is not None:
        end = min(end, _at_midnight(end_date) + timedelta(days=1))
    return end.astimezone(UTC)


def lag(cron: str, loaded_end: datetime | None, now: datetime, end_date: date | None = None) -> timedelta | None:
    """How far the last loaded interval's end is behind the latest complete interval (0 when current)."""
    if loaded_end is None:
        return None
    return max(timedelta(0), latest_complete_end(cron, now, end_date) - loaded_end)


@lru_cache(maxsize=4096)
def overdue_intervals(
    cron: str, loaded_end: datetime | None, deadline: timedelta | None, now: datetime, end_date: date | None = None
) -> int | None:
    """Intervals after the last loaded one whose deadline (interval end + `deadline`) has passed, up to MAX_OVERDUE.
    None without a deadline or before the first load (a pipeline that never ran has no interval to be late on).
    Cached: pipelines on one schedule that are current share the answer."""
    if deadline is None or loaded_end is None:
        return None
    last = latest_complete_end(cron, now, end_date)
    it, n = croniter(cron, loaded_end), 0
    while n < MAX_OVERDUE:
        end = it.get_next(datetime).astimezone(UTC)
        if end > last or end + deadline > now:
            break
        n += 1
    return n
