"""Staging retention: which staged generations may go (`plan`, pure), and deleting them after archiving
(`run_pipeline`).

A generation directory (staging.py) is `<staging>/<pipeline>/<interval.key>/<run_id>/g<n>/`. Retention deletes one
only when all of these hold, and says for every kept one why it stayed:
- it is not the latest staged generation of its interval (backfill plan reads that manifest; it is the audit copy);
- no run of the pipeline in `running` state has that generation (run_summary);
- it is not newer than the interval's last committed generation (such one is in progress or failed);
- it is committed: its manifest exists and every chunk in it has a ledger row (0 chunks: run_summary success);
- its newest object is older than `staging.retention.older_than` at `as_of`.
With `staging.retention.archive`, its objects are first copied to the archive (staging_objects.copy_all,
idempotent), and the quarantine / rejects Parquet of every generation older than the threshold is copied there too.
Objects are deleted manifest last, so an interrupted run leaves a generation that is still committed, and the next
run finishes it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sluice.staging import MANIFEST_NAME

if TYPE_CHECKING:
    from sluice.config import PipelineConfig

log = logging.getLogger(__name__)

_GENERATION_KEY = re.compile(r"^(?P<interval>\d{8}T\d{6}Z_\d{8}T\d{6}Z)/(?P<run>[A-Za-z0-9._-]+)/g(?P<gen>\d+)/")
ARCHIVED_SUFFIXES = (".quarantine.parquet", ".rejects.parquet")


@dataclass(frozen=True)
class StagedObject:
    key: str  # bucket-relative
    size: int
    modified: datetime


@dataclass
class Generation:
    """One staged generation directory, as listed."""

    interval: str
    run_dir: str
    number: int
    prefix: str  # bucket-relative, ends with "/"
    objects: list[StagedObject] = field(default_factory=list)

    @property
    def newest(self) -> datetime:
        return max(o.modified for o in self.objects)

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.objects)

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST_NAME


@dataclass(frozen=True)
class Decision:
    generation: Generation
    delete: bool
    reason: str


def group_generations(base: str, objects: Iterable[StagedObject]) -> tuple[list[Generation], list[str]]:
    """Objects under `<base>` (the pipeline's staging prefix, ending in "/") -> generation directories, and the keys
    that are not in one (an older layout, a stray file: never deleted)."""
    found: dict[str, Generation] = {}
    strays: list[str] = []
    for obj in objects:
        m = _GENERATION_KEY.match(obj.key[len(base) :]) if obj.key.startswith(base) else None
        if m is None:
            strays.append(obj.key)
            continue
        prefix = base + m.group(0)
        gen = found.get(prefix)
        if gen is None:
            gen = found[prefix] = Generation(m["interval"], m["run"], int(m["gen"]), prefix)
        gen.objects.append(obj)
    return sorted(found.values(), key=lambda g: (g.interval, g.number)), strays


def span(d: timedelta) -> str:
    """30d, 12h, 1d6h30m: a duration as a pipeline file writes it."""
    seconds = int(d.total_seconds())
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def is_committed(chunks: int | None, ledger_chunks: int, status: str | None) -> bool:
    """`chunks`: the manifest's chunk count (None: no manifest); `ledger_chunks`: chunks with a ledger row."""
    if chunks is None:
        return False
    return ledger_chunks >= chunks if chunks else status == "success"


def plan(
    generations: list[Generation],
    manifest_chunks: Callable[[Generation], int | None],
    ledger_chunks: dict[int, int],
    statuses: dict[int, str],
    running: set[int],
    as_of: datetime,
    older_than: timedelta,
) -> list[Decision]:
    """Decide every generation (pure logic; `manifest_chunks` is only called where the answer matters)."""
    by_interval: dict[str, list[Generation]] = {}
    for g in generations:
        by_interval.setdefault(g.interval, []).append(g)
    cutoff = as_of - older_than
    decisions: list[Decision] = []
    for gens in by_interval.values():
        gens.sort(key=lambda g: g.number)
        latest = gens[-1].number
        known: dict[int, bool] = {}

        def committed(g: Generation, known: dict[int, bool] = known) -> bool:
            if g.number not in known:
                known[g.number] = is_committed(
                    manifest_chunks(g), ledger_chunks.get(g.number, 0), statuses.get(g.number)
                )
            return known[g.number]

        last_committed = next((g.number for g in reversed(gens) if committed(g)), None)
        for g in gens:
            if g.number == latest:
                reason = "the latest generation of its interval"
            elif g.number in running or statuses.get(g.number) == "running":
                reason = "a running run uses it"
            elif last_committed is None or g.number > last_committed:
                reason = "newer than the interval's last committed generation (in progress or failed)"
            elif g.newest > cutoff:
                reason = f"younger than {span(older_than)}"
            elif not committed(g):
                reason = "not committed (no manifest, or chunks without a ledger row)"
            else:
                decisions.append(
                    Decision(g, True, f"committed, older than {span(older_than)}, g{last_committed} is newer")
                )
                continue
            decisions.append(Decision(g, False, reason))
    return decisions


# ---------------------------------------------------------------- the pipeline's staging and warehouse


@dataclass
class Result:
    """What one pipeline's retention did (or would do, dry run): the command's and the task's report."""

    pipeline: str
    dry_run: bool
    deleted_generations: int = 0
    deleted_objects: int = 0
    deleted_bytes: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    archived_objects: int = 0
    archived_bytes: int = 0
    already_archived: int = 0
    strays: int = 0
    note: str = ""
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "lines"}
        return d


