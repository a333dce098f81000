"""Building blocks of the config model: the strict base model, identifiers, schedules, durations, templates,
column types and the mode enums. Split from config.py to keep modules small; import them from `sluice.config`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.json_schema import WithJsonSchema

from sluice.config.errors import fail, suggest
from sluice.interval import Interval

if TYPE_CHECKING:
    import pyarrow as pa

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


def _identifier(value: str) -> str:
    if not re.match(IDENTIFIER, value):
        fixed = re.sub(r"\W", "_", value)[:63]
        fixed = fixed if re.match(IDENTIFIER, fixed) else f"_{fixed}"[:63]
        raise fail(
            None,
            f"'{value}' is not a valid identifier",
            expected="letters, digits and _, starting with a letter or _, at most 63 characters",
            hint=f"use '{fixed}' (for a column, source_name keeps the source's spelling)",
        )
    return value


Identifier = Annotated[str, AfterValidator(_identifier), WithJsonSchema({"type": "string", "pattern": IDENTIFIER})]


class StrictModel(BaseModel):
    """Unknown keys are errors; `schema` and friends may be given by alias or by name."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)


class S3Format(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


class Compression(StrEnum):
    none = "none"
    gzip = "gzip"
    auto = "auto"


class HttpAuth(StrEnum):
    none = "none"
    bearer = "bearer"
    basic = "basic"
    api_key_header = "api_key_header"
    api_key_query = "api_key_query"


# ---------------------------------------------------------------- templates


@cache
def _jinja() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


TEMPLATE_NAMES = tuple(Interval(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC)).template_context())


def _template(value: str) -> str:
    """Check a templated option at load time: Jinja syntax and only names the interval provides."""
    try:
        names = jinja2.meta.find_undeclared_variables(_jinja().parse(value))
    except jinja2.TemplateSyntaxError as exc:
        raise fail(None, f"template syntax error: {exc.message}", expected="Jinja2, e.g. 'landing/{{ ds }}/'") from None
    for name in sorted(names - set(TEMPLATE_NAMES)):
        raise fail(
            None,
            f"unknown template variable '{name}'",
            expected="one of: " + ", ".join(TEMPLATE_NAMES),
            hint=suggest(name, TEMPLATE_NAMES),
        )
    return value


Template = Annotated[str, AfterValidator(_template)]


def render(template: str, interval: Interval) -> str:
    """Render a templated source option for one data interval (Jinja2, StrictUndefined)."""
    try:
        return _jinja().from_string(template).render(interval.template_context())
    except jinja2.UndefinedError as exc:
        raise ValueError(f"template {template!r}: {exc.message}; available: {', '.join(TEMPLATE_NAMES)}") from None


def render_many(template: str, intervals: Iterable[Interval]) -> list[str]:
    """render() for many intervals with one compiled template (compiling is most of one render's cost)."""
    compiled = _jinja().from_string(template)
    try:
        return [compiled.render(i.template_context()) for i in intervals]
    except jinja2.UndefinedError as exc:
        raise ValueError(f"template {template!r}: {exc.message}; available: {', '.join(TEMPLATE_NAMES)}") from None


# ---------------------------------------------------------------- sources


# ---------------------------------------------------------------- scalar types

PIPELINE_NAME = r"^[a-z][a-z0-9_]*$"
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}


def _pipeline_name(value: str) -> str:
    if not re.match(PIPELINE_NAME, value) or len(value) > 200:
        fixed = re.sub(r"[^a-z0-9_]", "_", value.lower()).lstrip("_0123456789") or "pipeline"
        raise fail(
            None,
            f"'{value}' is not a valid pipeline name (it becomes the dag_id and a path part)",
            expected="lower-case letters, digits and _, starting with a letter",
            hint=f"use '{fixed}'",
        )
    return value


def _schedule(value: str) -> str:
    value = value.strip()
    if value.startswith("@"):
        if value not in CRON_PRESETS:
            raise fail(
                None,
                f"unknown schedule preset '{value}'",
                expected="a cron expression or one of: " + ", ".join(CRON_PRESETS),
                hint=suggest(value, CRON_PRESETS),
            )
        return value
    from croniter import croniter

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise fail(
            None,
            f"'{value}' is not a valid cron expression",
            expected="5 fields: minute hour day-of-month month day-of-week (e.g. '0 2 * * *'), or one of: "
            + ", ".join(CRON_PRESETS),
        )
    return value


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _duration(value: Any) -> Any:
    """'2h', '30m', '90s', '1h30m', '1d' or ISO-8601 'PT2H' (pydantic parses the ISO form)."""
    if isinstance(value, str) and not value.strip().upper().startswith("P"):
        m = _DURATION.match(value.strip().lower())
        if not value.strip() or not m:
            raise fail(
                None, f"'{value}' is not a duration", expected="a duration like 2h, 30m, 90s, 1h30m or ISO-8601 PT2H"
            )
        d, h, mi, s = (int(x or 0) for x in m.groups())
        return timedelta(days=d, hours=h, minutes=mi, seconds=s)
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise fail(None, "duration must be positive", expected="a duration like 2h, 30m, 90s, 1h30m or PT2H")
    return value


PipelineName = Annotated[
    str, AfterValidator(_pipeline_name), WithJsonSchema({"type": "string", "pattern": PIPELINE_NAME})
]
Schedule = Annotated[str, AfterValidator(_schedule)]
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    AfterValidator(_positive),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$|^P"}, {"type": "number"}]}
    ),
]


