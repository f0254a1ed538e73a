"""Seed 002's SDKConfiguration with every nested configuration, and its validation rules.

Rules from the seed enforced here:

* API keys match their provider's format (:mod:`agentparty.models._keys`);
* an OAuth2 redirect URI is a valid https URL (http only for localhost);
* rate limits are positive integers (strict: no floats, strings or booleans);
* security settings meet the SOC 2 baseline :data:`SOC2_BASELINE`.

Sections the seed marks required but that a small deployment has no use for
(OAuth2, alerts, protocols) have safe defaults, so every document the seed
accepts is accepted here and a minimal file is short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ._base import CamelModel, NonEmptyStr, PositiveStrictInt
from ._keys import api_key_problem
from .agent import REALTIME_RESPONSE_TIME_MS
from .graph import SEMVER_PATTERN
from .model_registry import DEFAULT_MODEL_REGISTRY, ModelInfo, ModelRegistry
from .tools import ToolPolicy
from .workflow import WorkflowDefinition

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _secure_url(value: str, what: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ValueError(f"{what} {value!r} is not an absolute http(s) URL")
    if parsed.scheme == "http" and parsed.hostname not in _LOCAL_HOSTS:
        raise ValueError(f"{what} must use https (http is allowed only for localhost), got {value!r}")
    if parsed.fragment:
        raise ValueError(f"{what} must not contain a fragment ('#…')")
    return value


# --- Authentication ------------------------------------------------------------------


ExportFormat = Literal["prometheus", "json", "otlp", "statsd", "csv"]


def _json_only() -> list[ExportFormat]:
    return ["json"]


class OAuth2Config(CamelModel):
    client_id: NonEmptyStr
    client_secret: SecretStr | None = None
    scopes: list[NonEmptyStr] = Field(default_factory=list)
    redirect_uri: str
    token_endpoint: str

    @field_validator("redirect_uri")
    @classmethod
    def _redirect(cls, value: str) -> str:
        return _secure_url(value, "redirectUri")

    @field_validator("token_endpoint")
    @classmethod
    def _token_endpoint(cls, value: str) -> str:
        return _secure_url(value, "tokenEndpoint")


class ApiKeyRotationConfig(CamelModel):
    enabled: bool = False
    rotation_interval: PositiveStrictInt = 720
    """Hours."""
    max_age: PositiveStrictInt = 2160
    """Hours."""

    @model_validator(mode="after")
    def _age_covers_interval(self) -> ApiKeyRotationConfig:
        if self.max_age < self.rotation_interval:
            raise ValueError(
                f"maxAge ({self.max_age} h) must be at least rotationInterval ({self.rotation_interval} h)"
            )
        return self


class ApiKeyAuthConfiguration(CamelModel):
    api_key: SecretStr | None = None
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    """Environment variable holding the key: keeps keys out of configuration files."""

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeyAuthConfiguration:
        if (self.api_key is None) == (self.api_key_env is None):
            raise ValueError("give exactly one of apiKey or apiKeyEnv")
        return self


class BearerTokenConfiguration(CamelModel):
    token: SecretStr | None = None
    token_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> BearerTokenConfiguration:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("give exactly one of token or tokenEnv")
        return self


class ApiKeyAuthentication(CamelModel):
    type: Literal["api_key"] = "api_key"
    configuration: ApiKeyAuthConfiguration


class OAuth2Authentication(CamelModel):
    type: Literal["oauth2"] = "oauth2"
    configuration: OAuth2Config


class BearerTokenAuthentication(CamelModel):
    type: Literal["bearer_token"] = "bearer_token"
    configuration: BearerTokenConfiguration


AuthenticationMethod = Annotated[
    ApiKeyAuthentication | OAuth2Authentication | BearerTokenAuthentication, Field(discriminator="type")
]


class ProviderConfig(CamelModel):
    name: NonEmptyStr
    type: Literal["openai", "anthropic", "google"]
    endpoint: str | None = None
    """Base URL; set it for an OpenAI-compatible server (Ollama, vLLM)."""
    authentication: AuthenticationMethod
    models: list[ModelInfo] = Field(default_factory=list)

    @model_validator(mode="after")
    def _key_matches_provider(self) -> ProviderConfig:
        auth = self.authentication
        if isinstance(auth, ApiKeyAuthentication) and auth.configuration.api_key is not None:
            # OpenAI-compatible servers (endpoint set) issue keys of their own shape.
            problem = None
            if self.endpoint is None or self.type != "openai":
                problem = api_key_problem(self.type, auth.configuration.api_key.get_secret_value())
            if problem:
                raise ValueError(f"authentication.configuration.apiKey {problem}")
        return self


class AuthenticationConfig(CamelModel):
    providers: list[ProviderConfig] = Field(default_factory=list)
    default_provider: str | None = None
    oauth2: OAuth2Config | None = None
    api_key_rotation: ApiKeyRotationConfig = Field(default_factory=ApiKeyRotationConfig)

    @model_validator(mode="after")
    def _default_is_configured(self) -> AuthenticationConfig:
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique, got {names}")
        if self.default_provider is not None and self.default_provider not in names:
            raise ValueError(
                f"defaultProvider {self.default_provider!r} is not one of the providers ({', '.join(names) or 'none'})"
            )
        return self


# --- Communication -------------------------------------------------------------------


class RealtimeConfig(CamelModel):
    protocol: Literal["websocket", "sse", "long_polling"] = "websocket"
    max_latency: PositiveStrictInt = 200
    """Milliseconds."""
    buffer_size: PositiveStrictInt = 1024
    heartbeat_interval: PositiveStrictInt = 30_000
    """Milliseconds."""


class BatchingConfig(CamelModel):
    enabled: bool = True
    max_batch_size: PositiveStrictInt = 100
    max_wait_time: Annotated[int, Field(ge=0)] = 50
    """Milliseconds."""
    flush_interval: PositiveStrictInt = 100
    """Milliseconds."""


class ConnectionPoolConfig(CamelModel):
    max_connections: PositiveStrictInt = 50
    idle_timeout: PositiveStrictInt = 60_000
    """Milliseconds."""
    max_reuse_count: PositiveStrictInt = 1000


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


# --- Monitoring ----------------------------------------------------------------------


class MetricsConfig(CamelModel):
    enabled: bool = True
    collection_interval: PositiveStrictInt = 10_000
    """Milliseconds."""
    retention_period: PositiveStrictInt = 168
    """Hours."""
    export_formats: list[ExportFormat] = Field(default_factory=_json_only)


class ComplianceConfig(CamelModel):
    soc2: bool = True
    gdpr: bool = False
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


class EmailChannelConfig(CamelModel):
    recipients: Annotated[list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]], Field(min_length=1)]


class SlackChannelConfig(CamelModel):
    webhook_url: str
    channel: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _secure_url(value, "webhookUrl")


class WebhookChannelConfig(CamelModel):
    url: str
    secret_name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _secure_url(value, "url")


class SmsChannelConfig(CamelModel):
    phone_numbers: Annotated[list[Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$")]], Field(min_length=1)]
    """E.164 numbers, e.g. +4915112345678."""


class EmailChannel(CamelModel):
    type: Literal["email"] = "email"
    configuration: EmailChannelConfig


class SlackChannel(CamelModel):
    type: Literal["slack"] = "slack"
    configuration: SlackChannelConfig


class WebhookChannel(CamelModel):
    type: Literal["webhook"] = "webhook"
    configuration: WebhookChannelConfig


class SmsChannel(CamelModel):
    type: Literal["sms"] = "sms"
    configuration: SmsChannelConfig


NotificationChannel = Annotated[EmailChannel | SlackChannel | WebhookChannel | SmsChannel, Field(discriminator="type")]


class AlertConfig(CamelModel):
    type: Literal["performance", "error", "security"]
    threshold: Annotated[float, Field(ge=0.0)]
    severity: Literal["low", "medium", "high", "critical"]
    channels: Annotated[list[NotificationChannel], Field(min_length=1)]


class PerformanceThresholds(CamelModel):
    """Objectives that monitoring checks at run time (not schema rules on recorded data)."""

    max_response_time: Annotated[float, Field(gt=0.0)] = REALTIME_RESPONSE_TIME_MS
    """Milliseconds; seed 002's real-time objective is 200 ms."""
    max_error_rate: Annotated[float, Field(ge=0.0, le=100.0)] = 5.0
    """Percent."""
    min_throughput: Annotated[float, Field(ge=0.0)] = 0.0
    """Requests per second."""
    max_memory_usage: Annotated[float, Field(gt=0.0, le=100.0)] = 90.0
    """Percent."""


