"""PipelineConfig -> Airflow DAG: the one package that knows Airflow's authoring API.

`common` (pipeline files, interval params), `pipeline` (one DAG per pipeline file), `ops` (sluice_maintenance,
sluice_freshness). The DAG files in dags/ call the register_* functions.
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
    build_freshness_dag,
    build_maintenance_dag,
    maintenance_params,
    register_freshness_watchdog,
    register_maintenance,
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
    "PipelineFilesInvalid",
    "build_dag",
    "build_freshness_dag",
    "build_maintenance_dag",
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
    "resolve_interval",
    "source_pool",
    "target_asset",
    "this_generation",
    "unretryable",
]
