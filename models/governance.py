"""Template governance: which agent lifecycle transitions need a human to approve them.

Seed 000 stores ``governance_rules`` as a JSON string on AgentTemplate and shows
its shape in ``CreateAgentTemplateRequest``::

    {"transitions": {"running_to_paused": {"approval": "human", "timeout": 3600}}}

Keys name a transition of :data:`AGENT_LIFECYCLE_MACHINE`; a key that names a
transition the machine does not have is refused, so a typo cannot silently turn
a human approval into an automatic one.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, field_validator, model_validator

from ._base import PositiveJsonInt, SeedModel
from .states import AGENT_LIFECYCLE_MACHINE


class ApprovalMode(StrEnum):
    AUTOMATIC = "automatic"
    HUMAN = "human"


DEFAULT_HUMAN_APPROVAL_TIMEOUT_S = 3600


class TransitionRule(SeedModel):
    # The timeout rule below, in the JSON Schema too, so a generated client cannot send what the server refuses.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"approval": {"const": "human"}}, "required": ["approval"]},
            "then": {},
            "else": {"properties": {"timeout": {"type": "null"}}},
        }
    )

    approval: ApprovalMode = ApprovalMode.AUTOMATIC
    timeout: PositiveJsonInt | None = None
    """Seconds a human has to decide; on timeout the transition is refused."""

    @model_validator(mode="after")
    def _timeout_only_for_humans(self) -> TransitionRule:
        if self.timeout is not None and self.approval is ApprovalMode.AUTOMATIC:
            raise ValueError("timeout applies only to approval 'human'")
        return self

    @property
    def effective_timeout(self) -> int | None:
        if self.approval is ApprovalMode.HUMAN:
            return self.timeout or DEFAULT_HUMAN_APPROVAL_TIMEOUT_S
        return None


class GovernanceRules(SeedModel):
    transitions: dict[str, TransitionRule] = Field(
        default_factory=dict,
        json_schema_extra={"propertyNames": {"enum": list(AGENT_LIFECYCLE_MACHINE.keys())}},
        description="Lifecycle transition ('<from>_to_<to>') → its rule; transitions not named are automatic.",
    )

    @field_validator("transitions")
    @classmethod
    def _keys_name_real_transitions(cls, value: dict[str, TransitionRule]) -> dict[str, TransitionRule]:
        known = AGENT_LIFECYCLE_MACHINE.keys()
        for key in value:
            if AGENT_LIFECYCLE_MACHINE.transition_for_key(key) is None:
                raise ValueError(
                    f"unknown transition {key!r}; expected '<from>_to_<to>' for one of: {', '.join(known)}"
                )
        return value

    def rule_for(self, source: str, target: str) -> TransitionRule:
        """The rule for a transition; transitions without a rule are automatic."""
        return self.transitions.get(f"{source}_to_{target}", TransitionRule())
