#!/usr/bin/env bash
# make bench: every benchmark against the running local stack (make up), each printing ratios measured in one run.
# Results land in bench/results/ (gitignored). Takes several minutes; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
home=${SLUICE_HOME:-.sluice}
set -a; source "$home/env"; set +a
mkdir -p bench/results
for b in bench/bench_e2e.py bench/bench_health.py bench/bench_parse.py bench/bench_load.py bench/bench_staging.py bench/bench_validation.py bench/bench_sources.py bench/bench_quarantine.py bench/bench_datadocs.py bench/bench_backfill_plan.py bench/bench_history.py; do
  [ -f "$b" ] || continue
  echo "=== $b"
  .venv/bin/python "$b" "$@"
done
