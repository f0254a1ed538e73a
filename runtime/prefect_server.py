"""The local Prefect server behind ``agentparty up``: SQLite, UI on 127.0.0.1:4200, state under AGENTPARTY_HOME.

A real server rather than Prefect's ephemeral mode: ephemeral mode takes 11-28 s
to start on every command and drops task-run records at exit (DESIGN.md §5).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from agentparty.runtime.local_service import PidFileService


@dataclass(frozen=True)
class LocalPrefectServer(PidFileService):
    home: Path
    host: str = "127.0.0.1"
    port: int = 4200

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

    def _server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
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
        for folder in (self.pid_file.parent, self.log_file.parent, self.home / "prefect", self.home / "results"):
            folder.mkdir(parents=True, exist_ok=True)
        self.launch(
            [sys.executable, "-m", "prefect", "server", "start", "--host", self.host, "--port", str(self.port)],
            self.healthy,
            name="Prefect server",
            timeout=timeout,
            poll=0.5,
            env=self._server_env(),
        )
        return True
