"""Alerts delivered through the REAL provider hooks (SlackWebhookHook, DiscordWebhookHook) to loopback receivers
that enforce the Slack/Discord payload contracts. Connections come from AIRFLOW_CONN_* exactly as in production."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS.parent / "demo"))
sys.path.insert(0, str(TESTS.parent / "plugins"))
from sluice.alerts import (  # noqa: E402
    AlertContext,
    AlertKind,
    delivery,
    make_failure_callback,
    on_deadline_missed,
    send_alert,
)
from webhook_receiver import running_receivers, validate_discord, validate_slack  # noqa: E402

pytestmark = pytest.mark.integration
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def rx():
    with running_receivers() as state:
        yield state


@pytest.fixture
def channels(rx, monkeypatch):
    """A Slack and a Discord webhook connection pointing at the receivers, with fresh random tokens."""
    suffix = uuid.uuid4().hex[:8]
    slack_id, discord_id = f"t_slack_{suffix}", f"t_discord_{suffix}"
    slack_token = f"T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/{secrets.token_hex(12)}"
    discord_token = secrets.token_urlsafe(24)
    # Slack: URL = host + "/" + password (SlackWebhookHook._build_conn_params); production host is
    # https://hooks.slack.com/services, or put the whole webhook URL in the password.
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{slack_id.upper()}",
        json.dumps({"conn_type": "slackwebhook", "host": f"{rx.url}/slack", "password": slack_token}),
    )
    # Discord: URL = host + extra.webhook_endpoint; production host is https://discord.com/api/
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{discord_id.upper()}",
        json.dumps(
            {
                "conn_type": "discord",
                "host": f"{rx.url}/api/",
                "extra": {"webhook_endpoint": f"webhooks/987654321/{discord_token}"},
            }
        ),
    )
    return SimpleNamespace(
        slack=slack_id,
        discord=discord_id,
        slack_token=slack_token,
        discord_token=discord_token,
        ids=[slack_id, discord_id],
    )


def failure_ctx(error: str = "ValueError: boom") -> AlertContext:
    return AlertContext(
        pipeline="orders",
        kind=AlertKind.FAILURE,
        run_id="scheduled__2024-01-01T00:00:00+00:00",
        interval_start=T0,
        interval_end=T0 + timedelta(days=1),
        task_id="load_chunk",
        try_number=4,
        max_tries=4,
        error=error,
        log_url="http://localhost:8080/dags/orders/x",
    )


def test_delivers_one_valid_message_per_channel(rx, channels):
    assert send_alert(failure_ctx(), channels.ids) == {channels.slack: "sent", channels.discord: "sent"}
    (slack,), (discord,) = rx.accepted("slack"), rx.accepted("discord")
    assert slack["path"] == f"/slack/{channels.slack_token}"
    assert discord["path"] == f"/api/webhooks/987654321/{channels.discord_token}"
    assert validate_slack(slack["payload"]) is None and validate_discord(discord["payload"]) is None
    assert slack["payload"]["blocks"][0]["type"] == "header"
    assert discord["payload"]["embeds"][0]["title"].endswith("orders: task load_chunk failed")


def test_500_then_200_is_retried_and_logged(rx, channels, caplog):
    rx.fail_next("slack", 1)
    rx.fail_next("discord", 2)
    with caplog.at_level(logging.WARNING, logger="sluice.alerts"):
        result = send_alert(failure_ctx(), channels.ids)
    assert result == {channels.slack: "sent", channels.discord: "sent"}
    assert [r["status"] for r in rx.requests("slack")] == [500, 200]
    assert [r["status"] for r in rx.requests("discord")] == [500, 500, 204]
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 3  # the channels send in parallel threads, so their log lines interleave in any order
    assert sum(f"{channels.slack!r} failed on attempt 1 (HTTP 500)" in m for m in retries) == 1
    assert sum(f"{channels.discord!r} failed on attempt 2 (HTTP 500)" in m for m in retries) == 1


def test_always_500_returns_within_bound_without_raising(rx, channels, caplog):
    rx.fail_next("slack", -1)
    rx.fail_next("discord", -1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="sluice.alerts"):
        result = send_alert(failure_ctx(), channels.ids)
    elapsed = time.monotonic() - started
    assert result == {channels.slack: "failed", channels.discord: "failed"}
    assert elapsed < delivery.SEND_BUDGET + 2
    assert len(rx.requests("slack")) == delivery.ATTEMPTS and len(rx.requests("discord")) == delivery.ATTEMPTS
    assert any("failed after 3 attempt(s)" in r.getMessage() for r in caplog.records)


def test_hanging_receiver_is_cut_by_the_time_bound(rx, channels, monkeypatch):
    monkeypatch.setattr(delivery, "REQUEST_TIMEOUT", 1.0)
    rx.delay = 3.0
    started = time.monotonic()
    result = send_alert(failure_ctx(), [channels.discord], budget=4.0)
    assert time.monotonic() - started < 4.0 + 1.5
    assert result[channels.discord] in ("failed", "timed out")


def test_failure_callback_bounded_when_warehouse_and_webhooks_hang(rx, channels, monkeypatch):
    """The worst case a task can meet: the ledger database and both webhooks accept connections and never answer."""
    import socket

    silent_db = socket.socket()
    silent_db.bind(("127.0.0.1", 0))
    silent_db.listen(8)  # connections queue in the backlog; the PostgreSQL handshake never gets an answer
    monkeypatch.setenv("AIRFLOW_CONN_T_SILENT_DB", f"postgresql://u:p@127.0.0.1:{silent_db.getsockname()[1]}/db")
    rx.delay = 60.0
    ti = SimpleNamespace(
        dag_id="orders",
        run_id="r",
        task_id="t",
        map_index=-1,
        try_number=1,
        log_url=None,
        xcom_pull=lambda task_ids: None,
    )
    callbacks = make_failure_callback(channels.ids, warehouse_conn_id="t_silent_db")
    started = time.monotonic()
    try:
        callbacks.on_failure_callback({"ti": ti, "exception": RuntimeError("boom")})
    finally:
        silent_db.close()
    assert time.monotonic() - started < 20


def test_missing_connection_warns_and_others_still_send(rx, channels, caplog):
    with caplog.at_level(logging.WARNING, logger="sluice.alerts"):
        result = send_alert(failure_ctx(), ["no_such_alert_conn", channels.slack])
    assert result == {"no_such_alert_conn": "skipped: no connection", channels.slack: "sent"}
    assert any("'no_such_alert_conn' is not configured" in r.getMessage() for r in caplog.records)
    assert len(rx.accepted("slack")) == 1


def test_unusable_connections_are_skipped(rx, channels, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_T_WRONG_TYPE", json.dumps({"conn_type": "http", "host": rx.url}))
    monkeypatch.setenv("AIRFLOW_CONN_T_NO_TOKEN", json.dumps({"conn_type": "slackwebhook", "host": rx.url}))
    with caplog.at_level(logging.WARNING, logger="sluice.alerts"):
        result = send_alert(failure_ctx(), ["t_wrong_type", "t_no_token", channels.discord])
    assert result == {
        "t_wrong_type": "skipped: not usable",
        "t_no_token": "skipped: not usable",
        channels.discord: "sent",
    }


def test_rejected_payload_is_not_retried(rx, channels, monkeypatch):
    """A 400 from the service means our payload is wrong: retrying cannot help, and the receiver says why."""
    from sluice.alerts.model import ChannelKind

    monkeypatch.setitem(delivery.FORMATTERS, ChannelKind.SLACK, lambda ctx: {"blocks": [{"type": "bogus"}]})
    assert send_alert(failure_ctx(), [channels.slack]) == {channels.slack: "rejected: HTTP 400"}
    assert [(r["status"], r["error"]) for r in rx.requests("slack")] == [(400, "invalid_blocks")]


def test_no_token_or_password_in_payloads_or_logs(rx, channels, monkeypatch, caplog):
    """The failure callback path end to end: error text full of secrets, a real warehouse-like connection."""
    db_password = "pw-" + secrets.token_hex(10)
    monkeypatch.setenv("AIRFLOW_CONN_T_SOURCE_DB", f"postgresql://etl:{db_password}@127.0.0.1:1/source")
    error = RuntimeError(
        f"could not connect to postgresql://etl:{db_password}@127.0.0.1:1/source (password {db_password}); "
        f"while posting to {rx.url}/slack/{channels.slack_token} and webhooks/987654321/{channels.discord_token}"
    )
    ti = SimpleNamespace(
        dag_id="orders",
        run_id="manual__x",
        task_id="extract_and_stage",
        map_index=-1,
        try_number=3,
        log_url="http://localhost:8080/dags/orders/runs/manual__x/tasks/e",
        xcom_pull=lambda task_ids: [{"rows": 7}, {"rows": 5}],
    )
    callbacks = make_failure_callback(channels.ids, warehouse_conn_id=None, mask_conn_ids=["t_source_db"])
    with caplog.at_level(logging.DEBUG):
        callbacks.on_failure_callback({"ti": ti, "task": SimpleNamespace(retries=2), "exception": error})
    assert len(rx.accepted("slack")) == 1 and len(rx.accepted("discord")) == 1
    bodies = "\n".join(r["raw"] for r in rx.requests())
    # What we and the hooks log at INFO and above (a task log's default level) is clean as emitted; DEBUG records of
    # libraries (urllib3 prints request paths) are clean once Airflow's masker, which we taught the tokens, runs
    # over them as it does over every task log line.
    from airflow.sdk.log import redact

    info_logs = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    debug_logs = redact(caplog.text)
    for secret in (db_password, channels.slack_token, channels.slack_token.split("/")[-1], channels.discord_token):
        assert secret not in bodies, "secret in an alert payload"
        assert secret not in info_logs, "secret in the log"
        assert secret not in debug_logs, "secret in a debug log after Airflow's masking"
    assert "12 extracted" in bodies and "try 3" in bodies


def deadline_context(pipeline: str) -> dict:
    """The context Airflow 3.3's scheduler builds in Deadline.handle_miss (DAGRunResponse dumped as JSON)."""
    return {
        "dag_run": {
            "dag_run_id": "scheduled__2024-01-02T00:00:00+00:00",
            "dag_id": pipeline,
            "logical_date": "2024-01-02T00:00:00Z",
            "data_interval_start": "2024-01-02T00:00:00Z",
            "data_interval_end": "2024-01-03T00:00:00Z",
            "run_type": "scheduled",
            "state": "running",
            "conf": {},
            "run_after": "2024-01-03T00:00:00Z",
        },
        "deadline": {"id": str(uuid.uuid4()), "deadline_time": datetime(2024, 1, 3, 2, tzinfo=UTC)},
    }


