"""Where the stack lives, which ports it uses, its generated secrets, and the environment every component shares.

Everything is derived from environment variables (SLUICE_HOME, SLUICE_*_PORT, ...), so the dev stack and the
isolated test stack are the same code with different variables.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"

# (variable, default) for every port; the test stack (make test) uses its own set.
PORTS: dict[str, tuple[str, int]] = {
    "postgres": ("SLUICE_PG_PORT", 15432),
    "redis": ("SLUICE_REDIS_PORT", 16379),
    "s3": ("SLUICE_S3_PORT", 15000),
    "api": ("SLUICE_API_PORT", 18080),
    "demo_api": ("SLUICE_DEMO_API_PORT", 18765),
    "webhooks": ("SLUICE_WEBHOOK_PORT", 18090),
    "worker_logs": ("SLUICE_WORKER_LOG_PORT", 18793),  # worker i serves its logs on this + i - 1
    "metrics": ("SLUICE_METRICS_PORT", 18791),  # python -m sluice metrics (Prometheus exporter)
    "prometheus": ("SLUICE_PROMETHEUS_PORT", 19090),  # only when /usr/bin/prometheus is installed
    "flower": ("SLUICE_FLOWER_PORT", 15555),  # only with SLUICE_FLOWER=1
}
PROMETHEUS = Path("/usr/bin/prometheus")  # Debian's package
BUCKETS = ("sluice-staging", "sluice-landing")
LOOPBACK = "127.0.0.1"
STACK_MARK = "SLUICE_STACK_PROCESS"  # set only in supervisord's environment, so every program of this stack has it
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"

# How a lost worker's tasks are found and retried (README "Faults and recovery"; docker-compose.yaml sets the same).
# A task's supervisor heartbeats every [workers] min_heartbeat_interval = 5 s, so 60 s is 12 missed beats: a task
# whose worker died (SIGKILL, a lost host) is failed into its retry about 60-65 s later instead of Airflow's 300 s,
# and a task under load is not.
RECOVERY_SETTINGS: dict[str, str] = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    # Every call a worker makes to the execution API (a task's start, heartbeats, its final state) is retried for at
    # least 190 s (19 waits of 10-20 s; Airflow: 5 tries, 1-90 s random, often under 15 s in all), so an api-server
    # restart (measured 125 s on a loaded 2-core box) does not fail the retries a run has left: a task that starts
    # while the api-server is down waits for it instead of burning a try. A task held that long without a heartbeat
    # is still failed into its retry by the timeout above; that retry is the one that waits.
    "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "20",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": "10",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": "20",
    # Celery: acks_late (a message is acked when its task ends, so a worker that dies never acks a task it did not
    # finish), one message prefetched per slot, and the visibility timeout said out loud (Airflow's own default).
    "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
}


@dataclass(frozen=True)
class Settings:
    """One stack's home, ports and sizes; read once from the environment."""

    home: Path
    ports: dict[str, int]
    workers: int
    concurrency: int
    pipelines_dirs: str
    flower: bool = False
    bind: str = LOOPBACK
    parse_interval: int = 30  # seconds between two parses of a DAG file (new pipeline files show up this fast)

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            home=Path(env.get("SLUICE_HOME", REPO / ".sluice")).resolve(),
            ports={name: int(env.get(var, default)) for name, (var, default) in PORTS.items()},
            workers=int(env.get("SLUICE_WORKERS", "2")),
            concurrency=int(env.get("SLUICE_WORKER_CONCURRENCY", "4")),
            pipelines_dirs=env.get("SLUICE_PIPELINES_DIRS", str(REPO / "config" / "pipelines")),
            flower=env.get("SLUICE_FLOWER", "0") == "1",
            bind=env.get("SLUICE_BIND_ADDRESS", LOOPBACK).strip() or LOOPBACK,
            parse_interval=int(env.get("SLUICE_DAG_PARSE_INTERVAL", "30")),
        )

    @property
    def host(self) -> str:
        """The address this host's own components connect to: loopback when the services listen on loopback or on
        every interface (SLUICE_BIND_ADDRESS=0.0.0.0), else the one address they listen on."""
        return LOOPBACK if self.bind in (LOOPBACK, "0.0.0.0") else self.bind

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def sock(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def conf(self) -> Path:
        return self.home / "supervisord.conf"

    @property
    def mark(self) -> dict[str, str]:
        """The variable that tags every process of this stack (and only this stack) for the sweep in `down`."""
        return {STACK_MARK: str(self.home)}


def load_secrets(home: Path) -> dict[str, str]:
    """Generated on first use and kept in $SLUICE_HOME/secrets.json (0600), so every component and test agrees."""
    path = home / "secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    generated = _new_secrets()
    if all(k in values for k in generated):
        return values
    values = {**generated, **values}  # a home made before a secret was added gets just the new one
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def _new_secrets() -> dict[str, str]:
    return {
        "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "jwt_secret": secrets.token_urlsafe(32),
        "api_secret_key": secrets.token_urlsafe(32),
        "pg_superuser": secrets.token_urlsafe(16),
        "pg_airflow": secrets.token_urlsafe(16),
        "pg_warehouse": secrets.token_urlsafe(16),
        "pg_source": secrets.token_urlsafe(16),
        "admin_password": secrets.token_urlsafe(12),
        "s3_access_key": "sluice" + secrets.token_hex(4),
        "s3_secret_key": secrets.token_urlsafe(24),
        "demo_api_token": secrets.token_urlsafe(24),
        "slack_token": "T000/B000/" + secrets.token_hex(12),
        "discord_token": "1234/" + secrets.token_hex(16),
        "redis_password": secrets.token_urlsafe(24),  # the broker may listen beyond loopback (SLUICE_BIND_ADDRESS)
    }


def connections(settings: Settings, s: dict[str, str], host: str | None = None) -> dict[str, str]:
    """The Airflow connections, as AIRFLOW_CONN_* variables: credentials never go into config or code. `host` is
    the address the services are reached at (this host's own components: settings.host)."""
    p = settings.ports
    host = host or settings.host
    pg = f"{host}:{p['postgres']}"
    hooks = f"{host}:{p['webhooks']}"
    s3_conn = {
        "conn_type": "aws",
        "login": s["s3_access_key"],
        "password": s["s3_secret_key"],
        "extra": {"endpoint_url": f"http://{host}:{p['s3']}", "region_name": "us-east-1"},
    }
    return {
        "AIRFLOW_CONN_SLUICE_WAREHOUSE": f"postgresql://sluice:{s['pg_warehouse']}@{pg}/warehouse",
        "AIRFLOW_CONN_SLUICE_SOURCE_DB": f"postgresql://source:{s['pg_source']}@{pg}/source",
        "AIRFLOW_CONN_SLUICE_S3": json.dumps(s3_conn),
        "AIRFLOW_CONN_SLUICE_DEMO_API": json.dumps(
            {
                "conn_type": "http",
                "host": host,
                "port": p["demo_api"],
                "schema": "http",
                "password": s["demo_api_token"],
            }
        ),
        # Local webhook receivers stand in for Slack and Discord; point these at real webhooks in production.
        "AIRFLOW_CONN_SLUICE_SLACK": json.dumps(
            {"conn_type": "slackwebhook", "password": f"http://{hooks}/slack/{s['slack_token']}"}
        ),
        "AIRFLOW_CONN_SLUICE_DISCORD": json.dumps(
            {
                "conn_type": "discord",
                "host": f"http://{hooks}",
                "extra": {"webhook_endpoint": f"webhooks/{s['discord_token']}"},
            }
        ),
    }


def airflow_env(settings: Settings, host: str | None = None) -> dict[str, str]:
    """Every variable the Airflow components, the tests and the CLI share. `host`: the address the services are
    reached at (default settings.host; a worker on another host gets the address it reaches them at)."""
    s = load_secrets(settings.home)
    p = settings.ports
    home = settings.home
    host = host or settings.host
    pg = f"{host}:{p['postgres']}"
    api = f"http://{host}:{p['api']}"
    redis = f"redis://:{s['redis_password']}@{host}:{p['redis']}"
    ports = {var: str(p[name]) for name, (var, _) in PORTS.items()}
    return {
        **ports,
        "SLUICE_HOME": str(home),
        "SLUICE_BIND_ADDRESS": settings.bind,
        "AIRFLOW_HOME": str(home / "airflow"),
        "PYTHONPATH": str(REPO / "include"),
        "SLUICE_PIPELINES_DIRS": settings.pipelines_dirs,
        "SLUICE_REDIS_URL": f"{redis}/2",
        "SLUICE_API_URL": api,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": s["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "admin_passwords.json"),
        "AIRFLOW__CORE__PARALLELISM": "16",
        # the workers' calls to the execution API (default 5 s, 5 tries): on a loaded 2-core box the single api-server
        # worker answers slower than that, and the task process is killed before it starts
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow:{s['pg_airflow']}@{pg}/airflow",
        "AIRFLOW__CELERY__BROKER_URL": f"{redis}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://airflow:{s['pg_airflow']}@{pg}/airflow",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(settings.concurrency),
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "sluice.celery_config.CELERY_CONFIG",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__PORT": str(p["api"]),
        "AIRFLOW__API__HOST": settings.bind,
        "AIRFLOW__API__SECRET_KEY": s["api_secret_key"],
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt_secret"],
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(settings.log_dir / "airflow"),
        # The port the api-server fetches a remote worker's logs from (local workers override it, one port each).
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(p["worker_logs"]),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "15",
        # Airflow's default; each cycle re-parses the six DAG files (~1.5 CPU-s here), so 10 s took 15 % of a core
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(settings.parse_interval),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        **RECOVERY_SETTINGS,
        **connections(settings, s, host),
        "SLUICE_DEMO_API_TOKEN": s["demo_api_token"],
    }


def write_env_file(settings: Settings) -> Path:
    """$SLUICE_HOME/env, sourced by scripts/airflow.sh, scripts/test.sh and the demo: the same values as the stack."""
    path = settings.home / "env"
    lines = [f"export {k}={shell_quote(v)}" for k, v in airflow_env(settings).items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"
