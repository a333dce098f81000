"""Checks behind the sluice_platform_check DAG. Each one round-trips real data through a configured connection."""

from __future__ import annotations

import hashlib
import logging
import os
import socket

log = logging.getLogger(__name__)

WAREHOUSE_CONN = os.environ.get("SLUICE_WAREHOUSE_CONN", "sluice_warehouse")
STAGING_CONN = os.environ.get("SLUICE_STAGING_CONN", "sluice_s3")
STAGING_BUCKET = os.environ.get("SLUICE_STAGING_BUCKET", "sluice-staging")
ALERT_CONNS = tuple(os.environ.get("SLUICE_ALERT_CONNS", "sluice_slack,sluice_discord").split(","))


def check_warehouse(run_id: str) -> dict:
    """Write a row into sluice.platform_check and read it back."""
    import psycopg

    from sluice.connections import pg_dsn
    from sluice.loading import sql as q

    token = hashlib.sha256(run_id.encode()).hexdigest()[:16]
    with psycopg.connect(pg_dsn(WAREHOUSE_CONN)) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS sluice")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS sluice.platform_check "
            "(run_id text PRIMARY KEY, token text NOT NULL, host text, checked_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO sluice.platform_check (run_id, token, host) VALUES (%s, %s, %s) "
            "ON CONFLICT (run_id) DO UPDATE SET token = EXCLUDED.token, host = EXCLUDED.host, checked_at = now()",
            (run_id, token, socket.gethostname()),
        )
        conn.commit()
        got = conn.execute("SELECT token FROM sluice.platform_check WHERE run_id = %s", (run_id,)).fetchone()
        version = q.scalar(conn.execute("SHOW server_version"))
    if not got or got[0] != token:
        raise RuntimeError(f"warehouse ({WAREHOUSE_CONN}): wrote {token!r}, read back {got!r}")
    log.info("warehouse %s OK: PostgreSQL %s, wrote and read back run %s", WAREHOUSE_CONN, version, run_id)
    return {"conn_id": WAREHOUSE_CONN, "server_version": version, "ok": True}


def check_staging(run_id: str) -> dict:
    """Write an object to the staging bucket through the Airflow AWS connection, read it back, delete it."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=STAGING_CONN)
    key = f"_platform_check/{hashlib.sha256(run_id.encode()).hexdigest()[:16]}.txt"
    body = f"sluice platform check {run_id}"
    hook.load_string(body, key=key, bucket_name=STAGING_BUCKET, replace=True)
    got = hook.read_key(key=key, bucket_name=STAGING_BUCKET)
    hook.delete_objects(bucket=STAGING_BUCKET, keys=[key])
    if got != body:
        raise RuntimeError(f"staging ({STAGING_CONN}, s3://{STAGING_BUCKET}/{key}): read back {got!r}")
    log.info("staging s3://%s via %s OK", STAGING_BUCKET, STAGING_CONN)
    return {"conn_id": STAGING_CONN, "bucket": STAGING_BUCKET, "ok": True}


def check_alert_connections() -> dict:
    """Every alert connection must exist and carry a webhook target; sending is left to the alert tests."""
    from airflow.sdk import BaseHook

    result: dict[str, str] = {}
    problems = []
    for conn_id in ALERT_CONNS:
        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception as exc:  # noqa: BLE001 - report every missing connection, not just the first
            problems.append(f"{conn_id}: not defined ({type(exc).__name__})")
            continue
        if not (conn.host or conn.password or (conn.extra_dejson or {}).get("webhook_endpoint")):
            problems.append(f"{conn_id}: defined but has no webhook host/token")
            continue
        result[conn_id] = conn.conn_type or "unknown"
        log.info("alert connection %s OK (type %s)", conn_id, conn.conn_type)
    if problems:
        raise RuntimeError("alert connections not usable: " + "; ".join(problems))
    return result
