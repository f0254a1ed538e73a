"""remember / recall / forget_key through the real runner and the OpenAI SDK, against a local server scripted turn by
turn: which tools are offered, what the model reads back (results, conflicts, a full memory), what the system
prompt shows of the memory, inheritance between versions, and the changes the engagement's record carries.
Outside a flow run there are no checkpoints; the durable side is in ``tests/integration/agents/test_memory.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.llm_wire import WireServer
from support.memory_support import (
    TEMPLATE,
    call,
    memory_runner,
    publish,
    system_prompt,
    template_request,
    tool_result,
)

from agentparty.models import DEFAULT_MODEL_REGISTRY
from agentparty.models.memory import MemoryConfig
from agentparty.models.step_errors import ToolsRefused
from agentparty.runtime.agent_memory import AgentMemoryStore, Engagement, MemoryEntry
from agentparty.runtime.providers.simulated import SimulatedProvider
from agentparty.tasks.agent import AgentStepRequest, AgentStepResponse, ModelAgentRunner
from agentparty.tasks.memory_tools import PROMPT_CHARS, MemoryExtension, memory_tools, shown_memory
from agentparty.tasks.templates import TemplateRegistry
from agentparty.tasks.tools import ToolContext

ON: dict[str, Any] = {"enabled": True}


def templates(runner: ModelAgentRunner) -> TemplateRegistry:
    assert runner.templates is not None
    return runner.templates


def store(home: Path) -> AgentMemoryStore:
    return AgentMemoryStore.at(home)


@pytest.fixture(autouse=True)
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop per test: a runner's SDK client keeps its connections on the loop that opened them."""
    running = asyncio.new_event_loop()
    LOOP[:] = [running]
    yield running
    LOOP.clear()
    running.close()


LOOP: list[asyncio.AbstractEventLoop] = []


def run(coroutine: Any) -> Any:
    return LOOP[0].run_until_complete(coroutine)


def ask(runner: ModelAgentRunner, run_key: str, *, slot: str = "", version: str | None = None) -> AgentStepResponse:
    request = AgentStepRequest(
        step_id="note", agent=TEMPLATE, prompt="Note what you learn.", run_key=run_key, slot=slot, version=version
    )
    response: AgentStepResponse = run(runner.run(request))
    return response


def test_the_tools_are_offered_only_when_the_version_enables_memory(tmp_path: Path, server: WireServer) -> None:
    runner = memory_runner(tmp_path, wire=server)
    publish(templates(runner), None)
    server.script(text="nothing to note")
    ask(runner, "run-1")
    assert server.requests[0].tools == [], "no memory, no tools"

    publish(templates(runner), ON)  # version 1.1.0
    server.script(text="noted")
    ask(runner, "run-2")
    offered = {t["function"]["name"]: t["function"] for t in server.requests[1].tools}
    assert list(offered) == ["remember", "recall", "forget_key"]
    remember = offered["remember"]["parameters"]
    assert remember["required"] == ["key", "value"] and remember["additionalProperties"] is False
    assert remember["properties"]["key"]["maxLength"] == 128
    assert "expected_version" in remember["properties"] and "compare" not in offered["remember"]["description"]
    assert offered["recall"]["parameters"]["required"] == []


