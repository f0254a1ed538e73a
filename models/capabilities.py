"""Capability definitions: what seed 000's Capability nodes say beyond their name, and where that comes from.

A Capability node carries a description, a category, a token cost, the capabilities it combines well with
(``compatibility``) and the least model it needs (``required_model``). A run learns them from two places, field
by field, the first that says wins:

1. the **template definition**: a template version may define a capability in full instead of naming it
   (``capabilities: [{name: data_analysis, token_cost: 900}]``);
2. the **capability registry** (seed 000 ``AgentRuntimeConfig.capability_registry``): ``builtin``
   (:data:`BUILTIN_CAPABILITY_REGISTRY`) or a YAML/JSON file in the format of :class:`CapabilityRegistry`;
3. the **defaults** of :class:`~agentparty.models.graph.Capability` (empty description, category ``general``,
   token cost 0, no compatibility, no required model).

A capability that neither the template nor the registry defines is written with the defaults only when it is new;
a node that already exists keeps what it has (a run never blanks out what another writer defined).

Pure data (no I/O): ``runtime/capability_registry.py`` reads a registry file.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, model_validator

from ._base import NonEmptyStr, SeedModel
from .graph import Capability, capability_id

CapabilityName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
"""A capability as workflows, templates and the graph name it: lower snake case."""


class CapabilityDefinition(SeedModel):
    """One capability's definition; a field left out (None) is taken from the next source down (module doc)."""

    name: CapabilityName
    description: str | None = None
    category: NonEmptyStr | None = None
    """Functional category (``research``, ``engineering``, ...)."""
    token_cost: Annotated[int, Field(ge=0, strict=True)] | None = None
    """Tokens one use of the capability costs on average (the task token estimate adds these up)."""
    compatibility: list[CapabilityName] | None = None
    """Capabilities this one combines well with."""
    required_model: NonEmptyStr | None = None
    """The least model that can do it (a model registry name, e.g. ``gpt-4o``)."""

    @model_validator(mode="after")
    def _not_compatible_with_itself(self) -> CapabilityDefinition:
        if self.compatibility is not None:
            if self.name in self.compatibility:
                raise ValueError(f"compatibility: {self.name!r} names the capability itself")
            doubled = sorted({c for c in self.compatibility if self.compatibility.count(c) > 1})
            if doubled:
                raise ValueError(f"compatibility: {', '.join(doubled)} listed twice")
        return self

    def over(self, base: CapabilityDefinition | None) -> CapabilityDefinition:
        """This definition, its unset fields taken from ``base`` (same name)."""
        if base is None:
            return self
        given = self.model_dump(exclude_none=True)
        return base.model_copy(update=given)


