"""``/approvals`` end to end: real runs pause on the session's Prefect server and are answered over HTTP.

Keys, roles and bodies checked before Prefect is asked are the unit half:
``tests/unit/api/test_approvals.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.run_services_support import services

from agentparty.api import create_app
from agentparty.api.security import key_digest
from agentparty.flows import CompileOptions, WorkflowFailed, WorkflowResult, compile_workflow
from agentparty.models import DEFAULT_MODEL_REGISTRY, CreateAgentTemplateRequest, WorkflowDefinition
from agentparty.models.access import DEFAULT_ROLES, ApiAccessConfig
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import BudgetLedger
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.providers.simulated import SimulatedProvider
from agentparty.tasks.agent import ModelAgentRunner
from agentparty.tasks.templates import TemplateRegistry

KEYS = {"ops": "ops-key-1", "viewer": "viewer-key-1"}
ACCESS = ApiAccessConfig.model_validate(
    {
        "apiKeys": [
            {"name": "ops", "role": "operator", "keySha256": key_digest(KEYS["ops"])},
            {"name": "watcher", "role": "viewer", "keySha256": key_digest(KEYS["viewer"])},
        ],
    }
)
AS_OPS = {"X-API-Key": KEYS["ops"]}
AS_VIEWER = {"X-API-Key": KEYS["viewer"]}
INTERVENTION = {
    "retryAttempts": 0,
    "backoffStrategy": "fixed",
    "baseDelay": 0,
    "fallbackAction": "human_intervention",
    "humanInterventionTimeout": 300,
}


@asynccontextmanager
async def api(access: ApiAccessConfig = ACCESS) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running (its one Prefect client open), called in process."""
    app = create_app(access)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        yield client


def workflow(steps: list[dict[str, Any]], **extra: Any) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "id": "approvals-test",
            "name": f"Approvals {uuid.uuid4().hex[:8]}",
            "steps": steps,
            "triggers": [{"type": "manual"}],
            "errorHandling": INTERVENTION,
            **extra,
        }
    )


def start(
    definition: WorkflowDefinition, runner: ModelAgentRunner | None = None, outbox: Outbox | None = None
) -> Callable[[], WorkflowResult]:
    """Run the workflow in a thread (it pauses there); the returned function joins it and gives its result.
    The run's events go to ``outbox`` (private, never relayed) when one is given."""
    outcome: dict[str, WorkflowResult] = {}
    bus = EventBus(outbox, None, mirror=False) if outbox is not None else None

    def target() -> None:
        flow = compile_workflow(definition, options=CompileOptions(services=services(agent_runner=runner, events=bus)))
        try:
            outcome["result"] = asyncio.run(flow())
        except WorkflowFailed as exc:
            outcome["result"] = exc.result

    thread = threading.Thread(target=target)
    thread.start()

    def join() -> WorkflowResult:
        thread.join(timeout=240)
        return outcome["result"]

    return join


