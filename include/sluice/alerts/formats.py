"""Pure formatters: one AlertContext -> a Slack Block Kit message or a Discord embed, always inside each
service's limits (long text is cut, never rejected)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.alerts.model import (
    COLOURS,
    FRESHNESS_KINDS,
    AlertContext,
    AlertKind,
    ChannelKind,
    Freshness,
    Rows,
    Severity,
    mask_secrets,
)

_ICONS = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.NOTICE: "🟡", Severity.RESOLVED: "🟢"}


def cut(text: str, limit: int) -> str:
    """At most `limit` characters; an ellipsis marks the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…" if limit > 0 else ""


def _fit(raw: str, limit: int, wrap: Callable[[str], str] = lambda s: s) -> str:
    """Cut `raw` so that wrap(raw) (escaping, code fences) fits in `limit`."""
    text = wrap(raw)
    while len(text) > limit and raw:
        raw = cut(raw, max(0, len(raw) - (len(text) - limit)))
        text = wrap(raw)
    return text


def _ts(dt: datetime | None) -> str:
    if dt is None:
        return "unknown"
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC" if dt.second else "%Y-%m-%d %H:%M UTC")


def _interval(start: datetime | None, end: datetime | None) -> str:
    return f"{_ts(start)} → {_ts(end)}" if start or end else "unknown"


def _age(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    return f"{days}d {hours}h" if days else f"{hours}h {mins}m" if hours else f"{mins}m"


def _rows_text(rows: Rows | None) -> str:
    if rows is None or all(v is None for v in (rows.extracted, rows.loaded, rows.quarantined)):
        return "no rows recorded yet"
    parts = [
        f"{v:,} {label}"
        for v, label in ((rows.extracted, "extracted"), (rows.loaded, "loaded"), (rows.quarantined, "quarantined"))
        if v is not None
    ]
    if (rate := rows.quarantine_rate) is not None:
        parts[-1] += f" ({rate:.2%})"
    if rows.chunks is not None:
        parts.append(f"{rows.chunks} chunk(s)")
    return " · ".join(parts)


def _title(ctx: AlertContext) -> str:
    icon = _ICONS[ctx.severity]
    task = f"{ctx.task_id}[{ctx.map_index}]" if ctx.map_index is not None else ctx.task_id
    if ctx.kind is AlertKind.DEADLINE_MISSED:
        return f"{icon} {ctx.pipeline}: deadline missed for {_ts(ctx.interval_start)} → {_ts(ctx.interval_end)}"
    if ctx.kind is AlertKind.QUALITY_WARNING:
        return f"{icon} {ctx.pipeline}: quality gate warning for {_ts(ctx.interval_start)} → {_ts(ctx.interval_end)}"
    if ctx.kind is AlertKind.FRESHNESS_BREACH:
        return f"{icon} {ctx.pipeline}: data is stale, older than max_lag {ctx.max_lag}"
    if ctx.kind is AlertKind.FRESHNESS_RECOVERED:
        return f"{icon} {ctx.pipeline}: data is fresh again, within max_lag {ctx.max_lag}"
    if ctx.kind is AlertKind.RETRY:
        return f"{icon} {ctx.pipeline}: {task} failed, will retry (try {ctx.try_number} of {ctx.max_tries})"
    return f"{icon} {ctx.pipeline}: task {task} failed"


def _freshness_facts(ctx: AlertContext) -> list[tuple[str, str]]:
    """What the warehouse says about the data: the same fields in deadline and freshness-watchdog messages."""
    fresh = ctx.freshness or Freshness(unavailable="not read")
    if fresh.unavailable:
        return [("Freshness", f"unavailable: {fresh.unavailable}")]
    facts = []
    if fresh.last_end:
        loaded = f" (loaded {_ts(fresh.last_loaded_at)})" if fresh.last_loaded_at else ""
        facts += [
            ("Last loaded interval", _interval(fresh.last_start, fresh.last_end) + loaded),
            ("Staleness", f"data ends {_age(ctx.now - fresh.last_end)} ago"),
        ]
    else:
        facts.append(("Last loaded interval", "none: no successful run recorded"))
    if fresh.last_run_id:
        facts.append(
            ("Last run", f"{fresh.last_run_status or '?'} · {_rows_text(fresh.last_run_rows)} · {fresh.last_run_id}")
        )
    return facts


def _facts(ctx: AlertContext) -> list[tuple[str, str]]:
    """Label/value pairs shared by both formats, most important first."""
    facts = [("Pipeline", ctx.pipeline), ("Data interval", _interval(ctx.interval_start, ctx.interval_end))]
    if ctx.kind in (AlertKind.FRESHNESS_BREACH, AlertKind.FRESHNESS_RECOVERED):
        freshness_rule = [("Freshness rule", f"max_lag {ctx.max_lag}"), ("Checked at", _ts(ctx.now))]
        return [("Pipeline", ctx.pipeline), *freshness_rule, *_freshness_facts(ctx)]
    if ctx.kind is AlertKind.QUALITY_WARNING:
        return [*facts, ("Rows", _rows_text(ctx.rows)), ("Run", ctx.run_id or "unknown")]
    if ctx.kind is not AlertKind.DEADLINE_MISSED:
        task = f"{ctx.task_id} [map {ctx.map_index}]" if ctx.map_index is not None else str(ctx.task_id)
        tries = f"{ctx.try_number} of {ctx.max_tries}" if ctx.max_tries else str(ctx.try_number or "?")
        return [
            *facts,
            ("Task", task),
            ("Try", tries),
            ("Rows so far", _rows_text(ctx.rows)),
            ("Run", ctx.run_id or "unknown"),
        ]
    rule = f"{ctx.deadline} ({_ts(ctx.deadline_time)})" if ctx.deadline else _ts(ctx.deadline_time)
    facts += [("Deadline", rule), ("Run state", ctx.run_state or "unknown"), *_freshness_facts(ctx)]
    if ctx.freshness is None or ctx.freshness.unavailable:
        return [*facts, ("Run", ctx.run_id or "unknown")]
    return [*facts, ("This run so far", _rows_text(ctx.rows)), ("Run", ctx.run_id or "unknown")]


def _links(ctx: AlertContext) -> list[tuple[str, str]]:
    links = (("View task log", ctx.log_url), ("Open run in Airflow", ctx.run_url), ("Data Docs", ctx.docs_url))
    return [(label, url) for label, url in links if url]


def _summary(ctx: AlertContext, *, detail: bool = True) -> str:
    """Plain text: what a phone notification shows (Slack's `text` fallback, Discord's `content`)."""
    text = _title(ctx)[2:] + "."
    if ctx.kind in FRESHNESS_KINDS:
        fresh = ctx.freshness
        if ctx.kind is AlertKind.DEADLINE_MISSED:
            text += f" Run is {ctx.run_state or 'unknown'}."
        if fresh and fresh.last_end:
            text += f" Loaded data ends {_ts(fresh.last_end)} ({_age(ctx.now - fresh.last_end)} ago)."
    elif ctx.kind is AlertKind.QUALITY_WARNING:
        text += f" Loaded with {ctx.error.count(chr(10)) + 1 if ctx.error else 0} warning(s)."
    else:
        text += f" Interval {_interval(ctx.interval_start, ctx.interval_end)}, try {ctx.try_number}."
    if detail and ctx.error:
        text += f" Error: {cut(' '.join(ctx.error.split()), 300)}"
    return text + "".join(f" {label}: {url}" for label, url in _links(ctx)) if detail else text


def _scrub(ctx: AlertContext) -> AlertContext:
    return replace(ctx, error=mask_secrets(ctx.error)) if ctx.error else ctx


def _error_label(ctx: AlertContext) -> str:
    return "Warnings" if ctx.kind is AlertKind.QUALITY_WARNING else "Error"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_slack(ctx: AlertContext) -> dict[str, Any]:
    """Block Kit message: header, fields, error, links; `text` is the notification fallback."""
    ctx = _scrub(ctx)
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n" + _fit(value, 1900, _slack_escape)}
        for label, value in _facts(ctx)[:10]
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": cut(_title(ctx), 150), "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    if ctx.error:
        error = ctx.error.replace("```", "'''")
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _fit(error, 3000, lambda s: f"*{_error_label(ctx)}*\n```" + _slack_escape(s) + "```"),
                },
            }
        )
    if links := _links(ctx):
        text = " · ".join(f"<{url}|{label}>" for label, url in links if len(url) < 1400)
        if text:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"Sluice · {ctx.kind.value} · {_ts(ctx.generated_at)}"}],
        }
    )
    return {"text": cut(_summary(ctx), 3000), "blocks": blocks}


