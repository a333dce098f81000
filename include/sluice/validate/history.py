"""Checks of an interval against the pipeline's own history: its row count (volume) and per-column statistics
(outliers) compared with the last successful loads in sluice.interval_stats (finalize writes a row there only for a
run that added up, so failed runs never count).

`check_history` is pure (unit-tested); `read_history` is the one read, a single indexed query of at most
`history.lookback` rows. The history of an interval is the latest successful intervals that END AT OR BEFORE ITS
START: a re-run or a backfill of an old interval is compared with its own past, never with itself or later data.
Too short a history (a new pipeline) passes with a note, never an error.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sluice.config import CheckSeverity, OutlierMethod, Statistic, VolumeMethod

if TYPE_CHECKING:
    from sluice.config import HistoryConfig, OutlierCheck, PipelineConfig
    from sluice.interval import Interval


@dataclass(frozen=True)
class Past:
    """One successfully loaded interval: its rows in and the statistics of its numeric columns."""

    start: datetime
    end: datetime
    rows_in: int
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)  # severity fail: the run fails before loading
    warnings: list[str] = field(default_factory=list)  # severity warn: loaded, reported
    notes: list[str] = field(default_factory=list)  # a check that could not judge (too little history)

    def add(self, severity: CheckSeverity, message: str) -> None:
        (self.problems if severity is CheckSeverity.fail else self.warnings).append(message)


def statistic(entry: dict[str, Any] | None, stat: Statistic) -> float | None:
    """One statistic of a column's interval figures (count, nulls, min, max, sum, mean), or None when undefined."""
    if not entry:
        return None
    if stat is Statistic.null_fraction:
        rows = int(entry.get("count") or 0) + int(entry.get("nulls") or 0)
        return int(entry.get("nulls") or 0) / rows if rows else None
    value = entry.get(stat.value)
    return float(value) if isinstance(value, int | float) else None


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:,.6g}"


def _span(past: Sequence[Past]) -> str:
    """Which history: 'the last 7 successful intervals (2024-01-01 00:00 → 2024-01-08 00:00 UTC)'."""
    first, last = min(p.start for p in past), max(p.end for p in past)
    return f"the last {len(past)} successful interval(s) ({first:%Y-%m-%d %H:%M} → {last:%Y-%m-%d %H:%M} UTC)"


def check_volume(cfg: HistoryConfig, rows_in: int, past: Sequence[Past], out: Findings) -> None:
    vol = cfg.volume
    if vol is None:
        return
    if len(past) < cfg.min_intervals:
        out.notes.append(
            f"history.volume: not checked, {len(past)} successful interval(s) in the history, fewer than "
            f"history.min_intervals = {cfg.min_intervals}"
        )
        return
    counts = sorted(p.rows_in for p in past)
    median = statistics.median(counts)
    t = vol.tolerance
    base = (median, median) if vol.method is VolumeMethod.median else (counts[0], counts[-1])
    lo, hi = base[0] * (1 - t), base[1] * (1 + t)
    if lo <= rows_in <= hi:
        return
    rule = f"median ± {t:.0%}" if vol.method is VolumeMethod.median else f"band {counts[0]:,}..{counts[-1]:,} ± {t:.0%}"
    ratio = f"{rows_in / median:.1f}× the median" if median else "the median is 0"
    out.add(
        vol.severity,
        f"history.volume ({vol.method.value}, {vol.severity.value}): {rows_in:,} row(s) arrived, {ratio}; "
        f"{_span(past)} had median {_num(median)} (min {counts[0]:,}, max {counts[-1]:,}); allowed "
        f"{_num(max(lo, 0))}..{_num(hi)} ({rule})",
    )


def check_outlier(cfg: HistoryConfig, check: OutlierCheck, figures: dict, past: Sequence[Past], out: Findings) -> None:
    name = f"history.outliers {check.column}.{check.statistic.value} ({check.method.value}, {check.severity.value})"
    value = statistic(figures.get(check.column), check.statistic)
    values = [v for p in past if (v := statistic(p.columns.get(check.column), check.statistic)) is not None]
    need = max(cfg.min_intervals, 2)
    if value is None or len(values) < need:
        why = (
            "no value in this interval (no good rows, or only NULLs)"
            if value is None
            else f"{len(values)} successful interval(s) with a value in the history, fewer than {need}"
        )
        out.notes.append(f"{name}: not checked, {why}")
        return
    if check.method is OutlierMethod.zscore:
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        z = abs(value - mean) / sd if sd else (0.0 if value == mean else float("inf"))
        if z <= check.limit:
            return
        detail = f"z-score {z:,.1f} over the limit {check.limit:g}; {_span(past)}: mean {_num(mean)}, stddev {_num(sd)}"
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        lo, hi = q1 - check.limit * (q3 - q1), q3 + check.limit * (q3 - q1)
        if lo <= value <= hi:
            return
        detail = (
            f"outside {_num(lo)}..{_num(hi)} (q1 - {check.limit:g}×IQR .. q3 + {check.limit:g}×IQR); "
            f"{_span(past)}: q1 {_num(q1)}, q3 {_num(q3)}"
        )
    out.add(
        check.severity,
        f"{name}: {_num(value)} is an outlier, {detail} (min {_num(min(values))}, max {_num(max(values))})",
    )


def check_history(cfg: HistoryConfig, rows_in: int, figures: dict, past: Sequence[Past]) -> Findings:
    """Every configured check of this interval (rows in, column figures) against `past` (newest first)."""
    out = Findings()
    check_volume(cfg, rows_in, past, out)
    for check in cfg.outliers:
        check_outlier(cfg, check, figures, past, out)
    return out


def read_history(cfg: PipelineConfig, interval: Interval) -> list[Past]:
    """The last `history.lookback` successful intervals before this one, newest first ([] before any load)."""
    import psycopg

    from sluice.connections import pg_dsn
    from sluice.loading import sql as q

    lookback = cfg.history.lookback if cfg.history else 0
    args = {"pipeline": cfg.name, "start": interval.start, "n": lookback}
    with psycopg.connect(pg_dsn(cfg.target.conn_id), autocommit=True, application_name="sluice gate history") as conn:
        try:
            rows = conn.execute(q.interval_history(), args).fetchall()
        except psycopg.errors.UndefinedTable:  # the first finalize creates it: nothing was ever loaded
            return []
    return [Past(r[0], r[1], int(r[2]), r[3] or {}) for r in rows]
