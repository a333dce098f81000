"""What Airflow must import itself for Sluice's deadline (SLA) alerts.

The triggerer awaits `sluice_deadline.on_deadline_missed` (an AsyncCallback path) when a run misses its deadline;
the scheduler evaluates `IntervalEndDeadline` (a custom deadline reference, which Airflow only accepts when a
plugin registers it). The logic lives in `sluice.alerts`; keep this module tiny.
"""

from airflow.plugins_manager import AirflowPlugin
from sluice.alerts import IntervalEndDeadline, on_deadline_missed


class SluiceDeadlinePlugin(AirflowPlugin):
    name = "sluice_deadline"
    deadline_references = [IntervalEndDeadline]


__all__ = ["IntervalEndDeadline", "SluiceDeadlinePlugin", "on_deadline_missed"]