def test_remembered_in_one_run_recalled_and_shown_in_the_next(tmp_path: Path, server: WireServer) -> None:
    runner = memory_runner(tmp_path, wire=server)
    agent_id = publish(templates(runner), ON)
    server.script(tool_calls=[call("remember", key="city", value={"name": "Paris", "visits": 2})])
    server.script(text="noted")
    first = ask(runner, "run-1")
    assert tool_result(server.requests[1]) == {
        "key": "city",
        "version": 1,
        "replaced_version": None,
        "memory": {"bytes": 31, "max_bytes": 16384, "keys": 1, "max_keys": 100},
    }
    assert first.work is not None
    [change] = first.work.memory
    assert (change.agent_id, change.key, change.version, change.operation, change.step_id) == (
        agent_id,
        "city",
        1,
        "set",
        "note",
    )
    assert "Paris" not in change.model_dump_json(), "the graph record never holds the value"

    server.script(tool_calls=[call("recall", key="city"), call("recall")])
    server.script(text="Paris again")
    second = ask(runner, "run-2")
    shown = system_prompt(server.requests[2])
    assert '- "city" (version 1): {"name": "Paris", "visits": 2}' in shown
    assert tool_result(server.requests[3], 0) == {
        "key": "city",
        "found": True,
        "version": 1,
        "value": {"name": "Paris", "visits": 2},
    }
    assert tool_result(server.requests[3], 1)["keys"] == [{"key": "city", "version": 1, "bytes": 31}]
    assert second.work is not None and second.work.memory == (), "reading changes nothing"


def test_a_stale_expected_version_is_a_conflict_the_model_corrects(tmp_path: Path, server: WireServer) -> None:
    runner = memory_runner(tmp_path, wire=server)
    agent_id = publish(templates(runner), ON)
    memory = store(tmp_path)
    limits = MemoryConfig()
    for value in ("a", "b"):
        memory.write(agent_id, "todo", [value], limits=limits, where=Engagement("other-run", "x"))
    server.script(tool_calls=[call("remember", key="todo", value=["a", "c"], expected_version=1)])
    server.script(tool_calls=[call("remember", key="todo", value=["b", "c"], expected_version=2)])
    server.script(tool_calls=[call("remember", key="fresh", value=1, expected_version=0)])
    server.script(tool_calls=[call("remember", key="fresh", value=2, expected_version=0)])
    server.script(text="merged")
    response = ask(runner, "run-1")

    assert tool_result(server.requests[1]) == (
        "Error: conflict: 'todo' is at version 2, not 1 (someone changed it since you read it); "
        "recall it, merge your change and write again with its current version"
    )
    assert tool_result(server.requests[2])["version"] == 3
    assert tool_result(server.requests[3])["version"] == 1
    assert tool_result(server.requests[4]).startswith(
        "Error: conflict: 'fresh' exists at version 1 (expected_version 0 asserts a new key)"
    )
    assert memory.get(agent_id, "todo").value == ["b", "c"]  # type: ignore[union-attr]
    assert [c.ok for t in response.turns for c in t.tool_calls] == [False, True, True, False]


def test_a_write_past_the_limit_is_refused_saying_why(tmp_path: Path, server: WireServer) -> None:
    runner = memory_runner(tmp_path, wire=server)
    agent_id = publish(templates(runner), {"max_bytes": 64, "max_keys": 2})
    server.script(tool_calls=[call("remember", key="notes", value="x" * 80)])
    server.script(tool_calls=[call("remember", key="a", value=1), call("remember", key="b", value=2)])
    server.script(tool_calls=[call("remember", key="c", value=3)])
    server.script(text="full")
    ask(runner, "run-1")

    assert tool_result(server.requests[1]) == (
        "Error: memory full: 'notes' with this value takes 87 bytes and the rest of the memory 0, 87 in all, "
        "over the limit of 64 bytes (max_bytes) by 23. Store less, or forget a key (forget_key)"
    )
    assert tool_result(server.requests[3]) == (
        "Error: memory full: it holds 2 keys and the limit is 2 (max_keys), so the new key 'c' does not fit. "
        "Forget a key (forget_key) or overwrite an existing one"
    )
    assert [e.key for e in store(tmp_path).entries(agent_id)] == ["a", "b"]


