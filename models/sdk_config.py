"""Seed 002's SDKConfiguration with every nested configuration, and its validation rules.

Rules from the seed enforced here:

* API keys match their provider's format (:mod:`agentparty.models._keys`);
* an OAuth2 redirect URI is a valid https URL (http only for localhost);
* rate limits are positive integers (strict: no floats, strings or booleans);
* security settings meet the SOC 2 baseline :data:`SOC2_BASELINE` while ``compliance.soc2`` is on (the
  default); with it off each control may be turned off.
* with ``compliance.gdpr`` on, the GDPR baseline holds too (``models/compliance.py``: data masking, audit
  logging, audit trail).

Sections the seed marks required but that a small deployment has no use for
(OAuth2, alerts, protocols) have safe defaults, so every document the seed
accepts is accepted here and a minimal file is short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, IPvAnyNetwork, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ._base import CamelModel, NonEmptyStr, PositiveStrictInt
from .alerts import AlertConfig, PerformanceThresholds
from .authentication import AuthenticationConfig, join_provider_models
from .compliance import GDPR_RULE, gdpr_problems
from .graph import SEMVER_PATTERN
from .model_registry import DEFAULT_MODEL_REGISTRY, ModelRegistry
from .tools import ToolPolicy
from .workflow import WorkflowDefinition

# --- Authentication: models/authentication.py -----------------------------------------


ExportFormat = Literal["prometheus", "json", "otlp", "statsd", "csv"]


def _json_only() -> list[ExportFormat]:
    return ["json"]


# --- Communication -------------------------------------------------------------------


class RealtimeConfig(CamelModel):
    protocol: Literal["websocket", "sse", "long_polling"] = "websocket"
    max_latency: PositiveStrictInt = 200
    """Milliseconds."""
    buffer_size: PositiveStrictInt = 1024
    heartbeat_interval: PositiveStrictInt = 30_000
    """Milliseconds."""


class BatchingConfig(CamelModel):
    """The outbox relay's batching (``runtime/relay.py``: ``RelayBatching``)."""

    enabled: bool = True
    max_batch_size: PositiveStrictInt = 100
    max_wait_time: Annotated[int, Field(ge=0)] = 0
    """Milliseconds. 0, not the seed's 50: waiting for a full batch delayed every lone event and every run's end
    by 50 ms, for no throughput measured (``python bench/events.py --batching seed`` against ``100,0,100``)."""
    flush_interval: PositiveStrictInt = 100
    """Milliseconds."""


class ConnectionPoolConfig(CamelModel):
    """The provider SDK clients' HTTP pool (``httpx.Limits``): ``maxConnections`` open at once per provider, kept
    alive ``idleTimeout`` ms when idle."""

    max_connections: PositiveStrictInt = 50
    idle_timeout: PositiveStrictInt = 60_000
    """Milliseconds."""
    max_reuse_count: PositiveStrictInt = 1000
    """Refused unless left at 1000: httpx cannot retire a connection after so many requests."""

    @field_validator("max_reuse_count")
    @classmethod
    def _no_reuse_limit(cls, value: int) -> int:
        if value != 1000:
            raise ValueError(
                "communication.connectionPool.maxReuseCount is not supported: httpx, the provider SDKs' HTTP "
                "client, cannot retire a connection after a number of requests (it closes idle ones after "
                "idleTimeout); leave maxReuseCount at 1000 or remove it"
            )
        return value


class ProtocolConfig(CamelModel):
    name: NonEmptyStr
    version: NonEmptyStr
    encryption: bool = True
    compression: bool = False


