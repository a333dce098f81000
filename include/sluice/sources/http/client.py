"""HTTP source: a paged JSON API -> Arrow record batches, for one data interval.

- Base URL and secret come from the Airflow connection `source.conn_id`; the secret is masked in Airflow's logs and
  redacted from every URL and message we produce (an `api_key_query` key travels in the URL).
- Every request attempt takes a slot of the shared rate limit (sources/ratelimit.py) and is retried by tenacity on 429,
  5xx, timeouts and connection errors, with exponential backoff + jitter, or exactly the server's `Retry-After`
  (seconds or HTTP-date) when it sends one. Retrying ourselves rather than via urllib3's Retry is what lets every
  retry count against the shared rate limit.
- Columns are raw and all strings, nested values as compact JSON text (castable to jsonb): see json_batches.py.
- Memory: one page (a page's batch is cut to at most `chunk_rows` rows); staging assembles the chunks, unifying
  the columns of pages whose records carry different keys.
- A page identical to the previous one is an error (DuplicatePageError): it means the API ignores the paging
  parameter or loops. Continuing would load duplicates until max_pages; stopping would silently truncate.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import requests
import tenacity
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from sluice.config import HttpAuth, render
from sluice.sources.base import OnReject
from sluice.sources.http.paginators import MISSING, PageRequest, lookup_path, make_paginator
from sluice.sources.ratelimit import RateLimiter, limiter_for
from sluice.sources.records import Columnizer, loads

if TYPE_CHECKING:
    from sluice.config import HttpSourceConfig, PipelineConfig
    from sluice.interval import Interval

log = logging.getLogger(__name__)

BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 300.0
USER_AGENT = "sluice-http-source/1"


class HttpSourceError(RuntimeError):
    """The API answered something we cannot turn into records; the message names the (redacted) URL."""


class DuplicatePageError(HttpSourceError):
    """Two consecutive pages carried the same records."""


class MaxPagesExceeded(HttpSourceError):
    """The API still had a next page after `max_pages` pages."""


class _RetryableStatus(Exception):
    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


# ---------------------------------------------------------------- connection and auth


class _Redactor(logging.Filter):
    """Replaces every secret with *** in text we log or raise, and registers it with Airflow's masker. As a logging
    filter it also cleans urllib3's DEBUG lines, which print the full URL (an api_key_query key included)."""

    def __init__(self, *secrets: str | None) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 3]
        for secret in self.secrets:
            try:
                from airflow.sdk.log import mask_secret

                mask_secret(secret)
            except Exception:  # noqa: BLE001 - masking is best effort outside a task; redaction below still holds
                pass

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg, record.args = self(record.getMessage()), None
        return True


class _BearerAuth(AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class _HeaderKeyAuth(AuthBase):
    def __init__(self, name: str, key: str) -> None:
        self.name, self.key = name, key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers[self.name] = self.key
        return r


class _QueryKeyAuth(AuthBase):
    """Sets (not appends) the key parameter, so a next-page URL echoing it does not carry it twice."""

    def __init__(self, name: str, key: str) -> None:
        self.name, self.key = name, key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(r.url or "")
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != self.name]
        r.url = urlunsplit(parts._replace(query=urlencode([*query, (self.name, self.key)])))
        return r


def base_url(conn: Any) -> str:
    """Base URL the way Airflow's HttpHook reads an HTTP connection: host (may hold a scheme), schema = scheme
    (http/https), port. A URI-form connection (`http://:tok@host:8765/api`) puts its path in `schema`; we keep
    that as a path prefix instead of mistaking it for a scheme."""
    host = (conn.host or "").strip().rstrip("/")
    if not host:
        raise HttpSourceError(f"connection {conn.conn_id!r} has no host")
    if "://" in host:
        return host
    schema = (conn.schema or "").strip("/")
    scheme = schema if schema in ("http", "https") else ("https" if conn.conn_type == "https" else "http")
    url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    return url + (f"/{schema}" if schema and schema not in ("http", "https") else "")


def join_url(base: str, endpoint: str) -> str:
    return base.rstrip("/") + "/" + endpoint.lstrip("/") if endpoint else base


