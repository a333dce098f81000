"""The pipeline file, as typed pydantic models, and its loader. Strict on purpose (unknown keys are errors) so a
typo fails the linter and only its own DAG; config_errors.py makes each error point at file, line and field."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

from sluice.config_errors import ConfigError, ConfigIssue, fail, from_validation_error, read_yaml, suggest
from sluice.config_sources import (
    SOURCE_KINDS,
    CsvOptions,
    CursorPagination,
    HttpSourceConfig,
    LinkHeaderPagination,
    NextUrlPagination,
    OffsetPagination,
    PageNumberPagination,
    Pagination,
    S3SourceConfig,
    SinglePagination,
    SourceConfig,
    SqlSourceConfig,
)
from sluice.config_types import (
    CRON_PRESETS,
    IDENTIFIER,
    TEMPLATE_NAMES,
    ColumnSpec,
    ColumnType,
    Compression,
    Duration,
    ExtraColumnsPolicy,
    HttpAuth,
    Identifier,
    PipelineName,
    S3Format,
    Schedule,
    Severity,
    StrictModel,
    WriteMode,
    render,
)

__all__ = [
    "AlertsConfig", "CRON_PRESETS", "ColumnSpec", "ColumnType", "Compression", "ConfigError", "ConfigIssue",
    "CsvOptions", "CursorPagination", "DeadlineConfig", "Defaults", "Duration", "ExpectationSpec",
    "ExtraColumnsPolicy", "HttpAuth", "HttpSourceConfig", "IDENTIFIER", "Identifier", "LinkHeaderPagination",
    "LoadResult", "NextUrlPagination", "OffsetPagination", "PageNumberPagination", "Pagination", "PipelineConfig",
    "PipelineName", "QualityConfig", "RetryConfig", "S3Format", "S3SourceConfig", "SOURCE_KINDS", "Schedule",
    "Severity", "SinglePagination", "SourceConfig", "SqlSourceConfig", "StagingConfig", "StrictModel",
    "TEMPLATE_NAMES", "TargetConfig", "WriteMode", "deep_merge", "default_config_dir", "default_pipelines_dir",
    "find_pipeline_file", "json_schema", "load_all", "load_defaults", "load_paths", "load_pipeline", "pipeline_files",
    "render",
]

# ---------------------------------------------------------------- target, staging, policies


class TargetConfig(StrictModel):
    """The PostgreSQL table the pipeline writes."""

    conn_id: str = Field("sluice_warehouse", description="Airflow Postgres connection id of the warehouse.")
    schema_: Identifier = Field("public", alias="schema", description="Target schema (created if missing).")
    table: Identifier = Field(description="Target table (created from columns if missing).")
    primary_key: list[Identifier] = Field(min_length=1, description="Primary-key columns; each must be declared "
                                          "in columns with nullable: false.")
    columns: list[ColumnSpec] = Field(min_length=1, description="Declared columns; the cast produces exactly these.")
    write_mode: WriteMode = Field(WriteMode.upsert, description="upsert (by primary key), append, or "
                                  "replace_interval (delete the interval's rows, then insert).")
    interval_column: Identifier | None = Field(None, description="Column whose value in [start, end) marks the "
                                               "interval's rows; required for replace_interval.")
    on_extra_columns: ExtraColumnsPolicy = Field(ExtraColumnsPolicy.ignore, description="Source columns not in "
                                                 "columns: ignore, fail the run, or evolve (add them as text).")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)

    @model_validator(mode="after")
    def _keys_declared(self) -> TargetConfig:
        names = self.column_names
        for i, name in enumerate(names):
            if name in names[:i]:
                raise fail(f"columns.{i}.name", f"column '{name}' is declared twice")
        expected = "one of the declared columns: " + ", ".join(names)
        for i, key in enumerate(self.primary_key):
            if key not in names:
                raise fail(f"primary_key.{i}", f"primary-key column '{key}' is not declared in columns",
                           expected=expected, hint=suggest(key, names) or f"add a column named '{key}'")
            if key in self.primary_key[:i]:
                raise fail(f"primary_key.{i}", f"primary-key column '{key}' is listed twice")
            if self.column(key).nullable:
                raise fail(f"columns.{names.index(key)}.nullable", f"primary-key column '{key}' is nullable",
                           hint=f"add 'nullable: false' to column '{key}'")
        if self.write_mode is WriteMode.replace_interval and not self.interval_column:
            raise fail("interval_column", "write_mode replace_interval needs interval_column",
                       expected="a declared date/timestamp/timestamptz column",
                       hint="add interval_column: <the column that holds each row's event time>")
        if self.interval_column:
            if self.interval_column not in names:
                raise fail("interval_column", f"interval_column '{self.interval_column}' is not declared in columns",
                           expected=expected, hint=suggest(self.interval_column, names))
            if not self.column(self.interval_column).column_type.is_temporal:
                raise fail("interval_column", f"interval_column '{self.interval_column}' is not a date or time",
                           expected="a column of type date, timestamp or timestamptz")
        return self


class StagingConfig(StrictModel):
    url: Annotated[str, Field(pattern=r"^(s3://[a-z0-9][a-z0-9.-]+[a-z0-9](/.*)?|file:///.*)$")] = Field(
        "s3://sluice-staging", description="Where Parquet chunks are staged: s3://bucket[/prefix] or file:///path.")
    conn_id: str | None = Field("sluice_s3", description="Airflow AWS connection id (unused for file://).")
    chunk_rows: int = Field(250_000, gt=0, description="Rows per staged Parquet chunk; bounds the memory of a task.")


class ExpectationSpec(StrictModel):
    type: Annotated[str, Field(pattern=r"^expect_[a-z0-9_]+$")] = Field(
        description="GX Core expectation name, e.g. expect_column_values_to_not_be_null.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Arguments of the expectation, e.g. column.")
    severity: Severity = Field(Severity.quarantine, description="quarantine the failing rows, fail the run, or warn.")


class QualityConfig(StrictModel):
    max_quarantine_fraction: float = Field(0.05, ge=0, le=1, description="Fail the run if more than this fraction "
                                           "of the interval's rows is quarantined.")
    min_rows: int | None = Field(None, ge=0, description="Fail the run if fewer rows arrive.")
    max_rows: int | None = Field(None, ge=0, description="Fail the run if more rows arrive.")

    @model_validator(mode="after")
    def _bounds(self) -> QualityConfig:
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            raise fail("max_rows", f"max_rows {self.max_rows} is below min_rows {self.min_rows}")
        return self


class RetryConfig(StrictModel):
    retries: int = Field(3, ge=0, description="Task retries after a failure.")
    delay_seconds: float = Field(2, ge=0, description="Delay before the first retry.")
    multiplier: float = Field(2.0, ge=1, description="Backoff factor between retries.")
    max_delay_seconds: float = Field(300, ge=0, description="Upper bound of the delay between retries.")


class AlertsConfig(StrictModel):
    channels: list[str] = Field(default_factory=list, description="Airflow connection ids to alert "
                                "(conn type slackwebhook or discord).")
    on_retry: bool = Field(False, description="Also alert on each retry, not only on failure.")


class DeadlineConfig(StrictModel):
    after_interval_end: Duration = Field(description="Alert when a run is not done this long after the interval "
                                         "ends: 2h, 30m, 90s, 1h30m or PT2H.")
    reference: Literal["interval_end"] = Field("interval_end", description="What the deadline counts from.")


# ---------------------------------------------------------------- pipeline

_COLUMN_KWARGS = ("column", "column_A", "column_B")


class PipelineConfig(StrictModel):
    """One pipeline file: one DAG."""

    name: PipelineName = Field(description="Pipeline name and dag_id: lower-case letters, digits and _.")
    description: str = Field("", description="Shown in the DAG's docs.")
    owner: str = Field("sluice", description="Owner shown in Airflow.")
    tags: list[str] = Field(default_factory=list, description="Airflow DAG tags.")
    schedule: Schedule = Field("@daily", description="Cron expression (5 fields) or @hourly/@daily/@weekly/"
                               "@monthly/@yearly.")
    start_date: date = Field(description="First data interval starts here (UTC).")
    end_date: date | None = Field(None, description="No intervals after this date (UTC).")
    catchup: bool = Field(False, description="Schedule the missed intervals since start_date.")
    require_data: bool = Field(False, description="Fail when the source has no data for the interval.")
    source: SourceConfig = Field(description="Where the data comes from; kind: s3, http or sql.")
    staging: StagingConfig = Field(default_factory=StagingConfig, description="Where chunks are staged.")
    target: TargetConfig = Field(description="The PostgreSQL table written.")
    expectations: list[ExpectationSpec] = Field(default_factory=list, description="GX expectations run per chunk.")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Thresholds over the whole run.")
    retries: RetryConfig = Field(default_factory=RetryConfig, description="Task retries and backoff.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Where failures and missed deadlines go.")
    deadline: DeadlineConfig | None = Field(None, description="Alert when a run finishes late.")
    source_file: SkipJsonSchema[str] = Field("", description="Set by the loader: the file this came from.")

    @property
    def cron(self) -> str:
        """The schedule as a 5-field cron expression (presets expanded)."""
        return CRON_PRESETS.get(self.schedule, self.schedule)

    @model_validator(mode="after")
    def _cross_checks(self) -> PipelineConfig:
        if self.end_date and self.end_date < self.start_date:
            raise fail("end_date", f"end_date {self.end_date} is before start_date {self.start_date}")
        names = self.target.column_names
        for i, exp in enumerate(self.expectations):
            for key in (*_COLUMN_KWARGS, "column_list"):
                value = exp.kwargs.get(key)
                for j, col in enumerate(value if key == "column_list" and isinstance(value, list) else [value]):
                    if col is not None and col not in names:
                        where = f"expectations.{i}.kwargs.{key}" + (f".{j}" if key == "column_list" else "")
                        raise fail(where, f"column '{col}' is not declared in target.columns",
                                   expected="one of: " + ", ".join(names), hint=suggest(col, names))
        return self


# ---------------------------------------------------------------- loading

_REPO = Path(__file__).resolve().parents[2]
_YAML_SUFFIXES = (".yaml", ".yml")


def default_config_dir() -> Path:
    """$SLUICE_CONFIG_DIR, else <repo>/config."""
    return Path(os.environ.get("SLUICE_CONFIG_DIR") or _REPO / "config")


def default_pipelines_dir() -> Path:
    return default_config_dir() / "pipelines"


class Defaults(dict):
    """defaults.yaml as a dict, remembering where each value came from (for errors about inherited values)."""

    def __init__(self, data: dict, path: str | None = None, lines: dict | None = None):
        super().__init__(data)
        self.path, self.lines = path, lines or {}


def load_defaults(config_dir: str | Path | None = None) -> Defaults:
    """Read <config_dir>/defaults.yaml ({} when absent); raises ConfigError."""
    path = Path(config_dir or default_config_dir()) / "defaults.yaml"
    if not path.exists():
        return Defaults({})
    data, lines = read_yaml(path, what="defaults file")
    if data is None:
        return Defaults({}, str(path), lines)
    if not isinstance(data, dict):
        raise ConfigError.single(path, f"defaults must be a mapping, got {type(data).__name__}", line=1)
    allowed = [k for k in PipelineConfig.model_fields if k not in ("name", "source_file")]
    issues = [ConfigIssue(str(path), lines.get((k,)), str(k), f"unknown key '{k}'", "one of: " + ", ".join(allowed),
                          suggest(k, allowed)) for k in data if k not in allowed]
    if issues:
        raise ConfigError(issues)
    return Defaults(data, str(path), lines)


def deep_merge(base: dict, override: dict) -> dict:
    """override wins; nested mappings merge key by key; lists are replaced, not concatenated."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


