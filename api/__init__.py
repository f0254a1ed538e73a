"""The HTTP service (``agentparty api``): webhooks, seed 000's REST models, approvals, live updates.

``create_app`` is the entry point; each concern lives in its own router module.
"""

from __future__ import annotations

from agentparty.api.app import create_app

__all__ = ["create_app"]
