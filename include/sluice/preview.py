"""`python -m sluice plan FILE`: what a pipeline file becomes, rendered without Airflow, a scheduler or any service:
its tasks, schedule and next intervals, the source request of one interval, the staging directory, the target's DDL,
the load's SQL statements, the expectations, the quality thresholds and the alert channels. With a reachable
warehouse it adds the schema diff against the live table. Every statement shown is the one the loader sends (built
by loading/sql/), placeholders and all."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sluice.config import WriteMode
from sluice.interval import Interval
from sluice.loading import sql as q

if TYPE_CHECKING:
    from sluice.config import PipelineConfig

TASKS = (
    ("extract_and_stage", "new generation; source -> Parquet chunks + manifest in staging"),
    ("validate_chunk", "mapped, one per chunk: cast to the declared types, GX suite, quarantine"),
    ("quality_gate", "thresholds and batch checks over all chunks; run-wide duplicate rule"),
    ("load_chunk", "mapped, one per chunk: COPY, guarded upsert, ledger row, one transaction"),
    ("finalize", "conservation from the ledger, run summary, Asset event"),
)


def s(stmt: Any) -> str:
    return stmt.as_string(None)


def _section(title: str, lines: list[str]) -> str:
    return f"{title}\n" + "\n".join(f"  {line}" if line else "" for line in lines)


def _conn_env(conn_id: str) -> bool:
    return bool(os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"))


def source_request(cfg: PipelineConfig, interval: Interval) -> list[str]:
    """What the source is asked for in this interval: the S3 prefix, the first HTTP request, or the SQL query."""
    from sluice.config import render

    src = cfg.source
    if src.kind == "s3":
        prefix = render(src.prefix, interval)
        return [
            f"s3://{src.bucket}/{prefix}  (pattern {src.pattern!r}, format {src.format.value}, "
            f"compression {src.compression.value}; connection {src.conn_id})"
        ]
    if src.kind == "http":
        from sluice.sources.http.paginators import PageRequest, make_paginator

        base = f"<base URL of connection {src.conn_id}>"
        if _conn_env(src.conn_id):
            try:
                from airflow.sdk import BaseHook

                from sluice.sources.http.client import base_url

                base = base_url(BaseHook.get_connection(src.conn_id))
            except Exception as exc:  # shown, not fatal: plan works without the connection
                base = f"<connection {src.conn_id}: {type(exc).__name__}>"
        from sluice.sources.http.client import join_url

        request = PageRequest(join_url(base, render(src.endpoint, interval)), {})
        request.params.update({k: render(v, interval) for k, v in src.params.items()})
        make_paginator(src.pagination).init_request(request)
        query = "&".join(f"{k}={v}" for k, v in request.params.items())
        return [
            f"GET {request.url}" + (f"?{query}" if query else ""),
            f"pagination {src.pagination.style}, records at {src.records_path or '(the body)'!r}, auth {src.auth.value}"
            + (f", {src.rate_limit_per_second:g} req/s shared" if src.rate_limit_per_second else ""),
        ]
    from sqlalchemy.dialects import postgresql

    from sluice.sources.sql import bind_values, table_query

    dialect = postgresql.dialect()
    text = src.query if src.query is not None else table_query(src.table or "", src.incremental_column, dialect)
    binds = {k: v.isoformat() for k, v in bind_values(interval, dialect).items()}
    return [f"{text}", f"binds {binds} (connection {src.conn_id}; quoting shown for PostgreSQL)"]


def load_statements(cfg: PipelineConfig) -> list[tuple[str, str]]:
    """(when, SQL) of every statement a chunk's load sends, in order, for this write mode."""
    from sluice.loading.target import Target

    tgt = Target.of(cfg)
    names = [c.name for c in tgt.columns]
    out: list[tuple[str, str]] = [("schema step", s(q.advisory_lock()))]
    if tgt.mode is WriteMode.replace_interval:
        out.append(("first chunk of a generation", s(q.delete_interval(tgt.schema, tgt.table, tgt.replaced_column))))
    elif tgt.mode is WriteMode.append:
        out.append(("first chunk of a generation", s(q.delete_generations(tgt.schema, tgt.table))))
    if tgt.keyed:
        out += [
            (
                "probe: does the table hold a key of the chunk's range?",
                s(q.keys_in_range(tgt.schema, tgt.table, tgt.pk)),
            ),
            ("new keys only", s(q.copy_into_target(tgt.schema, tgt.table, names))),
            ("otherwise: into a temp table", s(q.create_temp(tgt.columns))),
            ("", s(q.copy_from_stdin(names))),
            ("mostly existing keys", s(q.merge_upsert(tgt.schema, tgt.table, names, tgt.pk, tgt.version))),
            ("mostly new keys", s(q.on_conflict_upsert(tgt.schema, tgt.table, names, tgt.pk, tgt.version))),
        ]
    else:
        out.append(("append", s(q.copy_into_target(tgt.schema, tgt.table, names))))
    out.append(("same transaction", s(q.ledger_insert())))
    return out


def expectation_lines(cfg: PipelineConfig) -> list[str]:
    from sluice.validate.gate import CHUNKWISE, COMBINED

    lines = []
    for e in cfg.expectations:
        where = (
            "whole interval, in the quality gate"
            if e.type in COMBINED
            else "batch check per chunk"
            if e.type in CHUNKWISE
            else "per row, per chunk"
        )
        args = ", ".join(f"{k}={v!r}" for k, v in e.kwargs.items())
        lines.append(f"{e.type}({args}) -> {e.severity.value} ({where})")
    return lines or ["none"]


