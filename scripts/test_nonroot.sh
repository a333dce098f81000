#!/usr/bin/env bash
# make test-nonroot: the README's set-up as a new unprivileged user would do it (issue 15). Run as root (CI is).
#   a fresh user -> clone of this repository (HEAD) in its home -> `make install` with the system /usr/bin/python3
#   -> `make up` -> one run of the api_customers pipeline through the scheduler and the Celery workers -> `make down`
#   -> nothing of that user is left running; then the user is removed.
# Its own ports (SLUICE_NONROOT_*_PORT, 4xxxx), distinct from the dev stack (1xxxx) and the test stack (2xxxx).
# Every step is bounded by a timeout. uv and pip caches persist in $SLUICE_NONROOT_CACHE so repeated runs are warm.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
USER_NAME=${SLUICE_NONROOT_USER:-sluice-nonroot}
PYTHON=${SLUICE_NONROOT_PYTHON:-/usr/bin/python3}
CACHE=${SLUICE_NONROOT_CACHE:-/var/cache/sluice-nonroot}
PIPELINE=api_customers
t_start=$(date +%s)

log() { printf '[test-nonroot %3ss] %s\n' "$(( $(date +%s) - t_start ))" "$*"; }
fail() { log "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (it creates the user $USER_NAME); CI runs as root"
[ -x "$PYTHON" ] || fail "no system Python at $PYTHON"
command -v useradd >/dev/null || fail "useradd not found: cannot create the user $USER_NAME"
command -v runuser >/dev/null || fail "runuser not found (util-linux): cannot run commands as $USER_NAME"

user_pids() { ps -u "$USER_NAME" -o pid= 2>/dev/null | tr -d ' ' || true; }

remove_user() {
  id "$USER_NAME" >/dev/null 2>&1 || return 0
  local pids; pids=$(user_pids)
  # Only this test's own throw-away user's processes, by pid.
  [ -n "$pids" ] && { kill $pids 2>/dev/null; sleep 2; pids=$(user_pids); [ -n "$pids" ] && kill -9 $pids 2>/dev/null; }
  userdel -r "$USER_NAME" >/dev/null 2>&1 || userdel "$USER_NAME" >/dev/null 2>&1 || true
}

remove_user  # a previous run that was killed may have left it
useradd -m -s /bin/bash "$USER_NAME" 2> /tmp/sluice-useradd.err \
  || fail "cannot create the user $USER_NAME: $(cat /tmp/sluice-useradd.err)"
HOME_DIR=$(getent passwd "$USER_NAME" | cut -d: -f6)
[ -d "$HOME_DIR" ] || fail "user $USER_NAME has no home directory ($HOME_DIR)"
mkdir -p "$CACHE/uv" "$CACHE/pip" && chown -R "$USER_NAME:" "$CACHE" || fail "cannot prepare the cache $CACHE"

# Ports of this stack, away from the dev stack's and the test stack's.
PORT_ENV=(
  SLUICE_PG_PORT=${SLUICE_NONROOT_PG_PORT:-45432} SLUICE_REDIS_PORT=${SLUICE_NONROOT_REDIS_PORT:-46379}
  SLUICE_S3_PORT=${SLUICE_NONROOT_S3_PORT:-45000} SLUICE_API_PORT=${SLUICE_NONROOT_API_PORT:-48080}
  SLUICE_DEMO_API_PORT=${SLUICE_NONROOT_DEMO_API_PORT:-48765} SLUICE_WEBHOOK_PORT=${SLUICE_NONROOT_WEBHOOK_PORT:-48090}
  SLUICE_WORKER_LOG_PORT=${SLUICE_NONROOT_WORKER_LOG_PORT:-48793} SLUICE_METRICS_PORT=${SLUICE_NONROOT_METRICS_PORT:-48791}
  SLUICE_PROMETHEUS_PORT=${SLUICE_NONROOT_PROMETHEUS_PORT:-49090} SLUICE_FLOWER_PORT=${SLUICE_NONROOT_FLOWER_PORT:-45555}
)
# The machine's network settings (proxies, CA bundles, pip/uv index options) pass through, nothing else of root's.
NET_ENV=()
while IFS= read -r name; do NET_ENV+=("$name=${!name}"); done < <(compgen -e | grep -Ei \
  '^((https?|no|all)_proxy|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|PIP_[A-Z_]+|UV_[A-Z_]+)$' \
  | grep -Ev '^(UV_CACHE_DIR|PIP_CACHE_DIR|UV_PYTHON.*|PIP_USER|PIP_TARGET|PIP_PREFIX)$')
# A clean login-like environment: no root PATH (so no uv or pyenv of root's), the system Python.
as_user() {
  local limit=$1; shift
  timeout --kill-after=30 "$limit" runuser -u "$USER_NAME" -- env -i HOME="$HOME_DIR" USER="$USER_NAME" \
    LOGNAME="$USER_NAME" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "${NET_ENV[@]}" SLUICE_PYTHON="$PYTHON" \
    UV_CACHE_DIR="$CACHE/uv" PIP_CACHE_DIR="$CACHE/pip" UV_LINK_MODE=copy "${PORT_ENV[@]}" \
    bash -c "cd '$HOME_DIR/sluice' && $*"
}

cleanup() {
  local rc=$?
  if id "$USER_NAME" >/dev/null 2>&1 && [ -x "$HOME_DIR/sluice/.venv/bin/python" ] && [ -z "${DOWN_DONE:-}" ]; then
    as_user 300 make down >/dev/null 2>&1 || true
  fi
  remove_user
  exit $rc
}
trap cleanup EXIT

log "user $USER_NAME created ($(id "$USER_NAME")); $($PYTHON --version) at $PYTHON"
runuser -u "$USER_NAME" -- git clone -q "$REPO" "$HOME_DIR/sluice" 2>/dev/null \
  || { git clone -q "$REPO" "$HOME_DIR/sluice" && chown -R "$USER_NAME:" "$HOME_DIR/sluice"; } \
  || fail "cannot clone $REPO into $HOME_DIR/sluice"
head=$(git -C "$REPO" rev-parse HEAD)
runuser -u "$USER_NAME" -- git -C "$HOME_DIR/sluice" -c advice.detachedHead=false checkout -q "$head" \
  || fail "cannot check out $head in the clone"
log "cloned $head into $HOME_DIR/sluice"

t0=$(date +%s)
as_user 1200 make install || fail "make install as $USER_NAME (exit $?)"
t_install=$(( $(date +%s) - t0 ))
owner=$(stat -c %U "$HOME_DIR/sluice/.venv/bin/python")
[ "$owner" = "$USER_NAME" ] || fail "the venv belongs to $owner, not $USER_NAME"
log "make install: ${t_install}s"

t0=$(date +%s)
as_user 900 make up || fail "make up as $USER_NAME (exit $?)"
t_up=$(( $(date +%s) - t0 ))
log "make up: ${t_up}s"

t0=$(date +%s)
as_user 900 "set -a; . .sluice/env; set +a; PYTHONPATH=include .venv/bin/python scripts/run_once.py $PIPELINE 2024-01-02" \
  || fail "one run of $PIPELINE as $USER_NAME did not succeed"
t_run=$(( $(date +%s) - t0 ))
log "one run of $PIPELINE: ${t_run}s"

as_user 300 make down || fail "make down as $USER_NAME (exit $?)"
DOWN_DONE=1
sleep 2
left=$(ps -u "$USER_NAME" -o pid=,args= 2>/dev/null || true)
[ -z "$left" ] || fail "processes of $USER_NAME left running after make down:
$left"
log "make down left nothing running"
log "PASSED: install ${t_install}s, up ${t_up}s, one run ${t_run}s, total $(( $(date +%s) - t_start ))s"
