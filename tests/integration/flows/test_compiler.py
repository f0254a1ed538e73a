"""compile_workflow against a real Prefect server: step semantics, retries, timeouts, fallbacks."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.prefect_pauses import resume_with_input, wait_for_paused_run
from support.run_services_support import services

from agentparty.flows import CompileOptions, WorkflowFailed, WorkflowResult, compile_workflow
from agentparty.flows.compiler import flow_name_for
from agentparty.models import WorkflowDefinition
from agentparty.models.step_errors import RunInputError
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.documents import load_workflow

pytestmark = pytest.mark.usefixtures("prefect_server")

HANDLING = {"retryAttempts": 0, "backoffStrategy": "fixed", "baseDelay": 0}


def definition(steps: list[dict[str, Any]], **extra: Any) -> WorkflowDefinition:
    doc = {
        "id": "test-flow",
        "name": "Test flow",
        "steps": steps,
        "triggers": [{"type": "manual"}],
        "errorHandling": HANDLING,
    }
    doc.update(extra)
    return WorkflowDefinition.model_validate(doc)


def handler(step_id: str, name: str, inputs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "task",
        "configuration": {"handler": f"support.step_handlers:{name}", **extra.pop("configuration", {})},
        "inputs": inputs or {},
        **extra,
    }


def run(
    defn: WorkflowDefinition,
    inputs: dict[str, Any] | None = None,
    tmp_path: Path | None = None,
    breaker_store: SqliteBreakerStore | None = None,
    **options: Any,
) -> WorkflowResult:
    if tmp_path is not None and breaker_store is None:
        breaker_store = SqliteBreakerStore(tmp_path / "breakers.sqlite")
    flow = compile_workflow(defn, options=CompileOptions(services=services(breakers=breaker_store), **options))
    return asyncio.run(flow(inputs=inputs))


def run_failing(defn: WorkflowDefinition, inputs: dict[str, Any] | None = None, **options: Any) -> WorkflowResult:
    with pytest.raises(WorkflowFailed) as caught:
        run(defn, inputs, **options)
    return caught.value.result


def test_flow_name_is_sanitised() -> None:
    defn = definition([handler("a", "number")], name="R&D <weekly> 50% / team")
    assert flow_name_for(defn) == "R-D -weekly- 50- - team"
    assert compile_workflow(defn).name == "R-D -weekly- 50- - team"


def test_references_keep_types_and_diamonds_join(handlers: Any) -> None:
    defn = definition(
        [
            handler("top", "number", {"n": "${inputs.start}"}, outputs={"n": {"type": "integer"}}),
            handler("left", "add", {"a": "${steps.top.outputs.n}", "b": 1}, outputs={"n": {"type": "integer"}}),
            handler("right", "add", {"a": "${steps.top.outputs.n}", "b": 10}, outputs={"n": {"type": "integer"}}),
            handler(
                "join",
                "add",
                {"a": "${steps.left.outputs.n}", "b": "${steps.right.outputs.n}"},
                outputs={"n": {"type": "integer"}},
            ),
            handler("text", "echo", {"summary": "total=${steps.join.outputs.n}", "raw": "${steps.join.output}"}),
        ],
        inputs={"start": {"type": "integer", "default": 5}},
    )
    result = run(defn)
    assert result.steps["join"].output == {"n": 21}  # (5 + 1) + (5 + 10)
    assert result.steps["text"].output == {"summary": "total=21", "raw": {"n": 21}}
    assert handlers.CALLS == {"number": 1, "add": 3, "echo": 1}
    assert [s.status.value for s in result.steps.values()] == ["completed"] * 5


def test_independent_steps_overlap_and_the_bound_holds(handlers: Any) -> None:
    steps = [handler(f"s{i}", "tracked_sleep", {"name": f"s{i}", "seconds": 0.3}) for i in range(4)]
    run(definition(steps))
    assert handlers.max_active() == 4
    handlers.reset()
    run(definition(steps, maxConcurrency=2))
    assert handlers.max_active() == 2
    handlers.reset()
    run(definition(steps, parallel=False))
    assert handlers.max_active() == 1


def test_decision_skips_the_branch_not_taken_and_what_depends_only_on_it(handlers: Any) -> None:
    defn = definition(
        [
            handler("score", "number", {"n": "${inputs.n}"}, outputs={"n": {"type": "integer"}}),
            {
                "id": "gate",
                "type": "decision",
                "configuration": {"condition": "steps.score.outputs.n > 3", "then": ["big"], "else": ["small"]},
            },
            handler("big", "upper", {"text": "big"}, outputs={"text": {"type": "string"}}),
            handler("small", "upper", {"text": "small"}, outputs={"text": {"type": "string"}}),
            handler("after_small", "echo", {"x": "${steps.small.output}"}),
            handler("join", "echo", {"big": "${steps.big.outputs.text}", "small": "${steps.small.outputs.text}"}),
        ],
        inputs={"n": {"type": "integer"}},
    )
    result = run(defn, {"n": 7})
    status = {sid: r.status.value for sid, r in result.steps.items()}
    assert status == {
        "score": "completed",
        "gate": "completed",
        "big": "completed",
        "small": "skipped",
        "after_small": "skipped",
        "join": "completed",
    }
    assert result.steps["gate"].output == {"result": True, "branch": "then"}
    assert result.steps["small"].reason == "branch 'else' of decision 'gate' not taken"
    assert result.steps["join"].output == {"big": "BIG", "small": None}
    low = run(defn, {"n": 1})
    assert low.steps["big"].status.value == "skipped" and low.steps["after_small"].status.value == "completed"


def test_decision_inside_parallel_and_group_output(handlers: Any) -> None:
    defn = definition(
        [
            handler("a", "number", {"n": 2}, outputs={"n": {"type": "integer"}}),
            {
                "id": "check",
                "type": "decision",
                "configuration": {"condition": "steps.a.outputs.n == 2", "then": ["yes"]},
            },
            handler("yes", "upper", {"text": "yes"}),
            {"id": "group", "type": "parallel", "configuration": {"steps": ["a", "check"]}},
            handler("after", "echo", {"group": "${steps.group.output}"}),
        ]
    )
    result = run(defn)
    assert result.steps["yes"].status.value == "completed"
    assert result.steps["after"].output == {"group": {"a": {"n": 2}, "check": {"result": True, "branch": "then"}}}


def test_for_each_keeps_order_and_respects_max_concurrency(handlers: Any, prefect_server: str) -> None:
    defn = definition(
        [
            {
                "id": "fan",
                "type": "parallel",
                "configuration": {
                    "forEach": "${inputs.names}",
                    "maxConcurrency": 2,
                    "step": {
                        "type": "task",
                        "configuration": {"handler": "support.step_handlers:tracked_sleep"},
                        "inputs": {"name": "${item}", "seconds": 0.2},
                    },
                },
            }
        ],
        inputs={"names": {"type": "array"}},
    )
    result = run(defn, {"names": ["n1", "n2", "n3", "n4", "n5"]})
    assert result.steps["fan"].output == [{"name": f"n{i}"} for i in range(1, 6)]
    assert handlers.max_active() == 2
    assert [item.step_id for item in result.steps["fan"].items or []] == [f"fan[n{i}]" for i in range(1, 6)]
    expected = {f"fan[n{i}]" for i in range(1, 6)}
    names = asyncio.run(_task_run_names(result.run_id, expected))
    assert expected <= names


async def _task_run_names(
    flow_run_id: str | None, expected: frozenset[str] | set[str] = frozenset(), timeout: float = 30
) -> set[str]:
    """The names of the flow run's task runs the server has recorded: once ``expected`` are all there, or at
    ``timeout`` (task runs reach the server as events it ingests after the flow returned; on a loaded machine
    the last of them came later than the first read)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            names = {r.name for r in runs}
            if expected <= names or time.monotonic() > deadline:
                return names
            await asyncio.sleep(0.2)


