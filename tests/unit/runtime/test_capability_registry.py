"""The capability registry (``agentRuntime.capability_registry``): its file format, its refusals, and precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agentparty.models import CreateAgentTemplateRequest
from agentparty.models.capabilities import (
    BUILTIN_CAPABILITY_REGISTRY,
    GENERAL_CAPABILITIES,
    CapabilityDefinition,
    CapabilityRegistry,
)
from agentparty.models.graph import capability_id
from agentparty.runtime.capability_registry import CapabilityRegistryError, load_capability_registry
from agentparty.runtime.settings import Settings

VALID = """
capabilities:
  - name: data_analysis
    description: Analyse the quarter's sales
    category: analytics
    token_cost: 900
    compatibility: [visualization]
    required_model: gpt-4o
  - name: triage
"""


def write(tmp_path: Path, text: str, name: str = "capabilities.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_is_the_built_in_registry() -> None:
    registry = load_capability_registry("builtin")
    assert registry is BUILTIN_CAPABILITY_REGISTRY
    assert [d.name for d in registry.capabilities[: len(GENERAL_CAPABILITIES)]] == [c[0] for c in GENERAL_CAPABILITIES]
    for definition in registry.capabilities:
        assert definition.description and definition.category and definition.token_cost and definition.compatibility


def test_a_valid_file_defines_its_capabilities_and_nothing_else(tmp_path: Path) -> None:
    registry = load_capability_registry(str(write(tmp_path, VALID)))
    assert [d.name for d in registry.capabilities] == ["data_analysis", "triage"]
    node, defined = registry.node("data_analysis")
    assert defined and node.id == capability_id("data_analysis")
    assert (node.category, node.token_cost, node.compatibility, node.required_model) == (
        "analytics",
        900,
        ["visualization"],
        "gpt-4o",
    )
    bare, defined = registry.node("triage")
    assert defined and (bare.category, bare.token_cost, bare.description) == ("general", 0, ""), "defaults fill in"
    unknown, defined = registry.node("research")
    assert not defined and unknown.name == "research", "not in this file (no include_builtin): a bare node"


def test_a_json_file_is_read_the_same_and_a_bare_list_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '{"capabilities": [{"name": "sql", "token_cost": 300}]}', "caps.json")
    registry = load_capability_registry(str(path))
    assert registry.definition("sql") == CapabilityDefinition(name="sql", token_cost=300)
    with pytest.raises(CapabilityRegistryError, match="expected a mapping"):
        load_capability_registry(str(write(tmp_path, '[{"name": "sql"}]', "list.json")))


def test_include_builtin_puts_the_file_over_the_built_in_field_by_field(tmp_path: Path) -> None:
    path = write(tmp_path, "include_builtin: true\ncapabilities:\n  - {name: sql, token_cost: 5}\n  - {name: triage}\n")
    registry = load_capability_registry(str(path))
    sql = registry.definition("sql")
    builtin_sql = BUILTIN_CAPABILITY_REGISTRY.definition("sql")
    assert sql is not None and builtin_sql is not None
    assert sql.token_cost == 5 and sql.category == builtin_sql.category and sql.description == builtin_sql.description
    assert registry.definition("triage") is not None and registry.definition("math") is not None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("capabilities:\n  - {name: sql, token_cost: -1}\n", "capabilities[0].token_cost"),
        ('capabilities:\n  - {name: sql, token_cost: "300"}\n', "capabilities[0].token_cost"),
        ("capabilities:\n  - {name: Bad Name}\n", "capabilities[0].name"),
        ("capabilities:\n  - {name: sql, colour: red}\n", "capabilities[0].colour"),
        ("capabilities:\n  - {name: sql, compatibility: [sql]}\n", "capabilities[0]"),
        ("capabilities:\n  - {name: sql}\n  - {name: sql}\n", "capabilities[1].name"),
        ("capabilities:\n  - {description: no name}\n", "capabilities[0].name"),
        ("include_builtin: yes please\n", "include_builtin"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CapabilityRegistryError) as caught:
        load_capability_registry(str(path))
    message = str(caught.value)
    assert str(path) in message and field in message, message


def test_a_missing_file_or_another_kind_of_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CapabilityRegistryError, match="cannot read"):
        load_capability_registry(str(tmp_path / "absent.yaml"))
    with pytest.raises(CapabilityRegistryError, match=r"give 'builtin' or a \.yaml"):
        load_capability_registry(str(write(tmp_path, "x", "caps.txt")))


def test_settings_refuse_a_bad_registry_file_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, "capabilities:\n  - {name: sql, token_cost: lots}\n")
    with pytest.raises(ValidationError) as caught:
        Settings(home=tmp_path, agent_runtime={"capability_registry": str(path)})
    assert str(path) in str(caught.value) and "capabilities[0].token_cost" in str(caught.value)
    good = Settings(home=tmp_path, agent_runtime={"capability_registry": str(write(tmp_path, VALID))})
    assert good.capability_registry().definition("triage") is not None
    switched = good.model_copy(
        update={"agent_runtime": good.agent_runtime.model_copy(update={"capability_registry": "builtin"})}
    )
    assert switched.capability_registry() is BUILTIN_CAPABILITY_REGISTRY, "a copy with another source reads that one"


def test_the_template_definition_wins_over_the_registry_field_by_field() -> None:
    template = CapabilityDefinition(name="sql", token_cost=42, required_model="gpt-4o")
    node, defined = BUILTIN_CAPABILITY_REGISTRY.node("sql", template)
    builtin = BUILTIN_CAPABILITY_REGISTRY.definition("sql")
    assert defined and builtin is not None
    assert (node.token_cost, node.required_model) == (42, "gpt-4o")
    assert (node.category, node.description, node.compatibility) == (
        builtin.category,
        builtin.description,
        builtin.compatibility,
    )
    alone, defined = CapabilityRegistry().node("sql", template)
    assert defined and (alone.token_cost, alone.category) == (42, "general")


def test_a_template_defines_only_its_own_capabilities_once() -> None:
    base = {
        "name": "analyst",
        "description": "d",
        "model": "simulated",
        "parameters": {},
        "personality": "p",
        "capabilities": ["sql"],
    }
    ok = CreateAgentTemplateRequest.model_validate(
        {**base, "capability_definitions": [{"name": "sql", "token_cost": 7}]}
    )
    assert ok.capability_definitions[0].token_cost == 7
    with pytest.raises(ValidationError, match=r"capability_definitions\[0\].name: 'math' is not one of"):
        CreateAgentTemplateRequest.model_validate({**base, "capability_definitions": [{"name": "math"}]})
    with pytest.raises(ValidationError, match="defined twice"):
        CreateAgentTemplateRequest.model_validate(
            {**base, "capability_definitions": [{"name": "sql"}, {"name": "sql", "token_cost": 1}]}
        )
