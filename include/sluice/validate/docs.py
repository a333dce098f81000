"""Great Expectations Data Docs of a run: the validation results of all its chunks as one HTML page in staging.

Each validated chunk already stores GX's validation result document beside it (`chunk-NNNNN.gx.json`, see
validate/chunk.py). The page is rendered once per run, by the quality gate, from those documents: they are merged
into one suite result for the run (counts summed per expectation, unexpected samples and value counts combined),
rendered with GX Core's own `ValidationResultsPageRenderer` and `DefaultJinjaPageView` (no Data Context, no docs
site on disk: a Data Context per chunk would cost seconds each), and written as `datadocs.html` into the run's
generation directory. A Sluice table heads the page with each expectation's type, severity and figures, so a reader
can match the page with the expectation names of the pipeline's YAML and of an alert.

A run that failed before its gate (an expectation with severity fail in some chunk) has no page yet; the
api-server route (health/app.py) renders it on demand from the chunk documents it finds (`read_run_docs`).
The link (`docs_path`) is a route of the Sluice page behind Airflow's auth, not a presigned URL: it never expires.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from sluice.config import PipelineConfig
    from sluice.interval import Interval
    from sluice.staging import StagingStore

log = logging.getLogger(__name__)

__all__ = [
    "DOCS_NAME",
    "docs_path",
    "docs_url",
    "merge_results",
    "read_run_docs",
    "read_run_docs_by_key",
    "render_html",
    "write_run_docs",
]

DOCS_NAME = "datadocs.html"
SAMPLE = 20  # unexpected values kept per expectation, as GX's partial_unexpected_count
_COUNTS = ("element_count", "missing_count", "unexpected_count")
_GEN_DIR = re.compile(r"g(\d+)$")


def docs_path(pipeline: str, interval: Interval, run_id: str) -> str:
    """Path of a run's Data Docs below the Airflow UI root (the route of health/app.py)."""
    return f"/sluice/datadocs/{quote(pipeline, safe='')}/{interval.key}/{quote(run_id, safe='')}"


def docs_url(pipeline: str, interval: Interval | None, run_id: str | None) -> str | None:
    """Full link for alerts, task logs and `quarantine show`, from Airflow's `[api] base_url`."""
    if interval is None or not run_id:
        return None
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - core-only process
        from airflow.configuration import conf
    base = conf.get("api", "base_url", fallback=None) or "http://localhost:8080/"
    return base.rstrip("/") + docs_path(pipeline, interval, run_id)


def _merge_one(results: list[dict]) -> dict:
    """One expectation's results over the chunks: counts summed, samples combined, success = every chunk's."""
    first = results[0]
    out = {
        "success": all(r.get("success") for r in results),
        "expectation_config": first.get("expectation_config"),
        "meta": first.get("meta") or {},
        "exception_info": next(
            (r["exception_info"] for r in results if (r.get("exception_info") or {}).get("raised_exception")),
            first.get("exception_info") or {},
        ),
    }
    res = [r.get("result") or {} for r in results]
    if any("unexpected_count" in r for r in res):
        merged: dict[str, Any] = {k: sum(int(r.get(k) or 0) for r in res) for k in _COUNTS}
        n, bad, missing = merged["element_count"], merged["unexpected_count"], merged["missing_count"]
        merged["missing_percent"] = 100.0 * missing / n if n else None
        merged["unexpected_percent"] = 100.0 * bad / (n - missing) if n - missing else None
        merged["unexpected_percent_total"] = 100.0 * bad / n if n else None
        merged["unexpected_percent_nonmissing"] = merged["unexpected_percent"]
        merged["partial_unexpected_list"] = [v for r in res for v in r.get("partial_unexpected_list") or []][:SAMPLE]
        counts: Counter = Counter()
        for r in res:
            for c in r.get("partial_unexpected_counts") or []:
                counts[json.dumps(c.get("value"), default=str)] += int(c.get("count") or 0)
        merged["partial_unexpected_counts"] = [
            {"value": json.loads(v), "count": c} for v, c in counts.most_common(SAMPLE)
        ]
    else:  # a table- or column-level result: the first failing chunk's observation (else the first chunk's)
        failing = [r.get("result") for r in results if not r.get("success")]
        merged = (failing[0] if failing else first.get("result")) or {}
    out["result"] = merged
    return out


def merge_results(docs: list[dict], suite_name: str, run_id: str, batch: dict[str, Any]) -> dict:
    """The chunks' validation result documents as one for the run, in the expectations' config order."""
    by_index: dict[Any, list[dict]] = {}
    for doc in docs:
        for r in doc.get("results") or []:
            meta = (r.get("expectation_config") or {}).get("meta") or {}
            by_index.setdefault(meta.get("sluice_index", len(by_index)), []).append(r)
    results = [_merge_one(by_index[i]) for i in sorted(by_index, key=lambda i: (str(type(i)), i))]
    ok = sum(1 for r in results if r["success"])
    return {
        "success": ok == len(results),
        "results": results,
        "suite_name": suite_name,
        "suite_parameters": {},
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": ok,
            "unsuccessful_expectations": len(results) - ok,
            "success_percent": 100.0 * ok / len(results) if results else None,
        },
        "meta": {
            "great_expectations_version": next(
                (d["meta"].get("great_expectations_version") for d in docs if d.get("meta")), None
            ),
            "run_id": {"run_name": run_id, "run_time": None},
            "batch_spec": batch,
        },
    }


