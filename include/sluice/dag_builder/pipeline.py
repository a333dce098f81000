"""PipelineConfig -> one Airflow DAG per pipeline file.

Task shape (DESIGN.md): extract_and_stage -> validate_chunk (mapped) -> quality_gate -> load_chunk (mapped) -> finalize.
Tasks receive only the interval, the config (closed over: workers rebuild the same DAG from the same file) and small
XCom values. Stage modules are imported inside the tasks, so parsing a DAG file never imports pyarrow, GX or a driver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import DAG, Asset, get_parsing_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from sluice.config import PipelineConfig
from sluice.dag_builder.common import interval_params, load_configs, resolve_interval, utc_day

if TYPE_CHECKING:  # the values tasks pass through XCom (plain JSON dicts at run time; docs/architecture.md)
    from sluice.loading.duplicates import GatedReport
    from sluice.loading.finalize import RunSummary
    from sluice.loading.postgres import ChunkLoadResult
    from sluice.staging import ChunkRef
    from sluice.validate.chunk import ChunkReport

log = logging.getLogger(__name__)

Result = TypeVar("Result", bound=Mapping[str, Any])

DEADLINE_CALLBACK = "sluice_deadline.on_deadline_missed"


def target_asset(cfg: PipelineConfig) -> Asset:
    t = cfg.target
    return Asset(
        name=f"{t.conn_id}.{t.schema_}.{t.table}", uri=f"sluice://{t.conn_id}/{t.schema_}/{t.table}", group="sluice"
    )


def doc_md(cfg: PipelineConfig) -> str:
    src = cfg.source.model_dump(mode="json", exclude_none=True)  # enums as their values, not <S3Format.csv: ...>
    t = cfg.target
    cols = "\n".join(f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} |" for c in t.columns)
    exps = "\n".join(f"- `{e.type}` {e.kwargs or ''} → **{e.severity.value}**" for e in cfg.expectations) or "- none"
    return (
        f"# {cfg.name}\n\n{cfg.description}\n\n"
        f"**Source** `{cfg.source.kind}`: `{src}`\n\n"
        f"**Target** `{t.schema_}.{t.table}` on `{t.conn_id}`, mode **{t.write_mode.value}**, "
        f"primary key `{', '.join(t.primary_key)}`\n\n| column | type | nullable |\n|---|---|---|\n{cols}\n\n"
        f"**Expectations**\n{exps}\n\n"
        f"Quarantine threshold: {cfg.quality.max_quarantine_fraction:.2%}. Defined in `{cfg.source_file}`."
    )


def default_args(cfg: PipelineConfig) -> dict[str, Any]:
    r = cfg.retries
    args: dict[str, Any] = {
        "owner": cfg.owner,
        "retries": r.retries,
        "retry_delay": timedelta(seconds=r.delay_seconds),
        "retry_exponential_backoff": r.multiplier,
        "max_retry_delay": timedelta(seconds=r.max_delay_seconds),
    }
    if cfg.queue:
        args["queue"] = cfg.queue
    if cfg.alerts.channels:
        from sluice.alerts import make_failure_callback

        secret_conns = [c for c in (getattr(cfg.source, "conn_id", None), cfg.staging.conn_id) if c]
        on_failure, on_retry = make_failure_callback(
            cfg.alerts.channels, cfg.alerts.on_retry, warehouse_conn_id=cfg.target.conn_id, mask_conn_ids=secret_conns
        )
        args["on_failure_callback"] = on_failure
        if on_retry is not None:
            args["on_retry_callback"] = on_retry
    return args


def deadline_alert(cfg: PipelineConfig):
    """Sluice's deadline is "finished within X of the interval's end": a DeadlineAlert on the run's data interval
    end (IntervalEndDeadline, registered by plugins/sluice_deadline.py). Only scheduled runs get one, so a backfill
    of old intervals does not page anybody."""
    if cfg.deadline is None:
        return None
    # airflow/sdk/__init__.pyi of 3.3.2 does not list them (the module exports them lazily)
    from airflow.sdk import AsyncCallback, DeadlineAlert  # type: ignore[attr-defined]

    from sluice.alerts import IntervalEndDeadline, deadline_callback_kwargs

    return DeadlineAlert(
        reference=IntervalEndDeadline(),
        interval=cfg.deadline.after_interval_end,
        callback=AsyncCallback(
            DEADLINE_CALLBACK,
            kwargs=deadline_callback_kwargs(
                cfg.name, cfg.alerts.channels, cfg.deadline.after_interval_end, warehouse_conn_id=cfg.target.conn_id
            ),
        ),
    )


def this_generation(context: dict[str, Any]) -> int:
    return int(context["ti"].xcom_pull(task_ids="extract_and_stage", key="generation") or 0)


def current(values: Iterable[Result] | None, context: dict[str, Any]) -> list[Result]:
    """The mapped results of this generation only. When a cleared run's extraction yields no chunk, Airflow keeps
    the earlier expansion's task instances, and their results (of an earlier generation) would reach the gate."""
    generation = this_generation(context)
    values = list(values or [])
    kept = [v for v in values if int(v.get("generation", generation)) == generation]
    if len(kept) != len(values):
        log.warning("ignored %d result(s) of an earlier generation of this run", len(values) - len(kept))
    return kept


