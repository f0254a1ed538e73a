"""Agent steps inside compiled workflows, against a real Prefect server: templates, lifecycle, budgets, fallbacks."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from support.prefect_pauses import resume_with_input, wait_for_paused_run
from support.run_services_support import services

from agentparty.flows import CompileOptions, WorkflowFailed, WorkflowResult, compile_workflow
from agentparty.models import DEFAULT_MODEL_REGISTRY, CreateAgentTemplateRequest, WorkflowDefinition
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import BudgetLedger
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.providers.simulated import SimulatedProvider, SimulatedSettings
from agentparty.tasks.agent import ModelAgentRunner
from agentparty.tasks.templates import TemplateRegistry

pytestmark = pytest.mark.usefixtures("prefect_server")

SCHEMA = {
    "type": "object",
    "properties": {"headline": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["headline", "confidence"],
}


def agent_step(step_id: str = "write", **configuration: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "task",
        "configuration": {"agent": "writer", "prompt": "Write a headline about ${inputs.topic}", **configuration},
    }


def definition(steps: list[dict[str, Any]], retries: int = 0, **extra: Any) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "id": "agents-test",
            "name": "Agents test",
            "inputs": {"topic": {"type": "string", "default": "graphs"}},
            "steps": steps,
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": retries, "backoffStrategy": "fixed", "baseDelay": 0},
            **extra,
        }
    )


def make_runner(
    tmp_path: Path, simulated: SimulatedSettings | None = None, governance: dict[str, Any] | None = None
) -> ModelAgentRunner:
    templates = TemplateRegistry.at(tmp_path)
    request = CreateAgentTemplateRequest(
        name="writer",
        description="Writes headlines",
        model="simulated",
        parameters={"temperature": 0.2},
        personality="terse",
        capabilities=["copywriting"],
        approval_required=False,
        governance_rules=governance or {"transitions": {}},
    )
    templates.create(request)
    templates.publish("writer", "1.0.0")
    router = ModelRouter(
        registry=DEFAULT_MODEL_REGISTRY,
        providers={"simulated": SimulatedProvider(simulated)},
        breaker_store=SqliteBreakerStore(tmp_path / "breakers.sqlite"),
        ledger=BudgetLedger(tmp_path / "budgets.sqlite"),
    )
    return ModelAgentRunner(router=router, templates=templates)


def run(defn: WorkflowDefinition, runner: ModelAgentRunner, outbox: Outbox | None = None) -> WorkflowResult:
    """Run with ``runner``; the run's lifecycle events go to ``outbox`` (a private one, never relayed)."""
    bus = EventBus(outbox, None, mirror=False) if outbox is not None else None
    options = CompileOptions(services=services(agent_runner=runner, events=bus, recorder=None))
    return asyncio.run(compile_workflow(defn, options=options)(inputs={}))


def run_failing(defn: WorkflowDefinition, runner: ModelAgentRunner, outbox: Outbox | None = None) -> WorkflowResult:
    with pytest.raises(WorkflowFailed) as caught:
        run(defn, runner, outbox)
    return caught.value.result


def emitted(outbox: Outbox, event_type: str) -> list[dict[str, Any]]:
    """The payloads of the run's events of one type, in emission order (what a consumer of the topics gets)."""
    return [json.loads(row.value)["payload"] for row in outbox.pending() if row.event_type == event_type]


def test_agent_step_answers_from_its_template_with_lifecycle_and_usage(tmp_path: Path) -> None:
    runner, outbox = make_runner(tmp_path), Outbox(tmp_path / "outbox.sqlite")
    result = run(definition([agent_step(outputSchema=SCHEMA)]), runner, outbox)
    step = result.steps["write"]
    assert step.status.value == "completed" and step.model == "simulated" and step.simulated
    assert set(step.output) == {"headline", "confidence"} and step.tokens > 0
    [provisioned] = emitted(outbox, "agent_provisioned")
    assert provisioned["template_version"] == "1.0.0" and provisioned["parameters"] == {"temperature": 0.2}
    transitions = emitted(outbox, "agent_state_transition")
    assert [(t["previous_state"], t["new_state"]) for t in transitions] == [
        ("initialized", "running"),
        ("running", "completed"),
    ]
    assert transitions[-1]["token_count"] == step.tokens
    metrics = runner.metrics.metrics(provisioned["agent_id"])
    assert metrics.requests_completed == 1 and metrics.tokens_used == step.tokens and metrics.error_rate == 0