def make_auth(conn: Any, mode: HttpAuth, key_name: str | None) -> AuthBase | None:
    """requests auth for the source's auth mode; the secret is always the connection's password."""
    mode = HttpAuth(mode)
    if mode is HttpAuth.none:
        return None
    if not conn.password:
        raise HttpSourceError(f"auth {mode.value} needs a secret in the password of connection {conn.conn_id!r}")
    if mode is HttpAuth.bearer:
        return _BearerAuth(conn.password)
    if mode is HttpAuth.basic:
        return HTTPBasicAuth(conn.login or "", conn.password)
    if mode is HttpAuth.api_key_header:
        return _HeaderKeyAuth(key_name or "X-Api-Key", conn.password)
    return _QueryKeyAuth(key_name or "api_key", conn.password)


# ---------------------------------------------------------------- fetching with retries and rate limit


def retry_after_seconds(response: requests.Response) -> float | None:
    """`Retry-After` in seconds (both the delta-seconds and the HTTP-date form, parsed by urllib3), else None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return Retry(retry_after_max=MAX_RETRY_AFTER_SECONDS).parse_retry_after(value)
    except InvalidHeader:
        return None


class _Wait(tenacity.wait.wait_base):
    """The server's Retry-After (+ up to 10% jitter so woken workers spread out), else exponential backoff + jitter."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _RetryableStatus) and (after := retry_after_seconds(exc.response)) is not None:
            return after + random.uniform(0, min(1.0, after * 0.1))
        backoff = tenacity.wait_exponential_jitter(
            initial=BACKOFF_INITIAL_SECONDS, max=BACKOFF_MAX_SECONDS, jitter=BACKOFF_INITIAL_SECONDS
        )
        return backoff(retry_state)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(
        exc, _RetryableStatus | requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError
    )


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or (status >= 500 and status not in (501, 505))


class Fetcher:
    """GET with shared rate limit, retries and timeouts; raises HttpSourceError with a redacted URL."""

    def __init__(
        self,
        session: requests.Session,
        timeout: float,
        max_retries: int,
        limiter: RateLimiter | None,
        redact: _Redactor,
    ) -> None:
        self.session, self.timeout, self.max_retries, self.limiter, self.redact = (
            session,
            timeout,
            max_retries,
            limiter,
            redact,
        )
        self.requests = 0
        self.retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max_retries + 1),
            wait=_Wait(),
            retry=tenacity.retry_if_exception(_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _attempt(self, request: PageRequest) -> requests.Response:
        if self.limiter:
            self.limiter.acquire()
        self.requests += 1
        response = self.session.get(request.url, params=request.params or None, timeout=self.timeout)
        if is_retryable_status(response.status_code):
            raise _RetryableStatus(response)
        return response

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "GET %s: %s; retry %d/%d in %.1fs",
            self.redact(self._url(state.args[0])),
            self.redact(str(exc)),
            state.attempt_number,
            self.max_retries,
            state.next_action.sleep if state.next_action else 0,
        )

    @staticmethod
    def _url(request: PageRequest) -> str:
        return request.url + ("?" + urlencode(request.params) if request.params else "")

    def get(self, request: PageRequest) -> requests.Response:
        try:
            response = self.retrying(self._attempt, request)
        except _RetryableStatus as exc:
            raise HttpSourceError(
                f"GET {self.redact(exc.response.url)} still answered HTTP {exc.response.status_code} after "
                f"{self.max_retries + 1} attempts: {self.redact(_snippet(exc.response.text))}"
            ) from None
        except requests.RequestException as exc:
            raise HttpSourceError(
                f"GET {self.redact(self._url(request))} failed after "
                f"{self.retrying.statistics.get('attempt_number', 1)} attempt(s): "
                f"{self.redact(str(exc))}"
            ) from None
        if response.status_code >= 400:
            raise HttpSourceError(
                f"GET {self.redact(response.url)} answered HTTP {response.status_code} "
                f"{response.reason}: {self.redact(_snippet(response.text))}"
            )
        return response


# ---------------------------------------------------------------- body -> records -> Arrow


