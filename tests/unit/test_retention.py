"""Staging retention as pure logic: grouping listed keys into generations, the keep/delete rules, the config block and
its errors, the SQL it sends, the shape of the sluice_retention DAG. The S3 and warehouse path is in
tests/integration/test_retention.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sluice.config import ConfigError, StorageClass, load_pipeline
from sluice.loading import sql as q
from sluice.retention import Generation, StagedObject, group_generations, is_committed, plan

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD, YOUNG = NOW - timedelta(days=40), NOW - timedelta(days=2)
DAY1, DAY2 = "20240301T000000Z_20240302T000000Z", "20240302T000000Z_20240303T000000Z"
BASE = "stage/orders/"


def gen(interval: str, n: int, when: datetime = OLD, run: str = "manual__x") -> Generation:
    prefix = f"{BASE}{interval}/{run}/g{n}/"
    return Generation(interval, run, n, prefix, [StagedObject(prefix + "manifest.json", 10, when)])


def decide(gens, chunks=None, ledger=None, statuses=None, running=(), older=timedelta(days=30)):
    chunks = chunks if chunks is not None else {g.number: 1 for g in gens}
    ledger = ledger if ledger is not None else {g.number: 1 for g in gens}
    found = plan(gens, lambda g: chunks.get(g.number), ledger, statuses or {}, set(running), NOW, older)
    return {d.generation.number: (d.delete, d.reason) for d in found}


def test_group_generations_by_directory_and_strays():
    keys = [
        f"{BASE}{DAY1}/scheduled__2024-03-01T00_00_00_00_00/g3/chunk-00000.parquet",
        f"{BASE}{DAY1}/scheduled__2024-03-01T00_00_00_00_00/g3/manifest.json",
        f"{BASE}{DAY1}/manual__a/g12/chunk-00000.quarantine.parquet",
        f"{BASE}{DAY1}/old_layout_run/chunk-00000.parquet",
        f"{BASE}notes.txt",
    ]
    gens, strays = group_generations(BASE, [StagedObject(k, 5, OLD) for k in keys])
    assert [(g.interval, g.number, len(g.objects)) for g in gens] == [(DAY1, 3, 2), (DAY1, 12, 1)]
    assert gens[0].manifest_key == f"{BASE}{DAY1}/scheduled__2024-03-01T00_00_00_00_00/g3/manifest.json"
    assert strays == keys[3:] and gens[0].bytes == 10


def test_old_committed_generations_go_and_the_latest_of_each_interval_stays():
    got = decide([gen(DAY1, 1), gen(DAY1, 2), gen(DAY1, 5), gen(DAY2, 3)])
    assert got[1][0] and got[2][0] and "g5 is newer" in got[1][1]
    assert got[5] == (False, "the latest generation of its interval")
    assert got[3] == (False, "the latest generation of its interval")


def test_a_generation_a_running_run_uses_is_kept():
    gens = [gen(DAY1, 1), gen(DAY1, 2), gen(DAY1, 3)]
    assert decide(gens, running={2})[2] == (False, "a running run uses it")
    assert decide(gens, statuses={2: "running"})[2][0] is False
    assert decide(gens)[2][0] is True


def test_generations_newer_than_the_last_committed_and_uncommitted_ones_are_kept():
    gens = [gen(DAY1, 1), gen(DAY1, 2), gen(DAY1, 3), gen(DAY1, 4)]
    # g4 (latest) and g3 failed (chunks without ledger rows); g2 committed; g1 never got a manifest
    got = decide(gens, chunks={1: None, 2: 2, 3: 2, 4: 1}, ledger={2: 2, 3: 1})
    assert got[3] == (False, "newer than the interval's last committed generation (in progress or failed)")
    assert got[1] == (False, "not committed (no manifest, or chunks without a ledger row)")
    assert got[2][0] is True and "g2 is newer" in got[2][1]
    assert all(not d for d, _ in decide(gens, ledger={}).values())  # nothing committed: nothing goes


def test_young_generations_stay_until_older_than():
    gens = [gen(DAY1, 1, YOUNG), gen(DAY1, 2)]
    assert decide(gens)[1] == (False, "younger than 30d")
    assert decide(gens, older=timedelta(days=1))[1][0] is True


def test_manifests_are_read_only_where_they_matter():
    read: list[int] = []

    def chunks(g):
        read.append(g.number)
        return 1

    gens = [gen(DAY1, n, YOUNG if n < 5 else OLD) for n in range(1, 7)]
    plan(gens, chunks, {n: 1 for n in range(1, 7)}, {}, set(), NOW, timedelta(days=30))
    assert read == [6, 5]  # the latest (committed) and the old g5; the young ones are kept unread


@pytest.mark.parametrize(
    ("chunks", "ledger", "status", "expected"),
    [
        (None, 5, "success", False),
        (2, 2, None, True),
        (2, 1, "success", False),
        (0, 0, "success", True),
        (0, 0, None, False),
    ],
)
def test_is_committed(chunks, ledger, status, expected):
    assert is_committed(chunks, ledger, status) is expected


# ---------------------------------------------------------------- config

PIPELINE = """\
name: orders
start_date: 2024-01-01
source: {kind: s3, bucket: landing, prefix: "orders/{{ ds }}/", format: csv}
staging:
  url: s3://sluice-staging
  retention:
