"""Step results in the state database: a run killed on one host resumes on another with its own home.

The Prefect server here is one of the module's own: making the state database
its default result storage (``runtime/result_storage.py``) applies to every
process that talks to it, which the session's server must not get.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from support.postgres_support import fresh_database

from agentparty.runtime.local_service import free_port
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.prefect_server import LocalPrefectServer

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[2]
DATA_KEYS = "k1=" + base64.b64encode(os.urandom(32)).decode()
"""Sealed results open only with the key that sealed them: the hosts share their data keys."""


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: LocalPostgres
) -> Iterator[tuple[str, str]]:
    """A Prefect server whose default result storage is the state database; (its API URL, the database URL)."""
    import asyncio

    from prefect.client.orchestration import PrefectClient

    from agentparty.runtime.result_storage import share_results_through_server

    url = fresh_database(postgres_cluster, "results")
    server = LocalPrefectServer(tmp_path_factory.mktemp("prefect-shared-results"), port=free_port())
    server.start()
    try:

        async def share() -> None:
            async with PrefectClient(server.api_url) as client:
                await share_results_through_server(client)

        asyncio.run(share())
        yield server.api_url, url
    finally:
        server.stop()


def _definition(folder: Path) -> Path:
    log, started, flag = folder / "executions.log", folder / "started", folder / "release"
    doc = {
        "id": "shared-results",
        "name": "Shared results",
        "steps": [
            {
                "id": "first",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:append_to_file"},
                "inputs": {"path": str(log), "line": "first"},
                "outputs": {"line": {"type": "string"}},
            },
            {
                "id": "second",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:append_to_file"},
                "inputs": {"path": str(log), "line": "second ${steps.first.outputs.line}"},
            },
            {
                "id": "stuck",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:block_until", "dependsOn": ["second"]},
                "inputs": {"path": str(started), "flag": str(flag)},
            },
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }
    path = folder / "shared-results.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _host(home: Path, api: str, url: str) -> dict[str, str]:
    """One host's environment: a home of its own, the shared servers, the shared data keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTPARTY_", "PREFECT_"))}
    return env | {
        "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "AGENTPARTY_HOME": str(home),
        "AGENTPARTY_STATE_DB_URL": url,
        "AGENTPARTY_DATA_KEYS": DATA_KEYS,
        "PREFECT_API_URL": api,
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def _script(path: Path) -> str:
    return textwrap.dedent(
        f"""
        import asyncio, json
        from agentparty.flows import compile_workflow
        from agentparty.runtime.documents import load_workflow
        flow = compile_workflow(load_workflow({str(path)!r}), source={str(path)!r})
        result = asyncio.run(flow(resume_key="moved-run"))
        print(json.dumps({{name: step.cached for name, step in result.steps.items()}}))
        """
    )


def test_a_run_killed_on_host_a_resumes_on_host_b_from_shared_results(
    tmp_path: Path, shared_server: tuple[str, str]
) -> None:
    api, url = shared_server
    path = _definition(tmp_path)
    host_a, host_b = tmp_path / "home-a", tmp_path / "home-b"
    process = subprocess.Popen(
        [sys.executable, "-c", _script(path)], env=_host(host_a, api, url), start_new_session=True, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "started").exists():
            assert process.poll() is None, "host A's run ended before reaching the blocking step"
            assert time.monotonic() < deadline, "host A's run never reached the blocking step"
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # host A dies
        process.wait(timeout=30)
    assert (tmp_path / "executions.log").read_text().splitlines() == ["first", "second first"]
    assert not list((host_a / "results").glob("*")), "host A kept results on its own disk"

    (tmp_path / "release").write_text("go")
    resumed = subprocess.run(
        [sys.executable, "-c", _script(path)], env=_host(host_b, api, url), capture_output=True, text=True,
        timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    cached = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert cached == {"first": True, "second": True, "stuck": False}
    assert (tmp_path / "executions.log").read_text().splitlines() == ["first", "second first"], "a step ran again"
    with psycopg.connect(url) as db:
        stored = db.execute("SELECT count(*) FROM agentparty.results").fetchone()
    assert stored is not None and stored[0] >= 3, "the steps' results are in the state database"
    _purge_removes_the_stored_results(host_b, api, url)


def _purge_removes_the_stored_results(home: Path, api: str, url: str) -> None:
    """Retention on host B deletes the finished runs' rows from the results table, as it deletes result files."""
    purged = subprocess.run(
        [str(Path(sys.executable).with_name("agentparty")), "gdpr", "purge", "--older-than", "0", "--json"],
        env=_host(home, api, url) | {
            "AGENTPARTY_DATABASE__URI": "bolt://127.0.0.1:9",
            "AGENTPARTY_DATABASE__USERNAME": "neo4j",
            "AGENTPARTY_DATABASE__PASSWORD": "unreached",
        },  # no graph: reported
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "{" in purged.stdout, purged.stdout[-2000:] + purged.stderr[-3000:]
    report = json.loads(purged.stdout[purged.stdout.index("{") :])
    removed = report["removed"]
    assert removed.get("resultFiles", removed.get("result_files", 0)) >= 3, report
    with psycopg.connect(url) as db:
        left = db.execute("SELECT path FROM agentparty.results").fetchall()
    assert left == [], f"results of purged runs remain: {left}"
