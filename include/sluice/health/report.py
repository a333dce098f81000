"""Join what the pipeline files configure with what the warehouse recorded: one PipelineHealth per pipeline, each
shown for what it is (healthy, failing, stale, never ran, invalid file, no file any more)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice import schedule
from sluice.health import warehouse

if TYPE_CHECKING:
    from sluice.config import PipelineConfig
    from sluice.sources.breaker import BreakerState

INTERVALS = 30  # the small chart's width


@dataclass
class PipelineHealth:
    name: str
    state: str  # ok | failing | late | never ran | invalid file | no file
    source_kind: str | None = None
    schedule: str | None = None
    config_error: str | None = None
    ok_start: datetime | None = None
    ok_end: datetime | None = None
    ok_finished: datetime | None = None
    lag: timedelta | None = None
    last_run_id: str | None = None
    last_status: str | None = None
    last_finished: datetime | None = None
    runs_ok: int = 0
    runs_failed: int = 0
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    volumes: list[tuple[str, int, int, str]] = field(default_factory=list)  # (interval_start, rows, quarantined, st)
    quarantine_rate: float | None = None
    pending_quarantine: int = 0
    empty_intervals: int = 0
    intervals: int = 0
    schema_changes: int = 0
    last_schema_change: datetime | None = None
    overdue: int | None = None
    deadline: timedelta | None = None
    breaker_conn: str | None = None  # the source's conn_id when its circuit breaker is configured
    breaker: str | None = None  # closed | open | half_open | unknown (Redis unreadable); None without a breaker
    breaker_opened: int = 0  # times it opened since Redis last forgot it


@dataclass
class Overview:
    pipelines: list[PipelineHealth]
    now: datetime
    warehouse_error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step (the page's Server-Timing header)
    breaker_error: str | None = None  # why the circuit breakers could not be read


@dataclass
class PipelineDetail:
    health: PipelineHealth | None
    history: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[dict[str, Any]] = field(default_factory=list)
    schema_changes: list[dict[str, Any]] = field(default_factory=list)
    warehouse_error: str | None = None
    breaker_events: list[dict[str, Any]] = field(default_factory=list)  # newest first: at, from, to, reason
    breaker_error: str | None = None


def pipelines_dirs() -> list[Path]:
    """The same directories the DAG file reads: $SLUICE_PIPELINES_DIRS, else config/pipelines."""
    from sluice import config

    raw = os.environ.get("SLUICE_PIPELINES_DIRS")
    return [Path(p) for p in raw.split(os.pathsep) if p] if raw else [config.default_pipelines_dir()]


_cache: dict[tuple, tuple[dict[str, PipelineConfig], dict[str, str]]] = {}


def _stamp(paths: list[Path]) -> tuple:
    out: list[tuple[str, int | None, int | None]] = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


def load_configs() -> tuple[dict[str, PipelineConfig], dict[str, str]]:
    """Valid pipelines by name, and one message per invalid file keyed by the name it declares (else its stem).
    Parsed again only when a file (or defaults.yaml) was added, removed or changed: 200 files take ~0.5 s to
    validate, the stat calls a few ms."""
    from sluice import config

    dirs = pipelines_dirs()
    files = [f for d in dirs if d.is_dir() for f in config.pipeline_files(d)]
    key = _stamp([*files, dirs[0].parent / "defaults.yaml"])
    if key in _cache:
        return _cache[key]
    try:
        defaults: dict[str, Any] = config.load_defaults(dirs[0].parent)
    except config.ConfigError:
        defaults = {}
    result = config.load_paths(files, defaults)
    invalid = {}
    for path, err in result.errors.items():
        invalid[_declared_name(path) or Path(path).stem] = str(err).splitlines()[0]
    _cache.clear()
    _cache[key] = (result.pipelines, invalid)
    return _cache[key]


def _declared_name(path: str) -> str | None:
    import re

    try:
        m = re.search(r"^name\s*:\s*['\"]?([a-z0-9_]+)", Path(path).read_text(encoding="utf-8"), re.MULTILINE)
    except (OSError, UnicodeDecodeError):
        return None
    return m.group(1) if m else None


def read_breakers(redis_url: str | None = None) -> tuple[dict[str, BreakerState] | None, str | None]:
    """The sources' circuit breakers by conn_id as Redis holds them (sources/breaker.py), and why they could not be
    read: ({}, None) when no Redis is configured (no breaker can exist), (None, reason) when Redis is unreachable."""
    from sluice.sources import breaker

    if not (redis_url or os.environ.get(breaker.REDIS_URL_ENV, "").strip()):
        return {}, None
    try:
        return {s.conn_id: s for s in breaker.states(redis_url, events=0)}, None
    except Exception as exc:  # redis-py's errors, a bad URL: the page says so instead of failing
        return None, f"circuit breakers unreadable ({type(exc).__name__}: {exc})"


def build(
    configs: dict[str, PipelineConfig],
    invalid: dict[str, str],
    rows: list[dict[str, Any]],
    now: datetime,
    breakers: dict[str, BreakerState] | None = None,
) -> list[PipelineHealth]:
    """Every pipeline that has a file (valid or not) or a run summary, sorted by name. Pure: a unit test feeds it.
    `breakers` by conn_id; None means they could not be read, so a configured breaker shows as unknown."""
    by_name = {r["pipeline"]: r for r in rows}
    out = []
    for name in sorted({*configs, *invalid, *by_name}):
        cfg, row = configs.get(name), by_name.get(name)
        h = PipelineHealth(name=name, state="ok")
        if cfg is not None:
            h.source_kind, h.schedule = cfg.source.kind, cfg.schedule
            h.deadline = cfg.deadline.after_interval_end if cfg.deadline else None
            _breaker(h, cfg, breakers)
        if row is not None:
            _fill(h, row)
        if cfg is not None and h.ok_end is not None:
            h.lag = schedule.lag(cfg.cron, h.ok_end, now, cfg.end_date)
            h.overdue = schedule.overdue_intervals(cfg.cron, h.ok_end, h.deadline, now, cfg.end_date)
        h.config_error = invalid.get(name)
        h.state = _state(h, cfg, row)
        out.append(h)
    return out


def _breaker(h: PipelineHealth, cfg: PipelineConfig, breakers: dict[str, BreakerState] | None) -> None:
    if getattr(cfg.source, "circuit_breaker", None) is None:
        return
    h.breaker_conn = cfg.source.conn_id
    if breakers is None:
        h.breaker = "unknown"
        return
    seen = breakers.get(h.breaker_conn)  # a breaker that never saw a failure has no key yet: closed
    h.breaker, h.breaker_opened = (seen.state, seen.opened) if seen else ("closed", 0)


def _fill(h: PipelineHealth, r: dict[str, Any]) -> None:
    h.ok_start, h.ok_end, h.ok_finished = r["ok_start"], r["ok_end"], r["ok_finished"]
    h.last_run_id, h.last_status, h.last_finished = r["last_run_id"], r["last_status"], r["last_finished"]
    h.runs_ok, h.runs_failed = int(r["runs_ok"] or 0), int(r["runs_failed"] or 0)
    h.rows_in, h.rows_loaded = int(r["rows_in"] or 0), int(r["rows_loaded"] or 0)
    h.rows_quarantined = int(r["rows_quarantined"] or 0)
    h.volumes = [(v[0], int(v[1]), int(v[2]), v[3]) for v in r["volumes"] or []]
    recent_in = int(r["recent_in"] or 0)
    h.quarantine_rate = int(r["recent_quarantined"] or 0) / recent_in if recent_in else None
    h.pending_quarantine = int(r["pending_quarantine"] or 0)
    h.empty_intervals, h.intervals = int(r["empty_intervals"] or 0), int(r["intervals"] or 0)
    h.schema_changes, h.last_schema_change = int(r["schema_changes"] or 0), r["last_schema_change"]


def _state(h: PipelineHealth, cfg: PipelineConfig | None, row: dict[str, Any] | None) -> str:
    if h.config_error:
        return "invalid file"
    if cfg is None:
        return "no file"
    if row is None:
        return "never ran"
    if h.last_status not in warehouse.OK_STATUSES:
        return "failing"
    if h.overdue:
        return "late"
    return "ok"


def read_overview(now: datetime | None = None, dsn: str | None = None) -> Overview:
    """The Sluice page's data: never raises for the warehouse (the page says it is unreachable)."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    try:
        with warehouse.connect(dsn) as conn:
            connected = time.perf_counter() - started
            ov = overview_from(conn, now)
            ov.timings = {"connect": connected, **ov.timings}
            return ov
    except warehouse.WarehouseUnavailable as exc:
        configs, invalid = load_configs()
        breakers, breaker_error = read_breakers()
        return Overview(build(configs, invalid, [], now, breakers), now, str(exc), breaker_error=breaker_error)


