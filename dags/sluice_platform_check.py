"""sluice_platform_check: what an operator triggers after a deploy. Runs on the Celery workers and proves every
configured connection works: warehouse write/read, staging bucket write/read, alert connections configured."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from sluice.platform_check import check_alert_connections, check_staging, check_warehouse


@dag(
    dag_id="sluice_platform_check",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sluice", "ops"],
    doc_md=__doc__,
)
def sluice_platform_check():
    @task
    def warehouse(**context) -> dict:
        return check_warehouse(context["run_id"])

    @task
    def staging(**context) -> dict:
        return check_staging(context["run_id"])

    @task
    def alert_connections() -> dict:
        return check_alert_connections()

    warehouse()
    staging()
    alert_connections()


sluice_platform_check()