def test_invalid_arguments_and_forgetting(tmp_path: Path, server: WireServer) -> None:
    runner = memory_runner(tmp_path, wire=server)
    agent_id = publish(templates(runner), ON)
    server.script(tool_calls=[call("remember", key="bad\nkey", value=1, extra=True)])
    server.script(tool_calls=[call("remember", key="k", value=1)])
    server.script(tool_calls=[call("forget_key", key="k", expected_version=2)])
    server.script(tool_calls=[call("forget_key", key="k", expected_version=1), call("forget_key", key="nope")])
    server.script(text="done")
    response = ask(runner, "run-1")

    invalid = tool_result(server.requests[1])
    assert invalid.startswith("Error: invalid arguments:") and "control characters" in invalid and "extra" in invalid
    assert tool_result(server.requests[3]).startswith("Error: conflict: 'k' is at version 1, not 2")
    assert tool_result(server.requests[4], -2) == {
        "key": "k",
        "forgotten": True,
        "version": 2,
        "memory": {"bytes": 0, "max_bytes": 16384, "keys": 0, "max_keys": 100},
    }
    assert tool_result(server.requests[4], -1) == {"key": "nope", "forgotten": False, "reason": "no such key"}
    assert store(tmp_path).entries(agent_id) == []
    assert response.work is not None
    assert [(c.key, c.version, c.operation, c.size_bytes) for c in response.work.memory] == [
        ("k", 1, "set", 2),
        ("k", 2, "delete", 0),
    ]


def test_a_repeated_call_applies_once_and_another_request_at_its_place_applies(
    tmp_path: Path, server: WireServer
) -> None:
    memory = store(tmp_path)
    runner = memory_runner(tmp_path, wire=server)
    publish(templates(runner), ON)
    request = AgentStepRequest(step_id="note", agent=TEMPLATE, prompt="", run_key="run-1")
    extension = runner.extensions[0]
    assert isinstance(extension, MemoryExtension)
    agent = runner._step_agent(request)
    found = extension.memory(request, agent)
    assert found is not None
    remember = memory_tools(found)[0]
    context = ToolContext("run-1", "note", "note", 1, "c1", idempotency_key="turn-1-call-0")

    def call_remember(value: str) -> Any:
        return run(remember.call("c1", {"key": "k", "value": value}, context))

    first, again, other = call_remember("v"), call_remember("v"), call_remember("w")
    assert first.content == again.content and '"version":1' in first.content
    assert '"version":2' in other.content, "other arguments at the same place are another request"
    assert [c.version for c in memory.changes(agent.instance.id, Engagement("run-1", "note"))] == [1, 2]


def test_what_the_prompt_shows_by_visibility(tmp_path: Path, server: WireServer) -> None:
    runner = memory_runner(tmp_path, wire=server)
    agent_id = publish(templates(runner), {"visibility": "named", "keys": ["goal", "missing"]})
    limits = MemoryConfig()
    for key, value in (("goal", "ship it"), ("secret_plan", "hidden")):
        store(tmp_path).write(agent_id, key, value, limits=limits, where=Engagement("earlier", "x"))
    server.script(text="ok")
    ask(runner, "run-1")
    shown = system_prompt(server.requests[0])
    assert '- "goal" (version 1): "ship it"' in shown and '- "missing": not set' in shown
    assert "secret_plan" not in shown

    publish(templates(runner), {"visibility": "none"})
    server.script(text="ok")
    ask(runner, "run-2")
    assert "Your memory" not in system_prompt(server.requests[1])


def test_the_prompt_shows_a_bounded_part_of_a_big_memory() -> None:
    assert shown_memory(MemoryConfig(), []).endswith(
        "(empty: remember stores what you want to keep for your next runs)"
    )
    entries = [MemoryEntry(f"k{i:02}", "v" * 1500, 1, 1504, "") for i in range(12)]
    shown = shown_memory(MemoryConfig(), entries)
    assert len(shown) <= PROMPT_CHARS + 80
    assert shown.count("… (502 more characters: recall it)") == 7  # each value cut at 1000 characters
    assert shown.endswith("(and 5 more keys not shown here: recall lists them)")