class CommunicationConfig(CamelModel):
    realtime: RealtimeConfig = Field(default_factory=RealtimeConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    connection_pool: ConnectionPoolConfig = Field(default_factory=ConnectionPoolConfig)
    protocols: list[ProtocolConfig] = Field(default_factory=list)
    """Refused when not empty: the wire protocols are fixed (README, "Live updates")."""

    @field_validator("protocols")
    @classmethod
    def _no_protocols(cls, value: list[ProtocolConfig]) -> list[ProtocolConfig]:
        for index, entry in enumerate(value):
            raise ValueError(
                f"communication.protocols[{index}] ({entry.name} {entry.version}) is not supported: agents talk "
                "through the engine, not over a protocol of their own, and the engine's protocols are fixed "
                "(HTTP, WebSocket and Server-Sent Events for the API, Kafka for events); TLS is "
                "security.encryption.inTransit; remove the entry"
            )
        return value


# --- Monitoring ----------------------------------------------------------------------


REFUSED_EXPORT_FORMATS: dict[str, str] = {
    "statsd": "StatsD export is not implemented: StatsD has no labels and no histograms to carry these metrics; "
    "use prometheus (a statsd_exporter can bridge the other way)",
}
"""Formats the seed lists that are refused at load, and why."""


class MetricsConfig(CamelModel):
    """What ``runtime/telemetry_metrics.py`` records and ``runtime/telemetry_export.py`` serves."""

    enabled: bool = True
    """False: nothing is recorded, and the metrics routes say so."""
    collection_interval: PositiveStrictInt = 10_000
    """Milliseconds: how often a scrape re-reads the figures kept in stores (outbox, deliveries, approvals,
    breakers) and compacts a worker's files of finished flow-run processes; scrapes in between reuse them."""
    retention_period: PositiveStrictInt = 168
    """Hours: how long a worker's aggregate keeps a series no finished process changed, and how long the
    metrics directory of a worker that is gone stays before it is deleted."""
    export_formats: list[ExportFormat] = Field(default_factory=_json_only)
    """Served: prometheus (GET /metrics), json (GET /metrics/json), csv (GET /metrics/csv); otlp is pushed to the
    OTLP endpoint of the standard ``OTEL_EXPORTER_OTLP_*`` variables every collectionInterval."""

    @field_validator("export_formats")
    @classmethod
    def _implemented(cls, value: list[ExportFormat]) -> list[ExportFormat]:
        for i, fmt in enumerate(value):
            if fmt in REFUSED_EXPORT_FORMATS:
                raise ValueError(f"exportFormats[{i}] {fmt!r} is refused: {REFUSED_EXPORT_FORMATS[fmt]}")
        if len(set(value)) != len(value):
            raise ValueError(f"exportFormats must not repeat, got {value}")
        return value


class ComplianceConfig(CamelModel):
    soc2: bool = True
    gdpr: bool = Field(default=False, description=GDPR_RULE)
    audit_trail: bool = True
    data_retention: PositiveStrictInt = 365
    """Days."""

    @model_validator(mode="after")
    def _soc2_needs_audit_trail(self) -> ComplianceConfig:
        if self.soc2 and not self.audit_trail:
            raise ValueError("auditTrail must be true when soc2 compliance is on")
        return self


class LoggingConfig(CamelModel):
    level: Literal["debug", "info", "warn", "error"] = "info"
    format: Literal["json", "text"] = "json"
    structured: bool = True
    compliance: ComplianceConfig = Field(default_factory=ComplianceConfig)


# Alerts, their channels and the performance thresholds: models/alerts.py


class TracingConfig(CamelModel):
    """Extension: what spans carry (``runtime/tracing.py``)."""

    capture_content: bool = False
    """Put prompt and completion content in model-turn spans (masked like any run data leaving a run)."""


class MonitoringConfig(CamelModel):
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    alerts: list[AlertConfig] = Field(default_factory=list)
    performance_thresholds: PerformanceThresholds = Field(default_factory=PerformanceThresholds)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    """Extension: span content (``captureContent``)."""


# --- Security ------------------------------------------------------------------------


class EncryptionConfig(CamelModel):
    algorithm: Literal["AES-256-GCM", "ChaCha20-Poly1305"] = "AES-256-GCM"
    key_rotation: bool = True
    at_rest: bool = True
    in_transit: bool = True
    trusted_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    """Extension: networks (CIDRs) where a plaintext endpoint is allowed although ``inTransit`` is on; each use is
    audited (``runtime/transit.py``). Loopback needs no entry."""

    @model_validator(mode="after")
    def _trusted_networks_need_in_transit(self) -> EncryptionConfig:
        if self.trusted_networks and not self.in_transit:
            raise ValueError("trustedNetworks takes effect only with inTransit on; remove it or turn inTransit on")
        return self


class MaskingConfig(CamelModel):
    """Extension: what data masking (``dataMasking``) masks beyond its built-in kinds (``runtime/masking.py``)."""

    patterns: list[NonEmptyStr] = Field(default_factory=list)
    """Regular expressions (Python syntax) whose matches are masked as ``[masked]``."""
    fields: list[NonEmptyStr] = Field(default_factory=list)
    """Field names (any case) whose values are masked whole wherever they appear in run data."""
    mask_prompts: bool = False
    """Mask the prompts sent to models too (off: models need the data they work on)."""

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for i, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"patterns[{i}] {pattern!r} is not a regular expression: {exc}") from None
        return value


