"""The FastAPI application: one router per concern, shared services on ``app.state``.

``app.state`` holds ``access`` (the key/role policy), ``rate_limiter``, ``audit``
and ``audit_writer`` (the audit log and the thread that appends requests to it),
``settings``, ``workflows`` (the definition index), ``deployments`` (deployment
ids by name), ``webhook_deliveries`` (the accepted webhooks) and, while the app
runs, ``prefect`` (the one Prefect client, opened by the lifespan) and
``dispatcher`` (which creates the deliveries' runs through it). Tests may hand
in ``graph_store``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from agentparty.api import approvals, audit, conversations, live, resources, runs, users, webhooks
from agentparty.api.audit import install_audit
from agentparty.api.deployment_directory import DeploymentDirectory
from agentparty.api.docs import mount_docs
from agentparty.api.errors import install_error_handlers
from agentparty.api.masking import install_masking
from agentparty.api.rate_limit import RateLimiter
from agentparty.api.security import API_KEY_HEADER, AccessPolicy
from agentparty.api.services import prefect_lifespan
from agentparty.api.workflow_index import WorkflowIndex
from agentparty.flows.deployed import search_dirs
from agentparty.models.access import ApiAccessConfig
from agentparty.runtime.api_keys import ApiKeyStore
from agentparty.runtime.audit import AuditLog
from agentparty.runtime.masking import masker_for
from agentparty.runtime.settings import Settings, get_settings
from agentparty.runtime.webhook_deliveries import WebhookDeliveries

if TYPE_CHECKING:
    from agentparty.runtime.graph_store import GraphStore

DESCRIPTION = f"""Agent Party's HTTP service: signed webhooks that start workflow runs, agent templates,
agents, teams, workflows and their runs.

Every route but the webhooks needs an API key in `{API_KEY_HEADER}` (or `Authorization: Bearer KEY`);
what a key may do is its role's permissions. Webhooks are authenticated by their HMAC signature.
"""


def create_app(
    access: ApiAccessConfig | None = None,
    *,
    settings: Settings | None = None,
    rate_limiter: RateLimiter | None = None,
    graph_store: GraphStore | None = None,
    keys: ApiKeyStore | None = None,
    audit_log: AuditLog | None = None,
) -> FastAPI:
    """The app; ``access`` (the deprecated access file's rules and keys) replaces ``security.accessControl``."""
    settings = settings or get_settings()
    sdk = settings.load_sdk_configuration()
    access = access or ApiAccessConfig.of(sdk.security.access_control)
    app = FastAPI(
        title="Agent Party",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=prefect_lifespan,
    )
    app.state.access = AccessPolicy(
        access, keys=keys or ApiKeyStore.at(settings.home), rotation=sdk.authentication.api_key_rotation
    )
    app.state.rate_limiter = rate_limiter or RateLimiter(access.access_control.rate_limiting)
    app.state.settings = settings
    app.state.workflows = WorkflowIndex(lambda: search_dirs(settings), settings.model_registry())
    app.state.deployments = DeploymentDirectory()
    app.state.webhook_deliveries = WebhookDeliveries.at(settings.home)
    app.state.graph_store = graph_store
    app.state.prefect = app.state.dispatcher = None
    for module in (webhooks, resources, runs, conversations, approvals, live, audit, users):
        app.include_router(module.router)
    install_audit(app, audit_log or settings.audit_log(sdk))
    install_masking(app, masker_for(sdk.security))
    mount_docs(app)
    install_error_handlers(app)
    return app
