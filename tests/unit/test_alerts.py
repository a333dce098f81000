"""Alert formatting, masking and wiring, without services: every payload must pass the receivers' copy of the
Slack/Discord contracts, stay inside the limits with a 10k-character error, and carry no secret."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "demo"))
from sluice.alerts import (  # noqa: E402
    AlertContext,
    AlertKind,
    Freshness,
    IntervalEndDeadline,
    Rows,
    deadline_callback_kwargs,
    format_discord,
    format_slack,
    make_failure_callback,
    mask_secrets,
    on_deadline_missed,
    run_url,
    task_alert_context,
)
from sluice.alerts.model import COLOURS, Severity  # noqa: E402
from webhook_receiver import embed_size, validate_discord, validate_slack  # noqa: E402

DB_PASSWORD = "Pg-S3cret-9f2d7c"
SLACK_TOKEN = "T0ABC123/B0DEF456/q8wErTy12uIoP34aSdF"
DISCORD_TOKEN = "dk_8h3J-kL0pQ7rS2tU5vW9xY1zA4bC6dE"
LONG_ERROR = (
    f"OperationalError: connection to postgresql://sluice:{DB_PASSWORD}@db:5432/warehouse failed <x> & more; "
    f"posting to https://hooks.slack.com/services/{SLACK_TOKEN} and https://discord.com/api/webhooks/1234/"
    f"{DISCORD_TOKEN}; password={DB_PASSWORD} " + "y" * 10_000
)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_ctx(kind: AlertKind = AlertKind.FAILURE, **over) -> AlertContext:
    base = dict(
        pipeline="orders",
        kind=kind,
        run_id="scheduled__2024-01-01T00:00:00+00:00",
        interval_start=T0,
        interval_end=T0 + timedelta(days=1),
        task_id="load_chunk",
        try_number=4,
        max_tries=4,
        error=LONG_ERROR,
        log_url="http://af:8080/dags/orders/runs/scheduled__2024-01-01T00%3A00%3A00%2B00%3A00/tasks/load_chunk"
        "?try_number=4",
        run_url="http://af:8080/dags/orders/runs/scheduled__2024-01-01T00%3A00%3A00%2B00%3A00",
        rows=Rows(120_000, 90_000, 500, 3),
        generated_at=utc(2024, 1, 2, 2, 0, 3),
    )
    if kind is AlertKind.DEADLINE_MISSED:
        base.update(
            error=None,
            task_id=None,
            try_number=None,
            max_tries=None,
            log_url=None,
            run_state="running",
            deadline="2h after the interval end",
            deadline_time=utc(2024, 1, 2, 2),
            freshness=Freshness(
                utc(2023, 12, 31),
                T0,
                utc(2024, 1, 1, 1, 12),
                "scheduled__2023-12-31",
                "success",
                Rows(1_000_000, 998_700, 1_300),
            ),
        )
    base.update(over)
    return AlertContext(**base)


ALL_KINDS = [AlertKind.FAILURE, AlertKind.RETRY, AlertKind.DEADLINE_MISSED]


# ---------- Slack ----------
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_slack_payload_is_valid_block_kit_within_limits(kind):
    payload = format_slack(make_ctx(kind))
    assert validate_slack(payload) is None
    blocks = payload["blocks"]
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
    fields = blocks[1]["fields"]
    assert blocks[1]["type"] == "section" and 1 <= len(fields) <= 10
    assert all(f["type"] == "mrkdwn" and len(f["text"]) <= 2000 for f in fields)
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section" and "text" in b)
    assert payload["text"] and len(payload["text"]) <= 3000
    labels = [f["text"].split("\n")[0] for f in fields]
    assert labels[:2] == ["*Pipeline*", "*Data interval*"]


def test_slack_failure_has_error_block_truncated_and_escaped():
    blocks = format_slack(make_ctx())["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    text = next(t for t in texts if t.startswith("*Error*"))
    assert len(text) <= 3000 and text.endswith("…```")
    assert "&lt;x&gt; &amp; more" in text  # Slack mrkdwn control characters escaped
    links = next(t for t in texts if t.startswith("<http"))
    assert "|View task log>" in links and "|Open run in Airflow>" in links


def test_slack_header_cut_at_150():
    payload = format_slack(make_ctx(pipeline="p" * 300))
    assert len(payload["blocks"][0]["text"]["text"]) == 150
    assert validate_slack(payload) is None


# ---------- Discord ----------
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_discord_payload_within_limits(kind):
    payload = format_discord(make_ctx(kind))
    assert validate_discord(payload) is None
    embed = payload["embeds"][0]
    assert len(payload["content"]) <= 2000 and len(embed["title"]) <= 256
    assert len(embed.get("description", "")) <= 4096 and len(embed["fields"]) <= 25
    assert all(len(f["name"]) <= 256 and 0 < len(f["value"]) <= 1024 for f in embed["fields"])
    assert embed_size(embed) <= 6000
    assert payload["allowed_mentions"] == {"parse": []}  # an error text cannot @everyone


def test_discord_long_error_truncated_not_rejected():
    embed = format_discord(make_ctx())["embeds"][0]
    assert embed["description"].startswith("```\n") and embed["description"].endswith("…\n```")
    assert len(embed["description"]) == 4096


def test_discord_total_6000_enforced_with_huge_fields():
    ctx = make_ctx(pipeline="p" * 3000, run_id="r" * 3000, task_id="t" * 3000)
    payload = format_discord(ctx)
    assert validate_discord(payload) is None
    assert embed_size(payload["embeds"][0]) <= 6000


@pytest.mark.parametrize(
    ("kind", "severity"),
    [
        (AlertKind.FAILURE, Severity.CRITICAL),
        (AlertKind.DEADLINE_MISSED, Severity.WARNING),
        (AlertKind.RETRY, Severity.NOTICE),
        (AlertKind.QUALITY_WARNING, Severity.WARNING),
        (AlertKind.FRESHNESS_BREACH, Severity.WARNING),
        (AlertKind.FRESHNESS_RECOVERED, Severity.RESOLVED),
    ],
)
def test_discord_colour_by_severity(kind, severity):
    assert format_discord(make_ctx(kind))["embeds"][0]["color"] == COLOURS[severity]
    assert len(set(COLOURS.values())) == len(Severity)


# ---------- masking ----------
@pytest.mark.parametrize("fmt", [format_slack, format_discord])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_no_secret_in_any_payload(fmt, kind):
    text = json.dumps(fmt(make_ctx(kind, error=LONG_ERROR)))
    for secret in (DB_PASSWORD, SLACK_TOKEN, DISCORD_TOKEN, SLACK_TOKEN.split("/")[-1]):
        assert secret not in text


def test_mask_secrets_patterns_and_explicit_values():
    masked = mask_secrets(LONG_ERROR[:400])
    assert "postgresql://sluice:***@db" in masked and "services/***" in masked
    assert "webhooks/1234/***" in masked and "password=***" in masked
    assert mask_secrets("token 'Ab/c d' in 'Ab%2Fc%20d'", ["Ab/c d"]) == "token '***' in '***'"
    assert mask_secrets("no such key Table/Bucket/abcdefghij") == "no such key Table/Bucket/abcdefghij"
    assert (
        mask_secrets('{"api_key": "zzz123"} Authorization: Bearer abcdefgh12345')
        == '{"api_key": "***"} Authorization: Bearer ***'
    )


def test_mask_secrets_uses_airflows_masker():
    from airflow.sdk.log import mask_secret

    mask_secret("registered-elsewhere-42")
    assert mask_secrets("boom: registered-elsewhere-42") == "boom: ***"


def test_secret_straddling_the_cut_is_still_masked():
    """Masking happens before truncation, so a secret cut in half cannot escape the mask."""
    exc = RuntimeError("x" * 2490 + DB_PASSWORD)
    ti = SimpleNamespace(dag_id="orders", run_id="r1", task_id="t", map_index=-1, try_number=1, log_url="http://l")
    ctx = task_alert_context({"ti": ti, "exception": exc}, AlertKind.FAILURE, secrets=[DB_PASSWORD])
    assert DB_PASSWORD[:6] not in ctx.error


# ---------- building the context from Airflow ----------
def test_task_alert_context_from_callback_context():
    ti = SimpleNamespace(
        dag_id="orders",
        run_id="manual__2024-01-05",
        task_id="load_chunk",
        map_index=2,
        try_number=2,
        log_url="http://af/dags/orders/runs/manual__2024-01-05/tasks/load_chunk",
    )
    context = {
        "ti": ti,
        "task": SimpleNamespace(retries=3),
        "exception": ValueError("bad"),
        "params": {"interval_start": "2024-01-03T00:00:00Z", "interval_end": "2024-01-04T00:00:00+00:00"},
        "data_interval_start": None,
        "data_interval_end": None,
    }
    ctx = task_alert_context(context, AlertKind.FAILURE, rows=Rows(loaded=10))
    assert (ctx.interval_start, ctx.interval_end) == (utc(2024, 1, 3), utc(2024, 1, 4))
    assert (ctx.map_index, ctx.try_number, ctx.max_tries, ctx.error) == (2, 2, 4, "ValueError: bad")
    assert ctx.run_url.endswith("/dags/orders/runs/manual__2024-01-05") and ctx.log_url == ti.log_url


def test_run_url_quotes_run_id():
    assert run_url("orders", "scheduled__2024-01-01T00:00:00+00:00").endswith(
        "/dags/orders/runs/scheduled__2024-01-01T00%3A00%3A00%2B00%3A00"
    )
    assert run_url("orders", None) is None


def test_deadline_facts_carry_freshness():
    fields = {f["name"]: f["value"] for f in format_discord(make_ctx(AlertKind.DEADLINE_MISSED))["embeds"][0]["fields"]}
    assert fields["Last loaded interval"].startswith("2023-12-31 00:00 UTC → 2024-01-01 00:00 UTC")
    assert fields["Staleness"] == "data ends 1d 2h ago"
    assert "1,300 quarantined (0.13%)" in fields["Last run"] and fields["Run state"] == "running"
    assert fields["Deadline"] == "2h after the interval end (2024-01-02 02:00 UTC)"
    unavailable = make_ctx(AlertKind.DEADLINE_MISSED, freshness=Freshness(unavailable="warehouse not reachable"))
    assert "unavailable: warehouse not reachable" in json.dumps(format_slack(unavailable))


def test_failure_callbacks_never_raise_and_retry_is_off_by_default():
    callbacks = make_failure_callback(["nope"], warehouse_conn_id=None)
    assert callbacks.on_retry_callback is None
    callbacks.on_failure_callback({})  # no ti at all: logs, does not raise
    assert make_failure_callback(["nope"], on_retry=True).on_retry_callback is not None


# ---------- Airflow wiring ----------
def test_deadline_callback_signature_matches_airflow():
    """The triggerer calls `await cb(**kwargs, context=ctx)` only if accepts_context(cb) (airflow.triggers.callback)."""
    from airflow._shared.module_loading import accepts_context
    from airflow.sdk import AsyncCallback, DeadlineAlert

    assert accepts_context(on_deadline_missed)
    cb = AsyncCallback("sluice_deadline.on_deadline_missed", kwargs={"pipeline": "orders", "channels": ["s"]})
    alert = DeadlineAlert(reference=IntervalEndDeadline(), interval=timedelta(hours=2), callback=cb)
    assert alert.callback.path == "sluice_deadline.on_deadline_missed"


def test_deadline_callback_kwargs_match_the_callback():
    import inspect

    kwargs = deadline_callback_kwargs(
        "orders", ("slack_main",), timedelta(hours=1, minutes=30, seconds=5), warehouse_conn_id="wh"
    )
    assert kwargs == {
        "pipeline": "orders",
        "channels": ["slack_main"],
        "warehouse_conn_id": "wh",
        "deadline": "1h 30m 5s after the interval end",
    }
    inspect.signature(on_deadline_missed).bind(**kwargs, context={})
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert deadline_callback_kwargs("p", [], timedelta(days=1))["deadline"] == "1d after the interval end"


def test_interval_end_reference_serializes_with_class_path():
    from airflow.serialization.encoders import encode_deadline_reference

    assert encode_deadline_reference(IntervalEndDeadline()) == {
        "reference_type": "IntervalEndDeadline",
        "__class_path": "sluice.alerts.callbacks.IntervalEndDeadline",
    }


# ---------- the receivers reject what the real services reject ----------
def test_receivers_reject_like_slack():
    assert validate_slack({}) == "no_text"
    assert (
        validate_slack({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]})
        == "invalid_blocks"
    )
    assert (
        validate_slack({"text": "x", "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}]})
        == "invalid_blocks"
    )
    assert validate_slack({"text": "x", "blocks": [{"type": "nope"}]}) == "invalid_blocks"
    assert validate_slack({"text": "x", "blocks": "header"}) == "invalid_blocks_format"


def test_receivers_reject_like_discord():
    assert validate_discord({"content": ""})["code"] == 50006
    err = validate_discord({"content": "c" * 2001})
    assert err["code"] == 50035 and "content" in err["errors"]
    big = {"title": "t", "description": "d" * 4000, "fields": [{"name": "n", "value": "v" * 1024}] * 3}
    assert validate_discord({"embeds": [big]})["errors"]["embeds"]["_errors"][0]["code"] == "MAX_EMBED_SIZE_EXCEEDED"
    assert "0" in validate_discord({"embeds": [{"title": "t" * 257}]})["errors"]["embeds"]
