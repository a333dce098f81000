"""`python -m sluice breakers`: the circuit breakers of the sources (sources/breaker.py), as Redis holds them."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from sluice.cli import Command, register


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the states as JSON (with the last events)")
    p.add_argument("--reset", metavar="CONN_ID", help="forget this connection's breaker (after fixing the source)")


def _run(args: argparse.Namespace) -> int:
    from sluice.sources import breaker

    if args.reset:
        breaker.reset(args.reset)
        print(f"circuit breaker of {args.reset} reset")
        return 0
    states = breaker.states()
    if args.json:
        print(json.dumps([asdict(s) for s in states], indent=2))
        return 0
    if not states:
        print("no circuit breaker has seen a request")
    for s in states:
        last = s.events[0]["reason"] if s.events else "-"
        print(
            f"{s.conn_id:<30} {s.state:<9} opened {s.opened}x, {s.probes} probes, {s.failures} failures; last: {last}"
        )
    return 0


register(Command("breakers", "show (or reset) the sources' circuit breakers, shared through Redis", _configure, _run))
