"""The pipeline file: typed models (models.py, types.py, sources.py), its loader (loader.py) and errors that name
file, line, field and a fix (errors.py). Everything a stage needs is importable from `sluice.config`."""

from sluice.config.errors import ConfigError, ConfigIssue
from sluice.config.loader import (
    Defaults,
    LoadResult,
    deep_merge,
    default_config_dir,
    default_pipelines_dir,
    find_pipeline_file,
    json_schema,
    load_all,
    load_defaults,
    load_paths,
    load_pipeline,
    pipeline_files,
)
from sluice.config.models import (
    AlertsConfig,
    DeadlineConfig,
    ExpectationSpec,
    PipelineConfig,
    QualityConfig,
    RetryConfig,
    StagingConfig,
    TargetConfig,
)
from sluice.config.sources import (
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
from sluice.config.types import (
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
