"""What every Sluice DAG shares: where the pipeline files are, loading them (all, or a worker's one), the trigger
form's interval params and the interval a run processes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import Param, get_parsing_context
from airflow.timetables.interval import CronDataIntervalTimetable

from sluice import config as sluice_config
from sluice.interval import Interval

log = logging.getLogger(__name__)


def pipelines_dirs() -> list[Path]:
    """Where pipeline files live: $SLUICE_PIPELINES_DIRS (os.pathsep-separated), else the config loader's default."""
    return sluice_config.pipelines_dirs()


def load_configs(only: str | None = None) -> sluice_config.LoadResult:
    """Load the pipelines of every directory together (so a name used twice anywhere is caught), with the defaults
    of the first directory's config folder. With `only`, a worker loads just the file of the DAG it runs."""
    dirs = pipelines_dirs()
    try:
        defaults, defaults_errors = sluice_config.load_defaults(dirs[0].parent), {}
    except sluice_config.ConfigError as exc:  # reported like a bad pipeline file; the pipelines load without it
        defaults, defaults_errors = sluice_config.Defaults({}), {exc.path: exc}
    if only:
        for d in dirs:
            path = sluice_config.find_pipeline_file(only, d) if d.is_dir() else None
            if path is not None:
                try:
                    cfg = sluice_config.load_pipeline(path, defaults)
                except sluice_config.ConfigError:
                    break
                if cfg.name == only:
                    return sluice_config.LoadResult(pipelines={only: cfg})
    files = [f for d in dirs if d.is_dir() for f in sluice_config.pipeline_files(d)]
    result = sluice_config.load_paths(files, defaults)
    result.errors = {**defaults_errors, **result.errors}
    return result


class PipelineFilesInvalid(Exception):
    """Raised by dags/sluice_config_errors.py so that Airflow shows it as that file's import error."""

    def __init__(self, errors: Mapping[str, Exception]):
        self.errors = errors
        body = "\n\n".join(str(e) for e in errors.values())
        super().__init__(
            f"{len(errors)} pipeline file(s) invalid; their DAGs are not loaded, every other pipeline "
            f"is unaffected. Check them with `python -m sluice lint`.\n\n{body}"
        )


def interval_params() -> dict[str, Param]:
    doc = (
        "ISO-8601 UTC timestamp, e.g. 2024-01-01T00:00:00+00:00. Leave both interval fields empty to process the "
        "run's data interval (a manual run without a logical date takes the latest complete interval)."
    )
    return {
        "interval_start": Param(
            None,
            type=["null", "string"],
            title="Interval start (inclusive)",
            description=f"Start of the data interval to process. {doc}",
        ),
        "interval_end": Param(
            None,
            type=["null", "string"],
            title="Interval end (exclusive)",
            description=f"End of the data interval to process. {doc}",
        ),
    }


def resolve_interval(context: dict[str, Any], timetable: CronDataIntervalTimetable) -> Interval:
    """The run's interval: the trigger form's params, else the run's data interval, else the latest complete
    interval before the run was created (recorded in the run, so a retry computes the same interval)."""
    params = context.get("params") or {}
    start, end = params.get("interval_start"), params.get("interval_end")
    if start or end:
        if not (start and end):
            raise ValueError("set both interval_start and interval_end, or neither")
        return Interval(datetime.fromisoformat(start), datetime.fromisoformat(end))
    dis, die = context.get("data_interval_start"), context.get("data_interval_end")
    if dis is not None and die is not None and die > dis:
        return Interval(dis, die)
    run_after = context["dag_run"].run_after
    inferred = timetable.infer_manual_data_interval(run_after=run_after)
    return Interval(inferred.start, inferred.end)


def utc_day(value) -> Any:
    import pendulum

    return pendulum.datetime(value.year, value.month, value.day, tz="UTC")


def raise_config_errors() -> None:
    """For dags/sluice_config_errors.py: turn every invalid pipeline file into one import error that names the
    files, lines, fields and fixes, while the valid pipelines' DAGs keep working (they live in another file)."""
    if get_parsing_context().dag_id:
        return
    result = load_configs()
    if result.errors:
        raise PipelineFilesInvalid(result.errors)
