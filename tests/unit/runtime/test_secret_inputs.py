"""Secret run inputs (``writeOnly: true``): sealed before Prefect sees them, opened inside the run, never quoted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentparty.flows import compile_workflow
from agentparty.flows.sealed_flow import SealingFlow
from agentparty.models import WorkflowDefinition
from agentparty.runtime.data_keys import load_key_ring
from agentparty.runtime.sealing import SealedRecordError, Sealer, is_sealed
from agentparty.runtime.secret_inputs import (
    open_secret_inputs,
    seal_secret_inputs,
    secret_input_names,
    without_secrets,
)


def definition(workflow_id: str = "deploy-notes") -> WorkflowDefinition:
    doc: dict[str, Any] = {
        "id": workflow_id,
        "name": "Deploy notes",
        "inputs": {
            "token": {"type": "string", "writeOnly": True, "minLength": 40},
            "pin": {"type": "integer", "writeOnly": True},
            "channel": {"type": "string", "default": "ops"},
        },
        "steps": [{"id": "s", "type": "task", "configuration": {"handler": "support.step_handlers:echo"}}],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }
    return WorkflowDefinition.model_validate(doc)


@pytest.fixture
def sealer(tmp_path: Path) -> Sealer:
    return Sealer(False, "AES-256-GCM", lambda: load_key_ring(tmp_path, None, None))  # atRest off: secrets still sealed


def test_only_write_only_inputs_are_sealed_and_they_open_with_their_types(sealer: Sealer) -> None:
    d = definition()
    assert secret_input_names(d) == ["token", "pin"]
    sealed = seal_secret_inputs(d, {"token": "t0ps3cret", "pin": 4321, "channel": "ops"}, sealer)
    assert is_sealed(sealed["token"]) and is_sealed(sealed["pin"]) and sealed["channel"] == "ops"
    assert "t0ps3cret" not in str(sealed) and "4321" not in str(sealed)
    assert seal_secret_inputs(d, sealed, sealer) == sealed  # already sealed: unchanged
    assert open_secret_inputs(d, sealed, sealer) == {"token": "t0ps3cret", "pin": 4321, "channel": "ops"}
    assert open_secret_inputs(d, {"token": "typed into the UI"}, sealer) == {"token": "typed into the UI"}


def test_a_sealed_input_belongs_to_its_workflow_and_name(sealer: Sealer) -> None:
    sealed = seal_secret_inputs(definition(), {"token": "t0ps3cret"}, sealer)
    with pytest.raises(SealedRecordError, match=r"run inputs: record inputs\.token"):
        open_secret_inputs(definition("another-workflow"), sealed, sealer)


def test_problems_with_a_secret_never_quote_it(sealer: Sealer) -> None:
    d = definition()
    values = {"token": "short-secret", "pin": 7}
    _, problems = d.resolve_run_inputs(values)
    assert any("short-secret" in p for p in problems)  # jsonschema quotes the value
    cleaned = without_secrets(d, values, problems)
    assert cleaned and not any("short-secret" in p for p in cleaned) and "inputs.token" in cleaned[0]


def test_the_compiled_flow_and_its_copies_seal_before_prefect_records_parameters(sealer: Sealer) -> None:
    flow = compile_workflow(definition())
    assert isinstance(flow, SealingFlow)
    copy = flow.with_options(flow_run_name="sub")  # what a subgraph step calls
    assert isinstance(copy, SealingFlow) and copy.compiled is flow.compiled
    sealed = copy._sealed({"token": "t0ps3cret", "channel": "ops"})
    assert is_sealed(sealed["token"]) and sealed["channel"] == "ops"


def test_a_deployments_parameter_schema_lets_the_sealed_form_through(sealer: Sealer) -> None:
    """Prefect checks a deployment's parameters against this schema (enforce_parameter_schema) before the run opens
    them: a sealed integer or a sealed string under minLength must pass it, a wrong plaintext value still fails."""
    from jsonschema import Draft202012Validator

    d = definition()
    validator = Draft202012Validator(d.inputs_json_schema())
    sealed = seal_secret_inputs(d, {"token": "x" * 40, "pin": 4321}, sealer)
    assert not list(validator.iter_errors(sealed))
    assert list(validator.iter_errors({"token": "x" * 40, "pin": "not a number"}))
    assert d.inputs_json_schema()["properties"]["token"]["writeOnly"] is True
