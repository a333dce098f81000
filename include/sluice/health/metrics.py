"""Prometheus metrics per pipeline, read from the warehouse at scrape time (a custom collector over the same report
as the Sluice page), served by `python -m sluice metrics` on loopback. A separate process, not the plugin's app,
because Prometheus cannot log in to Airflow's UI; it exposes only counts and times, no row data.

Counters are sums over sluice.run_summary (one row per run, its latest generation) and the ledger; they only grow
while nothing deletes bookkeeping rows. `sluice_warehouse_up` is 0 when the warehouse cannot be read (then no
pipeline series are exported, rather than zeros)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sluice.health import report, warehouse

if TYPE_CHECKING:
    from collections.abc import Iterator

# name -> (type, help, labels); the Grafana dashboard's queries are checked against these names
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "sluice_warehouse_up": ("gauge", "1 when the warehouse could be read at this scrape", ()),
    "sluice_pipeline_info": (
        "gauge",
        "One series per pipeline: its source kind, schedule and state",
        ("pipeline", "source_kind", "schedule", "state"),
    ),
    "sluice_rows_extracted": ("counter", "Rows extracted, over all runs' latest generations", ("pipeline",)),
    "sluice_rows_loaded": ("counter", "Rows loaded (inserted, updated, unchanged, superseded)", ("pipeline",)),
    "sluice_rows_quarantined": ("counter", "Rows quarantined, over all runs' latest generations", ("pipeline",)),
    "sluice_load_seconds": ("counter", "Seconds in COPY and MERGE of all chunks (the ledger)", ("pipeline",)),
    "sluice_ledger_rows_loaded": ("counter", "Rows loaded by the chunks the ledger timed", ("pipeline",)),
    "sluice_runs": ("counter", "Run summaries by status", ("pipeline", "state")),
    "sluice_last_loaded_interval_end_timestamp_seconds": (
        "gauge",
        "End of the last successfully loaded interval (Unix time)",
        ("pipeline",),
    ),
    "sluice_last_loaded_interval_lag_seconds": (
        "gauge",
        "How far the last loaded interval is behind the schedule's latest complete interval",
        ("pipeline",),
    ),
    "sluice_quarantine_rows": ("gauge", "Quarantine rows of the latest generation of every interval", ("pipeline",)),
    "sluice_last_interval_rows": ("gauge", "Rows extracted in the newest interval (latest generation)", ("pipeline",)),
    "sluice_overdue_intervals": ("gauge", "Intervals after the last loaded one past their deadline", ("pipeline",)),
    "sluice_circuit_breakers_up": ("gauge", "1 when the circuit breakers could be read from Redis", ()),
    "sluice_circuit_breaker_state": (
        "gauge",
        "1 for the breaker's current state (closed, open, half_open), 0 for the others; per source connection",
        ("conn_id", "state"),
    ),
    "sluice_circuit_breaker_opened": ("counter", "Times the breaker opened from closed", ("conn_id",)),
    "sluice_circuit_breaker_probes": ("counter", "Probe requests let through a half-open breaker", ("conn_id",)),
}
BREAKER_STATES = ("closed", "open", "half_open")


def _family(name: str) -> Any:
    kind, doc, labels = METRICS[name]
    if kind == "counter":
        return CounterMetricFamily(name, doc, labels=list(labels))
    return GaugeMetricFamily(name, doc, labels=list(labels))


def exported_names() -> set[str]:
    """Every sample name the endpoint can export (counters get `_total` and `_created` as prometheus-client does)."""
    out = set()
    for name, (kind, _, _) in METRICS.items():
        out |= {f"{name}_total", f"{name}_created"} if kind == "counter" else {name}
    return out


class WarehouseCollector(Collector):
    """Reads the warehouse once per scrape (one overview statement, one ledger statement)."""

    def __init__(self, dsn: str | None = None) -> None:
        self.dsn = dsn

    def describe(self) -> Iterator[Any]:
        for name in METRICS:
            yield _family(name)

    def collect(self) -> Iterator[Any]:
        now = datetime.now(UTC)
        fam = {name: _family(name) for name in METRICS}
        yield from _breaker_families(fam)
        configs, invalid = report.load_configs()
        try:
            with warehouse.connect(self.dsn) as conn:
                rows = warehouse.overview_rows(conn, 1)
                seconds = warehouse.load_seconds_by_pipeline(conn)
                runs = _runs_by_state(rows)
        except warehouse.WarehouseUnavailable:
            fam["sluice_warehouse_up"].add_metric([], 0)
            yield fam["sluice_warehouse_up"]
            return
        fam["sluice_warehouse_up"].add_metric([], 1)
        for h in report.build(configs, invalid, rows, now):
            p = [h.name]
            fam["sluice_pipeline_info"].add_metric([h.name, h.source_kind or "", h.schedule or "", h.state], 1)
            if h.last_status is None:
                continue
            fam["sluice_rows_extracted"].add_metric(p, h.rows_in)
            fam["sluice_rows_loaded"].add_metric(p, h.rows_loaded)
            fam["sluice_rows_quarantined"].add_metric(p, h.rows_quarantined)
            fam["sluice_quarantine_rows"].add_metric(p, h.pending_quarantine)
            if h.volumes:
                fam["sluice_last_interval_rows"].add_metric(p, h.volumes[-1][1])
            if h.ok_end is not None:
                fam["sluice_last_loaded_interval_end_timestamp_seconds"].add_metric(p, h.ok_end.timestamp())
            if h.lag is not None:
                fam["sluice_last_loaded_interval_lag_seconds"].add_metric(p, h.lag.total_seconds())
            if h.overdue is not None:
                fam["sluice_overdue_intervals"].add_metric(p, h.overdue)
            for state, n in runs.get(h.name, {}).items():
                fam["sluice_runs"].add_metric([h.name, state], n)
            if h.name in seconds:
                fam["sluice_load_seconds"].add_metric(p, float(seconds[h.name]["seconds"] or 0))
                fam["sluice_ledger_rows_loaded"].add_metric(p, int(seconds[h.name]["rows_loaded"] or 0))
        yield from fam.values()


def _breaker_families(fam: dict[str, Any]) -> Iterator[Any]:
    """The circuit breakers from Redis, read whether or not the warehouse is up (they are Redis's, not its)."""
    breakers, error = report.read_breakers()
    fam["sluice_circuit_breakers_up"].add_metric([], 0 if error else 1)
    for conn_id, b in sorted((breakers or {}).items()):
        for state in BREAKER_STATES:
            fam["sluice_circuit_breaker_state"].add_metric([conn_id, state], 1 if b.state == state else 0)
        fam["sluice_circuit_breaker_opened"].add_metric([conn_id], b.opened)
        fam["sluice_circuit_breaker_probes"].add_metric([conn_id], b.probes)
    for name in METRICS:
        if name.startswith("sluice_circuit_breaker"):
            yield fam.pop(name)


def _runs_by_state(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    return {r["pipeline"]: {"success": int(r["runs_ok"] or 0), "failed": int(r["runs_failed"] or 0)} for r in rows}


def serve(host: str, port: int, dsn: str | None = None) -> None:
    """Serve /metrics until interrupted (prometheus-client's WSGI app on wsgiref, one thread per scrape)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(WarehouseCollector(dsn))
    server, thread = start_http_server(port, addr=host, registry=registry)
    thread.join()
