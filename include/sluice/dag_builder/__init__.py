"""PipelineConfig -> Airflow DAG: the one package that knows Airflow's authoring API.

`common` (pipeline files, interval params), `pipeline` (one DAG per pipeline file), `ops` (sluice_maintenance,
sluice_retention, sluice_freshness). The DAG files in dags/ call the register_* functions.
"""

from sluice.dag_builder.common import (
    PipelineFilesInvalid,
    interval_params,
    load_configs,
    pipelines_dirs,
    raise_config_errors,
    resolve_interval,
)
from sluice.dag_builder.ops import (
    FRESHNESS_DAG,
    FRESHNESS_SCHEDULE,
    MAINTENANCE_DAG,
    RETENTION_DAG,
    RETENTION_SCHEDULE,
    build_freshness_dag,
    build_maintenance_dag,
    build_retention_dag,
    maintenance_params,
    register_freshness_watchdog,
    register_maintenance,
    register_retention,
)
from sluice.dag_builder.pipeline import (
    DEADLINE_CALLBACK,
    build_dag,
    current,
    deadline_alert,
    default_args,
    doc_md,
    register_pipelines,
    source_pool,
    target_asset,
    this_generation,
    unretryable,
)

__all__ = [
    "DEADLINE_CALLBACK",
    "FRESHNESS_DAG",
    "FRESHNESS_SCHEDULE",
    "MAINTENANCE_DAG",
    "RETENTION_DAG",
    "RETENTION_SCHEDULE",
    "PipelineFilesInvalid",
    "build_dag",
    "build_freshness_dag",
    "build_maintenance_dag",
    "build_retention_dag",
    "current",
    "deadline_alert",
    "default_args",
    "doc_md",
    "interval_params",
    "load_configs",
    "maintenance_params",
    "pipelines_dirs",
    "raise_config_errors",
    "register_freshness_watchdog",
    "register_maintenance",
    "register_pipelines",
    "register_retention",
    "resolve_interval",
    "source_pool",
    "target_asset",
    "this_generation",
    "unretryable",
]
