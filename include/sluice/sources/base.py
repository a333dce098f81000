"""What every source shares: the reject record for rows that cannot be parsed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from sluice.config import PipelineConfig
    from sluice.interval import Interval


@dataclass(frozen=True)
class Reject:
    """A source row that could not be parsed. It is kept (quarantined), never dropped."""

    file: str
    line: int | None
    raw: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


OnReject = Callable[[Reject], None]

# Provenance of every staged row, as two hidden columns of the chunk: the object it came from (S3 URL, HTTP page
# URL with secrets redacted, or the SQL source and interval) and its record number in that object (1-based; for
# CSV the header is record 1). Validation strips them before casting and puts them on quarantined rows.
SOURCE_COL = "_sluice_source"
LINE_COL = "_sluice_line"
ORIGIN_COLS = (SOURCE_COL, LINE_COL)


def with_origin(batch: pa.RecordBatch, source: str, lines: Any) -> pa.RecordBatch:
    """The batch plus its provenance columns; `lines` is the first record number (consecutive rows) or one number
    per row. The source is dictionary-encoded: one string per batch, not per row."""
    import numpy as np
    import pyarrow as pa

    n = batch.num_rows
    if isinstance(lines, int):
        lines = np.arange(lines, lines + n, dtype=np.int64)
    origin = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([source], pa.string()))
    return pa.RecordBatch.from_arrays(
        [*batch.columns, origin, pa.array(lines, pa.int64())], names=[*batch.schema.names, *ORIGIN_COLS]
    )


class BatchSource(Protocol):
    def __call__(self, cfg: PipelineConfig, interval: Interval, on_reject: OnReject) -> Iterator[pa.RecordBatch]: ...
