"""The Prometheus exporter and what reads it: every Grafana query names only metrics the endpoint exports, the
exporter exports what it declares, and compose and the local stack wire Prometheus to it."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sluice.health import metrics, report, warehouse

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "config" / "compose" / "grafana" / "dashboards" / "sluice.json"
PROMQL_FUNCTIONS = {"time", "increase", "rate", "clamp_min", "sum", "by", "max", "min", "avg"}


def exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def test_every_dashboard_query_names_a_metric_the_endpoint_exports():
    exported = metrics.exported_names()
    assert len(exprs()) >= 10
    for expr in exprs():
        names = set(re.findall(r"\bsluice_[a-z_]+\b", expr))
        assert names, f"query names no Sluice metric: {expr}"
        assert names <= exported, f"{expr}: {names - exported} not exported (exported: {sorted(exported)})"
        words = set(re.findall(r"\b[a-z_]+\b(?=\s*\()", expr))
        assert words <= PROMQL_FUNCTIONS, expr


def test_dashboard_has_the_four_sections():
    titles = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] == "row"}
    assert titles == {"Freshness", "Volumes", "Quarantine", "Load throughput and runs"}


@pytest.fixture
def fake_warehouse(monkeypatch):
    @contextmanager
    def connect(dsn=None):
        yield None

    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    row = {
        "pipeline": "p",
        "ok_start": now,
        "ok_end": now,
        "ok_finished": now,
        "last_run_id": "r",
        "last_status": "success",
        "last_finished": now,
        "runs_ok": 4,
        "runs_failed": 1,
        "rows_in": 100,
        "rows_loaded": 97,
        "rows_quarantined": 3,
        "volumes": [["x", 10, 1, "success"]],
        "recent_in": 10,
        "recent_quarantined": 1,
        "intervals": 4,
        "pending_quarantine": 2,
        "empty_intervals": 0,
        "schema_changes": 0,
        "last_schema_change": None,
    }
    monkeypatch.setattr(warehouse, "connect", connect)
    monkeypatch.setattr(warehouse, "overview_rows", lambda conn, n: [row])
    monkeypatch.setattr(
        warehouse, "load_seconds_by_pipeline", lambda conn: {"p": {"seconds": 2.5, "rows_loaded": 97, "chunks": 4}}
    )
    monkeypatch.setattr(report, "load_configs", lambda: ({}, {}))


def scrape(collector) -> dict[str, list]:
    reg = CollectorRegistry()
    reg.register(collector)
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def test_exporter_exports_what_it_declares(fake_warehouse):
    samples = scrape(metrics.WarehouseCollector())
    assert set(samples) <= metrics.exported_names()
    assert samples["sluice_rows_extracted_total"][0].value == 100
    assert samples["sluice_rows_loaded_total"][0].value == 97
    assert samples["sluice_quarantine_rows"][0].value == 2
    assert samples["sluice_load_seconds_total"][0].value == 2.5
    assert {s.labels["state"]: s.value for s in samples["sluice_runs_total"]} == {"success": 4, "failed": 1}
    assert samples["sluice_warehouse_up"][0].value == 1


def test_unreachable_warehouse_exports_up_0_and_no_pipeline_series(monkeypatch):
    monkeypatch.setattr(report, "load_configs", lambda: ({}, {}))
    monkeypatch.delenv("SLUICE_REDIS_URL", raising=False)  # no Redis configured: no breaker can exist
    samples = scrape(metrics.WarehouseCollector("postgresql://nobody@127.0.0.1:1/none"))
    assert set(samples) == {"sluice_warehouse_up", "sluice_circuit_breakers_up"}
    assert samples["sluice_warehouse_up"][0].value == 0 and samples["sluice_circuit_breakers_up"][0].value == 1


def test_breakers_are_exported_per_connection_with_one_current_state(fake_warehouse, monkeypatch):
    from sluice.sources.breaker import BreakerState

    found = {
        "api_a": BreakerState("api_a", "open", 5, 2, 1, 1.0, []),
        "api_b": BreakerState("api_b", "closed", 0, 0, 0, None, []),
    }
    monkeypatch.setattr(report, "read_breakers", lambda: (found, None))
    samples = scrape(metrics.WarehouseCollector())
    assert set(samples) <= metrics.exported_names()
    states = {(s.labels["conn_id"], s.labels["state"]): s.value for s in samples["sluice_circuit_breaker_state"]}
    assert states == {
        ("api_a", "closed"): 0,
        ("api_a", "open"): 1,
        ("api_a", "half_open"): 0,
        ("api_b", "closed"): 1,
        ("api_b", "open"): 0,
        ("api_b", "half_open"): 0,
    }
    assert {s.labels["conn_id"]: s.value for s in samples["sluice_circuit_breaker_opened_total"]} == {
        "api_a": 2,
        "api_b": 0,
    }
    assert samples["sluice_circuit_breakers_up"][0].value == 1


def test_unreachable_redis_exports_breakers_up_0(fake_warehouse, monkeypatch):
    monkeypatch.setenv("SLUICE_REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    samples = scrape(metrics.WarehouseCollector())
    assert samples["sluice_circuit_breakers_up"][0].value == 0
    assert "sluice_circuit_breaker_state" not in samples and samples["sluice_warehouse_up"][0].value == 1


def test_compose_runs_exporter_prometheus_and_grafana():
    services = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"]
    cmd = services["sluice-metrics"]["command"]
    port = cmd[cmd.index("--port") + 1]
    prom = yaml.safe_load((REPO / "config" / "compose" / "prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == [f"sluice-metrics:{port}"]
    assert "./config/compose/grafana/dashboards:/var/lib/grafana/dashboards:ro" in services["grafana"]["volumes"]
    assert services["flower"]["command"] == "celery flower" and services["flower"]["profiles"] == ["flower"]


def test_local_stack_scrapes_its_exporter(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    from stack import environment, supervision

    s = environment.Settings.from_environ(
        {
            "SLUICE_HOME": str(tmp_path),
            "SLUICE_METRICS_PORT": "47001",
            "SLUICE_FLOWER": "1",
            "SLUICE_FLOWER_PORT": "47002",
        }
    )
    progs = supervision.programs(s)
    assert progs["sluice-metrics"]["command"].endswith("-m sluice metrics --host 127.0.0.1 --port 47001")
    assert progs["flower"]["command"].endswith("celery flower --hostname 127.0.0.1 --port 47002")
    assert "- targets: ['127.0.0.1:47001']" in supervision.render_prometheus(s)
    assert ("prometheus" in progs) == environment.PROMETHEUS.exists()
    assert "flower" not in supervision.programs(environment.Settings.from_environ({"SLUICE_HOME": str(tmp_path)}))
