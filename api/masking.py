"""Data masking of API responses that carry run data (``security.dataMasking``).

Runs record what they were given and what they answered: agents' conversations,
their states and teams (from the graph), pending approvals (a tool call's
arguments), webhook deliveries (a run's inputs), runs. Responses of those routes
are masked by :class:`MaskingMiddleware` (``runtime/masking.py``) before they
leave the process, whatever wrote the data and whether or not that process
masked it. Routes that serve what a user configures (templates, workflows) are
left as they are: masking them would corrupt a definition read back to edit.
The live feed (``/ws``) masks its events and stream items itself (``api/live.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentparty.runtime.masking import Masker

RUN_DATA_PATHS = ("/agents", "/teams", "/runs", "/approvals", "/webhooks/")
"""Path prefixes whose responses carry run data (``/webhooks/{id}`` itself only answers an acceptance). Not
``/users/{id}/export``: a user's export of their own data must hold it."""


class MaskingMiddleware:
    """Masks the JSON bodies of responses under :data:`RUN_DATA_PATHS` (buffered: they are small pages)."""

    def __init__(self, app: ASGIApp, masker: Masker) -> None:
        self.app, self.masker = app, masker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(RUN_DATA_PATHS):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def masking_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if _is_json(message):
                    start = message
                    return
                await send(message)
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = self.masker.json_text(b"".join(chunks).decode()).encode()
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, masking_send)


def _is_json(start: Message) -> bool:
    headers: Any = start.get("headers", [])
    return any(k.lower() == b"content-type" and b"json" in v.lower() for k, v in headers)


def install_masking(app: FastAPI, masker: Masker | None) -> None:
    """Mask run data in responses when ``masker`` is set (``security.dataMasking`` on); ``app.state.masker``."""
    app.state.masker = masker
    if masker is not None:
        app.add_middleware(MaskingMiddleware, masker=masker)
