"""The HTTP source, in the order of a request: auth.py (auth modes, redaction), client.py (the hook's session, GET
with retries and rate limit), paginators.py (one class per pagination style), responses.py (body -> records),
source.py (the fetch loop). `iter_batches` is the source interface."""

from sluice.sources.http.source import iter_batches

__all__ = ["iter_batches"]
