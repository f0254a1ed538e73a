"""Each validation rule of seed 002 has a failing case whose field path and reason are asserted."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError
from support.model_samples import AGENT_INSTANCE, SDK_CONFIGURATION
from support.workflow_docs import minimal_workflow, two_step_workflow

from agentparty.models import (
    DEFAULT_MODEL_REGISTRY,
    AgentInstance,
    ModelConfiguration,
    PerformanceMetrics,
    SDKConfiguration,
    ValidationContext,
    WorkflowDefinition,
    field_errors,
)
from agentparty.models.agent import ensure_unique_ids
from agentparty.models.authentication import OAuth2Config, ProviderConfig
from agentparty.models.memory import MemoryConfig
from agentparty.models.sdk_config import RateLimitConfig, SecurityConfig
from agentparty.models.tools import McpServer, PythonTool

CONTEXT = ValidationContext(
    model_registry=DEFAULT_MODEL_REGISTRY, workflow_exists=lambda target: target == "known-flow"
)


def errors_of(model: type[BaseModel], data: Any, context: ValidationContext | None = CONTEXT) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data, context=context)
    return [(e.path, e.message) for e in field_errors(caught.value)]


def assert_error(errors: list[tuple[str, str]], path: str, *fragments: str) -> None:
    matching = [message for p, message in errors if p == path]
    assert matching, f"no error at {path!r}; got {errors}"
    assert any(all(f in m for f in fragments) for m in matching), f"{path}: {matching} lacks {fragments}"


# --- Agent instance rules ------------------------------------------------------------


def test_agent_id_must_be_a_uuid() -> None:
    errors = errors_of(AgentInstance, {**AGENT_INSTANCE, "id": "agent-1"})
    assert_error(errors, "id", "'agent-1' is not a UUID")


def test_agent_ids_must_be_unique() -> None:
    first = AgentInstance.model_validate(AGENT_INSTANCE)
    second = AgentInstance.model_validate({**AGENT_INSTANCE, "createdAt": "2026-01-01T00:00:00Z"})
    with pytest.raises(ValueError, match=rf"agents\[1\]\.id: duplicate agent id '{first.id}' \(also agents\[0\]\)"):
        ensure_unique_ids([first, second])
    ensure_unique_ids(
        [first, AgentInstance.model_validate({**AGENT_INSTANCE, "id": "0b6c1b7e-5a55-4d0e-9d37-3b1f4f3a9a02"})]
    )


def test_agent_model_must_be_registered() -> None:
    doc = copy.deepcopy(AGENT_INSTANCE)
    doc["model"]["model"] = "gpt-9-turbo"
    errors = errors_of(AgentInstance, doc)
    assert_error(errors, "model.model", "'gpt-9-turbo' is not registered in the model registry", "gpt-4o")
    # Without a registry in the context the rule cannot be checked, and the document is otherwise fine.
    assert AgentInstance.model_validate(doc).model.model == "gpt-9-turbo"


def test_agent_state_must_be_serializable() -> None:
    doc = copy.deepcopy(AGENT_INSTANCE)
    doc["state"]["memory"] = {"notes": ["ok", {"seen": {1, 2}}]}
    errors = errors_of(AgentInstance, doc)
    assert_error(errors, "state.memory", "not serializable", "notes[1].seen (value of type set)")
    doc["state"]["memory"] = {"ratio": float("nan")}
    assert_error(errors_of(AgentInstance, doc), "state.memory", "ratio (non-finite float nan)")


def test_response_time_objective_is_a_runtime_threshold_not_a_schema_rule() -> None:
    slow = PerformanceMetrics.model_validate({"responseTime": 850.0})
    assert not slow.meets_realtime_objective()
    assert PerformanceMetrics.model_validate({"responseTime": 150.0}).meets_realtime_objective()
    assert SDKConfiguration().monitoring.performance_thresholds.max_response_time == 200


# --- Workflow rules -------------------------------------------------------------------


def test_minimal_and_two_step_workflows_are_valid() -> None:
    WorkflowDefinition.model_validate(minimal_workflow(), context=CONTEXT)
    WorkflowDefinition.model_validate(two_step_workflow(), context=CONTEXT)


@pytest.mark.parametrize(
    ("step_id", "fragment"),
    [
        ("1starts-with-digit", "should match pattern"),
        ("has space", "should match pattern"),
        ("", "should match pattern"),
    ],
)
def test_step_ids_must_be_valid(step_id: str, fragment: str) -> None:
    doc = minimal_workflow()
    doc["steps"][0]["id"] = step_id
    assert_error(errors_of(WorkflowDefinition, doc), "steps[0].id", fragment)


def test_step_type_must_be_known() -> None:
    doc = minimal_workflow()
    doc["steps"][0]["type"] = "job"
    assert_error(
        errors_of(WorkflowDefinition, doc), "steps[0].type", "'job'", "'task', 'decision', 'parallel', 'subgraph'"
    )
    del doc["steps"][0]["type"]
    assert_error(
        errors_of(WorkflowDefinition, doc), "steps[0].type", "Unable to extract tag using discriminator 'type'"
    )


def test_step_ids_must_be_unique() -> None:
    doc = two_step_workflow()
    doc["steps"][1]["id"] = "first"
    doc["steps"][1]["inputs"] = {}
    assert_error(errors_of(WorkflowDefinition, doc), "steps[1].id", "duplicate step id 'first'", "steps[0].id")


def test_task_step_needs_agent_or_handler() -> None:
    doc = minimal_workflow()
    doc["steps"][0]["configuration"] = {"prompt": "hi"}
    assert_error(
        errors_of(WorkflowDefinition, doc), "steps[0].configuration", "needs 'agent'", "'handler'", "'capability' alone"
    )
    doc["steps"][0]["configuration"] = {"agent": "writer", "handler": "pkg.mod:fn"}
    assert_error(errors_of(WorkflowDefinition, doc), "steps[0].configuration", "exactly one of 'agent'", "not both")
    doc["steps"][0]["configuration"] = {
        "capability": "research",
        "prompt": "hi",
    }  # for the recommender, which a manual team lacks
    assert_error(
        errors_of(WorkflowDefinition, doc),
        "",
        "steps 'only' name no agent",
        "formationMethod to 'recommended' or 'auto'",
    )
    doc["steps"][0]["configuration"] = {"handler": "not a path"}
    assert_error(
        errors_of(WorkflowDefinition, doc), "steps[0].configuration.handler", "is not 'package.module:function'"
    )


@pytest.mark.parametrize(
    ("reference", "fragments"),
    [
        ("${steps.frist.outputs.value}", ("unknown step 'frist'", "did you mean 'first'")),
        ("${steps.first.outputs.valeu}", ("does not declare output 'valeu'", "declared: value")),
        ("${inputs.topik}", ("declares no input 'topik'", "did you mean 'topic'")),
        ("${item}", ("only defined inside a forEach",)),
        ("${steps.first}", ("unrecognised reference ${steps.first}",)),
        ("text ${inputs.topic", ("unclosed '${'",)),
        ("${steps.second.output}", ("cannot depend on itself",)),
    ],
)
def test_references_must_resolve(reference: str, fragments: tuple[str, ...]) -> None:
    doc = two_step_workflow()
    doc["steps"][1]["inputs"] = {"value": reference}
    assert_error(errors_of(WorkflowDefinition, doc), "steps[1].inputs.value", *fragments)


def test_output_reference_needs_a_declared_output() -> None:
    doc = two_step_workflow()
    del doc["steps"][0]["outputs"]
    assert_error(
        errors_of(WorkflowDefinition, doc),
        "steps[1].inputs.value",
        "step 'first' declares no outputs",
        "${steps.first.output}",
    )


def test_agent_output_schema_properties_count_as_declared_outputs() -> None:
    doc = two_step_workflow()
    doc["steps"][0] = {
        "id": "first",
        "type": "task",
        "configuration": {
            "agent": "a",
            "outputSchema": {"type": "object", "properties": {"value": {"type": "number"}}},
        },
    }
    WorkflowDefinition.model_validate(doc, context=CONTEXT)


def test_agent_step_model_must_be_registered() -> None:
    doc = minimal_workflow(errorHandling={"retryAttempts": 0, "backoffStrategy": "fixed"})
    doc["steps"][0]["configuration"] = {"agent": "writer", "model": "gpt-7"}
    assert_error(errors_of(WorkflowDefinition, doc), "steps[0].configuration.model", "'gpt-7' is not registered")


def test_decision_branches_must_exist() -> None:
    doc = two_step_workflow()
    doc["steps"].append(
        {
            "id": "gate",
            "type": "decision",
            "configuration": {"condition": "inputs.topic == 'x'", "then": ["second"], "else": ["nowhere"]},
        }
    )
    errors = errors_of(WorkflowDefinition, doc)
    assert_error(errors, "steps[2].configuration.else[0]", "else branch: unknown step 'nowhere'")


def test_decision_condition_must_parse_and_name_known_things() -> None:
    doc = two_step_workflow()
    doc["steps"].append(
        {
            "id": "gate",
            "type": "decision",
            "configuration": {"condition": "steps.first.outputs.value >", "then": ["second"]},
        }
    )
    assert_error(errors_of(WorkflowDefinition, doc), "steps[2].configuration.condition", "condition does not parse")
    doc["steps"][2]["configuration"]["condition"] = "step.first.outputs.value > 1 or steps.frist.output"
    errors = errors_of(WorkflowDefinition, doc)
    assert_error(errors, "steps[2].configuration.condition", "unknown name 'step'")
    assert_error(errors, "steps[2].configuration.condition", "unknown step 'frist'")


def test_a_step_cannot_be_on_both_branches() -> None:
    doc = two_step_workflow()
    doc["steps"].append(
        {
            "id": "gate",
            "type": "decision",
            "configuration": {"condition": "true", "then": ["second"], "else": ["second"]},
        }
    )
    assert_error(errors_of(WorkflowDefinition, doc), "steps[2].configuration.else[0]", "in both 'then' and 'else'")


def test_parallel_children_must_exist_and_shape_must_be_clear() -> None:
    doc = two_step_workflow()
    doc["steps"].append({"id": "group", "type": "parallel", "configuration": {"steps": ["first", "ghost"]}})
    assert_error(
        errors_of(WorkflowDefinition, doc), "steps[2].configuration.steps[1]", "parallel child: unknown step 'ghost'"
    )
    doc["steps"][2]["configuration"] = {"forEach": "${inputs.topic}"}
    assert_error(errors_of(WorkflowDefinition, doc), "steps[2].configuration", "'step' is missing")
    doc["steps"][2]["configuration"] = {
        "forEach": "items: ${inputs.topic}",
        "step": {"type": "task", "configuration": {"handler": "m:f"}},
    }
    assert_error(errors_of(WorkflowDefinition, doc), "steps[2].configuration.forEach", "exactly one reference")


def test_subgraph_target_must_exist() -> None:
    doc = two_step_workflow()
    doc["steps"].append({"id": "sub", "type": "subgraph", "configuration": {"workflow": "missing-flow"}})
    assert_error(
        errors_of(WorkflowDefinition, doc), "steps[2].configuration", "subgraph target 'missing-flow' not found"
    )
    doc["steps"][2]["configuration"]["workflow"] = "known-flow"
    WorkflowDefinition.model_validate(doc, context=CONTEXT)


def test_cycles_are_reported_with_their_steps_in_order() -> None:
    doc = minimal_workflow(
        steps=[
            {"id": "a", "type": "task", "configuration": {"handler": "m:a"}, "inputs": {"x": "${steps.c.output}"}},
            {"id": "b", "type": "task", "configuration": {"handler": "m:b"}, "inputs": {"x": "${steps.a.output}"}},
            {"id": "c", "type": "task", "configuration": {"handler": "m:c", "dependsOn": ["b"]}},
            {"id": "d", "type": "task", "configuration": {"handler": "m:d"}},
        ],
        errorHandling={"retryAttempts": 0, "backoffStrategy": "fixed"},
    )
    assert_error(errors_of(WorkflowDefinition, doc), "steps[0]", "circular reference: a → b → c → a")


def test_cycle_through_a_parallel_group_is_found() -> None:
    doc = minimal_workflow(
        steps=[
            {"id": "group", "type": "parallel", "configuration": {"steps": ["child"]}},
            {
                "id": "child",
                "type": "task",
                "configuration": {"handler": "m:c"},
                "inputs": {"x": "${steps.group.output}"},
            },
        ],
        errorHandling={"retryAttempts": 0, "backoffStrategy": "fixed"},
    )
    assert_error(errors_of(WorkflowDefinition, doc), "steps[0]", "circular reference: group → child → group")


def test_at_least_one_trigger() -> None:
    assert_error(
        errors_of(WorkflowDefinition, minimal_workflow(triggers=[])), "triggers", "at least one trigger must be defined"
    )
    errors = errors_of(WorkflowDefinition, {k: v for k, v in minimal_workflow().items() if k != "triggers"})
    assert_error(errors, "triggers", "required field is missing")


def test_trigger_configuration_is_checked() -> None:
    doc = minimal_workflow(triggers=[{"type": "schedule", "configuration": {"cron": "0 2 * * *", "interval": 60}}])
    assert_error(
        errors_of(WorkflowDefinition, doc),
        "triggers[0].configuration",
        "exactly one of 'cron', 'interval' or 'rrule'",
        "cron, interval",
    )
    doc = minimal_workflow(triggers=[{"type": "schedule", "configuration": {"rrule": "FREQ=SOMETIMES"}}])
    assert_error(errors_of(WorkflowDefinition, doc), "triggers[0].configuration.rrule", "invalid rrule")
    doc = minimal_workflow(triggers=[{"type": "event", "configuration": {"expect": []}}])
    assert_error(errors_of(WorkflowDefinition, doc), "triggers[0].configuration.expect", "at least 1 item")
    doc = minimal_workflow(triggers=[{"type": "webhook"}, {"type": "webhook"}])
    assert_error(errors_of(WorkflowDefinition, doc), "triggers", "at most one webhook trigger")


def test_error_handling_required_for_non_trivial_workflows() -> None:
    doc = two_step_workflow()
    del doc["errorHandling"]
    assert_error(errors_of(WorkflowDefinition, doc), "errorHandling", "required because it has more than one step")
    single_agent = minimal_workflow()
    single_agent["steps"][0]["configuration"] = {"agent": "writer"}
    assert_error(errors_of(WorkflowDefinition, single_agent), "errorHandling", "required because it has an agent step")
    WorkflowDefinition.model_validate(minimal_workflow(), context=CONTEXT)  # one handler step is trivial


def test_retry_and_breaker_settings_are_checked() -> None:
    doc = two_step_workflow(errorHandling={"retryAttempts": -1, "backoffStrategy": "random"})
    errors = errors_of(WorkflowDefinition, doc)
    assert_error(errors, "errorHandling.retryAttempts", "greater than or equal to 0")
    assert_error(errors, "errorHandling.backoffStrategy", "'exponential', 'linear' or 'fixed'")
    doc = two_step_workflow()
    doc["errorHandling"]["circuitBreaker"] = {"failureThreshold": 0, "recoveryTimeout": 10}
    assert_error(errors_of(WorkflowDefinition, doc), "errorHandling.circuitBreaker.failureThreshold", "greater than 0")


def test_unknown_fields_are_refused_with_their_path() -> None:
    doc = two_step_workflow()
    doc["steps"][0]["retrypolicy"] = {"maxAttempts": 2}
    assert_error(errors_of(WorkflowDefinition, doc), "steps[0].retrypolicy", "unknown field")


def test_all_whole_definition_problems_are_reported_at_once() -> None:
    doc = two_step_workflow()
    doc["steps"][1]["inputs"] = {"a": "${steps.nope.output}", "b": "${inputs.nope}"}
    del doc["errorHandling"]
    paths = {p for p, _ in errors_of(WorkflowDefinition, doc)}
    assert paths == {"steps[1].inputs.a", "steps[1].inputs.b", "errorHandling"}


# --- Configuration rules --------------------------------------------------------------

OPENAI_KEY = "sk-proj-" + "a" * 40
ANTHROPIC_KEY = "sk-ant-api03-" + "b" * 40
GOOGLE_KEY = "AIza" + "c" * 35


@pytest.mark.parametrize(
    ("provider", "key", "fragment"),
    [
        ("openai", ANTHROPIC_KEY, "looks like a anthropic key, but the provider is openai"),
        ("openai", "pk-" + "a" * 30, "does not match the openai key format ('sk-'"),
        ("anthropic", OPENAI_KEY, "looks like a openai key, but the provider is anthropic"),
        ("google", "AIza-too-short", "does not match the google key format ('AIza' followed by 35"),
    ],
)
def test_api_keys_must_match_their_provider(provider: str, key: str, fragment: str) -> None:
    doc = copy.deepcopy(AGENT_INSTANCE)
    doc["model"].update(provider=provider, apiKey=key, model="simulated")
    errors = errors_of(AgentInstance, doc)
    assert_error(errors, "model", "apiKey", fragment)
    assert all(key not in message for _, message in errors), "an error message echoed the API key"


@pytest.mark.parametrize(
    ("provider", "key"), [("openai", OPENAI_KEY), ("anthropic", ANTHROPIC_KEY), ("google", GOOGLE_KEY)]
)
def test_well_formed_api_keys_are_accepted(provider: str, key: str) -> None:
    config = ModelConfiguration.model_validate(
        {"provider": provider, "model": "m", "apiKey": key, "capabilities": {"maxTokens": 10}}
    )
    assert config.api_key is not None and config.api_key.get_secret_value() == key
    assert key not in config.model_dump_json()


def test_provider_config_checks_inline_keys() -> None:
    doc = {
        "name": "p",
        "type": "google",
        "authentication": {"type": "api_key", "configuration": {"apiKey": OPENAI_KEY}},
    }
    assert_error(errors_of(ProviderConfig, doc), "", "apiKey looks like a openai key, but the provider is google")
    doc["authentication"]["configuration"] = {}
    assert_error(
        errors_of(ProviderConfig, doc), "authentication.configuration", "exactly one of apiKey, apiKeyEnv or keys"
    )


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("http://app.example.com/callback", "must use https (http is allowed only for localhost)"),
        ("app.example.com/callback", "is not an absolute http(s) URL"),
        ("ftp://example.com/cb", "is not an absolute http(s) URL"),
        ("https://example.com/cb#frag", "must not contain a fragment"),
    ],
)
def test_oauth2_redirect_uri_must_be_https(uri: str, fragment: str) -> None:
    doc = {"clientId": "c", "redirectUri": uri, "tokenEndpoint": "https://auth.example.com/token"}
    assert_error(errors_of(OAuth2Config, doc), "redirectUri", fragment)


@pytest.mark.parametrize("uri", ["https://app.example.com/cb", "http://localhost:8080/cb", "http://127.0.0.1/cb"])
def test_oauth2_redirect_uri_accepts_https_and_local_http(uri: str) -> None:
    OAuth2Config.model_validate(
        {"clientId": "c", "redirectUri": uri, "tokenEndpoint": "https://auth.example.com/token"}
    )


@pytest.mark.parametrize("value", [0, -5, 1.5, "10", True])
def test_rate_limits_must_be_positive_integers(value: Any) -> None:
    errors = errors_of(RateLimitConfig, {"requestsPerMinute": value})
    assert [p for p, _ in errors] == ["requestsPerMinute"]
    errors = errors_of(AgentInstance, {**AGENT_INSTANCE, "context": {"resourceLimits": {"maxTokensPerMinute": value}}})
    assert [p for p, _ in errors] == ["context.resourceLimits.maxTokensPerMinute"]


def test_security_must_meet_the_soc2_baseline_while_soc2_compliance_is_on() -> None:
    security = {
        "encryption": {"atRest": False, "inTransit": True},
        "accessControl": {"rbac": False, "rateLimiting": {"enabled": False}},
        "auditLogging": False,
    }
    errors = errors_of(SDKConfiguration, {**SDK_CONFIGURATION, "security": security})
    assert_error(errors, "security.encryption.atRest", "must be true", "CC6.1")
    assert_error(errors, "security.auditLogging", "CC7.2")
    assert_error(errors, "security.accessControl.rbac", "CC6.3")
    assert_error(errors, "security.accessControl.rateLimiting.enabled", "rate limiting")
    assert len(errors) == 4
    nested = errors_of(SDKConfiguration, {**SDK_CONFIGURATION, "security": {"encryption": {"inTransit": False}}})
    assert_error(nested, "security.encryption.inTransit", "CC6.7")


def test_with_soc2_compliance_off_each_baseline_control_may_be_turned_off() -> None:
    doc = copy.deepcopy(SDK_CONFIGURATION)
    doc["monitoring"]["logging"]["compliance"]["soc2"] = False
    doc["monitoring"]["logging"]["compliance"]["gdpr"] = False  # GDPR needs masking and audit logging on
    doc["security"] = {
        "encryption": {"atRest": False, "inTransit": False},
        "accessControl": {"rbac": False, "rateLimiting": {"enabled": False}},
        "auditLogging": False,
        "dataMasking": False,
    }
    config = SDKConfiguration.model_validate(doc)
    assert not config.security.encryption.at_rest and not config.security.audit_logging
    SecurityConfig.model_validate(doc["security"])  # alone, a section is checked where it is used


def test_soc2_logging_needs_an_audit_trail() -> None:
    doc = copy.deepcopy(SDK_CONFIGURATION)
    doc["monitoring"]["logging"]["compliance"]["auditTrail"] = False
    assert_error(errors_of(SDKConfiguration, doc), "monitoring.logging.compliance", "auditTrail must be true")


def test_model_registry_references_are_checked() -> None:
    doc = copy.deepcopy(SDK_CONFIGURATION)
    doc["models"]["fallbackChain"] = ["gpt-4o", "claude-x"]
    assert_error(errors_of(SDKConfiguration, doc), "models", "fallbackChain[1] 'claude-x' is not in availableModels")
    doc["models"]["defaultModel"] = "nope"
    assert_error(errors_of(SDKConfiguration, doc), "models", "defaultModel 'nope' is not in availableModels")


def test_seed_shaped_documents_need_no_extensions() -> None:
    # Seed 002's WorkflowTrigger/ErrorHandlingStrategy/RetryPolicy fields alone are enough.
    doc = two_step_workflow(
        errorHandling={"retryAttempts": 3, "backoffStrategy": "exponential", "fallbackAction": "abort"}
    )
    doc["steps"][0]["retryPolicy"] = {"maxAttempts": 2, "baseDelay": 1, "maxDelay": 4, "jitter": True}
    WorkflowDefinition.model_validate(doc, context=CONTEXT)


# --- Tools ---------------------------------------------------------------------------


def test_tools_for_a_model_without_functions_name_the_step_and_the_model() -> None:
    registry = DEFAULT_MODEL_REGISTRY.model_copy(deep=True)
    registry.available_models["gpt-4"].capabilities.supports_functions = False
    context = ValidationContext(model_registry=registry)
    doc = {
        "id": "tools",
        "name": "Tools",
        "steps": [
            {
                "id": "lookup",
                "type": "task",
                "configuration": {"agent": "a", "model": "gpt-4", "tools": ["handlers:search_docs"]},
            }
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }
    assert_error(
        errors_of(WorkflowDefinition, doc, context),
        "steps[0]",
        "step 'lookup': model 'gpt-4' does not support functions",
    )
    WorkflowDefinition.model_validate(doc, context=CONTEXT)  # gpt-4 can call functions in the default registry


def test_tool_references_and_mcp_servers_are_checked_at_load() -> None:
    def step(configuration: dict[str, Any]) -> dict[str, Any]:
        doc = two_step_workflow()
        doc["steps"][0]["configuration"] = {"agent": "a", **configuration}
        return doc

    assert_error(errors_of(WorkflowDefinition, step({"tools": ["no-colon"]})), "steps[0].configuration.tools[0]")
    errors = errors_of(WorkflowDefinition, step({"mcpServers": [{"name": "far", "url": "http://10.0.0.8/mcp"}]}))
    assert_error(errors, "steps[0].configuration.mcpServers[0]", "plain http only to a loopback address")
    errors = errors_of(
        WorkflowDefinition, step({"mcpServers": [{"name": "x", "command": ["a"], "url": "https://e.com/mcp"}]})
    )
    assert_error(errors, "steps[0].configuration.mcpServers[0]", "a command (stdio) or a url")
    handler = two_step_workflow()
    handler["steps"][0]["configuration"] = {"handler": "handlers:echo", "tools": ["handlers:search_docs"]}
    assert_error(errors_of(WorkflowDefinition, handler), "steps[0].configuration", "apply only to agent steps")


MCP_SERVER_CASES: list[dict[str, Any]] = [
    {"name": "docs", "command": ["python", "server.py"]},
    {"name": "docs", "command": ["python"], "env": {"TOKEN": "${TOKEN}"}},
    {"name": "docs", "url": "https://mcp.example.com/mcp", "headerEnv": {"Authorization": "MCP_TOKEN"}},
    {"name": "docs", "url": "http://127.0.0.1:8000/mcp"},
    {"name": "docs", "url": "http://[::1]:8000"},
    {"name": "docs"},
    {"name": "docs", "command": None, "url": None},
    {"name": "docs", "command": ["python"], "url": "https://e.com/mcp"},
    {"name": "docs", "env": {"A": "b"}},
    {"name": "docs", "headers": {"X": "y"}},
    {"name": "docs", "command": []},
    {"name": "docs", "url": "http://10.0.0.8/mcp"},
    {"name": "docs", "url": "http://localhost.evil.com/mcp"},
    {"name": "docs", "url": "https://a b/mcp"},
    {"name": "docs", "url": "ftp://e.com"},
    {"name": "docs", "url": "http://[x"},
]


@pytest.mark.parametrize("case", MCP_SERVER_CASES, ids=json.dumps)
def test_an_mcp_servers_json_schema_states_what_its_validator_refuses(case: dict[str, Any]) -> None:
    """The API's OpenAPI document and schemas/ state these rules, so a client that validates a request against the
    schema is never surprised by a 422 (schemathesis checks the same from outside)."""
    schema = McpServer.model_json_schema(by_alias=True)
    schema_accepts = jsonschema.Draft202012Validator(schema).is_valid(case)
    try:
        McpServer.model_validate(case)
        model_accepts = True
    except ValidationError:
        model_accepts = False
    assert schema_accepts == model_accepts, (schema_accepts, model_accepts)


@pytest.mark.parametrize("function", ["handlers:search", "pkg.mod:fn_2", "0", "é.x:y", "a:", "a:b:c"])
def test_a_python_tools_json_schema_states_which_references_it_takes(function: str) -> None:
    schema = PythonTool.model_json_schema(by_alias=True)
    schema_accepts = jsonschema.Draft202012Validator(schema).is_valid({"function": function})
    try:
        PythonTool(function=function)
        model_accepts = True
    except ValidationError:
        model_accepts = False
    assert schema_accepts == model_accepts, (schema_accepts, model_accepts)


MEMORY_CASES: list[dict[str, Any]] = [
    {},
    {"enabled": False},
    {"enabled": False, "maxKeys": 3},
    {"keys": [""]},
    {"visibility": "named", "keys": ["a"]},
    {"visibility": "named"},
    {"keys": ["a"]},
    {"visibility": "all", "keys": []},
    {"visibility": "named", "keys": ["a", "a"]},
    {"visibility": "named", "keys": ["a\n"]},
    {"visibility": "named", "keys": ["x" * 129]},
    {"visibility": "named", "keys": ["ab c", "é"]},
]


@pytest.mark.parametrize("case", MEMORY_CASES, ids=json.dumps)
def test_a_memory_configs_json_schema_states_what_its_validator_refuses(case: dict[str, Any]) -> None:
    schema = MemoryConfig.model_json_schema(by_alias=True)
    schema_accepts = jsonschema.Draft202012Validator(schema).is_valid(case)
    try:
        MemoryConfig.model_validate(case)
        model_accepts = True
    except ValidationError:
        model_accepts = False
    assert schema_accepts == model_accepts, (schema_accepts, model_accepts)
