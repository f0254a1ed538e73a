"""API keys as ``SecretStr`` end to end, and redaction of any key that a provider echoes back.

Keys are unwrapped only where an SDK client is built. Every key the process
uses is registered here, and every failure of a provider call is redacted of
them where the call is made (the model router applies :func:`redact_exception`
to the error and the chain it was raised from), so a provider that quotes the
key in an error body cannot carry it into logs, Prefect states, events, results
or artifacts.
"""

from __future__ import annotations

import threading

from pydantic import SecretStr

REDACTED = "***redacted***"
_MIN_SECRET_LENGTH = 8
"""Shorter strings would redact ordinary words; no real API key is that short."""
_secrets: set[str] = set()
_lock = threading.Lock()


def as_secret(value: SecretStr | str | None) -> SecretStr | None:
    """Wrap (and register) a key; None and empty stay None."""
    if value is None:
        return None
    secret = value if isinstance(value, SecretStr) else SecretStr(value)
    if not secret.get_secret_value():
        return None
    register(secret)
    return secret


def register(secret: SecretStr | str) -> None:
    text = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if len(text) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(text)


def reveal(secret: SecretStr | None) -> str | None:
    """The key itself: only for handing to an SDK client."""
    return secret.get_secret_value() if secret is not None else None


def redact(text: str) -> str:
    if not _secrets:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_exception(exc: BaseException) -> BaseException:
    """Redact the string arguments of ``exc`` and of every exception it was raised from, in place."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(isinstance(a, str) for a in current.args):
            current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
        current = current.__cause__ or current.__context__
    return exc
