"""Airflow DAG file: sluice_retention (daily staging retention and cold archive of every pipeline). Thin on purpose."""

from sluice.dag_builder import register_retention

register_retention(globals())
