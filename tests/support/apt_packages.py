"""Debian packages a test setup installs when missing (DESIGN.md §5), as the UI tests install Chromium.

``apt-get update`` runs once per machine state (skipped while package lists
are present), then ``apt-get install -y``; a file lock keeps concurrent pytest
processes from racing, and a failure is a test error naming what to run, never
a skip.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

APT_TIMEOUT_S = 600
LISTS = Path("/var/lib/apt/lists")


def _has_lists() -> bool:
    return LISTS.is_dir() and any(p.name.endswith("_Packages") or "_Packages." in p.name for p in LISTS.iterdir())


def _run(command: list[str], log: Path) -> str | None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        try:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=APT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(command)} failed: {exc}"
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        return f"{' '.join(command)} exited with {done.returncode}:\n{tail}"
    return None


def _install(packages: list[str], log: Path) -> str | None:
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        return "apt-get is not available (not a Debian-family machine)"
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            return "not running as root and sudo is not available"
        prefix = [sudo, "-n"]
    wait = ["-o", "DPkg::Lock::Timeout=300"]
    update, install = [*prefix, apt_get, *wait, "update"], [*prefix, apt_get, *wait, "install", "-y", *packages]
    if not _has_lists():
        return _run(update, log) or _run(install, log)
    # Lists that are present may be stale (a package's version gone from the mirror): refresh once and retry.
    return _run(install, log) and (_run(update, log) or _run(install, log))


def ensure_binaries(binaries: dict[str, str], log: Path) -> dict[str, str]:
    """Each binary's path, installing its package (``binaries``: binary name → Debian package) when missing."""
    missing = {name: package for name, package in binaries.items() if shutil.which(name) is None}
    if missing:
        lock = Path(tempfile.gettempdir()) / "agentparty-apt-install.lock"
        with lock.open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            try:
                still = sorted({p for n, p in missing.items() if shutil.which(n) is None})
                problem = _install(still, log) if still else None
            finally:
                fcntl.flock(held, fcntl.LOCK_UN)
        if problem is not None:
            pytest.fail(
                f"these tests need {', '.join(sorted(set(missing.values())))} and the setup could not install them: "
                f"{problem}\nInstall them with: apt-get update && apt-get install -y {' '.join(sorted(set(missing.values())))}",
                pytrace=False,
            )
    found = {name: shutil.which(name) for name in binaries}
    absent = [name for name, path in found.items() if path is None]
    if absent:
        pytest.fail(f"apt-get reported success but {', '.join(absent)} is still missing", pytrace=False)
    return {name: str(path) for name, path in found.items()}
