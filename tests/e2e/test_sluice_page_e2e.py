"""The Sluice page in the Airflow UI (plugins/sluice_ui.py): a logged-in user sees every pipeline with the numbers the
warehouse holds (checked with SQL written here, independently of sluice.loading.sql.dashboard), follows a link to a
run; an anonymous request is refused. Fixture pipeline: tests/e2e/pipelines/e2e_health.yaml."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
from sluice.connections import pg_dsn

DAG = "e2e_health"
DAYS = ("2020-01-01", "2020-01-02", "2020-01-03")  # 10 rows (2 quarantined), 0 rows, 5 rows (1 quarantined)


def conf(day: str) -> dict:
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    return {"interval_start": start.isoformat(), "interval_end": (start + timedelta(days=1)).isoformat()}


def sql(query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(pg_dsn("sluice_warehouse"), autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


# the latest generation of each interval, written as a NOT EXISTS (the page's SQL uses a window)
LATEST = (
    "FROM sluice.run_summary s WHERE NOT EXISTS (SELECT FROM sluice.run_summary l WHERE l.pipeline = s.pipeline"
    " AND l.interval_start = s.interval_start AND l.interval_end = s.interval_end AND l.generation > s.generation)"
)


def warehouse_figures() -> dict[str, dict]:
    rows = sql(
        "SELECT pipeline, sum(rows_quarantined), count(*) FILTER (WHERE rows_in = 0 AND status = 'success'),"
        f" count(*), max(interval_end) FILTER (WHERE status = 'success') {LATEST} GROUP BY pipeline"
    )
    last = dict(
        sql(
            "SELECT DISTINCT ON (pipeline) pipeline, run_id FROM sluice.run_summary ORDER BY pipeline, finished_at DESC"
        )
    )
    changes = dict(sql("SELECT pipeline, count(*) FROM sluice.schema_changes GROUP BY pipeline"))
    return {
        p: {
            "quarantine": int(q),
            "empty": int(e),
            "intervals": int(n),
            "ok_end": end,
            "last_run": last[p],
            "changes": int(changes.get(p, 0)),
        }
        for p, q, e, n, end in rows
    }


@pytest.fixture(scope="module")
def history(api):
    api.wait_for_dag(DAG)
    api.unpause(DAG)
    runs = []
    for day in DAYS:
        run_id = api.trigger(DAG, conf=conf(day))
        state = api.wait_for_run(DAG, run_id, timeout=300)
        assert state == "success", f"{DAG} {run_id} ended {state}: {api.task_instances(DAG, run_id)}"
        runs.append(run_id)
    return runs


def cell(page, pipeline: str, col: str) -> str:
    return page.locator(f'tr[data-pipeline="{pipeline}"] td[data-col="{col}"]').inner_text().strip()


def test_anonymous_requests_are_refused(api):
    for path in ("/sluice/", "/sluice/api/overview", f"/sluice/pipelines/{DAG}"):
        r = requests.get(api.base_url + path, timeout=120, allow_redirects=False)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
    bad = requests.get(api.base_url + "/sluice/", headers={"Authorization": "Bearer not-a-jwt"}, timeout=120)
    assert bad.status_code in (401, 403)


def test_sluice_page_shows_the_warehouse_numbers_and_links_to_the_run(api, page, history):
    figures = warehouse_figures()
    assert figures[DAG] == {
        "quarantine": 3,
        "empty": 1,
        "intervals": 3,
        "ok_end": datetime(2020, 1, 4, tzinfo=UTC),
        "last_run": history[-1],
        "changes": figures[DAG]["changes"],  # creating the table may be recorded as a change
    }
    page.goto(api.base_url + "/sluice/")
    page.locator("#pipelines").wait_for()
    for name, f in figures.items():
        assert cell(page, name, "quarantine_rows") == f"{f['quarantine']:,}", name
        assert cell(page, name, "0_row_intervals") == f"{f['empty']:,}", name
        assert cell(page, name, "schema_changes") == f"{f['changes']:,}", name
        if f["ok_end"] is not None:
            assert cell(page, name, "last_loaded_interval").endswith(f"{f['ok_end']:%Y-%m-%d %H:%M}"), name
        bars = page.locator(f'tr[data-pipeline="{name}"] td[data-col="rows_per_interval"] rect')
        assert bars.count() == min(30, f["intervals"]), name
    row = f'tr[data-pipeline="{DAG}"]'
    assert cell(page, DAG, "source") == "sql" and cell(page, DAG, "schedule") == "@daily"
    assert cell(page, DAG, "quarantine_rate") == "20.00%"  # 3 of 15 rows
    assert page.locator(f"{row} .state").first.inner_text() == "ok"
    assert page.locator('tr[data-pipeline="e2e_broken_pipeline"] .state').first.inner_text() == "invalid file"
    # the demo's HTTP source has a circuit breaker: its state as Redis holds it (none seen yet: closed)
    from sluice.sources import breaker

    seen = breaker.state("sluice_demo_api")
    assert cell(page, "api_customers", "circuit_breaker").split()[0] == (seen.state if seen else "closed")
    assert cell(page, DAG, "circuit_breaker") == ""  # a SQL source without a breaker
    listed = {e.get_attribute("data-pipeline") for e in page.locator("tr[data-pipeline]").all()}
    for name in listed - set(figures):  # valid files without a run summary
        state = page.locator(f'tr[data-pipeline="{name}"] .state').first.inner_text()
        assert state in ("never ran", "invalid file"), (name, state)

    page.goto(f"{api.base_url}/sluice/pipelines/{DAG}")
    history_rows = page.locator("#history tbody tr")
    assert history_rows.count() == 3
    assert [c.strip() for c in history_rows.nth(1).locator("td").all_inner_texts()[4:6]] == ["0", "0"]
    reasons = page.locator("#reasons tbody tr")
    assert reasons.count() == 1 and "expect_column_values_to_be_between" in reasons.first.inner_text()
    assert reasons.first.locator("td").nth(3).inner_text() == "3"

    # inside the Airflow UI: the nav entry's page embeds ours; its run link opens the run in the top window
    page.goto(api.base_url + "/plugin/sluice")
    frame = page.frame_locator("iframe")
    frame.locator(f"{row} a.run-link").click()
    page.wait_for_url(re.compile(rf"/dags/{DAG}/runs/"), timeout=60_000)
    assert history[-1] in requests.utils.unquote(page.url)
    page.get_by_text(history[-1]).first.wait_for(timeout=60_000)


def test_warehouse_down_is_shown_not_a_stack_trace():
    from sluice.health import report

    ov = report.read_overview(dsn="postgresql://nobody@127.0.0.1:1/none")
    assert ov.warehouse_error and "not reachable" in ov.warehouse_error
    assert any(h.name == DAG for h in ov.pipelines)  # the files are still listed


def prometheus(path: str, **params) -> dict:
    port = os.environ.get("SLUICE_PROMETHEUS_PORT", "29090")
    r = requests.get(f"http://127.0.0.1:{port}/api/v1/{path}", params=params, timeout=60)
    r.raise_for_status()
    return r.json()["data"]


def poll(fn, timeout: float = 240):
    """fn() until it returns something true; the last value otherwise (the assertion then shows it)."""
    deadline, value = time.time() + timeout, None
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(3)
    return value


def test_prometheus_scrapes_the_exporter_and_holds_the_warehouse_row_counts(history):
    assert Path("/usr/bin/prometheus").exists(), "Prometheus is missing: as root, make install installs it"

    def up() -> list:
        targets = prometheus("targets")["activeTargets"]
        return [t for t in targets if t["labels"]["job"] == "sluice" and t["health"] == "up"]

    assert poll(up), prometheus("targets")["activeTargets"]
    expected = {p: float(n) for p, n in sql("SELECT pipeline, sum(rows_in) FROM sluice.run_summary GROUP BY pipeline")}
    mine = sql("SELECT sum(rows_in) FROM sluice.run_summary WHERE pipeline = %s AND run_id = ANY(%s)", (DAG, history))
    assert mine == [(15,)]  # this module's three runs: 10 + 0 + 5 rows

    def scraped() -> dict:
        result = prometheus("query", query="sluice_rows_extracted_total")["result"]
        got = {r["metric"]["pipeline"]: float(r["value"][1]) for r in result}
        return got if got == expected else {}

    assert poll(scraped) == expected
    quarantined = prometheus("query", query=f'sluice_quarantine_rows{{pipeline="{DAG}"}}')["result"]
    assert float(quarantined[0]["value"][1]) == 3
