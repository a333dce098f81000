"""What Data Docs (issue 11, item 5) add to a run, measured in one run on the running stack's warehouse:

validate_chunk of a 250,000-row chunk (two row-level expectations, one row in 1,000 quarantined) vs rendering the
run's Data Docs from that chunk's GX document (what the quality gate adds once per run), and from 4 such chunks.
Validation itself writes nothing more than before (the chunk's GX document already existed).

    .venv/bin/python bench/bench_datadocs.py [--rows 250000]

It writes to a temporary file:// staging directory and quarantine rows of pipeline bench_dd_*, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from sluice.config import PipelineConfig  # noqa: E402
from sluice.connections import pg_dsn  # noqa: E402
from sluice.interval import Interval  # noqa: E402

INTERVAL = Interval(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))


def _cfg(name: str, staging: str) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": name,
            "start_date": "2024-01-01",
            "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "x/", "format": "csv"},
            "staging": {"url": staging, "chunk_rows": 10_000_000},
            "target": {
                "schema": "bench_datadocs",
                "table": "t",
                "primary_key": ["id"],
                "columns": [
                    {"name": "id", "type": "bigint", "nullable": False},
                    {"name": "status", "type": "text"},
                    {"name": "price", "type": "numeric(10,2)"},
                ],
            },
            "expectations": [
                {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["paid"]}},
                {"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "min_value": 0}},
            ],
            "quality": {"max_quarantine_fraction": 1.0},
        }
    )


def main() -> int:
    from sluice.sources.base import with_origin
    from sluice.staging import StagingStore
    from sluice.steps import data_docs
    from sluice.validate.chunk import validate_chunk

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=250_000)
    p.add_argument("--conn-id", default="sluice_warehouse")
    args, _ = p.parse_known_args()  # make bench passes the same arguments to every benchmark
    n, dsn = args.rows, pg_dsn(args.conn_id)
    raw = pa.table(
        {
            "id": [str(i) for i in range(n)],
            "status": ["paid" if i % 1000 else "lost" for i in range(n)],
            "price": [f"{i % 1000}.25" for i in range(n)],
        }
    )
    raw = pa.Table.from_batches([with_origin(b, "s3://landing/x.csv", 2) for b in raw.to_batches()])
    name = f"bench_dd_{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _cfg(name, f"file://{tmp}")
        store = StagingStore(cfg.staging, name, INTERVAL, "run1", 1)
        ref = store.write_chunk(0, raw)
        validate_chunk(cfg, INTERVAL, "run1", {**ref, "generation": 1})  # warm: GX's context, imports
        t0 = time.perf_counter()
        report = validate_chunk(cfg, INTERVAL, "run1", {**ref, "generation": 1})
        validate_s = time.perf_counter() - t0
        data_docs(cfg, INTERVAL, "run1", 1, [report])  # warm: the renderer's templates
        t0 = time.perf_counter()
        data_docs(cfg, INTERVAL, "run1", 1, [report])
        one_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        data_docs(cfg, INTERVAL, "run1", 1, [report] * 4)
        four_s = time.perf_counter() - t0
        size = len(store.read_bytes(f"{store.url}/datadocs.html"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM sluice.quarantine WHERE pipeline = %s", (name,))
    print(
        f"validate_chunk of {n} rows: {validate_s:.2f} s; Data Docs of the run (once, in the gate): "
        f"{one_s:.2f} s from 1 chunk ({one_s / validate_s:.0%} of one chunk's validation), {four_s:.2f} s from 4 "
        f"chunks; page {size / 1024:.0f} KiB"
    )
    out = Path(__file__).parent / "results" / "bench_datadocs.json"
    out.parent.mkdir(exist_ok=True)
    result = {"rows": n, "validate_seconds": validate_s, "docs_1_chunk_seconds": one_s, "docs_4_chunks_seconds": four_s}
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
