"""What an interval's S3 extraction read, as one comparable value: a hash over its objects' (key, size, ETag).

Finalize records it in the generation's row of `sluice.run_summary` (with the object count), so `backfill plan` can
tell whether an interval's source changed since its load from one listing of the bucket and the warehouse alone,
instead of reading every loaded generation's staging manifest. The hash is exact for what the plan reports as
changed: an object added or removed, a size or an ETag that differs, all change it (equal fingerprints mean equal
object sets, short of a SHA-256 collision).
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import TypedDict

ALGORITHM = "sha256"


class SourceRecord(TypedDict):
    """The fingerprint columns of a run_summary row (both None: not an S3 source, or not known)."""

    source_fingerprint: str | None
    source_object_count: int | None


def fingerprint(objects: Iterable[dict]) -> str:
    """`sha256:<hex>` over the objects' [key, size, etag] as canonical JSON, sorted by key (order-independent, and
    unambiguous for any character a key may hold)."""
    triples = sorted([str(o["key"]), int(o["size"]), str(o["etag"]).strip('"')] for o in objects)
    body = json.dumps(triples, separators=(",", ":"), ensure_ascii=False).encode()
    return f"{ALGORITHM}:{hashlib.sha256(body).hexdigest()}"


def record_of(objects: Sequence[dict] | None) -> SourceRecord:
    """The columns to record for a generation that read these objects (None: no listing was recorded)."""
    if objects is None:
        return {"source_fingerprint": None, "source_object_count": None}
    return {"source_fingerprint": fingerprint(objects), "source_object_count": len(objects)}


def group_by_prefix(listing: dict[str, dict], prefixes: Sequence[str], pattern: str) -> list[list[dict]]:
    """For each rendered interval prefix, the objects of one listing that the interval reads, in key order: the same
    selection as sources.s3.selected, with the keys sorted once and each prefix's keys found by bisection (the keys
    that start with a prefix are one contiguous run of the sorted keys)."""
    from sluice.sources.s3 import matches

    keys = sorted(listing)
    out = []
    for prefix in prefixes:
        found = []
        for k in keys[bisect_left(keys, prefix) :]:
            if not k.startswith(prefix):
                break
            if not k.endswith("/") and matches(k[len(prefix) :].lstrip("/"), pattern):
                found.append(listing[k])
        out.append(found)
    return out