def schema_diff(cfg: PipelineConfig) -> list[str]:
    """The live table against the config: columns to add, type conflicts, undeclared columns, primary key. Only when
    the target connection is configured and the warehouse answers within 5 s; otherwise says why not."""
    from sluice.loading.target import Target, same_type

    tgt = Target.of(cfg)
    if not _conn_env(tgt.conn_id):
        return [f"skipped: connection {tgt.conn_id} is not configured (AIRFLOW_CONN_{tgt.conn_id.upper()})"]
    try:
        import psycopg

        from sluice.connections import pg_dsn

        with psycopg.connect(pg_dsn(tgt.conn_id), autocommit=True, connect_timeout=5) as conn:
            existing = {r[0]: r[1] for r in conn.execute(q.table_columns(), tgt.where())}
            pk = [r[0] for r in conn.execute(q.primary_key_columns(), tgt.where())]
    except Exception as exc:
        return [f"skipped: the warehouse ({tgt.conn_id}) is not reachable: {type(exc).__name__}: {str(exc)[:200]}"]
    if not existing:
        return [f"{tgt.name} does not exist: the first load creates it (DDL above)"]
    lines = []
    for c in tgt.columns:
        if c.name not in existing:
            how = "added by on_extra_columns: evolve" if tgt.evolve else "the load fails (SchemaMismatch)"
            lines.append(f"+ {c.name} {c.pg_type}: not in the table; {how}")
        elif same_type(existing[c.name], c.pg_type) is False:
            lines.append(f"! {c.name}: {existing[c.name]} in the table, {c.pg_type} in the config (type conflict)")
    declared = {c.name for c in tgt.columns}
    for name, type_ in existing.items():
        if name not in declared and name not in q.HIDDEN:
            lines.append(f"- {name} {type_}: in the table, not declared")
    if tgt.keyed and sorted(pk) != sorted(tgt.pk):
        lines.append(f"! primary key ({', '.join(pk) or 'none'}) in the table, ({', '.join(tgt.pk)}) in the config")
    return lines or [f"{tgt.name} matches the config"]


def render_plan(cfg: PipelineConfig, interval: Interval | None = None, now: datetime | None = None) -> str:
    """The whole plan as text."""
    from sluice import schedule
    from sluice.loading.target import Target
    from sluice.pools import source_pool_name

    now = now or datetime.now(UTC)
    nxt = schedule.next_intervals(cfg, now)
    if interval is None:
        interval = schedule.latest_complete(cfg, now) or (nxt[0] if nxt else None)
    tgt = Target.of(cfg)
    pool = source_pool_name(cfg)
    r = cfg.retries
    parts = [
        f"pipeline {cfg.name}  ({cfg.source_file})",
        _section(
            "tasks (DAG " + cfg.name + ")",
            [f"{i + 1}. {name}: {what}" for i, (name, what) in enumerate(TASKS)]
            + [
                f"retries {r.retries}, first delay {r.delay_seconds:g}s x{r.multiplier:g}, "
                f"at most {r.max_delay_seconds:g}s"
                + (f"; extract_and_stage in pool {pool} when SLUICE_SOURCE_POOLS=1" if pool else "")
            ],
        ),
        _section(
            "schedule",
            [
                f"{cfg.schedule} (cron {cfg.cron!r}, UTC), start {cfg.start_date}"
                + (f", end {cfg.end_date}" if cfg.end_date else "")
                + f", catchup {str(cfg.catchup).lower()}",
                "next intervals:" if nxt else "no interval after now (end_date is past)",
                *(f"  [{i.start.isoformat()}, {i.end.isoformat()})" for i in nxt),
            ],
        ),
    ]
    if interval is not None:
        staged = f"{cfg.staging.url.rstrip('/')}/{cfg.name}/{interval.key}/<run_id>/g<generation>/"
        parts.append(
            _section(
                f"interval [{interval.start.isoformat()}, {interval.end.isoformat()})",
                [
                    "source " + cfg.source.kind + ":",
                    *(f"  {line}" for line in source_request(cfg, interval)),
                    f"staging {staged} (chunks of {cfg.staging.chunk_rows} rows, manifest.json last)",
                ],
            )
        )
    ddl = s(q.create_table(tgt.schema, tgt.table, list(tgt.columns), tgt.pk if tgt.keyed else ()))
    parts.append(
        _section(
            f"target {tgt.name} on {tgt.conn_id}, write_mode {tgt.mode.value}",
            [
                s(q.create_schema(tgt.schema)) + ";",
                ddl + ";",
                f"on_extra_columns {cfg.target.on_extra_columns.value}, "
                f"on_missing_columns {cfg.target.on_missing_columns.value}"
                + (f", version_column {tgt.version}" if tgt.version else ""),
            ],
        )
    )
    parts.append(
        _section(
            "load SQL (per chunk)", [f"-- {w}\n  {sql_};" if w else f"{sql_};" for w, sql_ in load_statements(cfg)]
        )
    )
    qc = cfg.quality
    parts.append(_section("expectations", expectation_lines(cfg)))
    parts.append(
        _section(
            "quality gate",
            [
                f"max_quarantine_fraction {qc.max_quarantine_fraction:.2%}"
                + (f", min_rows {qc.min_rows}" if qc.min_rows is not None else "")
                + (f", max_rows {qc.max_rows}" if qc.max_rows is not None else "")
                + f", require_data {str(cfg.require_data).lower()}"
            ],
        )
    )
    alerts = ", ".join(cfg.alerts.channels) or "none"
    deadline = f"; deadline {cfg.deadline.after_interval_end} after the interval end" if cfg.deadline else ""
    parts.append(_section("alerts", [f"channels {alerts}; on_retry {str(cfg.alerts.on_retry).lower()}{deadline}"]))
    parts.append(_section("schema diff against the live table", schema_diff(cfg)))
    return "\n\n".join(parts) + "\n"
