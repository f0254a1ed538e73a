"""The FastAPI application: one router per concern, shared services on ``app.state``.

``app.state`` holds ``access`` (the key/role policy), ``rate_limiter``, ``audit``
and ``audit_writer`` (the audit log and the thread that appends requests to it),
``settings``, ``alert_relay_channels`` (what ``POST /alerts/relay/{receiver}`` forwards to),
``workflows`` (the definition index: the search path's files and the copies stored with the
deployments), ``deployments`` (deployment
ids by name), ``webhook_deliveries`` (the accepted webhooks) and, while the app
runs, ``prefect`` (the one Prefect client, opened by the lifespan) and
``dispatcher`` (which creates the deliveries' runs through it); ``metrics`` (what ``GET /metrics`` serves). Tests may hand
in ``graph_store``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from agentparty.api import (
    alert_relay,
    approvals,
    audit,
    conversations,
    live,
    live_transports,
    resources,
    runs,
    users,
    webhooks,
)
from agentparty.api.audit import install_audit
from agentparty.api.deployed_workflows import DeployedWorkflows
from agentparty.api.deployment_directory import DeploymentDirectory
from agentparty.api.docs import mount_docs
from agentparty.api.errors import install_error_handlers
from agentparty.api.masking import install_masking
from agentparty.api.metrics import install_metrics
from agentparty.api.rate_limit import RateLimiter
from agentparty.api.security import API_KEY_HEADER, AccessPolicy
from agentparty.api.services import prefect_lifespan
from agentparty.api.workflow_index import WorkflowIndex
from agentparty.flows.deployed import search_dirs
from agentparty.models.access import ApiAccessConfig
from agentparty.runtime.alert_routes import relay_channels
from agentparty.runtime.api_keys import ApiKeyStore
from agentparty.runtime.audit_trail import AuditTrail
from agentparty.runtime.masking import masker_for
from agentparty.runtime.provider_auth import check_provider_credentials
from agentparty.runtime.rate_buckets import SharedBuckets
from agentparty.runtime.settings import Settings, get_settings
from agentparty.runtime.tracing import configure_tracing
from agentparty.runtime.webhook_deliveries import WebhookDeliveries

if TYPE_CHECKING:
    from agentparty.runtime.graph_store import GraphStore

DESCRIPTION = f"""Agent Party's HTTP service: signed webhooks that start workflow runs, agent templates,
agents, teams, workflows and their runs.

Every route but the webhooks and the alert relay needs an API key in `{API_KEY_HEADER}` (or `Authorization: Bearer KEY`);
what a key may do is its role's permissions. Webhooks are authenticated by their HMAC signature, the alert
relay by the token `agentparty monitoring render` generates for Alertmanager.
"""


def create_app(
    access: ApiAccessConfig | None = None,
    *,
    settings: Settings | None = None,
    rate_limiter: RateLimiter | None = None,
    graph_store: GraphStore | None = None,
    keys: ApiKeyStore | None = None,
    audit_log: AuditTrail | None = None,
) -> FastAPI:
    """The app; ``access`` (the deprecated access file's rules and keys) replaces ``security.accessControl``.

    A configured model provider whose credentials cannot be resolved refuses the start
    (:class:`~agentparty.runtime.provider_auth.ProviderCredentialsError`, naming the provider and variable)."""
    settings = settings or get_settings()
    sdk = settings.load_sdk_configuration()
    check_provider_credentials(sdk)
    configure_tracing(settings, "agentparty-api", sdk)  # webhook spans, and their context into the runs they start
    access = access or ApiAccessConfig.of(sdk.security.access_control)
    app = FastAPI(
        title="Agent Party",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=prefect_lifespan,
    )
    state = settings.state_backend()  # engine state: SQLite files of the home, or PostgreSQL every replica shares
    app.state.access = AccessPolicy(
        access, keys=keys or ApiKeyStore.at(settings.home, state), rotation=sdk.authentication.api_key_rotation
    )
    app.state.rate_limiter = rate_limiter or RateLimiter(
        access.access_control.rate_limiting,
        # replicas on PostgreSQL share their buckets; on SQLite (one machine) each process keeps its own in memory
        shared=SharedBuckets(state) if state.dialect == "postgresql" else None,
    )
    app.state.settings = settings
    registry = settings.model_registry()
    stored = DeployedWorkflows(lambda: app.state.prefect, registry)  # the copies kept with the deployments
    app.state.workflows = WorkflowIndex(lambda: search_dirs(settings), registry, stored)
    app.state.deployments = DeploymentDirectory()
    app.state.webhook_deliveries = WebhookDeliveries.at(settings.home, backend=state)
    app.state.graph_store = graph_store
    app.state.prefect = app.state.dispatcher = None
    app.state.alert_relay_channels = relay_channels(sdk.monitoring)
    for module in (
        webhooks,
        resources,
        runs,
        conversations,
        approvals,
        live,
        live_transports,
        audit,
        users,
        alert_relay,
    ):
        app.include_router(module.router)
    install_audit(app, audit_log or settings.audit_log(sdk))
    install_masking(app, masker_for(sdk.security))
    install_metrics(app, settings, sdk.monitoring)  # request latency, GET /metrics, the keyless listener
    mount_docs(app)
    install_error_handlers(app)
    return app
