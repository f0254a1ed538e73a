"""Prefect's multi-process server for ``bench/scale.py``'s third arm: PostgreSQL, Redis, N API processes.

One ``prefect server start`` process serves the API from one core at most, so on
PostgreSQL run creation is capped by that process's CPU (about 20 ms a create
here). Prefect's documented way past it ("How to scale self-hosted Prefect") is
several API processes (``--workers N``, which turns the background services off)
beside one ``prefect server services start``, on PostgreSQL, with Redis carrying
the events, the event ordering, the concurrency leases and Docket's tasks
between them (``prefect-redis``). This starts exactly that, on loopback, for the
length of a ``with`` block; the bench extra installs ``prefect-redis`` and
``redis-server`` comes from Debian (``apt-get install redis-server``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.prefect_database import PrefectDatabase

_REGISTER_BLOCKS = """
import asyncio
from prefect.server.database import provide_database_interface
from prefect.server.models.block_registration import run_block_auto_registration

async def register():
    async with await provide_database_interface().session() as session:
        await run_block_auto_registration(session=session)

asyncio.run(register())
"""
"""What one server process does at start (``prefect.server.api.server``), done once for all of them."""


@dataclass(frozen=True)
class MultiProcessServer:
    api_url: str
    pids: dict[str, int]
    """Process trees whose CPU the bench reads: the API processes' parent, the services, Redis."""

    def client_env(self, home: Path) -> dict[str, str]:
        return {
            "PREFECT_API_URL": self.api_url,
            "PREFECT_LOCAL_STORAGE_PATH": str(home / "results"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }


def missing() -> str | None:
    """Why the arm cannot run here (what to install), or None."""
    import importlib.util

    if importlib.util.find_spec("prefect_redis") is None:
        return "prefect-redis (pip install -c constraints.txt -e '.[bench]')"
    if shutil.which("redis-server") is None:
        return "redis-server (apt-get install redis-server)"
    return None


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _redis(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("the multi-process arm needs redis-server: apt-get install redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(home)],
        stdout=(home / "redis.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while b"eady to accept connections" not in (home / "redis.log").read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise SystemExit(f"redis-server did not start: {(home / 'redis.log').read_text()[-2000:]}")
        time.sleep(0.1)
    return process, f"redis://127.0.0.1:{port}"


def _server_env(home: Path, database_url: str, redis_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=database_url,
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_MESSAGING_BROKER="prefect_redis.messaging",
        PREFECT_MESSAGING_CACHE="prefect_redis.messaging",
        PREFECT_SERVER_EVENTS_CAUSAL_ORDERING="prefect_redis.ordering",
        PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="prefect_redis.lease_storage",
        PREFECT_REDIS_MESSAGING_URL=f"{redis_url}/0",
        PREFECT_SERVER_DOCKET_URL=f"{redis_url}/1",
        # migrated and its block types registered once, before: N processes starting at once would race
        PREFECT_SERVER_DATABASE_MIGRATE_ON_START="false",
        PREFECT_SERVER_REGISTER_BLOCKS_ON_START="false",
    )
    return env


@contextmanager
def multi_process_server(home: Path, cluster: LocalPostgres, api_processes: int) -> Iterator[MultiProcessServer]:
    """Redis, ``api_processes`` API processes and one services process on ``cluster``'s database ``prefect``."""
    database_url = PrefectDatabase(cluster=cluster).prepare()
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    redis, redis_url = _redis(home)
    port = free_port()
    env = _server_env(home, database_url, redis_url, port)
    prefect = [sys.executable, "-m", "prefect", "server"]
    started: list[subprocess.Popen[bytes]] = [redis]
    try:
        for step in ([*prefect, "database", "upgrade", "-y"], [sys.executable, "-c", _REGISTER_BLOCKS]):
            done = subprocess.run(step, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{step[-3:]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        api = subprocess.Popen(
            [*prefect, "start", "--host", "127.0.0.1", "--port", str(port), "--workers", str(api_processes)],
            env=env, stdout=(home / "api.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        started.append(api)
        services = subprocess.Popen(
            [*prefect, "services", "start"],
            env=env, stdout=(home / "services.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        started.append(services)
        api_url = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + 180
        while not _healthy(api_url):
            for process, log in ((api, "api.log"), (services, "services.log")):
                if process.poll() is not None:
                    raise SystemExit(f"the Prefect {log} process exited:\n{(home / log).read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"the Prefect API did not answer:\n{(home / 'api.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield MultiProcessServer(api_url, {"prefect server": api.pid, "prefect services": services.pid,
                                           "redis": redis.pid})  # fmt: skip
    finally:
        for process in reversed(started):
            if process.poll() is not None:
                continue
            if process is redis:
                process.terminate()
            else:  # the server's API processes are children of its own session
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