class CapabilityRegistry(SeedModel):
    """The registry file's format (YAML or JSON): a mapping with the list of definitions.

    .. code-block:: yaml

        include_builtin: true        # optional: start from the built-in registry (default false)
        capabilities:
          - name: data_analysis
            description: Analyse tabular data and report findings
            category: analytics
            token_cost: 900
            compatibility: [visualization, report_generation]
            required_model: gpt-4o

    Names are unique; with ``include_builtin`` a listed capability the built-in registry also has is defined field
    by field over the built-in one (and the built-in ones not listed are kept).
    """

    include_builtin: StrictBool = False
    capabilities: list[CapabilityDefinition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> CapabilityRegistry:
        seen: set[str] = set()
        for index, definition in enumerate(self.capabilities):
            if definition.name in seen:
                raise ValueError(f"capabilities[{index}].name: {definition.name!r} is defined twice")
            seen.add(definition.name)
        return self

    def resolved(self) -> CapabilityRegistry:
        """The registry as runs use it: the built-in one under this one when ``include_builtin``."""
        if not self.include_builtin:
            return self
        own = {d.name: d for d in self.capabilities}
        merged = [own.pop(d.name).over(d) if d.name in own else d for d in BUILTIN_CAPABILITY_REGISTRY.capabilities]
        return CapabilityRegistry(capabilities=[*merged, *own.values()])

    def definition(self, name: str) -> CapabilityDefinition | None:
        return next((d for d in self.capabilities if d.name == name), None)

    def node(self, name: str, template: CapabilityDefinition | None = None) -> tuple[Capability, bool]:
        """The Capability node of ``name`` (template definition over the registry over the defaults), and whether
        any source defined it (False: a bare node, to be created only if missing)."""
        registered = self.definition(name)
        merged = template.over(registered) if template is not None else registered
        if merged is None:
            return Capability(id=capability_id(name), name=name), False
        values = merged.model_dump(exclude_none=True, exclude={"name"})
        return Capability(id=capability_id(name), name=name, **values), True


def _builtin(entries: tuple[tuple[str, str, str, int, tuple[str, ...]], ...]) -> list[CapabilityDefinition]:
    return [
        CapabilityDefinition(name=n, category=c, description=d, token_cost=t, compatibility=list(k))
        for n, c, d, t, k in entries
    ]


GENERAL_CAPABILITIES: tuple[tuple[str, str, str, int, tuple[str, ...]], ...] = (
    ("research", "research", "Find, read and cite sources on a topic", 1500, ("fact_checking", "summarization")),
    ("writing", "content", "Write clear prose for a given audience", 1200, ("research", "summarization")),
    ("summarization", "content", "Condense long documents into key points", 800, ("research", "extraction")),
    ("code_generation", "engineering", "Write working code from a specification", 1800, ("code_review", "testing")),
    ("code_review", "engineering", "Review code for bugs, style and security", 1200, ("code_generation", "testing")),
    ("data_analysis", "analytics", "Analyse tabular data and report findings", 1400, ("visualization", "sql")),
    ("translation", "content", "Translate text between languages faithfully", 900, ("writing",)),
    ("planning", "management", "Break a goal into ordered, estimated tasks", 700, ("forecasting", "negotiation")),
    ("fact_checking", "research", "Verify claims against reliable sources", 1000, ("research", "legal_review")),
    ("customer_support", "support", "Answer customer questions politely and correctly", 600, ("classification",)),
    ("sql", "engineering", "Write and optimise SQL queries", 900, ("data_analysis",)),
    ("visualization", "analytics", "Design charts that explain data", 1000, ("data_analysis",)),
    ("testing", "engineering", "Design and write automated tests", 1300, ("code_generation", "code_review")),
    ("legal_review", "compliance", "Check documents for legal and compliance risks", 1600, ("fact_checking",)),
    ("marketing_copy", "content", "Write persuasive marketing copy", 800, ("writing", "ux_review")),
    ("security_audit", "compliance", "Find security weaknesses in systems", 1700, ("code_review", "devops")),
    ("classification", "analytics", "Label items into categories consistently", 500, ("extraction",)),
    ("extraction", "analytics", "Extract structured fields from documents", 700, ("classification", "summarization")),
    ("ux_review", "design", "Critique user interfaces for usability", 1100, ("marketing_copy",)),
    ("devops", "engineering", "Automate builds, deployments and infrastructure", 1500, ("security_audit", "testing")),
    ("negotiation", "management", "Reach agreements between parties", 900, ("planning",)),
    ("forecasting", "analytics", "Predict future values from history", 1200, ("data_analysis", "planning")),
    ("image_captioning", "vision", "Describe images accurately", 600, ("classification",)),
    ("math", "analytics", "Solve quantitative problems step by step", 1000, ("data_analysis",)),
)
"""The general vocabulary: also what the synthetic generator names its capabilities from (in this order; it draws
its own token costs and compatibility, so changing those here leaves synthetic graphs as they are)."""

WORKFLOW_CAPABILITIES: tuple[tuple[str, str, str, int, tuple[str, ...]], ...] = (
    ("web_research", "research", "Search and read sources on the web or a corpus", 1500, ("data_analysis",)),
    ("report_generation", "content", "Turn findings into a structured report", 1500, ("summarisation",)),
    ("summarisation", "content", "Condense notes into key points", 800, ("report_generation",)),
)
"""Capabilities the example templates (``examples/agents``) and workflows name."""

BUILTIN_CAPABILITY_REGISTRY = CapabilityRegistry(capabilities=_builtin(GENERAL_CAPABILITIES + WORKFLOW_CAPABILITIES))
"""``capability_registry: builtin``."""
