"""Airflow DAG file: the freshness watchdog (sluice_freshness), built by sluice.dag_builder. Thin on purpose."""

from sluice.dag_builder import register_freshness_watchdog

register_freshness_watchdog(globals())
