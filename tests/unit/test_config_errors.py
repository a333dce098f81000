"""Bad pipeline files: every error names the file, the line, the field path, what was expected and a did-you-mean."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from sluice.config import ConfigError, load_all, load_defaults, load_pipeline

ORDERS = (Path(__file__).parent / "fixtures" / "config" / "orders.yaml").read_text()


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def variant(old: str, new: str) -> str:
    assert old in ORDERS, old
    return ORDERS.replace(old, new, 1)


def error_of(path: Path, defaults: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_pipeline(path, defaults)
    return err.value


def test_empty_file(tmp_path):
    err = error_of(write(tmp_path, "empty.yaml", "  \n# nothing\n"))
    assert err.path.endswith("empty.yaml") and err.line == 1
    assert str(err).startswith(f"{tmp_path}/empty.yaml:1: file is empty")
    assert "name, start_date, source and target" in str(err)


def test_yaml_syntax_error_names_line(tmp_path):
    err = error_of(write(tmp_path, "bad.yaml", variant('schedule: "0 2 * * *"', "schedule: @daily")))
    assert err.line == 4 and "YAML syntax error" in err.message
    assert str(err).startswith(f"{tmp_path}/bad.yaml:4: YAML syntax error")
    assert 'schedule: "@daily"' in err.hint


def test_yaml_unquoted_template_gets_a_hint(tmp_path):
    err = error_of(write(tmp_path, "bad.yaml", variant('prefix: "tpch/orders/{{ ds }}/"', "prefix: {{ ds }}/x")))
    assert err.line == 9 and "quote templated values" in err.hint


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: orders\ndescription: caf\xe9\n")
    err = error_of(path)
    assert err.line == 2 and "not UTF-8" in err.message


def test_top_level_list(tmp_path):
    err = error_of(write(tmp_path, "list.yaml", "- name: x\n"))
    assert err.line == 1 and "top level must be a mapping" in err.message


def test_duplicate_yaml_key(tmp_path):
    err = error_of(write(tmp_path, "d.yaml", ORDERS + "name: other\n"))
    assert err.line == 29 and err.field == "name" and "first set on line 1" in err.message


def test_wrong_type(tmp_path):
    err = error_of(write(tmp_path, "t.yaml", variant('delimiter: "|"', 'delimiter: "|"\n    header: maybe')))
    assert (err.line, err.field) == (13, "source.csv.header")
    assert "valid boolean" in err.message and "'maybe'" in err.message
    assert err.expected.startswith("boolean")


def test_wrong_type_for_a_section(tmp_path):
    err = error_of(write(tmp_path, "t.yaml", ORDERS + "quality: strict\n"))
    assert (err.line, err.field) == (29, "quality") and "expected a mapping" in err.message


def test_unknown_key_with_did_you_mean(tmp_path):
    err = error_of(write(tmp_path, "k.yaml", variant("  bucket: sluice-landing", "  bukcet: sluice-landing")))
    assert len(err.issues) == 1, str(err)  # the "missing bucket" echo of the same typo is folded away
    assert (err.line, err.field) == (8, "source.bukcet")
    assert err.message == "unknown key 'bukcet'" and err.hint == "did you mean 'bucket'?"
    assert "bucket" in err.expected and "prefix" in err.expected
    assert str(err).splitlines()[0] == f"{tmp_path}/k.yaml:8: source.bukcet: unknown key 'bukcet'"


def test_unknown_top_level_key(tmp_path):
    err = error_of(write(tmp_path, "k.yaml", variant("tags:", "tgas:")))
    assert (err.line, err.field, err.hint) == (3, "tgas", "did you mean 'tags'?")


def test_unknown_source_kind_with_did_you_mean(tmp_path):
    err = error_of(write(tmp_path, "s.yaml", variant("kind: s3", "kind: sq1")))
    assert (err.line, err.field) == (7, "source.kind")
    assert err.message == "unknown kind 'sq1'" and err.hint == "did you mean 'sql'?"
    assert "http" in err.expected and "s3" in err.expected


def test_missing_source_kind(tmp_path):
    err = error_of(write(tmp_path, "s.yaml", variant("  kind: s3\n", "")))
    assert err.field == "source.kind" and err.line == 6 and "missing required key 'kind'" in err.message


def test_enum_value_with_did_you_mean(tmp_path):
    err = error_of(write(tmp_path, "w.yaml", variant("write_mode: upsert", "write_mode: upsrt")))
    assert (err.line, err.field) == (22, "target.write_mode")
    assert err.hint == "did you mean 'upsert'?" and "replace_interval" in err.expected


def test_bad_column_type_points_at_the_column(tmp_path):
    err = error_of(write(tmp_path, "c.yaml", variant('type: "numeric(12,2)"', 'type: "numric(12,2)"')))
    assert (err.line, err.field) == (19, "target.columns[1].type")
    assert "unknown column type 'numric(12,2)'" in err.message and "numeric(p,s)" in err.expected


def test_bad_identifier(tmp_path):
    err = error_of(write(tmp_path, "i.yaml", variant("name: o_comment", "name: o-comment")))
    assert (err.line, err.field) == (21, "target.columns[3].name")
    assert "'o-comment' is not a valid identifier" in err.message and "'o_comment'" in err.hint


def test_bad_pipeline_name(tmp_path):
    err = error_of(write(tmp_path, "n.yaml", variant("name: orders", "name: Orders-Daily")))
    assert (err.line, err.field) == (1, "name") and "'orders_daily'" in err.hint


def test_primary_key_not_declared(tmp_path):
    err = error_of(write(tmp_path, "p.yaml", variant("primary_key: [o_orderkey]", "primary_key: [o_orderkye]")))
    assert (err.line, err.field) == (16, "target.primary_key[0]")
    assert "'o_orderkye' is not declared" in err.message and err.hint == "did you mean 'o_orderkey'?"


def test_primary_key_nullable(tmp_path):
    err = error_of(write(tmp_path, "p.yaml", variant("bigint, nullable: false", "bigint")))
    assert (err.line, err.field) == (18, "target.columns[0].nullable")
    assert "nullable: false" in err.hint


def test_replace_interval_without_interval_column(tmp_path):
    err = error_of(write(tmp_path, "r.yaml", variant("write_mode: upsert", "write_mode: replace_interval")))
    assert err.field == "target.interval_column" and err.line == 13
    assert "needs interval_column" in err.message and "date/timestamp" in err.expected


def test_interval_column_must_be_declared_and_temporal(tmp_path):
    text = variant("write_mode: upsert", "write_mode: replace_interval\n  interval_column: o_comment")
    err = error_of(write(tmp_path, "r.yaml", text))
    assert (err.line, err.field) == (23, "target.interval_column") and "not a date or time" in err.message


def test_sql_needs_exactly_one_of_table_and_query(tmp_path):
    head, _, tail = ORDERS.partition("source:\n")
    tail = tail[tail.index("target:") :]
    err = error_of(write(tmp_path, "q.yaml", head + "source:\n  kind: sql\n  conn_id: db\n" + tail))
    assert err.field == "source" and err.line == 6 and "exactly one of table and query" in err.message


def test_template_variable_with_did_you_mean(tmp_path):
    err = error_of(write(tmp_path, "t.yaml", variant("{{ ds }}", "{{ dss }}")))
    assert (err.line, err.field) == (9, "source.prefix") and err.hint == "did you mean 'ds'?"


def test_expectation_column_not_declared(tmp_path):
    err = error_of(write(tmp_path, "e.yaml", variant("{column: o_totalprice}", "{column: o_totalprise}")))
    assert (err.line, err.field) == (25, "expectations[0].kwargs.column") and "o_totalprice" in err.hint


def test_bad_deadline(tmp_path):
    err = error_of(write(tmp_path, "d.yaml", variant("after_interval_end: 2h", "after_interval_end: 2 hours")))
    assert (err.line, err.field) == (28, "deadline.after_interval_end") and "PT2H" in err.expected


def test_secret_header_is_refused(tmp_path):
    head, _, tail = ORDERS.partition("source:\n")
    tail = tail[tail.index("target:") :]
    src = "source:\n  kind: http\n  conn_id: api\n  endpoint: /x\n  headers:\n    Authorization: Bearer abc\n"
    err = error_of(write(tmp_path, "h.yaml", head + src + tail))
    assert (err.line, err.field) == (11, "source.headers.Authorization") and "auth" in err.hint


def test_all_problems_of_a_file_are_reported(tmp_path):
    text = variant("tags:", "tgas:").replace("write_mode: upsert", "write_mode: upsrt")
    err = error_of(write(tmp_path, "m.yaml", text))
    assert [(i.line, i.field) for i in err.issues] == [(3, "tgas"), (22, "target.write_mode")]


def test_error_inherited_from_defaults_names_both_files(tmp_path):
    (tmp_path / "defaults.yaml").write_text("staging:\n  chunk_rows: lots\n")
    err = error_of(write(tmp_path, "p.yaml", ORDERS), load_defaults(tmp_path))
    assert err.field == "staging.chunk_rows" and f"from defaults: {tmp_path}/defaults.yaml:2" in str(err)


def test_bad_defaults_key(tmp_path):
    (tmp_path / "defaults.yaml").write_text("owner: x\nstagng: {}\n")
    with pytest.raises(ConfigError) as err:
        load_defaults(tmp_path)
    assert (err.value.line, err.value.field, err.value.hint) == (2, "stagng", "did you mean 'staging'?")


def test_config_error_pickles(tmp_path):
    err = error_of(write(tmp_path, "k.yaml", variant("tags:", "tgas:")))
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_duplicate_names_across_files_and_isolation(tmp_path):
    pipes = tmp_path / "pipelines"
    pipes.mkdir()
    write(pipes, "a.yaml", ORDERS)
    write(pipes, "b.yaml", "# copy\n" + ORDERS)
    write(pipes, "c.yaml", variant("name: orders", "name: lineitem"))
    write(pipes, "d.yaml", variant("kind: s3", "kind: s4").replace("name: orders", "name: broken"))
    write(pipes, "e.yaml", "")
    result = load_all(pipes)
    assert list(result.pipelines) == ["lineitem"]
    assert sorted(Path(p).name for p in result.errors) == ["a.yaml", "b.yaml", "d.yaml", "e.yaml"]
    a, b = str(result.errors[str(pipes / "a.yaml")]), str(result.errors[str(pipes / "b.yaml")])
    assert a.startswith(f"{pipes}/a.yaml:1: name: pipeline name 'orders' is also used by {pipes}/b.yaml:2")
    assert b.startswith(f"{pipes}/b.yaml:2: name: pipeline name 'orders' is also used by {pipes}/a.yaml:1")


def test_broken_defaults_do_not_stop_the_pipelines(tmp_path):
    pipes = tmp_path / "pipelines"
    pipes.mkdir()
    (tmp_path / "defaults.yaml").write_text("staging: [\n")
    write(pipes, "a.yaml", ORDERS)
    result = load_all(pipes)
    assert list(result.pipelines) == ["orders"]
    assert list(result.errors) == [str(tmp_path / "defaults.yaml")]


HTTP_PIPELINE = """name: api_breaker
start_date: 2024-01-01
source:
  kind: http
  conn_id: my_api
  endpoint: /v1/items
  circuit_breaker:
    failures: 3
    cooldown_seconds: 60
    max_wait_seconds: 30
target:
  table: items
  primary_key: [id]
  columns:
    - {name: id, type: bigint, nullable: false}
"""


def test_circuit_breaker_that_gives_up_before_its_probe_names_the_line(tmp_path):
    err = error_of(write(tmp_path, "b.yaml", HTTP_PIPELINE))
    assert (err.line, err.field) == (10, "source.circuit_breaker.max_wait_seconds"), str(err)
    assert "below cooldown_seconds 60" in err.message


def test_circuit_breaker_unknown_key_suggests_the_right_one(tmp_path):
    err = error_of(write(tmp_path, "b.yaml", HTTP_PIPELINE.replace("    failures: 3", "    failure: 3")))
    assert (err.line, err.field) == (8, "source.circuit_breaker.failure"), str(err)
    assert "failures" in err.hint


def test_circuit_breaker_loads(tmp_path):
    cfg = load_pipeline(
        write(tmp_path, "b.yaml", HTTP_PIPELINE.replace("max_wait_seconds: 30", "max_wait_seconds: 900"))
    )
    b = cfg.source.circuit_breaker
    assert (b.failures, b.cooldown_seconds, b.max_wait_seconds) == (3, 60, 900)
