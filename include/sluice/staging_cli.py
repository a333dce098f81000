"""`python -m sluice staging retention|archive`: delete old committed staged generations (after archiving them, when
`staging.retention.archive` is set), or only archive. The rules are in retention.py; the DAG sluice_retention runs
the same daily. Exit codes: 0 done (also when nothing was to do); 1 a pipeline failed or none matched."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sluice.cli import Command, register


def _when(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _duration(text: str) -> Any:
    from pydantic import TypeAdapter, ValidationError

    from sluice.config import Duration

    try:
        return TypeAdapter(Duration).validate_python(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (write 30d, 12h, 1d12h or PT36H)") from None


def _configs(pipeline: str | None) -> list:
    from sluice.config import load_all, pipelines_dirs
    from sluice.config.errors import suggest

    found: dict[str, Any] = {}
    for directory in pipelines_dirs():
        found.update(load_all(directory).pipelines)
    if pipeline is None:
        return [found[n] for n in sorted(found)]
    if pipeline not in found:
        hint = suggest(pipeline, list(found)) or ""
        raise SystemExit(f"sluice staging: no pipeline {pipeline!r} in {', '.join(map(str, pipelines_dirs()))}. {hint}")
    return [found[pipeline]]


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships no types; types-tqdm is not in the lock

    from sluice.retention import Decision, run_pipeline, summary_line

    delete = args.action == "retention"
    as_of = args.as_of or datetime.now(UTC)
    failed, results = 0, []
    for cfg in _configs(args.pipeline):

        def progress(decisions: list[Decision], name: str = cfg.name) -> Iterable[Decision]:
            return tqdm(decisions, desc=name, unit="gen", disable=None, file=sys.stderr)

        try:
            result = run_pipeline(
                cfg,
                as_of,
                dry_run=args.dry_run,
                older_than=args.older_than,
                delete=delete,
                progress=progress,
            )
        except Exception as exc:  # noqa: BLE001 - said per pipeline; the others go on; exit 1 at the end
            print(f"{cfg.name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed += 1
            continue
        for line in result.lines:
            print(line)
        print(summary_line(result) + (" (dry run)" if args.dry_run else ""))
        results.append(result.to_dict())
    if args.json:
        print(json.dumps(results, default=str))
    return 1 if failed else 0


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ret = sub.add_parser(
        "retention",
        help="delete committed generations older than staging.retention.older_than (archived first if configured)",
    )
    arc = sub.add_parser("archive", help="copy to staging.retention.archive only; delete nothing")
    for action in (ret, arc):
        action.add_argument("--pipeline", help="only this pipeline (default: every pipeline file)")
        action.add_argument(
            "--older-than", type=_duration, default=None, help="override staging.retention.older_than (30d, 12h)"
        )
        action.add_argument("--dry-run", action="store_true", help="print what would be deleted or copied, do nothing")
        action.add_argument(
            "--as-of", type=_when, default=None, help="judge ages as of this UTC time (default: now), e.g. for tests"
        )
        action.add_argument("--json", action="store_true", help="also print the results as one JSON list")


register(Command("staging", "staging retention and cold archive of staged generations", _configure, _run))
