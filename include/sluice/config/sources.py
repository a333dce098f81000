"""The source models, one per source kind, as a union tagged by `kind`. Import them from `sluice.config`."""

from __future__ import annotations

import codecs
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, model_validator

from sluice.config.errors import fail, suggest
from sluice.config.types import Compression, HttpAuth, Identifier, S3Format, StrictModel, Template


class CsvOptions(StrictModel):
    header: bool = Field(True, description="First line holds the column names.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator, one character.")
    quote_char: str = Field('"', min_length=1, max_length=1, description="Quote character, one character.")
    encoding: str = Field("utf-8", description="Text encoding of the files, e.g. utf-8, latin-1.")

    @model_validator(mode="after")
    def _encoding_known(self) -> CsvOptions:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise fail(
                "encoding",
                f"unknown encoding '{self.encoding}'",
                expected="a Python codec name",
                hint=suggest(self.encoding, ["utf-8", "utf-16", "latin-1", "cp1252", "ascii"]),
            ) from None
        return self


class S3SourceConfig(StrictModel):
    """Files under a prefix (templated by the interval) in an S3 bucket."""

    module: ClassVar[str] = "sluice.sources.s3"  # the source module: iter_batches(cfg, interval, on_reject)

    kind: Literal["s3"] = Field(description="Source kind.")
    conn_id: str = Field("sluice_s3", description="Airflow AWS connection id.")
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] = Field(
        description="Bucket name only (no s3://, no path)."
    )
    prefix: Template = Field(description="Key prefix, Jinja-templated by the interval, e.g. 'orders/{{ ds }}/'.")
    format: S3Format = Field(description="File format: csv, jsonl or parquet.")
    compression: Compression = Field(Compression.auto, description="none, gzip, or auto (gzip when the key ends .gz).")
    csv: CsvOptions = Field(default_factory=CsvOptions, description="CSV parsing options (format csv only).")
    pattern: str = Field("*", description="Glob matched against file names under the prefix, e.g. '*.csv.gz'.")

    @model_validator(mode="before")
    @classmethod
    def _bucket_not_url(cls, data: Any) -> Any:
        bucket = data.get("bucket") if isinstance(data, dict) else None
        if isinstance(bucket, str) and ("/" in bucket or bucket.startswith("s3:")):
            name, _, rest = bucket.removeprefix("s3://").partition("/")
            raise fail(
                "bucket",
                f"bucket '{bucket}' is a URL or path",
                expected="the bucket name only",
                hint=f"bucket: {name}" + (f" and prefix: {rest}" if rest else ""),
            )
        return data


class PageNumberPagination(StrictModel):
    paginator: ClassVar[str] = "PageNumberPaginator"  # its class in sluice.sources.http.paginators
    style: Literal["page_number"] = Field(description="Pagination style.")
    page_param: str = Field("page", description="Query parameter carrying the page number.")
    size_param: str | None = Field(None, description="Query parameter carrying the page size, if any.")
    page_size: int | None = Field(None, gt=0, description="Page size sent in size_param.")
    start_page: int = Field(1, ge=0, description="Number of the first page.")
    total_path: str | None = Field(None, description="Dotted path of the total record count in the body, if any.")


class OffsetPagination(StrictModel):
    paginator: ClassVar[str] = "OffsetPaginator"  # its class in sluice.sources.http.paginators
    style: Literal["offset"] = Field(description="Pagination style.")
    offset_param: str = Field("offset", description="Query parameter carrying the offset.")
    limit_param: str = Field("limit", description="Query parameter carrying the limit.")
    limit: int = Field(100, gt=0, description="Records per request.")
    total_path: str | None = Field(None, description="Dotted path of the total record count in the body, if any.")


class CursorPagination(StrictModel):
    paginator: ClassVar[str] = "CursorPaginator"  # its class in sluice.sources.http.paginators
    style: Literal["cursor"] = Field(description="Pagination style.")
    cursor_param: str = Field(description="Query parameter that sends the cursor.")
    cursor_path: str = Field(description="Dotted path of the next cursor in the body; empty/missing ends paging.")


class NextUrlPagination(StrictModel):
    paginator: ClassVar[str] = "NextUrlPaginator"  # its class in sluice.sources.http.paginators
    style: Literal["next_url"] = Field(description="Pagination style.")
    next_url_path: str = Field(description="Dotted path of the next page's URL in the body; null ends paging.")


class LinkHeaderPagination(StrictModel):
    paginator: ClassVar[str] = "LinkHeaderPaginator"  # its class in sluice.sources.http.paginators
    style: Literal["link_header"] = Field(description='Pagination style: follow the rel="next" Link header.')


class SinglePagination(StrictModel):
    paginator: ClassVar[str] = "SinglePagePaginator"  # its class in sluice.sources.http.paginators
    style: Literal["single"] = Field(description="Pagination style: one request, no paging.")


Pagination = Annotated[
    PageNumberPagination
    | OffsetPagination
    | CursorPagination
    | NextUrlPagination
    | LinkHeaderPagination
    | SinglePagination,
    Field(discriminator="style"),
]


