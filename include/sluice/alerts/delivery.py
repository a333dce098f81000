"""Delivery through the provider hooks: every channel on its own thread, a few retries with backoff, a hard
time bound. Nothing here raises into the caller: an alert must never fail or hang the task it reports on."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from sluice.alerts.formats import FORMATTERS
from sluice.alerts.model import AlertContext, ChannelKind, connection_secrets, get_connection, mask_secrets

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 4.0  # seconds per HTTP attempt
ATTEMPTS = 3  # per channel
SEND_BUDGET = 13.0  # seconds for one alert to all channels (in parallel); with DB_TIMEOUT, a callback ends < 20 s


class _Transient(Exception):
    """Worth another attempt: 5xx, 429, timeouts, connection errors."""


_QUIET = logging.getLogger("sluice.alerts.slack_sdk")  # slack_sdk logs the webhook URL at DEBUG; never let it
_QUIET.setLevel(logging.WARNING)


def _slack_sender(conn_id: str) -> Callable[[dict, float], tuple[int, str]]:
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    client = SlackWebhookHook(
        slack_webhook_conn_id=conn_id, timeout=int(REQUEST_TIMEOUT), retry_handlers=[], logger=_QUIET
    ).client  # raises here if the connection has no token

    def send(payload: dict, timeout: float) -> tuple[int, str]:
        resp = client.send_dict(payload)
        return resp.status_code, str(resp.body)

    return send


def _discord_sender(conn_id: str) -> Callable[[dict, float], tuple[int, str]]:
    from airflow.providers.discord.hooks.discord_webhook import DiscordWebhookHook

    hook = DiscordWebhookHook(http_conn_id=conn_id)  # raises here if the endpoint is missing or malformed

    def send(payload: dict, timeout: float) -> tuple[int, str]:
        resp = hook.run(
            endpoint=hook.webhook_endpoint,
            data=json.dumps(payload),
            headers={"Content-Type": "application/json"},
            extra_options={"timeout": timeout, "check_response": False},
        )
        return resp.status_code, resp.text

    return send


SENDERS = {ChannelKind.SLACK: _slack_sender, ChannelKind.DISCORD: _discord_sender}


def _deliver(conn_id: str, ctx: AlertContext, deadline: float, secrets: Iterable[str] = ()) -> str:
    from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

    try:
        conn_type = get_connection(conn_id).conn_type
    except Exception as exc:
        log.warning(
            "Alert channel %r is not configured (%s); skipping it, other channels still send",
            conn_id,
            type(exc).__name__,
        )
        return "skipped: no connection"
    try:
        kind = ChannelKind(conn_type)
        send = SENDERS[kind](conn_id)
    except Exception as exc:
        log.warning(
            "Alert channel %r (conn_type %r) is not usable: %s; expected conn_type one of %s",
            conn_id,
            conn_type,
            mask_secrets(str(exc), secrets),
            [k.value for k in ChannelKind],
        )
        return "skipped: not usable"
    payload = FORMATTERS[kind](ctx)
    # the triggerer logs a deadline callback without dag_id/run_id: every line says which pipeline it is about
    subject = ctx.pipeline + (f" run {ctx.run_id}" if ctx.run_id else "")
    about = f"{ctx.kind.value} alert for {subject}"

    enough_attempts = stop_after_attempt(ATTEMPTS)

    def stop(state: Any) -> bool:
        """After ATTEMPTS attempts, or when the budget leaves no time for another request."""
        return enough_attempts(state) or deadline - time.monotonic() < REQUEST_TIMEOUT + 0.5

    def log_retry(state: Any) -> None:
        log.warning(
            "Alert to %r failed on attempt %d (%s); retrying in %.1fs (%s)",
            conn_id,
            state.attempt_number,
            state.outcome.exception(),
            state.next_action.sleep,
            about,
        )

    try:
        for attempt in Retrying(
            stop=stop,
            reraise=False,
            wait=wait_exponential(multiplier=0.5, max=4),
            before_sleep=log_retry,
            retry=retry_if_exception_type(_Transient),
        ):
            with attempt:
                try:
                    status, body = send(payload, REQUEST_TIMEOUT)
                except Exception as exc:  # network trouble; the text may hold the URL, so mask it
                    raise _Transient(f"{type(exc).__name__}: {mask_secrets(str(exc), secrets)[:300]}") from None
                if status == 429 or status >= 500:
                    raise _Transient(f"HTTP {status}")
        if status >= 300:
            log.error(
                "Alert to %r rejected with HTTP %d: %s (%s)", conn_id, status, mask_secrets(body[:500], secrets), about
            )
            return f"rejected: HTTP {status}"
    except RetryError as exc:
        log.error(
            "Alert to %r failed after %d attempt(s): %s (%s)",
            conn_id,
            exc.last_attempt.attempt_number,
            exc.last_attempt.exception(),
            about,
        )
        return "failed"
    log.info("Alert (%s) sent to %r for %s", ctx.kind.value, conn_id, subject)
    return "sent"


def send_alert(
    ctx: AlertContext, channels: Sequence[str], *, secrets: Iterable[str] = (), budget: float = SEND_BUDGET
) -> dict[str, str]:
    """Post to every channel in parallel; returns conn_id -> outcome. Never raises; returns within ~budget s.
    `secrets` (e.g. database passwords) are masked out of the error text, as are the channels' own tokens."""
    secrets = {*secrets, *connection_secrets(channels)}
    if ctx.error:
        ctx = replace(ctx, error=mask_secrets(ctx.error, secrets))
    deadline = time.monotonic() + budget
    results = {conn_id: "timed out" for conn_id in channels}

    def run(conn_id: str) -> None:
        try:
            results[conn_id] = _deliver(conn_id, ctx, deadline, secrets)
        except Exception as exc:  # a bug here must not reach the task
            log.error("Alert to %r failed: %s", conn_id, mask_secrets(repr(exc), secrets))
            results[conn_id] = "failed"

    threads = [threading.Thread(target=run, args=(c,), name=f"sluice-alert-{c}", daemon=True) for c in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
    return dict(results)
