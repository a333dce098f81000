"""Reading the answer of a statement that always returns exactly one row (EXISTS, count(*), nextval, SHOW)."""

from __future__ import annotations

from typing import Any

import psycopg


def one_row(cur: psycopg.Cursor[Any]) -> Any:
    """The row of a statement that always returns one; no row at all is a bug in the statement, said as such."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("a statement that always returns one row returned none (a bug in the statement)")
    return row


def scalar(cur: psycopg.Cursor[Any]) -> Any:
    """The first column of the one row (see one_row)."""
    return one_row(cur)[0]
