"""Process-wide settings from the environment (``AGENTPARTY_`` prefix), via pydantic-settings.

No other module reads ``os.environ`` for configuration: they take a
:class:`Settings` (or one of the seed's config models built from it).
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, IPvAnyNetwork, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agentparty.models import DEFAULT_MODEL_REGISTRY, ModelRegistry, SDKConfiguration
from agentparty.models.capabilities import CapabilityRegistry
from agentparty.models.config import AgentRuntimeConfig, DatabaseConfig, GNNTrainingConfig, KafkaConfig
from agentparty.models.tools import ToolPolicy
from agentparty.runtime.audit_trail import AuditTrail, open_audit_trail
from agentparty.runtime.capability_registry import load_capability_registry
from agentparty.runtime.documents import read_document, validate_document
from agentparty.runtime.providers.simulated import SimulatedSettings
from agentparty.runtime.schema_versions import MigrationPolicy
from agentparty.runtime.state_backend import StateBackend, resolve_state_backend


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTPARTY_", env_nested_delimiter="__", extra="ignore")
    _migration_policy: MigrationPolicy | None = PrivateAttr(default=None)
    _capability_registry: tuple[str, CapabilityRegistry] | None = PrivateAttr(default=None)

    home: Path = Field(default_factory=lambda: Path.home() / ".agentparty")
    """Where local servers keep their data, logs and pid files."""
    prefect_port: int = 4200
    """Port of the local Prefect server started by ``agentparty up``."""
    graph_port: int = 7687
    """Bolt port of the local graph server started by ``agentparty up``."""
    graph_http_port: int = 2480
    database: DatabaseConfig | None = None
    """A Bolt server of your own (``AGENTPARTY_DATABASE__URI``, ``__USERNAME``, ``__PASSWORD``); the local one when unset."""
    graph: Literal["auto", "on", "off"] = "auto"
    """Record workflow runs in the graph: ``auto`` when a database is configured or the local graph server runs."""
    kafka: KafkaConfig | None = None
    """A Kafka cluster of your own (``AGENTPARTY_KAFKA__BOOTSTRAP_SERVERS``, ``__SECURITY_PROTOCOL``, ``__SASL_*``,
    ``__GROUP_ID``)."""
    kafka_port: int = 9092
    """Port of the local Kafka-protocol broker (Tansu) started by ``agentparty up``."""
    events: Literal["auto", "on", "off"] = "auto"
    """Emit lifecycle events: ``auto`` when a broker is configured or the local one runs."""
    event_topic_prefix: str = "agentparty."
    event_partitions: int = 3
    event_replication: int = 1
    events_settle_timeout: float = 10.0
    """Seconds a run waits at its end for its events to be delivered before it reports them pending."""
    live_stream: bool = True
    """Stream agents' text deltas, turns and tool activity to ``<event_topic_prefix>agent-stream`` (``/ws``) when
    events go to Kafka; ``false`` keeps them in the run's process (``runtime/live_stream.py``)."""
    max_concurrency: int = 32
    """Default bound on steps running at once in one workflow run."""
    simulated: SimulatedSettings = Field(default_factory=SimulatedSettings)
    """The keyless simulated provider: seed, latency, failure and rate-limit rates (``AGENTPARTY_SIMULATED__SEED`` …)."""
    agent_runtime: AgentRuntimeConfig = Field(default_factory=AgentRuntimeConfig)
    """Seed 000 ``AgentRuntimeConfig`` (``AGENTPARTY_AGENT_RUNTIME`` as JSON): default token budget, per-model rate limits."""
    user_id: str = "local"
    """Who runs workflows from this process, for user budgets and the graph's REQUESTED_BY."""
    user_token_budget: int | None = None
    """Tokens the user may spend across runs; no limit when unset."""
    user_email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    """``AGENTPARTY_USER_EMAIL``: the user's address, recorded on their User node in the graph (nothing is sent to it)."""
    user_roles: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """``AGENTPARTY_USER_ROLES``: comma-separated roles recorded on the user's User node in the graph (they describe
    the user; they grant nothing: API permissions come from API keys)."""
    gnn_training: GNNTrainingConfig = Field(default_factory=GNNTrainingConfig)
    """Seed 000 ``GNNTrainingConfig`` for the training flow (``AGENTPARTY_GNN_TRAINING`` as JSON, or ``__FIELD``)."""
    gnn_schedule: str = "0 2 * * *"
    """Cron of the scheduled training deployment (default nightly at 02:00)."""
    gnn_timezone: str = "UTC"
    run_heartbeat_s: int = Field(default=30, ge=30)
    """``AGENTPARTY_RUN_HEARTBEAT_S``: seconds between a deployed run's heartbeats (Prefect's
    ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, passed to its process; Prefect's minimum is 30)."""
    dead_run_after_s: int = Field(default=90, ge=0)
    """``AGENTPARTY_DEAD_RUN_AFTER_S``: a deployed run silent this long after a heartbeat is taken for dead (its
    worker or host stopped) and rescheduled for any worker (``deployments/dead_runs.py``); 0 turns that off."""
    work_pool: str = "agentparty"
    """Prefect process work pool that ``agentparty deploy`` targets and ``agentparty worker`` serves."""
    traces_endpoint: str | None = None
    """``AGENTPARTY_TRACES_ENDPOINT``: the OTLP/HTTP traces URL (``…/v1/traces``) spans are exported to, when the
    standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` are unset; else the trace
    viewer ``agentparty up --traces`` started, when it runs; else no tracing at all (``runtime/tracing.py``)."""
    traces_port: int = 6006
    """Port of the local trace viewer (Arize Phoenix: UI and OTLP/HTTP) started by ``agentparty up --traces``."""
    state_db_url: SecretStr | None = None
    """``AGENTPARTY_STATE_DB_URL``: a PostgreSQL server of your own for the engine's state shared across hosts
    (``postgresql://user:password@host:port/database``; ``runtime/state_backend.py``). Unset: the home's cluster
    when ``agentparty up --state-db postgres`` made one, else SQLite files under the home."""
    postgres_port: int = 0
    """Port the home's PostgreSQL cluster (``runtime/postgres_server.py``) gets when it is created; 0 picks a free
    one. It is recorded with the cluster, which keeps it."""
    prometheus_port: int = 9090
    """Port of the local Prometheus started by ``agentparty up --monitoring``."""
    alertmanager_port: int = 9093
    """Port of the local Alertmanager started by ``agentparty up --monitoring``."""
    alert_relay_url: str | None = None
    """The API's base URL as Alertmanager reaches it, for the alert relay (``/alerts/relay/…``); from
    ``api_host``/``api_port`` when unset."""
    alert_window_s: int = Field(default=300, ge=1)
    """The range of ``rate()`` in the generated alerting rules (at least two ``collectionInterval``s)."""
    alert_for_s: int = Field(default=300, ge=0)
    """How long a rule's condition must hold before its alert fires."""
    alert_group_wait_s: int = Field(default=30, ge=0)
    """Alertmanager's ``group_wait``: how long it gathers alerts of a group before the first notification."""
    alert_group_interval_s: int = Field(default=300, ge=1)
    """Alertmanager's ``group_interval``: how soon a changed group is notified again."""
    alert_repeat_interval_s: int = Field(default=4 * 3600, ge=1)
    """Alertmanager's ``repeat_interval``: how often a still-firing alert is sent again."""
    monitoring_worker_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """``AGENTPARTY_MONITORING_WORKER_ADDRESSES``: comma-separated ``host:port`` of workers' metrics listeners
    (``agentparty worker --metrics-address``) that the rendered ``prometheus.yml`` scrapes."""
    monitoring_api_key_file: Path | None = None
    """A file holding an API key whose role may read ``metrics``, which the rendered ``prometheus.yml`` sends to the
    API's ``/metrics``; not needed with ``metrics_address`` (that listener needs no key)."""
    api_host: str = "127.0.0.1"
    api_port: int = 8700
    """Where ``agentparty api`` listens."""
    api_tls_cert: Path | None = None
    """PEM certificate (chain) the API and ``/ws`` serve TLS with, together with ``api_tls_key``."""
    api_tls_key: Path | None = None
    """PEM private key of ``api_tls_cert``."""
    trusted_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    """``AGENTPARTY_TRUSTED_NETWORKS``: comma-separated CIDRs where plaintext endpoints are allowed with
    ``inTransit`` on (added to ``security.encryption.trustedNetworks``; each use is audited)."""
    api_prefect_concurrency: int = Field(default=2, ge=1)
    """Flow runs the API's webhook dispatcher creates in Prefect at once; a burst of deliveries waits in the
    delivery store behind them. Prefect's SQLite server answers 503 to a few dozen concurrent creates and
    more at once only queue for its write lock (``bench/webhooks.py``)."""
    api_graph_retry_seconds: int = Field(default=2, ge=0)
    """How long an API request retries an unreachable graph before it answers 503 (the driver's
    ``max_transaction_retry_time``, 30 s for runs, is far too long for someone waiting on a page)."""
    metrics_address: Annotated[str, Field(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):\d{1,5}$")] | None = None
    """``AGENTPARTY_METRICS_ADDRESS``: ``host:port`` of a separate metrics listener without a key (``/metrics``,
    ``/metrics/json``, ``/metrics/csv``) that the API and ``agentparty worker`` start, for Prometheus to scrape;
    none when unset (the API's own ``/metrics`` needs a key)."""
    api_access: Path | None = None
    """The API's access file (``ApiAccessConfig``: API keys, roles, rate limit); ``HOME/api-access.yaml`` when unset."""
    sdk_config: Path | None = None
    """A YAML/JSON SDKConfiguration file (model registry, providers, security); built-in defaults otherwise."""
    data_keys: SecretStr | None = None
    """``AGENTPARTY_DATA_KEYS``: the data keys that seal records at rest, ``id=base64key,…`` oldest first
    (``runtime/data_keys.py``); a generated key file under the home when neither this nor ``data_key_file`` is set."""
    data_key_file: Path | None = None
    """``AGENTPARTY_DATA_KEY_FILE``: a data key file of your own (the format of ``HOME/keys/data-keys.json``)."""
    tool_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """``AGENTPARTY_TOOL_MODULES``: comma-separated modules templates may name tools from (``pkg.mod``, ``pkg.*``);
    added to ``tools.allowedModules`` of the SDK configuration."""
    mcp_commands: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """``AGENTPARTY_MCP_COMMANDS``: comma-separated MCP commands (shell words) templates may name."""
    mcp_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """``AGENTPARTY_MCP_URLS``: comma-separated MCP endpoint URL prefixes templates may name."""
    workflows: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    """``AGENTPARTY_WORKFLOWS``: folders (``os.pathsep``-separated) where deployed entrypoints and the API find
    definitions; the working directory when unset. ``agentparty deploy`` hands it to the runs it starts."""

    @field_validator("workflows", mode="before")
    @classmethod
    def _split_search_path(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]
        return value

    @field_validator(
        "tool_modules",
        "mcp_commands",
        "mcp_urls",
        "trusted_networks",
        "monitoring_worker_addresses",
        "user_roles",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _dead_runs_after_heartbeats(self) -> Settings:
        if self.dead_run_after_s and self.dead_run_after_s <= self.run_heartbeat_s:
            raise ValueError(
                f"AGENTPARTY_DEAD_RUN_AFTER_S ({self.dead_run_after_s}) must exceed AGENTPARTY_RUN_HEARTBEAT_S "
                f"({self.run_heartbeat_s}), or every live run would look dead between two heartbeats (0 turns it off)"
            )
        return self

    @model_validator(mode="after")
    def _tls_in_pairs(self) -> Settings:
        if (self.api_tls_cert is None) != (self.api_tls_key is None):
            given, missing = (
                ("api_tls_cert", "api_tls_key") if self.api_tls_key is None else ("api_tls_key", "api_tls_cert")
            )
            raise ValueError(f"{given} is set but {missing} is not: TLS needs both (AGENTPARTY_{missing.upper()})")
        return self

    @model_validator(mode="after")
    def _capability_registry_loads(self) -> Settings:
        """``agentRuntime.capability_registry`` is read here, once: a bad file is refused when the settings load."""
        self.capability_registry()
        return self

    def capability_registry(self) -> CapabilityRegistry:
        """The capability definitions runs write to the graph (``agentRuntime.capability_registry``), read once
        per settings object and source (a ``model_copy`` that changes the source reads the new one)."""
        source = self.agent_runtime.capability_registry
        if self._capability_registry is None or self._capability_registry[0] != source:
            self._capability_registry = (source, load_capability_registry(source))
        return self._capability_registry[1]

    def tool_policy(self) -> ToolPolicy:
        """The allowlist of tool code: the SDK configuration's ``tools``, plus these settings."""
        extra = ToolPolicy(
            allowed_modules=self.tool_modules, allowed_commands=self.mcp_commands, allowed_urls=self.mcp_urls
        )
        return self.load_sdk_configuration().tools.merged(extra)

    def workflow_dirs(self) -> list[Path]:
        """Where definitions are looked up, in order."""
        return list(self.workflows) or [Path.cwd()]

    def load_sdk_configuration(self) -> SDKConfiguration:
        if self.sdk_config is None:
            return SDKConfiguration()

        config = validate_document(read_document(self.sdk_config), SDKConfiguration)
        _audit_load(self, self.sdk_config, config)
        return config

    def audit_log(self, config: SDKConfiguration | None = None) -> AuditTrail:
        """This home's audit log (the state database's one chain when state is on PostgreSQL), on when
        ``security.auditLogging`` and ``compliance.auditTrail`` both are."""
        config = config or self.load_sdk_configuration()
        enabled = config.security.audit_logging and config.monitoring.logging.compliance.audit_trail
        return open_audit_trail(self.home, self.state_backend(), enabled=enabled)

    def state_backend(self) -> StateBackend:
        """Where engine state lives (``runtime/state_backend.py``): PostgreSQL when configured, else SQLite files."""
        url = self.state_db_url.get_secret_value() if self.state_db_url else None
        return resolve_state_backend(self.home, url, self.migration_policy())

    def migration_policy(self) -> MigrationPolicy:
        """``versioning.migrationStrategy`` of the SDK configuration, read once per settings object."""
        if self._migration_policy is None:
            self._migration_policy = MigrationPolicy.from_config(self.load_sdk_configuration().versioning, self.home)
        return self._migration_policy

    def model_registry(self) -> ModelRegistry:
        if self.sdk_config is None:
            return DEFAULT_MODEL_REGISTRY
        return self.load_sdk_configuration().models


_audited_loads: set[tuple[Path, str]] = set()


def _audit_load(settings: Settings, path: Path, config: SDKConfiguration) -> None:
    """Record ``config.load`` once per process and file content (the path and the content's SHA-256)."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return
    if (path, digest) in _audited_loads:
        return
    _audited_loads.add((path, digest))
    try:
        settings.audit_log(config).append("system", "config.load", str(path), sha256=digest, pid=os.getpid())
    except OSError as exc:  # a read-only home must not stop a run; the log says what went unrecorded
        logging.getLogger(__name__).warning("audit log: config.load of %s not recorded: %s", path, exc)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def state_backend_at(home: Path) -> StateBackend:
    """Where ``home``'s engine state lives under this process's settings: for stores built from a home alone
    (``WebhookDeliveries.at(home)``), so they find the same PostgreSQL as ``Settings.state_backend``."""
    settings = get_settings()
    url = settings.state_db_url.get_secret_value() if settings.state_db_url else None
    return resolve_state_backend(home, url, settings.migration_policy())
