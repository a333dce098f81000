"""scripts/stack.py's own checks that need no running stack."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack_module(monkeypatch, tmp_path):
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "home"))
    spec = importlib.util.spec_from_file_location("sluice_stack_unit", REPO / "scripts" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_port_in_use_names_the_port_and_the_variable(stack_module, monkeypatch, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("SLUICE_REDIS_PORT", str(port))
        for var, _default in stack_module.PORTS.values():  # every other port: one just seen free
            if var != "SLUICE_REDIS_PORT":
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    monkeypatch.setenv(var, str(s.getsockname()[1]))
        with pytest.raises(SystemExit):
            stack_module.Stack().check_ports()
    err = capsys.readouterr().err
    assert f"port {port} (redis) is already in use" in err
    assert "SLUICE_REDIS_PORT=<port>" in err


def test_secrets_are_generated_once_and_shared(stack_module):
    stack = stack_module.Stack()
    first, again = stack.env(), stack_module.Stack().env()
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert first[key] and first[key] == again[key]
    assert first["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    assert oct((stack.home / "secrets.json").stat().st_mode)[-3:] == "600"


def test_every_connection_points_at_loopback_and_every_port_has_its_variable(stack_module):
    import json
    from urllib.parse import urlsplit

    env = stack_module.Stack().env()
    conns = {k: v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    assert conns
    for key, value in conns.items():
        if value.startswith("{"):
            conn = json.loads(value)
            target = conn.get("extra", {}).get("endpoint_url") or conn["host"]
            host = urlsplit(target).hostname or target
        else:
            host = urlsplit(value).hostname
        assert host == "127.0.0.1", (key, host)
    assert len({var for var, _ in stack_module.PORTS.values()}) == len(stack_module.PORTS)
