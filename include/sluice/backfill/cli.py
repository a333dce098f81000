"""`python -m sluice backfill plan|run --pipeline P --from D1 --to D2`: see sluice.backfill.plan and .run."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from datetime import date
from pathlib import Path

from sluice.cli import Command, register


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _only(text: str) -> set[str]:
    from sluice.backfill.plan import SELECTABLE

    picked = {p.strip() for p in text.split(",") if p.strip()}
    bad = picked - set(SELECTABLE)
    if bad or not picked:
        raise argparse.ArgumentTypeError(f"--only takes a comma-separated list of: {', '.join(SELECTABLE)}")
    return picked


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", required=True, help="the pipeline (DAG id)")
    p.add_argument("--from", dest="first", type=_date, required=True, help="first interval start (YYYY-MM-DD)")
    p.add_argument("--to", dest="last", type=_date, required=True, help="last interval start, inclusive")


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    plan = sub.add_parser("plan", help="the state of every interval in the range, from the ledger and run summaries")
    _common(plan)
    plan.add_argument("--json", action="store_true", help="print JSON instead of the table")
    run = sub.add_parser("run", help="backfill the selected intervals through Airflow's REST API and follow them")
    _common(run)
    run.add_argument(
        "--only",
        type=_only,
        default={"missing", "failed", "changed"},
        help="which intervals: missing, failed, quarantined, running, loaded, changed (default missing,failed,changed)",
    )
    run.add_argument("--max-active-runs", type=int, default=4, help="cap on concurrent runs of the backfill")
    run.add_argument(
        "--source-slots", type=int, default=4, help="slots of the source connection's pool when it has to be created"
    )
    run.add_argument("--dry-run", action="store_true", help="print the backfills it would create, create nothing")


def pipelines_dirs() -> list[Path]:
    """Where the DAG files look ($SLUICE_PIPELINES_DIRS, else config/pipelines), without importing Airflow."""
    from sluice.config import default_pipelines_dir

    raw = os.environ.get("SLUICE_PIPELINES_DIRS")
    return [Path(p) for p in raw.split(os.pathsep) if p] if raw else [default_pipelines_dir()]


def _config(name: str):
    """The pipeline named `name`, or None after printing why not (unknown name with a did-you-mean, invalid file)."""
    from sluice.config import ConfigError, find_pipeline_file, load_defaults, load_pipeline, pipeline_files
    from sluice.config.errors import suggest

    dirs = [d for d in pipelines_dirs() if d.is_dir()]
    for d in dirs:
        if (path := find_pipeline_file(name, d)) is not None:
            try:
                return load_pipeline(path, load_defaults(dirs[0].parent))
            except ConfigError as exc:
                print(exc, file=sys.stderr)
                return None
    known = [f.stem for d in dirs for f in pipeline_files(d)]
    hint = suggest(name, known)
    print(
        f"sluice backfill: unknown pipeline {name!r}: no file in {', '.join(map(str, dirs))} declares it"
        + (f"; {hint}" if hint else ""),
        file=sys.stderr,
    )
    return None


def _plan(args: argparse.Namespace):
    from sluice.backfill.plan import PlanError, plan_backfill

    cfg = _config(args.pipeline)
    if cfg is None:
        return None, None
    try:
        return cfg, plan_backfill(cfg, args.first, args.last)
    except PlanError as exc:
        print(f"sluice backfill: {exc}", file=sys.stderr)
        return cfg, None


def _run(args: argparse.Namespace) -> int:
    """Airflow's hooks log to stdout when imported and used; they go to stderr here, so stdout is only the plan
    (and --json is parseable)."""
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        cfg, plan = _plan(args)
        if plan is None:
            return 2
        if args.action == "plan":
            print(plan.to_json() if args.json else plan.table(), file=out)
            return 0
        return _backfill(args, cfg, plan, functools.partial(print, file=out), out.isatty())


def _why(s) -> str:
    return "changed" if s.source is not None and s.source.value == "changed" else s.state.value


def _backfill(args: argparse.Namespace, cfg, plan, say, tty: bool) -> int:
    from sluice.airflow_api import AirflowApi
    from sluice.backfill.run import BackfillError, ensure_pool, preflight, run_segments, segments
    from sluice.connections import pg_dsn
    from sluice.pools import DEFAULT_SLOTS, pools_enabled, source_pool_name

    picked = plan.select(args.only)
    segs = segments(plan.intervals, args.only)
    say(
        f"{cfg.name}: {len(picked)} of {len(plan.intervals)} interval(s) selected ({', '.join(sorted(args.only))}) "
        f"in {len(segs)} backfill(s), at most {args.max_active_runs} run(s) at a time"
    )
    for seg in segs:
        body = seg.body(cfg.name, args.max_active_runs)
        say(
            f"  backfill {body['from_date'][:16]} .. {body['to_date'][:16]}: {len(seg.intervals)} interval(s) "
            f"({', '.join(sorted({_why(s) for s in seg.intervals}))}), "
            f"reprocess_behavior {body['reprocess_behavior']}"
        )
    if not segs:
        say("nothing to do")
        return 0
    pool = source_pool_name(cfg)
    if args.dry_run:
        say("dry run: nothing created." + (f" Would ensure pool {pool}." if pool else ""))
        return 0
    try:
        api = AirflowApi.from_env()
        api.timeout = 180  # creating a backfill of many intervals is one slow request
    except (OSError, KeyError, ValueError) as exc:
        print(
            f"sluice backfill: no Airflow API credentials ({exc}): set SLUICE_API_URL and SLUICE_HOME or "
            "SLUICE_ADMIN_PASSWORD",
            file=sys.stderr,
        )
        return 2
    try:
        preflight(api, cfg.name)
        if pool:
            note = "" if pools_enabled() else " (not used by the DAG: SLUICE_SOURCE_POOLS is not 1)"
            say(ensure_pool(api, pool, args.source_slots or DEFAULT_SLOTS) + note)
        done, rows, failed = run_segments(
            api, cfg, segs, args.max_active_runs, pg_dsn(cfg.target.conn_id), echo=say, tty=tty
        )
    except BackfillError as exc:
        print(f"sluice backfill: {exc}", file=sys.stderr)
        return 2
    say(f"{cfg.name}: {done}/{len(picked)} interval(s) done, {rows} rows loaded, {len(failed)} failed")
    for d in failed:
        say(f"  failed: {d}  (task logs in the UI; `python -m sluice backfill plan` shows the error)")
    return 1 if failed or done < len(picked) else 0


register(Command("backfill", "plan or run a backfill from the ledger's view of each interval", _configure, _run))
