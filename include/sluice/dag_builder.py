"""PipelineConfig -> Airflow DAG. The one module that knows Airflow's authoring API.

Task shape (DESIGN.md): extract_and_stage -> validate_chunk (mapped) -> quality_gate -> load_chunk (mapped) -> finalize.
Tasks receive only the interval, the config (closed over: workers rebuild the same DAG from the same file) and small
XCom values. Stage modules are imported inside the tasks, so parsing a DAG file never imports pyarrow, GX or a driver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import DAG, Asset, Param, get_parsing_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from sluice import config as sluice_config
from sluice.config import PipelineConfig
from sluice.interval import Interval

if TYPE_CHECKING:  # the values tasks pass through XCom (plain JSON dicts at run time; docs/architecture.md)
    from sluice.loading.duplicates import GatedReport
    from sluice.loading.finalize import RunSummary
    from sluice.loading.postgres import ChunkLoadResult
    from sluice.staging import ChunkRef
    from sluice.validate.chunk import ChunkReport

log = logging.getLogger(__name__)

Result = TypeVar("Result", bound=Mapping[str, Any])

DEADLINE_CALLBACK = "sluice_deadline.on_deadline_missed"


def pipelines_dirs() -> list[Path]:
    """Where pipeline files live: $SLUICE_PIPELINES_DIRS (os.pathsep-separated), else the config loader's default."""
    return sluice_config.pipelines_dirs()


def load_configs(only: str | None = None) -> sluice_config.LoadResult:
    """Load the pipelines of every directory together (so a name used twice anywhere is caught), with the defaults
    of the first directory's config folder. With `only`, a worker loads just the file of the DAG it runs."""
    dirs = pipelines_dirs()
    try:
        defaults, defaults_errors = sluice_config.load_defaults(dirs[0].parent), {}
    except sluice_config.ConfigError as exc:  # reported like a bad pipeline file; the pipelines load without it
        defaults, defaults_errors = sluice_config.Defaults({}), {exc.path: exc}
    if only:
        for d in dirs:
            path = sluice_config.find_pipeline_file(only, d) if d.is_dir() else None
            if path is not None:
                try:
                    cfg = sluice_config.load_pipeline(path, defaults)
                except sluice_config.ConfigError:
                    break
                if cfg.name == only:
                    return sluice_config.LoadResult(pipelines={only: cfg})
    files = [f for d in dirs if d.is_dir() for f in sluice_config.pipeline_files(d)]
    result = sluice_config.load_paths(files, defaults)
    result.errors = {**defaults_errors, **result.errors}
    return result


class PipelineFilesInvalid(Exception):
    """Raised by dags/sluice_config_errors.py so that Airflow shows it as that file's import error."""

    def __init__(self, errors: Mapping[str, Exception]):
        self.errors = errors
        body = "\n\n".join(str(e) for e in errors.values())
        super().__init__(
            f"{len(errors)} pipeline file(s) invalid; their DAGs are not loaded, every other pipeline "
            f"is unaffected. Check them with `python -m sluice lint`.\n\n{body}"
        )


def interval_params() -> dict[str, Param]:
    doc = (
        "ISO-8601 UTC timestamp, e.g. 2024-01-01T00:00:00+00:00. Leave both interval fields empty to process the "
        "run's data interval (a manual run without a logical date takes the latest complete interval)."
    )
    return {
        "interval_start": Param(
            None,
            type=["null", "string"],
            title="Interval start (inclusive)",
            description=f"Start of the data interval to process. {doc}",
        ),
        "interval_end": Param(
            None,
            type=["null", "string"],
            title="Interval end (exclusive)",
            description=f"End of the data interval to process. {doc}",
        ),
    }


def resolve_interval(context: dict[str, Any], timetable: CronDataIntervalTimetable) -> Interval:
    """The run's interval: the trigger form's params, else the run's data interval, else the latest complete
    interval before the run was created (recorded in the run, so a retry computes the same interval)."""
    params = context.get("params") or {}
    start, end = params.get("interval_start"), params.get("interval_end")
    if start or end:
        if not (start and end):
            raise ValueError("set both interval_start and interval_end, or neither")
        return Interval(datetime.fromisoformat(start), datetime.fromisoformat(end))
    dis, die = context.get("data_interval_start"), context.get("data_interval_end")
    if dis is not None and die is not None and die > dis:
        return Interval(dis, die)
    run_after = context["dag_run"].run_after
    inferred = timetable.infer_manual_data_interval(run_after=run_after)
    return Interval(inferred.start, inferred.end)


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


def _pendulum(value) -> Any:
    import pendulum

    return pendulum.datetime(value.year, value.month, value.day, tz="UTC")


