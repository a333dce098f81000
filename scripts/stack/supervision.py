"""supervisord: the programs of the stack, their rendered config, and supervisorctl.

supervisord restarts a crashed component; every program inherits supervisord's environment, which carries the
shared secrets, the connections and the stack's mark (see commands.up)."""

from __future__ import annotations

import subprocess

from .console import StackError
from .environment import PROMETHEUS, REPO, VENV_BIN, Settings, load_secrets
from .processes import pid_alive, read_pid
from .provision import pg_bin, service_user

CORE = ("postgres", "redis", "s3")  # started first: provisioning needs them
PROGRAM_DEFAULTS = (
    "autostart=false",
    "autorestart=true",
    "startsecs=3",
    "startretries=10",
    "stopasgroup=true",
    "killasgroup=true",
    "stopwaitsecs=30",
    "redirect_stderr=true",
    "stdout_logfile_maxbytes=50MB",
    "stdout_logfile_backups=2",
)


def programs(settings: Settings) -> dict[str, dict[str, str]]:
    """Every supervised program: command, priority (start order) and optional stopsignal, user, environment."""
    p = settings.ports
    home, logs, bind = settings.home, settings.log_dir, settings.bind
    airflow = str(VENV_BIN / "airflow")
    progs: dict[str, dict[str, str]] = {
        "postgres": {
            "command": f"{pg_bin()}/postgres -D {home}/pg -p {p['postgres']} -c listen_addresses={bind} "
            "-c unix_socket_directories='' -c max_connections=300 -c shared_buffers=512MB "
            "-c max_wal_size=8GB -c checkpoint_timeout=15min -c work_mem=64MB -c maintenance_work_mem=512MB",
            "stopsignal": "INT",
            "priority": "10",
        },
        "redis": {
            # the password is in the 0600 file, not on the command line; AOF: queued tasks survive a broker restart
            "command": f"/usr/bin/env redis-server {home}/redis/redis.conf --port {p['redis']} --bind {bind} "
            f"--dir {home}/redis --save '' --appendonly yes --appendfsync everysec",
            "priority": "10",
        },
        "s3": {"command": f"{VENV_BIN}/moto_server -H {bind} -p {p['s3']}", "priority": "10"},
    }
    if (REPO / "demo" / "webhook_receiver.py").exists():
        progs["webhooks"] = {
            "command": f"{VENV_BIN}/python {REPO}/demo/webhook_receiver.py --port {p['webhooks']} "
            f"--out {logs}/webhooks.jsonl --host {bind}",
            "priority": "20",
        }
    progs.update(
        {
            "airflow-api-server": {"command": f"{airflow} api-server", "priority": "30"},
            "airflow-scheduler": {"command": f"{airflow} scheduler", "priority": "30"},
            "airflow-dag-processor": {"command": f"{airflow} dag-processor", "priority": "30"},
            "airflow-triggerer": {"command": f"{airflow} triggerer", "priority": "30"},
        }
    )
    if (REPO / "demo" / "api_server.py").exists():
        progs["demo-api"] = {
            "command": f"{VENV_BIN}/python {REPO}/demo/api_server.py --host {bind} --port {p['demo_api']}",
            "priority": "20",
        }
    for i in range(1, settings.workers + 1):
        progs[f"airflow-worker-{i}"] = {
            "command": f"{airflow} celery worker --celery-hostname worker{i}@%%h "
            f"--concurrency {settings.concurrency} --without-gossip --without-mingle",
            "priority": "40",
            "environment": f"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT={p['worker_logs'] + i - 1}",
        }
    progs["sluice-metrics"] = {
        "command": f"{VENV_BIN}/python -m sluice metrics --host 127.0.0.1 --port {p['metrics']}",
        "priority": "40",
    }
    if PROMETHEUS.exists():
        progs["prometheus"] = {
            "command": f"{PROMETHEUS} --config.file={home}/prometheus.yml --storage.tsdb.path={home}/prometheus "
            f"--web.listen-address=127.0.0.1:{p['prometheus']} --storage.tsdb.retention.time=15d",
            "priority": "50",
        }
    if settings.flower:
        progs["flower"] = {
            "command": f"{airflow} celery flower --hostname 127.0.0.1 --port {p['flower']}",
            "priority": "50",
        }
    user = service_user()
    if user:
        progs["postgres"]["user"] = user
    return progs


def render_prometheus(settings: Settings) -> str:
    """prometheus.yml: scrape the stack's exporter every 15 s (a scrape reads the warehouse once)."""
    return "\n".join(
        [
            "global:",
            "  scrape_interval: 15s",
            "scrape_configs:",
            "  - job_name: sluice",
            "    static_configs:",
            f"      - targets: ['127.0.0.1:{settings.ports['metrics']}']",
            "",
        ]
    )


def render_conf(settings: Settings) -> str:
    """supervisord.conf: a private unix socket (0700) under the stack's run dir, one section per program."""
    run, logs, sock = settings.run_dir, settings.log_dir, settings.sock
    parts = [
        "[unix_http_server]",
        f"file={sock}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={logs}/supervisord.log",
        f"pidfile={run}/supervisord.pid",
        f"directory={REPO}",
        f"childlogdir={logs}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{sock}",
        "",
    ]
    for name, prog in programs(settings).items():
        parts += [
            f"[program:{name}]",
            f"command={prog['command']}",
            *PROGRAM_DEFAULTS,
            f"stdout_logfile={logs}/{name}.log",
            f"priority={prog['priority']}",
        ]
        parts += [f"{key}={prog[key]}" for key in ("stopsignal", "user", "environment") if key in prog]
        parts.append("")
    return "\n".join(parts)


def write_conf(settings: Settings) -> None:
    settings.conf.write_text(render_conf(settings))
    settings.conf.chmod(0o600)
    (settings.home / "prometheus.yml").write_text(render_prometheus(settings))
    redis_conf = settings.home / "redis" / "redis.conf"
    redis_conf.parent.mkdir(parents=True, exist_ok=True)
    redis_conf.write_text(f"requirepass {load_secrets(settings.home)['redis_password']}\n")
    redis_conf.chmod(0o600)


def supervisord_pid(settings: Settings) -> int | None:
    """The live supervisord of this stack, from its PID file; None when it is not running."""
    pid = read_pid(settings.run_dir / "supervisord.pid")
    return pid if pid and pid_alive(pid) else None


def ctl(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "supervisorctl"), "-c", str(settings.conf), *args], capture_output=True, text=True
    )


def start_programs(settings: Settings, names: list[str]) -> None:
    """Start the named programs; one that is already running is fine, one that fails is an error."""
    out = ctl(settings, "start", *names)
    bad = [line for line in out.stdout.splitlines() if "ERROR" in line and "already started" not in line]
    if bad:
        raise StackError("could not start: " + "; ".join(bad) + f" (see {settings.log_dir})")


def program_pids(settings: Settings) -> list[int]:
    """PIDs of the running programs, as supervisord reports them."""
    out = ctl(settings, "pid", "all").stdout.split()
    return [int(x) for x in out if x.isdigit() and x != "0"]