async def pending(client: httpx.AsyncClient, workflow_name: str) -> dict[str, Any]:
    """Wait until GET /approvals lists a pause of the workflow's run."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        response = await client.get("/approvals", headers=AS_VIEWER)
        assert response.status_code == 200, response.text
        mine = [a for a in response.json() if a["workflow"] == workflow_name]
        if mine:
            assert len(mine) == 1
            return mine[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no approval of {workflow_name!r} was listed")


# -- human intervention ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_approving_a_failed_step_retries_it_and_the_run_completes(handlers: Any) -> None:
    name = f"shaky-{uuid.uuid4().hex[:6]}"
    definition = workflow(
        [
            {
                "id": "shaky",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:flaky"},
                "inputs": {"name": name, "failures": 1},
            }
        ]
    )
    join = start(definition)

    async def scenario() -> tuple[dict[str, Any], list[httpx.Response], int, int]:
        async with api() as client:
            approval = await pending(client, definition.name)
            run = approval["flow_run_id"]
            refused = await client.post(f"/approvals/{run}/approve", headers=AS_VIEWER)
            body = {"note": "network is back", "pause_key": approval["pause_key"]}
            answers = await asyncio.gather(
                *(client.post(f"/approvals/{run}/approve", headers=AS_OPS, json=body) for _ in range(2))
            )
            await asyncio.to_thread(join)
            again = await client.post(f"/approvals/{run}/approve", headers=AS_OPS)
            return approval, answers, refused.status_code, again.status_code

    approval, answers, refused, again = asyncio.run(scenario())
    assert (
        approval["kind"] == "human_intervention"
        and approval["step_id"] == "shaky"
        and approval["pause_key"] == "shaky-1"
    )
    assert approval["id"] == f"{approval['flow_run_id']}:shaky-1" and approval["flow_run_name"]
    assert "Step shaky failed" in approval["description"] and "transient failure 1" in approval["description"]
    assert approval["input_schema"]["title"] == "HumanDecision" and approval["expires_at"] > approval["requested_at"]
    assert refused == 403
    assert sorted(r.status_code for r in answers)[0] == 200 and sorted(r.status_code for r in answers)[1] in (404, 409)
    accepted = next(r.json() for r in answers if r.status_code == 200)
    assert accepted["decided_by"] == "ops" and accepted["run_input"]["action"] == "retry"
    assert again == 404, "a run that is not paused has nothing to approve"

    result = join()
    assert result.status.value == "completed"
    assert result.steps["shaky"].status.value == "completed" and result.steps["shaky"].attempts == 2
    assert handlers.CALLS[name] == 2


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_rejecting_a_failed_step_aborts_the_run(handlers: Any) -> None:
    name = f"broken-{uuid.uuid4().hex[:6]}"
    definition = workflow(
        [
            {
                "id": "broken",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:always_fails"},
                "inputs": {"name": name},
            },
            {
                "id": "after",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:echo"},
                "inputs": {"got": "${steps.broken.output}"},
            },
        ]
    )
    join = start(definition)

    async def scenario() -> httpx.Response:
        async with api() as client:
            approval = await pending(client, definition.name)
            return await client.post(
                f"/approvals/{approval['flow_run_id']}/reject", headers=AS_OPS, json={"reason": "beyond repair"}
            )

    response = asyncio.run(scenario())
    assert response.status_code == 200, response.text
    assert response.json()["run_input"] == {"action": "abort", "output": None, "note": "beyond repair (by ops)"}
    result = join()
    assert result.status.value == "failed" and result.steps["broken"].status.value == "failed"
    assert "operator aborted the run: beyond repair (by ops)" in (result.reason or "")
    assert handlers.CALLS[name] == 1 and "echo" not in handlers.CALLS


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_key_whose_conditions_leave_the_run_out_neither_sees_nor_answers_its_approval(handlers: Any) -> None:
    """``conditions: {workflows: [...]}`` on approvals: another workflow's pause is not listed and answering it
    is 403; an unconditioned operator still sees and answers it."""
    scoped_key = "scoped-key-1"
    access = ApiAccessConfig.model_validate(
        {
            "roles": {
                **{role: [p.model_dump() for p in perms] for role, perms in DEFAULT_ROLES.items()},
                "scoped": [
                    {"resource": "approvals", "actions": ["read", "update"], "conditions": {"workflows": ["elsewhere"]}}
                ],
            },
            "apiKeys": [
                *ACCESS.model_dump(by_alias=True, exclude_none=True)["apiKeys"],
                {"name": "scoped", "role": "scoped", "keySha256": key_digest(scoped_key)},
            ],
        }
    )
    name = f"scoped-{uuid.uuid4().hex[:6]}"
    definition = workflow(
        [
            {
                "id": "broken",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:always_fails"},
                "inputs": {"name": name},
            }
        ]
    )
    join = start(definition)

    async def scenario() -> tuple[list[Any], int, int]:
        async with api(access) as client:
            approval = await pending(client, definition.name)
            listed = (await client.get("/approvals", headers={"X-API-Key": scoped_key})).json()
            path = f"/approvals/{approval['flow_run_id']}/reject"
            refused = await client.post(path, headers={"X-API-Key": scoped_key}, json={"reason": "not mine"})
            answered = await client.post(path, headers=AS_OPS, json={"reason": "done"})
            return listed, refused.status_code, answered.status_code

    listed, refused, answered = asyncio.run(scenario())
    assert [a for a in listed if a["workflow"] == definition.name] == []
    assert refused == 403 and answered == 200
    assert join().status.value == "failed"


# -- governance -----------------------------------------------------------------------------------


def governed_runner(home: Path) -> ModelAgentRunner:
    """A ``writer`` template whose first transition (initialized → running) needs a human."""
    templates = TemplateRegistry.at(home)
    templates.create(
        CreateAgentTemplateRequest(
            name="writer",
            description="Writes headlines",
            model="simulated",
            parameters={"temperature": 0.2},
            personality="terse",
            capabilities=["copywriting"],
            approval_required=False,
            governance_rules={"transitions": {"initialized_to_running": {"approval": "human", "timeout": 300}}},
        )
    )
    templates.publish("writer", "1.0.0")
    router = ModelRouter(
        registry=DEFAULT_MODEL_REGISTRY,
        providers={"simulated": SimulatedProvider()},
        breaker_store=SqliteBreakerStore(home / "breakers.sqlite"),
        ledger=BudgetLedger(home / "budgets.sqlite"),
    )
    return ModelAgentRunner(router=router, templates=templates)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_governed_transition_approved_over_http_records_the_keys_name(tmp_path: Path) -> None:
    runner, outbox = governed_runner(tmp_path), Outbox(tmp_path / "outbox.sqlite")
    definition = workflow(
        [{"id": "write", "type": "task", "configuration": {"agent": "writer", "prompt": "A headline about graphs"}}],
        errorHandling={"retryAttempts": 0, "backoffStrategy": "fixed", "baseDelay": 0},
    )
    join = start(definition, runner, outbox)

    async def scenario() -> tuple[dict[str, Any], httpx.Response]:
        async with api() as client:
            approval = await pending(client, definition.name)
            answer = await client.post(
                f"/approvals/{approval['flow_run_id']}/approve", headers=AS_OPS, json={"reason": "looks fine"}
            )
            return approval, answer

    approval, answer = asyncio.run(scenario())
    assert approval["kind"] == "governance" and approval["transition"] == {"source": "initialized", "target": "running"}
    assert approval["step_id"] is None and approval["input_schema"]["title"] == "ApprovalDecision"
    assert "Agent writer" in approval["description"] and "from initialized to running" in approval["description"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["run_input"] == {"approve": True, "reason": "looks fine", "approver": "ops"}

    result = join()
    assert result.status.value == "completed" and result.steps["write"].status.value == "completed"
    first = next(
        json.loads(row.value)["payload"] for row in outbox.pending() if row.event_type == "agent_state_transition"
    )
    assert (first["previous_state"], first["new_state"]) == ("initialized", "running")
    assert first["transition_approver"] == "user:ops" and first["transition_reason"] == "looks fine"


# -- tools ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_tool_calls_approved_and_refused_over_http(tmp_path: Path) -> None:
    """An agent's tool that needs approval pauses the run per call; GET /approvals shows the tool and its
    arguments (redacted), an approval lets the call through, a rejection goes back to the model as a refusal."""
    key = "sk-proj-" + uuid.uuid4().hex
    from support import agent_tools
    from support.llm_wire import WireServer

    from agentparty.runtime.providers.openai_provider import OpenAIProvider

    agent_tools.CALLS.clear()
    definition = workflow(
        [
            {
                "id": "weather",
                "type": "task",
                "configuration": {
                    "agent": "forecaster",
                    "model": "gpt-4o",
                    "prompt": "Compare Paris and Rome.",
                    "tools": [{"function": "support.agent_tools:lookup", "needsApproval": True}],
                },
            }
        ],
        errorHandling={"retryAttempts": 0, "backoffStrategy": "fixed", "baseDelay": 0},
    )
    with WireServer() as wire:
        router = ModelRouter(
            registry=DEFAULT_MODEL_REGISTRY,
            providers={"openai": OpenAIProvider(key, base_url=wire.url + "/v1", timeout=30)},
            breaker_store=SqliteBreakerStore(tmp_path / "breakers.sqlite"),
            ledger=BudgetLedger(tmp_path / "budgets.sqlite"),
        )
        runner = ModelAgentRunner(router=router, templates=TemplateRegistry.at(tmp_path), stream=False)
        wire.script(tool_calls=[{"name": "lookup", "arguments": {"city": "Paris"}}])
        wire.script(tool_calls=[{"name": "lookup", "arguments": {"city": f"Rome {key}"}}])
        wire.script(text="Paris is 21 C; Rome was not looked up.")
        join = start(definition, runner)

        async def scenario() -> list[tuple[dict[str, Any], httpx.Response]]:
            answers = []
            async with api() as client:
                for verb, body in (("approve", {}), ("reject", {"reason": "Rome is out of scope"})):
                    approval = await pending(client, definition.name)
                    answer = await client.post(
                        f"/approvals/{approval['flow_run_id']}/{verb}", headers=AS_OPS, json=body
                    )
                    answers.append((approval, answer))
                    while (await client.get("/approvals", headers=AS_VIEWER)).json():  # until the run goes on
                        await asyncio.sleep(0.1)
            return answers

        (first, approved), (second, rejected) = asyncio.run(scenario())
        result = join()
        requests = wire.requests

    assert first["kind"] == "tool" and first["tool"] == {"name": "lookup", "arguments": '{"city": "Paris"}'}
    assert first["pause_key"].startswith("tool-") and first["input_schema"]["title"] == "ToolCallDecision"
    assert "asks to call the tool lookup" in first["description"]
    assert second["tool"]["arguments"] == '{"city": "Rome ***redacted***"}' and key not in json.dumps(second)
    assert approved.status_code == 200 and approved.json()["run_input"]["approve"] is True
    assert rejected.status_code == 200 and rejected.json()["run_input"]["approver"] == "ops"

    assert result.status.value == "completed", result
    assert agent_tools.CALLS == [("lookup", {"city": "Paris", "unit": "celsius"})], "the rejected call ran"
    refusal = requests[2].tool_results[-1]["content"]
    assert refusal == "Error: the call was not made: rejected by ops: Rome is out of scope"
    calls = [c for turn in result.steps["weather"].turns for c in turn.tool_calls]
    assert [(c.ok, c.refused) for c in calls] == [(True, False), (False, True)]
