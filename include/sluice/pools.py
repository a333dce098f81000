"""Airflow pools Sluice uses: one per source connection, shared by every pipeline's extract_and_stage that reads it,
so a backfill of many intervals (or of many pipelines) never opens more than the pool's slots against one source."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sluice.config import PipelineConfig

SOURCE_POOL_PREFIX = "sluice_source__"
DEFAULT_SLOTS = 4


def source_pool_name(cfg: PipelineConfig) -> str | None:
    """`sluice_source__<conn_id>` of the pipeline's source connection (every source kind has one)."""
    conn_id = getattr(cfg.source, "conn_id", None)
    return f"{SOURCE_POOL_PREFIX}{conn_id}" if conn_id else None


def pools_enabled() -> bool:
    """Airflow's scheduler never queues a task whose pool does not exist, so the DAGs name the source pools only when
    $SLUICE_SOURCE_POOLS is 1: a deployment turns it on once the pools exist (the local stacks do, and create them)."""
    return os.environ.get("SLUICE_SOURCE_POOLS") == "1"
