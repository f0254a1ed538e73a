"""Agents with a persistent memory for tests: a template whose versions enable it, a runner with the memory
extension, on the OpenAI SDK against a local wire server (scripted turn by turn) or on the simulated model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentparty.models import CreateAgentTemplateRequest, ModelRegistry
from agentparty.models.memory import MemoryConfig
from agentparty.runtime.agent_memory import AgentMemoryStore
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import BudgetLedger
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.providers.base import Provider
from agentparty.runtime.providers.openai_provider import OpenAIProvider
from agentparty.tasks.agent import ModelAgentRunner
from agentparty.tasks.memory_tools import enable_memory
from agentparty.tasks.templates import TemplateRegistry, persistent_agent_id
from support.llm_wire import Recorded, WireServer

MODEL = "gpt-wire-1"
TEMPLATE = "keeper"


def wire_registry() -> ModelRegistry:
    def entry(name: str, functions: bool) -> dict[str, Any]:
        return {
            "provider": "openai",
            "name": name,
            "capabilities": {"maxTokens": 8000, "supportsFunctions": functions, "supportsStreaming": True},
            "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0},
        }

    return ModelRegistry.model_validate(
        {
            "defaultModel": MODEL,
            "availableModels": {MODEL: entry(MODEL, True), "gpt-plain": entry("gpt-plain", False)},
            "fallbackChain": [MODEL],
        }
    )


def template_request(
    memory: dict[str, Any] | None, model: str = MODEL, name: str = TEMPLATE
) -> CreateAgentTemplateRequest:
    return CreateAgentTemplateRequest(
        name=name,
        description="Keeps notes between runs",
        model=model,
        parameters={},
        personality="careful",
        capabilities=["note_taking"],
        approval_required=False,
        memory=MemoryConfig.model_validate(memory) if memory is not None else None,
    )


def memory_runner(
    home: Path,
    *,
    wire: WireServer | None = None,
    providers: dict[str, Provider] | None = None,
    registry: ModelRegistry | None = None,
) -> ModelAgentRunner:
    """A runner whose agents keep memory in ``home`` (templates there too), on the wire server or ``providers``."""
    models = registry or wire_registry()
    if providers is None:
        assert wire is not None
        providers = {"openai": OpenAIProvider("sk-test", base_url=wire.url + "/v1", timeout=10)}
    router = ModelRouter(
        registry=models,
        providers=providers,
        breaker_store=SqliteBreakerStore(home / "state" / "breakers.sqlite"),
        ledger=BudgetLedger(home / "state" / "budgets.sqlite"),
    )
    runner = ModelAgentRunner(router=router, templates=TemplateRegistry.at(home, None, models), stream=False)
    return enable_memory(runner, AgentMemoryStore.at(home))


def publish(templates: TemplateRegistry, memory: dict[str, Any] | None, **fields: Any) -> str:
    """Create the template (or a new version of it) with ``memory``, publish it; its persistent agent's id."""
    config = MemoryConfig.model_validate(memory) if memory is not None else None
    if templates.find(fields.get("name", TEMPLATE)) is None:
        created = templates.create(template_request(memory, **fields))
    else:
        created = templates.new_version(fields.get("name", TEMPLATE), memory=config)
    templates.publish(created.template.name, created.version.version)
    return persistent_agent_id(created.template.id, created.version.version)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def system_prompt(request: Recorded) -> str:
    """The system message an OpenAI chat request sent."""
    return next(m["content"] for m in request.json["messages"] if m["role"] == "system")


def tool_result(request: Recorded, index: int = -1) -> Any:
    """A tool result the request sent back to the model: JSON when it is, else the text (errors start "Error: ")."""
    content = request.tool_results[index]["content"]
    try:
        return json.loads(content)
    except json.JSONDecodeError:
        return content
