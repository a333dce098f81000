"""The data interval a run processes: half-open [start, end), always UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"interval bound {value!r} has no time zone; Sluice intervals are UTC")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start))
        object.__setattr__(self, "end", _utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"empty interval: end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @property
    def key(self) -> str:
        """Path-safe label, e.g. 20240101T000000Z_20240102T000000Z."""
        fmt = "%Y%m%dT%H%M%SZ"
        return f"{self.start.strftime(fmt)}_{self.end.strftime(fmt)}"

    def template_context(self) -> dict[str, object]:
        """The Airflow-like names a source may use in its templated options."""
        return {
            "data_interval_start": self.start,
            "data_interval_end": self.end,
            "ds": self.start.strftime("%Y-%m-%d"),
            "ds_nodash": self.start.strftime("%Y%m%d"),
            "interval_start": self.start.isoformat(),
            "interval_end": self.end.isoformat(),
        }

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> Interval:
        return cls(_utc(d["start"]), _utc(d["end"]))