def build_dag(cfg: PipelineConfig) -> DAG:
    timetable = CronDataIntervalTimetable(cfg.schedule, timezone="UTC")
    deadline = deadline_alert(cfg)
    dag = DAG(
        dag_id=cfg.name,
        description=(cfg.description or "").splitlines()[0][:200] if cfg.description else None,
        schedule=timetable,
        start_date=_pendulum(cfg.start_date),
        end_date=_pendulum(cfg.end_date) if cfg.end_date else None,
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


MAINTENANCE_DAG = "sluice_maintenance"


def maintenance_params(pipelines: list[str]) -> dict[str, Param]:
    """The trigger form of sluice_maintenance: what `python -m sluice quarantine replay` takes."""
    return {
        "pipeline": Param(
            pipelines[0] if pipelines else "",
            type="string",
            enum=pipelines or [""],
            title="Pipeline",
            description="Replay the pending quarantined rows of this pipeline with its current config.",
        ),
        **interval_params(),
        "reason": Param(
            None,
            type=["null", "string"],
            title="Reason contains",
            description="Only rows with a reason containing this text (as `--reason`); empty for all.",
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Validate and count, load nothing."),
    }


def build_maintenance_dag(pipelines: list[str]) -> DAG:
    """sluice_maintenance: manual runs only; `replay_quarantine` does what `python -m sluice quarantine replay`
    does, with the trigger form's params (the result, counts and reasons, is the task's XCom and log)."""
    dag = DAG(
        dag_id=MAINTENANCE_DAG,
        description="Replay quarantined rows (one click for `python -m sluice quarantine replay`)",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        tags=["sluice", "maintenance"],
        params=maintenance_params(pipelines),
        max_active_runs=1,
    )
    with dag:

        @task
        def replay_quarantine(**context) -> dict:
            from sluice.connections import pg_dsn
            from sluice.validate.replay import replay

            p = context["params"]
            cfg = load_configs().pipelines[p["pipeline"]]
            filters = {"pipeline": cfg.name, "status": None, "reason": p.get("reason") or None}
            filters["since"] = p.get("interval_start") or None
            filters["until"] = p.get("interval_end") or None
            result = replay(cfg, pg_dsn(cfg.target.conn_id), filters, dry_run=bool(p.get("dry_run"))).to_dict()
            log.info("replay of %s: %s", cfg.name, result)
            return result

        replay_quarantine()
    return dag


def register_maintenance(namespace: dict[str, Any]) -> DAG | None:
    """For dags/sluice_maintenance.py: the maintenance DAG, its pipeline choice from every valid pipeline file."""
    only = get_parsing_context().dag_id
    if only and only != MAINTENANCE_DAG:
        return None
    dag = namespace["sluice__maintenance"] = build_maintenance_dag(sorted(load_configs().pipelines))
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


def raise_config_errors() -> None:
    """For dags/sluice_config_errors.py: turn every invalid pipeline file into one import error that names the
    files, lines, fields and fixes, while the valid pipelines' DAGs keep working (they live in another file)."""
    if get_parsing_context().dag_id:
        return
    result = load_configs()
    if result.errors:
        raise PipelineFilesInvalid(result.errors)


FRESHNESS_DAG = "sluice_freshness"
FRESHNESS_SCHEDULE = "*/5 * * * *"


def build_freshness_dag() -> DAG:
    """The freshness watchdog (alerts/watchdog.py): one small task every few minutes over every pipeline with
    `freshness.max_lag`. Its "now" is the run's `now` param, else the time the run was scheduled for (run_after), so a
    test or an operator can ask "as of when?" and no task reads the clock."""
    dag = DAG(
        dag_id=FRESHNESS_DAG,
        description="Freshness watchdog: alerts when a pipeline's loaded data is older than its freshness.max_lag",
        schedule=FRESHNESS_SCHEDULE,
        start_date=_pendulum(datetime(2024, 1, 1)),
        catchup=False,
        max_active_runs=1,
        tags=["sluice", "ops"],
        doc_md=build_freshness_dag.__doc__,
        params={
            "now": Param(
                None,
                type=["null", "string"],
                title="As of (ISO-8601 UTC)",
                description="Judge freshness as of this time; empty: the time the run was scheduled for.",
            )
        },
        default_args={"retries": 0},
    )
    with dag:

        @task(execution_timeout=timedelta(minutes=4))
        def check_freshness(**context) -> dict[str, str]:
            from sluice.alerts.watchdog import check_all

            raw = (context.get("params") or {}).get("now")
            now = datetime.fromisoformat(raw) if raw else context["dag_run"].run_after
            if now.tzinfo is None:
                raise ValueError(f"param now {raw!r} has no time zone (write e.g. 2026-01-01T06:00:00+00:00)")
            return check_all(load_configs().pipelines.values(), now)

        check_freshness()
    return dag


def register_freshness_watchdog(namespace: dict[str, Any]) -> DAG:
    """For dags/sluice_freshness.py."""
    dag = namespace[FRESHNESS_DAG] = build_freshness_dag()
    return dag
