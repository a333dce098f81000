"""The HTTP source's errors, in their own module so that auth, client and the fetch loop share them without cycles."""

from __future__ import annotations


class HttpSourceError(RuntimeError):
    """The API answered something we cannot turn into records; the message names the (redacted) URL."""


class DuplicatePageError(HttpSourceError):
    """Two consecutive pages carried the same records."""


class MaxPagesExceeded(HttpSourceError):
    """The API still had a next page after `max_pages` pages."""
