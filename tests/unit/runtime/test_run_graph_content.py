"""What the run's graph batches say beyond ids (``RunGraph``): capability definitions, Model nodes and
REQUIRES_MODEL, the requesting user's properties. No server (the integration lane checks the written graph)."""

from __future__ import annotations

from dataclasses import replace

from support.tool_work import DEFINITION, slot_record, tool_work

from agentparty.models import DEFAULT_MODEL_REGISTRY
from agentparty.models.capabilities import CapabilityDefinition, CapabilityRegistry
from agentparty.models.graph import (
    AgentTemplate,
    Capability,
    Model,
    RequiresModel,
    TemplateVersion,
    User,
    capability_id,
    stable_id,
)
from agentparty.runtime.graph_store import GraphBatch
from agentparty.runtime.run_recorder import RunGraph

REGISTRY = CapabilityRegistry(
    capabilities=[CapabilityDefinition(name="web_research", category="research", token_cost=1000, description="web")]
)


def templated(model: str = "gpt-4o", definitions: tuple[CapabilityDefinition, ...] = ()) -> object:
    template = AgentTemplate(name="researcher")
    version = TemplateVersion(template_id=template.id, version="1.0.0", model=model)
    return replace(tool_work(), template=template, version=version, capability_definitions=definitions)


def step_batch(work: object, run: RunGraph | None = None) -> GraphBatch:
    run = run or RunGraph(DEFINITION, "key", "ana", capabilities=REGISTRY)
    return run.step([slot_record(work)])  # type: ignore[arg-type]


def nodes(batch: GraphBatch, kind: type) -> list:  # type: ignore[type-arg]
    return [n for n in batch.nodes if isinstance(n, kind)]


def test_a_template_version_requires_its_model_with_what_the_registry_knows() -> None:
    work = templated()
    batch = step_batch(work)
    (model,) = nodes(batch, Model)
    info = DEFAULT_MODEL_REGISTRY.available_models["gpt-4o"]
    assert model == DEFAULT_MODEL_REGISTRY.graph_node("gpt-4o")
    assert (model.id, model.name, model.provider) == (stable_id("model", "gpt-4o"), "gpt-4o", "openai")
    assert (model.context_window, model.supports_functions, model.supports_vision) == (
        info.capabilities.max_tokens,
        True,
        True,
    )
    links = [(e.source_id, e.target_id) for e in batch.edges if isinstance(e.props, RequiresModel)]
    assert links == [(work.version.id, model.id)]  # type: ignore[attr-defined]
    assert model.id not in batch.ensured, "upserted: the registry's word on the model is refreshed"


def test_a_model_the_registry_does_not_list_has_an_unknown_provider_and_ad_hoc_agents_write_none() -> None:
    unknown = DEFAULT_MODEL_REGISTRY.graph_node("my-local-llm")
    assert (unknown.provider, unknown.context_window, unknown.supports_functions) == ("unknown", None, None)
    assert not nodes(step_batch(tool_work()), Model), "an ad-hoc agent has no TemplateVersion to require a model"


def test_capabilities_take_the_template_over_the_registry_and_unknown_ones_are_only_ensured() -> None:
    work = replace(templated(definitions=(CapabilityDefinition(name="web_research", token_cost=5),)))
    work = replace(work, capabilities={"web_research": 0.6, "juggling": 0.5})
    batch = step_batch(work)
    caps = {c.name: c for c in nodes(batch, Capability)}
    assert (caps["web_research"].token_cost, caps["web_research"].category) == (5, "research")
    assert caps["web_research"].description == "web"
    assert capability_id("web_research") not in batch.ensured
    assert caps["juggling"] == Capability(
        id=capability_id("juggling"), name="juggling", created_at=caps["juggling"].created_at
    )
    assert capability_id("juggling") in batch.ensured, "nobody defines it: an existing node keeps what it has"


def test_the_run_starts_with_the_requesting_user_as_the_engine_knows_them() -> None:
    user = User(id=stable_id("user", "ana"), username="ana", email="ana@example.org", roles=["analyst"], token_budget=9)
    run = RunGraph(DEFINITION, "key", "ana", user=user)
    batch = run.started()
    (written,) = nodes(batch, User)
    assert written == user and user.id not in batch.ensured, "upserted: a changed email or budget is written"
    assert run.task().created_by == user.id
    bare = RunGraph(DEFINITION, "key", "bo").requester()
    assert (bare.id, bare.username, bare.email) == (stable_id("user", "bo"), "bo", None)