def _embed_size(embed: dict[str, Any]) -> int:
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + len(embed["footer"]["text"])
        + sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    )


def format_discord(ctx: AlertContext) -> dict[str, Any]:
    """Webhook payload with one embed coloured by severity, inside Discord's limits (total 6000, 25 fields)."""
    ctx = _scrub(ctx)
    fields = [
        {"name": cut(label, 256), "value": cut(value or "—", 1024), "inline": len(value) <= 40}
        for label, value in _facts(ctx)
    ]
    if links := _links(ctx):
        fields.append(
            {"name": "Links", "value": cut(" · ".join(f"[{t}]({u})" for t, u in links), 1024), "inline": False}
        )
    embed: dict[str, Any] = {
        "title": cut(_title(ctx), 256),
        "color": COLOURS[ctx.severity],
        "fields": fields[:25],
        "footer": {"text": f"Sluice · {ctx.kind.value}"},
        "timestamp": ctx.generated_at.isoformat(),
    }
    while _embed_size(embed) > 5800 and len(embed["fields"]) > 2:  # never happens with Sluice's short facts
        embed["fields"].pop(-2)
    if ctx.error and (room := min(4096, 6000 - _embed_size(embed))) > 40:
        embed["description"] = _fit(ctx.error.replace("```", "'''"), room, lambda s: f"```\n{s}\n```")
    if (url := ctx.log_url or ctx.run_url) and len(url) <= 2048:
        embed["url"] = url
    return {"content": cut(_summary(ctx, detail=False), 2000), "embeds": [embed], "allowed_mentions": {"parse": []}}


FORMATTERS: dict[ChannelKind, Callable[[AlertContext], dict[str, Any]]] = {
    ChannelKind.SLACK: format_slack,
    ChannelKind.DISCORD: format_discord,
}
