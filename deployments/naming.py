"""How a workflow definition's deployment is named, so that the CLI, webhooks and triggers agree.

One deployment per definition: the flow is named after the definition's name
(``flow_name_for``) and the deployment after its id, so ``FLOW/ID`` is unique
and stable across re-deploys. Its single parameter is ``inputs`` (the run inputs
object, whose schema is the definition's ``inputs``).
"""

from __future__ import annotations

from agentparty.flows.compiler import flow_name_for
from agentparty.models import WorkflowDefinition

INPUTS_PARAMETER = "inputs"


def deployment_name(definition: WorkflowDefinition) -> str:
    return definition.id


def flow_name(definition: WorkflowDefinition) -> str:

    return flow_name_for(definition)


def full_name(definition: WorkflowDefinition) -> str:
    """``FLOW/DEPLOYMENT``, as ``run_deployment`` and ``prefect deployment run`` take it."""
    return f"{flow_name(definition)}/{deployment_name(definition)}"


def deployment_parameters(inputs: dict[str, object]) -> dict[str, object]:
    return {INPUTS_PARAMETER: inputs}
