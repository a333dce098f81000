"""`python -m sluice quarantine list|show|export|discard|replay`: find, read, give up on or replay quarantined rows.

The warehouse connection is read as tasks read it: the pipeline's `target.conn_id` (an Airflow connection, from any
secrets backend or an AIRFLOW_CONN_* variable), else `--conn-id` (default sluice_warehouse). Exit codes: 0 done;
1 an error or nothing matched (discard); 3 replay left rows pending because they still fail.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.cli import Command, register

EXIT_STILL_FAILING = 3
STATUSES = ("pending", "superseded", "replayed", "discarded")


def _when(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _interval(text: str) -> tuple[datetime, datetime]:
    start, sep, end = text.partition("/")
    if not sep:
        raise argparse.ArgumentTypeError(f"--interval {text!r}: write START/END, e.g. 2024-03-01/2024-03-02")
    return _when(start), _when(end)


def _filters(p: argparse.ArgumentParser, status: bool = True) -> None:
    p.add_argument("--pipeline", help="only this pipeline")
    p.add_argument("--since", type=_when, help="only intervals starting at or after this date/time (UTC)")
    p.add_argument("--interval", type=_interval, help="only intervals within START/END (UTC)")
    p.add_argument("--reason", help="only rows with a reason containing this text (case-insensitive)")
    if status:
        p.add_argument("--status", choices=STATUSES, help="only rows with this status")
    p.add_argument("--conn-id", default="sluice_warehouse", help="warehouse connection without --pipeline")


def _params(args: argparse.Namespace, status: str | None = None) -> dict[str, Any]:
    since, until = args.interval or (args.since, None)
    return {
        "pipeline": args.pipeline,
        "status": status if status is not None else getattr(args, "status", None),
        "since": since,
        "until": until,
        "reason": args.reason,
    }


def _config(name: str):
    from sluice.config import load_all, pipelines_dirs
    from sluice.config.errors import suggest

    found: dict[str, Any] = {}
    for directory in pipelines_dirs():
        found.update(load_all(directory).pipelines)
    if name not in found:
        hint = suggest(name, list(found))
        raise SystemExit(f"sluice quarantine: no pipeline {name!r} in {', '.join(map(str, pipelines_dirs()))}. {hint}")
    return found[name]


def _dsn(args: argparse.Namespace) -> str:
    from sluice.connections import pg_dsn

    return pg_dsn(_config(args.pipeline).target.conn_id if args.pipeline else args.conn_id)


def _connect(args: argparse.Namespace):
    import psycopg

    from sluice.loading.sql import quarantine as qs
    from sluice.loading.sql.results import scalar

    conn = psycopg.connect(_dsn(args), autocommit=True)
    if not scalar(conn.execute(qs.quarantine_exists())):
        conn.close()
        return None
    from sluice.validate.quarantine import ensure_quarantine_table

    ensure_quarantine_table(conn)  # a table of an older shape is migrated before it is read
    return conn


def _table(header: list[str], rows: list[list[Any]]) -> str:
    body = [[("" if v is None else str(v)) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body]
    )


# ---------------------------------------------------------------- list, show, export, discard


def run_list(args: argparse.Namespace) -> int:
    from sluice.loading.sql import quarantine as qs

    conn = _connect(args)
    if conn is not None:
        from sluice.validate.quarantine import compact_counts

        compact_counts(conn)
    rows = [] if conn is None else conn.execute(qs.quarantine_list(), _params(args)).fetchall()
    if not rows:
        print("no quarantined rows match")
        return 0
    print(
        _table(
            ["pipeline", "interval", "status", "rows", "reason"],
            [[p, f"{s:%Y-%m-%dT%H:%M}/{e:%Y-%m-%dT%H:%M}", st, n, r] for p, s, e, st, r, n in rows],
        )
    )
    print(f"{sum(r[5] for r in rows)} row(s) in {len({(r[0], r[1]) for r in rows})} interval(s)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from psycopg.rows import dict_row

    from sluice.loading.sql import quarantine as qs

    conn = _connect(args)
    row = None if conn is None else conn.cursor(row_factory=dict_row).execute(qs.quarantine_show(), {"id": args.id})
    row = row.fetchone() if row is not None else None
    if row is None:
        print(f"sluice quarantine: no quarantined row with id {args.id}", file=sys.stderr)
        return 1
    print(json.dumps({**row, "data_docs": _docs_link(row)}, indent=2, default=str, ensure_ascii=False))
    return 0


def _docs_link(row: dict[str, Any]) -> str | None:
    """The Data Docs of the run that quarantined the row (a replay's rows have none: it runs no GX suite)."""
    from sluice.interval import Interval
    from sluice.validate.docs import docs_url

    return docs_url(row["pipeline"], Interval(row["interval_start"], row["interval_end"]), row["run_id"])


def run_export(args: argparse.Namespace) -> int:
    import pyarrow as pa
    from psycopg.rows import dict_row

    from sluice.loading.sql import quarantine as qs

    conn = _connect(args)
    rows = [] if conn is None else conn.cursor(row_factory=dict_row).execute(qs.quarantine_rows(), _params(args))
    rows = [{**r, "row": json.dumps(r["row"]), "reasons": json.dumps(r["reasons"])} for r in rows]
    if args.format == "jsonl":
        text = "".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in rows)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    else:
        sink = str(args.output) if args.output else sys.stdout.buffer
        table = pa.Table.from_pylist(rows) if rows else pa.table({c: pa.array([], pa.string()) for c in qs.ROW_COLUMNS})
        if args.format == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, sink)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, sink)
    print(f"exported {len(rows)} row(s)", file=sys.stderr)
    return 0


