"""Airflow DAG file: sluice_maintenance (replay of quarantined rows from the trigger form). Thin on purpose."""

from sluice.dag_builder import register_maintenance

register_maintenance(globals())
