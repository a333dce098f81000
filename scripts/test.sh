#!/usr/bin/env bash
# make test: an isolated stack in .sluice-test on its own ports (never the dev stack), the whole suite, then down.
set -uo pipefail
cd "$(dirname "$0")/.."
export SLUICE_HOME="${SLUICE_TEST_HOME:-$PWD/.sluice-test}"  # SLUICE_TEST_HOME: a second test stack beside the first
export SLUICE_PG_PORT=${SLUICE_TEST_PG_PORT:-25432} SLUICE_REDIS_PORT=${SLUICE_TEST_REDIS_PORT:-26379}
export SLUICE_S3_PORT=${SLUICE_TEST_S3_PORT:-25000} SLUICE_API_PORT=${SLUICE_TEST_API_PORT:-28080}
export SLUICE_DEMO_API_PORT=${SLUICE_TEST_DEMO_API_PORT:-28765} SLUICE_WEBHOOK_PORT=${SLUICE_TEST_WEBHOOK_PORT:-28090}
export SLUICE_WORKER_LOG_PORT=${SLUICE_TEST_WORKER_LOG_PORT:-28793} SLUICE_METRICS_PORT=${SLUICE_TEST_METRICS_PORT:-28791}
export SLUICE_PROMETHEUS_PORT=${SLUICE_TEST_PROMETHEUS_PORT:-29090} SLUICE_FLOWER_PORT=${SLUICE_TEST_FLOWER_PORT:-25555}
# every interface, so tests/e2e/test_remote_worker.py reaches it from its own network namespace (the services are
# password-protected; the moto S3 endpoint is a test double)
export SLUICE_BIND_ADDRESS=${SLUICE_TEST_BIND_ADDRESS:-0.0.0.0}
export SLUICE_DAG_PARSE_INTERVAL=${SLUICE_DAG_PARSE_INTERVAL:-10}  # the suite's own stack: quicker DAG updates
export SLUICE_FAILPOINTS=1  # tests hold tasks at named points (include/sluice/failpoints.py)
export SLUICE_PIPELINES_DIRS="$PWD/config/pipelines:$PWD/tests/e2e/pipelines"
# make test-faults adds its own pipelines (tests/faults/pipelines) with SLUICE_TEST_EXTRA_PIPELINES
[ -n "${SLUICE_TEST_EXTRA_PIPELINES:-}" ] && SLUICE_PIPELINES_DIRS="$SLUICE_PIPELINES_DIRS:$PWD/$SLUICE_TEST_EXTRA_PIPELINES"
PY=.venv/bin/python

$PY scripts/stack wipe >/dev/null 2>&1 || true
trap '$PY scripts/stack down' EXIT
$PY scripts/stack up || exit 1
set -a; source "$SLUICE_HOME/env"; set +a
$PY -m pytest -q -ra --durations=15 "$@"
