"""The FastAPI application: one router per concern, the access policy and rate limiter on ``app.state``."""

from __future__ import annotations

from fastapi import FastAPI

from agentparty.api.security import AccessPolicy
from agentparty.models.access import ApiAccessConfig


def create_app(access: ApiAccessConfig | None = None) -> FastAPI:
    from agentparty.api import approvals, live, resources, webhooks

    app = FastAPI(title="Agent Party", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.access = AccessPolicy(access or ApiAccessConfig())
    for module in (webhooks, resources, approvals, live):
        app.include_router(module.router)
    return app
