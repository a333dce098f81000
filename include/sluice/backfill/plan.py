"""`backfill plan`: the state of every interval of a pipeline's schedule in a date range, from Sluice's own records.

Per interval, the latest generation's row of `sluice.run_summary` (any run: scheduled, manual, backfill, `sluice
run`) and its ledger rows say what happened: loaded, failed, quarantined (the gate refused the run for its quarantined
share, or a load's share is above today's threshold), running, or missing (no record). For S3 sources, what the loaded
generation read is compared with the bucket now, from one paginated listing of the prefix's static part for the whole
range, grouped into intervals in memory: against the source fingerprint finalize recorded in run_summary (a hash over
the objects' key, size and ETag; sources.fingerprint), or, for generations loaded before Sluice recorded it, against
the objects in the generation's staging manifest (one GET each). `changed` when a key was added, removed or rewritten
since the load; `unknown` for other sources and for generations with neither record.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sluice import schedule
from sluice.interval import Interval

if TYPE_CHECKING:
    from sluice.config import PipelineConfig

MANIFEST_READERS = 16


class State(StrEnum):
    loaded = "loaded"
    missing = "missing"
    failed = "failed"
    quarantined = "quarantined"
    running = "running"


class Source(StrEnum):
    changed = "changed"
    unchanged = "unchanged"
    unknown = "unknown"


SELECTABLE = (*(s.value for s in State), "changed")


class PlanError(ValueError):
    """The range or the pipeline cannot be planned; the message says what to change."""


@dataclass
class IntervalState:
    interval: Interval
    state: State
    source: Source | None = None  # only for loaded intervals
    run_id: str | None = None
    generation: int | None = None
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    note: str = ""
    fingerprint: str | None = None  # of the source the generation read (run_summary), not part of the output
    object_count: int | None = None

    def selected_by(self, only: set[str]) -> bool:
        return self.state.value in only or ("changed" in only and self.source is Source.changed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["fingerprint"], d["object_count"]
        d["interval"] = self.interval.to_dict()
        d["state"] = self.state.value
        d["source"] = self.source.value if self.source else None
        return d


@dataclass
class BackfillPlan:
    pipeline: str
    first: date
    last: date
    intervals: list[IntervalState] = field(default_factory=list)
    skipped_incomplete: int = 0  # intervals in the range that have not ended yet
    profile: dict[str, float] = field(default_factory=dict)  # plan_backfill's seconds per part, manifests read

    def totals(self) -> dict[str, int]:
        out = {s.value: 0 for s in State}
        for i in self.intervals:
            out[i.state.value] += 1
        out["changed"] = sum(i.source is Source.changed for i in self.intervals)
        out["total"] = len(self.intervals)
        return out

    def select(self, only: set[str]) -> list[IntervalState]:
        return [i for i in self.intervals if i.selected_by(only)]

    def to_json(self) -> str:
        return json.dumps(
            {
                "pipeline": self.pipeline,
                "from": self.first.isoformat(),
                "to": self.last.isoformat(),
                "intervals": [i.to_dict() for i in self.intervals],
                "totals": self.totals(),
                "skipped_incomplete": self.skipped_incomplete,
            },
            indent=2,
        )

    def table(self) -> str:
        head = ("interval start", "state", "source", "rows in", "loaded", "quarantined", "generation", "note")
        body = [
            (
                i.interval.start.strftime("%Y-%m-%d %H:%M"),
                i.state.value,
                i.source.value if i.source else "-",
                str(i.rows_in) if i.run_id else "-",
                str(i.rows_loaded) if i.run_id else "-",
                str(i.rows_quarantined) if i.run_id else "-",
                str(i.generation) if i.generation is not None else "-",
                i.note,
            )
            for i in self.intervals
        ]
        widths = [max(len(h), *(len(r[n]) for r in body)) if body else len(h) for n, h in enumerate(head)]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in [head, *body]]
        t = self.totals()
        lines.append(
            f"{t['total']} interval(s): "
            + ", ".join(f"{t[s.value]} {s.value}" for s in State)
            + f"; {t['changed']} loaded from a source that changed since"
            + (f"; {self.skipped_incomplete} not complete yet (skipped)" if self.skipped_incomplete else "")
        )
        return "\n".join(lines)


def _day(d: date | datetime) -> date:
    return d.date() if isinstance(d, datetime) else d


def intervals_in_range(
    cfg: PipelineConfig, first: date, last: date, now: datetime | None = None
) -> tuple[list[Interval], int]:
    """The complete intervals whose start is in [first, last], and how many in the range have not ended yet;
    PlanError for an empty, reversed or future range."""
    now = now or datetime.now(UTC)
    if last < first:
        raise PlanError(f"--to {last} is before --from {first}: give the earlier date first")
    if datetime.combine(first, datetime.min.time(), tzinfo=UTC) > now:
        raise PlanError(f"--from {first} is in the future: only intervals that have ended can be backfilled")
    found = schedule.intervals_between(cfg, first, last)
    complete = [i for i in found if i.end <= now]
    if not complete:
        why = (
            "none of them has ended yet"
            if found
            else f"the schedule {cfg.schedule!r} has none there (start_date {cfg.start_date}"
            + (f", end_date {cfg.end_date}" if cfg.end_date else "")
            + ")"
        )
        raise PlanError(f"pipeline {cfg.name}: no interval starts between {first} and {last}: {why}")
    return complete, len(found) - len(complete)


def _warehouse_dsn(conn_id: str) -> str:
    from airflow.exceptions import AirflowNotFoundException

    from sluice.connections import pg_dsn

    try:
        return pg_dsn(conn_id)
    except AirflowNotFoundException as exc:
        raise PlanError(
            f"the warehouse connection {conn_id!r} is not defined here: run `make up` and "
            f"`set -a; source .sluice/env; set +a` (or set AIRFLOW_CONN_{conn_id.upper()}) first"
        ) from exc


def _read_summaries(cfg: PipelineConfig, intervals: list[Interval], dsn: str) -> dict:
    import psycopg

    try:
        return summaries(dsn, cfg.name, intervals)
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PlanError(
            f"the warehouse (connection {cfg.target.conn_id!r}) is not reachable: {first_line}; is the stack up?"
        ) from exc


def summaries(dsn: str, pipeline: str, intervals: list[Interval]) -> dict[tuple[datetime, datetime], dict]:
    """The latest generation's summary of each interval (plus its ledger chunk count), keyed by (start, end)."""
    import psycopg
    from psycopg.rows import dict_row

    from sluice.loading import sql as q

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        if not q.scalar(conn.execute("SELECT to_regclass('sluice.run_summary') IS NOT NULL")):
            return {}
        rows = conn.cursor(row_factory=dict_row).execute(
            q.interval_states(), {"pipeline": pipeline, "lo": intervals[0].start, "hi": intervals[-1].start}
        )
        return {(r["interval_start"], r["interval_end"]): r for r in rows}


