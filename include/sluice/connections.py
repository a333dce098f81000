"""Resolve Airflow connections into what the drivers want. Credentials only ever live in Airflow connections."""

from __future__ import annotations

import re


def pg_dsn(conn_id: str) -> str:
    """A libpq URI for psycopg 3 from an Airflow Postgres connection (any secrets backend, env vars included)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    uri = PostgresHook(postgres_conn_id=conn_id).get_uri()
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", uri, count=1)
