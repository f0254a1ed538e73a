"""What the local servers share: a detached process group, a pid file under AGENTPARTY_HOME, stop and kill."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (benchmarks and tests start their servers on one)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PidFileService:
    """Mixin for a server started detached (its own session) whose pid lives in ``pid_file``.

    Subclasses are dataclasses with ``host`` and ``port`` and say where their pid and log files live.
    """

    host: str
    port: int
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    """What :meth:`stop` sends first (PostgreSQL: SIGINT, its fast shutdown; SIGTERM waits for every session)."""

    @property
    def log_file(self) -> Path:
        raise NotImplementedError

    def accepting(self) -> bool:
        """Something accepts connections on the port (the server, or another process holding it)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def launch(
        self,
        command: list[str],
        ready: Callable[[], bool],
        *,
        name: str,
        timeout: float,
        poll: float = 0.3,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Start ``command`` detached, logging to ``log_file``, and wait until ``ready()``; the exit code if it dies."""
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if process.poll() is not None:
                raise RuntimeError(f"the {name} exited with code {process.returncode}; see {self.log_file}")
            time.sleep(poll)
        raise TimeoutError(f"the {name} did not answer within {timeout:.0f}s; see {self.log_file}")

    @property
    def pid_file(self) -> Path:
        raise NotImplementedError

    def pid(self) -> int | None:
        """The server's pid while it runs, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def stop(self, timeout: float = 30.0, *, kill: bool = False) -> bool:
        """Stop the server's process group (``kill``: SIGKILL at once, as a crash would); False if it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGKILL if kill else self.stop_signal)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
            time.sleep(0.2)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
