"""Reads of PostgreSQL's catalog: table existence, columns, primary key, this transaction's tuple counters."""

from __future__ import annotations

from psycopg import sql


def table_exists() -> sql.SQL:
    return sql.SQL(
        "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s)"
    )


def table_columns() -> sql.SQL:
    """Name, type, NOT NULL and default expression of every column of a table."""
    return sql.SQL(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid) "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum"
    )


def primary_key_columns() -> sql.SQL:
    return sql.SQL(
        "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND i.indisprimary ORDER BY a.attnum"
    )


def xact_tuple_counts() -> sql.SQL:
    """Rows this transaction inserted/updated/deleted in a table: exact counts for MERGE, which has no RETURNING."""
    return sql.SQL(
        "SELECT pg_stat_get_xact_tuples_inserted(c.oid), pg_stat_get_xact_tuples_updated(c.oid), "
        "pg_stat_get_xact_tuples_deleted(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s"
    )
