"""Data Docs (validate/docs.py): merging chunk results, GX's renderer, the on-demand page of a run, the link in
alerts. Real GX Core and a file:// staging directory; no services."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
from sluice.alerts.formats import format_discord, format_slack
from sluice.alerts.model import AlertContext, AlertKind
from sluice.config import PipelineConfig
from sluice.interval import Interval
from sluice.staging import StagingStore
from sluice.validate.docs import (
    DOCS_NAME,
    docs_path,
    merge_results,
    read_run_docs_by_key,
    render_html,
    write_run_docs,
)
from sluice.validate.suite import run_suite

INTERVAL = Interval(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))


def _cfg(staging: str) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": "orders",
            "start_date": "2024-01-01",
            "source": {"kind": "s3", "bucket": "landing", "prefix": "x/", "format": "csv"},
            "staging": {"url": staging},
            "target": {
                "schema": "s",
                "table": "t",
                "primary_key": ["id"],
                "columns": [{"name": "id", "type": "bigint", "nullable": False}, {"name": "status", "type": "text"}],
            },
            "expectations": [
                {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["paid"]}},
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}, "severity": "fail"},
            ],
        }
    )


def _docs(cfg: PipelineConfig) -> list[dict]:
    specs = list(enumerate(cfg.expectations))
    chunks = [
        pd.DataFrame({"id": [1, 2, 3], "status": ["paid", "lost", "paid"]}),
        pd.DataFrame({"id": [4, 5], "status": ["gone", "x"]}),
    ]
    return [run_suite(df, specs, f"orders.chunk{i}")[1] for i, df in enumerate(chunks)]


def test_merged_results_sum_the_chunks_and_keep_the_config_order(tmp_path):
    cfg = _cfg(f"file://{tmp_path}")
    merged = merge_results(_docs(cfg), "orders", "manual__1", {"chunks": 2})
    in_set, not_null = merged["results"]
    assert in_set["expectation_config"]["type"] == "expect_column_values_to_be_in_set"
    assert in_set["result"]["element_count"] == 5 and in_set["result"]["unexpected_count"] == 3
    assert sorted(in_set["result"]["partial_unexpected_list"]) == ["gone", "lost", "x"]
    assert not in_set["success"] and not_null["success"] and not merged["success"]
    assert merged["statistics"]["evaluated_expectations"] == 2 and merged["statistics"]["successful_expectations"] == 1


def test_the_page_names_every_expectation_its_severity_and_the_run(tmp_path):
    cfg = _cfg(f"file://{tmp_path}")
    html = render_html(cfg, merge_results(_docs(cfg), "orders", "manual__1", {"chunks": 2}))
    assert "expect_column_values_to_be_in_set" in html and "expect_column_values_to_not_be_null" in html
    assert "Sluice run summary" in html and "quarantine" in html and "fail" in html
    assert "manual__1" in html and "3 unexpected values found" in html
    assert 'href="../' not in html  # GX's docs-site links are neutralised: the page stands alone


def test_the_gate_writes_the_page_beside_the_generation_and_the_route_finds_it(tmp_path):
    cfg = _cfg(f"file://{tmp_path}")
    store = StagingStore(cfg.staging, cfg.name, INTERVAL, "manual__1", 7)
    keys = []
    for i, doc in enumerate(_docs(cfg)):
        keys.append(store.derived_key(i, "gx", ext="json"))
        store.write_bytes(keys[-1], json.dumps(doc).encode())
    key = write_run_docs(cfg, store, keys)
    assert key == store._url(f"{store.root}/{DOCS_NAME}") and store.exists(key)
    assert write_run_docs(cfg, store, ["", ""]) is None  # no suite ran: no page
    page = read_run_docs_by_key(cfg, INTERVAL.key, "manual__1")
    assert page == store.read_bytes(key)
    assert read_run_docs_by_key(cfg, "not-an-interval", "manual__1") is None
    assert read_run_docs_by_key(None, INTERVAL.key, "manual__1") is None


def test_a_run_that_failed_before_its_gate_gets_its_page_on_demand(tmp_path):
    cfg = _cfg(f"file://{tmp_path}")
    old = StagingStore(cfg.staging, cfg.name, INTERVAL, "manual__2", 1)
    new = StagingStore(cfg.staging, cfg.name, INTERVAL, "manual__2", 2)
    docs = _docs(cfg)
    old.write_bytes(old.derived_key(0, "gx", ext="json"), json.dumps(docs[0]).encode())
    new.write_bytes(new.derived_key(0, "gx", ext="json"), json.dumps(docs[1]).encode())
    page = read_run_docs_by_key(cfg, INTERVAL.key, "manual__2")
    assert page is not None and b"2 unexpected values found" in page  # the latest generation's chunk only
    assert new.exists(new._url(f"{new.root}/{DOCS_NAME}")) and not old.exists(old._url(f"{old.root}/{DOCS_NAME}"))
    assert read_run_docs_by_key(cfg, INTERVAL.key, "manual__none") is None


def test_alerts_link_the_data_docs():
    url = "http://af:8080" + docs_path("orders", INTERVAL, "scheduled__2024-03-01T00:00:00+00:00")
    assert url.endswith(
        "/sluice/datadocs/orders/20240301T000000Z_20240302T000000Z/scheduled__2024-03-01T00%3A00%3A00%2B00%3A00"
    )
    ctx = AlertContext(pipeline="orders", kind=AlertKind.FAILURE, run_id="r", docs_url=url)
    assert f"<{url}|Data Docs>" in json.dumps(format_slack(ctx))
    assert f"[Data Docs]({url})" in json.dumps(format_discord(ctx))
