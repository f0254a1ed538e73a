"""A template version as the template store keeps it: the version, its status and its capabilities.

Seed 000's ``TemplateVersion`` never changes once created; what changes beside it
(draft → published → deprecated, who approved it) lives in a :class:`VersionRecord`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .capabilities import CapabilityDefinition
from .graph import TemplateVersion
from .memory import MemoryConfig
from .tools import AgentTooling

VersionBump = Literal["major", "minor", "patch"]
VersionStatus = Literal["draft", "published", "deprecated"]


class VersionRecord(BaseModel):
    """A TemplateVersion with what the graph keeps beside it: status and capabilities."""

    version: TemplateVersion
    status: VersionStatus = "draft"
    capabilities: dict[str, float] = Field(default_factory=dict)
    """Capability name → proficiency in [0, 1]."""
    capability_definitions: list[CapabilityDefinition] = Field(default_factory=list)
    """The version's own definitions of some of its capabilities (``CreateAgentTemplateRequest``); they win over
    the capability registry's when runs write the capability nodes (none for versions stored before them)."""
    system_prompt: str = ""
    prompt_template: str | None = None
    """A prompt template of the runtime configuration (``agentRuntime.promptTemplates``) used instead of
    ``system_prompt``, filled in per step (:func:`agentparty.tasks.templates.render_prompt_template`)."""
    tooling: AgentTooling = Field(default_factory=AgentTooling)
    """Tools, MCP servers, permissions and loop limits of this version (none for versions stored before tools)."""
    memory: MemoryConfig | None = None
    """The memory this version's agent keeps across runs; none for versions stored before memory."""
    approved_by: str | None = None
    """Who approved publishing this version, for templates with ``approval_required``."""
