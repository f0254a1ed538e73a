"""Agent templates: seed 000's request accepted verbatim, immutable semantic versions, publish/deprecate, provisioning."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentparty.models import DEFAULT_MODEL_REGISTRY, CreateAgentTemplateRequest
from agentparty.models.api import CREATE_AGENT_TEMPLATE_EXAMPLE
from agentparty.models.governance import ApprovalMode
from agentparty.models.step_errors import TemplateError
from agentparty.tasks.templates import TemplateRegistry, persistent_agent_id


@pytest.fixture
def registry(tmp_path: Path) -> TemplateRegistry:
    return TemplateRegistry.at(tmp_path)


def test_seed_example_creates_a_draft_template(registry: TemplateRegistry) -> None:
    created = registry.create(CreateAgentTemplateRequest.model_validate(CREATE_AGENT_TEMPLATE_EXAMPLE))
    assert created.template.name == "Research Assistant"
    assert created.template.approval_required and not created.template.is_auto_generated
    assert created.template.governance_rules.rule_for("running", "paused").approval is ApprovalMode.HUMAN
    assert created.version.version == "1.0.0" and created.version.model == "gpt-4"
    assert created.version.parameters.temperature == 0.3 and created.version.parameters.max_tokens == 2000
    assert set(created.record.capabilities) == {"data_analysis", "report_generation"}
    assert created.record.status == "draft"
    with pytest.raises(TemplateError, match="no published version"):
        registry.resolve("Research Assistant")


def test_versions_never_change_and_resolve_to_latest_published(registry: TemplateRegistry) -> None:
    registry.create(CreateAgentTemplateRequest.model_validate(CREATE_AGENT_TEMPLATE_EXAMPLE))
    registry.publish("Research Assistant", "1.0.0", approved_by="ana")
    v110 = registry.new_version("Research Assistant", "minor", model="gpt-4o", parameters={"temperature": 0.1})
    assert v110.version.version == "1.1.0"
    first = registry.resolve("Research Assistant", "1.0.0")
    assert first.version.model == "gpt-4" and first.version.parameters.temperature == 0.3, "old version changed"
    assert registry.resolve("Research Assistant").version.version == "1.0.0", "a draft is not used"
    registry.publish("Research Assistant", "1.1.0", approved_by="ana")
    assert registry.resolve("Research Assistant").version.model == "gpt-4o"
    v2 = registry.new_version("Research Assistant", "major")
    assert v2.version.version == "2.0.0" and v2.version.parameters.temperature == 0.1
    with pytest.raises(TemplateError, match="draft"):
        registry.resolve("Research Assistant", "2.0.0")


def test_duplicate_version_or_name_is_refused(registry: TemplateRegistry) -> None:
    created = registry.create(CreateAgentTemplateRequest.model_validate(CREATE_AGENT_TEMPLATE_EXAMPLE))
    with pytest.raises(TemplateError, match="cannot change"):
        registry.store.insert_version(created.record)
    with pytest.raises(TemplateError, match="exists"):
        registry.create(CreateAgentTemplateRequest.model_validate(CREATE_AGENT_TEMPLATE_EXAMPLE))


def test_deprecated_versions_run_no_new_agents(registry: TemplateRegistry) -> None:
    registry.create(CreateAgentTemplateRequest.model_validate(CREATE_AGENT_TEMPLATE_EXAMPLE))
    registry.publish("Research Assistant", "1.0.0", approved_by="ana")
    registry.deprecate("Research Assistant", "1.0.0")
    with pytest.raises(TemplateError, match="deprecated"):
        registry.resolve("Research Assistant", "1.0.0")
    assert registry.find("Research Assistant").status.value == "deprecated"  # type: ignore[union-attr]


def test_provisioning_puts_the_versions_persistent_agent_to_work(registry: TemplateRegistry) -> None:
    registry.create(CreateAgentTemplateRequest.model_validate(CREATE_AGENT_TEMPLATE_EXAMPLE))
    registry.publish("Research Assistant", "1.0.0", approved_by="ana")
    resolved = registry.resolve("Research Assistant")
    a = registry.provision(resolved, DEFAULT_MODEL_REGISTRY, run_key="run-1", user_id="ana")
    b = registry.provision(resolved, DEFAULT_MODEL_REGISTRY, run_key="run-2", user_id="ana")
    assert a.id == b.id == persistent_agent_id(resolved.template.id, "1.0.0")
    assert a.context.session_id == "run-1" and b.context.session_id == "run-2" and a.context.user_id == "ana"
    registry.new_version("Research Assistant")
    registry.publish("Research Assistant", "1.1.0", approved_by="ana")
    newer = registry.provision(registry.resolve("Research Assistant"), DEFAULT_MODEL_REGISTRY, run_key="run-1")
    assert newer.id != a.id  # a new version is a new agent: its history starts afresh
    assert a.model.provider == "openai" and a.model.model == "gpt-4" and a.model.version == "1.0.0"
    simulated = registry.provision(resolved, DEFAULT_MODEL_REGISTRY, run_key="run-1", model="simulated")
    assert simulated.model.provider == "simulated"
    with pytest.raises(TemplateError, match="not registered"):
        registry.provision(resolved, DEFAULT_MODEL_REGISTRY, run_key="run-1", model="gpt-99")


def test_templates_that_require_approval_need_an_approver_to_publish(registry: TemplateRegistry) -> None:
    registry.create(CreateAgentTemplateRequest.model_validate(CREATE_AGENT_TEMPLATE_EXAMPLE))
    with pytest.raises(TemplateError, match="requires approval"):
        registry.publish("Research Assistant", "1.0.0")
    registry.publish("Research Assistant", "1.0.0", approved_by="ana")
    assert registry.resolve("Research Assistant").record.approved_by == "ana"
