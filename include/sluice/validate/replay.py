"""Replay quarantined rows: re-cast and re-validate the pending rows with the pipeline's current config and load the
ones that now pass through the loader's exactly-once path.

A replay takes one new generation (sluice.load_run_seq) and a run id `replay__<generation>`; each group of rows
(one interval and the generation that quarantined them) is one chunk of it: one load transaction writes the rows,
the ledger row and the rows' status `replayed`, so a replay killed anywhere leaves either all of a group or none
of it, and a re-run picks up exactly the rows still pending. The group is loaded with `replay_of` = the generation
that quarantined it: nothing of the interval is replaced, and a key that a later extraction wrote is never
overwritten by its replayed older row (`target.version_column` is honoured as in any load). Rows that still fail
stay pending with the reasons of the current config. Source rejects (kind parse) cannot be re-cast: the record
itself did not parse; they stay pending until a re-extraction or a discard.

Known limit: within the generation that quarantined a row, a later row of the same key that was loaded then is
overwritten by the replayed row (the guard compares generations, not source order inside one).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sluice.loading.sql import quarantine as qs
from sluice.loading.sql.results import scalar

if TYPE_CHECKING:
    from sluice.config import PipelineConfig

log = logging.getLogger(__name__)

__all__ = ["ReplayConflict", "ReplayResult", "replay"]


class ReplayConflict(RuntimeError):
    """Rows of a group stopped being pending while it loaded (a concurrent replay or discard)."""


@dataclass
class ReplayResult:
    pipeline: str
    dry_run: bool
    selected: int = 0  # pending rows that matched the filter
    passing: int = 0  # of them, rows that now cast and pass the expectations
    loaded: int = 0  # passing rows written (inserted + updated + unchanged + superseded)
    still_failing: int = 0  # stay pending, with the current reasons
    run_id: str | None = None
    generation: int | None = None
    groups: list[dict[str, Any]] = field(default_factory=list)
    failing_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Group:
    """The pending rows of one interval and quarantining generation that a replay re-casts: one load transaction."""

    interval_start: Any
    interval_end: Any
    generation: int
    ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # per quarantined chunk: its rows' JSON, one per line
    _lines: list[str] | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    def raw(self, position: int) -> dict[str, Any]:
        """The raw values of the row at `position` (only failing rows are looked at: split once, on demand)."""
        if self._lines is None:
            self._lines = self.text.split("\n")
        return json.loads(self._lines[position])


def select_pending(dsn: str, params: dict[str, Any]) -> tuple[list[Group], list[str]]:
    """The pending rows that match, in source order: the groups of re-castable rows, and the reason of each source
    reject (kind parse). PostgreSQL aggregates them per quarantined chunk (quarantine_replay_chunks)."""
    import psycopg

    groups: dict[tuple, Group] = {}
    parse_reasons: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not scalar(conn.execute(qs.quarantine_exists())):
            return [], []
        cur = conn.execute(qs.quarantine_replay_chunks(), {**params, "status": qs.Status.pending.value})
        for start, end, generation, ids, text, rejects in cur:
            parse_reasons += rejects or []
            if ids:
                g = groups.setdefault((start, end, generation), Group(start, end, generation))
                g.ids += ids
                g.texts.append(text)
    return list(groups.values()), parse_reasons


def _raw_table(group: Group) -> pa.Table:
    """The raw source values (strings, from each row's JSON text) of rows that were staged, in their order; parsed
    by pyarrow's JSON reader in one pass."""
    import pyarrow.json as pajson

    data = group.text.encode()
    table = pajson.read_json(pa.BufferReader(data), read_options=pajson.ReadOptions(block_size=max(len(data), 1 << 20)))
    return table.cast(pa.schema([(n, pa.string()) for n in table.column_names]))


def _judge_group(cfg: PipelineConfig, group: Group) -> tuple[pa.Table, list[int], dict[int, list]]:
    """(good rows in declared types, their positions in the group, position -> current reasons of the failing ones)."""
    import numpy as np

    from sluice.validate.cast import BAD_REASONS, BAD_ROW, cast_table
    from sluice.validate.chunk import _judge
    from sluice.validate.suite import classify

    table = _raw_table(group)
    cast = cast_table(table, cfg.target.columns, cfg.target.on_extra_columns, cfg.target.on_missing_columns)
    failing: dict[int, list] = {}
    for pos, text in zip(cast.bad_rows[BAD_ROW].to_pylist(), cast.bad_rows[BAD_REASONS].to_pylist(), strict=True):
        failing[pos] = [{"kind": "cast", **r} for r in json.loads(text)]
    specs = list(enumerate(cfg.expectations))
    levels = {i: classify(s) for i, s in specs}
    verdict, _ = _judge(cast.good, specs, levels, f"{cfg.name}.replay")
    if verdict.failures:
        from sluice.validate.chunk import ValidationFailed

        raise ValidationFailed(
            f"replay of {cfg.name}: expectation(s) with severity fail failed:\n- " + "\n- ".join(verdict.failures)
        )
    good_index = cast.good_index.to_pylist()
    for p in np.flatnonzero(verdict.flagged).tolist():
        raw = group.raw(good_index[p])
        failing[good_index[p]] = [
            {"kind": "expectation", **r, "value": raw.get(r["column"]) if "column" in r else None}
            for r in verdict.why[p]
        ]
    keep = ~verdict.flagged
    return cast.good.filter(pa.array(keep)), [i for i, k in zip(good_index, keep, strict=True) if k], failing


def _group_params(group: Group, pipeline: str) -> dict[str, Any]:
    """The group's predicate of the mark and reasons statements (quarantine_interval's columns)."""
    return {
        "pipeline": pipeline,
        "start": group.interval_start,
        "end": group.interval_end,
        "quarantined_by": group.generation,
    }


def _id_array(ids: list[int]) -> str:
    """The ids as one PostgreSQL array literal (`%(ids)s::bigint[]` parses it server-side): building the text is
    ~10x cheaper than psycopg dumping a list of 100,000 ints element by element."""
    return "{" + ",".join(map(str, ids)) + "}"


def _record_reasons(dsn: str, group: Group, failing: dict[int, list], where: dict[str, Any]) -> None:
    import psycopg

    from sluice.validate.quarantine import _dumps, _row_reason

    if not failing:
        return
    ids = [group.ids[p] for p in failing]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            qs.quarantine_new_reasons(),
            {
                **where,
                "ids": _id_array(ids),
                "kinds": [why[0]["kind"] for why in failing.values()],
                "reasons_key": [_row_reason(why) for why in failing.values()],
                "reasons": [_dumps(why) for why in failing.values()],
            },
        )