_SCHEMA: dict | None = None


def _error_schema() -> dict:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = PipelineConfig.model_json_schema(by_alias=True)
    return _SCHEMA


def json_schema() -> dict:
    """JSON Schema of a pipeline file, for editors (`python -m sluice schema`)."""
    schema = PipelineConfig.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "Sluice pipeline"}


def load_pipeline(path: str | Path, defaults: dict | None = None) -> PipelineConfig:
    """Load and validate one pipeline file with defaults merged under it; raises ConfigError."""
    data, lines = read_yaml(path)
    if data is None:
        raise ConfigError.single(path, "file is empty", line=1, expected="a pipeline: name, start_date, source and "
                                 "target at least", hint="run `python -m sluice schema` for every key")
    if not isinstance(data, dict):
        raise ConfigError.single(path, f"top level must be a mapping (key: value lines), got {type(data).__name__}",
                                 line=1)
    if "source_file" in data:
        raise ConfigError.single(path, "unknown key 'source_file' (set by the loader)", line=lines[("source_file",)],
                                 field="source_file", hint="remove it")
    merged = {**deep_merge(dict(defaults or {}), data), "source_file": str(path)}
    try:
        return PipelineConfig.model_validate(merged)
    except ValidationError as exc:
        raise from_validation_error(exc, str(path), merged, lines, _error_schema(),
                                    getattr(defaults, "path", None), getattr(defaults, "lines", None)) from None


