"""Airflow DAG file: one DAG per pipeline file in config/pipelines (or $SLUICE_PIPELINES_DIRS). Thin on purpose."""

from sluice.dag_builder import register_pipelines

register_pipelines(globals())
