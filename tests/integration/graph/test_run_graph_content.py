"""What a real run writes into the real local Bolt server, beyond ids and names: every node label and relationship
type of seed 000's schema the run touches, with the properties runs now fill (capability definitions from the
template over the capability registry, Model nodes and REQUIRES_MODEL, the user's properties, AgentState metrics).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.graph_runs import empty, example_runner
from support.workflow_docs import EXAMPLES

from agentparty.flows import CompileOptions, WorkflowResult, compile_workflow
from agentparty.flows.services import run_services
from agentparty.models.graph import stable_id
from agentparty.runtime.documents import load_workflow
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.runtime.settings import get_settings
from agentparty.tasks.agent import ModelAgentRunner

pytestmark = pytest.mark.usefixtures("prefect_server")

REPORT = EXAMPLES / "research-report.yaml"
EMAIL = "ana@example.org"

REGISTRY = """
include_builtin: true
capabilities:
  - name: data_analysis
    description: Analyses the corpus findings for the report
    category: analysis
    token_cost: 777
    compatibility: [report_generation, web_research]
    required_model: gpt-4o
"""

# Seed 000's node labels and relationship types (source label, target label) that the research report touches.
SEED_LABELS = ("Agent", "AgentTemplate", "TemplateVersion", "Team", "Task", "Capability", "AgentState", "User", "Model")
SEED_RELATIONSHIPS = {
    "INSTANTIATES": ("Agent", "TemplateVersion"),
    "HAS_STATE": ("Agent", "AgentState"),
    "TRANSITIONED_BY": ("Agent", "SystemActor"),
    "HAS_CAPABILITY": ("Agent", "Capability"),
    "CREATED": ("Agent", "Output"),
    "HAS_VERSION": ("AgentTemplate", "TemplateVersion"),
    "DEFINES_CAPABILITIES": ("AgentTemplate", "Capability"),
    "REQUIRES_MODEL": ("TemplateVersion", "Model"),
    "MEMBER_OF": ("Agent", "Team"),
    "WORKS_ON": ("Team", "Task"),
    "ASSEMBLED_BY": ("Team", "SystemActor"),
    "REQUIRES": ("Task", "Capability"),
    "REQUESTED_BY": ("Task", "User"),
    "RESULTED_IN": ("Task", "Output"),
    "WORKED_WITH": ("Agent", "Agent"),
}


def rows(store: GraphStore, query: str, **params: Any) -> list[dict[str, Any]]:
    records, _, _ = store.driver.execute_query(query, params, database_=store.database)
    return [record.data() for record in records]


def run_report(store: GraphStore, runner: ModelAgentRunner, key: str, registry: Path) -> tuple[WorkflowResult, str]:
    """The run, and the user's email as the graph should hold it (masked when ``security.dataMasking`` is on)."""
    settings = get_settings()
    settings = settings.model_copy(
        update={
            "agent_runtime": settings.agent_runtime.model_copy(update={"capability_registry": str(registry)}),
            "user_email": EMAIL,
            "user_roles": ["analyst", "reviewer"],
            "user_token_budget": 5_000_000,
        }
    )
    user = f"ana-{uuid.uuid4().hex[:8]}"
    services = run_services(settings, user_id=user, agent_runner=runner, recorder=GraphRecorder(store))
    options = CompileOptions(services=services)
    flow = compile_workflow(load_workflow(REPORT), source=REPORT, options=options)
    masker = services.masker()
    email = masker.text(EMAIL) if masker is not None else EMAIL
    return asyncio.run(flow(inputs={"min_sources": 1}, resume_key=key)), email