def run_discard(args: argparse.Namespace) -> int:
    import getpass

    from sluice.loading.sql import quarantine as qs

    conn = _connect(args)
    params = {**_params(args, status="pending"), "by": args.by or getpass.getuser(), "note": args.note}
    ids = [] if conn is None else conn.execute(qs.quarantine_discard(), params).fetchall()
    if not ids:
        print(
            f"sluice quarantine discard: no pending row of pipeline {args.pipeline!r} matches reason {args.reason!r}; "
            "nothing discarded (see `python -m sluice quarantine list --status pending`)",
            file=sys.stderr,
        )
        return 1
    print(f"discarded {len(ids)} row(s) of {args.pipeline}: {args.note}")
    return 0


# ---------------------------------------------------------------- replay


def run_replay(args: argparse.Namespace) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships no types; types-tqdm is not in the lock

    from sluice.validate.replay import replay

    cfg = _config(args.pipeline)
    result = replay(
        cfg,
        _dsn(args),
        _params(args, status="pending"),
        dry_run=args.dry_run,
        progress=lambda groups: tqdm(groups, desc="replay", unit="interval", disable=None, file=sys.stderr),
    )
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
    else:
        verb = "would load" if result.dry_run else "loaded"
        print(
            f"replay of {cfg.name}{' (dry run)' if result.dry_run else ''}: {result.selected} pending row(s), "
            f"{result.passing} now pass ({verb} {result.passing if result.dry_run else result.loaded}), "
            f"{result.still_failing} still fail and stay pending"
            + (f"; run {result.run_id}, generation {result.generation}" if result.run_id else "")
        )
        for reason, n in sorted(result.failing_reasons.items()):
            print(f"  still failing: {n} x {reason}")
    return EXIT_STILL_FAILING if result.still_failing else 0


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = sub.add_parser("list", help="counts by pipeline, interval, status and reason")
    _filters(lst)
    lst.set_defaults(handler=run_list)
    show = sub.add_parser("show", help="one quarantined row in full: provenance, raw values, reasons, status")
    show.add_argument("id", type=int)
    show.add_argument("--conn-id", default="sluice_warehouse")
    show.add_argument("--pipeline", help=argparse.SUPPRESS)
    show.set_defaults(handler=run_show)
    exp = sub.add_parser("export", help="the matching rows as csv, parquet or jsonl")
    _filters(exp)
    exp.add_argument("--format", choices=("csv", "parquet", "jsonl"), required=True)
    exp.add_argument("-o", "--output", help="file to write (default: stdout)")
    exp.set_defaults(handler=run_export)
    dis = sub.add_parser("discard", help="give up on the pending rows that match (status discarded, who and why)")
    _filters(dis, status=False)
    dis.add_argument("--note", required=True, help="why (kept on every discarded row)")
    dis.add_argument("--by", help="who (default: the OS user)")
    dis.set_defaults(handler=run_discard)
    rep = sub.add_parser("replay", help="re-validate pending rows with the current config and load those that pass")
    _filters(rep, status=False)
    rep.add_argument("--dry-run", action="store_true", help="validate and count, load nothing")
    rep.add_argument("--json", action="store_true", help="print the result as one JSON object")
    rep.set_defaults(handler=run_replay)
    for action in (dis, rep):
        action.set_defaults(_needs_pipeline=True)


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "_needs_pipeline", False) and not args.pipeline:
        print(f"sluice quarantine {args.action}: --pipeline is required", file=sys.stderr)
        return 1
    return args.handler(args)


register(Command("quarantine", "list, show, export, discard or replay quarantined rows", _configure, _run))
