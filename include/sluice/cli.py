"""`python -m sluice <command>`: the command line of Sluice. Each command is a `Command` registered in COMMANDS; a
module that adds commands (plan, replay, ...) calls `register()` at import and is listed in COMMAND_MODULES, so
heavy imports happen only when that command runs."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}
# Modules that register more commands when imported, e.g. "sluice.replay_cli". Keep their top-level imports light.
COMMAND_MODULES: tuple[str, ...] = (
    "sluice.quarantine_cli",
    "sluice.try_cli",
    "sluice.backfill.cli",
    "sluice.health.cli",
    "sluice.breaker_cli",
    "sluice.staging_cli",
)


def register(command: Command) -> Command:
    COMMANDS[command.name] = command
    return command


# ---------------------------------------------------------------- lint


def _configure_lint(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="pipeline files or directories (default: the pipelines directory of --config-dir)",
    )
    p.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="directory with defaults.yaml and pipelines/ (default: $SLUICE_CONFIG_DIR or <repo>/config)",
    )


def _run_lint(args: argparse.Namespace) -> int:
    from sluice.config import (
        ConfigError,
        Defaults,
        LoadResult,
        default_config_dir,
        load_defaults,
        load_paths,
        pipeline_files,
    )

    config_dir = args.config_dir or default_config_dir()
    errors: dict[str, ConfigError] = {}
    try:
        defaults = load_defaults(config_dir)
    except ConfigError as exc:
        errors[exc.path], defaults = exc, Defaults({})
    files: list[Path] = []
    for path in args.paths or [config_dir / "pipelines"]:
        if path.is_dir():
            files += pipeline_files(path)
        elif path.is_file():
            files.append(path)
        else:
            errors[str(path)] = ConfigError.single(path, "no such file or directory")
    result: LoadResult = load_paths(list(dict.fromkeys(files)), defaults)
    errors.update(result.errors)
    if any(cfg.expectations for cfg in result.pipelines.values()):  # GX is imported (seconds) only when needed
        from sluice.validate.suite import expectation_issues

        for name, cfg in list(result.pipelines.items()):
            if issues := expectation_issues(cfg, defaults):
                errors[cfg.source_file] = ConfigError(issues)
                del result.pipelines[name]
    for error in errors.values():
        print(error, end="\n\n")
    if errors:
        problems = sum(len(e.issues) for e in errors.values())
        print(
            f"sluice lint: {problems} problem(s) in {len(errors)} file(s); {len(result.pipelines)} pipeline(s) OK",
            file=sys.stderr,
        )
        return 1
    print(f"sluice lint: OK, {len(result.pipelines)} pipeline(s) in {len(files)} file(s)")
    return 0


register(Command("lint", "validate pipeline files; exit 1 on any error", _configure_lint, _run_lint))


# ---------------------------------------------------------------- schema


def _configure_schema(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, default=None, help="write to this file instead of stdout")


def _run_schema(args: argparse.Namespace) -> int:
    from sluice.config import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


register(Command("schema", "write the JSON Schema of a pipeline file (for editors)", _configure_schema, _run_schema))


# ---------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(prog="python -m sluice", description="Sluice: config-driven batch ETL.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS.values():
        cmd.configure(sub.add_parser(cmd.name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)
