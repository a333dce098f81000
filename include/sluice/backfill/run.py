"""`backfill run`: re-process the intervals a backfill plan selects, through Airflow's REST API (POST /backfills).

An Airflow backfill takes a contiguous range of logical dates and a reprocess behaviour, and only one backfill per
DAG may run at a time. A selection such as "missing, failed, changed" is rarely contiguous, so it becomes one backfill
per maximal run of consecutive selected intervals, created one after another, each waited for before the next.
Inside a segment every interval is selected, so each backfill uses `reprocess_behavior: completed`, which (re)runs
every interval of its range whatever Airflow remembers of it: a missing interval gets a new run, a failed or changed
one is cleared and re-run under its run_id (a new load generation, so the current source is loaded). An unselected
interval is never inside a range, so it is never re-run. Runs Airflow considers in flight are left alone by Airflow.

The cap on concurrent runs is the backfill's `max_active_runs`; the shared cap per source connection is the Airflow
pool `sluice_source__<conn_id>` (sluice.pools), created here when missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sluice.backfill.plan import IntervalState
from sluice.interval import _utc

if TYPE_CHECKING:
    from sluice.airflow_api import AirflowApi
    from sluice.config import PipelineConfig

POLL_SECONDS = 2.0
TERMINAL = ("success", "failed")


class BackfillError(RuntimeError):
    """The backfill cannot be created or followed; the message says what to do."""


@dataclass
class Segment:
    intervals: list[IntervalState]

    def body(self, dag_id: str, max_active_runs: int) -> dict[str, Any]:
        return {
            "dag_id": dag_id,
            "from_date": self.intervals[0].interval.start.isoformat(),
            "to_date": self.intervals[-1].interval.start.isoformat(),
            "reprocess_behavior": "completed",
            "max_active_runs": max_active_runs,
            "run_backwards": False,
        }


def segments(states: list[IntervalState], only: set[str]) -> list[Segment]:
    """Maximal runs of consecutive selected intervals (consecutive in the schedule), in order."""
    out: list[Segment] = []
    current: list[IntervalState] = []
    for s in states:
        if s.selected_by(only):
            current.append(s)
        elif current:
            out.append(Segment(current))
            current = []
    if current:
        out.append(Segment(current))
    return out


def _unreachable(api: AirflowApi, exc: Exception) -> BackfillError:
    return BackfillError(
        f"Airflow's API at {api.base_url} is not reachable ({type(exc).__name__}: {str(exc)[:200]}). Start the stack "
        "(`make up`), or point SLUICE_API_URL (and SLUICE_HOME or SLUICE_ADMIN_PASSWORD) at your api-server."
    )


def preflight(api: AirflowApi, dag_id: str) -> dict:
    """The DAG as Airflow has it; BackfillError when the API is unreachable, the DAG unknown or paused, or a backfill
    of it is still running."""
    import requests

    from sluice.airflow_api import AirflowApiError

    try:
        dag = api.request("GET", f"/dags/{dag_id}")
        running = [
            b for b in api.request("GET", "/backfills", params={"dag_id": dag_id})["backfills"] if not b["completed_at"]
        ]
    except requests.RequestException as exc:
        raise _unreachable(api, exc) from exc
    except AirflowApiError as exc:
        if exc.status == 404:
            raise BackfillError(
                f"Airflow has no DAG {dag_id}: check the import errors (`python -m sluice lint`)"
            ) from exc
        raise BackfillError(f"Airflow's API refused the request: {exc}") from exc
    if running:
        b = running[0]
        raise BackfillError(
            f"backfill {b['id']} of {dag_id} ({b['from_date'][:10]} .. {b['to_date'][:10]}, created "
            f"{b['created_at'][:19]}) is still running, and Airflow runs one backfill per DAG at a time. Wait for it"
            f" to finish (the UI's Backfills tab), or cancel it: the UI's Cancel button, or `PUT "
            f"{api.base_url}/api/v2/backfills/{b['id']}/cancel` with a token; then run this again."
        )
    if dag.get("is_paused"):
        raise BackfillError(
            f"DAG {dag_id} is paused, so a backfill would create runs that never start. Unpause it first: "
            f"`scripts/airflow.sh dags unpause {dag_id}` (or the toggle in the UI), then run this again."
        )
    return dag


def ensure_pool(api: AirflowApi, name: str, slots: int) -> str:
    """Create the source connection's pool when it is missing; returns what happened."""
    from sluice.airflow_api import AirflowApiError

    try:
        pool = api.request("GET", f"/pools/{name}")
        return f"pool {name}: exists, {pool['slots']} slot(s)"
    except AirflowApiError as exc:
        if exc.status != 404:
            raise
    api.request(
        "POST",
        "/pools",
        json={
            "name": name,
            "slots": slots,
            "description": "Sluice: shared cap on tasks reading this source connection",
        },
    )
    return f"pool {name}: created with {slots} slot(s)"


