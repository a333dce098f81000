"""The quality gate: one decision over all of a run's chunk reports, taken before anything is loaded.

Pure logic (no services), so every rule is unit-tested. It fails the run when the quarantined share of the rows is
over `quality.max_quarantine_fraction`, when every row is bad, when the row count is outside min_rows/max_rows, or
when a batch-level expectation fails on the whole interval. Batch-level expectations that can be combined from per-
chunk figures (COMBINED) are evaluated here on the sums; those whose result on the whole equals "every chunk passes"
(CHUNKWISE) were run per chunk by validation and are collected here.

Row counts are counted on arrival: rows_in = staged rows + source rejects of the interval. Column figures (min, max,
sum, mean, share of non-null values) are over the good rows, the ones that would be loaded.

With `history:` configured, the checks of validate/history.py compare the interval's row count and column figures
with the pipeline's last successful loads (read by the task, passed in here as `history`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.config import ExpectationSpec, PipelineConfig
    from sluice.validate.chunk import ChunkReport
    from sluice.validate.history import Past

log = logging.getLogger(__name__)

__all__ = [
    "CHUNKWISE",
    "COMBINED",
    "GateResult",
    "QualityGateFailed",
    "evaluate_combined",
    "interval_figures",
    "quality_gate",
    "run_gate",
]

# batch-level expectations evaluated here on figures summed over the chunks
COMBINED = frozenset(
    {
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_column_min_to_be_between",
        "expect_column_max_to_be_between",
        "expect_column_sum_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_proportion_of_non_null_values_to_be_between",
    }
)
# batch-level expectations that hold for the interval exactly when they hold for every chunk (run per chunk by GX)
CHUNKWISE = frozenset(
    {
        "expect_column_to_exist",
        "expect_column_type_to_be",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
        "expect_column_distinct_values_to_be_in_set",
    }
)
MAX_CHUNKS_NAMED = 10


class QualityGateFailed(RuntimeError):
    """The run's data is not good enough to load; nothing was loaded."""


@dataclass
class GateResult:
    reports: list[ChunkReport]  # to load
    warnings: list[str] = field(default_factory=list)  # loaded anyway; go to the run summary and one alert
    notes: list[str] = field(default_factory=list)  # checks that could not judge (too little history)


def _merge_stats(reports: Sequence[ChunkReport], column: str) -> dict[str, Any]:
    """One column's figures over all chunks (each chunk reports count, nulls, min, max, sum over its good rows)."""
    found = [r.get("batch_checks", {}).get("stats", {}).get(column) for r in reports]
    parts = [p for p in found if p]
    count = sum(p["count"] for p in parts)
    mins = [p["min"] for p in parts if p.get("min") is not None]
    maxs = [p["max"] for p in parts if p.get("max") is not None]
    sums = [p["sum"] for p in parts if p.get("sum") is not None]
    total = sum(sums) if sums and len(sums) == len([p for p in parts if p["count"]]) else None
    return {
        "count": count,
        "rows": count + sum(p["nulls"] for p in parts),
        "min": min(mins, key=_sortable) if mins else None,
        "max": max(maxs, key=_sortable) if maxs else None,
        "sum": total,
        "mean": total / count if total is not None and count else None,
    }


def interval_figures(cfg: PipelineConfig, reports: Sequence[ChunkReport]) -> dict[str, dict[str, Any]]:
    """count, nulls, min, max, sum, mean of every numeric column over the interval's good rows: what finalize keeps
    in sluice.interval_stats and the outlier checks compare."""
    out = {}
    for col in (c.name for c in cfg.target.columns if c.column_type.is_numeric):
        merged = _merge_stats(reports, col)
        out[col] = {k: merged[k] for k in ("count", "min", "max", "sum", "mean")} | {
            "nulls": merged["rows"] - merged["count"]
        }
    return out


def _sortable(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def _comparable(observed: Any, bound: Any) -> tuple[Any, Any]:
    """Stats travel as JSON (dates and times as ISO strings); compare them with YAML dates, datetimes or strings."""
    if isinstance(bound, date | datetime) or (isinstance(observed, str) and isinstance(bound, str)):
        obs, bnd = _sortable(observed), _sortable(bound.isoformat() if isinstance(bound, date | datetime) else bound)
        if isinstance(obs, datetime) and isinstance(bnd, datetime) and (obs.tzinfo is None) != (bnd.tzinfo is None):
            obs, bnd = obs.replace(tzinfo=None), bnd.replace(tzinfo=None)
        return obs, bnd
    return observed, bound


def _between(observed: Any, kwargs: dict) -> bool:
    if observed is None:
        return False
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if lo is not None:
        obs, lo = _comparable(observed, lo)
        if obs < lo or (kwargs.get("strict_min") and obs == lo):
            return False
    if hi is not None:
        obs, hi = _comparable(observed, hi)
        if obs > hi or (kwargs.get("strict_max") and obs == hi):
            return False
    return True


def evaluate_combined(spec: ExpectationSpec, reports: list[ChunkReport]) -> tuple[bool, Any]:
    """(success, observed value) of a COMBINED expectation over all chunks."""
    kw = spec.kwargs
    if spec.type.startswith("expect_table_row_count"):
        rows = sum(int(r["rows_in"]) for r in reports)
        return (rows == kw.get("value")) if spec.type.endswith("_to_equal") else _between(rows, kw), rows
    stats = _merge_stats(reports, kw["column"])
    figure = spec.type.removeprefix("expect_column_").split("_to_")[0]  # min, max, sum, mean, proportion_of_...
    if figure == "proportion_of_non_null_values":
        observed = stats["count"] / stats["rows"] if stats["rows"] else None
    else:
        observed = stats[figure]
    if observed is None:  # no good rows (or only NULLs): nothing to judge; min_rows and not-null checks cover that
        return True, None
    return _between(observed, kw), observed


def _label(spec: ExpectationSpec) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in spec.kwargs.items())
    return f"{spec.type}({args})"


