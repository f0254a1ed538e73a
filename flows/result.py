"""Where ``WorkflowResult`` and ``StepResult`` lived until 0.1.0; they are :mod:`agentparty.models.run_results` now.

Kept only so that flow results persisted before then (pickles that name this
module) still load: ``run_deployment(...).state.result()`` on an old run, a
resumed run's subflows. New code imports from ``agentparty.models.run_results``.
"""

from agentparty.models.run_results import StepResult, StepStatus, WorkflowFailed, WorkflowResult

__all__ = ["StepResult", "StepStatus", "WorkflowFailed", "WorkflowResult"]