def test_nested_subgraphs_and_the_depth_limit(tmp_path: Path, handlers: Any) -> None:
    import yaml

    leaf = {
        "id": "leaf",
        "name": "Leaf",
        "inputs": {"text": {"type": "string"}},
        "steps": [handler("shout", "upper", {"text": "${inputs.text}"}, outputs={"text": {"type": "string"}})],
        "triggers": [{"type": "manual"}],
    }
    middle = {
        "id": "middle",
        "name": "Middle",
        "inputs": {"text": {"type": "string"}},
        "steps": [
            {
                "id": "call_leaf",
                "type": "subgraph",
                "configuration": {"workflow": "leaf.yaml", "inputs": {"text": "${inputs.text}!"}},
            }
        ],
        "triggers": [{"type": "manual"}],
    }
    top = {
        "id": "top",
        "name": "Top",
        "steps": [
            {"id": "call_middle", "type": "subgraph", "configuration": {"workflow": "middle", "inputs": {"text": "hi"}}}
        ],
        "triggers": [{"type": "manual"}],
    }
    loop = {
        "id": "loop",
        "name": "Loop",
        "steps": [{"id": "again", "type": "subgraph", "configuration": {"workflow": "loop.yaml"}}],
        "triggers": [{"type": "manual"}],
    }
    for name, doc in {"leaf": leaf, "middle": middle, "top": top, "loop": loop}.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    result = asyncio.run(compile_workflow(load_workflow(tmp_path / "top.yaml"), source=tmp_path / "top.yaml")())
    assert result.steps["call_middle"].output == {"call_leaf": {"shout": {"text": "HI!"}}}
    with pytest.raises(WorkflowFailed) as caught:
        asyncio.run(
            compile_workflow(
                load_workflow(tmp_path / "loop.yaml"),
                source=tmp_path / "loop.yaml",
                options=CompileOptions(max_subgraph_depth=3),
            )()
        )
    assert "exceed the limit of 3" in caught.value.result.reason  # type: ignore[operator]