def _chunk_list(reports: list[ChunkReport]) -> str:
    worst = sorted(reports, key=lambda r: (-int(r["rows_quarantined"]), int(r["index"])))
    worst = [r for r in worst if int(r["rows_quarantined"])][:MAX_CHUNKS_NAMED]
    text = ", ".join(f"chunk {r['index']}: {r['rows_quarantined']} of {r['rows_in']}" for r in worst)
    more = len([r for r in reports if int(r["rows_quarantined"])]) - len(worst)
    return text + (f" and {more} more chunk(s)" if more > 0 else "")


def _reasons(reports: list[ChunkReport]) -> str:
    """What sent rows to quarantine, summed over the chunks: expectations, cast failures per column, source rejects."""
    totals: dict[str, int] = {}
    for r in reports:
        for reason, n in r.get("quarantine_reasons", {}).items():
            totals[reason] = totals.get(reason, 0) + int(n)
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:MAX_CHUNKS_NAMED]
    return "; ".join(f"{reason}: {n} row(s)" for reason, n in top) or "no reasons recorded"


def quality_gate(
    cfg: PipelineConfig, reports: list[ChunkReport], history: Sequence[Past] | None = None
) -> list[ChunkReport]:
    """run_gate, returning only the reports to load."""
    return run_gate(cfg, reports, history).reports


def run_gate(cfg: PipelineConfig, reports: list[ChunkReport], history: Sequence[Past] | None = None) -> GateResult:
    """Check the run's chunk reports against cfg.quality, the batch-level expectations and (with cfg.history) the
    pipeline's history; raise QualityGateFailed naming the chunks, expectations and checks at fault, else return the
    reports to load (all of them: a chunk with no good rows still gets its ledger row, so the run's conservation
    adds up) with the warnings and notes."""
    reports = sorted(reports, key=lambda r: int(r["index"]))
    for r in reports:
        if int(r["rows_in"]) != int(r["rows_good"]) + int(r["rows_quarantined"]):
            raise QualityGateFailed(
                f"chunk {r['index']}: rows_in {r['rows_in']} != good {r['rows_good']} + "
                f"quarantined {r['rows_quarantined']}; the chunk report does not add up"
            )
    rows_in = sum(int(r["rows_in"]) for r in reports)
    good = sum(int(r["rows_good"]) for r in reports)
    bad = sum(int(r["rows_quarantined"]) for r in reports)
    q = cfg.quality
    problems: list[str] = []
    if rows_in and not good:
        problems.append(
            f"every row is bad: all {rows_in} row(s) were quarantined ({_chunk_list(reports)}); "
            f"reasons: {_reasons(reports)}"
        )
    elif rows_in and bad / rows_in > q.max_quarantine_fraction:
        problems.append(
            f"{bad} of {rows_in} row(s) quarantined ({bad / rows_in:.2%}), over the limit "
            f"quality.max_quarantine_fraction = {q.max_quarantine_fraction:.2%}; chunks: "
            f"{_chunk_list(reports)}; reasons: {_reasons(reports)}"
        )
    if q.min_rows is not None and rows_in < q.min_rows:
        problems.append(f"{rows_in} row(s) arrived, fewer than quality.min_rows = {q.min_rows}")
    if q.max_rows is not None and rows_in > q.max_rows:
        problems.append(f"{rows_in} row(s) arrived, more than quality.max_rows = {q.max_rows}")
    warnings: list[str] = []
    for spec in cfg.expectations:
        if spec.type in COMBINED:
            ok, observed = evaluate_combined(spec, reports)
            if not ok:
                msg = f"batch expectation {_label(spec)} failed on the whole interval: observed {observed!r}"
                (warnings if spec.severity == "warn" else problems).append(msg)
    for r in reports:
        for check in r.get("batch_checks", {}).get("chunkwise", []):
            if not check["success"]:
                msg = (
                    f"batch expectation {check['expectation']} failed in chunk {r['index']}: "
                    f"observed {check.get('observed')!r}"
                )
                (warnings if check.get("severity") == "warn" else problems).append(msg)
    missing = sorted({c for r in reports if int(r["rows_in"]) for c in r.get("missing_columns") or []})
    if missing:
        warnings.append(
            f"declared column(s) {', '.join(missing)} missing from the source: loaded as NULL "
            "(target.on_missing_columns: null)"
        )
    notes: list[str] = []
    if cfg.history is not None:
        from sluice.validate.history import check_history

        found = check_history(cfg.history, rows_in, interval_figures(cfg, reports), list(history or []))
        problems += found.problems
        warnings += found.warnings
        notes += found.notes
    for w in warnings:
        log.warning("quality gate (warn only): %s", w)
    for n in notes:
        log.info("quality gate note: %s", n)
    log.info(
        "quality gate for %s: %d chunk(s), %d row(s) in, %d good, %d quarantined (%.2f%%)",
        cfg.name,
        len(reports),
        rows_in,
        good,
        bad,
        100 * bad / rows_in if rows_in else 0.0,
    )
    if problems:
        also = "".join(f"\n- (warning) {w}" for w in warnings)
        raise QualityGateFailed(
            f"quality gate failed for pipeline {cfg.name}; nothing was loaded:\n- " + "\n- ".join(problems) + also
        )
    return GateResult(reports, warnings, notes)
