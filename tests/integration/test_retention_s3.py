"""Staging retention and cold archive on the real PostgreSQL and S3 endpoint (moto server over HTTP): generations made
by the stages as a run makes them (`steps`, which record run_summary), then `python -m sluice staging retention` as a
user runs it. Old committed generations go (archived first, in GLACIER), the latest generation of each interval, a
generation of a run in progress and an uncommitted one stay; a dry run and a second run delete nothing."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError
from sluice import steps
from sluice.config import load_pipeline
from sluice.interval import Interval
from sluice.try_cli import run_pipeline

pytestmark = pytest.mark.integration

LANDING, STAGING, ARCHIVE = "sluice-landing", "sluice-staging", "sluice-archive"
DAYS = [Interval(datetime(2024, 3, d, tzinfo=UTC), datetime(2024, 3, d + 1, tzinfo=UTC)) for d in (1, 2, 3)]
CSV = b"id,name\n1,one\n2,two\nabc,not a number\n"  # row 3 fails its cast: every validated chunk has quarantine Parquet


def pipeline(tmp_path: Path, schema: str, prefix: str) -> Path:
    name = f"r_{uuid.uuid4().hex[:8]}"
    doc = {
        "name": name,
        "start_date": "2024-03-01",
        "source": {"kind": "s3", "bucket": LANDING, "prefix": prefix + "/{{ ds }}/", "format": "csv"},
        "staging": {
            "url": f"s3://{STAGING}/{prefix}",
            "conn_id": "sluice_s3",
            "retention": {
                "older_than": "30d",
                "archive": {"url": f"s3://{ARCHIVE}/{prefix}", "storage_class": "GLACIER"},
            },
        },
        "target": {
            "schema": schema,
            "table": "items",
            "primary_key": ["id"],
            "columns": [{"name": "id", "type": "bigint", "nullable": False}, {"name": "name", "type": "text"}],
        },
        "quality": {"max_quarantine_fraction": 0.9},
    }
    path = tmp_path / "pipelines" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    """`python -m sluice staging ...` in this process, reading the pipelines of tmp_path as the command line does."""
    from sluice.cli import main

    out = io.StringIO()
    saved = os.environ.get("SLUICE_PIPELINES_DIRS")
    os.environ["SLUICE_PIPELINES_DIRS"] = str(tmp_path / "pipelines")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(["staging", *args])
    finally:
        if saved is None:
            os.environ.pop("SLUICE_PIPELINES_DIRS")
        else:
            os.environ["SLUICE_PIPELINES_DIRS"] = saved
    return code, out.getvalue()


def generations(s3_client, bucket: str, prefix: str) -> dict[int, list[str]]:
    """gN -> file names below it, of every generation under prefix."""
    found: dict[int, list[str]] = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            gen, name = o["Key"].rsplit("/", 2)[-2:]
            found.setdefault(int(gen[1:]), []).append(name)
    return {g: sorted(names) for g, names in found.items()}


@pytest.fixture
def archive_bucket(s3_client):
    with contextlib.suppress(ClientError):  # made by an earlier test
        s3_client.create_bucket(Bucket=ARCHIVE)
    return ARCHIVE


def test_retention_deletes_only_what_it_may_and_archives_first(
    tmp_path, pg_schema, s3_client, s3_prefix, archive_bucket
):
    for day in DAYS:
        s3_client.put_object(Bucket=LANDING, Key=f"{s3_prefix}/{day.start:%Y-%m-%d}/part-0.csv", Body=CSV)
    path = pipeline(tmp_path, pg_schema, s3_prefix)
    cfg = load_pipeline(path)
    quiet = lambda *_: None  # noqa: E731

    def full(day: Interval) -> int:
        run_id = f"manual__{uuid.uuid4().hex[:8]}"
        return int(run_pipeline(cfg, day, run_id, echo=quiet)["generation"])

    # day 1: two committed runs; day 3's first run extracts and fails before loading, then a run commits
    d1_old, d1_latest = full(DAYS[0]), full(DAYS[0])
    # day 2: a committed run; a run that loaded every chunk but is still running (finalize not done); a newer one
    d2_old = full(DAYS[1])
    run_id = f"manual__{uuid.uuid4().hex[:8]}"
    d2_running = steps.begin(cfg, DAYS[1], run_id)
    reports = [steps.validate(cfg, DAYS[1], run_id, c) for c in steps.extract(cfg, DAYS[1], run_id, d2_running)]
    gated, _ = steps.gate(cfg, DAYS[1], run_id, d2_running, reports)
    for r in gated:
        steps.load(cfg, DAYS[1], run_id, r)
    d2_latest = full(DAYS[1])
    run_id = f"manual__{uuid.uuid4().hex[:8]}"
    d3_failed = steps.begin(cfg, DAYS[2], run_id)
    steps.extract(cfg, DAYS[2], run_id, d3_failed)
    steps.record_status(cfg, run_id, d3_failed, "failed", "test: the source went away")
    d3_latest = full(DAYS[2])
    staged_prefix = f"{s3_prefix}/{cfg.name}"
    before = generations(s3_client, STAGING, staged_prefix)
    assert set(before) == {d1_old, d1_latest, d2_old, d2_running, d2_latest, d3_failed, d3_latest}
    assert "chunk-00000.quarantine.parquet" in before[d1_old]

    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    # today nothing is 30 days old: nothing goes, nothing is archived
    code, out = cli(tmp_path, "retention", "--pipeline", cfg.name, "--json")
    assert code == 0 and generations(s3_client, STAGING, staged_prefix) == before
    assert json.loads(out.strip().splitlines()[-1])[0]["archived_objects"] == 0
    # a dry run a month later says what it would delete and deletes nothing
    code, out = cli(tmp_path, "retention", "--pipeline", cfg.name, "--as-of", later, "--dry-run", "--json")
    dry = json.loads(out.strip().splitlines()[-1])[0]
    assert code == 0 and dry["deleted_generations"] == 2 and "would delete" in out
    assert generations(s3_client, STAGING, staged_prefix) == before
    assert generations(s3_client, ARCHIVE, staged_prefix) == {}

    code, out = cli(tmp_path, "retention", "--pipeline", cfg.name, "--as-of", later, "--json")
    result = json.loads(out.strip().splitlines()[-1])[0]
    after = generations(s3_client, STAGING, staged_prefix)
    assert code == 0 and set(after) == {d1_latest, d2_running, d2_latest, d3_failed, d3_latest}
    assert after == {g: before[g] for g in after}  # what stays is whole
    assert result["deleted_generations"] == 2 and result["deleted_objects"] == len(before[d1_old]) + len(before[d2_old])
    assert result["deleted_bytes"] == dry["deleted_bytes"] > 0
    assert result["kept"] == {
        "the latest generation of its interval": 3,
        "a running run uses it": 1,
        "not committed (no manifest, or chunks without a ledger row)": 1,
    }
    assert re.search(rf"deleted s3://{STAGING}/{staged_prefix}/\S+: \d+ object\(s\), [\d.]+ (B|KiB) \(committed", out)

    # the archive: the deleted generations whole, the quarantine Parquet of every other validated one, in GLACIER
    archived = generations(s3_client, ARCHIVE, staged_prefix)
    assert archived[d1_old] == before[d1_old] and archived[d2_old] == before[d2_old]
    for g in (d1_latest, d2_running, d2_latest, d3_latest):
        assert archived[g] == ["chunk-00000.quarantine.parquet"]
    assert d3_failed not in archived  # never validated: no quarantine Parquet
    key = next(
        o["Key"]
        for o in s3_client.list_objects_v2(Bucket=ARCHIVE, Prefix=f"{staged_prefix}/")["Contents"]
        if o["Key"].endswith(f"g{d1_old}/manifest.json")
    )
    assert s3_client.head_object(Bucket=ARCHIVE, Key=key)["StorageClass"] == "GLACIER"
    with pytest.raises(ClientError) as cold:  # moto, like S3, refuses a GET of a GLACIER object until restored
        s3_client.get_object(Bucket=ARCHIVE, Key=key)
    assert cold.value.response["Error"]["Code"] == "InvalidObjectState"
    assert result["archived_objects"] == sum(len(v) for v in archived.values())

    # a second run does nothing
    code, out = cli(tmp_path, "retention", "--pipeline", cfg.name, "--as-of", later, "--json")
    again = json.loads(out.strip().splitlines()[-1])[0]
    assert code == 0 and again["deleted_generations"] == 0 and again["archived_objects"] == 0
    assert again["already_archived"] == 4 and generations(s3_client, STAGING, staged_prefix) == after

    # the loads are untouched: retention changes staging only
    import psycopg
    from sluice.connections import pg_dsn

    with psycopg.connect(pg_dsn(cfg.target.conn_id)) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{pg_schema}".items').fetchone()[0] == 2


def test_archive_only_copies_and_deletes_nothing(tmp_path, pg_schema, s3_client, s3_prefix, archive_bucket):
    s3_client.put_object(Bucket=LANDING, Key=f"{s3_prefix}/2024-03-01/part-0.csv", Body=CSV)
    path = pipeline(tmp_path, pg_schema, s3_prefix)
    doc = yaml.safe_load(path.read_text())
    doc["staging"]["retention"]["archive"] |= {"storage_class": "DEEP_ARCHIVE", "generations": False}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    cfg = load_pipeline(path)
    first = int(run_pipeline(cfg, DAYS[0], "manual__one", echo=lambda *_: None)["generation"])
    second = int(run_pipeline(cfg, DAYS[0], "manual__two", echo=lambda *_: None)["generation"])
    staged_prefix = f"{s3_prefix}/{cfg.name}"
    before = generations(s3_client, STAGING, staged_prefix)
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    code, out = cli(tmp_path, "archive", "--pipeline", cfg.name, "--as-of", later)
    assert code == 0 and generations(s3_client, STAGING, staged_prefix) == before
    assert generations(s3_client, ARCHIVE, staged_prefix) == {
        first: ["chunk-00000.quarantine.parquet"],
        second: ["chunk-00000.quarantine.parquet"],
    }
    key = f"{staged_prefix}/20240301T000000Z_20240302T000000Z/manual__one/g{first}/chunk-00000.quarantine.parquet"
    assert s3_client.head_object(Bucket=ARCHIVE, Key=key)["StorageClass"] == "DEEP_ARCHIVE"
    assert "archive only" in out  # the old committed g<first> stays: archive deletes nothing
