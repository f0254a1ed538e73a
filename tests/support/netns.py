"""Two hosts on one machine: network namespaces on a private bridge (DESIGN.md §12).

Each host is a network namespace with its own loopback and one end of a veth
pair; the other ends hang on a bridge in the root namespace, which holds the
shared servers' address. So the hosts reach the shared servers (and each other)
only over the link, never over a loopback they share::

    host A 10.77.0.1 ─veth─┐
                            ├─ bridge 10.77.0.254 (PostgreSQL, Prefect, Bolt, Kafka in the root namespace)
    host B 10.77.0.2 ─veth─┘

Needs ``CAP_NET_ADMIN`` (root here). :func:`netns_available` says whether this
machine can; where it cannot, the callers fall back to two processes with
separate homes on loopback and say so in their output.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SUBNET = "10.77.0"
LOCK = Path(tempfile.gettempdir()) / "agentparty-netns.lock"
"""Held while hosts exist: every user of :func:`two_hosts` shares the subnet and the bridge's address, so two
test modules on two pytest-xdist workers (or two sessions) take turns instead of colliding."""
SERVICES_ADDRESS = f"{SUBNET}.254"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def netns_available() -> bool:
    """Whether network namespaces can be made here (the ``ip`` tool and the capability)."""
    if shutil.which("ip") is None:
        return False
    name = f"approbe{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True)
    if probe.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return True


@dataclass(frozen=True)
class Host:
    name: str
    """The namespace's name."""
    address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(argv), **kwargs)  # type: ignore[call-overload,no-any-return]

    def run(self, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(argv), capture_output=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


@contextlib.contextmanager
def two_hosts(tag: str | None = None) -> Iterator[tuple[Host, Host]]:
    """Hosts A and B on the bridge; everything made is removed on exit, whatever happened. One user at a time
    (:data:`LOCK`): what a killed session left under the same names is removed first."""
    tag = tag or str(os.getpid() % 100_000)
    bridge = f"apbr{tag}"[:15]
    hosts = (Host(f"apA{tag}", f"{SUBNET}.1"), Host(f"apB{tag}", f"{SUBNET}.2"))
    with LOCK.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        _remove_left_over()
        made: list[tuple[str, ...]] = []
        try:
            _ip("link", "add", bridge, "type", "bridge")
            made.append(("link", "del", bridge))
            _ip("addr", "add", f"{SERVICES_ADDRESS}/24", "dev", bridge)
            _ip("link", "set", bridge, "up")
            for i, host in enumerate(hosts):
                _attach(host, f"apv{tag}o{i}"[:15], f"apv{tag}i{i}"[:15], bridge, made)
            yield hosts
        finally:
            for args in reversed(made):
                subprocess.run(["ip", *args], capture_output=True)


def _attach(host: Host, outer: str, inner: str, bridge: str, made: list[tuple[str, ...]]) -> None:
    """The host's namespace, with one end of a veth pair in it and the other on the bridge; each step that made
    something adds its undo to ``made`` at once, so a failure part way is undone too."""
    _ip("netns", "add", host.name)
    made.append(("netns", "del", host.name))
    _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
    made.append(("link", "del", outer))
    _ip("link", "set", inner, "netns", host.name)
    _ip("link", "set", outer, "master", bridge)
    _ip("link", "set", outer, "up")
    _ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", inner)
    _ip("-n", host.name, "link", "set", inner, "up")
    _ip("-n", host.name, "link", "set", "lo", "up")


def _remove_left_over() -> None:
    """What killed sessions left (their ``finally`` never ran): every bridge and host namespace of ours, whatever
    its tag, since each holds the subnet; nobody else holds the lock, so none of them is in use."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout.splitlines()
    bridges = {line.split(": ")[1].split("@")[0] for line in links if ": apbr" in line}
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for namespace in (n for n in namespaces if n.startswith(("apA", "apB"))):
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
    for bridge in bridges:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