@pytest.fixture
def ledger(pg, pg_schema):
    """run_summary and load_ledger as the loading contract defines them, in a throwaway schema."""
    pg.execute(
        f'CREATE TABLE "{pg_schema}".run_summary (pipeline text, run_id text, interval_start timestamptz,'
        " interval_end timestamptz, rows_in bigint, rows_loaded bigint, rows_quarantined bigint,"
        " status text, finished_at timestamptz)"
    )
    pg.execute(
        f'CREATE TABLE "{pg_schema}".load_ledger (pipeline text, interval_start timestamptz,'
        " interval_end timestamptz, run_id text, chunk int, rows_in bigint, rows_loaded bigint,"
        " rows_quarantined bigint, finished_at timestamptz)"
    )
    pg.execute(
        f'INSERT INTO "{pg_schema}".run_summary VALUES'
        " ('orders', 'scheduled__2023-12-31', '2023-12-31', '2024-01-01', 1000, 990, 10, 'success',"
        "  '2024-01-01 01:10+00'),"
        " ('orders', 'scheduled__2024-01-01', '2024-01-01', '2024-01-02', 2000, 0, 0, 'failed',"
        "  '2024-01-02 01:30+00'),"
        " ('other', 'scheduled__2024-01-01', '2024-01-01', '2024-01-02', 5, 5, 0, 'success', now())"
    )
    pg.execute(
        f'INSERT INTO "{pg_schema}".load_ledger VALUES'
        " ('orders', '2024-01-02', '2024-01-03', 'scheduled__2024-01-02T00:00:00+00:00', 0, 250, 240, 10,"
        "  now())"
    )
    return pg_schema


