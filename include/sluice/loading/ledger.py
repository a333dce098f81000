"""The bookkeeping tables (sluice.load_ledger, run_summary, schema_changes): created once, and read back for the
conservation check and the count table of a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from sluice.loading import sql as q

if TYPE_CHECKING:
    from sluice.interval import Interval


class Counts(TypedDict):
    """A chunk's (or a run's) row counts: ledger columns, load result and run summary keys alike."""

    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    inserted: int
    updated: int
    unchanged: int
    superseded: int
    deleted: int


class Timings(TypedDict):
    copy_seconds: float
    merge_seconds: float


# the names, in order, derived from the structures (one place: add a count to Counts and the ledger's DDL)
COUNTS: tuple[str, ...] = tuple(Counts.__annotations__)
TIMINGS: tuple[str, ...] = tuple(Timings.__annotations__)


def conservation_problems(
    rows: list[dict[str, Any]],
    results: Sequence[Mapping[str, Any]],
    interval: Interval,
    quarantined_rows: int | None = None,
) -> list[str]:
    """Every way the ledger rows of a generation can disagree with conservation, with the tasks' results, or with the
    rows that sit in sluice.quarantine for it. Per chunk: rows_in = loaded + quarantined, and loaded = inserted +
    updated + unchanged + superseded, where inserted and updated are PostgreSQL's own tuple counts."""
    by_chunk = {r["chunk"]: r for r in rows}
    expected = {int(r["index"]): r for r in results}
    problems = [f"chunk {c} has no ledger row (it was never loaded)" for c in sorted(set(expected) - set(by_chunk))]
    problems += [
        f"chunk {c} is in the ledger but not in this run's results" for c in sorted(set(by_chunk) - set(expected))
    ]
    for c, r in sorted(by_chunk.items()):
        if r["rows_in"] != r["rows_loaded"] + r["rows_quarantined"]:
            problems.append(
                f"chunk {c}: rows_in {r['rows_in']} != loaded {r['rows_loaded']} + quarantined {r['rows_quarantined']}"
            )
        parts = r["inserted"] + r["updated"] + r["unchanged"] + r["superseded"]
        if r["rows_loaded"] != parts:
            problems.append(
                f"chunk {c}: loaded {r['rows_loaded']} != inserted {r['inserted']} + updated {r['updated']} + "
                f"unchanged {r['unchanged']} + superseded {r['superseded']}"
            )
        if min(r["inserted"], r["updated"], r["unchanged"], r["superseded"]) < 0:
            problems.append(f"chunk {c}: a negative count in the ledger")
        if c in expected and any(
            int(expected[c].get(f, r[f])) != r[f] for f in ("rows_in", "rows_loaded", "rows_quarantined")
        ):
            problems.append(f"chunk {c}: the task reported other counts than the ledger recorded")
        if (r["interval_start"], r["interval_end"]) != (interval.start, interval.end):
            problems.append(f"chunk {c} was loaded for interval {r['interval_start']}..{r['interval_end']}")
    ledger_quarantined = sum(r["rows_quarantined"] for r in rows)
    if quarantined_rows is not None and quarantined_rows != ledger_quarantined:
        problems.append(
            f"sluice.quarantine holds {quarantined_rows} rows of this generation, the ledger {ledger_quarantined}"
        )
    return problems


def format_table(rows: list[dict]) -> str:
    """The per-chunk counts and timings as an aligned text table with a total line, for the task log."""
    cols = ("chunk", *COUNTS, *TIMINGS)
    body = [[str(r[c]) for c in cols] for r in rows]
    body.append(
        [
            "total",
            *(str(sum(r[c] for r in rows)) for c in COUNTS),
            *(f"{sum(r[c] for r in rows):.2f}" for c in TIMINGS),
        ]
    )
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols)]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in [list(cols), *body])


_READY: set[tuple[str, str]] = set()


def new_generation(dsn: str) -> int:
    """A new load generation: every extraction of an interval gets one (sluice.load_run_seq), so a cleared run, a
    backfill with reprocessing or a re-run loads the current source instead of colliding with an earlier load."""
    import psycopg

    ensure_metadata(dsn, q.META)
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(q.scalar(conn.execute(q.next_run_no())))


def ensure_metadata(dsn: str, schema: str) -> None:
    """Create the sluice.* bookkeeping tables and the target schema once, in a short transaction of its own under
    a global DDL lock (never inside a load, which would hold that lock for the whole load)."""
    import psycopg

    if (dsn, schema) in _READY:
        return
    for attempt in range(3):
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                if not q.scalar(conn.execute(q.metadata_present(), {"schema": schema})):
                    with conn.transaction():
                        conn.execute(q.advisory_lock(), {"key": "sluice.ddl"})
                        for stmt in (
                            q.create_schema(q.META),
                            q.create_ledger(),
                            q.create_ledger_interval_index(),
                            q.create_run_seq(),
                            q.create_run_summary(),
                            q.create_run_summary_interval_index(),
                            *q.migrate_ledger(),
                            *q.create_run_summary_indexes(),
                            q.create_schema_changes(),
                            q.create_interval_stats(),
                            q.create_freshness_state(),
                            q.create_schema(schema),
                        ):
                            conn.execute(stmt)
            break
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
            if attempt == 2:  # someone else (e.g. validation creating sluice.quarantine) raced us three times
                raise
    _READY.add((dsn, schema))
