"""`agentparty agents forget` and `agentparty agents memory`; `templates version --inherit-memory`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentparty.cli import app
from agentparty.models.agent import WorkflowState
from agentparty.models.memory import MemoryConfig
from agentparty.models.messages import SystemMessage
from agentparty.runtime.agent_memory import AgentMemoryStore, Engagement
from agentparty.runtime.conversations import ConversationStore
from agentparty.tasks.templates import TemplateRegistry, persistent_agent_id

runner = CliRunner()

TEMPLATE = """\
name: keeper
description: Keeps notes
model: simulated
parameters: {}
personality: careful
capabilities: [note_taking]
approval_required: false
memory: {visibility: all, max_keys: 10}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from agentparty.runtime.settings import get_settings

    monkeypatch.setenv("AGENTPARTY_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def keeper(home: Path) -> str:
    path = home / "keeper.yaml"
    path.write_text(TEMPLATE)
    code, out = invoke("templates", "create", str(path), "--publish")
    assert code == 0, out
    template = TemplateRegistry.at(home).find("keeper")
    assert template is not None
    return persistent_agent_id(template.id, "1.0.0")


def test_forget_erases_memory_and_conversations(home: Path) -> None:
    agent_id = keeper(home)
    memory = AgentMemoryStore.at(home)
    for key in ("city", "team"):
        memory.write(agent_id, key, key.upper(), limits=MemoryConfig(), where=Engagement("run-1", "note"))
    conversations = ConversationStore.at(home)
    engagement = conversations.begin(agent_id, "e1", "run-1", "note", WorkflowState(workflow_id="w", run_id="run-1"))
    conversations.append(engagement, [SystemMessage(content="hello"), SystemMessage(content="again")])

    code, out = invoke("agents", "memory", "keeper@1.0.0", "--json")
    assert code == 0 and [(r["key"], r["value"]) for r in json.loads(out)] == [("city", "CITY"), ("team", "TEAM")]

    code, out = invoke("agents", "forget", "keeper@1.0.0")
    assert code == 0, out
    assert out.strip() == (
        f"agent {agent_id} (keeper@1.0.0): erased 2 memory keys (2 recorded changes) and 2 conversation messages"
    )
    assert memory.entries(agent_id) == [] and conversations.engagements(agent_id) == []

    code, out = invoke("agents", "forget", agent_id, "--json")
    assert code == 0 and json.loads(out) == {
        "agent_id": agent_id,
        "agent": "keeper@1.0.0",
        "memory_keys": 0,
        "memory_changes": 0,
        "conversation_messages": 0,
    }, "an agent with nothing left to erase is not an error"
    assert invoke("agents", "memory", agent_id) == (0, f"agent {agent_id}: memory empty\n")


def test_forget_an_unknown_agent_fails(home: Path) -> None:
    code, out = invoke("agents", "forget", "no-such-agent")
    assert code == 1
    assert "no agent 'no-such-agent': no template version makes it, and no memory or conversation is kept" in out


def test_an_ad_hoc_agent_with_only_a_conversation_can_be_forgotten(home: Path) -> None:
    conversations = ConversationStore.at(home)
    workflow = WorkflowState(workflow_id="w", run_id="run-1")
    engagement = conversations.begin("ad-hoc-agent", "e1", "run-1", "note", workflow)
    conversations.append(engagement, [SystemMessage(content="hello")])
    code, out = invoke("agents", "forget", "ad-hoc-agent")
    assert (
        code == 0
        and out.strip() == "agent ad-hoc-agent: erased 0 memory keys (0 recorded changes) and 1 conversation messages"
    )


def test_a_new_version_that_inherits_memory(home: Path) -> None:
    keeper(home)
    code, out = invoke("templates", "version", "keeper", "--inherit-memory")
    assert code == 0, out
    code, out = invoke("templates", "version", "keeper", "--bump", "patch")
    assert code == 0, out
    memory = {r.version.version: r.memory for r in TemplateRegistry.at(home).versions("keeper")}
    assert [m.inherit if m else None for m in memory.values()] == [False, True, True], "copied from the latest"
    assert memory["1.1.0"] == MemoryConfig(visibility="all", max_keys=10, inherit=True)
    code, out = invoke("templates", "version", "keeper", "--fresh-memory")
    assert code == 0 and TemplateRegistry.at(home).versions("keeper")[-1].memory.inherit is False  # type: ignore[union-attr]


def test_a_version_gets_a_memory_from_a_file(home: Path) -> None:
    plain = home / "plain.yaml"
    plain.write_text(TEMPLATE.replace("memory: {visibility: all, max_keys: 10}\n", "").replace("keeper", "plain"))
    assert invoke("templates", "create", str(plain))[0] == 0
    code, out = invoke("templates", "version", "plain", "--inherit-memory")
    assert code == 2 and "has no memory to inherit into" in " ".join(out.replace("│", " ").split())
    config = home / "memory.yaml"
    config.write_text("visibility: named\nkeys: [goal]\n")
    code, out = invoke("templates", "version", "plain", "--memory", str(config), "--inherit-memory")
    assert code == 0, out
    latest = TemplateRegistry.at(home).versions("plain")[-1]
    assert latest.memory == MemoryConfig(visibility="named", keys=["goal"], inherit=True)
    config.write_text("visibility: named\n")
    code, out = invoke("templates", "version", "plain", "--memory", str(config))
    assert code == 1 and "memory.yaml" in out and "visibility 'named' shows the keys listed in keys" in out
