"""Source registry: kind -> module with `iter_batches(cfg, interval, on_reject)`, declared on each source model
(`module`, sluice.config.sources). Modules load lazily so that
parsing a DAG file never imports a driver it does not need."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from sluice.config.sources import SOURCE_MODULES
from sluice.sources.base import OnReject, Reject

if TYPE_CHECKING:
    import pyarrow as pa

    from sluice.config import PipelineConfig
    from sluice.interval import Interval


__all__ = ["Reject", "SOURCE_MODULES", "iter_source"]


def iter_source(
    cfg: PipelineConfig, interval: Interval, on_reject: OnReject, on_objects: Callable[[list[dict]], None] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream the pipeline's source for one interval as Arrow record batches. A source that reads objects (S3)
    reports them (key, size, ETag) to `on_objects` once, from the same listing it reads, for the manifest."""
    module = importlib.import_module(SOURCE_MODULES[cfg.source.kind])
    if on_objects is not None and cfg.source.kind == "s3":
        return module.iter_batches(cfg, interval, on_reject, on_objects=on_objects)
    return module.iter_batches(cfg, interval, on_reject)