def _split(url: str) -> tuple[str, str]:
    """s3://bucket/prefix -> ("bucket", "prefix/") ("" for the bucket's root)."""
    rest = url[len("s3://") :].rstrip("/")
    bucket, _, prefix = rest.partition("/")
    return bucket, (prefix + "/" if prefix else "")


def _warehouse(cfg: PipelineConfig, numbers: list[int]) -> tuple[dict[int, int], dict[int, str], set[int]]:
    """Ledger chunk counts and run statuses of these generations, and the generations of running runs."""
    import psycopg

    from sluice.connections import pg_dsn
    from sluice.loading import sql as q

    params = {"pipeline": cfg.name, "generations": numbers}
    with psycopg.connect(pg_dsn(cfg.target.conn_id)) as conn:
        try:
            ledger = {int(n): int(c) for n, c, _ in conn.execute(q.committed_chunks(), params)}
            rows = conn.execute(q.run_statuses(), params).fetchall()
        except psycopg.errors.UndefinedTable:  # nothing ever loaded into this warehouse: nothing is committed
            return {}, {}, set()
    statuses = {int(g): s for g, s in rows if g is not None}
    return ledger, statuses, {int(g) for g, s in rows if s == "running" and g is not None}


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def run_pipeline(
    cfg: PipelineConfig,
    as_of: datetime,
    *,
    dry_run: bool = False,
    older_than: timedelta | None = None,
    delete: bool = True,
    progress: Callable[[list[Decision]], Iterable[Decision]] = lambda d: d,
) -> Result:
    """Retention (delete=True) or archive only (delete=False) of one pipeline's staging, as of `as_of`."""
    from sluice import staging_objects as s3_ops

    ret = cfg.staging.retention
    threshold = older_than or ret.older_than
    result = Result(cfg.name, dry_run)
    if not cfg.staging.url.startswith("s3://"):
        result.note = f"staging {cfg.staging.url} is not s3://: retention handles S3 staging only"
        return result
    bucket, root = _split(cfg.staging.url)
    base = f"{root}{cfg.name}/"
    client = s3_ops.client(cfg.staging.conn_id)
    generations, strays = group_generations(base, s3_ops.list_objects(client, bucket, base))
    result.strays = len(strays)
    if not generations:
        return result
    ledger, statuses, running = _warehouse(cfg, [g.number for g in generations])

    def manifest_chunks(g: Generation) -> int | None:
        if not any(o.key == g.manifest_key for o in g.objects):
            return None
        return len(json.loads(s3_ops.read(client, bucket, g.manifest_key)).get("chunks", []))

    decisions = plan(generations, manifest_chunks, ledger, statuses, running, as_of, threshold)
    archive = ret.archive
    target = None
    if archive is not None:
        a_bucket, a_base = _split(archive.url)
        a_client = s3_ops.client(archive.conn_id or cfg.staging.conn_id)
        target = s3_ops.ArchiveTarget(a_client, a_bucket, a_base, str(archive.storage_class))
    may_delete = delete and ret.enabled
    for d in progress(decisions):
        g = d.generation
        old = g.newest <= as_of - threshold
        copy: list[StagedObject] = []
        if target is not None and archive is not None:
            if d.delete and may_delete and archive.generations:
                copy = list(g.objects)
            elif old and archive.quarantine:
                copy = [o for o in g.objects if o.key.endswith(ARCHIVED_SUFFIXES)]
        if copy and target is not None and archive is not None:
            done = s3_ops.copy_all(client, bucket, root, copy, target, dry_run=dry_run)
            result.archived_objects += done.copied
            result.archived_bytes += done.bytes
            result.already_archived += done.skipped
            if done.copied:
                result.lines.append(
                    f"{'would archive' if dry_run else 'archived'} {done.copied} object(s), {_human(done.bytes)} of "
                    f"s3://{bucket}/{g.prefix} -> {archive.url} ({archive.storage_class})"
                )
        if d.delete and may_delete:
            keys = [o.key for o in g.objects]
            if not dry_run:
                s3_ops.delete_keys(client, bucket, [k for k in keys if k != g.manifest_key])
                s3_ops.delete_keys(client, bucket, [k for k in keys if k == g.manifest_key])
            result.deleted_generations += 1
            result.deleted_objects += len(keys)
            result.deleted_bytes += g.bytes
            result.lines.append(
                f"{'would delete' if dry_run else 'deleted'} s3://{bucket}/{g.prefix}: {len(keys)} object(s), "
                f"{_human(g.bytes)} ({d.reason})"
            )
        else:
            why = d.reason if d.delete is False else "retention.enabled is false" if delete else "archive only"
            result.kept[why] = result.kept.get(why, 0) + 1
    return result