def classify(cfg: PipelineConfig, interval: Interval, row: dict | None) -> IntervalState:
    """One interval's state from its latest summary row (None: no record)."""
    if row is None:
        return IntervalState(interval, State.missing)
    st = IntervalState(
        interval,
        State.failed,
        run_id=row["run_id"],
        generation=int(row["generation"]),
        rows_in=int(row["rows_in"]),
        rows_loaded=int(row["rows_loaded"]),
        rows_quarantined=int(row["rows_quarantined"]),
        fingerprint=row.get("source_fingerprint"),
        object_count=row.get("source_object_count"),
    )
    status = row["status"]
    problems = row.get("problems") or []
    share = st.rows_quarantined / st.rows_in if st.rows_in else 0.0
    if status == "success":
        if share > cfg.quality.max_quarantine_fraction:
            st.state = State.quarantined
            st.note = (
                f"{share:.2%} quarantined, above max_quarantine_fraction {cfg.quality.max_quarantine_fraction:.2%}"
            )
        elif int(row["ledger_chunks"]) < int(row["chunks"]):
            st.note = f"the ledger has {row['ledger_chunks']} of {row['chunks']} chunks"
        else:
            st.state = State.loaded
    elif status == "running":
        st.state = State.running
        st.note = f"since {row['finished_at']:%Y-%m-%d %H:%M} UTC"
    elif status == "quarantined":
        st.state = State.quarantined
        st.note = f"{share:.2%} quarantined; the quality gate refused the run"
    else:
        st.note = (problems[0] if problems else "failed").splitlines()[0][:100]
    return st