class Progress:
    """Intervals done / total and rows loaded: a rich progress bar on a terminal, a line per change otherwise."""

    def __init__(self, total: int, echo: Callable[[str], None], tty: bool = False):
        self.total, self.echo = total, echo
        self.last: tuple[int, int, int] | None = None
        self.bar = None
        if tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("backfill"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
            )
            self.bar.start()
            self.task = self.bar.add_task("", total=total)

    def update(self, done: int, failed: int, rows: int) -> None:
        text = f"{rows} rows loaded" + (f", {failed} failed" if failed else "")
        if self.bar is not None:
            self.bar.update(self.task, completed=done, description=text)
        elif (done, failed, rows) != self.last:
            self.echo(f"progress: {done}/{self.total} intervals done, {text}")
        self.last = (done, failed, rows)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _runs(api: AirflowApi, dag_id: str, seg: Segment) -> list[dict]:
    params = {
        "logical_date_gte": seg.intervals[0].interval.start.isoformat(),
        "logical_date_lte": seg.intervals[-1].interval.start.isoformat(),
        "limit": 100,
    }
    runs, offset = [], 0
    while True:
        page = api.request("GET", f"/dags/{dag_id}/dagRuns", params={**params, "offset": offset})["dag_runs"]
        runs += page
        offset += len(page)
        if len(page) < 100:
            return runs


def _loaded(dsn: str, pipeline: str, generation: int) -> tuple[int, int]:
    import psycopg

    from sluice.loading import sql as q

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        n, rows = q.one_row(conn.execute(q.loaded_since(), {"pipeline": pipeline, "generation": generation}))
    return int(n), int(rows)


def _last_generation(dsn: str) -> int:
    import psycopg

    from sluice.loading import sql as q

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        if not q.scalar(conn.execute("SELECT to_regclass('sluice.load_run_seq') IS NOT NULL")):
            return 0
        return int(q.scalar(conn.execute(q.last_generation())))


def run_segments(
    api: AirflowApi,
    cfg: PipelineConfig,
    segs: list[Segment],
    max_active_runs: int,
    dsn: str,
    echo: Callable[[str], None] = print,
    tty: bool = False,
    timeout: float = 6 * 3600,
) -> tuple[int, int, list[str]]:
    """Create and follow one backfill per segment, one after another; returns (intervals done, rows loaded, failed
    intervals). Raises BackfillError when Airflow refuses a backfill."""
    from sluice.airflow_api import AirflowApiError

    total = sum(len(s.intervals) for s in segs)
    since = _last_generation(dsn)
    progress = Progress(total, echo, tty)
    finished: dict[str, str] = {}  # logical date -> terminal state, over every segment
    rows = 0
    try:
        for seg in segs:
            try:
                backfill = api.request("POST", "/backfills", json=seg.body(cfg.name, max_active_runs))
            except AirflowApiError as exc:
                if exc.status == 409:
                    raise BackfillError(f"{exc}. Wait for the running backfill to finish, or cancel it.") from exc
                raise BackfillError(
                    f"Airflow refused the backfill {seg.body(cfg.name, max_active_runs)}: {exc}"
                ) from exc
            wanted = {s.interval.start for s in seg.intervals}
            deadline = time.monotonic() + timeout
            while True:
                b = api.request("GET", f"/backfills/{backfill['id']}")
                runs = [r for r in _runs(api, cfg.name, seg) if r.get("logical_date")]
                for r in runs:
                    if _utc(r["logical_date"]) in wanted and r["state"] in TERMINAL:
                        finished[r["logical_date"]] = r["state"]
                _, rows = _loaded(dsn, cfg.name, since)
                progress.update(len(finished), sum(v == "failed" for v in finished.values()), rows)
                if b["completed_at"] and all(r["state"] in TERMINAL for r in runs if _utc(r["logical_date"]) in wanted):
                    break
                if time.monotonic() > deadline:
                    raise BackfillError(f"backfill {backfill['id']} still running after {timeout:.0f}s")
                time.sleep(POLL_SECONDS)
    finally:
        progress.close()
    failed = sorted(k for k, v in finished.items() if v == "failed")
    return len(finished), rows, failed
