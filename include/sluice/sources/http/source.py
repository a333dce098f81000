"""HTTP source: a paged JSON API -> Arrow record batches, for one data interval (the fetch loop).

- Base URL, secret and extras come from the Airflow connection `source.conn_id` (client.make_session); the secret is
  masked in Airflow's logs and redacted, raw and URL-encoded, from every URL and message we produce (auth.Redactor):
  every error leaving `iter_batches` passes through it once more, whatever module raised it.
- Columns are raw and all strings, nested values as compact JSON text (castable to jsonb): see sources/records.py.
- Memory: one page (a page's batch is cut to at most `chunk_rows` rows); staging assembles the chunks, unifying
  the columns of pages whose records carry different keys.
- A page identical to the previous one is an error (DuplicatePageError): it means the API ignores the paging
  parameter or loops. Continuing would load duplicates until max_pages; stopping would silently truncate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sluice.config import render
from sluice.sources.base import OnReject, with_origin
from sluice.sources.breaker import CircuitBreaker
from sluice.sources.http.auth import Redactor, key_param, make_auth
from sluice.sources.http.client import Fetcher, base_url, join_url, make_session
from sluice.sources.http.errors import DuplicatePageError, HttpSourceError, MaxPagesExceeded
from sluice.sources.http.paginators import PageRequest, PaginationError, make_paginator
from sluice.sources.http.responses import parse_json, select_records
from sluice.sources.ratelimit import limiter_for
from sluice.sources.records import Columnizer

if TYPE_CHECKING:
    from sluice.config import HttpSourceConfig, PipelineConfig
    from sluice.interval import Interval

log = logging.getLogger(__name__)


def iter_batches(cfg: PipelineConfig, interval: Interval, on_reject: OnReject) -> Iterator[pa.RecordBatch]:
    """Stream the API's records for `interval` as string-column record batches of at most `chunk_rows` rows."""
    from airflow.sdk import BaseHook

    src: HttpSourceConfig = cfg.source  # type: ignore[assignment]
    conn = BaseHook.get_connection(src.conn_id)
    redact = Redactor(conn.password, params=[key_param(src.auth, src.api_key_name)])
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.addFilter(redact)
    try:
        yield from _fetch_all(cfg, src, conn, interval, redact, on_reject)
    except (HttpSourceError, PaginationError) as exc:
        clean = redact(str(exc))
        if clean == str(exc):
            raise
        raise type(exc)(clean) from None
    finally:
        urllib3_log.removeFilter(redact)


def breaker_for(src: HttpSourceConfig) -> CircuitBreaker | None:
    """The source connection's shared breaker, when the pipeline configures one."""
    b = src.circuit_breaker
    if b is None:
        return None
    return CircuitBreaker(src.conn_id, b.failures, b.cooldown_seconds, b.max_wait_seconds)


def _fetch_all(
    cfg: PipelineConfig, src: HttpSourceConfig, conn: Any, interval: Interval, redact: Redactor, on_reject: OnReject
) -> Iterator[pa.RecordBatch]:
    chunk_rows = cfg.staging.chunk_rows
    base = base_url(conn)
    headers = {k: render(v, interval) for k, v in src.headers.items()}
    session, send_options = make_session(conn, base, make_auth(conn, src.auth, src.api_key_name), headers)
    fetcher = Fetcher(
        session,
        src.timeout_seconds,
        src.max_retries,
        limiter_for(cfg.name, src.conn_id, src.rate_limit_per_second),
        redact,
        send_options,
        breaker_for(src),
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
                f"the API ignores the paging parameter or loops ({redact(paginator.describe())})"
            )
        paginator.update_state(response, body, records)
        del body
        for start in range(0, len(records), chunk_rows):
            batch = columnizer.batch(records[start : start + chunk_rows], url, start, on_reject)
            if batch is not None:
                rows += batch.num_rows
                yield with_origin(batch, url, columnizer.lines)
        previous = records
        if not paginator.has_next:
            break
        if pages >= src.max_pages:
            raise MaxPagesExceeded(
                f"GET {url}: still a next page after max_pages={src.max_pages} "
                f"({redact(paginator.describe())}); raise max_pages or narrow the interval"
            )
        paginator.update_request(request)
    waited = fetcher.limiter.waited_seconds if fetcher.limiter else 0.0
    log.info(
        "http source %s: %d rows, %d pages, %d requests in %.1fs (%.1fs waiting on the rate limit, %.1fs on the "
        "circuit breaker)",
        cfg.name,
        rows,
        pages,
        fetcher.requests,
        time.monotonic() - started,
        waited,
        fetcher.breaker.waited_seconds if fetcher.breaker else 0.0,
    )
