"""Compiled workflows run from a deployment: the runner re-imports a module-level entrypoint (the unit half).

Entrypoint names, and rebuilding a flow from the search path, need no server; a real
runner process serving a deployment is ``tests/integration/flows/test_deployed.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agentparty.flows import compile_workflow, deployed
from agentparty.runtime.documents import load_workflow


def _write_definition(directory: Path, workflow_id: str, name: str) -> Path:
    doc = {
        "id": workflow_id,
        "name": name,
        "inputs": {"topic": {"type": "string"}},
        "steps": [
            {
                "id": "echo",
                "type": "task",
                "configuration": {"handler": "handlers:echo"},
                "inputs": {"text": "${inputs.topic}"},
            }
        ],
        "triggers": [{"type": "manual"}],
    }
    (directory / "handlers.py").write_text("def echo(text):\n    return {'echo': text}\n")
    path = directory / f"{workflow_id}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_entrypoint_names_are_identifiers_and_keep_similar_ids_apart() -> None:
    names = {deployed.entrypoint_name(i) for i in ("a-b", "a_b", "a.b")}
    assert len(names) == 3
    assert all(name.isidentifier() for name in names)


def test_compiled_flow_records_the_module_level_entrypoint(tmp_path: Path) -> None:
    path = _write_definition(tmp_path, "deploy-me", "Deploy me")
    flow = compile_workflow(load_workflow(path), source=path)
    assert f"{flow.__module__}.{flow.__name__}" == deployed.entrypoint_for("deploy-me")


@pytest.fixture
def search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``AGENTPARTY_WORKFLOWS`` = ``tmp_path``, read again by the settings (a flow-run process reads it at start)."""
    from agentparty.runtime.settings import get_settings

    monkeypatch.setenv(deployed.WORKFLOWS_ENV, str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_entrypoint_rebuilds_the_flow_from_the_search_path(search_path: Path) -> None:
    from prefect.flows import load_flow_from_entrypoint

    _write_definition(search_path, "deploy-me", "Deploy me")
    flow = load_flow_from_entrypoint(deployed.entrypoint_for("deploy-me"))
    assert flow.name == "Deploy me"


def test_unknown_entrypoint_names_the_search_path(search_path: Path) -> None:
    with pytest.raises(AttributeError, match="AGENTPARTY_WORKFLOWS"):
        deployed.load_deployed_flow(deployed.entrypoint_name("missing"))