def summary_line(r: Result) -> str:
    verb = "would delete" if r.dry_run else "deleted"
    kept = ", ".join(f"{n} {why}" for why, n in sorted(r.kept.items())) or "none"
    text = (
        f"{r.pipeline}: {verb} {r.deleted_generations} generation(s), {r.deleted_objects} object(s), "
        f"{_human(r.deleted_bytes)}; archived {r.archived_objects} object(s), {_human(r.archived_bytes)}"
        f" ({r.already_archived} already there); kept: {kept}"
    )
    if r.strays:
        text += f"; {r.strays} object(s) outside a generation directory left alone"
    return text + (f"; {r.note}" if r.note else "")


def run_all(
    configs: Iterable[PipelineConfig],
    as_of: datetime,
    *,
    dry_run: bool = False,
    delete: bool = True,
    echo: Callable[[str], None] = log.info,
) -> Iterator[tuple[PipelineConfig, Result | Exception]]:
    """Every pipeline in turn; a pipeline that fails (its S3 or warehouse down) is reported and the others go on."""
    for cfg in configs:
        try:
            result = run_pipeline(cfg, as_of, dry_run=dry_run, delete=delete)
        except Exception as exc:  # noqa: BLE001 - one pipeline's failure is reported; the caller decides the exit
            echo(f"{cfg.name}: failed: {type(exc).__name__}: {exc}")
            yield cfg, exc
            continue
        for line in result.lines:
            echo(line)
        echo(summary_line(result))
        yield cfg, result
