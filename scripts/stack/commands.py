"""The CLI commands: up, down, status, env, wipe, worker-env. Each reads the stack's Settings from the environment."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from . import health, processes, provision, remote, supervision
from .console import StackError, error, log
from .environment import PORTS, PROMETHEUS, REPO, VENV_BIN, Settings, airflow_env, load_secrets, write_env_file


def check_ports(settings: Settings) -> None:
    """Before a first start: every port must be free, or the error names the port and its variable."""
    for name, port in settings.ports.items():
        if name == "flower" and not settings.flower or name == "prometheus" and not PROMETHEUS.exists():
            continue
        if health.port_open(port) or (settings.host != "127.0.0.1" and health.port_open(port, settings.host)):
            var = PORTS[name][0]
            raise StackError(
                f"port {port} ({name}) is already in use by another program. "
                f"Stop it, or choose another port with {var}=<port> make up"
            )


def up(settings: Settings) -> None:
    """Idempotent: a running stack is left as it is (missing programs are started), never duplicated."""
    if not (VENV_BIN / "airflow").exists():
        raise StackError("the Python environment is missing: run `make install` first")
    home, logs, p = settings.home, settings.log_dir, settings.ports
    for d in (settings.run_dir, logs / "airflow", home / "redis", home / "airflow", home / "prometheus"):
        d.mkdir(parents=True, exist_ok=True)
    running = supervision.supervisord_pid(settings)
    if not running:
        check_ports(settings)
    provision.init_postgres(settings)
    supervision.write_conf(settings)
    write_env_file(settings)
    provision.write_admin_password(settings)
    if not running:
        log(f"starting supervisord (logs in {logs})")
        # Programs inherit supervisord's environment: the shared secrets and connections, and the stack's mark.
        subprocess.run(
            [str(VENV_BIN / "supervisord"), "-c", str(settings.conf)],
            check=True,
            env={**os.environ, **airflow_env(settings), **settings.mark},
        )
        health.wait_for(
            lambda: settings.sock.exists() and supervision.ctl(settings, "pid").returncode == 0, 20, "supervisord", logs
        )
    else:
        log(f"supervisord already running (pid {running}); starting anything that is stopped")
        supervision.ctl(settings, "reread")
        supervision.ctl(settings, "update")
    supervision.start_programs(settings, list(supervision.CORE))
    host = settings.host
    health.wait_for(lambda: health.port_open(p["postgres"], host), 60, f"PostgreSQL on port {p['postgres']}", logs)
    health.wait_for(lambda: health.port_open(p["redis"], host), 30, f"Redis on port {p['redis']}", logs)
    health.wait_for(lambda: health.port_open(p["s3"], host), 60, f"the S3 endpoint on port {p['s3']}", logs)
    health.wait_for(lambda: provision.try_bootstrap(settings), 60, "PostgreSQL to accept connections", logs)
    provision.ensure_buckets(settings)
    provision.migrate_airflow_db(settings)
    rest = [n for n in supervision.programs(settings) if n not in supervision.CORE]
    supervision.start_programs(settings, rest)
    health.wait_for(
        lambda: health.api_healthy(settings),
        240,
        "Airflow (api-server health: scheduler, dag-processor, triggerer)",
        logs,
    )
    health.wait_for(lambda: health.worker_answers(settings), 120, "a Celery worker to answer a ping", logs)
    record_pids(settings)
    print_summary(settings)


def record_pids(settings: Settings) -> None:
    """supervisord's PID and its programs', so `down` can stop them even if supervisord is gone by then."""
    pids = [supervision.supervisord_pid(settings), *supervision.program_pids(settings)]
    (settings.run_dir / "pids").write_text("\n".join(str(p) for p in pids if p) + "\n")


def print_summary(settings: Settings) -> None:
    s = load_secrets(settings.home)
    log("stack is up")
    ui = f"http://{settings.host}:{settings.ports['api']}"
    print(f"  Airflow UI : {ui}  (user admin, password {s['admin_password']})")
    print(f"  Env file   : source {settings.home}/env   (for the airflow CLI: scripts/airflow.sh ...)")
    print(f"  Sluice page: http://127.0.0.1:{settings.ports['api']}/plugin/sluice  (inside the Airflow UI)")
    print(f"  Metrics    : http://127.0.0.1:{settings.ports['metrics']}/metrics")
    if PROMETHEUS.exists():
        print(f"  Prometheus : http://127.0.0.1:{settings.ports['prometheus']}")
    else:
        print(f"  Prometheus : not installed ({PROMETHEUS} missing): sudo apt-get install -y prometheus, then make up")
    if settings.flower:
        print(f"  Flower     : http://127.0.0.1:{settings.ports['flower']}")
    print(f"  Logs       : {settings.log_dir}")


def down(settings: Settings) -> None:
    """Stop supervisord and everything it started, then any recorded or marked process that survived; nothing else."""
    pidfile = settings.run_dir / "pids"
    pids = processes.read_pids(pidfile)
    main = supervision.supervisord_pid(settings)
    if main and settings.conf.exists():
        log("stopping all programs")
        supervision.ctl(settings, "stop", "all")
        supervision.ctl(settings, "shutdown")
        health.wait_for(lambda: not processes.pid_alive(main), 60, "supervisord to exit", fatal=False)
    # a partial `up` or a killed supervisord: stop what we recorded, and the PostgreSQL we started
    postmaster = processes.read_pid(settings.home / "pg" / "postmaster.pid")
    if postmaster:
        pids.append(postmaster)
    left = [p for p in pids if processes.pid_alive(p) and processes.owned(settings, p, REPO)]
    processes.terminate(left + processes.marked(settings))
    pidfile.unlink(missing_ok=True)
    log("stack is down")


def status(settings: Settings) -> int:
    """supervisorctl status and the api-server's health; exit 3 when the stack is not running."""
    if not supervision.supervisord_pid(settings):
        log(f"not running (SLUICE_HOME={settings.home})")
        return 3
    print(supervision.ctl(settings, "status").stdout, end="")
    print("api-server health:", "healthy" if health.api_healthy(settings) else "NOT healthy")
    return 0


