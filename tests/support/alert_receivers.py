"""Real local receivers for alert notifications: an HTTP endpoint that records posts, and an SMTP server.

:class:`RecordingReceiver` stands in for a team's signed-webhook endpoint and
for an SMS gateway (it is a real HTTP server on 127.0.0.1 that records each
post and answers a chosen status). :class:`SmtpSink` is ``aiosmtpd``'s real SMTP
server keeping every message it is handed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentparty.runtime.local_service import free_port


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 200
    """What the receiver answered."""


class RecordingReceiver:
    """An HTTP server recording every POST; answers ``status`` (200 unless changed), or what ``answer`` says.

    ``answer``, when set, chooses the status per post (a gateway failing for one
    phone number, say); each recorded :class:`Post` keeps the status it got.
    """

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.status = 200
        self.answer: Callable[[bytes], int] | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code = receiver.status if receiver.answer is None else receiver.answer(body)
                receiver.posts.append(Post(self.path, {k.lower(): v for k, v in self.headers.items()}, body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> RecordingReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class SmtpSink:
    """``aiosmtpd``'s SMTP server on a free local port, keeping each message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(message_from_bytes(envelope.content))
                return "250 Message accepted for delivery"

        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def smarthost(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def wait_for(found: Callable[[], Any], timeout: float, what: str, poll: float = 0.5) -> Any:
    """``found()``'s first truthy value within ``timeout`` seconds, else an assertion error naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"no {what} within {timeout:.0f} s")
