"""Sluice: config-driven batch ETL on Apache Airflow 3. See DESIGN.md in the shared folder and README.md."""

__version__ = "0.1.0"