@dataclass
class LoadResult:
    """Good pipelines by name, and one ConfigError per bad file (keyed by path)."""

    pipelines: dict[str, PipelineConfig] = field(default_factory=dict)
    errors: dict[str, ConfigError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _name_line(path: str) -> int | None:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    m = re.search(r"^name\s*:", text, re.MULTILINE)
    return text.count("\n", 0, m.start()) + 1 if m else None


def pipeline_files(directory: str | Path) -> list[Path]:
    """*.yaml / *.yml under a directory (recursively), skipping hidden files and folders, sorted."""
    root = Path(directory)
    return sorted(p for p in root.rglob("*") if p.suffix in _YAML_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def load_paths(paths: list[str | Path], defaults: dict | None = None) -> LoadResult:
    """Load several files independently: a bad file only costs itself. A name used twice fails every file using it."""
    result, by_name = LoadResult(), {}
    for path in paths:
        try:
            cfg = load_pipeline(path, defaults)
        except ConfigError as exc:
            result.errors[str(path)] = exc
            continue
        by_name.setdefault(cfg.name, []).append(cfg)
    for name, cfgs in by_name.items():
        if len(cfgs) == 1:
            result.pipelines[name] = cfgs[0]
            continue
        for cfg in cfgs:
            others = ", ".join(f"{o.source_file}:{_name_line(o.source_file) or 1}" for o in cfgs if o is not cfg)
            result.errors[cfg.source_file] = ConfigError.single(
                cfg.source_file, f"pipeline name '{name}' is also used by {others}", line=_name_line(cfg.source_file),
                field="name", hint="pipeline names are dag_ids and must be unique; rename one of them")
    return result


def load_all(pipelines_dir: str | Path | None = None, defaults: dict | None = None) -> LoadResult:
    """Load every pipeline file in a directory. Defaults come from <pipelines_dir>/../defaults.yaml unless given;
    a broken defaults file is reported under its own path and the pipelines load without it."""
    directory = Path(pipelines_dir or default_pipelines_dir())
    errors: dict[str, ConfigError] = {}
    if defaults is None:
        try:
            defaults = load_defaults(directory.parent)
        except ConfigError as exc:
            errors[exc.path], defaults = exc, {}
    if not directory.is_dir():
        errors[str(directory)] = ConfigError.single(directory, "pipelines directory does not exist")
        return LoadResult({}, errors)
    result = load_paths(pipeline_files(directory), defaults)
    result.errors = {**errors, **result.errors}
    return result


def find_pipeline_file(name: str, pipelines_dir: str | Path | None = None) -> Path | None:
    """The file that declares `name: <name>`, found by a text scan (no YAML parsing): lets a worker build one DAG."""
    pattern = re.compile(rf"^name\s*:\s*['\"]?{re.escape(name)}['\"]?\s*(#.*)?$", re.MULTILINE)
    for path in pipeline_files(pipelines_dir or default_pipelines_dir()):
        try:
            if pattern.search(path.read_text(encoding="utf-8")):
                return path
        except (OSError, UnicodeDecodeError):
            continue
    return None
