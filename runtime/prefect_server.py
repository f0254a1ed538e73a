"""The local Prefect server behind ``agentparty up``: UI on 127.0.0.1:4200, state under AGENTPARTY_HOME.

A real server rather than Prefect's ephemeral mode: ephemeral mode takes 11-28 s
to start on every command and drops task-run records at exit (DESIGN.md §5).
Its tables are in SQLite under the home, or in PostgreSQL for a home that chose
it with ``agentparty up --state-db postgres`` (``runtime/prefect_database.py``).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from agentparty.runtime.local_service import PidFileService
from agentparty.runtime.prefect_database import PrefectDatabase, running_database_file


@dataclass(frozen=True)
class LocalPrefectServer(PidFileService):
    home: Path
    host: str = "127.0.0.1"
    port: int = 4200
    database: PrefectDatabase | None = None
    """PostgreSQL (prepared, and the home's cluster started, when the server starts); None: SQLite under the home."""

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "prefect-server.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "prefect-server.log"

    def client_env(self) -> dict[str, str]:
        """Environment for processes that use this server (results persist under AGENTPARTY_HOME)."""
        return {
            "PREFECT_API_URL": self.api_url,
            "PREFECT_LOCAL_STORAGE_PATH": str(self.home / "results"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }

    def _server_env(self, database_url: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        if database_url is not None:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
        env.update(
            PREFECT_HOME=str(self.home / "prefect"),
            PREFECT_SERVER_API_HOST=self.host,
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_API_URL=self.api_url,
        )
        # SQLite lets one writer at a time; under many concurrent flow runs (several workers) requests wait
        # longer for the lock than the 10 s default before the server answers 503.
        env.setdefault("PREFECT_SERVER_DATABASE_TIMEOUT", "30")
        return env

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 180.0) -> bool:
        """Start the server unless it already answers; returns True if this call started it."""
        if self.healthy():
            return False
        database_url = self.database.prepare() if self.database is not None else None
        for folder in (self.pid_file.parent, self.log_file.parent, self.home / "prefect", self.home / "results"):
            folder.mkdir(parents=True, exist_ok=True)
        running_database_file(self.home).write_text("postgresql\n" if database_url else "sqlite\n")
        self.launch(
            [sys.executable, "-m", "prefect", "server", "start", "--host", self.host, "--port", str(self.port)],
            self.healthy,
            name="Prefect server",
            timeout=timeout,
            poll=0.5,
            env=self._server_env(database_url),
        )
        return True
