"""Agent templates and their semantic versions, and provisioning agents from them.

A template (seed 000 ``AgentTemplate``) has versions (``TemplateVersion``,
node key ``(template_id, version)``) that never change once created: editing a
template means creating a new version. A version is created as a draft, then
published (steps may use it) and later deprecated (no new agents; existing
ones keep running). Capabilities are attached per version with a proficiency.

``agent: NAME`` in a step resolves to the template's latest published version,
``version: X.Y.Z`` to that one. The rows live in a :class:`~agentparty.runtime.template_store.TemplateStore`
(SQLite under ``AGENTPARTY_HOME``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from agentparty.models import CreateAgentTemplateRequest
from agentparty.models.agent import AgentInstance, ExecutionContext, ModelConfiguration, ResourceLimits
from agentparty.models.graph import AgentTemplate, TemplateStatus, TemplateVersion, stable_id
from agentparty.models.memory import MemoryConfig, active_memory
from agentparty.models.model_registry import ModelRegistry
from agentparty.models.step_errors import StepValidationError, TemplateError, ToolsRefused
from agentparty.models.templates import VersionBump, VersionRecord
from agentparty.models.tools import AgentTooling, ToolPolicy
from agentparty.runtime.sealing import sealer_at
from agentparty.runtime.settings import state_backend_at
from agentparty.runtime.state_backend import StateBackend
from agentparty.runtime.template_store import SharedTemplateStore, TemplateStore


def persistent_agent_id(*identity: str) -> str:
    """The id of the persistent agent a step puts to work: one per published template version
    (``template_id, version``) or per ad-hoc agent (``"ad-hoc", name, model``).

    The agent outlives runs (seed 000's Agent node accumulates teams, peers,
    proficiencies and reliability), so its id depends on what it is, never on
    the run; where it works is the lifecycle's *engagement* (run key and slot).
    """
    return stable_id("agent", *identity)


def engagement_key(run_key: str, slot: str) -> str:
    """One engagement of an agent: a run and the step slot (``step`` or ``step[item]``) it works in."""
    return json.dumps([run_key, slot])


@dataclass(frozen=True)
class ResolvedTemplate:
    template: AgentTemplate
    record: VersionRecord

    @property
    def version(self) -> TemplateVersion:
        return self.record.version


def default_system_prompt(name: str, description: str, personality: str, capabilities: Mapping[str, float]) -> str:
    parts = [f"You are {name}, an agent in an Agent Party team."]
    if description:
        parts.append(description.rstrip(".") + ".")
    if personality:
        parts.append(f"Personality: {personality}.")
    if capabilities:
        parts.append("Capabilities: " + ", ".join(sorted(capabilities)) + ".")
    parts.append("Answer the task precisely; when a JSON schema is given, answer with JSON that matches it.")
    return " ".join(parts)


AGENT_PROMPT_FIELDS = ("name", "description", "personality", "capabilities")


def render_prompt_template(
    name: str, text: str, resolved: ResolvedTemplate, inputs: Mapping[str, object], step_id: str
) -> str:
    """A prompt template filled in: the agent's own fields, then the step's inputs (JSON for what is not text)."""
    template = resolved.template
    values: dict[str, object] = {
        "name": template.name,
        "description": template.description,
        "personality": resolved.version.personality,
        "capabilities": ", ".join(sorted(resolved.record.capabilities)),
    }
    for key, value in inputs.items():
        values.setdefault(key, value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str))
    try:
        return text.format_map(values)
    except KeyError as exc:
        given = ", ".join(sorted(inputs)) or "none"
        raise StepValidationError(
            f"step {step_id!r}: prompt template {name!r} needs {{{exc.args[0]}}}, which is neither one of the "
            f"agent's fields ({', '.join(AGENT_PROMPT_FIELDS)}) nor an input of the step (inputs: {given})"
        ) from None


class TemplateRegistry:
    """Templates and their versions, under the rules: immutable versions, the tool allowlist, publishing."""

    def __init__(
        self,
        store: TemplateStore,
        policy: ToolPolicy | None = None,
        models: ModelRegistry | None = None,
        prompt_templates: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.prompt_templates = prompt_templates
        """The runtime's prompt templates a version may name; unchecked when None."""
        self.policy = policy or ToolPolicy()
        """The allowlist of tool code a template may name (nothing, unless configured)."""
        self.models = models
        """The model registry, to refuse tools for a model without ``supportsFunctions``; unchecked when None."""

    @classmethod
    def at(
        cls,
        home: Path,
        policy: ToolPolicy | None = None,
        models: ModelRegistry | None = None,
        prompt_templates: Mapping[str, str] | None = None,
        backend: StateBackend | None = None,
    ) -> TemplateRegistry:
        """The registry of ``home``: in ``backend``, by default where the settings keep engine state."""
        store = SharedTemplateStore(backend or state_backend_at(home), sealer_at(home))
        return cls(store, policy, models, prompt_templates)

    def check_prompt_template(self, name: str, prompt_template: str | None) -> None:
        """Refuse a prompt template the runtime configuration does not define."""
        known = self.prompt_templates
        if prompt_template is None or known is None or prompt_template in known:
            return
        names = ", ".join(sorted(known)) or "none"
        raise ToolsRefused(
            name,
            [
                (
                    ("prompt_template",),
                    f"prompt template {prompt_template!r} is not defined in agentRuntime.promptTemplates "
                    f"(defined: {names})",
                )
            ],
        )

    def check_tooling(self, name: str, model: str, tooling: AgentTooling) -> None:
        """Refuse tool code off the allowlist, and tools for a model that cannot call functions."""
        problems = self.policy.refusals(tooling)
        info = self.models.available_models.get(model) if self.models is not None else None
        if tooling and info is not None and not info.capabilities.supports_functions:
            problems.append(
                (
                    ("model",),
                    f"model {model!r} does not support functions (supportsFunctions: false), so it cannot "
                    "be given tools",
                )
            )
        if problems:
            raise ToolsRefused(name, problems)

    def check_memory(self, name: str, model: str, memory: MemoryConfig | None) -> None:
        """Refuse a memory for a model that cannot call functions (its agent reads and writes it with tools)."""
        info = self.models.available_models.get(model) if self.models is not None else None
        if active_memory(memory) is not None and info is not None and not info.capabilities.supports_functions:
            why = (
                f"model {model!r} does not support functions (supportsFunctions: false), so it cannot use the "
                "remember and recall tools of a memory"
            )
            raise ToolsRefused(name, [(("memory",), why)])

    def _template(self, name: str) -> AgentTemplate:
        template = self.store.template_by_name(name)
        if template is None:
            raise TemplateError(f"no agent template named {name!r}")
        return template

    def create(
        self, request: CreateAgentTemplateRequest, *, created_by: str = "system", proficiency: float = 0.5
    ) -> ResolvedTemplate:
        """A new template with draft version 1.0.0 (seed 000 ``CreateAgentTemplateRequest``)."""
        if self.store.template_by_name(request.name) is not None:
            raise TemplateError(f"an agent template named {request.name!r} exists; add a version to change it")
        self.check_tooling(request.name, request.model, request.tooling)
        self.check_memory(request.name, request.model, request.memory)
        self.check_prompt_template(request.name, request.prompt_template)
        template = AgentTemplate(
            name=request.name,
            description=request.description,
            created_by=created_by,
            is_auto_generated=request.is_auto_generated,
            approval_required=request.approval_required,
            governance_rules=request.governance_rules,
            version_count=1,
        )
        capabilities = dict.fromkeys(request.capabilities, proficiency)
        version = TemplateVersion(
            template_id=template.id,
            version="1.0.0",
            model=request.model,
            parameters=request.parameters,
            personality=request.personality,
        )
        record = VersionRecord(
            version=version,
            capabilities=capabilities,
            capability_definitions=request.capability_definitions,
            system_prompt=default_system_prompt(request.name, request.description, request.personality, capabilities),
            prompt_template=request.prompt_template,
            tooling=request.tooling,
            memory=request.memory,
        )
        self.store.save_template(template)
        self.store.insert_version(record)
        return ResolvedTemplate(template, record)

    def new_version(
        self,
        name: str,
        bump: VersionBump = "minor",
        *,
        model: str | None = None,
        parameters: dict[str, object] | None = None,
        personality: str | None = None,
        capabilities: Mapping[str, float] | None = None,
        system_prompt: str | None = None,
        tooling: AgentTooling | None = None,
        memory: MemoryConfig | None = None,
    ) -> ResolvedTemplate:
        """A new draft version derived from the latest one; earlier versions stay exactly as they were.

        Unless given, the tooling and the memory configuration are the latest version's (the memory's entries are
        not: the new version's agent starts empty unless its configuration says ``inherit``)."""
        template = self._template(name)
        latest = self.store.versions(template.id)[-1]
        tooling = latest.tooling if tooling is None else tooling
        self.check_tooling(name, model or latest.version.model, tooling)
        memory = latest.memory if memory is None else memory
        self.check_memory(name, model or latest.version.model, memory)
        current = Version(latest.version.version)
        number = {
            "major": f"{current.major + 1}.0.0",
            "minor": f"{current.major}.{current.minor + 1}.0",
            "patch": f"{current.major}.{current.minor}.{current.micro + 1}",
        }[bump]
        base = latest.version
        version = TemplateVersion(
            template_id=template.id,
            version=number,
            model=model or base.model,
            parameters=base.parameters.model_copy(update=parameters or {}),
            personality=base.personality if personality is None else personality,
            cost_profile=base.cost_profile,
        )
        caps = dict(latest.capabilities if capabilities is None else capabilities)
        record = VersionRecord(
            version=version,
            capabilities=caps,
            capability_definitions=[d for d in latest.capability_definitions if d.name in caps],
            system_prompt=system_prompt
            or default_system_prompt(template.name, template.description, version.personality, caps),
            prompt_template=latest.prompt_template,
            tooling=tooling,
            memory=memory,
        )
        self.store.insert_version(record)
        self.store.save_template(template.model_copy(update={"version_count": template.version_count + 1}))
        return ResolvedTemplate(template, record)

    def _require_version(self, template: AgentTemplate, version: str) -> None:
        known = [r.version.version for r in self.store.versions(template.id)]
        if version not in known:
            raise TemplateError(f"template {template.name!r} has no version {version} (versions: {', '.join(known)})")

    def publish(self, name: str, version: str, *, approved_by: str | None = None) -> None:
        """Make a version usable; a template with ``approval_required`` needs the approver's name."""
        template = self._template(name)
        self._require_version(template, version)
        if template.approval_required and not approved_by:
            raise TemplateError(f"template {name!r} requires approval to publish: name the approver (approved_by)")
        self.store.set_version_status(template.id, version, "published", approved_by)
        if template.status is TemplateStatus.DRAFT:
            self.store.save_template(template.model_copy(update={"status": TemplateStatus.PUBLISHED}))

    def deprecate(self, name: str, version: str) -> None:
        template = self._template(name)
        self._require_version(template, version)
        self.store.set_version_status(template.id, version, "deprecated")
        if all(r.status == "deprecated" for r in self.store.versions(template.id)):
            self.store.save_template(template.model_copy(update={"status": TemplateStatus.DEPRECATED}))

    def versions(self, name: str) -> list[VersionRecord]:
        return self.store.versions(self._template(name).id)

    def find(self, name: str) -> AgentTemplate | None:
        return self.store.template_by_name(name)

    def resolve(self, name: str, version: str | None = None, template: AgentTemplate | None = None) -> ResolvedTemplate:
        """The named version, or the latest published one; drafts and deprecated versions are refused."""
        template = template or self._template(name)
        records = self.store.versions(template.id)
        if version is not None:
            record = next((r for r in records if r.version.version == version), None)
            if record is None:
                known = ", ".join(r.version.version for r in records)
                raise TemplateError(f"template {name!r} has no version {version} (versions: {known})")
            if record.status != "published":
                raise TemplateError(
                    f"version {version} of template {name!r} is {record.status}; only published versions can run"
                )
            return ResolvedTemplate(template, record)
        published = [r for r in records if r.status == "published"]
        if not published:
            raise TemplateError(f"template {name!r} has no published version")
        return ResolvedTemplate(template, published[-1])

    def provision(
        self,
        resolved: ResolvedTemplate,
        registry: ModelRegistry,
        *,
        run_key: str,
        user_id: str | None = None,
        model: str | None = None,
        resource_limits: ResourceLimits | None = None,
    ) -> AgentInstance:
        """An AgentInstance (seed 002) of this version, working in one run's slot.

        Its id is the version's persistent agent (:func:`persistent_agent_id`),
        so every run, retry and resume of a step puts the same agent to work;
        the run is its session.
        """
        if resolved.record.status == "deprecated":
            raise TemplateError(
                f"version {resolved.version.version} of {resolved.template.name!r} is deprecated: no new agents"
            )
        name = model or resolved.version.model
        info = registry.available_models.get(name)
        if info is None:
            raise TemplateError(registry.unregistered_message(name))
        agent_id = persistent_agent_id(resolved.template.id, resolved.version.version)
        return AgentInstance(
            id=agent_id,
            model=ModelConfiguration(
                provider=info.provider,
                model=name,
                version=resolved.version.version,
                parameters=resolved.version.parameters,
                capabilities=info.capabilities,
            ),
            context=ExecutionContext(
                session_id=run_key,
                user_id=user_id,
                permissions=list(resolved.record.tooling.permissions),
                resource_limits=resource_limits or ResourceLimits(),
            ),
        )