def test_retryable_errors_are_retried_with_the_step_policy(handlers: Any) -> None:
    defn = definition(
        [
            handler(
                "flaky",
                "flaky",
                {"name": "f1", "failures": 2},
                retryPolicy={"maxAttempts": 3, "baseDelay": 0, "maxDelay": 0, "jitter": False},
            )
        ]
    )
    result = run(defn)
    assert result.steps["flaky"].attempts == 3 and handlers.CALLS["f1"] == 3


def test_workflow_policy_applies_when_the_step_has_none(handlers: Any) -> None:
    defn = definition(
        [handler("flaky", "flaky", {"name": "f2", "failures": 1})], errorHandling={**HANDLING, "retryAttempts": 1}
    )
    assert run(defn).steps["flaky"].attempts == 2


def test_non_retryable_errors_fail_at_once(handlers: Any) -> None:
    defn = definition(
        [handler("bad", "invalid", {"name": "v1"}, retryPolicy={"maxAttempts": 4, "baseDelay": 0, "maxDelay": 0})]
    )
    result = run_failing(defn)
    assert handlers.CALLS["v1"] == 1
    assert result.steps["bad"].attempts == 1 and "StepValidationError" in (result.steps["bad"].reason or "")


def test_declared_outputs_are_enforced(handlers: Any) -> None:
    result = run_failing(definition([handler("w", "wrong_output", outputs={"n": {"type": "integer"}})]))
    assert "output 'n': 'not a number' is not of type 'integer'" in (result.steps["w"].reason or "")


def test_timeouts_stop_waiting_for_concurrent_sync_steps(handlers: Any) -> None:
    steps = [handler(f"slow{i}", "tracked_sleep", {"name": f"slow{i}", "seconds": 5}, timeout=0.5) for i in range(3)]
    started = time.perf_counter()
    result = run_failing(definition(steps))
    elapsed = time.perf_counter() - started
    assert all(r.status.value == "failed" and "Timeout" in (r.reason or "") for r in result.steps.values())
    assert elapsed < 4.0, f"the run waited {elapsed:.1f}s for 5 s handlers with a 0.5 s timeout"