def _snippet(text: str, at: int = 0, width: int = 120) -> str:
    start = max(at - width // 2, 0)
    return repr(text[start : start + width])


def parse_json(response: requests.Response, url: str) -> Any:
    """The JSON body, or an error naming the URL: an HTML/XML page (an error or login page served with 200), or
    malformed JSON with its line, column and the text around the position."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if "html" in content_type or "xml" in content_type:
        raise HttpSourceError(
            f"GET {url} answered HTTP {response.status_code} with Content-Type {content_type}, "
            f"not JSON (an error or login page?); body starts {_snippet(response.text)}"
        )
    try:
        return loads(response.content)
    except json.JSONDecodeError as exc:
        hint = " (looks like HTML)" if exc.doc.lstrip()[:1] == "<" else ""
        raise HttpSourceError(
            f"malformed JSON from GET {url}{hint}: {exc.msg} at line {exc.lineno} column "
            f"{exc.colno} (char {exc.pos}), near {_snippet(exc.doc, exc.pos, 60)}"
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


# ---------------------------------------------------------------- the source


def _session(src: HttpSourceConfig, conn: Any, interval: Interval, base: str) -> requests.Session:
    session = requests.Session()
    # requests re-reads the proxy and CA environment on every request (~1 ms with Airflow's many env vars);
    # read it once. Every page is on the base URL's origin (next URLs on other origins are refused).
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(base))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
    session.headers.update({k: render(v, interval) for k, v in src.headers.items()})
    session.auth = make_auth(conn, src.auth, src.api_key_name)
    return session


def iter_batches(cfg: PipelineConfig, interval: Interval, on_reject: OnReject) -> Iterator[pa.RecordBatch]:
    """Stream the API's records for `interval` as string-column record batches of at most `chunk_rows` rows."""
    from airflow.sdk import BaseHook

    src: HttpSourceConfig = cfg.source  # type: ignore[assignment]
    conn = BaseHook.get_connection(src.conn_id)
    redact = _Redactor(conn.password)
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.addFilter(redact)
    try:
        yield from _fetch_all(cfg, src, conn, interval, redact, on_reject)
    finally:
        urllib3_log.removeFilter(redact)


def _fetch_all(
    cfg: PipelineConfig, src: HttpSourceConfig, conn: Any, interval: Interval, redact: _Redactor, on_reject: OnReject
) -> Iterator[pa.RecordBatch]:
    chunk_rows = cfg.staging.chunk_rows
    base = base_url(conn)
    fetcher = Fetcher(
        _session(src, conn, interval, base),
        src.timeout_seconds,
        src.max_retries,
        limiter_for(cfg.name, src.conn_id, src.rate_limit_per_second),
        redact,
    )
    request = PageRequest(
        join_url(base, render(src.endpoint, interval)), {k: render(v, interval) for k, v in src.params.items()}
    )
    paginator = make_paginator(src.pagination)
    paginator.init_request(request)
    columnizer = Columnizer()
    previous: list[Any] | None = None
    pages = rows = 0
    started = time.monotonic()
    while True:
        response = fetcher.get(request)
        url = redact(response.url)
        body = parse_json(response, url)
        records = select_records(body, src.records_path, url)
        pages += 1
        if records and records == previous:
            raise DuplicatePageError(
                f"page {pages} (GET {url}) repeats the previous page's {len(records)} records: "
                f"the API ignores the paging parameter or loops ({paginator.describe()})"
            )
        paginator.update_state(response, body, records)
        del body
        for start in range(0, len(records), chunk_rows):
            batch = columnizer.batch(records[start : start + chunk_rows], url, start, on_reject)
            if batch is not None:
                rows += batch.num_rows
                yield batch
        previous = records
        if not paginator.has_next:
            break
        if pages >= src.max_pages:
            raise MaxPagesExceeded(
                f"GET {url}: still a next page after max_pages={src.max_pages} "
                f"({paginator.describe()}); raise max_pages or narrow the interval"
            )
        paginator.update_request(request)
    waited = fetcher.limiter.waited_seconds if fetcher.limiter else 0.0
    log.info(
        "http source %s: %d rows, %d pages, %d requests in %.1fs (%.1fs waiting on the rate limit)",
        cfg.name,
        rows,
        pages,
        fetcher.requests,
        time.monotonic() - started,
        waited,
    )
