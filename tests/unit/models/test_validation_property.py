"""Property: for any document, the validator answers with a definition or a ValidationError, promptly.

Two generators feed it: coherent definitions (every step kind, references to
earlier steps, decisions, fan-outs, subgraphs) with zero to two targeted
mutations (duplicate id, dangling reference, cycle, missing trigger, junk
spliced in …), and chaotic documents near the valid region. The `find` tests
prove that both valid definitions and whole-definition errors are reachable.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, find, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agentparty.models import DEFAULT_MODEL_REGISTRY, ValidationContext, WorkflowDefinition, field_errors

CONTEXT = ValidationContext(
    model_registry=DEFAULT_MODEL_REGISTRY, workflow_exists=lambda target: target in {"child", "child.yaml"}
)

STEP_IDS = ["a", "b", "c", "d", "e", "1bad", ""]
good_ids = st.sampled_from(STEP_IDS[:5])
any_ids = st.sampled_from(STEP_IDS) | st.text(max_size=6)
input_names = st.sampled_from(["topic", "count", "items", "missing"])
output_names = st.sampled_from(["value", "items", "result", "branch", "nope"])

json_leaf = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=8)
arbitrary_json = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)

references = st.one_of(
    st.builds(lambda s, o: f"${{steps.{s}.outputs.{o}}}", good_ids, output_names),
    st.builds(lambda s: f"${{steps.{s}.output}}", any_ids),
    st.builds(lambda n: f"${{inputs.{n}}}", input_names),
    st.just("${item}"),
    st.just("${item.title}"),
    st.sampled_from(["${steps}", "${", "prefix ${inputs.topic} suffix", "$${literal}", "${inputs.topic"]),
)
values = references | json_leaf
step_inputs = st.dictionaries(st.sampled_from(["x", "y", "topic"]), values, max_size=3)
outputs = st.dictionaries(
    output_names, st.sampled_from([{"type": "number"}, {"type": "array"}, {"type": "bogus"}]), max_size=2
)

conditions = st.one_of(
    st.builds(lambda s, o: f"steps.{s}.outputs.{o} > 0.5", good_ids, output_names),
    st.builds(lambda n: f"inputs.{n} == 'x'", input_names),
    st.sampled_from(["true", "steps.a.output and not steps.b.output", "x >", "unknown.name", "steps['c'].output", ""]),
)

task_configs = st.one_of(
    st.fixed_dictionaries({"handler": st.sampled_from(["m:f", "pkg.mod:fn", "nocolon"])}),
    st.fixed_dictionaries(
        {"agent": st.sampled_from(["writer", ""])},
        optional={
            "prompt": references,
            "model": st.sampled_from(["simulated", "gpt-4o", "gpt-9"]),
            "outputSchema": st.sampled_from(
                [{"type": "object", "properties": {"value": {"type": "number"}}}, {"type": 3}]
            ),
            "version": st.sampled_from(["1.0.0", "one"]),
        },
    ),
    st.fixed_dictionaries({"handler": st.just("m:f"), "agent": st.just("both")}),
)


def with_depends(config: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda c, deps: {**c, **({"dependsOn": deps} if deps else {})}, config, st.lists(any_ids, max_size=2)
    )


inline_steps = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["task", "subgraph"]),
        "configuration": st.sampled_from([{"handler": "m:f"}, {"workflow": "child"}]),
    },
    optional={"id": good_ids, "inputs": step_inputs},
)
configs = {
    "task": with_depends(task_configs),
    "decision": with_depends(
        st.fixed_dictionaries(
            {"condition": conditions},
            optional={"then": st.lists(any_ids, max_size=2), "else": st.lists(any_ids, max_size=2)},
        )
    ),
    "parallel": with_depends(
        st.one_of(
            st.fixed_dictionaries({"steps": st.lists(any_ids, max_size=3)}),
            st.fixed_dictionaries(
                {"forEach": references | st.lists(json_leaf, max_size=3), "step": inline_steps},
                optional={"maxConcurrency": st.integers(-1, 4)},
            ),
        )
    ),
    "subgraph": with_depends(
        st.fixed_dictionaries(
            {"workflow": st.sampled_from(["child", "child.yaml", "missing"])}, optional={"inputs": step_inputs}
        )
    ),
}


@st.composite
def steps(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from([*configs, "bogus"]))
    step: dict[str, Any] = {"id": draw(good_ids if draw(st.integers(0, 9)) else any_ids), "type": kind}
    step["configuration"] = draw(configs.get(kind, arbitrary_json))
    if draw(st.booleans()):
        step["inputs"] = draw(step_inputs)
    if draw(st.booleans()):
        step["outputs"] = draw(outputs)
    if draw(st.integers(0, 5)) == 0:
        step["retryPolicy"] = draw(
            st.fixed_dictionaries(
                {"maxAttempts": st.integers(0, 3)},
                optional={"baseDelay": st.floats(-1, 5), "maxDelay": st.floats(-1, 5)},
            )
        )
    if draw(st.integers(0, 5)) == 0:
        step["timeout"] = draw(st.one_of(st.floats(-1, 10), st.text(max_size=3)))
    return step


triggers = st.lists(
    st.one_of(
        st.just({"type": "manual"}),
        st.fixed_dictionaries(
            {
                "type": st.just("schedule"),
                "configuration": st.sampled_from([{"cron": "0 2 * * *"}, {"cron": "99 * * * *"}, {"interval": 60}, {}]),
            }
        ),
        st.fixed_dictionaries(
            {"type": st.just("event"), "configuration": st.sampled_from([{"expect": ["x.y"]}, {"expect": []}])}
        ),
        st.just({"type": "webhook"}),
        st.fixed_dictionaries({"type": st.text(max_size=5)}),
    ),
    max_size=2,
)
error_handling = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "retryAttempts": st.integers(-1, 3),
            "backoffStrategy": st.sampled_from(["exponential", "linear", "fixed", "random"]),
        }
    ),
    arbitrary_json,
)


@st.composite
def coherent_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid definition: references only point to earlier steps, so the graph is acyclic."""
    count = draw(st.integers(1, 6))
    ids = [f"s{i}" for i in range(count)]
    on_branch: set[str] = set()
    in_group: set[str] = set()
    doc_steps: list[dict[str, Any]] = []
    for i, step_id in enumerate(ids):
        earlier = ids[:i]
        kind = draw(st.sampled_from(["task", "task", "decision", "parallel", "subgraph"])) if earlier else "task"
        refs = draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True)) if earlier else []
        step: dict[str, Any] = {"id": step_id, "type": kind, "outputs": {"value": {"type": "number"}}}
        step["inputs"] = {f"x{j}": f"${{steps.{ref}.outputs.value}}" for j, ref in enumerate(refs)}
        if draw(st.booleans()):
            step["inputs"]["topic"] = "about ${inputs.topic}"
        if kind == "task":
            step["configuration"] = draw(
                st.sampled_from(
                    [{"handler": "m:f"}, {"agent": "writer", "model": "simulated", "prompt": "p ${inputs.topic}"}]
                )
            )
        elif kind == "decision":
            later = [s for s in ids[i + 1 :] if s not in on_branch]
            if not later:
                step["type"], step["configuration"] = "task", {"handler": "m:f"}
            else:
                then = draw(st.lists(st.sampled_from(later), min_size=1, max_size=2, unique=True))
                on_branch.update(then)
                step["configuration"] = {
                    "condition": f"steps.{draw(st.sampled_from(earlier))}.outputs.value > 0.5",
                    "then": then,
                }
        elif kind == "parallel":
            free = [s for s in earlier if s not in in_group]
            if free and draw(st.booleans()):
                children = draw(st.lists(st.sampled_from(free), min_size=1, max_size=2, unique=True))
                in_group.update(children)
                step["configuration"] = {"steps": children}
            else:
                step["configuration"] = {
                    "forEach": "${inputs.items}",
                    "maxConcurrency": 2,
                    "step": {"type": "task", "configuration": {"handler": "m:f"}, "inputs": {"x": "${item}"}},
                }
        else:
            step["configuration"] = {"workflow": "child", "inputs": {"t": "${inputs.topic}"}}
        doc_steps.append(step)
    return {
        "id": "flow",
        "name": "Flow",
        "inputs": {"topic": {"type": "string"}, "items": {"type": "array"}},
        "steps": doc_steps,
        "triggers": [
            draw(st.sampled_from([{"type": "manual"}, {"type": "schedule", "configuration": {"cron": "*/5 * * * *"}}]))
        ],
        "errorHandling": {"retryAttempts": 1, "backoffStrategy": "exponential"},
    }


