"""A stand-in for an OAuth2 authorization server's token endpoint (client credentials grant only).

It is not a real identity provider: it issues opaque tokens ``token-1``, ``token-2``...
for one client, checks the client's HTTP Basic credentials and the grant type,
records the scopes asked for, and lets a test revoke the current token (so the
LLM wire server starts answering 401 for it) and choose each token's lifetime.
:attr:`OAuth2StandIn.authorizes` plugs into ``WireServer.authorize`` to accept
only the token currently valid.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class TokenRequest:
    client_id: str
    grant_type: str
    scope: str


class OAuth2StandIn:
    """``POST /token`` on 127.0.0.1 (a free port), in a background thread; ``with OAuth2StandIn(...) as idp``."""

    def __init__(self, client_id: str, client_secret: str, expires_in: int | None = 3600) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.requests: list[TokenRequest] = []
        self.current: str | None = None
        self.outage: int | None = None
        """When set, every token request is answered with this status (``temporarily_unavailable``)."""
        self._issued = 0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        self.app.post("/token")(self._token)

    @property
    def token_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def issued(self) -> int:
        """How many tokens were handed out."""
        with self._lock:
            return self._issued

    def revoke(self) -> None:
        """The current token stops working (as when it expires server-side before the client thinks)."""
        with self._lock:
            self.current = None

    def authorizes(self, headers: dict[str, str]) -> bool:
        """Whether a request's ``authorization`` header carries the token currently valid."""
        with self._lock:
            return self.current is not None and headers.get("authorization") == f"Bearer {self.current}"

    async def _token(self, request: Request) -> JSONResponse:
        form = await request.form()
        client_id, secret = _basic(request.headers.get("authorization", ""))
        with self._lock:
            self.requests.append(TokenRequest(client_id, str(form.get("grant_type", "")), str(form.get("scope", ""))))
            if self.outage is not None:
                return JSONResponse({"error": "temporarily_unavailable"}, self.outage)
            if (client_id, secret) != (self.client_id, self.client_secret):
                return JSONResponse({"error": "invalid_client", "error_description": "unknown client"}, 401)
            if form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "unsupported_grant_type"}, 400)
            self._issued += 1
            self.current = f"token-{self._issued}"
            body: dict[str, object] = {"access_token": self.current, "token_type": "Bearer"}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return JSONResponse(body)

    def start(self) -> OAuth2StandIn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("OAuth2 stand-in did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> OAuth2StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _basic(header: str) -> tuple[str, str]:
    """Client id and secret from HTTP Basic (each form-urlencoded first, RFC 6749 §2.3.1)."""
    if not header.lower().startswith("basic "):
        return "", ""
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return "", ""
    return unquote(user), unquote(password)
