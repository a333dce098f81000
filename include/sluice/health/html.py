"""The Sluice pages as server-rendered HTML (shown inside the Airflow UI as an external view, in an iframe): every
value escaped, links to the Airflow UI open in the top window, the small chart is inline SVG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sluice.schedule import MAX_OVERDUE

if TYPE_CHECKING:
    from sluice.health.report import Overview, PipelineDetail, PipelineHealth

STYLE = """
body{font:13px/1.4 system-ui,sans-serif;margin:12px;color:#1a202c;background:#fff}
h1{font-size:18px;margin:0 0 8px}h2{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;width:100%}th,td{padding:4px 6px;border-bottom:1px solid #e2e8f0;text-align:left;
vertical-align:middle;white-space:nowrap}th{background:#f7fafc;font-weight:600}td.n{text-align:right;
font-variant-numeric:tabular-nums}.state{border-radius:4px;padding:1px 6px;font-weight:600}
.ok{background:#c6f6d5}.failing,.failed{background:#fed7d7}.late{background:#feebc8}
.never{background:#e2e8f0}.invalid{background:#fbd38d}.nofile{background:#e9d8fd}
.banner{background:#fed7d7;border:1px solid #fc8181;padding:8px;margin:8px 0;border-radius:4px}
.muted{color:#718096}a{color:#2b6cb0}td.err{white-space:normal;max-width:420px;color:#9b2c2c}
"""
_STATE_CLASS = {
    "ok": "ok",
    "failing": "failing",
    "late": "late",
    "never ran": "never",
    "invalid file": "invalid",
    "no file": "nofile",
}


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else ""


def duration(d: timedelta | None) -> str:
    """2d 3h, 5h 10m, 45s: the two largest units."""
    if d is None:
        return ""
    s = int(d.total_seconds())
    if s == 0:
        return "0"
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m"), (s % 60, "s")]
    texts = [f"{v}{u}" for v, u in parts if v]
    return " ".join(texts[:2])


def _num(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _rate(r: float | None) -> str:
    return "" if r is None else f"{r:.2%}"


def sparkline(volumes: list[tuple[str, int, int, str]], width: int = 150, height: int = 24) -> str:
    """One bar per interval (oldest left), red where the run failed, a grey tick for a 0-row interval."""
    if not volumes:
        return '<span class="muted">no intervals</span>'
    top = max(v[1] for v in volumes) or 1
    w = width / 30
    bars = []
    for i, (start, rows, quarantined, status) in enumerate(volumes):
        h = max(1.0, rows / top * (height - 2)) if rows else 1.0
        colour = "#e53e3e" if status not in ("success", "succeeded") else ("#a0aec0" if not rows else "#3182ce")
        bars.append(
            f'<rect x="{i * w:.1f}" y="{height - h:.1f}" width="{w - 1:.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{escape(str(start))}: {rows:,} rows, {quarantined:,} quarantined</title></rect>"
        )
    return f'<svg class="spark" width="{width}" height="{height}" role="img">{"".join(bars)}</svg>'


def _links(ui: str, h: PipelineHealth) -> str:
    dag = f"{ui}/dags/{quote(h.name, safe='')}"
    out = [f'<a target="_top" href="{escape(dag)}">DAG</a>']
    if h.last_run_id:
        run = f"{dag}/runs/{quote(h.last_run_id, safe='')}"
        out.append(f'<a target="_top" class="run-link" href="{escape(run)}">last run</a>')
        out.append(f'<a target="_top" href="{escape(run + "/tasks/finalize")}">log</a>')
    return " · ".join(out)


# The UI shows external views in an iframe sandboxed without allow-top-navigation, so a target="_top" link cannot
# leave it. The iframe is same-origin (allow-same-origin): an anchor created in the top document and clicked there
# navigates the top window, as a click in the UI itself would.
TOP_LINKS = """<script>
document.addEventListener('click', function (e) {
  var a = e.target.closest('a[target="_top"]');
  if (!a || window.top === window) return;
  try {
    var d = window.top.document, t = d.createElement('a');
    t.href = a.href; d.body.appendChild(t); t.click(); t.remove(); e.preventDefault();
  } catch (err) { /* not same-origin: the plain link stays */ }
});
</script>"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>{STYLE}</style>"
        f"</head><body>{body}{TOP_LINKS}</body></html>"
    )


def _state(h: PipelineHealth) -> str:
    return f'<span class="state {_STATE_CLASS.get(h.state, "")}">{escape(h.state)}</span>'


_BREAKER_CLASS = {"closed": "ok", "open": "failing", "half_open": "late", "unknown": "never"}


def _breaker(h: PipelineHealth) -> str:
    """The source's circuit breaker (empty when none is configured), with how often it opened."""
    if h.breaker is None:
        return ""
    title = f"connection {h.breaker_conn}; opened {h.breaker_opened}x"
    label = (
        f'<span class="state {_BREAKER_CLASS.get(h.breaker, "")}" title="{escape(title)}">{escape(h.breaker)}</span>'
    )
    return label + (f' <span class="muted">{h.breaker_opened}x</span>' if h.breaker_opened else "")


def _overdue(h: PipelineHealth) -> str:
    if h.overdue is None:
        return ""
    return f"{MAX_OVERDUE}+" if h.overdue >= MAX_OVERDUE else str(h.overdue)


COLUMNS = (
    "pipeline",
    "state",
    "source",
    "circuit breaker",
    "schedule",
    "last loaded interval",
    "lag",
    "last run",
    "rows per interval",
    "quarantine rate",
    "quarantine rows",
    "0-row intervals",
    "schema changes",
    "deadline misses",
    "links",
)


def overview_page(ov: Overview, base: str, ui: str) -> str:
    """`base`: where this app is mounted (links to pipeline pages); `ui`: the Airflow UI root (links to runs)."""
    rows = []
    for h in ov.pipelines:
        name = f'<a href="{escape(base)}/pipelines/{quote(h.name, safe="")}">{escape(h.name)}</a>'
        interval = f"{_when(h.ok_start)} → {_when(h.ok_end)}" if h.ok_end else ""
        last = f'<span class="state {escape(h.last_status or "")}">{escape(h.last_status or "")}</span>'
        last += f' <span class="muted">{_when(h.last_finished)}</span>' if h.last_finished else ""
        if h.config_error:
            cells = [name, _state(h), f'<td class="err" colspan="12">{escape(h.config_error)}</td>', _links(ui, h)]
            rows.append(
                f'<tr data-pipeline="{escape(h.name)}"><td>'
                + "</td><td>".join(cells[:2])
                + "</td>"
                + cells[2]
                + f"<td>{cells[3]}</td></tr>"
            )
            continue
        cells = [
            name,
            _state(h),
            escape(h.source_kind or ""),
            _breaker(h),
            escape(h.schedule or ""),
            interval,
            duration(h.lag),
            last if h.last_status else '<span class="muted">never ran</span>',
            sparkline(h.volumes),
            _rate(h.quarantine_rate),
            _num(h.pending_quarantine),
            _num(h.empty_intervals),
            _num(h.schema_changes),
            _overdue(h),
            _links(ui, h),
        ]
        keys = [c.replace(" ", "_").replace("-", "_") for c in COLUMNS]
        tds = "".join(
            f'<td data-col="{k}"{" class=n" if k in _NUMERIC else ""}>{c}</td>'
            for k, c in zip(keys, cells, strict=True)
        )
        rows.append(f'<tr data-pipeline="{escape(h.name)}">{tds}</tr>')
    banner = (
        f'<div class="banner" role="alert">{escape(ov.warehouse_error)}: the figures below are missing, not zero.</div>'
        if ov.warehouse_error
        else ""
    )
    if ov.breaker_error:
        banner += f'<div class="banner" role="alert">{escape(ov.breaker_error)}</div>'

    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = (
        f"<h1>Sluice pipelines</h1>{banner}<p class='muted'>{len(ov.pipelines)} pipelines · from the warehouse "
        f"at {_when(ov.now)} UTC · rows per interval: the last 30 intervals, latest generation each</p>"
        f"<table id='pipelines'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return _page("Sluice", body)


_NUMERIC = {"quarantine_rate", "quarantine_rows", "0_row_intervals", "schema_changes", "deadline_misses", "lag"}
HISTORY = (
    "interval",
    "status",
    "generation",
    "chunks",
    "rows in",
    "loaded",
    "inserted",
    "updated",
    "unchanged",
    "superseded",
    "quarantined",
    "load seconds",
    "schema changes",
    "finished",
    "run",
)


def _table(tid: str, head: tuple[str, ...], rows: list[list[str]], empty: str) -> str:
    """The rows (cells already escaped) as a table, or `empty` as a muted line when there are none."""
    if not rows:
        return f"<p class='muted'>{escape(empty)}</p>"
    th = "".join(f"<th>{escape(c)}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table id='{tid}'><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def detail_page(dt: PipelineDetail, base: str, ui: str) -> str:
    h = dt.health
    if h is None:
        return _page("Sluice", f"<p><a href='{escape(base)}/'>← all pipelines</a></p><h1>No such pipeline</h1>")
    parts = [f"<p><a href='{escape(base)}/'>← all pipelines</a></p><h1>{escape(h.name)} {_state(h)}</h1>"]
    if dt.warehouse_error:
        parts.append(f'<div class="banner" role="alert">{escape(dt.warehouse_error)}</div>')
    if h.config_error:
        parts.append(f'<div class="banner">{escape(h.config_error)}</div>')
    parts.append(
        f"<p>{escape(h.source_kind or '')} · {escape(h.schedule or '')} · last loaded {_when(h.ok_start)} → "
        f"{_when(h.ok_end)} · lag {duration(h.lag) or 'n/a'} · {_links(ui, h)}</p>"
    )
    dag = f"{ui}/dags/{quote(h.name, safe='')}"
    hist = []
    for r in dt.history:
        run = f"{dag}/runs/{quote(r['run_id'], safe='')}"
        secs = r.get("load_seconds")
        hist.append(
            [
                f"{_when(r['interval_start'])} → {_when(r['interval_end'])}",
                f'<span class="state {escape(r["status"])}">{escape(r["status"])}</span>',
                str(r["generation"]),
                str(r["chunks"]),
                *(
                    _num(r[k])
                    for k in (
                        "rows_in",
                        "rows_loaded",
                        "inserted",
                        "updated",
                        "unchanged",
                        "superseded",
                        "rows_quarantined",
                    )
                ),
                "" if secs is None else f"{secs:.2f}",
                str(r["schema_changes"]),
                _when(r["finished_at"]),
                f'<a target="_top" href="{escape(run)}">{escape(r["run_id"])}</a>',
            ]
        )
    parts.append(f"<h2>Intervals ({len(dt.history)}, newest first, latest generation each)</h2>")
    parts.append(_table("history", HISTORY, hist, "no interval loaded yet"))
    parts.append("<h2>Quarantine reasons (latest generations)</h2>")
    reasons = [
        [
            escape(r["stage"] or ""),
            escape(r["column_name"] or ""),
            escape(r["reason"] or ""),
            _num(r["rows"]),
            _when(r["last_interval"]),
        ]
        for r in dt.reasons
    ]
    parts.append(
        _table("reasons", ("stage", "column", "reason", "rows", "last interval"), reasons, "no quarantined rows")
    )
    parts.append("<h2>Schema changes</h2>")
    changes = [
        [
            _when(r["changed_at"]),
            escape(r["change"]),
            escape(r["column_name"] or ""),
            escape(r["column_type"] or ""),
            escape(r["run_id"]),
        ]
        for r in dt.schema_changes
    ]
    parts.append(_table("schema-changes", ("when", "change", "column", "type", "run"), changes, "none"))
    parts.extend(_breaker_section(dt))
    return _page(f"Sluice: {h.name}", "".join(parts))


def _breaker_section(dt: PipelineDetail) -> list[str]:
    h = dt.health
    if h is None or h.breaker is None:
        return []
    out = [f"<h2>Circuit breaker of connection {escape(h.breaker_conn or '')}: {_breaker(h)}</h2>"]
    if dt.breaker_error:
        out.append(f'<div class="banner" role="alert">{escape(dt.breaker_error)}</div>')
    events = [
        [
            _when(datetime.fromtimestamp(float(e["at"]), UTC)),
            escape(str(e.get("from", ""))),
            escape(str(e.get("to", ""))),
            escape(str(e.get("reason", ""))),
        ]
        for e in dt.breaker_events
    ]
    out.append(_table("breaker-events", ("when", "from", "to", "reason"), events, "no state change recorded"))
    return out


_PLAIN = (str, int, float, bool)


def as_json(obj: Any) -> Any:
    """Dataclasses, datetimes and timedeltas as JSON values (for the JSON endpoints)."""
    from dataclasses import is_dataclass

    if obj is None or type(obj) in _PLAIN:  # most values: no further checks
        return obj
    if is_dataclass(obj) and not isinstance(obj, type):  # vars(), not asdict(): asdict deep-copies every value first
        return {k: as_json(v) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return {k: as_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_json(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    return obj
