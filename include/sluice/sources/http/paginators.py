"""Pagination styles for the HTTP source, one small class each (after dlt's rest_client paginators).

Every paginator answers three questions through one interface, so the fetch loop in `source.py` never branches on the
style and adding a style is one class plus one test:

- `init_request(request)`: put the first page's parameters on the request;
- `update_state(response, body, records)`: read what the page says about the next one (sets `has_next`);
- `update_request(request)`: turn the request into the next page's request.

Common stop conditions: an empty page, a reached total (`total_path`), no next cursor/URL/link. The max-pages guard
and the duplicate-page check live in the fetch loop because they hold for every style.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from requests.utils import parse_header_links

from sluice.config.sources import PAGINATOR_CLASSES
from sluice.sources.http.auth import redact_url

if TYPE_CHECKING:
    import requests

MISSING = object()


class PaginationError(RuntimeError):
    """The API's pagination answer cannot be followed (bad total, looping cursor, foreign next URL...)."""


@dataclass
class PageRequest:
    """The mutable request a paginator steers: URL plus query parameters (auth is added by the session)."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)


def lookup_path(body: Any, path: str) -> Any:
    """Follow a dotted path ("data.items", "meta.0.next") into a JSON body; MISSING when a step is absent.

    "" is the body itself. A numeric step indexes a list.
    """
    if not path:
        return body
    node = body
    for step in path.split("."):
        if isinstance(node, dict):
            if step not in node:
                return MISSING
            node = node[step]
        elif isinstance(node, list) and step.lstrip("-").isdigit():
            index = int(step)
            if not -len(node) <= index < len(node):
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node


def _total(body: Any, path: str | None) -> int | None:
    """The total announced by the body at `path` (None when no path is configured or the value is null)."""
    if not path:
        return None
    value = lookup_path(body, path)
    if value is MISSING or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PaginationError(f"total_path {path!r} holds {value!r}, which is not an integer") from None


class Paginator(ABC):
    """Base class: starts with a next page, stops on an empty page."""

    def __init__(self) -> None:
        self.has_next = True

    def init_request(self, request: PageRequest) -> None:  # noqa: B027 - optional hook, most styles need nothing
        """Set the first page's parameters (no-op for styles whose first request is the plain endpoint)."""

    @abstractmethod
    def update_state(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        """Read the page just fetched and decide whether there is a next one."""

    @abstractmethod
    def update_request(self, request: PageRequest) -> None:
        """Mutate `request` into the next page's request (only called while `has_next`)."""

    def describe(self) -> str:
        """Where the paginator stands, for error messages."""
        return type(self).__name__


class SinglePagePaginator(Paginator):
    """The endpoint returns everything in one response."""

    def update_state(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        self.has_next = False

    def update_request(self, request: PageRequest) -> None:
        raise AssertionError("a single-page source has no next page")


class PageNumberPaginator(Paginator):
    """`?page=N[&size=M]`; stops on an empty page or once the records received reach `total_path` (a record count,
    as in the config; counting records rather than pages also works when the server caps the page size)."""

    def __init__(
        self,
        page_param: str = "page",
        size_param: str | None = None,
        page_size: int | None = None,
        start_page: int = 1,
        total_path: str | None = None,
    ) -> None:
        super().__init__()
        self.page_param, self.size_param, self.page_size = page_param, size_param, page_size
        self.start_page, self.total_path = start_page, total_path
        self.page = start_page
        self.received = 0

    def init_request(self, request: PageRequest) -> None:
        request.params[self.page_param] = self.page
        if self.size_param and self.page_size:
            request.params[self.size_param] = self.page_size

    def update_state(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        self.received += len(records)
        total = _total(body, self.total_path)
        self.has_next = bool(records) and (total is None or self.received < total)

    def update_request(self, request: PageRequest) -> None:
        self.page += 1
        request.params[self.page_param] = self.page

    def describe(self) -> str:
        return f"page_number at {self.page_param}={self.page}"


class OffsetPaginator(Paginator):
    """`?offset=N&limit=M`; the offset advances by the records received (a server may cap the limit lower than
    asked, and advancing by `limit` would then skip rows). Stops on an empty page or at `total_path` (a row count)."""

    def __init__(
        self,
        offset_param: str = "offset",
        limit_param: str = "limit",
        limit: int = 100,
        total_path: str | None = None,
    ) -> None:
        super().__init__()
        self.offset_param, self.limit_param, self.limit, self.total_path = offset_param, limit_param, limit, total_path
        self.offset = 0

    def init_request(self, request: PageRequest) -> None:
        request.params[self.offset_param] = self.offset
        request.params[self.limit_param] = self.limit

    def update_state(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        self.offset += len(records)
        total = _total(body, self.total_path)
        self.has_next = bool(records) and (total is None or self.offset < total)

    def update_request(self, request: PageRequest) -> None:
        request.params[self.offset_param] = self.offset

    def describe(self) -> str:
        return f"offset at {self.offset_param}={self.offset}"


class CursorPaginator(Paginator):
    """The body names the next cursor (`cursor_path`); it goes back as `?cursor_param=`. No cursor: the end."""

    def __init__(self, cursor_param: str = "cursor", cursor_path: str = "next_cursor") -> None:
        super().__init__()
        self.cursor_param, self.cursor_path = cursor_param, cursor_path
        self.cursor: Any = None
        self.seen: set[str] = set()

    def update_state(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        cursor = lookup_path(body, self.cursor_path)
        self.cursor = None if cursor is MISSING or cursor in (None, "") else cursor
        if self.cursor is not None and str(self.cursor) in self.seen:
            raise PaginationError(f"cursor {self.cursor!r} at {self.cursor_path!r} was already followed: the API loops")
        if self.cursor is not None:
            self.seen.add(str(self.cursor))
        self.has_next = bool(records) and self.cursor is not None

    def update_request(self, request: PageRequest) -> None:
        request.params[self.cursor_param] = self.cursor

    def describe(self) -> str:
        return f"cursor at {self.cursor_param}={self.cursor!r}"


def _same_origin(base: str, url: str) -> bool:
    a, b = urlsplit(base), urlsplit(url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


class _FollowUrlPaginator(Paginator):
    """Shared by the styles whose next page is a full URL. The URL carries its own query, so params are dropped;
    a URL on another origin is refused, because the session would send our credentials there."""

    def __init__(self) -> None:
        super().__init__()
        self.next_url: str | None = None
        self.current_url = ""

    def _follow(self, response: requests.Response, next_url: str | None) -> None:
        self.current_url = response.url
        if next_url:
            next_url = urljoin(response.url, next_url)
            if not _same_origin(response.url, next_url):
                raise PaginationError(
                    f"next page {redact_url(next_url)} is on another origin than {redact_url(response.url)}; "
                    "refusing to send the connection's credentials there"
                )
        self.next_url = next_url or None
        self.has_next = self.next_url is not None

    def update_request(self, request: PageRequest) -> None:
        request.url, request.params = self.next_url or "", {}


class NextUrlPaginator(_FollowUrlPaginator):
    """The body names the next page's URL (`next_url_path`, absolute or relative); null or absent: the end."""

    def __init__(self, next_url_path: str = "next") -> None:
        super().__init__()
        self.next_url_path = next_url_path

    def update_state(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        value = lookup_path(body, self.next_url_path)
        self._follow(response, None if value is MISSING or not records else value)

    def describe(self) -> str:
        return f"next_url after {redact_url(self.current_url)}"


class LinkHeaderPaginator(_FollowUrlPaginator):
    """RFC 8288 `Link: <url>; rel="next"` (GitHub style); no next link: the end."""

    def update_state(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        header = response.headers.get("Link", "")
        links = parse_header_links(header) if header else []
        nxt = next((link.get("url") for link in links if "next" in link.get("rel", "").split()), None)
        self._follow(response, nxt if records else None)

    def describe(self) -> str:
        return f"link_header after {redact_url(self.current_url)}"


# style -> class, from the config models (each pagination model names its class): one place per style.
PAGINATORS: dict[str, type[Paginator]] = {style: globals()[name] for style, name in PAGINATOR_CLASSES.items()}


def make_paginator(spec: Any) -> Paginator:
    """Build the paginator a config's `pagination` block (a pydantic model with a `style` field, or a dict) asks for."""
    options = dict(spec) if isinstance(spec, dict) else spec.model_dump()
    style = options.pop("style", "single")
    style = str(getattr(style, "value", style))
    try:
        cls = PAGINATORS[style]
    except KeyError:
        raise PaginationError(f"unknown pagination style {style!r}; one of {sorted(PAGINATORS)}") from None
    return cls(**{k: v for k, v in options.items() if v is not None})
