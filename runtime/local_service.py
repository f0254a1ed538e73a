"""What the local servers share: a detached process group, a pid file under AGENTPARTY_HOME, stop and kill."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


class PidFileService:
    """Mixin for a server started detached (its own session) whose pid lives in ``pid_file``."""

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
        os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            try:
                os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
            except ChildProcessError:
                pass
            time.sleep(0.2)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
