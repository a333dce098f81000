"""Health settings of a pipeline: checks against its own history in the quality gate, and the freshness watchdog's
limit. Separate from models.py so that each stays short; PipelineConfig cross-checks the columns named here."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from sluice.config.errors import fail
from sluice.config.types import Duration, Identifier, StrictModel


class CheckSeverity(StrEnum):
    """What a history check does when it trips: fail the run before anything is loaded, or warn (run summary, log,
    one quality-warning alert to the pipeline's channels) and load."""

    warn = "warn"
    fail = "fail"


class VolumeMethod(StrEnum):
    median = "median"  # allowed: median x (1 - tolerance) .. median x (1 + tolerance)
    band = "band"  # allowed: smallest x (1 - tolerance) .. largest x (1 + tolerance) of the history


class OutlierMethod(StrEnum):
    zscore = "zscore"  # |value - mean| / stddev of the history's values over threshold
    iqr = "iqr"  # outside q1 - threshold x IQR .. q3 + threshold x IQR (Tukey's fences)


class Statistic(StrEnum):
    """Per-interval statistic of a column over the interval's good rows (recorded for every numeric column)."""

    mean = "mean"
    min = "min"
    max = "max"
    sum = "sum"
    null_fraction = "null_fraction"


class VolumeCheck(StrictModel):
    method: VolumeMethod = Field(VolumeMethod.median, description="median (with tolerance) or band (history range).")
    tolerance: float = Field(
        0.5, ge=0, description="Allowed relative deviation: 0.5 = ±50 % of the median (or beyond the band)."
    )
    severity: CheckSeverity = Field(CheckSeverity.warn, description="warn (load, report) or fail (load nothing).")


class OutlierCheck(StrictModel):
    column: Identifier = Field(description="A declared numeric column (smallint, integer, bigint, numeric, double).")
    statistic: Statistic = Field(Statistic.mean, description="Per-interval statistic compared: mean, min, max, sum.")
    method: OutlierMethod = Field(OutlierMethod.zscore, description="zscore or iqr.")
    threshold: float | None = Field(None, gt=0, description="z-score limit (default 3) or IQR multiple (default 1.5).")
    severity: CheckSeverity = Field(CheckSeverity.warn, description="warn (load, report) or fail (load nothing).")

    @property
    def limit(self) -> float:
        return self.threshold if self.threshold is not None else 3.0 if self.method is OutlierMethod.zscore else 1.5


class HistoryConfig(StrictModel):
    """Checks of this interval against the pipeline's last successful loads (sluice.interval_stats)."""

    lookback: int = Field(
        30, ge=1, le=10_000, description="Compare with this many latest successfully loaded intervals before it."
    )
    min_intervals: int = Field(
        5, ge=1, description="With fewer successful intervals in the history the checks pass, with a note."
    )
    volume: VolumeCheck | None = Field(None, description="This interval's row count against the history.")
    outliers: list[OutlierCheck] = Field(default_factory=list, description="Column statistics against the history.")

    @model_validator(mode="after")
    def _enough(self) -> HistoryConfig:
        if self.min_intervals > self.lookback:
            raise fail(
                "min_intervals",
                f"min_intervals {self.min_intervals} is larger than lookback {self.lookback}",
                hint=f"use min_intervals <= {self.lookback}, or a larger lookback",
            )
        return self


class FreshnessConfig(StrictModel):
    """The freshness watchdog (DAG sluice_freshness) alerts when the last loaded interval ends longer ago than this."""

    max_lag: Duration = Field(
        description="Largest allowed time from the end of the last successfully loaded interval to now: 26h, 90m."
    )
