"""Failure, retry and missed-deadline alerts to Slack and Discord, carrying what a paged engineer needs first:
which pipeline, which interval, and how stale the table now is.

model (AlertContext, masking) -> formats (pure Slack/Discord renderers) -> delivery (provider hooks, bounded
retries) <- callbacks (task callbacks, the triggerer's deadline callback, the gate's warnings); freshness reads the
warehouse; watchdog is the freshness watchdog (DAG sluice_freshness), with its state in sluice.freshness_state.
Heavy imports (providers, psycopg, tenacity) happen inside functions: the scheduler and triggerer import this
package through plugins/sluice_deadline.py.
"""

from sluice.alerts.callbacks import (
    FailureCallbacks,
    IntervalEndDeadline,
    deadline_callback_kwargs,
    make_failure_callback,
    notify_deadline_missed,
    notify_quality_warning,
    on_deadline_missed,
    run_url,
    task_alert_context,
)
from sluice.alerts.delivery import send_alert
from sluice.alerts.formats import format_discord, format_slack
from sluice.alerts.freshness import read_warehouse
from sluice.alerts.model import AlertContext, AlertKind, ChannelKind, Freshness, Rows, Severity, mask_secrets

__all__ = [
    "AlertContext",
    "AlertKind",
    "ChannelKind",
    "FailureCallbacks",
    "Freshness",
    "IntervalEndDeadline",
    "Rows",
    "Severity",
    "deadline_callback_kwargs",
    "format_discord",
    "format_slack",
    "make_failure_callback",
    "mask_secrets",
    "notify_deadline_missed",
    "notify_quality_warning",
    "on_deadline_missed",
    "read_warehouse",
    "run_url",
    "send_alert",
    "task_alert_context",
]
