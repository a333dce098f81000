"""A second "host" for e2e tests: a network namespace joined to this one by a veth pair, private addresses only.

The pair gets a /30 from 10.213.0.0/16 that no interface of this machine uses yet, so parallel runs (other
checkouts on the same machine) do not collide. Everything created here is removed by `remove()`, which the
test calls in a `finally`. Needs root and iproute2; `require()` fails the test with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PREFIX = "10.213"


def run(*cmd: str) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def require() -> None:
    """Fail (never skip) when this machine cannot make a namespace, with what is missing."""
    if os.geteuid() != 0:
        pytest.fail(f"creating a network namespace needs root (running as uid {os.geteuid()})", pytrace=False)
    if not shutil.which("ip") or not shutil.which("unshare"):
        pytest.fail("`ip` (iproute2) and `unshare` (util-linux) are needed: apt-get install iproute2", pytrace=False)


@dataclass
class Host:
    """The namespace `name`, reached at `address`; this host is `gateway` on the other end of the pair."""

    name: str
    veth: str
    gateway: str
    address: str

    @classmethod
    def create(cls, seed: int) -> Host:
        used = run("ip", "-o", "-4", "addr", "show")
        third = next(
            n for n in ((seed + i) % 250 + 1 for i in range(250)) if f" {PREFIX}.{n}." not in used
        )  # a subnet no interface of this machine has
        tag = f"{os.getpid() % 100000}"
        host = cls(f"sluice-h{tag}", f"slh{tag}", f"{PREFIX}.{third}.1", f"{PREFIX}.{third}.2")
        peer = f"sln{tag}"
        run("ip", "netns", "add", host.name)
        try:
            run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", peer)
            run("ip", "link", "set", peer, "netns", host.name)
            run("ip", "addr", "add", f"{host.gateway}/30", "dev", host.veth)
            run("ip", "link", "set", host.veth, "up")
            host.exec("ip", "addr", "add", f"{host.address}/30", "dev", peer)
            host.exec("ip", "link", "set", peer, "up")
            host.exec("ip", "link", "set", "lo", "up")
        except Exception:
            host.remove()
            raise
        return host

    def exec(self, *cmd: str) -> str:
        return run("ip", "netns", "exec", self.name, *cmd)

    def command(self, hidden: list[str], keep: str, *cmd: str) -> list[str]:
        """`cmd` inside the namespace, in a mount namespace of its own where a fresh tmpfs covers /tmp and every
        path in `hidden` (this host's stack home): the other host sees the code checkout `keep` and nothing of ours.
        A checkout under /tmp (a CI clone) is carried over the new /tmp: bound aside on a private tmpfs at /mnt
        first, then moved back to its path (the hidden paths inside it stay covered)."""
        hide = [f'mount -t tmpfs -o mode=1777 tmpfs "{p}"' for p in hidden]
        under_tmp = Path(keep).resolve().is_relative_to("/tmp")
        aside = ["mkdir -p /mnt", "mount -t tmpfs tmpfs /mnt", "mkdir /mnt/keep", f'mount --rbind "{keep}" /mnt/keep']
        back = [f'mkdir -p "{keep}"', f'mount --move /mnt/keep "{keep}"']
        steps = [*hide, *(aside if under_tmp else []), "mount -t tmpfs -o mode=1777 tmpfs /tmp"]
        steps += back if under_tmp else []
        script = f'{" && ".join(steps)} && mkdir -p "$AIRFLOW_HOME" "$TMPDIR" "$HOME" && exec "$@"'
        return ["ip", "netns", "exec", self.name, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                script, "remote-host", *cmd]  # fmt: skip

    def remove(self) -> None:
        """Stop whatever still runs in the namespace (only processes we started there), then delete it and the pair."""
        listed = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout
        for pid in (int(p) for p in listed.split()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)  # gone with the namespace, normally