def test_exceeded_budget_fails_at_once_naming_the_budget(tmp_path: Path) -> None:
    result = run_failing(definition([agent_step()], retries=3, tokenBudget=50), make_runner(tmp_path))
    step = result.steps["write"]
    assert step.attempts == 1, "a budget error must not be retried"
    assert (
        "BudgetExceeded" in (step.reason or "")
        and "task budget" in (step.reason or "")
        and "limit 50" in (step.reason or "")
    )


@pytest.mark.parametrize("level", ["task", "team", "agent", "user"])
def test_every_budget_level_refuses_before_the_call(
    tmp_path: Path, level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentparty.runtime.settings import get_settings

    step = agent_step(tokenBudget=50) if level == "agent" else agent_step()
    extra = {"task": {"tokenBudget": 50}, "team": {"teamTokenBudget": 50}}.get(level, {})
    if level == "user":
        monkeypatch.setenv("AGENTPARTY_USER_ID", "ana")
        monkeypatch.setenv("AGENTPARTY_USER_TOKEN_BUDGET", "50")
    get_settings.cache_clear()
    try:
        runner = make_runner(tmp_path)
        calls_before = sum(runner.router.providers["simulated"]._calls.values())  # type: ignore[attr-defined]
        result = run_failing(definition([step], retries=2, **extra), runner)
    finally:
        get_settings.cache_clear()
    reason = result.steps["write"].reason or ""
    assert f"{level} budget" in reason and "limit 50" in reason and "used 0" in reason
    assert result.steps["write"].attempts == 1
    assert sum(runner.router.providers["simulated"]._calls.values()) == calls_before, "the model was called anyway"  # type: ignore[attr-defined]


def test_rate_limit_is_retried_after_the_providers_retry_after(tmp_path: Path) -> None:
    runner, outbox = (
        make_runner(tmp_path, SimulatedSettings(rate_limit_rate=1.0, retry_after_s=1.0)),
        Outbox(tmp_path / "outbox.sqlite"),
    )
    result = run_failing(definition([agent_step()], retries=1), runner, outbox)
    step = result.steps["write"]
    assert step.attempts == 2 and "RateLimited" in (step.reason or "")
    assert step.duration_s >= 1.0, "the retry came before the provider's Retry-After"
    states = [t["new_state"] for t in emitted(outbox, "agent_state_transition")]
    assert states == ["running", "failed", "running", "failed"], "a retry recovers the same agent"


def test_unconfigured_model_falls_back_along_the_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    result = run(definition([agent_step(model="gpt-4o")]), make_runner(tmp_path))
    step = result.steps["write"]
    assert step.model == "simulated" and "fallback model simulated" in (step.reason or "")
    assert "no API key configured for provider 'openai'" in (step.reason or "")


@pytest.mark.parametrize("approve", [True, False])
def test_human_governed_transition_waits_for_an_approver_in_prefect(tmp_path: Path, approve: bool) -> None:
    governance = {"transitions": {"initialized_to_running": {"approval": "human", "timeout": 60}}}
    runner, outbox = make_runner(tmp_path, governance=governance), Outbox(tmp_path / "outbox.sqlite")
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = run(definition([agent_step()]), runner, outbox)
        except WorkflowFailed as exc:
            outcome["result"] = exc.result

    thread = threading.Thread(target=target)
    thread.start()
    flow_run_id = asyncio.run(wait_for_paused_run())
    asyncio.run(resume_with_input(flow_run_id, {"approve": approve, "approver": "ana", "reason": "reviewed"}))
    thread.join(timeout=60)
    step = outcome["result"].steps["write"]
    transitions = emitted(outbox, "agent_state_transition")
    if approve:
        assert step.status.value == "completed"
        assert transitions[0]["transition_approver"] == "user:ana" and transitions[0]["transition_reason"] == "reviewed"
    else:
        assert (
            step.status.value == "failed"
            and "TransitionRefused" in (step.reason or "")
            and "rejected by ana" in (step.reason or "")
        )
        assert not transitions


def test_unanswered_approval_times_out_and_the_fallback_decides(tmp_path: Path) -> None:
    governance = {"transitions": {"initialized_to_running": {"approval": "human", "timeout": 2}}}
    result = run_failing(definition([agent_step()]), make_runner(tmp_path, governance=governance))
    step = result.steps["write"]
    assert "TransitionRefused" in (step.reason or "") and "none within 2s" in (step.reason or "")
    assert result.reason and "write" in result.reason, "fallback abort names the failed step"
