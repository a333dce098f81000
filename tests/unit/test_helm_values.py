"""deploy/helm/sluice-values.yaml, the values for the official Airflow Helm chart: it parses, and it names every
setting Sluice needs, with the same values as the local stack and docker-compose (no cluster runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VALUES = REPO / "deploy" / "helm" / "sluice-values.yaml"


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def env_of(values: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in values["env"]}


def test_celery_executor_and_sluice_celery_settings(values):
    assert values["executor"] == "CeleryExecutor"
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["x-airflow-common"]["environment"]
    celery = values["config"]["celery"]
    assert celery["celery_config_options"] == compose["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"]
    assert celery["celery_config_options"] == "sluice.celery_config.CELERY_CONFIG"


def test_workers_autoscale_with_keda_and_keep_no_volume(values):
    workers = values["workers"]
    keda = workers["keda"]
    assert keda["enabled"] is True
    assert 1 <= keda["minReplicaCount"] < keda["maxReplicaCount"]
    assert keda["pollingInterval"] > 0 and keda["cooldownPeriod"] > 0
    assert workers["persistence"]["enabled"] is False
    assert values["dags"]["persistence"]["enabled"] is False


def test_pods_share_no_disk_staging_and_logs_are_in_s3(values):
    logging = values["config"]["logging"]
    assert logging["remote_logging"] == "True" and logging["remote_base_log_folder"].startswith("s3://")
    assert logging["remote_log_conn_id"] == "sluice_s3"
    defaults = yaml.safe_load((REPO / "config" / "defaults.yaml").read_text())
    assert defaults["staging"]["url"].startswith("s3://") and defaults["staging"]["conn_id"] == "sluice_s3"


def test_pipelines_and_code_are_where_sluice_looks(values):
    env = env_of(values)
    sync = values["dags"]["gitSync"]
    assert sync["enabled"] is True and sync["subPath"] == "dags"
    assert env["SLUICE_PIPELINES_DIRS"] == "/opt/airflow/dags/repo/config/pipelines"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"PYTHONPATH={env['PYTHONPATH']}" in dockerfile  # Sluice's code comes with the image
    assert "secretRef" in values["extraEnvFrom"] and "sluice-connections" in values["extraEnvFrom"]
    assert values["triggerer"]["enabled"] is True  # deadline callbacks run in the triggerer


def test_image_and_secrets(values):
    base = re.search(r"^FROM apache/airflow:(\S+)-python", (REPO / "Dockerfile").read_text(), re.M).group(1)
    assert values["airflowVersion"] == base
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert values[key], key
    assert values["data"]["metadataSecretName"]


def test_the_install_lines_name_every_connection_the_stack_has(values):
    text = VALUES.read_text()
    for conn in ("AIRFLOW_CONN_SLUICE_WAREHOUSE", "AIRFLOW_CONN_SLUICE_S3", "AIRFLOW_CONN_SLUICE_SLACK",
                 "AIRFLOW_CONN_SLUICE_DISCORD"):  # fmt: skip
        assert f"--from-literal={conn}=" in text, conn
