"""Sluice's own DAGs beside the pipelines: sluice_maintenance (replay quarantined rows from the trigger form),
sluice_retention (daily staging retention and archive) and sluice_freshness (the freshness watchdog)."""

from __future__ import annotations

import difflib
import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, get_parsing_context, task

from sluice.dag_builder.common import interval_params, load_configs, utc_day

log = logging.getLogger(__name__)

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


RETENTION_DAG = "sluice_retention"
RETENTION_SCHEDULE = "30 3 * * *"


def build_retention_dag() -> DAG:
    """Staging retention and cold archive (sluice/retention.py), daily, for every pipeline: what
    `python -m sluice staging retention` does. A DAG of its own because sluice_maintenance is manual (its trigger
    form is the replay's); a scheduled run there would replay with default params. Ages are judged as of the run's
    `as_of` param, else its run_after, so no task reads the clock. A pipeline that fails is logged and the task
    fails after the others ran (one bad bucket does not stop the rest)."""
    dag = DAG(
        dag_id=RETENTION_DAG,
        description="Delete old committed staged generations (archived first when configured), every pipeline",
        schedule=RETENTION_SCHEDULE,
        start_date=utc_day(datetime(2024, 1, 1)),
        catchup=False,
        max_active_runs=1,
        tags=["sluice", "maintenance"],
        doc_md=build_retention_dag.__doc__,
        params={
            "as_of": Param(
                None,
                type=["null", "string"],
                title="As of (ISO-8601 UTC)",
                description="Judge ages as of this time; empty: the time the run was scheduled for.",
            ),
            "dry_run": Param(False, type="boolean", title="Dry run", description="Report only; delete nothing."),
            "pipeline": Param(
                None,
                type=["null", "string"],
                title="Pipeline",
                description="Only this pipeline (as `--pipeline`); empty: every pipeline.",
            ),
        },
        default_args={"retries": 0},
    )
    with dag:

        @task(execution_timeout=timedelta(hours=3))
        def staging_retention(**context) -> dict:
            from sluice.retention import run_all

            p = context.get("params") or {}
            as_of = datetime.fromisoformat(p["as_of"]) if p.get("as_of") else context["dag_run"].run_after
            if as_of.tzinfo is None:
                raise ValueError(f"param as_of {p['as_of']!r} has no time zone (write e.g. 2026-01-01T00:00:00+00:00)")
            configs = load_configs().pipelines
            if only := p.get("pipeline"):
                if only not in configs:
                    near = difflib.get_close_matches(only, configs, n=1)
                    hint = f"did you mean {near[0]!r}?" if near else f"valid: {', '.join(sorted(configs))}"
                    raise ValueError(f"param pipeline {only!r} is not a valid pipeline; {hint}")
                configs = {only: configs[only]}
            runs = run_all(configs.values(), as_of, dry_run=bool(p.get("dry_run")), echo=log.info)
            done = {cfg.name: r for cfg, r in runs}
            failed = [name for name, r in done.items() if isinstance(r, Exception)]
            if failed:
                raise RuntimeError(f"staging retention failed for {', '.join(failed)} (see the log above)")
            return {name: r.to_dict() for name, r in done.items() if not isinstance(r, Exception)}

        staging_retention()
    return dag


def register_retention(namespace: dict[str, Any]) -> DAG | None:
    """For dags/sluice_retention.py."""
    only = get_parsing_context().dag_id
    if only and only != RETENTION_DAG:
        return None
    dag = namespace[RETENTION_DAG] = build_retention_dag()
    return dag


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
        start_date=utc_day(datetime(2024, 1, 1)),
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