def test_the_prompt_snapshot_stays_the_same_for_a_retried_step(tmp_path: Path, server: WireServer) -> None:
    runner = memory_runner(tmp_path, wire=server)
    publish(templates(runner), ON)
    server.script(tool_calls=[call("remember", key="k", value="first")])
    server.script(text="done")
    ask(runner, "run-1")
    server.script(text="again")
    ask(runner, "run-1")  # the same engagement (a retry, a resume): the same system prompt as its first attempt
    server.script(text="next run")
    ask(runner, "run-2")
    prompts = [system_prompt(server.requests[i]) for i in (0, 2, 3)]
    assert prompts[0] == prompts[1] and '"k"' not in prompts[1]
    assert '- "k" (version 1): "first"' in prompts[2]


def test_a_new_version_starts_empty_unless_it_inherits(tmp_path: Path, server: WireServer) -> None:
    runner = memory_runner(tmp_path, wire=server)
    first = publish(templates(runner), ON)  # 1.0.0
    memory = store(tmp_path)
    memory.write(first, "city", "Paris", limits=MemoryConfig(), where=Engagement("run-0", "note"))

    plain = publish(templates(runner), ON)  # 1.1.0: no inherit
    server.script(text="ok")
    ask(runner, "run-1", version="1.1.0")
    assert memory.entries(plain) == [] and "Paris" not in system_prompt(server.requests[0])

    publish(templates(runner), {"inherit": True})  # 1.2.0: copies 1.1.0's memory, which is empty
    unused = publish(templates(runner), {"inherit": True})  # 1.3.0: never runs
    heir = publish(templates(runner), {"inherit": True, "max_keys": 5})  # 1.4.0
    memory.write(plain, "team", "blue", limits=MemoryConfig(), where=Engagement("run-1", "note"))
    server.script(text="ok")
    response = ask(runner, "run-2", version="1.4.0")
    # 1.3.0 never ran but would have inherited, 1.2.0 neither: so 1.4.0 copies 1.1.0's, what 1.2.0 would have.
    assert [(e.key, e.value, e.version) for e in memory.entries(heir)] == [("team", "blue", 1)]
    assert memory.entries(unused) == [] and not memory.initialised(unused)
    assert '- "team" (version 1): "blue"' in system_prompt(server.requests[1])
    assert response.work is not None and [(c.key, c.operation) for c in response.work.memory] == [("team", "inherit")]

    memory.forget(heir)
    server.script(text="ok")
    ask(runner, "run-3", version="1.4.0")
    assert memory.entries(heir) == [], "a forgotten agent does not inherit again"


def test_memory_for_a_model_without_functions_is_refused(tmp_path: Path, server: WireServer) -> None:
    runner = memory_runner(tmp_path, wire=server)
    with pytest.raises(ToolsRefused) as refused:
        templates(runner).create(template_request(ON, model="gpt-plain"))
    assert refused.value.problems == [
        (
            ("memory",),
            "model 'gpt-plain' does not support functions (supportsFunctions: false), so it cannot use "
            "the remember and recall tools of a memory",
        )
    ]


def test_the_simulated_model_uses_memory_deterministically(tmp_path: Path) -> None:
    def run_once(home: Path) -> list[tuple[str, bool]]:
        runner = memory_runner(home, providers={"simulated": SimulatedProvider()}, registry=DEFAULT_MODEL_REGISTRY)
        publish(templates(runner), ON, model="simulated")
        calls = []
        for run_key in ("run-1", "run-2"):
            response = ask(runner, run_key)
            calls += [(c.name, c.ok) for t in response.turns for c in t.tool_calls]
        return calls

    first, second = run_once(tmp_path / "a"), run_once(tmp_path / "b")
    assert first == second and first, "the same calls each time"
    assert all(ok for _, ok in first), first
    assert {name for name, _ in first} <= {"remember", "recall", "forget_key"}
