"""The pipeline file as typed pydantic models. Strict on purpose (unknown keys are errors) so a typo fails the
linter and only its own DAG; config/errors.py makes each error point at file, line and field."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from sluice.config.errors import fail, suggest
from sluice.config.health import FreshnessConfig, HistoryConfig
from sluice.config.sources import (
    SourceConfig,
)
from sluice.config.types import (
    CRON_PRESETS,
    ColumnSpec,
    Duration,
    ExtraColumnsPolicy,
    Identifier,
    MissingColumnsPolicy,
    PipelineName,
    Schedule,
    Severity,
    StorageClass,
    StrictModel,
    WriteMode,
)

# ---------------------------------------------------------------- target, staging, policies


class TargetConfig(StrictModel):
    """The PostgreSQL table the pipeline writes."""

    conn_id: str = Field("sluice_warehouse", description="Airflow Postgres connection id of the warehouse.")
    schema_: Identifier = Field("public", alias="schema", description="Target schema (created if missing).")
    table: Identifier = Field(description="Target table (created from columns if missing).")
    primary_key: list[Identifier] = Field(
        default_factory=list,
        description="Primary-key columns; each must be declared in columns with nullable: false. Required by upsert "
        "and replace_interval; append needs none.",
    )
    version_column: Identifier | None = Field(
        None,
        description="A declared column (such as updated_at) whose larger value marks the newer version of a key: a "
        "stored row is never replaced by one with a smaller version, so re-running an old interval never rolls a key "
        "back. Without it, the latest extraction of a key wins (upsert, replace_interval).",
    )
    newer_interval_wins: bool = Field(
        False,
        description="A stored row written by a later data interval is never replaced by the load of an earlier one, "
        "so re-running or backfilling last month never rolls a key back (upsert, replace_interval). Off by default: "
        "the latest extraction of a key wins, whichever interval it belongs to.",
    )
    allow_empty: bool = Field(
        False,
        description="replace_interval: let a source with no rows for an interval delete that interval's stored rows. "
        "Off by default: an empty source (expired files, an API serving only recent days) fails the run instead.",
    )
    columns: list[ColumnSpec] = Field(min_length=1, description="Declared columns; the cast produces exactly these.")
    write_mode: WriteMode = Field(
        WriteMode.upsert,
        description="upsert (by primary key), append, or replace_interval (delete the interval's rows, then insert).",
    )
    interval_column: Identifier | None = Field(
        None, description="Column whose value in [start, end) marks the interval's rows; required for replace_interval."
    )
    on_extra_columns: ExtraColumnsPolicy = Field(
        ExtraColumnsPolicy.ignore,
        description="Source columns not in columns: ignore, fail the run, or evolve (add them as text).",
    )
    on_missing_columns: MissingColumnsPolicy = Field(
        MissingColumnsPolicy.fail,
        description="Declared nullable columns absent from the source: fail the run (naming them, with a "
        "did-you-mean), or null (load NULL and warn in the quality gate). A missing non-nullable column always fails.",
    )

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
        if self.write_mode is not WriteMode.append and not self.primary_key:
            raise fail(
                "primary_key",
                f"write_mode {self.write_mode.value} needs primary_key",
                expected="a list of declared, non-nullable columns",
                hint="add primary_key: [<your key column>], or use write_mode: append",
            )
        if self.version_column is not None:
            if self.version_column not in names:
                raise fail(
                    "version_column",
                    f"version_column '{self.version_column}' is not declared in columns",
                    expected=expected,
                    hint=suggest(self.version_column, names),
                )
            if self.write_mode is WriteMode.append:
                raise fail("version_column", "version_column applies to upsert and replace_interval, not append")
        if self.newer_interval_wins and self.write_mode is WriteMode.append:
            raise fail("newer_interval_wins", "newer_interval_wins applies to upsert and replace_interval, not append")
        for i, key in enumerate(self.primary_key):
            if key not in names:
                raise fail(
                    f"primary_key.{i}",
                    f"primary-key column '{key}' is not declared in columns",
                    expected=expected,
                    hint=suggest(key, names) or f"add a column named '{key}'",
                )
            if key in self.primary_key[:i]:
                raise fail(f"primary_key.{i}", f"primary-key column '{key}' is listed twice")
            if self.column(key).nullable:
                raise fail(
                    f"columns.{names.index(key)}.nullable",
                    f"primary-key column '{key}' is nullable",
                    hint=f"add 'nullable: false' to column '{key}'",
                )
        if self.write_mode is WriteMode.replace_interval and not self.interval_column:
            raise fail(
                "interval_column",
                "write_mode replace_interval needs interval_column",
                expected="a declared date/timestamp/timestamptz column",
                hint="add interval_column: <the column that holds each row's event time>",
            )
        if self.interval_column:
            if self.interval_column not in names:
                raise fail(
                    "interval_column",
                    f"interval_column '{self.interval_column}' is not declared in columns",
                    expected=expected,
                    hint=suggest(self.interval_column, names),
                )
            if not self.column(self.interval_column).column_type.is_temporal:
                raise fail(
                    "interval_column",
                    f"interval_column '{self.interval_column}' is not a date or time",
                    expected="a column of type date, timestamp or timestamptz",
                )
        return self


S3_URL = r"^s3://[a-z0-9][a-z0-9.-]+[a-z0-9](/.*)?$"


class ArchiveConfig(StrictModel):
    """Copies of staged objects in an archive bucket/prefix, in a cold storage class, made by `staging retention`
    (and `staging archive`) before anything is deleted."""

    url: Annotated[str, Field(pattern=S3_URL)] = Field(
        description="Archive location s3://bucket[/prefix]; keys below it mirror the staging keys."
    )
    conn_id: str | None = Field(None, description="Airflow AWS connection id; default: staging.conn_id.")
    storage_class: StorageClass = Field(
        StorageClass.GLACIER, description="S3 storage class of the copies: STANDARD_IA, GLACIER, DEEP_ARCHIVE, ..."
    )
    quarantine: bool = Field(
        True,
        description="Copy the quarantine and rejects Parquet of every generation older than retention.older_than "
        "(also of the generations retention keeps).",
    )
    generations: bool = Field(True, description="Copy every object of a generation before retention deletes it.")


class RetentionConfig(StrictModel):
    """What `python -m sluice staging retention` and the sluice_retention DAG may delete from staging."""

    enabled: bool = Field(True, description="false: retention deletes nothing of this pipeline (archive still runs).")
    older_than: Duration = Field(
        timedelta(days=30),
        description="Delete committed generations whose newest object is older than this (30d, 12h, PT36H). The "
        "latest generation of an interval, uncommitted ones and ones a running run uses are always kept.",
    )
    archive: ArchiveConfig | None = Field(None, description="Copy to an archive bucket/prefix before deleting.")


class StagingConfig(StrictModel):
    url: Annotated[str, Field(pattern=r"^(s3://[a-z0-9][a-z0-9.-]+[a-z0-9](/.*)?|file:///.*)$")] = Field(
        "s3://sluice-staging", description="Where Parquet chunks are staged: s3://bucket[/prefix] or file:///path."
    )
    conn_id: str | None = Field("sluice_s3", description="Airflow AWS connection id (unused for file://).")
    chunk_rows: int = Field(250_000, gt=0, description="Rows per staged Parquet chunk; bounds the memory of a task.")
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="Deleting and archiving old staged generations."
    )

    @model_validator(mode="after")
    def _archive_apart(self) -> StagingConfig:
        archive = self.retention.archive
        if archive is None:
            return self
        if not self.url.startswith("s3://"):
            raise fail(
                "retention.archive",
                f"an archive needs s3:// staging, not {self.url}",
                hint="remove retention.archive, or stage in S3",
            )
        staged, kept = self.url.rstrip("/") + "/", archive.url.rstrip("/") + "/"
        if staged.startswith(kept) or kept.startswith(staged):
            raise fail(
                "retention.archive.url",
                f"archive url {archive.url} overlaps staging url {self.url}: retention would delete the archive",
                expected="another bucket, or a prefix beside the staging prefix",
                hint=f"e.g. url: s3://{staged[5:].split('/')[0]}-archive",
            )
        return self


class ExpectationSpec(StrictModel):
    type: Annotated[str, Field(pattern=r"^expect_[a-z0-9_]+$")] = Field(
        description="GX Core expectation name, e.g. expect_column_values_to_not_be_null."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Arguments of the expectation, e.g. column.")
    severity: Severity = Field(Severity.quarantine, description="quarantine the failing rows, fail the run, or warn.")


class QualityConfig(StrictModel):
    max_quarantine_fraction: float = Field(
        0.05, ge=0, le=1, description="Fail the run if more than this fraction of the interval's rows is quarantined."
    )
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
    channels: list[str] = Field(
        default_factory=list, description="Airflow connection ids to alert (conn type slackwebhook or discord)."
    )
    on_retry: bool = Field(False, description="Also alert on each retry, not only on failure.")


class DeadlineConfig(StrictModel):
    after_interval_end: Duration = Field(
        description="Alert when a run is not done this long after the interval ends: 2h, 30m, 90s, 1h30m or PT2H."
    )
    reference: Literal["interval_end"] = Field("interval_end", description="What the deadline counts from.")


# ---------------------------------------------------------------- pipeline

_COLUMN_KWARGS = ("column", "column_A", "column_B")


class PipelineConfig(StrictModel):
    """One pipeline file: one DAG."""

    name: PipelineName = Field(description="Pipeline name and dag_id: lower-case letters, digits and _.")
    description: str = Field("", description="Shown in the DAG's docs.")
    owner: str = Field("sluice", description="Owner shown in Airflow.")
    tags: list[str] = Field(default_factory=list, description="Airflow DAG tags.")
    schedule: Schedule = Field(
        "@daily", description="Cron expression (5 fields) or @hourly/@daily/@weekly/@monthly/@yearly."
    )
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
    history: HistoryConfig | None = Field(
        None, description="Quality-gate checks of volume and column outliers against the last successful loads."
    )
    freshness: FreshnessConfig | None = Field(
        None, description="The freshness watchdog alerts when the loaded data is older than max_lag."
    )
    queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")] | None = Field(
        None,
        description="Celery queue every task of this pipeline goes to; only workers started with "
        "`airflow celery worker --queues <queue>` run them (e.g. workers on the hosts next to the source). "
        "Default: Airflow's default queue, which every worker serves.",
    )
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
                        raise fail(
                            where,
                            f"column '{col}' is not declared in target.columns",
                            expected="one of: " + ", ".join(names),
                            hint=suggest(col, names),
                        )
        numeric = [c.name for c in self.target.columns if c.column_type.is_numeric]
        for i, check in enumerate(self.history.outliers if self.history else []):
            if check.column not in numeric:
                declared = check.column in names
                raise fail(
                    f"history.outliers.{i}.column",
                    f"column '{check.column}' is " + ("not numeric" if declared else "not declared in target.columns"),
                    expected="a numeric declared column: " + (", ".join(numeric) or "none is declared"),
                    hint=None if declared else suggest(check.column, numeric or names),
                )
        return self
