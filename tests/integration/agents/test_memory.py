"""Persistent memory in real runs against a real Prefect server: across runs and versions, concurrent writers by
the documented rule (fan-out items, processes), a remember replayed on resume applied once, the graph record, and
``agentparty agents forget``.

``agentparty run`` (the CLI, so the services are built as a user's are) drives agents on OpenAI's SDK against a
local wire server scripted turn by turn; fan-out and graph tests run compiled workflows in this process. The
memory is read back from its SQLite file, the graph with the official ``neo4j`` driver.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.llm_wire import WireServer
from support.memory_support import call, memory_runner, publish, system_prompt, tool_result
from support.run_services_support import services

from agentparty.flows import CompileOptions, compile_workflow
from agentparty.models import DEFAULT_MODEL_REGISTRY, WorkflowDefinition
from agentparty.models.memory import MemoryConfig
from agentparty.runtime.agent_memory import AgentMemoryStore, Engagement, MemoryConflict
from agentparty.runtime.graph_server import DATABASE_NAME
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.tasks.templates import TemplateRegistry

pytestmark = pytest.mark.usefixtures("prefect_server")

TESTS = Path(__file__).resolve().parents[2]


def workflow(folder: Path, name: str, step: dict[str, Any]) -> Path:
    doc = {
        "id": name,
        "name": name,
        "steps": [step],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def keeper_step(**configuration: Any) -> dict[str, Any]:
    return {
        "id": "note",
        "type": "task",
        "configuration": {"agent": "keeper", "prompt": "Note what matters.", "maxTurns": 4, **configuration},
    }


def agentparty(home: Path, wire: WireServer, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("agentparty")), *args],
        env=environment(home, wire),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def environment(home: Path, wire: WireServer) -> dict[str, str]:
    return {
        **os.environ,
        "AGENTPARTY_HOME": str(home),
        "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OPENAI_API_KEY": "sk-test-memory",
        "OPENAI_BASE_URL": wire.url + "/v1",
    }


def run_command(path: Path, *extra: str) -> list[str]:
    return ["run", str(path), "--no-graph", "--no-events", *extra]


def test_memory_lasts_across_runs_of_one_version_and_not_into_another(tmp_path: Path) -> None:
    home = tmp_path / "home"
    templates = TemplateRegistry.at(home, None, DEFAULT_MODEL_REGISTRY)
    first = publish(templates, {"visibility": "all"}, model="gpt-4o")
    path = workflow(tmp_path, "memory-runs", keeper_step())
    memory = AgentMemoryStore.at(home)
    with WireServer() as wire:
        wire.script(tool_calls=[call("remember", key="city", value={"name": "Paris"}, expected_version=0)])
        wire.script(text="noted")
        ran = agentparty(home, wire, *run_command(path))
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert tool_result(wire.requests[1])["version"] == 1

        wire.reset()
        wire.script(tool_calls=[call("recall", key="city")])
        wire.script(text="Paris, as before")
        ran = agentparty(home, wire, *run_command(path))
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert '- "city" (version 1): {"name": "Paris"}' in system_prompt(wire.requests[0]), "shown in run 2"
        assert tool_result(wire.requests[1]) == {"key": "city", "found": True, "version": 1, "value": {"name": "Paris"}}

        second = publish(templates, {"visibility": "all"})  # 1.1.0, which does not inherit
        wire.reset()
        wire.script(tool_calls=[call("recall", key="city")])
        wire.script(text="nothing known")
        ran = agentparty(home, wire, *run_command(path))
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "Paris" not in system_prompt(wire.requests[0]) and "(empty" in system_prompt(wire.requests[0])
        assert tool_result(wire.requests[1])["found"] is False, "another version's agent does not read it"
        assert [e.key for e in memory.entries(first)] == ["city"] and memory.entries(second) == []

        shown = agentparty(home, wire, "agents", "memory", "keeper@1.0.0", "--json")
        assert json.loads(shown.stdout) == [{"key": "city", "version": 1, "bytes": 20, "value": {"name": "Paris"}}]
        forgot = agentparty(home, wire, "agents", "forget", "keeper@1.0.0", "--json")
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    erased = json.loads(forgot.stdout)
    assert (erased["agent_id"], erased["memory_keys"], erased["memory_changes"]) == (first, 1, 1)
    assert erased["conversation_messages"] > 0, "both runs' conversations went too"
    assert memory.entries(first) == [] and memory.changes(first, Engagement("any", "note")) == ()


def test_a_remember_replayed_on_resume_is_applied_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    agent_id = publish(TemplateRegistry.at(home, None, DEFAULT_MODEL_REGISTRY), {"visibility": "none"}, model="gpt-4o")
    path = workflow(tmp_path, "memory-resume", keeper_step())
    key = "memory-resume-1"
    with WireServer() as wire:
        wire.script(tool_calls=[call("remember", key="counter", value=1, expected_version=0)])
        wire.script(delay=120, text="never sent")  # turn 2: the run dies while the model answers
        killed = subprocess.Popen(
            [str(Path(sys.executable).with_name("agentparty")), *run_command(path, "--resume", key)],
            env=environment(home, wire),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while len(wire.requests) < 2:
                assert killed.poll() is None and time.monotonic() < deadline, "the run never reached turn 2"
                time.sleep(0.05)
        finally:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait(30)
        memory = AgentMemoryStore.at(home)
        assert [(e.key, e.version) for e in memory.entries(agent_id)] == [("counter", 1)]

        wire.reset()
        wire.script(text="counted")
        resumed = agentparty(home, wire, *run_command(path, "--resume", key))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert len(wire.requests) == 1, "turn 1 (and its remember) came from their checkpoints"
        assert len(wire.requests[0].tool_results) == 1 and tool_result(wire.requests[0])["version"] == 1
    assert [(e.key, e.version) for e in memory.entries(agent_id)] == [("counter", 1)], "applied once"
    changes = memory.changes(agent_id, Engagement(key, "note"))
    assert [(c.key, c.version, c.operation) for c in changes] == [("counter", 1, "set")]


def fan_out(item_step: dict[str, Any]) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "id": "memory-fan-out",
            "name": "Memory fan-out",
            "steps": [
                {
                    "id": "claims",
                    "type": "parallel",
                    "configuration": {"forEach": ["a", "b"], "maxConcurrency": 2, "step": item_step},
                }
            ],
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
        }
    )


def test_two_fan_out_items_writing_one_key_follow_the_rule(tmp_path: Path) -> None:
    item = {"type": "task", "configuration": {"agent": "keeper", "prompt": "Claim ${item}.", "maxTurns": 3}}
    with WireServer() as wire:
        runner = memory_runner(tmp_path, wire=wire)
        assert runner.templates is not None
        agent_id = publish(runner.templates, {"visibility": "none"})
        # Both items' first turns are answered after 2 s, so both ask before either asks again.
        for value in ("first", "second"):
            wire.script(delay=2, tool_calls=[call("remember", key="owner", value=value, expected_version=0)])
        wire.script(text="done")
        wire.script(text="done")
        options = CompileOptions(services=services(home=tmp_path, agent_runner=runner, recorder=None, events=None))
        result = asyncio.run(compile_workflow(fan_out(item), options=options)(inputs={}))

        answers = [tool_result(r) for r in wire.requests if r.tool_results]
    assert result.steps["claims"].status.value == "completed"
    conflicts = [a for a in answers if isinstance(a, str)]
    assert len(conflicts) == 1 and conflicts[0].startswith(
        "Error: conflict: 'owner' exists at version 1 (expected_version 0 asserts a new key)"
    ), answers
    entry = AgentMemoryStore.at(tmp_path).get(agent_id, "owner")
    assert entry is not None and entry.version == 1 and entry.value in ("first", "second")

    with WireServer() as wire:  # without expected_version: both apply, one after the other; the last one stays
        runner = memory_runner(tmp_path, wire=wire)
        for value in ("first", "second"):
            wire.script(delay=2, tool_calls=[call("remember", key="owner", value=value)])
        wire.script(text="done")
        wire.script(text="done")
        options = CompileOptions(services=services(home=tmp_path, agent_runner=runner, recorder=None, events=None))
        asyncio.run(compile_workflow(fan_out(item), options=options)(inputs={}))
        written = sorted(
            (a["version"], a["replaced_version"]) for r in wire.requests if r.tool_results for a in [tool_result(r)]
        )
    assert written == [(2, 1), (3, 2)]
    entry = AgentMemoryStore.at(tmp_path).get(agent_id, "owner")
    assert entry is not None and entry.version == 3


def _increment(path: str, times: int, results: multiprocessing.Queue[tuple[int, int]]) -> None:
    """Read-modify-write one counter ``times`` times with compare-and-set, recalling and retrying on conflict."""
    store = AgentMemoryStore(Path(path))
    limits, here = MemoryConfig(), Engagement("run", "slot")
    applied = conflicts = 0
    while applied < times:
        entry = store.get("agent", "counter")
        expected = entry.version if entry else 0
        try:
            store.write(
                "agent",
                "counter",
                (entry.value if entry else 0) + 1,
                limits=limits,
                where=here,
                expected_version=expected,
            )
            applied += 1
        except MemoryConflict:
            conflicts += 1
    results.put((applied, conflicts))


def test_compare_and_set_from_several_processes_loses_no_update(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite"
    AgentMemoryStore(path)
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[int, int]] = context.Queue()
    workers = [context.Process(target=_increment, args=(str(path), 40, results)) for _ in range(3)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    entry = AgentMemoryStore(path).get("agent", "counter")
    assert entry is not None and (entry.value, entry.version) == (120, 120), outcomes
    print("conflicts per process:", [c for _, c in outcomes])


def test_memory_changes_are_recorded_in_the_graph_once(tmp_path: Path, graph_store: GraphStore) -> None:
    definition = WorkflowDefinition.model_validate(
        {
            "id": "memory-graph",
            "name": "Memory graph",
            "steps": [keeper_step()],
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
        }
    )
    with WireServer() as wire:
        runner = memory_runner(tmp_path, wire=wire)
        assert runner.templates is not None
        agent_id = publish(runner.templates, {"visibility": "all"})

        def run(key: str, *scripts: dict[str, Any]) -> None:
            for script in scripts:
                wire.script(**script)
            recorder = GraphRecorder(graph_store)
            options = CompileOptions(
                services=services(
                    home=tmp_path, agent_runner=memory_runner(tmp_path, wire=wire), recorder=recorder, events=None
                )
            )
            asyncio.run(compile_workflow(definition, options=options)(inputs={}, resume_key=key))

        remember = {"tool_calls": [call("remember", key="secret_plan", value="take the hill at dawn")]}
        run("memory-graph-1", remember, {"text": "noted"})
        first = changes(graph_store, agent_id)
        run("memory-graph-1")  # the same run again: the step reused, its changes written again
        again = changes(graph_store, agent_id)
        run("memory-graph-2", remember, {"text": "noted again"})
        both = changes(graph_store, agent_id)
    [change] = first
    assert (change["key"], change["version"], change["operation"], change["step_id"]) == (
        "secret_plan",
        1,
        "set",
        "note",
    )
    assert change["size_bytes"] == len("secret_plan") + len('"take the hill at dawn"')
    assert "dawn" not in json.dumps(change, default=str), "the graph never holds the value"
    assert again == first, "a replayed write MERGEs the same node"
    assert [c["version"] for c in both] == [1, 2] and len({c["task_id"] for c in both}) == 2


def changes(store: GraphStore, agent_id: str) -> list[dict[str, Any]]:
    """The agent's MemoryChange nodes (one CHANGED_MEMORY each), read with the driver's own query."""
    records, _, _ = store.driver.execute_query(
        "MATCH (a:Agent {id: $agent})-[r:CHANGED_MEMORY]->(c:MemoryChange) "
        "RETURN properties(c) AS c, count(r) AS links ORDER BY c.version",
        agent=agent_id,
        database_=DATABASE_NAME,
    )
    assert all(r["links"] == 1 for r in records)
    return [dict(r["c"]) for r in records]
