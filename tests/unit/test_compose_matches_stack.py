"""No Docker engine runs here, so docker-compose.yaml is checked against the local stack (scripts/stack/) that
the tests do run: same components, same connection ids, same core settings, same buckets. They cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEMO_ONLY_CONNS = {"AIRFLOW_CONN_SLUICE_DEMO_API"}  # the demo's sample API runs only in the local stack
SHARED_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
    "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS",
)
SHARED_SECRETS = (
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


class LocalStack:
    """The local stack's programs and environment, read from the scripts/stack package."""

    def __init__(self) -> None:
        from stack import environment, supervision

        self.environment, self.supervision = environment, supervision
        self.settings = environment.Settings.from_environ()

    def programs(self) -> dict:
        return self.supervision.programs(self.settings)

    def env(self) -> dict:
        return self.environment.airflow_env(self.settings)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SLUICE_HOME", str(tmp_path_factory.mktemp("home")))
    mp.syspath_prepend(str(REPO / "scripts"))
    local = LocalStack()
    yield local.environment, local
    mp.undo()


def _common_env(compose: dict) -> dict:
    return compose["x-airflow-common"]["environment"]


def test_compose_has_the_official_airflow3_shape(compose):
    services = compose["services"]
    for name in (
        "postgres",
        "redis",
        "minio",
        "minio-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
        "flower",
    ):
        assert name in services, name
    assert services["flower"]["profiles"] == ["flower"]
    assert services["airflow-worker"]["deploy"]["replicas"] >= 2


def test_same_airflow_components_as_the_local_stack(compose, stack):
    _, s = stack
    local = {re.sub(r"^airflow-(worker)-\d+$", r"airflow-\1", n) for n in s.programs() if n.startswith("airflow-")}
    commands = {svc.get("command") for svc in compose["services"].values() if isinstance(svc.get("command"), str)}
    for prog in local:
        sub = {
            "airflow-api-server": "api-server",
            "airflow-scheduler": "scheduler",
            "airflow-dag-processor": "dag-processor",
            "airflow-triggerer": "triggerer",
            "airflow-worker": "celery worker",
        }[prog]
        assert sub in commands, f"local stack runs `airflow {sub}` but docker-compose.yaml has no such service"


def test_same_connection_ids(compose, stack):
    _, s = stack
    local = {k for k in s.env() if k.startswith("AIRFLOW_CONN_")} - DEMO_ONLY_CONNS
    composed = {k for k in _common_env(compose) if k.startswith("AIRFLOW_CONN_")}
    assert composed == local


def test_same_core_settings(compose, stack):
    _, s = stack
    env, local = _common_env(compose), s.env()
    for key in SHARED_SETTINGS:
        assert str(env[key]) == local[key], key
    for key in SHARED_SECRETS:  # present in both; values come from .env in compose, generated locally
        assert key in env and key in local, key
    assert env["PYTHONPATH"].endswith("/include") and local["PYTHONPATH"].endswith("/include")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")


def test_same_worker_loss_settings_and_a_persistent_broker(compose, stack):
    """The heartbeat timeout, Celery acks and visibility timeout that bound a lost worker's recovery are the same
    in both topologies, and both brokers keep an append-only file (queued tasks survive a restart)."""
    module, s = stack
    env = _common_env(compose)
    assert module.RECOVERY_SETTINGS, "no recovery settings"
    for key, value in module.RECOVERY_SETTINGS.items():
        assert str(env[key]) == value == s.env()[key], key
    assert "--appendonly yes" in s.programs()["redis"]["command"]
    assert compose["services"]["redis"]["command"][1:3] == ["--appendonly", "yes"]


def test_same_buckets_and_s3_connection_shape(compose, stack):
    module, s = stack
    init = compose["services"]["minio-init"]["entrypoint"]
    assert set(re.findall(r"local/([a-z0-9-]+)", init)) == set(module.BUCKETS)
    assert '"endpoint_url"' in _common_env(compose)["AIRFLOW_CONN_SLUICE_S3"]
    assert "endpoint_url" in s.env()["AIRFLOW_CONN_SLUICE_S3"]


def test_image_pins_the_same_airflow(compose):
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM apache/airflow:(\S+)-python3\.11", dockerfile, re.M).group(1)
    reqs = (REPO / "requirements.txt").read_text()
    assert re.search(rf"^apache-airflow\[[^\]]*\]=={re.escape(base)}$", reqs, re.M), base
    assert re.search(r"^celery\[redis\]>=[\d.]+,<5\.7$", reqs, re.M)


def test_workers_scale_with_no_shared_volume_but_the_dag_and_config_folders(compose):
    """`docker compose up --scale airflow-worker=N`: nothing but ./dags and ./config is shared (read-only bind
    mounts; the code is in the image), staging is MinIO, and each worker serves its own logs."""
    services = compose["services"]
    for name, svc in services.items():
        if name.startswith("airflow-") or name == "flower":
            mounts = svc.get("volumes", [])
            assert {m.split(":")[0] for m in mounts} <= {"./dags", "./config"}, name
    # the databases', MinIO's, the broker's (its append-only file) and the monitoring services' own
    assert set(compose.get("volumes", {})) == {
        "postgres-db",
        "minio-data",
        "redis-data",
        "prometheus-data",
        "grafana-data",
    }
    worker = services["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker  # both would stop --scale
    env = _common_env(compose)
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "airflow.utils.net.get_host_ip_address"
    assert str(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]) in {str(p) for p in worker["expose"]}
