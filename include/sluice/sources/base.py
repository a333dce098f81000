"""What every source shares: the reject record for rows that cannot be parsed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

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


class BatchSource(Protocol):
    def __call__(self, cfg: PipelineConfig, interval: Interval, on_reject: OnReject) -> Iterator[pa.RecordBatch]: ...