class MonitoringConfig(CamelModel):
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    alerts: list[AlertConfig] = Field(default_factory=list)
    performance_thresholds: PerformanceThresholds = Field(default_factory=PerformanceThresholds)


# --- Security ------------------------------------------------------------------------


class EncryptionConfig(CamelModel):
    algorithm: Literal["AES-256-GCM", "ChaCha20-Poly1305"] = "AES-256-GCM"
    key_rotation: bool = True
    at_rest: bool = True
    in_transit: bool = True


class Permission(CamelModel):
    resource: NonEmptyStr
    actions: Annotated[list[Literal["create", "read", "update", "delete"]], Field(min_length=1)]
    conditions: dict[str, Any] | None = None
    """Attribute conditions (e.g. ``{"owner": "self"}``); the seed leaves their shape open."""

    @field_validator("actions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"actions must not repeat, got {value}")
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

    @model_validator(mode="after")
    def _soc2_baseline(self) -> SecurityConfig:
        problems = []
        for control in SOC2_BASELINE:
            value: Any = self
            for part in control.path:
                value = getattr(value, part)
            if value is not True:
                problems.append(
                    {"path": control.field, "message": f"must be true: {control.reason}", "code": "soc2_baseline"}
                )
        if problems:
            raise PydanticCustomError(
                "soc2_baseline",
                "{summary}",
                {"summary": "; ".join(f"{p['path']}: {p['message']}" for p in problems), "problems": problems},
            )
        return self


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