def overview_from(conn: Any, now: datetime) -> Overview:
    """The overview on an open warehouse connection, with the seconds of each step in `timings`."""
    t0 = time.perf_counter()
    rows = warehouse.overview_rows(conn, INTERVALS)
    t1 = time.perf_counter()
    configs, invalid = load_configs()
    t2 = time.perf_counter()
    breakers, breaker_error = read_breakers()
    t3 = time.perf_counter()
    pipelines = build(configs, invalid, rows, now, breakers)
    t4 = time.perf_counter()
    timings = {"sql": t1 - t0, "files": t2 - t1, "breakers": t3 - t2, "build": t4 - t3}
    return Overview(pipelines, now, timings=timings, breaker_error=breaker_error)


def read_detail(name: str, now: datetime | None = None, dsn: str | None = None) -> PipelineDetail:
    """One pipeline's page: its overview row, per-interval history, quarantine reasons, schema changes, and the
    last state changes of its source's circuit breaker."""
    now = now or datetime.now(UTC)
    configs, invalid = load_configs()
    configs, invalid = {k: v for k, v in configs.items() if k == name}, {k: v for k, v in invalid.items() if k == name}
    breakers, breaker_error = read_breakers()
    rows: list[dict[str, Any]] = []
    detail: dict[str, list[dict[str, Any]]] = {}
    warehouse_error = None
    try:
        with warehouse.connect(dsn) as conn:
            rows = [r for r in warehouse.overview_rows(conn, INTERVALS) if r["pipeline"] == name]
            detail = warehouse.detail_rows(conn, name)
    except warehouse.WarehouseUnavailable as exc:
        warehouse_error = str(exc)
    found = build(configs, invalid, rows, now, breakers)
    h = found[0] if found else None
    events: list[dict[str, Any]] = []
    if h is not None and h.breaker_conn and breakers is not None and h.breaker_conn in breakers:
        events = _breaker_events(h.breaker_conn)
    return PipelineDetail(
        h,
        history=detail.get("history", []),
        reasons=detail.get("reasons", []),
        schema_changes=detail.get("schema_changes", []),
        warehouse_error=warehouse_error,
        breaker_events=events,
        breaker_error=breaker_error,
    )


def _breaker_events(conn_id: str, events: int = 20) -> list[dict[str, Any]]:
    from sluice.sources import breaker

    try:
        found = breaker.state(conn_id, events=events)
    except Exception:  # read a moment ago, unreachable now: the page shows the state without its events
        return []
    return found.events if found else []
