"""What happens when a step has failed after its own retries: the workflow's ``errorHandling.fallbackAction``.

``abort`` (the default) stops the run from starting further steps. ``retry`` runs
the step once more under the workflow's own retry policy, unless its error says
retrying cannot help. ``human_intervention`` pauses the flow run until an
operator answers (the API's approvals, or the Prefect UI's form for
:class:`~agentparty.runtime.human_input.HumanDecision`): retry the step, skip it
with the output they give, or abort; no answer within
``humanInterventionTimeout`` aborts. Outside a flow run nobody can answer, so
the run aborts.
"""

from __future__ import annotations

import logging

from prefect.flow_runs import apause_flow_run

from agentparty.flows.retries import effective_policy
from agentparty.flows.run_state import RunState
from agentparty.flows.step_kinds import StepRunner, failure_of
from agentparty.models import FallbackAction, WorkflowStep
from agentparty.models.run_results import StepResult, StepStatus
from agentparty.models.step_errors import NonRetryableError
from agentparty.runtime.human_input import HumanDecision

logger = logging.getLogger("agentparty.flows")


async def fallback(run: RunState, steps: StepRunner, step: WorkflowStep, exc: Exception) -> StepResult:
    """The step's result after its failure ``exc`` and the fallback action; marks the run aborted when it fails."""
    handling = run.definition.error_handling
    action = handling.fallback_action if handling and handling.fallback_action else FallbackAction.ABORT
    failure = failure_of(step.id, exc)
    if action is FallbackAction.RETRY and not isinstance(exc, NonRetryableError):
        logger.warning("step %s failed (%s); fallback: retry under the workflow policy", step.id, failure.reason)
        workflow_policy = effective_policy(None, handling)
        try:
            retried = await steps.run_step(step, workflow_policy)
            retried.attempts += failure.attempts
            return retried
        except Exception as again:
            failure = failure_of(step.id, again)
    elif action is FallbackAction.HUMAN_INTERVENTION and run.run_id is not None:
        return await _ask_operator(run, steps, step, failure)
    run.abort(f"step {step.id!r} failed: {failure.reason}")
    return failure


async def _ask_operator(run: RunState, steps: StepRunner, step: WorkflowStep, failure: StepResult) -> StepResult:
    """Pause the flow run for an operator's decision, as often as they choose to retry a step that fails again."""
    handling = run.definition.error_handling
    timeout = int(handling.human_intervention_timeout) if handling else 3600
    rounds = 0
    while True:
        rounds += 1
        logger.warning("step %s failed (%s); waiting up to %ss for an operator", step.id, failure.reason, timeout)
        try:
            asked = HumanDecision.with_initial_data(
                description=f"Step {step.id} failed: {failure.reason}. Retry it, skip it (giving its output) or abort the run."
            )
            decision = await apause_flow_run(
                wait_for_input=asked, timeout=timeout, key=f"{step.id}-{rounds}", poll_interval=1
            )
        except Exception as exc:  # prefect raises on timeout
            run.abort(f"step {step.id!r} failed and no operator answered within {timeout}s ({type(exc).__name__})")
            return failure
        if decision.action == "abort":
            run.abort(
                f"step {step.id!r} failed; operator aborted the run{': ' + decision.note if decision.note else ''}"
            )
            return failure
        if decision.action == "skip":
            return StepResult(
                step_id=step.id,
                status=StepStatus.COMPLETED,
                output=decision.output,
                attempts=failure.attempts,
                reason=f"operator skipped the step and supplied its output{': ' + decision.note if decision.note else ''}",
            )
        try:
            retried = await steps.run_step(step)
            retried.attempts += failure.attempts
            return retried
        except Exception as exc:
            failure = failure_of(step.id, exc)
