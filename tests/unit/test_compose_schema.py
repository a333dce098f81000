"""docker-compose.yaml against the Compose Specification JSON schema (no Docker engine runs here).

The schema is vendored in tests/unit/fixtures/compose-spec.json (Apache-2.0, LICENSE.compose-spec beside it), copied
from the check-jsonschema package's builtin `vendor.compose-spec`. Like `docker compose config`, the file is first
interpolated (`${VAR:-default}`, `${VAR:?error}`, `$$`) with values from .env.example, then validated; the check
is run both with the jsonschema library and with the check-jsonschema CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests" / "unit" / "fixtures" / "compose-spec.json"
VAR = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose interpolation: ${V}, ${V:-d}, ${V-d}, ${V:?e}, ${V?e}, ${V:+r}, ${V+r}, $V, and $$ for a literal $."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        value, is_set = env.get(name), name in env
        empty = not value
        if op in (":-", "-"):
            return arg if (empty if op == ":-" else not is_set) else value
        if op in (":?", "?"):
            if empty if op == ":?" else not is_set:
                raise ValueError(f"required variable {name}: {arg}")
            return value
        if op in (":+", "+"):
            return arg if (not empty if op == ":+" else is_set) else ""
        return value or ""

    return VAR.sub(sub, text)


def example_env() -> dict[str, str]:
    env = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip() or f"test-{key.strip().lower()}"  # .env.example leaves secrets empty
    return env


@pytest.fixture(scope="module")
def interpolated() -> str:
    return interpolate((REPO / "docker-compose.yaml").read_text(), example_env())


def test_interpolation_rules():
    env = {"A": "a", "E": ""}
    assert interpolate("${A} ${E:-d} ${E-d} ${U-d} ${A:+r} ${U+r} $$HOST $A", env) == "a d  d r  $HOST a"
    with pytest.raises(ValueError, match="required variable E: set it"):
        interpolate("${E:?set it}", env)


def test_compose_file_is_valid_against_the_compose_spec(interpolated):
    schema = json.loads(SCHEMA.read_text())
    doc = yaml.safe_load(interpolated)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_check_jsonschema_cli_accepts_the_compose_file(interpolated, tmp_path):
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe, "check-jsonschema is not installed (it is in requirements.txt): run `make install`"
    path = tmp_path / "docker-compose.yaml"
    path.write_text(interpolated)
    res = subprocess.run([exe, "--schemafile", str(SCHEMA), str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_schema_rejects_a_broken_compose_file(interpolated):
    """The check has teeth: an unknown service key and a wrong type are both errors."""
    doc = yaml.safe_load(interpolated)
    service = next(iter(doc["services"].values()))
    service["restart_policy_typo"] = "always"
    doc["services"]["postgres"]["ports"] = {"not": "a list"}
    schema = json.loads(SCHEMA.read_text())
    messages = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
    assert any("restart_policy_typo" in m for m in messages), messages
    assert len(messages) >= 2, messages