def test_deadline_callback_posts_freshness_to_both(rx, channels, ledger):
    result = asyncio.run(
        on_deadline_missed(
            pipeline="orders",
            channels=channels.ids,
            deadline="2h after the interval end",
            ledger_schema=ledger,
            context=deadline_context("orders"),
        )
    )
    assert result == f"{channels.slack}: sent; {channels.discord}: sent"
    fields = {f["name"]: f["value"] for f in rx.accepted("discord")[0]["payload"]["embeds"][0]["fields"]}
    assert fields["Last loaded interval"].startswith("2023-12-31 00:00 UTC → 2024-01-01 00:00 UTC")
    assert fields["Last run"].startswith("failed · 2,000 extracted")
    assert fields["This run so far"] == "250 extracted · 240 loaded · 10 quarantined (4.00%) · 1 chunk(s)"
    assert fields["Run state"] == "running" and "Staleness" in fields
    slack_text = json.dumps(rx.accepted("slack")[0]["payload"])
    assert "*Last loaded interval*" in slack_text and "Open run in Airflow" in slack_text


def test_deadline_callback_through_airflows_callback_trigger(rx, channels, ledger):
    """Run it exactly as the triggerer does: CallbackTrigger imports the path and awaits it with the context."""
    from airflow.triggers.callback import CallbackTrigger

    kwargs = {
        "pipeline": "orders",
        "channels": channels.ids,
        "deadline": "2h after the interval end",
        "ledger_schema": ledger,
        "context": deadline_context("orders"),
    }
    trigger = CallbackTrigger("sluice_deadline.on_deadline_missed", kwargs)

    async def events():
        return [e.payload async for e in trigger.run()]

    states = asyncio.run(events())
    assert [s["state"] for s in states] == ["running", "success"]
    assert states[-1]["body"] == f"{channels.slack}: sent; {channels.discord}: sent"
    assert len(rx.accepted("slack")) == 1 and len(rx.accepted("discord")) == 1


def test_deadline_callback_without_warehouse_still_alerts(rx, channels, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_T_DEAD_DB", "postgresql://u:p4ssw0rd-x@127.0.0.1:1/db")
    result = asyncio.run(
        on_deadline_missed(
            pipeline="orders", channels=channels.ids, warehouse_conn_id="t_dead_db", context=deadline_context("orders")
        )
    )
    assert result.count("sent") == 2
    assert "Freshness" in json.dumps(rx.accepted("slack")[0]["payload"])


def test_no_bookkeeping_tables_yet_means_nothing_loaded(pg_schema):
    """Before a pipeline's first load creates run_summary/load_ledger, the alert says "none loaded", not
    "freshness unavailable" (which would hide a real outage of the warehouse behind an empty stack)."""
    from sluice.alerts import Freshness, read_warehouse

    fresh, rows = read_warehouse("sluice_warehouse", "orders", "scheduled__2024-01-02", schema=pg_schema)
    assert fresh == Freshness() and rows is None