def _summary_section(cfg: PipelineConfig | None, merged: dict) -> Any:
    """A Sluice table atop GX's page: expectation type, column, severity, rows checked, unexpected, success."""
    from great_expectations.render.components import RenderedSectionContent, RenderedTableContent

    severity: dict[Any, str] = {i: str(s.severity) for i, s in enumerate(cfg.expectations)} if cfg else {}
    rows = []
    for r in merged["results"]:
        conf = r.get("expectation_config") or {}
        kwargs, res = conf.get("kwargs") or {}, r.get("result") or {}
        column = kwargs.get("column") or ", ".join(kwargs.get("column_list") or [])
        rows.append(
            [
                conf.get("type", "?"),
                column,
                severity.get((conf.get("meta") or {}).get("sluice_index"), ""),
                str(res.get("element_count", "")),
                str(res.get("unexpected_count", res.get("observed_value", ""))),
                "passed" if r.get("success") else "FAILED",
            ]
        )
    table = RenderedTableContent(
        header={"content_block_type": "string_template", "string_template": {"template": "Sluice run summary"}},
        header_row=["Expectation", "Column", "Severity", "Rows", "Unexpected / observed", "Outcome"],
        table=rows,
        styling={"classes": ["col-12", "table-responsive", "mt-1"], "body": {"classes": ["table", "table-sm"]}},
    )
    return RenderedSectionContent(content_blocks=[table], section_name="Sluice")


def render_html(cfg: PipelineConfig | None, merged: dict) -> str:
    """GX's validation results page for a merged result, headed by the Sluice summary table."""
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    from sluice.validate.suite import _import_gx

    _import_gx()  # GX's log level, before its modules log
    result = ExpectationSuiteValidationResultSchema().load(json.loads(json.dumps(merged, default=str)))
    document = ValidationResultsPageRenderer().render(result)
    document.sections.insert(0, _summary_section(cfg, merged))
    html = DefaultJinjaPageView().render(document)
    # the page stands alone: GX's links to a docs site index and its local static files lead nowhere here
    return re.sub(r'href="(\.\./)+[^"]*"', 'href="#"', html)


def _documents(store: StagingStore, keys: list[str]) -> list[dict]:
    return [json.loads(store.read_bytes(k)) for k in keys]


def write_run_docs(cfg: PipelineConfig, store: StagingStore, gx_keys: list[str]) -> str | None:
    """Render the run's page from its chunks' GX documents and store it beside them; returns its key (None: no
    chunk ran a suite, e.g. a pipeline without row-level expectations)."""
    keys = [k for k in gx_keys if k]
    if not keys:
        return None
    batch = {"pipeline": cfg.name, "interval": store.interval.key, "generation": store.generation, "chunks": len(keys)}
    merged = merge_results(_documents(store, keys), cfg.name, store.run_id, batch)
    key = store._url(f"{store.root}/{DOCS_NAME}")
    store.write_bytes(key, render_html(cfg, merged).encode())
    return key


def read_run_docs(cfg: PipelineConfig, interval: Interval, run_id: str) -> bytes | None:
    """The page of a run's latest generation, rendered now (and stored) if the gate did not (a failed chunk)."""
    import pyarrow.fs as pafs

    from sluice.staging import StagingStore

    base = StagingStore(cfg.staging, cfg.name, interval, run_id)
    try:
        infos = base.fs.get_file_info(pafs.FileSelector(base.root, allow_not_found=True))
    except OSError:
        return None
    dirs = [i.path for i in infos if i.type == pafs.FileType.Directory]
    generations = [int(m.group(1)) for p in dirs if (m := _GEN_DIR.search(p))]
    candidates: list[int | None] = [*sorted(generations, reverse=True)] or [None]
    for generation in candidates:
        store = StagingStore(cfg.staging, cfg.name, interval, run_id, generation)
        key = store._url(f"{store.root}/{DOCS_NAME}")
        if store.exists(key):
            return store.read_bytes(key)
        found = store.fs.get_file_info(pafs.FileSelector(store.root, allow_not_found=True))
        gx = sorted(store._url(i.path) for i in found if i.path.endswith(".gx.json"))
        if gx and write_run_docs(cfg, store, gx):
            return store.read_bytes(key)
    return None


def read_run_docs_by_key(cfg: PipelineConfig | None, interval_key: str, run_id: str) -> bytes | None:
    """read_run_docs for the route's path parts (the interval as `Interval.key`); None for an unknown pipeline or a
    malformed interval, so the route answers 404 rather than 500."""
    from datetime import UTC, datetime

    from sluice.interval import Interval

    bounds = interval_key.split("_")
    if cfg is None or len(bounds) != 2:
        return None
    try:
        interval = Interval(*(datetime.strptime(b, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) for b in bounds))
    except ValueError:
        return None
    return read_run_docs(cfg, interval, run_id)