# ---------------------------------------------------------------- columns


_SIMPLE_TYPES = (
    "smallint",
    "integer",
    "bigint",
    "double",
    "boolean",
    "text",
    "date",
    "timestamp",
    "timestamptz",
    "jsonb",
)
_TYPE_NAMES = (*_SIMPLE_TYPES[:3], "numeric(p,s)", *_SIMPLE_TYPES[3:])
_TYPE_ALIASES = {
    "int": "integer",
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "float": "double",
    "float8": "double",
    "real": "double",
    "double precision": "double",
    "bool": "boolean",
    "varchar": "text",
    "string": "text",
    "str": "text",
    "json": "jsonb",
    "decimal": "numeric(p,s)",
    "numeric": "numeric(p,s)",
    "datetime": "timestamp",
    "timestamp with time zone": "timestamptz",
}
_NUMERIC = re.compile(r"^numeric\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


@dataclass(frozen=True)
class ColumnType:
    """A column type from the config, with its PostgreSQL and Arrow spellings."""

    name: str
    precision: int | None = None
    scale: int | None = None

    @classmethod
    def parse(cls, text: str) -> ColumnType:
        """Parse 'bigint', 'numeric(12,2)', ...; raises ValueError with a hint on anything else."""
        norm = " ".join(text.strip().lower().split())
        if norm in _SIMPLE_TYPES:
            return cls(norm)
        m = _NUMERIC.match(norm)
        if m:
            p, s = int(m.group(1)), int(m.group(2))
            if not 1 <= p <= 38 or s > p:
                raise fail(
                    None,
                    f"'{text}': numeric needs 1 <= precision <= 38 and 0 <= scale <= precision",
                    expected="numeric(p,s), e.g. numeric(12,2)",
                )
            return cls("numeric", p, s)
        hint = f"use '{_TYPE_ALIASES[norm]}'" if norm in _TYPE_ALIASES else suggest(norm, _TYPE_NAMES)
        if norm.startswith(("numeric", "decimal")):
            hint = "write numeric with precision and scale, e.g. numeric(12,2)"
        raise fail(None, f"unknown column type '{text}'", expected="one of: " + ", ".join(_TYPE_NAMES), hint=hint)

    def __str__(self) -> str:
        return f"numeric({self.precision},{self.scale})" if self.name == "numeric" else self.name

    @property
    def pg_type(self) -> str:
        return {"double": "double precision"}.get(self.name, str(self))

    @property
    def arrow_type(self) -> pa.DataType:
        import pyarrow as pa  # lazy: keeps DAG parsing fast

        if self.name == "numeric":
            return pa.decimal128(self.precision, self.scale)
        return {
            "smallint": pa.int16(),
            "integer": pa.int32(),
            "bigint": pa.int64(),
            "double": pa.float64(),
            "boolean": pa.bool_(),
            "text": pa.string(),
            "jsonb": pa.string(),
            "date": pa.date32(),
            "timestamp": pa.timestamp("us"),
            "timestamptz": pa.timestamp("us", tz="UTC"),
        }[self.name]

    @property
    def is_temporal(self) -> bool:
        return self.name in ("date", "timestamp", "timestamptz")

    @property
    def is_numeric(self) -> bool:
        return self.name in ("smallint", "integer", "bigint", "numeric", "double")


class ColumnSpec(StrictModel):
    """One target column: what the warehouse table holds and what the cast produces."""

    name: Identifier = Field(description="Column name in the target table.")
    type: Annotated[str, AfterValidator(lambda v: str(ColumnType.parse(v)))] = Field(
        description="Column type: " + "|".join(_TYPE_NAMES) + " (numeric like numeric(12,2))."
    )
    nullable: bool = Field(True, description="Whether NULL is allowed; primary-key columns must say false.")
    source_name: str | None = Field(None, description="Column name in the source when it differs from name.")

    @property
    def column_type(self) -> ColumnType:
        return ColumnType.parse(self.type)

    @property
    def pg_type(self) -> str:
        """PostgreSQL type, e.g. 'numeric(12,2)', 'double precision', 'timestamptz'."""
        return self.column_type.pg_type

    @property
    def arrow_type(self) -> pa.DataType:
        """Arrow type the cast produces, e.g. pa.decimal128(12, 2)."""
        return self.column_type.arrow_type

    @property
    def source_column(self) -> str:
        """The name to look up in the source."""
        return self.source_name or self.name


# ---------------------------------------------------------------- modes


class WriteMode(StrEnum):
    upsert = "upsert"
    append = "append"
    replace_interval = "replace_interval"


class ExtraColumnsPolicy(StrEnum):
    ignore = "ignore"
    fail = "fail"
    evolve = "evolve"


class MissingColumnsPolicy(StrEnum):
    fail = "fail"
    null = "null"


class Severity(StrEnum):
    quarantine = "quarantine"
    fail = "fail"
    warn = "warn"


class StorageClass(StrEnum):
    """S3 storage classes an archive copy may be written in (copy-object's StorageClass)."""

    STANDARD = "STANDARD"
    STANDARD_IA = "STANDARD_IA"
    ONEZONE_IA = "ONEZONE_IA"
    INTELLIGENT_TIERING = "INTELLIGENT_TIERING"
    GLACIER_IR = "GLACIER_IR"
    GLACIER = "GLACIER"
    DEEP_ARCHIVE = "DEEP_ARCHIVE"
