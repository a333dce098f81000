"""The pipeline's expectations as GX Core objects: name lookup, kwargs checks, row- vs batch-level, and one suite run.

GX is imported on first use only (it takes seconds): DAG parsing never imports this module's GX side, validation pays
it once per worker process, and `sluice lint` once per run when some pipeline declares expectations.
Every config problem is an ExpectationError carrying ExpectationProblems (field path, message, expected, hint), so
validate_chunk and `sluice lint` report the same thing, the linter with file and line (expectation_issues).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

from sluice.config.errors import ConfigIssue, format_loc, read_yaml, suggest
from sluice.validate.gate import CHUNKWISE, COMBINED

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from sluice.config import Defaults, ExpectationSpec, PipelineConfig

__all__ = [
    "ExpectationError",
    "ExpectationProblem",
    "Level",
    "build_expectation",
    "classify",
    "columns_of",
    "expectation_class",
    "expectation_issues",
    "reason_key",
    "run_suite",
    "to_pandas",
]

GX_CATALOG = "https://greatexpectations.io/expectations/"
# Fields every GX expectation has that a pipeline does not set in kwargs (left out of "expected: one of ...").
_INTERNAL_FIELDS = frozenset(
    {
        "id",
        "meta",
        "notes",
        "result_format",
        "description",
        "catch_exceptions",
        "rendered_content",
        "severity",
        "windows",
        "batch_id",
        "library_metadata",
    }
)
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_EXTRA = ("value_error.extra", "extra_forbidden")  # pydantic v1 (what GX 1.x uses) and v2 error types
_MISSING = ("value_error.missing", "missing")
_STRIP = ("unexpected_list", "unexpected_index_list", "unexpected_rows", "unexpected_index_query")


class Level(StrEnum):
    row = "row"  # judged row by row per chunk: unexpected rows are quarantined / fail / warn
    combined = "combined"  # batch-level, evaluated by the quality gate on figures summed over the chunks
    chunkwise = "chunkwise"  # batch-level, holds for the interval iff it holds for every chunk: GX runs it per chunk


@dataclass(frozen=True)
class ExpectationProblem:
    """One thing wrong with one expectation; `loc` is relative to it, e.g. ("type",) or ("kwargs", "max_value")."""

    loc: tuple[str | int, ...]
    message: str
    expected: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        return f"{format_loc(self.loc)}: {self.message}" + (f"; {self.hint}" if self.hint else "")


class ExpectationError(ValueError):
    """An expectation in the config cannot run (unknown name, bad kwargs, not evaluable on chunks)."""

    def __init__(self, message: str, problems: Iterable[ExpectationProblem] = ()):
        super().__init__(message)
        self.problems = list(problems) or [ExpectationProblem(("type",), message)]


# ---------------------------------------------------------------- expectation classes


def _import_gx() -> Any:
    """GX, without usage statistics and without its INFO chatter in the task log."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    gx_log = logging.getLogger("great_expectations")
    if gx_log.level == logging.NOTSET:
        gx_log.setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


@cache
def _registry() -> Any:
    """GX's expectation registry, with the core expectations registered (GX fills it as their modules import);
    an expectation a plugin registers is found the same way."""
    _import_gx()
    from great_expectations.expectations import registry

    registry.register_core_expectations()
    return registry


def expectation_class(name: str) -> type:
    """The GX Core class of a snake_case expectation name (expect_column_values_to_not_be_null ->
    ExpectColumnValuesToNotBeNull); ExpectationError with a did-you-mean on an unknown name."""
    from great_expectations.exceptions import ExpectationNotFoundError

    registry = _registry()
    try:
        return registry.get_expectation_impl(name)
    except ExpectationNotFoundError:
        hint = suggest(name, registry.list_registered_expectation_implementations()) or f"see {GX_CATALOG}"
        problem = ExpectationProblem(
            ("type",), f"unknown expectation '{name}' (GX Core has no such expectation)", hint=hint
        )
        raise ExpectationError(f"{problem.message}; {hint}", [problem]) from None


def classify(spec: ExpectationSpec) -> Level:
    """Row-level (a GX map expectation) or batch-level; raises ExpectationError for a batch-level expectation that
    cannot be judged on an interval processed in chunks (e.g. a median), instead of judging each chunk wrongly."""
    cls = expectation_class(spec.type)
    build_expectation(spec, -1)  # its kwargs too: a missing kwarg or a typo fails here, before any data is read
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    if spec.type in COMBINED:
        return Level.combined
    if spec.type in CHUNKWISE:
        return Level.chunkwise
    if issubclass(cls, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation):
        return Level.row
    supported = ", ".join(sorted(COMBINED | CHUNKWISE))
    message = (
        f"expectation '{spec.type}' is batch-level and its result on a whole interval cannot be built from "
        "per-chunk results"
    )
    raise ExpectationError(
        f"{message}; supported batch-level expectations: {supported}",
        [
            ExpectationProblem(
                ("type",), message, expected=f"a row-level (column map) expectation or one of: {supported}"
            )
        ],
    )


