"""The HTTP source's client: a requests session from the HTTP provider's hook, and GET with retries and rate limit.

- The session is `HttpHook.get_conn()`'s, so a connection's extras behave as they do for any Airflow HTTP task:
  every extra that is not an option (`verify`, `cert`, `proxies`, `trust_env`, `max_redirects`, `allow_redirects`,
  ...) is a request header. Sluice's auth mode then replaces the hook's basic auth, the pipeline's `headers` go on
  top, and the pipeline's `timeout_seconds` is the timeout.
- Every request attempt takes a slot of the shared rate limit (sources/ratelimit.py) and is retried by tenacity on 429,
  5xx, timeouts and connection errors, with exponential backoff + jitter, or exactly the server's `Retry-After`
  (seconds or HTTP-date) when it sends one. Retrying ourselves rather than via urllib3's Retry is what lets every
  retry count against the shared rate limit.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import requests
import tenacity
from requests.auth import AuthBase
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from sluice.sources.breaker import CircuitBreaker
from sluice.sources.http.auth import Redactor
from sluice.sources.http.errors import HttpSourceError
from sluice.sources.http.paginators import PageRequest
from sluice.sources.http.responses import snippet
from sluice.sources.ratelimit import RateLimiter

log = logging.getLogger(__name__)

BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 300
DEFAULT_HEADERS = {"Accept": "application/json", "User-Agent": "sluice-http-source/1"}


class _RetryableStatus(Exception):
    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


# ---------------------------------------------------------------- connection -> base URL and session


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


def make_session(
    conn: Any, base: str, auth: AuthBase | None, headers: Mapping[str, str]
) -> tuple[requests.Session, dict[str, Any]]:
    """The hook's session for `conn`, with Sluice's auth and headers, and the keyword arguments every GET needs.

    The environment (proxy variables, REQUESTS_CA_BUNDLE) is merged in once, the way HttpHook.run_and_check does it
    (the connection's settings win over the environment), and then turned off: requests would otherwise re-read it
    on every request (~1 ms with Airflow's many variables) and let REQUESTS_CA_BUNDLE override `verify: false`.
    Every page is on the base URL's origin (next URLs on other origins are refused), so once is enough.
    """
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="GET", http_conn_id=conn.conn_id)
    try:
        session = hook.get_conn()
    except ValueError as exc:  # the hook reads a path in `schema` as a scheme; name the connection
        raise HttpSourceError(f"connection {conn.conn_id!r}: {exc}") from None
    from_extras = {str(k).lower() for k in conn.extra_dejson}
    session.headers.update({k: v for k, v in DEFAULT_HEADERS.items() if k.lower() not in from_extras})
    session.headers.update(headers)
    session.auth = auth
    settings = session.merge_environment_settings(base, session.proxies, session.stream, session.verify, session.cert)
    session.proxies, session.verify, session.cert = settings["proxies"], settings["verify"], settings["cert"]
    session.trust_env = False
    return session, {"allow_redirects": hook.merged_extra.get("allow_redirects", True)}


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


def is_source_down(status: int) -> bool:
    """What counts against the circuit breaker: the server failing, not a throttle (429) or a bad request (4xx)."""
    return status >= 500 and status not in (501, 505)


class Fetcher:
    """GET with shared rate limit, retries and timeouts; raises HttpSourceError with a redacted URL."""

    def __init__(
        self,
        session: requests.Session,
        timeout: float,
        max_retries: int,
        limiter: RateLimiter | None,
        redact: Redactor,
        send_options: Mapping[str, Any] | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.session, self.timeout, self.max_retries, self.limiter, self.redact = (
            session,
            timeout,
            max_retries,
            limiter,
            redact,
        )
        self.send_options = dict(send_options or {})
        self.breaker = breaker
        self.requests = 0
        self.retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max_retries + 1),
            wait=_Wait(),
            retry=tenacity.retry_if_exception(_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _attempt(self, request: PageRequest) -> requests.Response:
        if self.breaker:
            self.breaker.acquire()  # blocks while the source's breaker is open (CircuitOpenError past max wait)
        if self.limiter:
            self.limiter.acquire()
        self.requests += 1
        try:
            response = self.session.get(
                request.url, params=request.params or None, timeout=self.timeout, **self.send_options
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            if self.breaker:
                self.breaker.failure(type(exc).__name__)
            raise
        if self.breaker:
            if is_source_down(response.status_code):
                self.breaker.failure(f"HTTP {response.status_code}")
            else:
                self.breaker.success(f"HTTP {response.status_code}")
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
                f"{self.max_retries + 1} attempts: {self.redact(snippet(exc.response.text))}"
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
                f"{response.reason}: {self.redact(snippet(response.text))}"
            )
        return response
