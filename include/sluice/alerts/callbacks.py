"""Entry points: task failure/retry callbacks, the deadline callback the triggerer awaits, and the deadline
reference that counts from the data interval's end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import quote

# airflow/sdk/__init__.pyi of 3.3.2 does not list it (the module exports it lazily)
from airflow.sdk import BaseDeadlineReference  # type: ignore[attr-defined]

from sluice.alerts.delivery import SEND_BUDGET, send_alert
from sluice.alerts.formats import cut
from sluice.alerts.freshness import DB_TIMEOUT, read_warehouse
from sluice.alerts.model import ERROR_MAX, AlertContext, AlertKind, Rows, connection_secrets, mask_secrets

log = logging.getLogger(__name__)


def _dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            return _dt(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _task_instance(context: Mapping[str, Any]) -> Any:
    """The callback context's task instance (Airflow passes it as `ti` and as `task_instance`)."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        raise ValueError("the callback context holds no task instance")
    return ti


def run_url(dag_id: str, run_id: str | None) -> str | None:
    """Airflow 3 UI link to a DAG run (the task log link comes from `ti.log_url`, same base)."""
    if not run_id:
        return None
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - core-only process
        from airflow.configuration import conf
    base = conf.get("api", "base_url", fallback=None) or "http://localhost:8080/"
    return f"{base.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id)}"


def task_alert_context(
    context: Mapping[str, Any], kind: AlertKind, *, rows: Rows | None = None, secrets: Iterable[str] = ()
) -> AlertContext:
    """AlertContext from an Airflow task callback context (the interval comes from the trigger params if set)."""
    ti = _task_instance(context)
    params = context.get("params") or {}
    task = context.get("task")
    exc = context.get("exception")
    error = None
    if exc is not None:
        text = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
        error = cut(mask_secrets(text, secrets), ERROR_MAX)  # mask before cutting: a cut secret escapes masks
    map_index = getattr(ti, "map_index", None)
    retries = getattr(task, "retries", None)
    start = _dt(params.get("interval_start")) or _dt(context.get("data_interval_start"))
    end = _dt(params.get("interval_end")) or _dt(context.get("data_interval_end"))
    return AlertContext(
        pipeline=ti.dag_id,
        kind=kind,
        run_id=ti.run_id,
        task_id=ti.task_id,
        interval_start=start,
        interval_end=end,
        map_index=map_index if isinstance(map_index, int) and map_index >= 0 else None,
        try_number=getattr(ti, "try_number", None),
        max_tries=retries + 1 if isinstance(retries, int) else None,
        error=error,
        log_url=getattr(ti, "log_url", None),
        run_url=run_url(ti.dag_id, ti.run_id),
        docs_url=_docs_url(ti.dag_id, ti.run_id, start, end),
        rows=rows,
    )


def _docs_url(dag_id: str, run_id: str | None, start: datetime | None, end: datetime | None) -> str | None:
    """Link to the run's Data Docs (served by the Sluice page, which renders them if the gate did not)."""
    if start is None or end is None or end <= start or not run_id:
        return None
    from sluice.interval import Interval
    from sluice.validate.docs import docs_url

    return docs_url(dag_id, Interval(start, end), run_id)


def _extracted(ti: Any, task_id: str | None) -> int | None:
    try:
        refs = ti.xcom_pull(task_ids=task_id) if task_id else None
        return sum(int(r["rows"]) for r in refs) if isinstance(refs, list) else None
    except Exception:
        return None


class FailureCallbacks(NamedTuple):
    on_failure_callback: Callable[[Mapping[str, Any]], None]
    on_retry_callback: Callable[[Mapping[str, Any]], None] | None


def make_failure_callback(
    channels: list[str],
    on_retry: bool = False,
    *,
    warehouse_conn_id: str | None = "sluice_warehouse",
    mask_conn_ids: Sequence[str] = (),
    extract_task_id: str | None = "extract_and_stage",
    ledger_schema: str = "sluice",
) -> FailureCallbacks:
    """Task callbacks for one pipeline. `mask_conn_ids`: the pipeline's other connections (source, staging),
    whose secrets are masked out of error text."""

    def notify(context: Mapping[str, Any], kind: AlertKind) -> None:
        try:
            secrets = connection_secrets([*channels, warehouse_conn_id or "", *mask_conn_ids])
            ti = _task_instance(context)
            rows = None
            if warehouse_conn_id:
                _, rows = read_warehouse(warehouse_conn_id, ti.dag_id, ti.run_id, schema=ledger_schema, freshness=False)
            if (extracted := _extracted(ti, extract_task_id)) is not None:
                rows = replace(rows or Rows(), extracted=extracted)
            send_alert(task_alert_context(context, kind, rows=rows, secrets=secrets), channels, secrets=secrets)
        except Exception as exc:  # never raise into the task being reported on
            log.error("Sluice %s alert not sent: %s", kind.value, mask_secrets(repr(exc)))

    def on_failure_callback(context: Mapping[str, Any]) -> None:
        notify(context, AlertKind.FAILURE)

    def on_retry_callback(context: Mapping[str, Any]) -> None:
        notify(context, AlertKind.RETRY)

    return FailureCallbacks(on_failure_callback, on_retry_callback if on_retry else None)


