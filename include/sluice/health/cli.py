"""`python -m sluice metrics`: the Prometheus exporter of pipeline health (see sluice.health.metrics)."""

from __future__ import annotations

import argparse
import os

from sluice.cli import Command, register


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=os.environ.get("SLUICE_METRICS_HOST", "127.0.0.1"), help="address to bind")
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("SLUICE_METRICS_PORT", "18791")), help="port (/metrics)"
    )


def _run(args: argparse.Namespace) -> int:
    from sluice.health.metrics import serve

    print(f"sluice metrics: serving http://{args.host}:{args.port}/metrics", flush=True)
    serve(args.host, args.port)
    return 0


register(Command("metrics", "serve Prometheus metrics of pipeline health from the warehouse", _configure, _run))
