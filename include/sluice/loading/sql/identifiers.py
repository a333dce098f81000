"""Identifiers and types allowed into SQL text: validated here, quoted with psycopg's `sql.Identifier`; the names of
Sluice's own schema and hidden columns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

META = "sluice"  # schema of the ledger, run summary and schema-change tables
RUN_COL = "_sluice_run"  # hidden: the load generation (sluice.load_run_seq) that last wrote the row
SEQ_COL = "_sluice_seq"  # hidden: (chunk << 32) | row number of that row in its chunk's good rows
HIDDEN = (RUN_COL, SEQ_COL)
# hidden: the end of the data interval whose load last wrote the row (NULL: written before this column existed, or
# by another writer); target.newer_interval_wins compares it so that re-running an older interval never rolls back
INTERVAL_COL = "_sluice_interval"
RESERVED = (*HIDDEN, INTERVAL_COL)  # every hidden column: never declared, never compared with the config
TEMP_TABLE = "_sluice_chunk"
# Default of _sluice_run: the load-run number the loader sets for its transaction (set_run_no), so a COPY straight
# into the target stamps every row without sending the number on every CSV line; 0 (another run) for other writers.
RUN_DEFAULT = "coalesce(nullif(current_setting('sluice.run_no', true), ''), '0')::bigint"
# Default of _sluice_interval, the same way: the interval end the loader sets (set_run_no), else NULL.
INTERVAL_DEFAULT = "nullif(current_setting('sluice.interval_end', true), '')::timestamptz"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_NUMERIC = re.compile(r"^(?:numeric|decimal)\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")
_TYPE_ALIASES = {
    "smallint": "smallint",
    "int2": "smallint",
    "integer": "integer",
    "int": "integer",
    "int4": "integer",
    "bigint": "bigint",
    "int8": "bigint",
    "double": "double precision",
    "double precision": "double precision",
    "float8": "double precision",
    "boolean": "boolean",
    "bool": "boolean",
    "text": "text",
    "date": "date",
    "timestamp": "timestamp without time zone",
    "timestamp without time zone": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "timestamp with time zone": "timestamp with time zone",
    "jsonb": "jsonb",
}


class UnsafeIdentifier(ValueError):
    """An identifier or type that is not allowed into SQL text."""


@dataclass(frozen=True)
class Col:
    """A column as the SQL builders need it: name, PostgreSQL type, nullability."""

    name: str
    pg_type: str
    nullable: bool = True


def ident(name: str) -> sql.Identifier:
    """A validated, quoted identifier. Rejects anything that is not a plain 63-byte SQL name."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise UnsafeIdentifier(f"unsafe SQL identifier {name!r}: use letters, digits and _ (max 63, not a digit first)")
    return sql.Identifier(name)


def qualified(schema: str, table: str) -> sql.Identifier:
    ident(schema), ident(table)
    return sql.Identifier(schema, table)


def pg_type(text: str) -> str:
    """Canonical spelling of an allowed column type (as PostgreSQL's format_type prints it)."""
    norm = " ".join(str(text).strip().lower().split())
    if norm in _TYPE_ALIASES:
        return _TYPE_ALIASES[norm]
    m = _NUMERIC.match(norm)
    if m:
        return f"numeric({int(m.group(1))},{int(m.group(2))})"
    raise UnsafeIdentifier(f"column type {text!r} is not one Sluice creates")


def _cols(names: Sequence[str], alias: str | None = None) -> sql.Composed:
    if alias:
        return sql.SQL(", ").join(sql.SQL("{}.{}").format(ident(alias), ident(n)) for n in names)
    return sql.SQL(", ").join(ident(n) for n in names)


def _coldef(col: Col) -> sql.Composed:
    null = sql.SQL("") if col.nullable else sql.SQL(" NOT NULL")
    return sql.SQL("{} {}{}").format(ident(col.name), sql.SQL(pg_type(col.pg_type)), null)


def regclass_present(name: str) -> sql.Composed:
    """`to_regclass('sluice.<name>') IS NOT NULL`: does Sluice's table, index or sequence exist (without an error)?"""
    return sql.SQL("to_regclass({}) IS NOT NULL").format(sql.Literal(f"{META}.{name}"))
