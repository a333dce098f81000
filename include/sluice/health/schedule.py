"""Schedule arithmetic for the health view: how far the last loaded interval is behind the schedule, and how many
intervals since then are past their deadline. Pure functions of the cron, the dates and `now`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from croniter import croniter

MAX_OVERDUE = 100  # counting stops here; the page shows "100+"


def _at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


@lru_cache(maxsize=4096)
def latest_complete_end(cron: str, now: datetime, end_date: date | None = None) -> datetime:
    """End of the latest interval that is complete at `now` (the last cron tick at or before it). Cached: the page
    asks it for every pipeline with the same `now`, and croniter's parse of the expression is most of its cost."""
    end = croniter(cron, now + timedelta(microseconds=1)).get_prev(datetime)
    if end_date is not None:
        end = min(end, _at(end_date + timedelta(days=1)))
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
