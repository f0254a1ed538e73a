"""A run killed mid-way and resumed executes none of its completed steps again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from agentparty.flows import compile_workflow
from agentparty.runtime.documents import load_workflow

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_killed_run_resumes_without_reexecuting_completed_steps(
    tmp_path: Path, agentparty_home: Path, prefect_server: str
) -> None:
    log, started, flag = tmp_path / "executions.log", tmp_path / "started", tmp_path / "release"
    doc = {
        "id": "resumable",
        "name": "Resumable",
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
            {
                "id": "last",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:append_to_file", "dependsOn": ["stuck"]},
                "inputs": {"path": str(log), "line": "last"},
            },
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }
    path = tmp_path / "resumable.yaml"
    path.write_text(yaml.safe_dump(doc))
    script = textwrap.dedent(
        f"""
        import asyncio
        from agentparty.flows import compile_workflow
        from agentparty.runtime.documents import load_workflow
        flow = compile_workflow(load_workflow({str(path)!r}), source={str(path)!r})
        asyncio.run(flow(resume_key="resume-test"))
        """
    )
    tests_dir = str(Path(__file__).resolve().parents[2])  # tests/: the handlers import as ``support.step_handlers``
    # The killed run talks to the session's server, as a worker would (an ephemeral server of its own
    # can miss Prefect's 20 s start-up timeout on a loaded 2-core machine).
    env = {
        **os.environ,
        "PYTHONPATH": tests_dir + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "PREFECT_API_URL": prefect_server,
    }
    process = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert process.poll() is None, "the first run ended before reaching the blocking step"
            assert time.monotonic() < deadline, "the first run never reached the blocking step"
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # a crash, not a clean shutdown
        process.wait(timeout=30)
    assert log.read_text().splitlines() == ["first", "second first"]

    flag.write_text("go")
    result = asyncio.run(compile_workflow(load_workflow(path), source=path)(resume_key="resume-test"))
    assert log.read_text().splitlines() == ["first", "second first", "last"], "a completed step ran again"
    assert result.steps["first"].cached and result.steps["second"].cached
    assert not result.steps["stuck"].cached and not result.steps["last"].cached
    assert result.status.value == "completed"
