"""Errors that teach: every config problem names the file, the line, the field path, what was expected and, when a
name looks misspelt, the name that was probably meant. Kept apart from the models so config.py stays readable."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Loc = tuple[str | int, ...]
Lines = dict[Loc, int]

# Discriminator keys of the tagged unions in the model; pydantic puts the tag value into an error's `loc`.
DISCRIMINATORS = ("kind", "style")
CUSTOM_ERROR = "sluice_config"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one file."""

    path: str
    line: int | None
    field: str | None
    message: str
    expected: str | None = None
    hint: str | None = None
    inherited_from: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        head = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        parts = [head]
        if self.inherited_from:
            parts.append(f"    from defaults: {self.inherited_from}")
        if self.expected:
            parts.append(f"    expected: {self.expected}")
        if self.hint:
            parts.append(f"    hint: {self.hint}")
        return "\n".join(parts)


class ConfigError(Exception):
    """A pipeline file that cannot be used. `.path/.line/.field/.message/.expected/.hint` describe the first
    problem; `.issues` holds all of them; str() is the full teaching message."""

    def __init__(self, issues: ConfigIssue | Sequence[ConfigIssue]):
        self.issues: list[ConfigIssue] = [issues] if isinstance(issues, ConfigIssue) else list(issues)
        if not self.issues:
            raise ValueError("ConfigError needs at least one issue")
        first = self.issues[0]
        self.path, self.line, self.field = first.path, first.line, first.field
        self.message, self.expected, self.hint = first.message, first.expected, first.hint
        super().__init__(str(self))

    @classmethod
    def single(
        cls,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
        hint: str | None = None,
    ) -> ConfigError:
        return cls(ConfigIssue(str(path), line, field, message, expected, hint))

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.issues)

    def __reduce__(self):  # picklable, so it can cross process boundaries (dag-processor, multiprocessing)
        return (type(self), (self.issues,))


def suggest(word: object, options: Iterable[str]) -> str | None:
    """The closest option to a misspelt word, as a did-you-mean hint (or None)."""
    if not isinstance(word, str):
        return None
    opts = [str(o) for o in options]
    lowered = {o.lower(): o for o in opts}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f"did you mean '{lowered[word.lower()]}'?"
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.5)
    return f"did you mean '{lowered[match[0]]}'?" if match else None


def fail(field: str | None, message: str, *, expected: str | None = None, hint: str | None = None) -> Exception:
    """An error for a validator to raise. `field` is a dotted path relative to the model ("primary_key.0"), so the
    error points at the exact line although it is raised by a model-level check."""
    return PydanticCustomError(
        CUSTOM_ERROR, "{msg}", {"msg": message, "field": field or "", "expected": expected or "", "hint": hint or ""}
    )


# ---------------------------------------------------------------- YAML with line numbers


def _yaml_hint(problem: str, source_line: str) -> str | None:
    if "'@'" in problem or "'`'" in problem or re.search(r"(:|^\s*-)\s+[@`]", source_line):
        return 'quote values that start with @, e.g. schedule: "@daily"'
    if "{{" in source_line or "unhashable" in problem:
        return 'quote templated values that start with {{, e.g. prefix: "{{ ds }}/orders/"'
    if "\\t" in problem or "tab" in problem:
        return "indent with spaces; YAML does not allow tabs"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted, or the line is indented wrongly"
    return None