class CircuitBreakerConfig(StrictModel):
    """A breaker on the source's connection, shared through Redis by every worker (sources/breaker.py)."""

    failures: int = Field(5, ge=1, description="Consecutive failed requests (5xx, timeouts) that open the breaker.")
    cooldown_seconds: float = Field(30, gt=0, description="How long an open breaker waits before one probe request.")
    max_wait_seconds: float = Field(
        600, gt=0, description="The longest a task waits on an open breaker before failing into its Airflow retry."
    )

    @model_validator(mode="after")
    def _wait_covers_cooldown(self) -> CircuitBreakerConfig:
        if self.max_wait_seconds < self.cooldown_seconds:
            raise fail(
                "max_wait_seconds",
                f"max_wait_seconds {self.max_wait_seconds:g} is below cooldown_seconds {self.cooldown_seconds:g}",
                hint="a task would give up before the first probe; raise max_wait_seconds",
            )
        return self


class HttpSourceConfig(StrictModel):
    """A JSON HTTP API, paged, rate-limited and retried."""

    module: ClassVar[str] = "sluice.sources.http"  # the source module: iter_batches(cfg, interval, on_reject)

    kind: Literal["http"] = Field(description="Source kind.")
    conn_id: str = Field(description="Airflow HTTP connection id (base URL; secret in its password).")
    endpoint: Template = Field(description="Path appended to the connection's base URL, Jinja-templated.")
    params: dict[str, Template] = Field(default_factory=dict, description="Query parameters, Jinja-templated.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (never secrets).")
    records_path: str = Field("", description="Dotted path of the record list in the body; '' = body is the list.")
    pagination: Pagination = Field(
        default_factory=lambda: SinglePagination(style="single"),
        description="How to page through results (style: page_number, offset, cursor, "
        "next_url, link_header or single).",
    )
    max_pages: int = Field(10_000, gt=0, description="Stop with an error after this many pages.")
    rate_limit_per_second: float | None = Field(None, gt=0, description="Requests per second across workers.")
    timeout_seconds: float = Field(30, gt=0, description="Timeout of one request.")
    max_retries: int = Field(5, ge=0, description="Retries of one request on 429/5xx/timeouts.")
    circuit_breaker: CircuitBreakerConfig | None = Field(
        None, description="Stop calling a failing source: a breaker per conn_id shared by every worker (off if unset)."
    )
    auth: HttpAuth = Field(HttpAuth.none, description="How the connection's password is sent.")
    api_key_name: str | None = Field(None, description="Header or query parameter name for api_key_* auth.")

    @model_validator(mode="after")
    def _auth_consistent(self) -> HttpSourceConfig:
        if self.auth in (HttpAuth.api_key_header, HttpAuth.api_key_query) and not self.api_key_name:
            raise fail("auth", f"auth {self.auth} needs api_key_name", hint="add api_key_name: X-Api-Key (for example)")
        for name in self.headers:
            if name.lower() in ("authorization", "x-api-key", "api-key", "cookie"):
                raise fail(
                    f"headers.{name}",
                    f"header '{name}' carries a secret; secrets live in connections",
                    hint="set auth (bearer, basic, api_key_header) and keep the secret in the connection",
                )
        return self


class SqlSourceConfig(StrictModel):
    """A table or query in a SQL database, read in bounded batches with a server-side cursor."""

    module: ClassVar[str] = "sluice.sources.sql"  # the source module: iter_batches(cfg, interval, on_reject)

    kind: Literal["sql"] = Field(description="Source kind.")
    conn_id: str = Field(description="Airflow connection id of the source database.")
    table: str | None = Field(
        None,
        pattern=r"^[A-Za-z_]\w{0,62}(\.[A-Za-z_]\w{0,62})?$",
        description="Source table, optionally schema.table (exactly one of table/query).",
    )
    incremental_column: Identifier | None = Field(
        None, description="With table: only rows whose value is in [interval_start, interval_end)."
    )
    query: str | None = Field(
        None, description="SQL query using :interval_start and :interval_end binds (exactly one of table/query)."
    )
    statement_timeout_seconds: int = Field(600, gt=0, description="Server-side statement timeout.")

    @model_validator(mode="after")
    def _table_xor_query(self) -> SqlSourceConfig:
        if (self.table is None) == (self.query is None):
            raise fail(
                "table" if self.table else None,
                "set exactly one of table and query",
                expected="table: schema.name (with optional incremental_column) or query: SELECT ...",
            )
        if self.query is not None and self.incremental_column:
            raise fail(
                "incremental_column",
                "incremental_column applies to table only",
                hint="filter in the query with :interval_start and :interval_end",
            )
        return self


SourceConfig = Annotated[S3SourceConfig | HttpSourceConfig | SqlSourceConfig, Field(discriminator="kind")]


def _members(union: Any) -> tuple[type[Any], ...]:
    """The models of an Annotated union; type[Any]: each declares its own ClassVar (module, paginator)."""
    return get_args(get_args(union)[0])


SOURCE_MODELS: tuple[type[Any], ...] = _members(SourceConfig)
PAGINATION_MODELS: tuple[type[Any], ...] = _members(Pagination)
# kind -> module and style -> paginator class name: derived from the models, so a new kind is one model (and module).
SOURCE_MODULES: dict[str, str] = {get_args(m.model_fields["kind"].annotation)[0]: m.module for m in SOURCE_MODELS}
PAGINATOR_CLASSES: dict[str, str] = {
    get_args(m.model_fields["style"].annotation)[0]: m.paginator for m in PAGINATION_MODELS
}
SOURCE_KINDS = tuple(SOURCE_MODULES)
