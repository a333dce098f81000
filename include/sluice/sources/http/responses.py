"""A page's body -> its records: JSON parsing and the records selector, with errors that name the page's URL.

The URL passed in is already redacted; the error texts quote a little of the body around the problem, so that a bad
page can be recognised (a login page, a truncated body) without opening the API by hand.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from sluice.sources.http.errors import HttpSourceError
from sluice.sources.http.paginators import MISSING, lookup_path
from sluice.sources.records import loads


def snippet(text: str, at: int = 0, width: int = 120) -> str:
    """`width` characters of `text` around position `at`, quoted."""
    start = max(at - width // 2, 0)
    return repr(text[start : start + width])


def parse_json(response: requests.Response, url: str) -> Any:
    """The JSON body, or an error naming the URL: an HTML/XML page (an error or login page served with 200), or
    malformed JSON with its line, column and the text around the position."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if "html" in content_type or "xml" in content_type:
        raise HttpSourceError(
            f"GET {url} answered HTTP {response.status_code} with Content-Type {content_type}, "
            f"not JSON (an error or login page?); body starts {snippet(response.text)}"
        )
    try:
        return loads(response.content)
    except json.JSONDecodeError as exc:
        hint = " (looks like HTML)" if exc.doc.lstrip()[:1] == "<" else ""
        raise HttpSourceError(
            f"malformed JSON from GET {url}{hint}: {exc.msg} at line {exc.lineno} column "
            f"{exc.colno} (char {exc.pos}), near {snippet(exc.doc, exc.pos, 60)}"
        ) from None
    except UnicodeDecodeError as exc:
        raise HttpSourceError(f"GET {url}: body is not UTF-8 JSON: {exc}") from None


def select_records(body: Any, path: str, url: str) -> list[Any]:
    """The record list at `records_path`. A single object is one record; null is an empty page; a missing path is
    an error (silently reading zero rows from a renamed envelope would look like a quiet day)."""
    records = lookup_path(body, path)
    if records is MISSING:
        keys = sorted(body)[:20] if isinstance(body, dict) else type(body).__name__
        raise HttpSourceError(f"records_path {path!r} not found in the body of GET {url}; top level: {keys}")
    if records is None:
        return []
    if isinstance(records, dict):
        return [records]
    if not isinstance(records, list):
        raise HttpSourceError(f"records_path {path!r} in GET {url} holds a {type(records).__name__}, not a list")
    return records