def _mutate(doc: dict[str, Any], kind: str, junk: Any, pick: int) -> None:
    target = doc["steps"][pick % len(doc["steps"])]
    if kind == "duplicate_id":
        target["id"] = doc["steps"][0]["id"]
    elif kind == "dangling_reference":
        target.setdefault("inputs", {})["dangling"] = "${steps.ghost.outputs.value}"
    elif kind == "cycle":
        doc["steps"][0].setdefault("inputs", {})["back"] = f"${{steps.{doc['steps'][-1]['id']}.output}}"
    elif kind == "no_trigger":
        doc["triggers"] = []
    elif kind == "no_error_handling":
        doc.pop("errorHandling", None)
    elif kind == "bad_type":
        target["type"] = "bogus"
    elif kind == "bad_condition":
        target["type"], target["configuration"] = "decision", {"condition": "steps. >", "then": [target["id"]]}
    elif kind == "junk":
        target["configuration"] = junk


mutations = st.sampled_from(
    [
        "duplicate_id",
        "dangling_reference",
        "cycle",
        "no_trigger",
        "no_error_handling",
        "bad_type",
        "bad_condition",
        "junk",
    ]
)


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(coherent_documents())
    for kind in draw(st.lists(mutations, max_size=2)):
        _mutate(doc, kind, draw(arbitrary_json), draw(st.integers(0, 10)))
    return doc


