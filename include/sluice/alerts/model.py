"""The alert message model and secret masking, shared by the formatters, delivery and callbacks."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

ERROR_MAX = 2500  # characters of error text kept before a formatter cuts it to its own limit


class AlertKind(StrEnum):
    FAILURE = "failure"
    DEADLINE_MISSED = "deadline_missed"
    RETRY = "retry"
    QUALITY_WARNING = "quality_warning"  # the quality gate warned (e.g. a history check with severity warn)
    FRESHNESS_BREACH = "freshness_breach"  # the watchdog: loaded data older than freshness.max_lag
    FRESHNESS_RECOVERED = "freshness_recovered"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    NOTICE = "notice"
    RESOLVED = "resolved"


class ChannelKind(StrEnum):
    """Alert channel kinds, keyed by the Airflow connection's conn_type."""

    SLACK = "slackwebhook"
    DISCORD = "discord"


SEVERITY = {
    AlertKind.FAILURE: Severity.CRITICAL,
    AlertKind.DEADLINE_MISSED: Severity.WARNING,
    AlertKind.RETRY: Severity.NOTICE,
    AlertKind.QUALITY_WARNING: Severity.WARNING,
    AlertKind.FRESHNESS_BREACH: Severity.WARNING,
    AlertKind.FRESHNESS_RECOVERED: Severity.RESOLVED,
}
COLOURS = {
    Severity.CRITICAL: 0xE01E5A,
    Severity.WARNING: 0xF2A30F,
    Severity.NOTICE: 0xECB22E,
    Severity.RESOLVED: 0x2EB67D,
}
FRESHNESS_KINDS = (AlertKind.DEADLINE_MISSED, AlertKind.FRESHNESS_BREACH, AlertKind.FRESHNESS_RECOVERED)


@dataclass(frozen=True)
class Rows:
    extracted: int | None = None
    loaded: int | None = None
    quarantined: int | None = None
    chunks: int | None = None

    @property
    def quarantine_rate(self) -> float | None:
        """Quarantined share of the rows validated so far (= of all rows once a run is complete)."""
        base = (self.loaded or 0) + (self.quarantined or 0) if self.loaded is not None else self.extracted
        return None if not base or self.quarantined is None else self.quarantined / base


@dataclass(frozen=True)
class Freshness:
    """What the warehouse says about the pipeline: last interval loaded, and the last run of any outcome."""

    last_start: datetime | None = None
    last_end: datetime | None = None
    last_loaded_at: datetime | None = None
    last_run_id: str | None = None
    last_run_status: str | None = None
    last_run_rows: Rows | None = None
    unavailable: str | None = None  # why the warehouse could not be read


@dataclass(frozen=True)
class AlertContext:
    pipeline: str
    kind: AlertKind
    run_id: str | None = None
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    max_tries: int | None = None
    error: str | None = None  # already masked
    log_url: str | None = None
    run_url: str | None = None
    docs_url: str | None = None  # the run's GX Data Docs (validate/docs.py), when its interval is known
    run_state: str | None = None
    rows: Rows | None = None  # this run so far
    freshness: Freshness | None = None
    deadline_time: datetime | None = None
    deadline: str | None = None  # the rule, e.g. "2h after the interval end"
    max_lag: str | None = None  # the freshness watchdog's rule, e.g. "26h"
    as_of: datetime | None = None  # the time staleness is measured at (the watchdog's "now"); else generated_at
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]

    @property
    def now(self) -> datetime:
        return self.as_of or self.generated_at


# ---------- secrets ----------
def get_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*):[^\s/@]+@"), r"\1:***@"),  # user:password@ in URLs
    (re.compile(r"\bT[A-Z0-9]{2,}/B[A-Z0-9]{2,}/[A-Za-z0-9]{8,}"), "***"),  # Slack webhook path T…/B…/token
    (re.compile(r"(?i)(webhooks/\d+/)[\w-]+"), r"\1***"),  # Discord webhook token
    (
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key)"
            r"(\"?\s*[=:]\s*[\"']?)[^\s\"'&;,}]+"
        ),
        r"\1\2***",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
)


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secrets (also URL-encoded), secret-looking patterns, and whatever Airflow's masker knows."""
    variants = {v for s in secrets if s and len(s) >= 4 for v in (s, quote(s, safe=""), quote(s))}
    for secret in sorted(variants, key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    try:
        from airflow.sdk.log import redact

        text = str(redact(text))
    except Exception:  # the masker is a bonus; the explicit masking above already ran
        pass
    return text


def connection_secrets(conn_ids: Iterable[str]) -> set[str]:
    """Passwords and secret extras of these connections, also registered with Airflow's masker for our logs."""
    found: set[str] = set()
    for conn_id in dict.fromkeys(c for c in conn_ids if c):
        try:
            conn = get_connection(conn_id)
        except Exception:
            continue
        found.add(conn.password or "")
        for key, value in (conn.extra_dejson or {}).items():
            if key == "webhook_endpoint" and isinstance(value, str):
                found.add(value.rsplit("/", 1)[-1])
            elif re.search(r"(?i)pass|secret|token|key|webhook", key) and isinstance(value, str):
                found.add(value)
    found.discard("")
    try:
        from airflow.sdk.log import mask_secret

        for secret in found:
            mask_secret(secret)
    except Exception:
        pass
    return found
