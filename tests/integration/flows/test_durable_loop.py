"""Durable turns: an agent's loop killed in the middle and resumed repeats no model turn and no tool call.

``agentparty run`` runs a workflow whose agent (OpenAI's SDK against a local
wire server, scripted turn by turn) calls Python tools with side effects: each
real call appends a line to a file. The process is SIGKILLed while the model
is answering turn 3, then the run is resumed under the same key: the server
must see only turns 3 and 4 again, and the file must hold every side effect
once, including a payment the model asks for a second time (the tool's own
idempotency key). The checkpoints are Prefect task runs named like the
conversation.
"""

from __future__ import annotations

import asyncio
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

from agentparty.runtime.conversations import ConversationStore
from agentparty.tasks.templates import persistent_agent_id

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

TESTS = Path(__file__).resolve().parents[2]
RUN_KEY = "durable-loop-1"


def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def definition(folder: Path, retries: int = 0) -> Path:
    doc = {
        "id": "durable-loop",
        "name": "Durable loop",
        "steps": [
            {
                "id": "research",
                "type": "task",
                "configuration": {
                    "agent": "bookkeeper",
                    "model": "gpt-4o",
                    "prompt": "Record a, b and c, and charge order 42.",
                    "tools": ["support.agent_tools:record_step", "support.agent_tools:charge"],
                    "maxTurns": 6,
                },
            }
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": retries, "backoffStrategy": "fixed", "baseDelay": 0},
    }
    path = folder / "durable-loop.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def command(path: Path) -> list[str]:
    agentparty = str(Path(sys.executable).with_name("agentparty"))
    return [agentparty, "run", str(path), "--resume", RUN_KEY, "--no-graph", "--no-events"]


def environment(wire: WireServer, effects: Path, prefect_server: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "PREFECT_API_URL": prefect_server,
        "OPENAI_API_KEY": "sk-test-durable",
        "OPENAI_BASE_URL": wire.url + "/v1",
        "AGENTPARTY_TEST_SIDE_EFFECTS": str(effects),
        "AGENTPARTY_HOME": str(effects.parent / "home"),
    }


def conversation(effects: Path) -> list[Any]:
    """The bookkeeper's conversation in this run, as the store under the run's home keeps it."""
    store = ConversationStore.at(effects.parent / "home")
    agent_id = persistent_agent_id("ad-hoc", "bookkeeper", "gpt-4o")
    [engagement] = store.engagements(agent_id)
    return store.page(engagement.id, limit=200).messages


def shape(messages: list[Any]) -> list[str]:
    """Each message as type (and tool-result code), to compare conversations at a glance."""
    return [m.type + (f":{m.code}" if getattr(m, "code", None) else "") for m in messages]


def wait_for_requests(wire: WireServer, count: int, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(wire.requests) < count:
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the run made {len(wire.requests)} model calls, not {count} (rc {process.poll()})")
        time.sleep(0.05)


async def checkpoint_names(flow_name: str) -> list[str]:
    """The task runs of every flow run of ``flow_name``: the steps and the loop's checkpoints."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with get_client() as client:
        runs = await client.read_task_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    return [run.name for run in runs]


def test_a_loop_killed_in_turn_3_resumes_without_repeating_a_turn_or_a_call(
    tmp_path: Path, prefect_server: str
) -> None:
    effects = tmp_path / "side-effects.log"
    path = definition(tmp_path)
    with WireServer() as wire:
        env = environment(wire, effects, prefect_server)
        wire.script(tool_calls=[call("record_step", {"note": "a"})])
        wire.script(tool_calls=[call("record_step", {"note": "b"}), call("charge", {"order_id": "42", "amount": 7})])
        wire.script(delay=120, output="never sent")  # turn 3: the model is still answering when the run dies
        log = (tmp_path / "killed.log").open("wb")
        killed = subprocess.Popen(command(path), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_requests(wire, 3, killed)
        finally:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait(30)
            log.close()
        before = effects.read_text().splitlines()
        assert [line.split("|")[2] for line in before if not line.startswith("charge")] == ["a", "b"]
        assert [line for line in before if line.startswith("charge")] == ["charge|42|7"]

        wire.reset()
        # Turn 3 again (it never finished), asking to charge order 42 once more, then the answer.
        wire.script(tool_calls=[call("record_step", {"note": "c"}), call("charge", {"order_id": "42", "amount": 7})])
        wire.script(text="a, b and c recorded; order 42 charged")
        resumed = subprocess.run(command(path), env=env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr

        requests = wire.requests
    assert len(requests) == 2, "turns 1 and 2 were asked again"
    assert len(requests[0].tool_results) == 3, "turn 3 was asked with the stored results of turns 1 and 2"
    lines = effects.read_text().splitlines()
    assert [line.split("|")[2] for line in lines if not line.startswith("charge")] == ["a", "b", "c"]
    assert [line for line in lines if line.startswith("charge")] == ["charge|42|7"], "order 42 charged twice"
    assert "turn 1 · model gpt-4o" in resumed.stdout and "(cached)" in resumed.stdout

    said = conversation(effects)
    result = "system:tool_result"
    assert shape(said) == [
        *("system", "user", "agent", result),  # turn 1 and its result, written before the kill
        *("agent", result, result),  # turn 2 (a replay on resume wrote neither again)
        *("agent", result, result, "agent"),  # turn 3 asked again after the kill, then the answer
    ]
    assert len({m.id for m in said}) == len(said)

    names = asyncio.run(checkpoint_names("Durable loop"))
    for expected in ("research · turn 1", "research · turn 1 · record_step", "research · turn 2 · charge"):
        assert expected in names, f"{expected!r} not among the task runs {sorted(set(names))}"
    assert names.count("research · turn 1 · record_step") == 2, "each run has its checkpoint (the resume cached)"


def test_a_retried_step_continues_its_conversation_from_its_checkpoints(tmp_path: Path, prefect_server: str) -> None:
    """Attempt 1 fails in turn 2 (the provider is down); attempt 2 takes turn 1 and its call from their checkpoints
    and goes on: the model is not asked turn 1 again, and the conversation says what happened in between."""
    effects = tmp_path / "side-effects.log"
    path = definition(tmp_path, retries=1)
    with WireServer() as wire:
        env = environment(wire, effects, prefect_server)
        wire.script(tool_calls=[call("record_step", {"note": "a"})])
        wire.script(status=503, error="overloaded")
        wire.script(text="a recorded")
        ran = subprocess.run(
            [*command(path)[:3], "--no-graph", "--no-events"], env=env, capture_output=True, text=True, timeout=300
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert len(wire.requests) == 3, "turn 1 was asked again on the retry"
    assert [line.split("|")[2] for line in effects.read_text().splitlines()] == ["a"]
    said = conversation(effects)
    assert shape(said) == ["system", "user", "agent", "system:tool_result", "error", "agent"]
    assert said[4].content.startswith("attempt 1 failed: ProviderUnavailable") and said[4].recoverable
    assert said[-1].content == "a recorded"