@st.composite
def chaotic_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": draw(st.sampled_from(["flow", "my.flow-1", "bad id", ""])),
        "name": draw(st.sampled_from(["Flow", ""])),
        "inputs": draw(
            st.dictionaries(
                input_names.filter(lambda n: n != "missing"),
                st.sampled_from([{"type": "string"}, {"type": "array"}, {"type": 5}]),
                max_size=3,
            )
        ),
        "steps": draw(st.lists(steps(), min_size=0, max_size=6)),
        "triggers": draw(triggers),
    }
    handling = draw(error_handling)
    if handling is not None:
        doc["errorHandling"] = handling
    if draw(st.integers(0, 9)) == 0:  # splice arbitrary JSON somewhere
        doc[draw(st.sampled_from(["steps", "triggers", "inputs", "parallel", "extra"]))] = draw(arbitrary_json)
    return doc


documents = mutated_documents() | chaotic_documents()


def outcome(doc: dict[str, Any]) -> WorkflowDefinition | ValidationError:
    try:
        return WorkflowDefinition.model_validate(doc, context=CONTEXT)
    except ValidationError as exc:
        return exc


@pytest.mark.slow
@settings(
    max_examples=2000,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(documents)
def test_validator_answers_with_a_definition_or_a_validation_error(doc: dict[str, Any]) -> None:
    result = outcome(doc)  # any other exception fails the test; the deadline catches hangs
    event("valid" if isinstance(result, WorkflowDefinition) else "invalid")
    if isinstance(result, ValidationError):
        errors = field_errors(result)
        assert errors and all(e.message for e in errors)
    else:
        assert result.steps and result.triggers


def test_generator_reaches_valid_definitions() -> None:
    found = find(
        documents,
        lambda d: isinstance(outcome(d), WorkflowDefinition) and len(d["steps"]) >= 4,
        settings=settings(max_examples=2000, database=None),
    )
    assert isinstance(outcome(found), WorkflowDefinition)


def test_generator_reaches_whole_definition_errors() -> None:
    def has_cycle(doc: dict[str, Any]) -> bool:
        result = outcome(doc)
        return isinstance(result, ValidationError) and any(e.code == "cycle" for e in field_errors(result))

    assert has_cycle(find(documents, has_cycle, settings=settings(max_examples=2000, database=None)))