class Permission(CamelModel):
    resource: NonEmptyStr
    actions: Annotated[list[Literal["create", "read", "update", "delete"]], Field(min_length=1)]
    conditions: dict[str, Any] | None = None
    """Attribute conditions; the seed leaves their shape open. The engine understands ``workflows`` (a list of
    workflow ids) and ``owner: self`` (runs the key started); any other is refused here."""

    @field_validator("actions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"actions must not repeat, got {value}")
        return value

    @field_validator("conditions")
    @classmethod
    def _understood(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for name in sorted(set(value or {}) - {"workflows", "owner"}):
            raise ValueError(
                f"unknown condition {name!r}: the engine understands owner ('self') and workflows (workflow ids)"
            )
        if value and "owner" in value and value["owner"] != "self":
            raise ValueError(f"owner: only 'self' (the runs the key started) is understood, got {value['owner']!r}")
        workflows = (value or {}).get("workflows", ["-"])
        if not isinstance(workflows, list) or not workflows or not all(isinstance(w, str) and w for w in workflows):
            raise ValueError(f"workflows: a non-empty list of workflow ids, got {workflows!r}")
        return value


class RateLimitConfig(CamelModel):
    enabled: bool = True
    requests_per_minute: PositiveStrictInt = 600
    burst_limit: PositiveStrictInt = 60
    penalty_strategy: Literal["reject", "queue", "throttle"] = "reject"


class AccessControlConfig(CamelModel):
    rbac: bool = True
    permissions: list[Permission] = Field(default_factory=list)
    rate_limiting: RateLimitConfig = Field(default_factory=RateLimitConfig)
    roles: dict[NonEmptyStr, list[Permission]] | None = None
    """Extension: the API's roles (role → permissions); the built-in viewer, operator and admin when unset
    (``models/access.py``). API keys name one of them."""


@dataclass(frozen=True)
class Soc2Control:
    path: tuple[str, ...]
    """Attribute path from SecurityConfig (snake_case)."""
    field: str
    """The same path as written in configuration files."""
    reason: str


SOC2_BASELINE: tuple[Soc2Control, ...] = (
    Soc2Control(("encryption", "at_rest"), "encryption.atRest", "SOC 2 CC6.1 requires encryption of data at rest"),
    Soc2Control(
        ("encryption", "in_transit"), "encryption.inTransit", "SOC 2 CC6.7 requires encryption of data in transit"
    ),
    Soc2Control(("audit_logging",), "auditLogging", "SOC 2 CC7.2 requires audit logging of security-relevant events"),
    Soc2Control(("access_control", "rbac"), "accessControl.rbac", "SOC 2 CC6.3 requires role-based access control"),
    Soc2Control(
        ("access_control", "rate_limiting", "enabled"),
        "accessControl.rateLimiting.enabled",
        "SOC 2 CC6.6/A1.2 require protection against abuse: rate limiting must be on",
    ),
)
"""The SOC 2 baseline every SecurityConfig must meet (all five controls must be on)."""


class SecurityConfig(CamelModel):
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
    access_control: AccessControlConfig = Field(default_factory=AccessControlConfig)
    audit_logging: bool = True
    data_masking: bool = True
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    """Extension: configured patterns and fields, and whether prompts are masked (with ``dataMasking``)."""

    @model_validator(mode="after")
    def _masking_needs_data_masking(self) -> SecurityConfig:
        if not self.data_masking and self.masking != MaskingConfig():
            raise ValueError("masking takes effect only with dataMasking on; remove it or turn dataMasking on")
        return self


def soc2_problems(security: SecurityConfig, prefix: str = "") -> list[dict[str, str]]:
    """The SOC 2 baseline controls ``security`` leaves off (``path`` as written in files, under ``prefix``)."""
    problems = []
    for control in SOC2_BASELINE:
        value: Any = security
        for part in control.path:
            value = getattr(value, part)
        if value is not True:
            problems.append(
                {"path": prefix + control.field, "message": f"must be true: {control.reason}", "code": "soc2_baseline"}
            )
    return problems


def soc2_error(problems: list[dict[str, str]]) -> PydanticCustomError:
    """The SOC 2 and GDPR baselines' problems as one error (``problems`` gives each path its line)."""
    return PydanticCustomError(
        "compliance_baseline",
        "{summary}",
        {"summary": "; ".join(f"{p['path']}: {p['message']}" for p in problems), "problems": problems},
    )


# --- Versioning ----------------------------------------------------------------------


class CompatibilityInfo(CamelModel):
    from_version: NonEmptyStr
    to_version: NonEmptyStr
    breaking_changes: bool
    migration_required: bool


class MigrationStrategy(CamelModel):
    type: Literal["automatic", "manual", "assisted"] = "assisted"
    rollback_support: bool = True
    data_backup: bool = True


class VersioningConfig(CamelModel):
    semantic: bool = True
    auto_detection: bool = True
    compatibility_matrix: list[CompatibilityInfo] = Field(default_factory=list)
    migration_strategy: MigrationStrategy = Field(default_factory=MigrationStrategy)

    @model_validator(mode="after")
    def _semantic_versions(self) -> VersioningConfig:
        if self.semantic:
            for i, row in enumerate(self.compatibility_matrix):
                for name, version in (("fromVersion", row.from_version), ("toVersion", row.to_version)):
                    if not SEMVER_PATTERN.match(version):
                        raise ValueError(
                            f"compatibilityMatrix[{i}].{name} {version!r} is not a semantic version (semantic is on)"
                        )
        return self


# --- Workflow registry ---------------------------------------------------------------


class WorkflowStepTemplate(CamelModel):
    type: Literal["task", "decision", "parallel", "subgraph"]
    name: NonEmptyStr
    description: str = ""
    configuration_template: dict[str, Any] = Field(default_factory=dict)
    """A step ``configuration`` with placeholders, filled in when the template is used."""


class WorkflowTemplate(CamelModel):
    name: NonEmptyStr
    description: str = ""
    category: NonEmptyStr = "general"
    steps: Annotated[list[WorkflowStepTemplate], Field(min_length=1)]


class WorkflowRegistry(CamelModel):
    workflows: dict[str, WorkflowDefinition] = Field(default_factory=dict)
    templates: list[WorkflowTemplate] = Field(default_factory=list)
    custom_workflows: bool = True

    @model_validator(mode="after")
    def _keys_are_ids(self) -> WorkflowRegistry:
        for key, definition in self.workflows.items():
            if key != definition.id:
                raise ValueError(f"workflows.{key}: key differs from the definition's id {definition.id!r}")
        return self


class SDKConfiguration(CamelModel):
    authentication: AuthenticationConfig = Field(default_factory=AuthenticationConfig)
    models: ModelRegistry = Field(default_factory=lambda: DEFAULT_MODEL_REGISTRY.model_copy(deep=True))
    workflows: WorkflowRegistry = Field(default_factory=WorkflowRegistry)
    communication: CommunicationConfig = Field(default_factory=CommunicationConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    versioning: VersioningConfig = Field(default_factory=VersioningConfig)
    tools: ToolPolicy = Field(default_factory=ToolPolicy)
    """Which tool modules, MCP commands and URLs templates may name, and MCP servers configured by name."""

    @model_validator(mode="after")
    def _soc2_baseline(self) -> SDKConfiguration:
        """With ``monitoring.logging.compliance.soc2`` on (the default) the SOC 2 baseline holds; with it off,
        encryption, audit logging, RBAC and rate limiting may each be turned off (benchmarks compare against
        that, and a lab deployment may want it). With ``compliance.gdpr`` on, the GDPR baseline holds too,
        whatever ``soc2`` says; both are reported together."""
        compliance = self.monitoring.logging.compliance
        problems = soc2_problems(self.security, "security.") if compliance.soc2 else []
        if compliance.gdpr:
            problems = gdpr_problems(self, problems)
        if problems:
            raise soc2_error(problems)
        return self

    @model_validator(mode="after")
    def _provider_models_join_the_registry(self) -> SDKConfiguration:
        join_provider_models(self.authentication, self.models)
        return self
