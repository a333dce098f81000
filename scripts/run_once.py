"""One run of a pipeline through the running stack's REST API, for one daily interval; exit 0 when it succeeds.

scripts/run_once.py PIPELINE YYYY-MM-DD      (with the stack's environment loaded: set -a; . .sluice/env)"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from sluice.airflow_api import AirflowApi


def main() -> int:
    name, day = sys.argv[1], datetime.fromisoformat(sys.argv[2]).replace(tzinfo=UTC)
    api = AirflowApi.from_env()
    api.wait_for_dag(name, timeout=300)
    api.unpause(name)
    conf = {"interval_start": day.isoformat(), "interval_end": (day + timedelta(days=1)).isoformat()}
    run_id = api.trigger(name, conf=conf)
    state = api.wait_for_run(name, run_id, timeout=600)
    print(f"[run_once] {name} {conf['interval_start']} -> {conf['interval_end']}: run {run_id} {state}", flush=True)
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