def unretryable(fn: Any, *args: Any) -> Any:
    """Run a stage; an error the stage marks as not retryable (`retryable = False`: a value PostgreSQL refuses, an
    empty source that would empty an interval, a declared column missing from the source) fails the task at once
    instead of burning its retries."""
    try:
        return fn(*args)
    except Exception as exc:
        if getattr(exc, "retryable", True) is False:
            from airflow.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


def source_pool(cfg: PipelineConfig) -> dict[str, Any]:
    """The `pool` argument of extract_and_stage: its source connection's pool, when pools are enabled (pools.py)."""
    from sluice.pools import pools_enabled, source_pool_name

    name = source_pool_name(cfg)
    return {"pool": name} if name and pools_enabled() else {}


def build_dag(cfg: PipelineConfig) -> DAG:
    timetable = CronDataIntervalTimetable(cfg.schedule, timezone="UTC")
    deadline = deadline_alert(cfg)
    dag = DAG(
        dag_id=cfg.name,
        description=(cfg.description or "").splitlines()[0][:200] if cfg.description else None,
        schedule=timetable,
        start_date=utc_day(cfg.start_date),
        end_date=utc_day(cfg.end_date) if cfg.end_date else None,
        catchup=cfg.catchup,
        tags=sorted({"sluice", f"source:{cfg.source.kind}", *cfg.tags}),
        doc_md=doc_md(cfg),
        params=interval_params(),
        default_args=default_args(cfg),
        max_active_runs=4,
        **({"deadline": deadline} if deadline is not None else {}),
    )
    asset = target_asset(cfg)

    with dag:
        # multiple_outputs=False: each task's result is one XCom (return_value), not also one XCom per key
        @task(multiple_outputs=False, **source_pool(cfg))
        def extract_and_stage(**context) -> list[ChunkRef]:
            from sluice import steps

            interval = resolve_interval(context, timetable)
            generation = steps.begin(cfg, interval, context["run_id"])
            context["ti"].xcom_push(key="generation", value=generation)
            log.info(
                "pipeline %s: interval [%s, %s), generation %d", cfg.name, interval.start, interval.end, generation
            )
            return steps.extract(cfg, interval, context["run_id"], generation)

        @task(multiple_outputs=False, map_index_template="chunk {{ task.op_kwargs['chunk']['index'] }}")
        def validate_chunk(chunk: ChunkRef, **context) -> ChunkReport:
            from sluice import steps

            return unretryable(steps.validate, cfg, resolve_interval(context, timetable), context["run_id"], chunk)

        @task(multiple_outputs=False, trigger_rule="none_failed")
        def quality_gate(reports: Iterable[ChunkReport], **context) -> list[GatedReport]:
            from sluice import steps

            interval = resolve_interval(context, timetable)
            gated, notes = unretryable(
                steps.gate, cfg, interval, context["run_id"], this_generation(context), current(reports, context)
            )
            context["ti"].xcom_push(key="gate", value=notes)  # warnings and notes, for finalize's run summary
            return gated

        @task(multiple_outputs=False, map_index_template="chunk {{ task.op_kwargs['report']['index'] }}")
        def load_chunk(report: GatedReport, **context) -> ChunkLoadResult:
            from sluice import steps

            return unretryable(steps.load, cfg, resolve_interval(context, timetable), context["run_id"], report)

        @task(multiple_outputs=False, trigger_rule="none_failed", outlets=[asset])
        def finalize(results: Iterable[ChunkLoadResult], gated: list[GatedReport], **context) -> RunSummary:
            from sluice import steps

            generation = this_generation(context)
            gate = context["ti"].xcom_pull(task_ids="quality_gate", key="gate")
            summary = steps.finalize(
                cfg,
                resolve_interval(context, timetable),
                context["run_id"],
                current(results, context),
                generation,
                current(gated, context),
                gate,
            )
            summary.pop("table", None)  # finalize logged it; the XCom and the Asset event keep the figures
            context["outlet_events"][asset].extra = {
                k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))
            }
            return summary

        # Airflow types a @task call with the function's parameters, but at DAG-build time it takes XComArgs
        chunks = extract_and_stage()
        reports = validate_chunk.expand(chunk=chunks)
        gated = quality_gate(reports)  # type: ignore[arg-type]
        results = load_chunk.expand(report=gated)
        finalize(results, gated)  # type: ignore[arg-type]
    return dag


def register_pipelines(namespace: dict[str, Any]) -> dict[str, DAG]:
    """Build one DAG per valid pipeline into `namespace` (a DAG file's globals). A worker, which runs one task,
    builds only its own DAG. Invalid files are skipped here and reported by dags/sluice_config_errors.py."""
    only = get_parsing_context().dag_id
    result = load_configs(only)
    dags: dict[str, DAG] = {}
    for name, cfg in result.pipelines.items():
        if only and name != only:
            continue
        dags[name] = namespace[f"sluice__{name}"] = build_dag(cfg)
    for path in result.errors:
        log.warning("skipped pipeline file %s: it has errors (see the import errors / `python -m sluice lint`)", path)
    return dags
