"""Reading pipeline files: defaults.yaml merged under each file, validation into PipelineConfig, and the errors
that name file, line and field. A bad file costs only itself."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from sluice.config.errors import ConfigError, ConfigIssue, from_validation_error, read_yaml, suggest
from sluice.config.models import PipelineConfig

_REPO = Path(__file__).resolve().parents[3]
_YAML_SUFFIXES = (".yaml", ".yml")


def default_config_dir() -> Path:
    """$SLUICE_CONFIG_DIR, else <repo>/config."""
    return Path(os.environ.get("SLUICE_CONFIG_DIR") or _REPO / "config")


def default_pipelines_dir() -> Path:
    return default_config_dir() / "pipelines"


def pipelines_dirs() -> list[Path]:
    """Where pipeline files live: $SLUICE_PIPELINES_DIRS (os.pathsep-separated), else default_pipelines_dir()."""
    raw = os.environ.get("SLUICE_PIPELINES_DIRS")
    return [Path(p) for p in raw.split(os.pathsep) if p] if raw else [default_pipelines_dir()]


class Defaults(dict):
    """defaults.yaml as a dict, remembering where each value came from (for errors about inherited values)."""

    def __init__(self, data: dict, path: str | None = None, lines: dict | None = None):
        super().__init__(data)
        self.path, self.lines = path, lines or {}


def load_defaults(config_dir: str | Path | None = None) -> Defaults:
    """Read <config_dir>/defaults.yaml ({} when absent); raises ConfigError."""
    path = Path(config_dir or default_config_dir()) / "defaults.yaml"
    if not path.exists():
        return Defaults({})
    data, lines = read_yaml(path, what="defaults file")
    if data is None:
        return Defaults({}, str(path), lines)
    if not isinstance(data, dict):
        raise ConfigError.single(path, f"defaults must be a mapping, got {type(data).__name__}", line=1)
    allowed = [k for k in PipelineConfig.model_fields if k not in ("name", "source_file")]
    issues = [
        ConfigIssue(
            str(path),
            lines.get((k,)),
            str(k),
            f"unknown key '{k}'",
            "one of: " + ", ".join(allowed),
            suggest(k, allowed),
        )
        for k in data
        if k not in allowed
    ]
    if issues:
        raise ConfigError(issues)
    return Defaults(data, str(path), lines)


def deep_merge(base: dict, override: dict) -> dict:
    """override wins; nested mappings merge key by key; lists are replaced, not concatenated."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


_SCHEMA: dict | None = None


def _error_schema() -> dict:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = PipelineConfig.model_json_schema(by_alias=True)
    return _SCHEMA


def json_schema() -> dict:
    """JSON Schema of a pipeline file, for editors (`python -m sluice schema`)."""
    schema = PipelineConfig.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "Sluice pipeline"}


def load_pipeline(path: str | Path, defaults: dict | None = None) -> PipelineConfig:
    """Load and validate one pipeline file with defaults merged under it; raises ConfigError."""
    data, lines = read_yaml(path)
    if data is None:
        raise ConfigError.single(
            path,
            "file is empty",
            line=1,
            expected="a pipeline: name, start_date, source and target at least",
            hint="run `python -m sluice schema` for every key",
        )
    if not isinstance(data, dict):
        raise ConfigError.single(
            path, f"top level must be a mapping (key: value lines), got {type(data).__name__}", line=1
        )
    if "source_file" in data:
        raise ConfigError.single(
            path,
            "unknown key 'source_file' (set by the loader)",
            line=lines[("source_file",)],
            field="source_file",
            hint="remove it",
        )
    merged = {**deep_merge(dict(defaults or {}), data), "source_file": str(path)}
    try:
        return PipelineConfig.model_validate(merged)
    except ValidationError as exc:
        raise from_validation_error(
            exc,
            str(path),
            merged,
            lines,
            _error_schema(),
            getattr(defaults, "path", None),
            getattr(defaults, "lines", None),
        ) from None


@dataclass
class LoadResult:
    """Good pipelines by name, and one ConfigError per bad file (keyed by path)."""

    pipelines: dict[str, PipelineConfig] = field(default_factory=dict)
    errors: dict[str, ConfigError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _name_line(path: str) -> int | None:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    m = re.search(r"^name\s*:", text, re.MULTILINE)
    return text.count("\n", 0, m.start()) + 1 if m else None


def pipeline_files(directory: str | Path) -> list[Path]:
    """*.yaml / *.yml under a directory (recursively), skipping hidden files and folders, sorted."""
    root = Path(directory)
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix in _YAML_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def load_paths(paths: Sequence[str | Path], defaults: dict | None = None) -> LoadResult:
    """Load several files independently: a bad file only costs itself. A name used twice fails every file using it."""
    result, by_name = LoadResult(), dict[str, list[PipelineConfig]]()
    for path in paths:
        try:
            cfg = load_pipeline(path, defaults)
        except ConfigError as exc:
            result.errors[str(path)] = exc
            continue
        by_name.setdefault(cfg.name, []).append(cfg)
    for name, cfgs in by_name.items():
        if len(cfgs) == 1:
            result.pipelines[name] = cfgs[0]
            continue
        for cfg in cfgs:
            others = ", ".join(f"{o.source_file}:{_name_line(o.source_file) or 1}" for o in cfgs if o is not cfg)
            result.errors[cfg.source_file] = ConfigError.single(
                cfg.source_file,
                f"pipeline name '{name}' is also used by {others}",
                line=_name_line(cfg.source_file),
                field="name",
                hint="pipeline names are dag_ids and must be unique; rename one of them",
            )
    return result


def load_all(pipelines_dir: str | Path | None = None, defaults: dict | None = None) -> LoadResult:
    """Load every pipeline file in a directory. Defaults come from <pipelines_dir>/../defaults.yaml unless given;
    a broken defaults file is reported under its own path and the pipelines load without it."""
    directory = Path(pipelines_dir or default_pipelines_dir())
    errors: dict[str, ConfigError] = {}
    if defaults is None:
        try:
            defaults = load_defaults(directory.parent)
        except ConfigError as exc:
            errors[exc.path], defaults = exc, {}
    if not directory.is_dir():
        errors[str(directory)] = ConfigError.single(directory, "pipelines directory does not exist")
        return LoadResult({}, errors)
    result = load_paths(pipeline_files(directory), defaults)
    result.errors = {**errors, **result.errors}
    return result


def find_pipeline_file(name: str, pipelines_dir: str | Path | None = None) -> Path | None:
    """The file that declares `name: <name>`, found by a text scan (no YAML parsing): lets a worker build one DAG."""
    pattern = re.compile(rf"^name\s*:\s*['\"]?{re.escape(name)}['\"]?\s*(#.*)?$", re.MULTILINE)
    for path in pipeline_files(pipelines_dir or default_pipelines_dir()):
        try:
            if pattern.search(path.read_text(encoding="utf-8")):
                return path
        except (OSError, UnicodeDecodeError):
            continue
    return None