def test_abort_fails_the_run_with_the_reason_and_skips_dependents(handlers: Any) -> None:
    defn = definition(
        [
            handler("boom", "always_fails", {"name": "b1"}),
            handler("after", "echo", {"x": "${steps.boom.output}"}),
            handler("other", "number"),
        ],
        errorHandling={**HANDLING, "fallbackAction": "abort"},
    )
    result = run_failing(defn)
    assert result.status.value == "failed"
    assert result.reason == "step 'boom' failed: RuntimeError: b1 is broken"
    assert result.steps["after"].status.value == "skipped"


def test_fallback_retry_reattempts_under_the_workflow_policy(handlers: Any) -> None:
    defn = definition(
        [handler("flaky", "flaky", {"name": "f3", "failures": 2}, retryPolicy={"maxAttempts": 1})],
        errorHandling={**HANDLING, "retryAttempts": 2, "fallbackAction": "retry"},
    )
    result = run(defn)
    assert handlers.CALLS["f3"] == 3 and result.steps["flaky"].attempts == 3


def test_run_inputs_are_validated(handlers: Any) -> None:
    defn = definition([handler("a", "number", {"n": "${inputs.n}"})], inputs={"n": {"type": "integer"}})
    with pytest.raises(RunInputError, match=r"inputs.n: 'x' is not of type 'integer'"):
        run(defn, {"n": "x"})
    with pytest.raises(RunInputError, match=r"inputs\.n: required input is missing"):
        run(defn, {})


def test_circuit_breaker_opens_and_fails_fast_across_runs(tmp_path: Path, handlers: Any) -> None:
    defn = definition(
        [handler("boom", "always_fails", {"name": "cb"})],
        errorHandling={**HANDLING, "circuitBreaker": {"failureThreshold": 2, "recoveryTimeout": 60}},
    )
    store = SqliteBreakerStore(tmp_path / "b.sqlite")
    run_failing(defn, breaker_store=store)
    run_failing(defn, breaker_store=store)
    third = run_failing(defn, breaker_store=store)
    assert handlers.CALLS["cb"] == 2
    assert "CircuitOpenError" in (third.steps["boom"].reason or "")


def test_human_intervention_resumes_through_the_prefect_api(handlers: Any) -> None:
    defn = definition(
        [handler("boom", "always_fails", {"name": "h1"}), handler("after", "echo", {"got": "${steps.boom.output}"})],
        errorHandling={**HANDLING, "fallbackAction": "human_intervention", "humanInterventionTimeout": 60},
    )
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=run(defn)))
    thread.start()
    flow_run_id = asyncio.run(wait_for_paused_run())
    asyncio.run(resume_with_input(flow_run_id, {"action": "skip", "output": {"value": 42}, "note": "known outage"}))
    thread.join(timeout=60)
    result: WorkflowResult = outcome["result"]
    assert result.steps["boom"].status.value == "completed"
    assert "operator skipped the step" in (result.steps["boom"].reason or "")
    assert result.steps["after"].output == {"got": {"value": 42}}


def test_examples_run_end_to_end(examples_dir: Path) -> None:
    triage = examples_dir / "webhook-triage.yaml"
    result = asyncio.run(
        compile_workflow(load_workflow(triage), source=triage)(
            inputs={"ticket_id": "T-9", "subject": "Outage", "body": "All down"}
        )
    )
    assert result.status.value == "completed"
    urgent = result.steps["is_urgent"].outputs["branch"] == "then"
    assert result.steps["enrich"].status.value == ("completed" if urgent else "skipped")
    assert result.steps["draft_reply"].status.value == ("skipped" if urgent else "completed")
    assert result.tokens > 0
