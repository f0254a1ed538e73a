"""A ``writeOnly`` input is a secret: after a real ``agentparty run`` (Prefect server, graph, broker), no file under
AGENTPARTY_HOME, the Prefect server's folder (its SQLite database and log) or the graph server's holds it."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.disk_scan import files_holding
from typer.testing import CliRunner

from agentparty.cli import app

runner = CliRunner()


@pytest.fixture
def use_session_servers(
    prefect_server: str, bolt_server: object, kafka_broker: object, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    from agentparty.runtime.settings import get_settings

    config = bolt_server.database_config()  # type: ignore[attr-defined]
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.setenv("AGENTPARTY_DATABASE__URI", config.uri)
    monkeypatch.setenv("AGENTPARTY_DATABASE__USERNAME", config.username)
    monkeypatch.setenv("AGENTPARTY_DATABASE__PASSWORD", config.password.get_secret_value())
    monkeypatch.setenv("AGENTPARTY_KAFKA__BOOTSTRAP_SERVERS", kafka_broker.bootstrap_servers)  # type: ignore[attr-defined]
    monkeypatch.setenv("AGENTPARTY_KAFKA__GROUP_ID", "secret-input-tests")
    get_settings.cache_clear()
    yield prefect_server
    get_settings.cache_clear()


def workflow(tmp_path: Path) -> Path:
    doc = {
        "id": "uses-a-secret",
        "name": "Uses a secret",
        "inputs": {
            "token": {"type": "string", "writeOnly": True, "description": "An API token (a secret)"},
            "region": {"type": "string", "default": "eu"},
        },
        "steps": [
            {
                "id": "use",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:fingerprint"},
                "inputs": {"secret": "${inputs.token}", "region": "${inputs.region}"},
            }
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_write_only_input_is_nowhere_in_plaintext_after_a_real_run(
    use_session_servers: str, tmp_path: Path, agentparty_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    token = f"tok-{secrets.token_hex(16)}"
    result = runner.invoke(app, ["run", str(workflow(tmp_path)), "--json", "--input", f"token={token}"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    # the step saw the real value (its fingerprint matches), so the secret was opened inside the run
    assert run["steps"]["use"]["output"]["sha256"] == hashlib.sha256(token.encode()).hexdigest()[:12]
    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        parameters = client.read_flow_run(run["run_id"]).parameters
    assert parameters["inputs"]["token"].startswith("ap1:")

    base = tmp_path_factory.getbasetemp()
    prefect_dirs = sorted(base.glob("prefect-server*"))
    graph_dirs = sorted(base.glob("graph-home*"))
    assert prefect_dirs and any(p.name.endswith(".db") for d in prefect_dirs for p in d.rglob("*"))
    assert not files_holding(token, agentparty_home, *prefect_dirs, *graph_dirs)
    assert files_holding(run["run_id"], *prefect_dirs), "the scan must see the run in Prefect's database"
