"""What a Celery worker on another host needs to join this stack: `python scripts/stack worker-env --host ADDR`.

A remote worker shares no disk with this host. It reaches the broker (Redis), the metadata database (Celery's
result backend), the warehouse, the S3 endpoint (staging is S3, never a shared folder) and the api-server's
execution API over the network at ADDR, reads the DAG and pipeline files from its own checkout of this repository,
keeps its task logs under its own AIRFLOW_HOME and serves them on the log server port, where the api-server
fetches them. The services must listen on ADDR: start the stack with SLUICE_BIND_ADDRESS=ADDR (or 0.0.0.0).
"""

from __future__ import annotations

from .environment import PORTS, REPO, Settings, airflow_env, shell_quote

# This host's own paths and the server-side settings of components a worker does not run. ([api] secret_key stays:
# the worker's log server checks the api-server's signed log requests with it.)
LOCAL_ONLY = (
    "SLUICE_HOME",
    "AIRFLOW_HOME",
    "SLUICE_BIND_ADDRESS",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__API__HOST",
    "AIRFLOW__API__PORT",
    "AIRFLOW__API__WORKERS",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
    "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
    *(var for var, _ in PORTS.values()),
)
HOSTNAME_CALLABLE = "sluice.hosts.advertised_hostname"


def worker_env(settings: Settings, host: str, advertise: str | None = None, checkout: str | None = None) -> dict:
    """The variables of a worker on another host: the stack's environment with every service at `host`, this
    host's paths left out (the worker sets its own AIRFLOW_HOME), paths into the repository moved to `checkout`,
    and, with `advertise`, the address the api-server fetches its logs from."""
    env = {k: v for k, v in airflow_env(settings, host).items() if k not in LOCAL_ONLY}
    if checkout and checkout != str(REPO):
        env = {k: v.replace(str(REPO), checkout) for k, v in env.items()}
    if advertise:
        env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = HOSTNAME_CALLABLE
        env["SLUICE_WORKER_HOSTNAME"] = advertise
    return env


def render(env: dict[str, str]) -> str:
    """`export K='v'` lines, to source in the worker's shell or to turn into a systemd EnvironmentFile."""
    head = (
        "# Sluice remote worker environment (secrets inside: keep it 0600). Set AIRFLOW_HOME, then:\n"
        "#   airflow celery worker [--queues QUEUE]\n"
    )
    return head + "".join(f"export {k}={shell_quote(v)}\n" for k, v in env.items())
