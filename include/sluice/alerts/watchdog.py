"""The freshness watchdog: every few minutes (DAG sluice_freshness) each pipeline with `freshness.max_lag` is checked
against its warehouse, independently of Airflow's Deadline Alerts (which can fail silently).

Lag = the watchdog's "now" - the end of the last successfully loaded interval (sluice.run_summary), or - the
pipeline's start_date when nothing was ever loaded (a new pipeline gets max_lag of grace). Over max_lag is a breach.
Each (pipeline, channel) has one row in sluice.freshness_state, in the pipeline's own warehouse: the state last
reported to that channel and whether the message got there. So a breach is reported once per channel, a failed
delivery is retried by the next watchdog run, and recovery is reported once. A check whose "now" is older than the
one a channel was last checked at (a late or re-run watchdog run) changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sluice.alerts.delivery import send_alert
from sluice.alerts.freshness import read_warehouse
from sluice.alerts.model import AlertContext, AlertKind, Freshness, connection_secrets

if TYPE_CHECKING:
    from sluice.config import PipelineConfig

log = logging.getLogger(__name__)

FINAL = ("sent", "skipped", "rejected")  # delivery outcomes not worth another try; others are retried next run


def duration_text(delta: timedelta) -> str:
    secs = int(delta.total_seconds())
    parts = [
        f"{n}{u}" for n, u in ((secs // 86400, "d"), (secs // 3600 % 24, "h"), (secs // 60 % 60, "m"), (secs % 60, "s"))
    ]
    return "".join(p for p in parts if not p.startswith("0")) or "0s"


@dataclass(frozen=True)
class Verdict:
    pipeline: str
    state: str  # ok | breach
    lag: timedelta
    fresh: Freshness


def judge(cfg: PipelineConfig, fresh: Freshness, now: datetime) -> Verdict:
    """Pure: is the pipeline's loaded data older than its max_lag at `now`?"""
    assert cfg.freshness is not None
    since = fresh.last_end or datetime(cfg.start_date.year, cfg.start_date.month, cfg.start_date.day, tzinfo=UTC)
    lag = now - since
    return Verdict(cfg.name, "breach" if lag > cfg.freshness.max_lag else "ok", lag, fresh)


def to_notify(state: str, rows: dict[str, tuple[str, bool]], channels: Iterable[str]) -> list[str]:
    """Pure: the channels that must hear about `state`. A channel never told anything hears only of a breach; a
    channel told another state, or whose last message did not get there, hears of this one."""
    out = []
    for channel in channels:
        told = rows.get(channel)
        if (told is None and state == "breach") or (told is not None and (told[0] != state or not told[1])):
            out.append(channel)
    return out


def _ensure_state_table(conn) -> None:
    from sluice.loading import sql as q

    if conn.execute("SELECT to_regclass('sluice.freshness_state') IS NULL").fetchone()[0]:
        with conn.transaction():
            conn.execute(q.advisory_lock(), {"key": "sluice.ddl"})
            conn.execute(q.create_schema(q.META))
            conn.execute(q.create_freshness_state())


def check_pipeline(cfg: PipelineConfig, now: datetime) -> str:
    """Judge one pipeline and tell its channels what they have not been told; returns what happened."""
    import psycopg

    from sluice.connections import pg_dsn
    from sluice.loading import sql as q

    fresh, _ = read_warehouse(cfg.target.conn_id, cfg.name)
    if fresh is None or fresh.unavailable:
        raise RuntimeError(f"{cfg.name}: freshness not readable: {fresh and fresh.unavailable}")
    verdict = judge(cfg, fresh, now)
    assert cfg.freshness is not None  # judge() checked it; said again for the type checker
    channels = list(cfg.alerts.channels)
    with psycopg.connect(pg_dsn(cfg.target.conn_id), autocommit=True, application_name="sluice freshness") as conn:
        _ensure_state_table(conn)
        with conn.transaction():
            found = conn.execute(q.freshness_state_select(), {"pipeline": cfg.name}).fetchall()
            if any(checked_at > now for _, _, _, checked_at in found):
                return f"{verdict.state} (not changed: a later check, at {max(r[3] for r in found)}, already judged)"
            rows = {channel: (state, sent) for channel, state, sent, _ in found}
            targets = to_notify(verdict.state, rows, channels)
            outcomes: dict[str, str] = {}
            if targets:
                kind = AlertKind.FRESHNESS_BREACH if verdict.state == "breach" else AlertKind.FRESHNESS_RECOVERED
                ctx = AlertContext(
                    pipeline=cfg.name,
                    kind=kind,
                    run_id=fresh.last_run_id,
                    freshness=fresh,
                    max_lag=duration_text(cfg.freshness.max_lag),
                    as_of=now,
                )
                secrets = connection_secrets([*targets, cfg.target.conn_id])
                outcomes = send_alert(ctx, targets, secrets=secrets)
            for channel in channels:
                outcome = outcomes.get(channel)  # None: nothing to tell (told already, or ok from the start)
                delivered = outcome is None or outcome.startswith(FINAL)
                conn.execute(
                    q.freshness_state_upsert(),
                    {
                        "pipeline": cfg.name,
                        "channel": channel,
                        "state": verdict.state,
                        "sent": delivered,
                        "checked_at": now,
                        "last_end": fresh.last_end,
                        "outcome": outcome,
                    },
                )
    lag = duration_text(verdict.lag) if verdict.lag >= timedelta(0) else "none (data ends in the future)"
    told = ", ".join(f"{c}: {o}" for c, o in outcomes.items()) or "nobody to tell"
    return f"{verdict.state}, lag {lag} (max {duration_text(cfg.freshness.max_lag)}); {told}"


def check_all(configs: Iterable[PipelineConfig], now: datetime) -> dict[str, str]:
    """Every pipeline with freshness configured; one that cannot be checked does not stop the others, and the
    task fails at the end (so a broken watchdog shows in Airflow)."""
    results, errors = {}, []
    for cfg in sorted((c for c in configs if c.freshness is not None), key=lambda c: c.name):
        try:
            results[cfg.name] = check_pipeline(cfg, now)
            log.info("freshness of %s at %s: %s", cfg.name, now.isoformat(), results[cfg.name])
        except Exception as exc:
            log.error("freshness of %s not checked: %s: %s", cfg.name, type(exc).__name__, exc)
            errors.append(f"{cfg.name}: {type(exc).__name__}: {exc}")
    if errors:
        raise RuntimeError("freshness not checked for " + "; ".join(errors))
    return results