def env(settings: Settings) -> int:
    """Write $SLUICE_HOME/env without starting anything, and print its path."""
    settings.home.mkdir(parents=True, exist_ok=True)
    print(write_env_file(settings))
    return 0


def wipe(settings: Settings) -> int:
    """down, then delete the stack's home: data, logs, secrets."""
    down(settings)
    shutil.rmtree(settings.home, ignore_errors=True)
    log(f"removed {settings.home}")
    return 0


def worker_env(settings: Settings, args: argparse.Namespace) -> int:
    """Print what a Celery worker on another host needs (remote.py): every service at --host."""
    if not args.host:
        raise StackError("worker-env needs --host ADDR: the address the other host reaches this one at")
    if settings.bind == "127.0.0.1":
        print(  # stderr: stdout is the environment, to be sourced
            "[stack] warning: the stack listens on 127.0.0.1 only; start it with SLUICE_BIND_ADDRESS=0.0.0.0 (or ADDR)",
            file=sys.stderr,
        )
    print(remote.render(remote.worker_env(settings, args.host, args.advertise, args.checkout)), end="")
    return 0


COMMANDS = {"up": up, "down": down, "status": status, "env": env, "wipe": wipe, "worker-env": worker_env}


def main(argv: list[str] | None = None) -> int:
    from . import __doc__ as usage

    parser = argparse.ArgumentParser(
        prog="scripts/stack", description=usage, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=list(COMMANDS))
    parser.add_argument("--host", help="worker-env: the address other hosts reach this stack's services at")
    parser.add_argument("--advertise", help="worker-env: the address the api-server reaches the worker at (logs)")
    parser.add_argument("--checkout", help="worker-env: where the worker host keeps its clone (default: this one)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_environ()
        if args.command == "worker-env":
            return worker_env(settings, args)
        return COMMANDS[args.command](settings) or 0
    except StackError as exc:
        error(str(exc))
        return 1
