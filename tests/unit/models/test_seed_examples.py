"""The seed's own example payloads validate verbatim."""

from __future__ import annotations

from datetime import UTC, datetime

from agentparty.models import AgentStateResponse, CreateAgentTemplateRequest
from agentparty.models.api import AGENT_STATE_RESPONSE_EXAMPLE, CREATE_AGENT_TEMPLATE_EXAMPLE
from agentparty.models.governance import ApprovalMode

# Copied character for character from seed 000 (the constants in models/api.py must not drift from it).
SEED_CREATE_AGENT_TEMPLATE = {
    "name": "Research Assistant",
    "description": "Specialized in data analysis and insight extraction",
    "model": "gpt-4",
    "parameters": {"temperature": 0.3, "max_tokens": 2000},
    "personality": "analytical, detail-oriented, thorough",
    "capabilities": ["data_analysis", "report_generation"],
    "is_auto_generated": False,
    "approval_required": True,
    "governance_rules": {
        "transitions": {
            "initialized_to_running": {"approval": "automatic"},
            "running_to_completed": {"approval": "automatic"},
            "running_to_paused": {"approval": "human", "timeout": 3600},
        }
    },
}

SEED_AGENT_STATE_RESPONSE = {
    "agent_id": "a1b2c3d4-e5f6-7890-abcd-1234567890ab",
    "name": "Research Bot Alpha",
    "current_state": "running",
    "state_timestamp": "2025-03-12T18:25:43.511Z",
    "previous_state": "initialized",
    "time_in_state": 1205,
    "capabilities": [
        {"name": "data_analysis", "proficiency": 0.85},
        {"name": "report_generation", "proficiency": 0.72},
    ],
    "team_id": "team123",
    "task_id": "task456",
    "token_usage": 1230,
    "token_budget": 10000,
}


def test_create_agent_template_example_is_accepted_verbatim() -> None:
    assert CREATE_AGENT_TEMPLATE_EXAMPLE == SEED_CREATE_AGENT_TEMPLATE
    request = CreateAgentTemplateRequest.model_validate(SEED_CREATE_AGENT_TEMPLATE)
    assert request.parameters.temperature == 0.3 and request.parameters.max_tokens == 2000
    rule = request.governance_rules.rule_for("running", "paused")
    assert rule.approval is ApprovalMode.HUMAN and rule.timeout == 3600
    # What the seed wrote comes back out (the extensions it does not use, tools and limits, stay unset).
    assert request.model_dump(mode="json", exclude_none=True, exclude_unset=True) == SEED_CREATE_AGENT_TEMPLATE
    assert CreateAgentTemplateRequest.model_validate_json(request.model_dump_json()) == request


def test_agent_state_response_example_is_accepted_verbatim() -> None:
    assert AGENT_STATE_RESPONSE_EXAMPLE == SEED_AGENT_STATE_RESPONSE
    response = AgentStateResponse.model_validate(SEED_AGENT_STATE_RESPONSE)
    assert response.state_timestamp == datetime(2025, 3, 12, 18, 25, 43, 511000, tzinfo=UTC)
    assert [c.proficiency for c in response.capabilities] == [0.85, 0.72]


def test_examples_are_published_in_the_json_schema() -> None:
    assert CreateAgentTemplateRequest.model_json_schema()["examples"] == [SEED_CREATE_AGENT_TEMPLATE]
    assert AgentStateResponse.model_json_schema()["examples"] == [SEED_AGENT_STATE_RESPONSE]
