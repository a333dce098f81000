"""`python -m sluice plan FILE` and `python -m sluice run FILE --interval D`: try a pipeline file without Airflow.

`plan` renders what the file becomes (sluice.preview) and needs no service. `run` runs the whole pipeline for one
interval in this process through the stage functions the Airflow tasks call (sluice.steps), against the configured
connections (AIRFLOW_CONN_* variables or any Airflow secrets backend; no scheduler, no metadata database), and prints
the same counts a scheduled run logs. An invalid file prints the linter's message and exits 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.cli import Command, register

if TYPE_CHECKING:
    from sluice.config import PipelineConfig
    from sluice.interval import Interval
    from sluice.loading.finalize import RunSummary


def _add_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="the pipeline file (YAML)")
    p.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="directory with defaults.yaml (default: $SLUICE_CONFIG_DIR or <repo>/config)",
    )


def load_or_lint(file: Path, config_dir: Path | None) -> PipelineConfig | None:
    """The file's config, or None after printing exactly what `python -m sluice lint FILE` prints."""
    from sluice.cli import COMMANDS
    from sluice.config import ConfigError, default_config_dir, load_defaults, load_pipeline

    try:
        if not file.is_file():
            raise ConfigError.single(file, "no such file")
        return load_pipeline(file, load_defaults(config_dir or default_config_dir()))
    except ConfigError:
        COMMANDS["lint"].run(argparse.Namespace(paths=[file], config_dir=config_dir))
        return None


def _interval(cfg: PipelineConfig, text: str | None) -> Interval | None:
    from sluice import schedule

    if text is None:
        return None
    return schedule.interval_at(cfg, schedule.parse_when(text))


# ---------------------------------------------------------------- plan


def _configure_plan(p: argparse.ArgumentParser) -> None:
    _add_file(p)
    p.add_argument(
        "--interval",
        metavar="D",
        default=None,
        help="render the source request for the interval starting at (or containing) this date or timestamp "
        "(default: the latest complete interval)",
    )


def _file_and_interval(command: str, args: argparse.Namespace) -> tuple[PipelineConfig, Interval | None] | int:
    """The pipeline file (the linter's message and exit 1 when invalid) and its --interval (exit 2 when bad)."""
    cfg = load_or_lint(args.file, args.config_dir)
    if cfg is None:
        return 1
    try:
        return cfg, _interval(cfg, args.interval)
    except ValueError as exc:
        print(f"sluice {command}: --interval {args.interval!r}: {exc}", file=sys.stderr)
        return 2


def _run_plan(args: argparse.Namespace) -> int:
    from sluice.preview import render_plan

    loaded = _file_and_interval("plan", args)
    if isinstance(loaded, int):
        return loaded
    sys.stdout.write(render_plan(*loaded))
    return 0


register(
    Command(
        "plan",
        "show what a pipeline file becomes (tasks, schedule, SQL, checks); no Airflow needed",
        _configure_plan,
        _run_plan,
    )
)


# ---------------------------------------------------------------- run


def _configure_run(p: argparse.ArgumentParser) -> None:
    _add_file(p)
    p.add_argument("--interval", metavar="D", required=True, help="the interval starting at (or containing) D")
    p.add_argument(
        "--run-id", default=None, help="default: sluice_run__<interval start> (a re-run is a new generation)"
    )


def run_pipeline(cfg: PipelineConfig, interval, run_id: str, echo=print) -> RunSummary:
    """extract -> validate -> gate -> load -> finalize in this process, chunk after chunk; returns finalize's summary
    (the same dict a scheduled run's finalize task returns, with the count table)."""
    from sluice import steps

    generation = steps.begin(cfg, interval, run_id)
    echo(
        f"{cfg.name}: interval [{interval.start.isoformat()}, {interval.end.isoformat()}), run {run_id}, "
        f"generation {generation}"
    )
    chunks = steps.extract(cfg, interval, run_id, generation)
    echo(
        f"extract_and_stage: {len(chunks)} chunk(s), {sum(c['rows'] for c in chunks)} rows, "
        f"{sum(c['rejects'] for c in chunks)} rejects"
    )
    reports = [steps.validate(cfg, interval, run_id, c) for c in chunks]
    rows_in, bad = steps.quarantine_share(reports)
    echo(f"validate_chunk: {rows_in} rows in, {rows_in - bad} good, {bad} quarantined")
    gated, notes = steps.gate(cfg, interval, run_id, generation, reports)
    echo(f"quality_gate: passed, {len(gated)} chunk(s) to load")
    for line in (*notes["warnings"], *notes["notes"]):
        echo(f"  {line}")
    results = [steps.load(cfg, interval, run_id, r) for r in gated]
    summary = steps.finalize(cfg, interval, run_id, results, generation, gated, notes)
    echo(f"finalize: {summary['status']}\n{summary['table']}")
    return summary


def _run_run(args: argparse.Namespace) -> int:
    import logging

    loaded = _file_and_interval("run", args)
    if isinstance(loaded, int):
        return loaded
    cfg, interval = loaded
    assert interval is not None  # --interval is required for run
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run_id = args.run_id or f"sluice_run__{interval.start.isoformat()}"
    try:
        run_pipeline(cfg, interval, run_id)
    except Exception as exc:
        print(f"sluice run: {cfg.name} failed for {interval.key}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


register(
    Command(
        "run",
        "run a pipeline for one interval in this process (no scheduler), printing its counts",
        _configure_run,
        _run_run,
    )
)
