"""Shared fixtures. Integration and e2e tests use the real services that `make test` starts (scripts/stack
with SLUICE_HOME=.sluice-test); their addresses arrive as the same AIRFLOW_CONN_* variables production uses.
A missing service is a failure, never a skip."""

from __future__ import annotations

import os
import uuid

import pytest

WAREHOUSE_CONN = "sluice_warehouse"
S3_CONN = "sluice_s3"


def _require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the tests through `make test`, which starts the test stack", pytrace=False)
    return value


@pytest.fixture(scope="session")
def warehouse_dsn() -> str:
    """libpq URI of the warehouse database (from the Airflow connection)."""
    _require_env("AIRFLOW_CONN_SLUICE_WAREHOUSE")
    from sluice.connections import pg_dsn

    return pg_dsn(WAREHOUSE_CONN)


@pytest.fixture
def pg(warehouse_dsn):
    """A psycopg 3 connection in autocommit mode."""
    import psycopg

    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def pg_schema(pg):
    """A fresh schema, dropped afterwards, so tests never see each other's tables."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    pg.execute(f'CREATE SCHEMA "{name}"')
    yield name
    pg.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture(scope="session")
def s3_client():
    """boto3 S3 client built by Airflow's S3Hook from the sluice_s3 connection (endpoint_url in its extra)."""
    _require_env("AIRFLOW_CONN_SLUICE_S3")
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=S3_CONN).get_conn()


@pytest.fixture
def s3_prefix() -> str:
    """A unique key prefix so tests sharing the buckets do not collide."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _require_env("SLUICE_REDIS_URL")