def _kwargs_problems(cls: type, kwargs: Mapping[str, Any], exc: Exception) -> list[ExpectationProblem]:
    """GX's pydantic errors, one problem per kwarg, with the accepted kwargs and a did-you-mean for unknown ones."""
    accepted = [k for k in getattr(cls, "__fields__", {}) if k not in _INTERNAL_FIELDS]
    expected = "one of: " + ", ".join(accepted)
    errors_of = getattr(exc, "errors", None)  # GX's pydantic ValidationError has errors(); other errors do not
    errors = errors_of() if callable(errors_of) else []
    if not errors:
        return [ExpectationProblem(("kwargs",), str(exc), expected)]
    unknown = [str(e["loc"][0]) for e in errors if e.get("type") in _EXTRA and e.get("loc")]
    meant = {suggest(k, accepted) for k in unknown}
    by_loc: dict[str, list[str]] = {}
    problems = []
    for err in errors:
        key, kind = str(err["loc"][0]) if err.get("loc") else "__root__", err.get("type", "")
        if kind in _EXTRA:
            problems.append(
                ExpectationProblem(("kwargs", key), f"unknown kwarg '{key}'", expected, suggest(key, accepted))
            )
        elif kind in _MISSING:
            if f"did you mean '{key}'?" not in meant:  # "colum" already says: did you mean 'column'?
                problems.append(ExpectationProblem(("kwargs",), f"missing required kwarg '{key}'", expected))
        else:
            by_loc.setdefault(key, []).append(err.get("msg", kind))
    for key, messages in by_loc.items():
        text = " / ".join(dict.fromkeys(messages))
        if key == "__root__":
            problems.append(ExpectationProblem(("kwargs",), text))
        else:
            problems.append(ExpectationProblem(("kwargs", key), f"{text} (got {kwargs.get(key)!r})"))
    return problems


def build_expectation(spec: ExpectationSpec, index: int) -> Any:
    """The GX expectation object; GX checks the kwargs (pydantic), a failure becomes an ExpectationError."""
    cls = expectation_class(spec.type)
    try:
        return cls(**spec.kwargs, meta={"sluice_index": index})
    except Exception as exc:  # say which expectation, why, and the likely fix
        problems = _kwargs_problems(cls, spec.kwargs, exc)
        raise ExpectationError(
            f"expectation {spec.type} with kwargs {spec.kwargs}: " + "; ".join(str(p) for p in problems), problems
        ) from None


def columns_of(spec: ExpectationSpec) -> list[str]:
    kw = spec.kwargs
    cols = [kw[k] for k in _COLUMN_KWARGS if kw.get(k)]
    return cols + list(kw.get("column_list") or [])


def reason_key(spec: ExpectationSpec) -> str:
    cols = columns_of(spec)
    return f"{spec.type}({', '.join(cols)})" if cols else spec.type


# ---------------------------------------------------------------- sluice lint


def _line(loc: tuple, lines: Mapping[tuple, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def expectation_issues(cfg: PipelineConfig, defaults: Defaults | None = None) -> list[ConfigIssue]:
    """Check a loaded pipeline's expectations as validate_chunk will (GX builds each one with its kwargs, a
    batch-level one must be supported) and point each problem at its line; for `sluice lint`. (That named columns
    are declared, config.py already checks.)"""
    if not cfg.expectations:
        return []
    _, lines = read_yaml(cfg.source_file)
    defaults_lines = defaults.lines if defaults is not None else {}
    inherited = ("expectations",) not in lines and ("expectations",) in defaults_lines
    issues = []
    for i, spec in enumerate(cfg.expectations):
        try:
            classify(spec)
        except ExpectationError as exc:
            for p in exc.problems:
                loc = ("expectations", i, *p.loc)
                origin = f"{defaults.path}:{_line(loc, defaults_lines)}" if inherited and defaults else None
                issues.append(
                    ConfigIssue(
                        cfg.source_file,
                        None if inherited else _line(loc, lines),
                        format_loc(loc),
                        p.message,
                        p.expected,
                        p.hint,
                        origin,
                    )
                )
    return sorted(issues, key=lambda issue: issue.line or 0)


# ---------------------------------------------------------------- running a suite


@cache
def _batch_definition() -> Any:
    """One ephemeral GX context per process, with a pandas datasource whose dataframe is passed per validation."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("sluice").add_dataframe_asset("chunk")
    return asset.add_batch_definition_whole_dataframe("whole chunk")


def run_suite(df: pd.DataFrame, specs: list[tuple[int, ExpectationSpec]], name: str) -> tuple[dict[int, Any], dict]:
    """Validate a dataframe with the given expectations; returns {config index: result} and the result as JSON
    (capped lists stripped). An expectation that raised inside GX is a config error, not a data failure."""
    import great_expectations as gx

    batch_definition = _batch_definition()  # creates the context, which the suite needs
    suite = gx.ExpectationSuite(name=name)
    for i, spec in specs:
        suite.add_expectation(build_expectation(spec, i))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(
        suite,
        result_format={
            "result_format": "COMPLETE",
            "partial_unexpected_count": 20,
            "return_unexpected_index_query": False,
        },
    )
    by_index: dict[int, Any] = {}
    for r in result.results:
        i = r.expectation_config.meta["sluice_index"]
        info = r.exception_info or {}
        infos = [info] if "raised_exception" in info else list(info.values())
        raised = [x for x in infos if isinstance(x, dict) and x.get("raised_exception")]
        if raised:
            raise ExpectationError(
                f"expectations[{i}] {reason_key(dict(specs)[i])} could not run: {raised[0].get('exception_message')}"
            )
        by_index[i] = r
    doc = result.to_json_dict()
    for r in doc.get("results", []):
        for key in _STRIP:
            (r.get("result") or {}).pop(key, None)
    return by_index, doc


def to_pandas(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    """GX's input: only the columns the expectations read; decimals as float64 (YAML bounds are floats)."""
    import pyarrow as pa

    cols = [
        table[c].cast(pa.float64()) if pa.types.is_decimal(table.schema.field(c).type) else table[c] for c in columns
    ]
    return pa.table(cols, names=columns).to_pandas()
