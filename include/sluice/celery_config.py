"""Celery settings for Sluice's workers: Airflow's defaults, plus a preload of the heavy libraries the stages use.

Every task runs in a process forked from a Celery pool process, so modules imported here, in the worker's main
process, are inherited instead of re-imported by each task. Great Expectations alone takes 6-20 s to import on this
class of machine; without the preload every mapped validate_chunk task would pay it. Other Airflow components import
this module too (the scheduler's CeleryExecutor), so the preload only happens in `airflow celery worker`.
Wired in with AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=sluice.celery_config.CELERY_CONFIG.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = dict(DEFAULT_CELERY_CONFIG)

PRELOAD = (
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.csv",
    "pyarrow.compute",
    "pandas",
    "psycopg",
    "boto3",
    "great_expectations",
    "sluice.staging",
    "sluice.validate.chunk",
    "sluice.loading.postgres",
)

log = logging.getLogger(__name__)


def _is_worker() -> bool:
    return "celery" in sys.argv and "worker" in sys.argv


def preload() -> None:
    started = time.monotonic()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a failed preload only costs speed; the task imports it again
            log.warning("sluice preload of %s failed: %s", name, exc)
    log.info("sluice preloaded %d modules in %.1fs", len(PRELOAD), time.monotonic() - started)


if _is_worker() and os.environ.get("SLUICE_WORKER_PRELOAD", "1") == "1":
    preload()
