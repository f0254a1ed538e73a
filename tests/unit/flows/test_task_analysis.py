"""``task_analyzed``'s analysis (``flows/task_analysis.py``) with the real all-MiniLM-L6-v2 (offline, from its
wheel, behind a session cache) against the built-in capability registry. No server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from support.gnn_fixtures import embedder  # noqa: F401  (fixture, registered by name)
from support.workflow_docs import EXAMPLES

from agentparty.flows.task_analysis import DEFAULT_STEP_TOKENS, MATCH_THRESHOLD, analyse_task
from agentparty.gnn.embeddings import CachedEmbedder
from agentparty.models import WorkflowDefinition
from agentparty.models.capabilities import BUILTIN_CAPABILITY_REGISTRY
from agentparty.models.task_analysis import task_texts
from agentparty.runtime.documents import load_workflow

ERRORS = {"retryAttempts": 1, "backoffStrategy": "fixed", "baseDelay": 0}


def definition(description: str, *steps: dict[str, Any]) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "id": "analysed",
            "name": "Manual",
            "description": description,
            "inputs": {"chapter": {"type": "string"}, "question": {"type": "string"}},
            "steps": list(steps),
            "triggers": [{"type": "manual"}],
            "errorHandling": ERRORS,
        }
    )


def agent_step(step_id: str, prompt: str, **config: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "task", "configuration": {"agent": "writer", "prompt": prompt, **config}}


def test_a_clear_text_requires_the_capability_it_describes(embedder: CachedEmbedder) -> None:  # noqa: F811
    task = definition(
        "Translate the user manual from French into English.",
        agent_step("translate", "Translate ${inputs.chapter} from French into English, faithfully."),
    )
    analysis = analyse_task(task, BUILTIN_CAPABILITY_REGISTRY, embedder)
    assert analysis.embedder == "all-MiniLM-L6-v2" and analysis.threshold == MATCH_THRESHOLD
    assert analysis.capabilities[0].name == "translation" and not analysis.capabilities[0].explicit
    assert MATCH_THRESHOLD <= analysis.capabilities[0].confidence < 1.0
    assert all(c.confidence >= MATCH_THRESHOLD for c in analysis.capabilities)
    assert not {"sql", "security_audit", "devops"} & set(analysis.names)


def test_capabilities_the_steps_name_stay_certain_and_set_the_token_estimate(embedder: CachedEmbedder) -> None:  # noqa: F811
    task = definition(
        "Answer the questions customers send about their invoices.",
        agent_step("answer", "Answer this customer politely: ${inputs.question}", capability="customer_support"),
        agent_step("other", "Write a haiku."),
    )
    analysis = analyse_task(task, BUILTIN_CAPABILITY_REGISTRY, embedder)
    first = analysis.capabilities[0]
    assert (first.name, first.confidence, first.explicit) == ("customer_support", 1.0, True)
    assert analysis.names.count("customer_support") == 1  # not inferred a second time
    cost = BUILTIN_CAPABILITY_REGISTRY.definition("customer_support").token_cost  # type: ignore[union-attr]
    assert analysis.token_estimate == cost + DEFAULT_STEP_TOKENS  # registry cost; nothing says for the other step


def test_the_research_report_example_needs_research_beside_what_its_steps_name(embedder: CachedEmbedder) -> None:  # noqa: F811
    report = load_workflow(EXAMPLES / "research-report.yaml")
    analysis = analyse_task(report, BUILTIN_CAPABILITY_REGISTRY, embedder)
    confidence = analysis.confidence()
    assert confidence["data_analysis"] == confidence["report_generation"] == 1.0
    assert confidence["research"] > 0.6  # "Research '${item}' for a report …" against "Find, read and cite sources"
    assert "Plan a report on topic covering: subtopics" in task_texts(report)  # placeholders read as their names


class Broken:
    name, dim = "broken", 4

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("no model here")


def test_an_embedder_that_fails_leaves_the_capabilities_the_steps_name() -> None:
    task = definition("Anything.", agent_step("a", "hi", capability="writing"))
    analysis = analyse_task(task, BUILTIN_CAPABILITY_REGISTRY, Broken())
    assert analysis.names == ["writing"] and analysis.embedder is None and analysis.threshold is None
