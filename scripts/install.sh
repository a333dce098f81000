#!/usr/bin/env bash
# Installs what Sluice needs on a Debian/Ubuntu machine, idempotently:
#   system packages (PostgreSQL server binaries, Redis, Chromium for the UI tests) when missing,
#   and the Python environment in .venv from requirements.txt, pinned by constraints.txt.
# As root it uses apt-get; as another user it says what to install and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install] %s\n' "$*"; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

missing=()
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/postgres" ] || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ "${SLUICE_SKIP_BROWSER:-0}" != 1 ]; then command -v chromium >/dev/null || missing+=(chromium); fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing system packages: ${missing[*]}"
    # Never let the package create or start the system-wide PostgreSQL cluster or Redis service:
    # Sluice runs private instances under its own folder.
    mkdir -p /etc/postgresql-common
    grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf \
      || echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
    policy=/usr/sbin/policy-rc.d
    had_policy=0; [ -e "$policy" ] && had_policy=1
    [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ $had_policy = 1 ] || rm -f "$policy"
  else
    echo "Sluice needs these system packages, which are missing: ${missing[*]}" >&2
    echo "Install them as root, for example:  sudo apt-get install -y ${missing[*]}" >&2
    echo "(Sluice starts its own private PostgreSQL and Redis; the system services may stay stopped.)" >&2
    exit 1
  fi
fi

# Python environment. uv when available (fast), pip otherwise.
PY=${SLUICE_PYTHON:-python3}
stamp=.venv/.sluice-installed
want=$(cat requirements.txt constraints.txt 2>/dev/null | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/airflow ]; then
  log "python environment up to date (.venv)"
  exit 0
fi
if ! command -v uv >/dev/null; then
  "$PY" -m pip install -q --user uv 2>/dev/null || "$PY" -m pip install -q uv 2>/dev/null || true
  export PATH="$HOME/.local/bin:$PATH"
fi
cons=(); [ -f constraints.txt ] && cons=(-c constraints.txt)
if command -v uv >/dev/null; then
  log "installing Python packages with uv"
  [ -x .venv/bin/python ] || uv venv -q -p "$PY" .venv
  uv pip install -q -p .venv/bin/python -r requirements.txt "${cons[@]}"
else
  log "installing Python packages with pip (uv not available)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q -r requirements.txt "${cons[@]}"
fi
echo "$want" > "$stamp"
log "done: $(.venv/bin/airflow version 2>/dev/null | tail -n 1) in .venv"
