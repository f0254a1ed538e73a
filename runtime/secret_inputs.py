"""Secret run inputs: an input declared ``writeOnly: true`` in a definition's ``inputs`` never reaches Prefect in plaintext.

Prefect keeps a flow run's parameters in its database, shows them in the UI
and hands them to workers. So every way into a run seals the secret inputs
*before* the flow run is created, and the run opens them inside:

* a compiled workflow called from Python (``agentparty run``, subgraph steps, tests):
  its flow seals them in ``__call__`` (``flows/compiler.py``);
* a webhook delivery: the API seals them before the delivery is stored
  (``api/webhooks.py``); the dispatcher passes them on sealed;
* inside the run, ``flows/scheduler.py`` opens them before the inputs are checked.

A sealed input is a string ``ap1:…`` (``runtime/sealing.py``) holding the value as
JSON, bound to the workflow and the input's name, and sealed whatever ``atRest``
says (a secret is never stored plaintext). Values that arrive plaintext (the
Prefect UI's custom run form, a deployment's default) are used as they are.
"""

from __future__ import annotations

import json
from typing import Any

from agentparty.models import WorkflowDefinition
from agentparty.runtime.sealing import Sealer, is_sealed, purpose

STORE = "run inputs"


def secret_input_names(definition: WorkflowDefinition) -> list[str]:
    """The inputs the definition declares ``writeOnly: true``."""
    return [name for name, schema in definition.inputs.items() if schema.get("writeOnly") is True]


def _purpose(definition: WorkflowDefinition, name: str) -> str:
    return purpose("inputs", definition.id, name)


def seal_secret_inputs(definition: WorkflowDefinition, values: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    """``values`` with every secret input sealed (already sealed ones unchanged); the rest as given."""
    names = [name for name in secret_input_names(definition) if name in values and not is_sealed(values[name])]
    if not names:
        return values
    sealed = dict(values)
    for name in names:
        sealed[name] = sealer.seal_text(json.dumps(values[name]), _purpose(definition, name), force=True)
    return sealed


def open_secret_inputs(definition: WorkflowDefinition, values: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    """``values`` with every sealed secret input opened (:class:`~agentparty.runtime.sealing.SealedRecordError`
    names the input when one cannot be)."""
    names = [name for name in secret_input_names(definition) if is_sealed(values.get(name))]
    if not names:
        return values
    opened = dict(values)
    for name in names:
        text = sealer.open_text(values[name], _purpose(definition, name), store=STORE, record=f"inputs.{name}")
        opened[name] = json.loads(text)
    return opened


def without_secrets(definition: WorkflowDefinition, values: dict[str, Any], problems: list[str]) -> list[str]:
    """Problems with the inputs, with the secret inputs' values taken out (a schema error quotes the value)."""
    secrets = [json.dumps(values[name]) for name in secret_input_names(definition) if name in values]
    secrets += [str(values[name]) for name in secret_input_names(definition) if name in values]
    cleaned = []
    for problem in problems:
        text = problem
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        cleaned.append(text)
    return cleaned