def notify_quality_warning(
    pipeline: str, channels: Sequence[str], warnings: Sequence[str], run_id: str | None, interval: Any, reports: list
) -> dict[str, str]:
    """One message per channel when the quality gate let a run load with warnings (a history check with severity
    warn, a batch expectation with severity warn): the warnings name the check, the value and what it was compared
    with. Never raises."""
    try:
        secrets = connection_secrets(channels)
        ctx = AlertContext(
            pipeline=pipeline,
            kind=AlertKind.QUALITY_WARNING,
            run_id=run_id,
            interval_start=interval.start,
            interval_end=interval.end,
            error=cut(mask_secrets("\n".join(f"- {w}" for w in warnings), secrets), ERROR_MAX),
            run_url=run_url(pipeline, run_id),
            docs_url=_docs_url(pipeline, run_id, interval.start, interval.end),
            rows=Rows(
                extracted=sum(int(r["rows_in"]) for r in reports),
                quarantined=sum(int(r["rows_quarantined"]) for r in reports),
                chunks=len(reports),
            ),
        )
        outcome = send_alert(ctx, channels, secrets=secrets)
        log.info("quality warning alert for %s: %s", pipeline, outcome)
        return outcome
    except Exception as exc:
        log.error("Sluice quality warning for %s not sent: %s", pipeline, mask_secrets(repr(exc)))
        return {}


def notify_deadline_missed(
    pipeline: str,
    channels: Sequence[str],
    context: Mapping[str, Any] | None = None,
    *,
    deadline: str = "",
    warehouse_conn_id: str | None = "sluice_warehouse",
    ledger_schema: str = "sluice",
) -> dict[str, str]:
    """Blocking body of the deadline callback; `context` is what Airflow's scheduler hands the triggerer."""
    dag_run = dict((context or {}).get("dag_run") or {})
    missed = dict((context or {}).get("deadline") or {})
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
    secrets = connection_secrets([*channels, warehouse_conn_id or ""])
    fresh, rows = (
        read_warehouse(warehouse_conn_id, pipeline, run_id, schema=ledger_schema) if warehouse_conn_id else (None, None)
    )
    ctx = AlertContext(
        pipeline=pipeline,
        kind=AlertKind.DEADLINE_MISSED,
        run_id=run_id,
        run_state=dag_run.get("state"),
        interval_start=_dt(dag_run.get("data_interval_start")),
        interval_end=_dt(dag_run.get("data_interval_end")),
        run_url=run_url(dag_run.get("dag_id") or pipeline, run_id),
        rows=rows,
        freshness=fresh,
        deadline_time=_dt(missed.get("deadline_time")),
        deadline=deadline or None,
    )
    return send_alert(ctx, channels, secrets=secrets)


async def on_deadline_missed(
    pipeline: str,
    channels: list[str],
    deadline: str = "",
    warehouse_conn_id: str | None = "sluice_warehouse",
    ledger_schema: str = "sluice",
    context: dict[str, Any] | None = None,
    **unknown: Any,
) -> str:
    """AsyncCallback target, run by the triggerer as `await on_deadline_missed(**kwargs, context=context)`.
    Blocking work runs in a thread so the triggerer's event loop keeps serving other triggers."""
    if unknown:
        log.warning("on_deadline_missed ignores unknown kwargs %s", sorted(unknown))
    try:
        results = await asyncio.wait_for(
            asyncio.to_thread(
                notify_deadline_missed,
                pipeline,
                channels,
                context,
                deadline=deadline,
                warehouse_conn_id=warehouse_conn_id,
                ledger_schema=ledger_schema,
            ),
            SEND_BUDGET + 2 * DB_TIMEOUT + 5,
        )
    except Exception as exc:
        log.error("Sluice deadline alert for %s not sent: %s", pipeline, mask_secrets(repr(exc)))
        return f"not sent: {type(exc).__name__}"
    return "; ".join(f"{conn_id}: {outcome}" for conn_id, outcome in results.items())


def deadline_callback_kwargs(
    pipeline: str,
    channels: Sequence[str],
    after_interval_end: timedelta,
    *,
    warehouse_conn_id: str | None = "sluice_warehouse",
) -> dict[str, Any]:
    """The `kwargs` of `AsyncCallback("sluice_deadline.on_deadline_missed", kwargs=...)`: plain JSON, no secrets
    (they are stored in the serialized DAG and logged by the triggerer if the callback fails)."""
    secs = int(after_interval_end.total_seconds())
    parts = [
        f"{n}{unit}"
        for n, unit in ((secs // 86400, "d"), (secs // 3600 % 24, "h"), (secs // 60 % 60, "m"), (secs % 60, "s"))
        if n
    ]
    return {
        "pipeline": pipeline,
        "channels": list(channels),
        "warehouse_conn_id": warehouse_conn_id,
        "deadline": f"{' '.join(parts) or '0s'} after the interval end",
    }


class IntervalEndDeadline(BaseDeadlineReference):
    """Deadline reference = the run's data interval END (Airflow's built-ins count from its start or queue time).
    Only scheduled runs get a deadline: a backfill or manual re-run of an old interval would be late at birth.
    The scheduler finds this class through the plugin in plugins/sluice_deadline.py."""

    required_kwargs = {"dag_id", "run_id"}

    def _evaluate_with(self, *, session: Any, **kwargs: Any) -> datetime | None:
        from airflow.models import DagRun
        from sqlalchemy import select

        row = session.execute(
            select(DagRun.data_interval_end, DagRun.run_type).where(
                DagRun.dag_id == kwargs["dag_id"], DagRun.run_id == kwargs["run_id"]
            )
        ).one_or_none()
        if row is None or row[0] is None or getattr(row[1], "value", row[1]) != "scheduled":
            return None
        return row[0]
