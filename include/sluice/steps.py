"""The five stages of a run as plain functions: what each Airflow task calls (dag_builder) and what
`python -m sluice run` calls in-process, so both take the same path through the code.

    begin + extract -> validate (per chunk) -> gate -> load (per chunk) -> finalize

Every stage records its outcome in the generation's row of `sluice.run_summary`: `running` when the generation
begins, `failed` (with the error) when a stage raises, `quarantined` when the gate refuses the run for its
quarantined share, and finalize's `success` or `failed`. That is what `backfill plan` reads. Nothing here knows
Airflow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sluice.config import PipelineConfig
    from sluice.interval import Interval
    from sluice.loading.duplicates import GatedReport
    from sluice.loading.finalize import GateNotes, RunSummary
    from sluice.loading.postgres import ChunkLoadResult
    from sluice.sources.fingerprint import SourceRecord
    from sluice.staging import ChunkRef
    from sluice.validate.chunk import ChunkReport

log = logging.getLogger(__name__)

T = TypeVar("T")


def _dsn(cfg: PipelineConfig) -> str:
    from sluice.connections import pg_dsn

    return pg_dsn(cfg.target.conn_id)


def begin(cfg: PipelineConfig, interval: Interval, run_id: str) -> int:
    """A new load generation for this extraction, recorded as `running` in the run's summary row."""
    import psycopg

    from sluice.loading import sql as q
    from sluice.loading.ledger import new_generation
    from sluice.loading.target import Target

    dsn = _dsn(cfg)
    generation = new_generation(dsn)
    params = {
        "pipeline": cfg.name,
        "run_id": run_id,
        "target": Target.of(cfg).name,
        "interval_start": interval.start,
        "interval_end": interval.end,
        "generation": generation,
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(q.run_started_upsert(), params)
    return generation


def record_status(
    cfg: PipelineConfig,
    run_id: str,
    generation: int,
    status: str,
    problem: str,
    rows_in: int = 0,
    rows_quarantined: int = 0,
) -> None:
    """Mark the generation `failed` or `quarantined`. Never raises: the stage's own error is what matters."""
    try:
        import psycopg
        from psycopg.types.json import Jsonb

        from sluice.loading import sql as q

        with psycopg.connect(_dsn(cfg), autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                q.run_status_update(),
                {
                    "pipeline": cfg.name,
                    "run_id": run_id,
                    "generation": generation,
                    "status": status,
                    "problems": Jsonb([problem[:2000]]),
                    "rows_in": rows_in,
                    "rows_quarantined": rows_quarantined,
                },
            )
    except Exception as exc:  # the warehouse may be what failed
        log.warning("could not record status %s of %s run %s: %s", status, cfg.name, run_id, exc)


def _recorded(cfg: PipelineConfig, run_id: str, generation: int, fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except Exception as exc:
        record_status(cfg, run_id, generation, "failed", f"{type(exc).__name__}: {exc}")
        raise


def extract(cfg: PipelineConfig, interval: Interval, run_id: str, generation: int) -> list[ChunkRef]:
    """Stream the source into staged Parquet chunks (staging.extract_and_stage)."""
    from sluice.staging import extract_and_stage

    return _recorded(cfg, run_id, generation, extract_and_stage, cfg, interval, run_id, generation)


def validate(cfg: PipelineConfig, interval: Interval, run_id: str, chunk: ChunkRef) -> ChunkReport:
    """Cast and check one chunk (validate.chunk.validate_chunk)."""
    from sluice.validate.chunk import validate_chunk

    return _recorded(cfg, run_id, int(chunk.get("generation") or 0), validate_chunk, cfg, interval, run_id, chunk)


def quarantine_share(reports: Sequence[ChunkReport]) -> tuple[int, int]:
    """(rows in, rows quarantined) over a generation's chunk reports."""
    return sum(int(r["rows_in"]) for r in reports), sum(int(r["rows_quarantined"]) for r in reports)


def data_docs(
    cfg: PipelineConfig, interval: Interval, run_id: str, generation: int, reports: Sequence[ChunkReport]
) -> str | None:
    """Render the run's GX Data Docs once, before the gate decides (so a failure alert's link finds them), and log
    their link. Best effort: a page that cannot be rendered is logged, it never fails the run."""
    from sluice.staging import StagingStore
    from sluice.validate.docs import docs_url, write_run_docs

    started = time.perf_counter()
    try:
        store = StagingStore(cfg.staging, cfg.name, interval, run_id, generation)
        key = write_run_docs(cfg, store, [str(r.get("gx_key") or "") for r in reports])
    except Exception as exc:  # the docs are a view of the results; the gate must still decide
        log.warning("Data Docs of this run not rendered: %r", exc)
        return None
    if key is None:
        return None
    log.info(
        "Data Docs of this run (GX validation results of %d chunk(s), rendered in %.2fs): %s (stored at %s)",
        sum(1 for r in reports if r.get("gx_key")),
        time.perf_counter() - started,
        docs_url(cfg.name, interval, run_id),
        key,
    )
    return key


def gate(
    cfg: PipelineConfig, interval: Interval, run_id: str, generation: int, reports: Sequence[ChunkReport]
) -> tuple[list[GatedReport], GateNotes]:
    """The quality gate (with `history:`, its checks against the pipeline's last successful loads), the guard against
    emptying a replace_interval interval, and the run-wide duplicate rule; returns the reports to load, each with its
    superseded rows marked, and the gate's warnings and notes (warnings also go out as one quality-warning alert)."""
    from sluice.loading.duplicates import mark_superseded
    from sluice.loading.finalize import refuse_emptying
    from sluice.staging import StagingStore
    from sluice.validate.gate import QualityGateFailed, run_gate
    from sluice.validate.history import read_history

    rows_in, bad = quarantine_share(reports)
    data_docs(cfg, interval, run_id, generation, reports)
    history = _recorded(cfg, run_id, generation, read_history, cfg, interval) if cfg.history else None
    try:
        result = run_gate(cfg, list(reports), history)
    except QualityGateFailed as exc:
        over = rows_in and (bad == rows_in or bad / rows_in > cfg.quality.max_quarantine_fraction)
        record_status(cfg, run_id, generation, "quarantined" if over else "failed", str(exc), rows_in, bad)
        raise
    gated = result.reports
    notes: GateNotes = {"warnings": list(result.warnings), "notes": list(result.notes)}
    if result.warnings and cfg.alerts.channels:
        from sluice.alerts import notify_quality_warning

        notify_quality_warning(cfg.name, cfg.alerts.channels, result.warnings, run_id, interval, gated)

    def store_for(report: ChunkReport) -> StagingStore:
        return StagingStore(cfg.staging, cfg.name, interval, run_id, report.get("generation"))

    def rest() -> list[GatedReport]:
        refuse_emptying(cfg, interval, gated)
        keys = cfg.target.primary_key if cfg.target.write_mode.value != "append" else []
        return mark_superseded(store_for, gated, keys)

    return _recorded(cfg, run_id, generation, rest), notes


def load(cfg: PipelineConfig, interval: Interval, run_id: str, report: GatedReport) -> ChunkLoadResult:
    """Load one chunk exactly once (loading.postgres.load_chunk)."""
    from sluice.loading.postgres import load_chunk

    return _recorded(cfg, run_id, int(report.get("generation") or 0), load_chunk, cfg, interval, run_id, report)


def finalize(
    cfg: PipelineConfig,
    interval: Interval,
    run_id: str,
    results: Sequence[ChunkLoadResult],
    generation: int,
    gated: Sequence[GatedReport] = (),
    gate: GateNotes | None = None,
) -> RunSummary:
    """Conservation from the ledger and the run summary (loading.finalize.finalize, which records the status, the
    gate's warnings and notes, the fingerprint of the objects read and, for a run that adds up, the interval's column
    figures for later history checks)."""
    from sluice.loading.finalize import finalize as run
    from sluice.validate.gate import interval_figures

    figures = interval_figures(cfg, list(gated))

    def run_finalize() -> RunSummary:
        source = source_record(cfg, interval, run_id, generation)
        return run(cfg, interval, run_id, results, generation, figures=figures, gate=gate, source=source)

    return _recorded(cfg, run_id, generation, run_finalize)


def source_record(cfg: PipelineConfig, interval: Interval, run_id: str, generation: int) -> SourceRecord:
    """The fingerprint of the objects this generation read, from its staging manifest (S3 sources; one GET). A
    manifest that cannot be read gives no record, not a failed run: `backfill plan` then reads the manifest itself."""
    from sluice.sources.fingerprint import record_of
    from sluice.staging import StagingError, StagingStore

    if cfg.source.kind != "s3":
        return record_of(None)
    try:
        manifest = StagingStore(cfg.staging, cfg.name, interval, run_id, generation).read_manifest()
    except (StagingError, OSError) as exc:
        log.warning("no source fingerprint for %s run %s generation %d: %s", cfg.name, run_id, generation, exc)
        return record_of(None)
    return record_of(manifest.get("source_objects"))