@pytest.fixture(scope="module")
def report(
    graph_store: GraphStore, prefect_server: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[GraphStore, WorkflowResult, str, str]:
    """One run of the research report, on an emptied graph, read by every test here."""
    tmp_path = tmp_path_factory.mktemp("report")
    empty(graph_store.driver, graph_store.database)
    registry = tmp_path / "capabilities.yaml"
    registry.write_text(REGISTRY)
    key = f"report-{uuid.uuid4()}"
    result, email = run_report(graph_store, example_runner(tmp_path), key, registry)
    assert result.steps["draft"].status.value == "completed"
    return graph_store, result, key, email


def test_every_seed_label_and_relationship_the_run_touches_is_written_between_the_right_labels(
    report: tuple[GraphStore, WorkflowResult, str, str],
) -> None:
    store, _, _, _ = report
    labels = {
        r["label"]: r["n"] for r in rows(store, "MATCH (n) UNWIND labels(n) AS label RETURN label, count(*) AS n")
    }
    assert {label for label in SEED_LABELS if not labels.get(label)} == set(), labels
    for rel_type, (source, target) in SEED_RELATIONSHIPS.items():
        shapes = rows(
            store,
            f"MATCH (a)-[r:{rel_type}]->(b) RETURN DISTINCT labels(a)[0] AS source, labels(b)[0] AS target",
        )
        assert shapes == [{"source": source, "target": target}], (rel_type, shapes)


def test_capabilities_carry_the_template_definition_over_the_registry_over_the_builtin(
    report: tuple[GraphStore, WorkflowResult, str, str],
) -> None:
    store, _, _, _ = report
    caps = {r["c"]["name"]: r["c"] for r in rows(store, "MATCH (c:Capability) RETURN properties(c) AS c")}
    # The templates' four, and whatever task_analyzed inferred from the task's text (all in the registry).
    assert {"data_analysis", "report_generation", "summarisation", "web_research"} <= set(caps)
    for name, cap in caps.items():
        assert cap["description"] and cap["category"] != "general" and cap["token_cost"] > 0, name
        assert cap["compatibility"], name
    # The registry file's own entry (include_builtin: the file wins over the built-in one).
    analysis = caps["data_analysis"]
    assert (analysis["category"], analysis["token_cost"], analysis["required_model"]) == ("analysis", 777, "gpt-4o")
    assert analysis["description"] == "Analyses the corpus findings for the report"
    assert analysis["compatibility"] == ["report_generation", "web_research"]
    # The researcher template defines web_research's description and token cost; the rest is the built-in one's.
    research = caps["web_research"]
    assert research["description"] == "Searches the example corpus and cites the documents it uses"
    assert (research["token_cost"], research["category"], research["compatibility"]) == (
        1200,
        "research",
        ["data_analysis"],
    )
    assert "required_model" not in research
    # Only in the built-in registry.
    report_gen = caps["report_generation"]
    assert (report_gen["category"], report_gen["token_cost"], report_gen["compatibility"]) == (
        "content",
        1500,
        ["summarisation"],
    )


def test_template_versions_require_their_model_and_the_user_has_their_properties(
    report: tuple[GraphStore, WorkflowResult, str, str],
) -> None:
    store, _, key, email = report
    models = rows(
        store,
        "MATCH (v:TemplateVersion)-[:REQUIRES_MODEL]->(m:Model) RETURN v.model AS wanted, properties(m) AS m",
    )
    assert len(models) == 2, "the researcher's and the writer's versions"
    for row in models:
        model = row["m"]
        assert model["name"] == row["wanted"] == "simulated"
        assert model["id"] == stable_id("model", "simulated")
        assert (model["provider"], model["context_window"], model["supports_functions"]) == ("simulated", 128_000, True)
    user = rows(
        store,
        "MATCH (:Task {id: $task})-[:REQUESTED_BY]->(u:User) RETURN properties(u) AS u",
        task=stable_id("task", key),
    )
    assert len(user) == 1
    props = user[0]["u"]
    assert props["username"].startswith("ana-") and props["email"] == email
    assert props["roles"] == ["analyst", "reviewer"] and props["token_budget"] == 5_000_000
    assert json.loads(props["preferences"]) == {"default_model": None, "notification_channels": []}
    assert props["approved_capabilities"] == []


def test_each_state_left_holds_the_real_metrics_of_the_run(report: tuple[GraphStore, WorkflowResult, str, str]) -> None:
    store, result, _, _ = report
    states = rows(
        store,
        "MATCH (a:Agent)-[:HAS_STATE]->(s:AgentState {name: 'running'}) "
        "RETURN a.name AS agent, s.token_count AS tokens, s.metrics AS metrics, s.duration AS duration",
    )
    assert len(states) == 6, "plan, 3 research items, draft and review each left their running state"
    total_in = total_out = calls = 0
    for state in states:
        metrics = json.loads(state["metrics"])
        assert metrics["requests"] >= 1, state
        assert metrics["input_tokens"] + metrics["output_tokens"] == state["tokens"] > 0, state
        assert state["duration"] >= 0
        total_in += metrics["input_tokens"]
        total_out += metrics["output_tokens"]
        calls += metrics["tool_calls"]
        assert metrics["errors"] == 0 and metrics["refused"] == 0
    assert total_in + total_out == result.tokens - sum(
        s.tokens for name, s in result.steps.items() if name in ("coverage", "flag_gaps")
    )
    # The simulated model's tool calls (as in test_run_graph.TOOL_CALLS): 2 + 1 + 2 research, 2 review.
    assert calls == 7
    initialized = rows(store, "MATCH (s:AgentState {name: 'initialized'}) RETURN s.metrics AS metrics")
    assert all(json.loads(r["metrics"])["requests"] == 0 for r in initialized), "no model call before running"