RETENTION
target:
  table: orders
  primary_key: [id]
  columns: [{name: id, type: bigint, nullable: false}]
"""


def load(tmp_path: Path, retention: str):
    path = tmp_path / "orders.yaml"
    path.write_text(PIPELINE.replace("RETENTION", retention))
    return load_pipeline(path, {})


def test_retention_config_defaults_and_archive(tmp_path):
    cfg = load(tmp_path, "    older_than: 7d\n    archive: {url: s3://cold/sluice, storage_class: DEEP_ARCHIVE}")
    ret = cfg.staging.retention
    assert ret.enabled and ret.older_than == timedelta(days=7)
    assert ret.archive.storage_class is StorageClass.DEEP_ARCHIVE and ret.archive.quarantine and ret.archive.generations
    default = load(tmp_path, "    enabled: true").staging.retention
    assert default.older_than == timedelta(days=30) and default.archive is None


def test_retention_config_errors_name_line_field_and_fix(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "    archive: {url: s3://cold, storage_class: GLACIR}")
    assert err.value.field == "staging.retention.archive.storage_class" and err.value.line == 7
    assert "GLACIER" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "    archive: {url: s3://sluice-staging/archive}")
    assert err.value.field == "staging.retention.archive.url" and "overlaps staging url" in err.value.message
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "    older_tahn: 3d")
    assert "older_than" in str(err.value)


# ---------------------------------------------------------------- SQL


def s(composed) -> str:
    return composed.as_string(None)


def test_retention_sql():
    assert s(q.committed_chunks()) == (
        'SELECT run_no, count(DISTINCT chunk), max(finished_at) FROM "sluice"."load_ledger" '
        "WHERE pipeline = %(pipeline)s AND run_no = ANY(%(generations)s) GROUP BY run_no"
    )
    assert s(q.run_statuses()) == (
        'SELECT generation, status FROM "sluice"."run_summary" WHERE pipeline = %(pipeline)s '
        "AND (generation = ANY(%(generations)s) OR status = 'running')"
    )


# ---------------------------------------------------------------- DAG


def test_retention_dag_is_daily_with_one_task(monkeypatch):
    from sluice.dag_builder import RETENTION_DAG, register_retention

    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    namespace: dict = {}
    dag = register_retention(namespace)
    assert dag is not None and namespace == {RETENTION_DAG: dag}
    assert [t.task_id for t in dag.tasks] == ["staging_retention"]
    assert set(dag.params.dump()) == {"as_of", "dry_run", "pipeline"} and dag.max_active_runs == 1 and not dag.catchup
    assert type(dag.timetable).__name__ == "CronTriggerTimetable" or "30 3 * * *" in dag.timetable.summary
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "orders")
    assert register_retention({}) is None


def test_retention_dag_pipeline_param_runs_only_that_pipeline(monkeypatch):
    """The `pipeline` param narrows the run to one pipeline; an unknown name fails with a did-you-mean."""
    from types import SimpleNamespace

    import sluice.retention
    from sluice.dag_builder import ops

    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    configs = {n: SimpleNamespace(name=n) for n in ("orders", "lineitem")}
    monkeypatch.setattr(ops, "load_configs", lambda: SimpleNamespace(pipelines=configs))
    seen: list[list[str]] = []

    def fake_run_all(cfgs, as_of, **_):
        cfgs = list(cfgs)
        seen.append([c.name for c in cfgs])
        return [(c, SimpleNamespace(to_dict=lambda c=c: {"pipeline": c.name})) for c in cfgs]

    monkeypatch.setattr(sluice.retention, "run_all", fake_run_all)
    fn = ops.build_retention_dag().get_task("staging_retention").python_callable
    as_of = "2026-01-01T00:00:00+00:00"
    assert fn(params={"as_of": as_of, "pipeline": "orders"}) == {"orders": {"pipeline": "orders"}}
    assert set(fn(params={"as_of": as_of, "pipeline": None})) == {"orders", "lineitem"}
    assert seen == [["orders"], ["orders", "lineitem"]]
    with pytest.raises(ValueError, match="'order' is not a valid pipeline; did you mean 'orders'"):
        fn(params={"as_of": as_of, "pipeline": "order"})