def replay(
    cfg: PipelineConfig,
    dsn: str,
    params: dict[str, Any],
    *,
    dry_run: bool = False,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> ReplayResult:
    """Replay the pending rows of cfg's pipeline that match `params` (quarantine_rows' filter)."""
    from sluice.interval import Interval
    from sluice.loading.ledger import new_generation
    from sluice.loading.postgres import load_arrow
    from sluice.validate.quarantine import reason_key

    result = ReplayResult(cfg.name, dry_run)
    groups, parse_reasons = select_pending(dsn, {**params, "pipeline": cfg.name})
    result.selected = len(parse_reasons) + sum(len(g.ids) for g in groups)
    result.still_failing += len(parse_reasons)
    for reason in parse_reasons:
        result.failing_reasons[reason] = result.failing_reasons.get(reason, 0) + 1
    if groups and not dry_run:
        result.generation = new_generation(dsn)
        result.run_id = f"replay__{result.generation}"
    for index, group in enumerate(progress(groups)):
        good, positions, failing = _judge_group(cfg, group)
        for why in failing.values():
            for key in {reason_key(w) for w in why}:
                result.failing_reasons[key] = result.failing_reasons.get(key, 0) + 1
        interval = Interval(group.interval_start, group.interval_end)
        summary = {"interval": interval.key, "quarantined_by": group.generation, "rows": len(group.ids)}
        summary |= {"passing": len(positions), "still_failing": len(failing)}
        result.passing += len(positions)
        result.still_failing += len(failing)
        if not dry_run:
            ids = [group.ids[p] for p in positions] if len(positions) < len(group.ids) else group.ids
            where = _group_params(group, cfg.name)

            def mark(conn, ids=ids, where=where) -> None:
                marked = conn.execute(
                    qs.quarantine_mark_replayed(),
                    {**where, "ids": _id_array(ids), "run_id": result.run_id, "generation": result.generation},
                ).rowcount
                if marked != len(ids):  # another replay took some of these rows meanwhile: roll this group back
                    raise ReplayConflict(f"{len(ids) - marked} of {len(ids)} rows are no longer pending; run again")

            if positions:
                assert result.run_id is not None and result.generation is not None  # taken above unless dry_run
                loaded = load_arrow(
                    cfg,
                    interval,
                    result.run_id,
                    index,
                    good,
                    generation=result.generation,
                    rows_quarantined=len(failing),
                    dsn=dsn,
                    replay_of=int(group.generation),
                    before_commit=mark,
                )
                result.loaded += int(loaded["rows_loaded"])
                summary |= {k: loaded[k] for k in ("inserted", "updated", "unchanged", "superseded")}
            _record_reasons(dsn, group, failing, where)
        result.groups.append(summary)
    log.info("replay of %s: %s", cfg.name, result.to_dict())
    return result