def read_yaml(path: str | Path, *, what: str = "pipeline file") -> tuple[Any, Lines]:
    """Parse a YAML file into plain data plus the line of every mapping key and list item (by path)."""
    path = str(path)
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError.single(
            path,
            f"not UTF-8 text ({exc.reason} at byte {exc.start})",
            line=raw.count(b"\n", 0, exc.start) + 1,
            hint="save the file as UTF-8",
        ) from None
    except OSError as exc:
        raise ConfigError.single(path, f"cannot read {what}: {exc.strerror or exc}") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        src = text.splitlines()[line - 1] if line and line <= len(text.splitlines()) else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        hint = _yaml_hint(problem, src)
        raise ConfigError.single(path, f"YAML syntax error: {problem}", line=line, hint=hint) from None
    except yaml.YAMLError as exc:
        raise ConfigError.single(path, f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    lines: Lines = {(): 1}
    issues: list[ConfigIssue] = []
    if node is not None:
        _walk(node, (), lines, issues, path)
    if issues:
        raise ConfigError(issues)
    return data, lines


def _walk(node: yaml.Node, loc: Loc, lines: Lines, issues: list[ConfigIssue], path: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                field = ".".join(str(p) for p in (*loc, key))
                issues.append(
                    ConfigIssue(
                        path,
                        line,
                        field,
                        f"duplicate key '{key}' (first set on line {seen[key]})",
                        hint="YAML keeps only the last one; remove one of them",
                    )
                )
            seen.setdefault(key, line)
            lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), lines, issues, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            _walk(item, (*loc, i), lines, issues, path)


# ---------------------------------------------------------------- pydantic error -> teaching issue


def format_loc(loc: Loc) -> str:
    """('target', 'columns', 2, 'type') -> 'target.columns[2].type'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _clean_loc(loc: Loc, data: Any) -> Loc:
    """Drop the tags pydantic inserts for tagged unions ('s3', 'cursor'): they are values, not keys."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            if part not in node and any(node.get(d) == part for d in DISCRIMINATORS):
                continue
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        out.append(part)
    return tuple(out)


def _schema_node(schema: dict, loc: Loc) -> dict | None:
    """The JSON-schema node for a data path (through $ref, lists, dicts, Optional and tagged unions)."""
    defs = schema.get("$defs", {})

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def unwrap(node: dict) -> dict:
        node = resolve(node)
        if "anyOf" in node:  # Optional[X]: take the non-null branch
            branches = [resolve(b) for b in node["anyOf"] if b.get("type") != "null"]
            node = branches[0] if len(branches) == 1 else node
        return node

    node = resolve(schema)
    for part in loc:
        node = unwrap(node)
        if isinstance(part, str) and part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(part, str) and part in node.get("discriminator", {}).get("mapping", {}):
            node = {"$ref": node["discriminator"]["mapping"][part]}
        elif isinstance(part, int) and "items" in node:
            node = node["items"]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return unwrap(node)


def _tags(schema: dict, loc: Loc) -> list[str]:
    node = _schema_node(schema, loc) or {}
    return list(node.get("discriminator", {}).get("mapping", {}))


def _describe(schema: dict, loc: Loc) -> str | None:
    """'integer: Rows per chunk ...' for a field, from the model's own JSON schema."""
    if not loc or not isinstance(loc[-1], str):
        return None
    parent = _schema_node(schema, loc[:-1])
    prop = (parent or {}).get("properties", {}).get(loc[-1])
    if not prop:
        return None
    kind = prop.get("type") or "/".join(b.get("type", "object") for b in prop.get("anyOf", []) if b.get("type"))
    desc = prop.get("description")
    return ": ".join(x for x in (kind, desc) if x) or None


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _issue(err: Mapping[str, Any], data: Any, schema: dict) -> tuple[Loc, str, str | None, str | None]:
    """(loc, message, expected, hint) for one pydantic error. `loc` is the data path (tags removed); the schema is
    walked with pydantic's own path, whose tags pick the member of a tagged union."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    raw = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p == "[key]" or p.startswith("function-"))))
    loc = _clean_loc(raw, data)
    if kind == CUSTOM_ERROR:
        extra = tuple(int(p) if p.isdigit() else p for p in ctx["field"].split(".")) if ctx.get("field") else ()
        return (*loc, *extra), ctx["msg"], ctx.get("expected") or None, ctx.get("hint") or None
    if kind == "extra_forbidden":
        allowed = list((_schema_node(schema, raw[:-1]) or {}).get("properties") or {})
        return loc, f"unknown key '{loc[-1]}'", "one of: " + ", ".join(allowed), suggest(loc[-1], allowed)
    if kind == "missing":
        return loc, f"missing required key '{loc[-1]}'", _describe(schema, raw), None
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        disc = (_quoted(ctx.get("discriminator", "")) or ["kind"])[0]
        tags = _tags(schema, raw) or _quoted(ctx.get("expected_tags", ""))
        expected = "one of: " + ", ".join(tags)
        if kind == "union_tag_not_found":
            return (*loc, disc), f"missing required key '{disc}'", expected, None
        tag = ctx.get("tag")
        return (*loc, disc), f"unknown {disc} '{tag}'", expected, suggest(tag, tags)
    if kind in ("enum", "literal_error"):
        options = _quoted(ctx.get("expected", ""))
        return loc, f"invalid value {_short(value)}", "one of: " + ", ".join(options), suggest(value, options)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        got = f"got {type(value).__name__} {_short(value)}"
        return loc, f"expected a mapping (indented key: value lines), {got}", _describe(schema, raw), None
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if not isinstance(value, dict | list) and kind != "value_error":
        msg = f"{msg} (got {_short(value)})"
    return loc, msg, _describe(schema, raw), None


def _line_for(loc: Loc, lines: Lines) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def from_validation_error(
    exc: ValidationError,
    path: str,
    data: Any,
    lines: Lines,
    schema: dict,
    defaults_path: str | None = None,
    defaults_lines: Lines | None = None,
) -> ConfigError:
    """Turn pydantic's errors into teaching issues pointing at the line in the pipeline file (or in the defaults
    file when the bad value was inherited)."""
    raw = [_issue(e, data, schema) for e in exc.errors(include_url=False)]
    # A misspelt required key yields "unknown key 'bukcet'" and "missing 'bucket'": keep only the first.
    suggested = {
        (loc[:-1], (hint or "").split("'")[1]) for loc, msg, _, hint in raw if msg.startswith("unknown key") and hint
    }
    issues = []
    for loc, msg, expected, hint in raw:
        if msg.startswith("missing required key") and (loc[:-1], loc[-1]) in suggested:
            continue
        own = loc in lines or not defaults_lines or loc not in defaults_lines
        line = _line_for(loc, lines) if own else _line_for(loc[:-1], lines)
        inherited = f"{defaults_path}:{defaults_lines[loc]}" if not own and defaults_lines else None
        issues.append(ConfigIssue(path, line, format_loc(loc) or None, msg, expected, hint, inherited))
    issues.sort(key=lambda i: i.line or 0)
    return ConfigError(issues)
