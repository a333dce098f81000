"""Surfaces invalid pipeline files as an Airflow import error (file, line, field, fix), apart from pipelines.py so
that one bad file never takes the healthy pipelines' DAGs down with it. Defines no DAG of its own."""

from sluice.dag_builder import raise_config_errors

raise_config_errors()