def check_sources(cfg: PipelineConfig, states: list[IntervalState], profile: dict[str, float] | None = None) -> None:
    """Set `source` of every loaded interval: changed / unchanged (S3), else unknown (see the module docstring).
    `profile` gets the seconds of the listing, of the in-memory comparison and of the manifest reads."""
    profile = {} if profile is None else profile
    loaded = [s for s in states if s.state is State.loaded]
    if not loaded:
        return
    if cfg.source.kind != "s3":
        for s in loaded:
            s.source = Source.unknown
        return
    from sluice.config import render_many
    from sluice.sources.fingerprint import fingerprint, group_by_prefix
    from sluice.sources.s3 import list_objects

    src = cfg.source
    t = time.perf_counter()
    prefixes = [p.lstrip("/") for p in render_many(src.prefix, (s.interval for s in loaded))]
    profile["classification"] = profile.get("classification", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    listing = list_objects(src.conn_id, src.bucket, os.path.commonprefix(prefixes))  # the range's part of the bucket
    profile["listing"] = time.perf_counter() - t

    t = time.perf_counter()
    current = group_by_prefix(listing, prefixes, src.pattern)
    unrecorded = []
    for s, now in zip(loaded, current, strict=True):
        if s.fingerprint is None:
            unrecorded.append((s, now))
        elif fingerprint(now) == s.fingerprint:
            s.source = Source.unchanged
        else:
            s.source = Source.changed
            s.note = f"source changed: {s.object_count} object(s) at the load, {len(now)} now"
    profile["classification"] = profile.get("classification", 0.0) + time.perf_counter() - t

    t = time.perf_counter()
    if unrecorded:
        with ThreadPoolExecutor(MANIFEST_READERS) as pool:
            manifests = list(pool.map(lambda r: _manifest(cfg, r[0]), unrecorded))
        for (s, now), m in zip(unrecorded, manifests, strict=True):
            _compare(s, now, m)
    profile["manifests"] = time.perf_counter() - t
    profile["manifests_read"] = len(unrecorded)


def _manifest(cfg: PipelineConfig, s: IntervalState) -> dict | None:
    from sluice.staging import StagingError, StagingStore

    try:
        return StagingStore(cfg.staging, cfg.name, s.interval, s.run_id or "", s.generation).read_manifest()
    except (StagingError, OSError):
        return None


def _compare(s: IntervalState, now: list[dict], manifest: dict | None) -> None:
    """A generation without a recorded fingerprint: the manifest's objects against the bucket's."""
    if manifest is None or "source_objects" not in manifest:
        s.source, s.note = Source.unknown, "no source listing in the manifest"
        return
    then = {o["key"]: (o["size"], o["etag"]) for o in manifest["source_objects"]}
    current = {o["key"]: (o["size"], o["etag"]) for o in now}
    if then == current:
        s.source = Source.unchanged
        return
    s.source = Source.changed
    added, removed = len(current.keys() - then.keys()), len(then.keys() - current.keys())
    rewritten = sum(1 for k in current.keys() & then.keys() if current[k] != then[k])
    s.note = f"source changed: {added} added, {removed} removed, {rewritten} rewritten"


def plan_backfill(
    cfg: PipelineConfig, first: date, last: date, now: datetime | None = None, dsn: str | None = None
) -> BackfillPlan:
    """Classify every complete interval of the range (see the module docstring)."""
    first, last = _day(first), _day(last)
    intervals, incomplete = intervals_in_range(cfg, first, last, now)
    profile: dict[str, float] = {}
    t = time.perf_counter()
    rows = _read_summaries(cfg, intervals, dsn or _warehouse_dsn(cfg.target.conn_id))
    profile["warehouse"] = time.perf_counter() - t
    t = time.perf_counter()
    states = [classify(cfg, i, rows.get((i.start, i.end))) for i in intervals]
    profile["classification"] = time.perf_counter() - t
    check_sources(cfg, states, profile)
    return BackfillPlan(cfg.name, first, last, states, incomplete, profile)
