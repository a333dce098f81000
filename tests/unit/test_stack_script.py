"""The scripts/stack package's own checks that need no running stack."""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(monkeypatch, tmp_path):
    """The package, imported as scripts/stack/__main__.py imports it, with a throwaway SLUICE_HOME."""
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "home"))
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    for name in ("commands", "environment", "processes", "supervision"):
        importlib.import_module(f"stack.{name}")
    return sys.modules["stack"]


def settings(stack):
    return stack.environment.Settings.from_environ()


def test_port_in_use_names_the_port_and_the_variable(stack, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("SLUICE_REDIS_PORT", str(port))
        for var, _default in stack.environment.PORTS.values():  # every other port: one just seen free
            if var != "SLUICE_REDIS_PORT":
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    monkeypatch.setenv(var, str(s.getsockname()[1]))
        with pytest.raises(stack.console.StackError) as err:
            stack.commands.check_ports(settings(stack))
    assert f"port {port} (redis) is already in use" in str(err.value)
    assert "SLUICE_REDIS_PORT=<port>" in str(err.value)


def test_secrets_are_generated_once_and_shared(stack):
    s = settings(stack)
    first, again = stack.environment.airflow_env(s), stack.environment.airflow_env(settings(stack))
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert first[key] and first[key] == again[key]
    assert first["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    assert oct((s.home / "secrets.json").stat().st_mode)[-3:] == "600"


def test_every_connection_points_at_loopback_and_every_port_has_its_variable(stack):
    env = stack.environment.airflow_env(settings(stack))
    conns = {k: v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    assert conns
    for key, value in conns.items():
        if value.startswith("{"):
            conn = json.loads(value)
            target = conn.get("extra", {}).get("endpoint_url") or conn.get("host") or conn["password"]
            host = urlsplit(target).hostname or target
        else:
            host = urlsplit(value).hostname
        assert host == "127.0.0.1", (key, host)
    ports = stack.environment.PORTS
    assert len({var for var, _ in ports.values()}) == len(ports)


def test_supervisord_conf_has_every_program_on_a_private_socket(stack, monkeypatch):
    monkeypatch.setenv("SLUICE_WORKERS", "3")
    s = settings(stack)
    conf = stack.supervision.render_conf(s)
    for name in stack.supervision.programs(s):
        assert f"[program:{name}]" in conf
    assert "[program:airflow-worker-3]" in conf
    assert f"file={s.sock}" in conf and "chmod=0700" in conf
    assert conf.count("autostart=false") == len(stack.supervision.programs(s))


def test_the_sweep_finds_only_processes_with_this_stacks_mark(stack, tmp_path):
    s = settings(stack)
    other = {stack.environment.STACK_MARK: str(tmp_path / "another-stack")}
    ours = subprocess.Popen(["sleep", "60"], env={**os.environ, **s.mark})
    theirs = subprocess.Popen(["sleep", "60"], env={**os.environ, **other})
    try:
        found = stack.processes.marked(s)
        assert ours.pid in found and theirs.pid not in found
        stack.processes.terminate(found, grace=5)
        assert ours.wait(timeout=5) is not None
        assert theirs.poll() is None
    finally:
        for proc in (ours, theirs):
            proc.kill()
            proc.wait()


def test_pid_files_and_liveness(stack, tmp_path):
    pidfile = tmp_path / "postmaster.pid"
    pidfile.write_text(f"{os.getpid()}\n/some/data/dir\n")
    assert stack.processes.read_pid(pidfile) == os.getpid()
    assert stack.processes.read_pid(tmp_path / "missing.pid") is None
    assert stack.processes.pid_alive(os.getpid())
    done = subprocess.Popen(["true"])
    done.wait()
    assert not stack.processes.pid_alive(done.pid)


def test_the_cli_runs_as_a_directory(tmp_path):
    env = {**os.environ, "SLUICE_HOME": str(tmp_path / "cli")}
    py = str(REPO / ".venv" / "bin" / "python")
    out = subprocess.run([py, str(REPO / "scripts" / "stack"), "env"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == tmp_path / "cli" / "env"
    assert "export AIRFLOW__CORE__EXECUTOR='CeleryExecutor'" in (tmp_path / "cli" / "env").read_text()
    status = subprocess.run([py, str(REPO / "scripts" / "stack"), "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 3 and "not running" in status.stdout


def test_services_listen_on_the_bind_address(stack, monkeypatch):
    """SLUICE_BIND_ADDRESS: loopback by default; 0.0.0.0 or one address for workers on other hosts."""
    monkeypatch.delenv("SLUICE_BIND_ADDRESS", raising=False)
    progs = stack.supervision.programs(settings(stack))
    assert "listen_addresses=127.0.0.1 " in progs["postgres"]["command"]
    assert "--bind 127.0.0.1 " in progs["redis"]["command"] and "-H 127.0.0.1 " in progs["s3"]["command"]
    monkeypatch.setenv("SLUICE_BIND_ADDRESS", "0.0.0.0")
    s = settings(stack)
    progs = stack.supervision.programs(s)
    assert "listen_addresses=0.0.0.0 " in progs["postgres"]["command"]
    assert "--bind 0.0.0.0 " in progs["redis"]["command"] and "-H 0.0.0.0 " in progs["s3"]["command"]
    env = stack.environment.airflow_env(s)
    assert env["AIRFLOW__API__HOST"] == "0.0.0.0"
    assert s.host == "127.0.0.1" and "@127.0.0.1:" in env["AIRFLOW__CELERY__BROKER_URL"]  # local clients: loopback
    monkeypatch.setenv("SLUICE_BIND_ADDRESS", "10.1.2.3")
    s = settings(stack)
    assert s.host == "10.1.2.3" and "@10.1.2.3:" in stack.environment.airflow_env(s)["AIRFLOW_CONN_SLUICE_WAREHOUSE"]


def test_redis_password_lives_in_a_private_file_not_on_the_command_line(stack):
    s = settings(stack)
    s.home.mkdir(parents=True, exist_ok=True)
    stack.supervision.write_conf(s)
    password = stack.environment.load_secrets(s.home)["redis_password"]
    conf = s.home / "redis" / "redis.conf"
    assert conf.read_text() == f"requirepass {password}\n" and oct(conf.stat().st_mode)[-3:] == "600"
    assert password not in stack.supervision.programs(s)["redis"]["command"]
    assert f":{password}@" in stack.environment.airflow_env(s)["AIRFLOW__CELERY__BROKER_URL"]


def test_a_home_made_before_a_new_secret_gets_it_and_keeps_the_rest(stack):
    s = settings(stack)
    s.home.mkdir(parents=True)
    (s.home / "secrets.json").write_text(json.dumps({"fernet_key": "kept"}))
    values = stack.environment.load_secrets(s.home)
    assert values["fernet_key"] == "kept" and values["redis_password"]
    assert stack.environment.load_secrets(s.home) == values


def test_worker_env_points_every_service_at_the_given_host(tmp_path):
    """`worker-env --host` is what the README tells a remote worker to source: no loopback, no path of this
    host's stack home, the log address when --advertise is given; the warning goes to stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_", "AIRFLOW"))}  # default ports
    env["SLUICE_HOME"] = str(tmp_path / "head")
    py = str(REPO / ".venv" / "bin" / "python")
    cmd = [py, str(REPO / "scripts" / "stack"), "worker-env", "--host", "10.9.8.1", "--advertise", "10.9.8.2"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "listens on 127.0.0.1 only" in out.stderr
    shown = subprocess.run(
        ["bash", "-c", 'eval "$1"; env -0', "_", out.stdout], env={"PATH": os.environ["PATH"]}, capture_output=True
    ).stdout.decode()
    got = dict(item.split("=", 1) for item in shown.split("\0") if "=" in item)
    assert "127.0.0.1" not in out.stdout and str(tmp_path / "head") not in out.stdout
    assert "AIRFLOW_HOME" not in got and "AIRFLOW__LOGGING__BASE_LOG_FOLDER" not in got
    assert got["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://10.9.8.1:18080/execution/"
    assert "@10.9.8.1:16379/0" in got["AIRFLOW__CELERY__BROKER_URL"]
    assert json.loads(got["AIRFLOW_CONN_SLUICE_S3"])["extra"]["endpoint_url"] == "http://10.9.8.1:15000"
    assert got["SLUICE_WORKER_HOSTNAME"] == "10.9.8.2"
    assert got["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "sluice.hosts.advertised_hostname"
    assert got["AIRFLOW__API__SECRET_KEY"]  # the worker's log server checks the api-server's signed requests
    missing = subprocess.run([py, str(REPO / "scripts" / "stack"), "worker-env"], env=env, capture_output=True)
    assert missing.returncode == 1 and b"--host" in missing.stderr
