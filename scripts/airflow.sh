#!/usr/bin/env bash
# The airflow CLI wired to the local stack (same env file the components use): scripts/airflow.sh dags list
set -euo pipefail
cd "$(dirname "$0")/.."
home=${SLUICE_HOME:-.sluice}
[ -f "$home/env" ] || { echo "no stack environment in $home: run 'make up' first" >&2; exit 1; }
set -a; source "$home/env"; set +a
exec .venv/bin/airflow "$@"
