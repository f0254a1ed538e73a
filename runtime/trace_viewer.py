"""The local trace viewer behind ``agentparty up --traces``: Arize Phoenix, accepting OTLP/HTTP, state under HOME.

Phoenix pins its own versions of libraries we pin too (SQLAlchemy, FastAPI,
grpc, protobuf…), so it lives in a virtual environment of its own, outside the
repository and outside our ``.venv``: ``~/.cache/agentparty/phoenix-venv`` by
default (:data:`PHOENIX_REQUIREMENT` installed with that venv's pip, once; later
starts reuse it). It serves its UI and the OTLP/HTTP receiver on one port
(``/v1/traces``); its gRPC receiver is put on a free port so that it never
collides with a collector already on 4317.

While it runs, the OTLP endpoint is recorded under HOME (:meth:`recorded_endpoint`):
every later command of the same home exports its spans there unless an endpoint
is configured (``runtime/tracing.py``). Stopping it removes the record.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from agentparty.runtime.local_service import PidFileService, free_port

PHOENIX_REQUIREMENT = "arize-phoenix[pg]==20.26.1"
"""The Phoenix release the viewer venv gets (its own pins come with it), with its PostgreSQL driver."""


def default_venv() -> Path:
    """Where the viewer's venv is cached: ``$XDG_CACHE_HOME/agentparty/phoenix-venv`` (``~/.cache`` by default)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "agentparty" / "phoenix-venv"


@dataclass(frozen=True)
class PhoenixInstall:
    """Phoenix's own virtual environment: made and installed on first use, reused after."""

    venv: Path = field(default_factory=default_venv)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def installed(self) -> bool:
        """Phoenix and its PostgreSQL driver (a venv cached before the driver was added gets it on next use)."""
        return (self.venv / "bin" / "phoenix").exists() and any(self.venv.glob("lib/python*/site-packages/asyncpg"))

    def ensure(self, log: Path, timeout: float = 1800.0) -> bool:
        """Create the venv and install Phoenix when missing (minutes, once); True if this call installed it."""
        if self.installed():
            return False
        log.parent.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)  # a venv of its own, not one inside ours
        with log.open("ab") as out:
            if not self.python.exists():
                subprocess.run([base, "-m", "venv", "--clear", str(self.venv)], check=True, stdout=out, stderr=out)
            subprocess.run(
                [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", PHOENIX_REQUIREMENT],
                check=True,
                stdout=out,
                stderr=out,
                timeout=timeout,
            )
        if not self.installed():
            raise RuntimeError(f"installing {PHOENIX_REQUIREMENT} left no phoenix command; see {log}")
        return True


@dataclass(frozen=True)
class LocalTraceViewer(PidFileService):
    home: Path
    host: str = "127.0.0.1"
    port: int = 6006
    install: PhoenixInstall = field(default_factory=PhoenixInstall)
    database_url: str | None = None
    """Phoenix's database (``PHOENIX_SQL_DATABASE_URL``): a PostgreSQL URL, else SQLite under :attr:`state_dir`.

    On SQLite Phoenix spends about 6 ms of CPU per span it ingests, on PostgreSQL about 0.7 ms (Phoenix and
    the server together, 2,000 spans in batches of 512, this 2-core machine): on a machine the engine shares,
    that is the difference between the viewer costing a run a few percent and costing it a tenth.
    """

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def otlp_endpoint(self) -> str:
        """Phoenix's OTLP/HTTP traces receiver (protobuf), on the UI's port."""
        return f"{self.ui_url}/v1/traces"

    @property
    def state_dir(self) -> Path:
        return self.home / "phoenix"

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "phoenix.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "phoenix.log"

    @property
    def endpoint_file(self) -> Path:
        return self.home / "run" / "traces-endpoint"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.ui_url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 180.0) -> bool:
        """Start Phoenix (installing it first when its venv is missing) unless it answers; True if this call did."""
        if self.healthy():
            self.endpoint_file.write_text(self.otlp_endpoint)
            return False
        for folder in (self.pid_file.parent, self.log_file.parent, self.state_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.install.ensure(self.home / "logs" / "phoenix-install.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
        env.update(
            PHOENIX_WORKING_DIR=str(self.state_dir),
            PHOENIX_HOST=self.host,
            PHOENIX_PORT=str(self.port),
            PHOENIX_GRPC_PORT=str(free_port(self.host)),
            PHOENIX_TELEMETRY_ENABLED="false",
        )
        if self.database_url:
            env["PHOENIX_SQL_DATABASE_URL"] = self.database_url
        self.launch(
            [str(self.install.venv / "bin" / "phoenix"), "serve"],
            self.healthy,
            name="trace viewer (Phoenix)",
            timeout=timeout,
            env=env,
            cwd=self.state_dir,
        )
        self.endpoint_file.write_text(self.otlp_endpoint)
        return True

    def stop(self, timeout: float = 30.0, *, kill: bool = False) -> bool:
        with contextlib.suppress(OSError):
            self.endpoint_file.unlink()
        return super().stop(timeout, kill=kill)


def recorded_endpoint(home: Path) -> str | None:
    """The OTLP endpoint of the trace viewer ``agentparty up --traces`` started under ``home``, while it runs.

    A file read and a signal-0 probe: cheap enough for every process start.
    """
    viewer = LocalTraceViewer(home)
    try:
        endpoint = viewer.endpoint_file.read_text().strip()
    except OSError:
        return None
    return endpoint if endpoint and viewer.pid() is not None else None
