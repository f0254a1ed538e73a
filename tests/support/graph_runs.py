"""Shared by the run-to-graph tests: example agents on the simulated model, graph census helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agentparty.models import DEFAULT_MODEL_REGISTRY, CreateAgentTemplateRequest
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import BudgetLedger
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.providers.simulated import SimulatedProvider
from agentparty.tasks.agent import ModelAgentRunner
from agentparty.tasks.templates import TemplateRegistry
from support.workflow_docs import EXAMPLES

LABELS = (
    "Task",
    "Team",
    "User",
    "SystemActor",
    "Agent",
    "AgentTemplate",
    "TemplateVersion",
    "Capability",
    "AgentState",
    "Output",
    "Tool",
)
REL_TYPES = (
    "REQUESTED_BY",
    "WORKS_ON",
    "ASSEMBLED_BY",
    "REQUIRES",
    "MEMBER_OF",
    "INSTANTIATES",
    "HAS_VERSION",
    "DEFINES_CAPABILITIES",
    "HAS_CAPABILITY",
    "HAS_STATE",
    "TRANSITIONED_BY",
    "CREATED",
    "RESULTED_IN",
    "WORKED_WITH",
    "USED_TOOL",
    "ASKED",
)


def example_runner(home: Path) -> ModelAgentRunner:
    """The example templates (researcher, writer) published; other agent names run ad hoc; all on `simulated`."""
    templates = TemplateRegistry.at(home)
    for path in sorted((EXAMPLES / "agents").glob("*.yaml")):
        request = CreateAgentTemplateRequest.model_validate(yaml.safe_load(path.read_text()))
        templates.create(request)
        templates.publish(request.name, "1.0.0")
    router = ModelRouter(
        registry=DEFAULT_MODEL_REGISTRY,
        providers={"simulated": SimulatedProvider()},
        breaker_store=SqliteBreakerStore(home / "breakers.sqlite"),
        ledger=BudgetLedger(home / "budgets.sqlite"),
    )
    return ModelAgentRunner(router=router, templates=templates)


def census(driver: Any, database: str) -> dict[str, int]:
    """Every label's node count and every relationship type's count in the whole graph."""
    counts: dict[str, int] = {}
    with driver.session(database=database) as session:
        for label in LABELS:
            counts[label] = session.run(f"MATCH (n:{label}) RETURN count(n) AS n").single()["n"]
        for rel_type in REL_TYPES:
            counts[rel_type] = session.run(f"MATCH ()-[r:{rel_type}]->() RETURN count(r) AS n").single()["n"]
    return {k: v for k, v in counts.items() if v}


def empty(driver: Any, database: str) -> None:
    """Everything but the schema's migration records goes (tests that count the whole graph start here)."""
    with driver.session(database=database) as session:
        session.execute_write(lambda tx: tx.run("MATCH (n) WHERE NOT n:SchemaMigration DETACH DELETE n").consume())
