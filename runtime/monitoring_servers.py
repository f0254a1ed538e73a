"""Debian's Prometheus and Alertmanager as local servers of one home (``agentparty up --monitoring``).

They run like the other local servers (``runtime/local_service.py``): detached,
bound to 127.0.0.1, pid and log files under ``AGENTPARTY_HOME``, stopped by
``agentparty down``. Nothing is installed here: ``agentparty up --monitoring``
says how to install the Debian packages (``prometheus``,
``prometheus-alertmanager``) when their binaries are missing. Both read the
files ``agentparty monitoring render`` wrote into ``HOME/monitoring``, and read
them again when a render changes them (SIGHUP).

Prometheus keeps its samples for ``monitoring.metrics.retentionPeriod`` hours
(``--storage.tsdb.retention.time``). Alertmanager runs alone (its gossip
cluster listener off), keeping silences and notification state in its data folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from agentparty.runtime.local_service import PidFileService

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
"""Debian names Alertmanager's binary after its package; upstream's tarball calls it ``alertmanager``."""


def find_binary(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


class _HttpReady(PidFileService):
    host: str
    port: int
    home: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def healthy(self) -> bool:
        """``/-/ready`` answers 200 (both servers have it)."""
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def reload(self) -> bool:
        """Make the running server read its configuration files again (both reload on SIGHUP); False if not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGHUP)
        return True

    def _start(self, command: list[str], name: str, timeout: float) -> bool:
        if self.pid() is not None and self.healthy():
            return False
        if self.accepting():
            raise RuntimeError(f"port {self.port} is taken by another process (the {name}'s port setting moves it)")
        for folder in (self.pid_file.parent, self.log_file.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.launch(command, self.healthy, name=name, timeout=timeout)
        return True


@dataclass(frozen=True)
class LocalPrometheus(_HttpReady):
    home: Path
    config_dir: Path
    host: str = "127.0.0.1"
    port: int = 9090

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "prometheus.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "prometheus.log"

    def command(self, binary: str, retention_hours: int) -> list[str]:
        return [
            binary,
            f"--config.file={self.config_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.home / 'prometheus' / 'data'}",
            f"--storage.tsdb.retention.time={retention_hours}h",
            f"--web.listen-address={self.host}:{self.port}",
        ]

    def start(self, retention_hours: int = 168, timeout: float = 60.0) -> bool:
        """Start Prometheus unless it already answers, keeping samples ``retention_hours``; True if this call
        started it."""
        binary = find_binary(PROMETHEUS_BINARIES)
        if binary is None:
            raise FileNotFoundError("Prometheus is not installed: apt-get install prometheus")
        return self._start(self.command(binary, retention_hours), "Prometheus", timeout)


@dataclass(frozen=True)
class LocalAlertmanager(_HttpReady):
    home: Path
    config_dir: Path
    host: str = "127.0.0.1"
    port: int = 9093

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "alertmanager.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "alertmanager.log"

    def command(self, binary: str) -> list[str]:
        return [
            binary,
            f"--config.file={self.config_dir / 'alertmanager.yml'}",
            f"--storage.path={self.home / 'alertmanager' / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--cluster.listen-address=",
        ]

    def start(self, timeout: float = 60.0) -> bool:
        """Start Alertmanager unless it already answers; True if this call started it."""
        binary = find_binary(ALERTMANAGER_BINARIES)
        if binary is None:
            raise FileNotFoundError("Alertmanager is not installed: apt-get install prometheus-alertmanager")
        return self._start(self.command(binary), "Alertmanager", timeout)
