"""Webhook signatures: HMAC-SHA256 over ``"{timestamp}.{raw body}"`` with the workflow's secret.

The timestamp is inside the signed text so that a captured request cannot be
replayed later with a fresh timestamp; the receiver also refuses timestamps
outside the trigger's ``toleranceSeconds`` and remembers idempotency keys.
Senders use :func:`signature_headers`; the receiver :func:`verify_signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-AgentParty-Signature"
TIMESTAMP_HEADER = "X-AgentParty-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "sha256="


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The header value: ``sha256=`` and the hex HMAC-SHA256 of ``"{timestamp}.{body}"``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def signature_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers a sender adds to a webhook post (timestamp: now unless given)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: signature(secret, stamp, body),
        "Content-Type": "application/json",
    }


def verify_signature(secret: str, timestamp: str, body: bytes, presented: str) -> bool:
    """Constant-time comparison of the presented header value with the expected one."""
    return hmac.compare_digest(signature(secret, timestamp, body).encode(), presented.strip().lower().encode())
