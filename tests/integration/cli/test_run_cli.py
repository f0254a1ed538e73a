"""`agentparty run` (against the session's Prefect server) and `up` / `status` / `down` (a server of their own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentparty.cli import app
from agentparty.runtime.local_service import free_port

runner = CliRunner()


@pytest.fixture
def use_session_server(
    prefect_server: str, bolt_server: object, kafka_broker: object, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The session's Prefect server, graph server and broker as the configured ones (no server of the CLI's own)."""
    from agentparty.runtime.settings import get_settings

    config = bolt_server.database_config()  # type: ignore[attr-defined]
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.setenv("AGENTPARTY_DATABASE__URI", config.uri)
    monkeypatch.setenv("AGENTPARTY_DATABASE__USERNAME", config.username)
    monkeypatch.setenv("AGENTPARTY_DATABASE__PASSWORD", config.password.get_secret_value())
    monkeypatch.setenv("AGENTPARTY_KAFKA__BOOTSTRAP_SERVERS", kafka_broker.bootstrap_servers)  # type: ignore[attr-defined]
    monkeypatch.setenv("AGENTPARTY_KAFKA__GROUP_ID", "cli-tests")
    get_settings.cache_clear()
    yield prefect_server
    get_settings.cache_clear()


def failing_workflow(tmp_path: Path) -> Path:
    doc = {
        "id": "will-fail",
        "name": "Will fail",
        "steps": [
            {
                "id": "boom",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:always_fails"},
                "inputs": {"name": "cli"},
            }
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed", "fallbackAction": "abort"},
    }
    path = tmp_path / "fail.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_run_reports_each_step_and_the_ui_url(use_session_server: str, examples_dir: Path) -> None:
    result = runner.invoke(
        app, ["run", str(examples_dir / "nightly-digest.yaml"), "--input", "max_items=2", "-i", "channel=ops"]
    )
    assert result.exit_code == 0, result.output
    assert "✓ collect: completed (1 attempt" in result.stdout
    assert "✓ publish: completed" in result.stdout
    assert f"UI: {use_session_server.removesuffix('/api')}/runs/flow-run/" in result.stdout


def test_run_json_output(use_session_server: str, examples_dir: Path) -> None:
    result = runner.invoke(app, ["run", str(examples_dir / "research-report.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "completed" and payload["steps"]["flag_gaps"]["status"] == "skipped"
    # The simulated model's loop: each researcher searches the corpus with the Python tool, the reviewer with the
    # same search from the MCP server (started over stdio for the run, and gone with it).
    for item in payload["steps"]["research"]["items"]:
        calls = [call for turn in item["turns"] for call in turn["tool_calls"]]
        assert calls and {c["name"] for c in calls} == {"search_docs"} and all(c["ok"] for c in calls), item
        assert all(c["source"] == "python" and "corpus/" in c["result"] for c in calls)
        assert item["turns"][-1]["final"] and item["turns"][-1]["model"] == "simulated"
    review = [call for turn in payload["steps"]["review"]["turns"] for call in turn["tool_calls"]]
    assert review and all(c["source"] == "mcp" and c["server"] == "docs" and c["ok"] for c in review)
    assert not _children_running("mcp_docs_server.py"), "the run's MCP server outlived it"


def _children_running(script: str) -> list[int]:
    """This process's child processes whose command line names ``script``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and script in command:
            found.append(int(entry.name))
    return found


def test_failed_run_exits_one(use_session_server: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(failing_workflow(tmp_path))])
    assert result.exit_code == 1
    assert "✗ boom: failed" in result.stdout
    assert any(line.startswith("failed in ") for line in result.stdout.splitlines())


def test_invalid_definition_and_inputs(use_session_server: str, tmp_path: Path, examples_dir: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: x\nname: X\nsteps: []\ntriggers: []\n")
    assert runner.invoke(app, ["run", str(broken)]).exit_code == 1
    bad_input = runner.invoke(app, ["run", str(examples_dir / "nightly-digest.yaml"), "--input", "max_items=500"])
    assert bad_input.exit_code == 1 and "inputs.max_items: 500 is greater than the maximum of 50" in bad_input.output
    assert runner.invoke(app, ["run", str(examples_dir / "nightly-digest.yaml"), "--input", "no-equals"]).exit_code == 2


@pytest.mark.slow
def test_up_status_down_manage_a_local_server(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("agentparty")
    env = {
        "AGENTPARTY_HOME": str(tmp_path / "home"),
        "AGENTPARTY_PREFECT_PORT": str(free_port()),
        "AGENTPARTY_GRAPH_PORT": str(free_port()),
        "AGENTPARTY_GRAPH_HTTP_PORT": str(free_port()),
        "AGENTPARTY_KAFKA_PORT": str(free_port()),
        "PATH": "/usr/bin:/bin",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=240)

    assert cli("status").returncode == 1
    try:
        up = cli("up")
        assert up.returncode == 0, up.stderr
        assert "started" in up.stdout
        assert "graph server started" in up.stdout and "graph schema: applied migrations 1, 2" in up.stdout
        assert "Kafka broker started" in up.stdout and "event topics: created" in up.stdout
        status = cli("status")
        assert (
            status.returncode == 0
            and "graph server: running" in status.stdout
            and "Kafka broker: running" in status.stdout
        )
        assert (tmp_path / "home" / "logs" / "prefect-server.log").exists()
        assert (tmp_path / "home" / "logs" / "graph-server.log").exists()
        again = cli("up").stdout
        assert (
            "Prefect server already running" in again
            and "graph server already running" in again
            and "graph schema: up to date" in again
        )
    finally:
        down = cli("down")
    assert (
        "Prefect server stopped" in down.stdout
        and "graph server stopped" in down.stdout
        and "Kafka broker stopped" in down.stdout
    )
    status = cli("status")
    assert (
        status.returncode == 1 and "graph server: stopped" in status.stdout and "Kafka broker: stopped" in status.stdout
    )


def test_run_records_the_run_in_the_graph(use_session_server: str, examples_dir: Path, graph_store: object) -> None:
    from agentparty.runtime.graph_reads import GraphReader

    result = runner.invoke(app, ["run", str(examples_dir / "nightly-digest.yaml"), "-i", "max_items=2"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("graph: Task "))
    task = GraphReader(graph_store).task(line.split()[2])  # type: ignore[arg-type]
    assert task is not None and task.task.status.value == "completed" and task.task.title == "Nightly digest"
    assert {o.step_id for o in task.outputs} >= {"collect", "publish"}
    shown = runner.invoke(app, ["graph", "task", line.split()[2]])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["task"]["status"] == "completed"
    assert runner.invoke(app, ["graph", "task", "00000000-0000-4000-8000-000000000000"]).exit_code == 1

    skipped = runner.invoke(app, ["run", str(examples_dir / "nightly-digest.yaml"), "--no-graph"])
    assert skipped.exit_code == 0 and "graph: Task" not in skipped.stdout
