"""The HTTP source: client.py (requests, retries, the pages of one interval), paginators.py (one class per
pagination style). `iter_batches` is the source interface."""

from sluice.sources.http.client import iter_batches

__all__ = ["iter_batches"]
