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
# Prometheus scrapes `python -m sluice metrics` in the local stack. Installed as root; optional for another user
# (the stack then runs without it and says so).
optional=()
[ -x /usr/bin/prometheus ] || optional+=(prometheus)
if [ "$(id -u)" = 0 ]; then missing+=("${optional[@]}"); optional=(); fi

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
if [ ${#optional[@]} -gt 0 ]; then
  echo "[install] optional and missing: ${optional[*]} (the stack runs without Prometheus; to add it:" \
       "sudo apt-get install -y ${optional[*]})" >&2
fi

# Python environment: the venv first, then uv inside it (or a uv already on PATH). Never `pip install --user`
# into the system Python (Debian and Ubuntu mark it externally managed, PEP 668).
PY=${SLUICE_PYTHON:-python3}
MIN_PY=3.11.2   # the oldest Python the lock (constraints.txt, `make lock`) is resolved for
command -v "$PY" >/dev/null || { echo "Sluice needs Python >= $MIN_PY, but '$PY' was not found (set SLUICE_PYTHON)" >&2; exit 1; }
found=$("$PY" -c 'import platform; print(platform.python_version())')
if ! "$PY" -c "import sys; sys.exit(sys.version_info[:3] < tuple(map(int, '$MIN_PY'.split('.'))))"; then
  echo "Sluice needs Python >= $MIN_PY; found Python $found at $(command -v "$PY"). Set SLUICE_PYTHON to a newer one." >&2
  exit 1
fi
stamp=.venv/.sluice-installed
want=$(cat requirements.txt constraints.txt 2>/dev/null | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/airflow ]; then
  log "python environment up to date (.venv)"
  exit 0
fi
cons=(); [ -f constraints.txt ] && cons=(-c constraints.txt)
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with Python $found"
  if command -v uv >/dev/null; then uv venv -q -p "$PY" .venv
  else "$PY" -m venv .venv || { echo "could not create a venv with $PY: on Debian/Ubuntu install python3-venv" >&2; exit 1; }
  fi
fi
uv=$(command -v uv || true)
if [ -z "$uv" ]; then
  # a venv made by uv has no pip: bootstrap it from the standard library
  .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip >/dev/null 2>&1 || true
  [ -x .venv/bin/uv ] || { log "installing uv into .venv"; .venv/bin/python -m pip install -q "uv" "${cons[@]}" 2>/dev/null || true; }
  [ -x .venv/bin/uv ] && uv=.venv/bin/uv
fi
if [ -n "$uv" ]; then
  log "installing Python packages with uv ($uv)"
  "$uv" pip install -q -p .venv/bin/python -r requirements.txt "${cons[@]}"
else
  log "installing Python packages with pip (uv not available)"
  .venv/bin/python -m pip install -q -r requirements.txt "${cons[@]}"
fi
echo "$want" > "$stamp"
log "done: $(.venv/bin/airflow version 2>/dev/null | tail -n 1) in .venv (Python $found)"
