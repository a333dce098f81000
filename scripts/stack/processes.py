"""Processes the stack started: PID files, liveness, the sweep by the stack's mark, and stopping them.

psutil reads the process table; nothing here parses /proc or ps output. Only processes that are provably this
stack's (its mark in their environment, or a recorded PID whose command line names the stack) are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from .environment import STACK_MARK, Settings


def read_pid(path: Path) -> int | None:
    """The first line of a PID file (supervisord.pid, postmaster.pid) as a PID, or None."""
    try:
        first = path.read_text().splitlines()[:1]
    except OSError:
        return None
    return int(first[0]) if first and first[0].strip().isdigit() and int(first[0]) > 0 else None


def read_pids(path: Path) -> list[int]:
    """Every PID in a whitespace-separated file ($SLUICE_HOME/run/pids)."""
    try:
        return [int(x) for x in path.read_text().split() if x.isdigit()]
    except OSError:
        return []


def pid_alive(pid: int) -> bool:
    """Running and not a zombie (a zombie has exited; it only waits for its parent to reap it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def marked(settings: Settings) -> list[int]:
    """Processes that inherited this stack's mark (e.g. a scheduler child that outlived its parent's group)."""
    want, me = str(settings.home), os.getpid()
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(STACK_MARK) == want:
                found.append(proc.pid)
        except (psutil.Error, OSError):  # gone, a zombie, or not ours to read
            continue
    return found


def owned(settings: Settings, pid: int, repo: Path) -> bool:
    """Only touch a process whose command line mentions this stack's folder, the repo, or our ports."""
    try:
        cmd = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
    return str(settings.home) in cmd or str(repo) in cmd or any(str(p) in cmd for p in settings.ports.values())


def terminate(pids: Iterable[int], grace: float = 20) -> None:
    """SIGTERM each process (its whole group when it leads one, as supervisord's programs do), then SIGKILL
    whatever is still alive after `grace` seconds."""
    procs = []
    for pid in dict.fromkeys(pids):
        try:
            proc = psutil.Process(pid)
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGTERM)
            else:
                proc.terminate()
            procs.append(proc)
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    deadline = time.time() + grace
    while time.time() < deadline and any(pid_alive(p.pid) for p in procs):
        time.sleep(0.5)
    for proc in procs:
        if pid_alive(proc.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
