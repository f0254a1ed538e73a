"""Every model round-trips through JSON, in its seed's spelling and in snake_case."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter
from support.model_samples import (
    AGENT_INSTANCE,
    API,
    CONFIGS,
    EVENTS,
    FEATURES,
    FULL_WORKFLOW,
    GRAPH_NODES,
    MESSAGES,
    RELATIONSHIPS,
    SDK_CONFIGURATION,
    TOOLS,
    WS_MESSAGES,
)

from agentparty import models
from agentparty.models import (
    _base,
    agent,
    api,
    config,
    events,
    gnn,
    governance,
    graph,
    messages,
    model_registry,
    sdk_config,
    tools,
    workflow,
)
from agentparty.models.events import LIFECYCLE_EVENT_ADAPTER
from agentparty.models.messages import MESSAGE_ADAPTER
from agentparty.models.sdk_config import ProtocolConfig

MODEL_MODULES = (
    _base,
    agent,
    api,
    config,
    events,
    gnn,
    governance,
    graph,
    messages,
    model_registry,
    sdk_config,
    tools,
    workflow,
)
ABSTRACT = {
    "SeedModel",
    "CamelModel",
    "GraphNode",
    "RelationshipProperties",
    "BaseEvent",
    "WorkflowStep",
    "StepConfiguration",
    "_Trigger",
    "_Features",
    "WSMessage",
    "Message",
}

NODE_BY_LABEL = {cls.label: cls for cls in models.NODE_TYPES}
REL_BY_TYPE = {cls.type: cls for cls in models.RELATIONSHIP_TYPES}
WS_ADAPTER: TypeAdapter[Any] = TypeAdapter(models.WebSocketMessage)


def samples() -> list[tuple[str, type[BaseModel] | TypeAdapter[Any], dict[str, Any]]]:
    cases: list[tuple[str, type[BaseModel] | TypeAdapter[Any], dict[str, Any]]] = [
        ("WorkflowDefinition", models.WorkflowDefinition, FULL_WORKFLOW),
        ("AgentInstance", models.AgentInstance, AGENT_INSTANCE),
        ("SDKConfiguration", models.SDKConfiguration, SDK_CONFIGURATION),
    ]
    cases += [(f"node:{label}", NODE_BY_LABEL[label], doc) for label, doc in GRAPH_NODES.items()]
    cases += [(f"rel:{name}", REL_BY_TYPE[name], doc) for name, doc in RELATIONSHIPS.items()]
    cases += [(f"event:{doc['event_type']}", LIFECYCLE_EVENT_ADAPTER, doc) for doc in EVENTS]
    cases += [(f"message:{doc['type']}", MESSAGE_ADAPTER, doc) for doc in MESSAGES]
    cases += [(f"ws:{doc['message_type']}", WS_ADAPTER, doc) for doc in WS_MESSAGES]
    cases += [(name, getattr(models.config, name), doc) for name, doc in CONFIGS.items()]
    cases += [(name, getattr(models.gnn, name), doc) for name, doc in FEATURES.items()]
    cases += [(name, getattr(models.api, name), doc) for name, doc in API.items()]
    cases += [(name, getattr(tools, name), doc) for name, doc in TOOLS.items()]
    # An entry on its own: a configuration's `communication.protocols` refuses every entry (test_communication_config)
    cases += [("ProtocolConfig", ProtocolConfig, {"name": "bolt", "version": "5", "encryption": True})]
    return cases


def _validate(target: type[BaseModel] | TypeAdapter[Any], data: Any) -> BaseModel:
    if isinstance(target, TypeAdapter):
        return target.validate_python(data)
    return target.model_validate(data)


def _validate_json(target: type[BaseModel] | TypeAdapter[Any], text: str) -> BaseModel:
    if isinstance(target, TypeAdapter):
        return target.validate_json(text)
    return target.model_validate_json(text)


@pytest.mark.parametrize(("name", "target", "doc"), samples(), ids=[c[0] for c in samples()])
def test_round_trip_through_json(name: str, target: Any, doc: dict[str, Any]) -> None:
    original = _validate(target, doc)
    text = original.model_dump_json()
    again = _validate_json(target, text)
    # Secrets serialise masked on purpose, so compare the serialised forms.
    assert again.model_dump(mode="json") == original.model_dump(mode="json")
    assert json.loads(again.model_dump_json()) == json.loads(text)


@pytest.mark.parametrize(("name", "target", "doc"), samples(), ids=[c[0] for c in samples()])
def test_snake_case_input_is_accepted(name: str, target: Any, doc: dict[str, Any]) -> None:
    original = _validate(target, doc)
    snake = original.model_dump(mode="json", by_alias=False, round_trip=True)
    assert _validate(target, snake).model_dump(mode="json") == original.model_dump(mode="json")


def test_seed_002_models_write_camel_case() -> None:
    instance = models.AgentInstance.model_validate(AGENT_INSTANCE)
    dumped = json.loads(instance.model_dump_json())
    assert {"createdAt", "lastActivity"} <= set(dumped)
    assert "maxTokensPerMinute" in dumped["context"]["resourceLimits"]
    definition = models.WorkflowDefinition.model_validate(FULL_WORKFLOW)
    assert "errorHandling" in json.loads(definition.model_dump_json())


def test_secrets_never_serialise_in_clear() -> None:
    db = models.DatabaseConfig.model_validate(CONFIGS["DatabaseConfig"])
    assert "secret-pass" not in db.model_dump_json()
    assert "secret-pass" not in repr(db)
    assert db.password.get_secret_value() == "secret-pass"


def _nested_model_classes(value: Any, found: set[type[BaseModel]]) -> None:
    if isinstance(value, BaseModel):
        found.add(type(value))
        for name in type(value).model_fields:
            _nested_model_classes(getattr(value, name), found)
    elif isinstance(value, dict):
        for item in value.values():
            _nested_model_classes(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _nested_model_classes(item, found)


def test_samples_reach_every_model_class() -> None:
    defined = {
        cls
        for module in MODEL_MODULES
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseModel)
        and cls.__module__ == module.__name__
        and cls.__name__ not in ABSTRACT
        and "[" not in cls.__name__  # parametrised generics such as BaseEvent[Payload]
    }
    reached: set[type[BaseModel]] = set()
    for _, target, doc in samples():
        _nested_model_classes(_validate(target, doc), reached)
    missing = sorted(cls.__name__ for cls in defined - reached)
    assert not missing, f"models without a round-trip sample: {missing}"


def test_graph_properties_store_json_strings_and_read_back() -> None:
    agent_node = models.Agent.model_validate(GRAPH_NODES["Agent"])
    props = agent_node.graph_properties()
    assert isinstance(props["parameters"], str) and json.loads(props["parameters"])["temperature"] == 0.3
    assert isinstance(props["embeddings"], list)
    assert models.Agent.from_graph_properties(props) == agent_node
