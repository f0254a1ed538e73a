"""How late each live message reaches its client, against ``communication.realtime.maxLatency``.

Every transport (``/ws``, ``/live/sse``, ``/live/poll``) calls :func:`delivered` as
it sends a message: the time from its event's creation to the send goes into
``agentparty_live_delivery_latency_seconds{protocol}``; one later than
``maxLatency`` also counts in ``agentparty_live_deliveries_late_total{protocol}``,
and a warning is logged at most once a minute per protocol. The snapshot a new
client is told first belongs to no one event and is not timed.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from agentparty.models.sdk_config import RealtimeConfig
from agentparty.runtime.telemetry_metrics import record_live_delivery, record_live_late

logger = logging.getLogger("agentparty.api.live")

Protocol = Literal["websocket", "sse", "long_polling"]
LATE_WARNING_S = 60.0
"""At most one warning about late deliveries per protocol this often."""

_warned: dict[str, float] = {}


class Stamped(str):
    """A message's text, what every transport sends, stamped with when its event was made (epoch seconds).

    A string still (queues, ``send_text`` and tests see the text), so the feed stamps each message once as it
    publishes it and every transport reads the stamp where it sends."""

    occurred: float

    def __new__(cls, text: str, occurred: float) -> Stamped:
        stamped = super().__new__(cls, text)
        stamped.occurred = occurred
        return stamped


def delivered(protocol: Protocol, text: str, realtime: RealtimeConfig) -> float | None:
    """Time one message just sent; the seconds since its event (None for the snapshot, which is not stamped)."""
    if not isinstance(text, Stamped):
        return None
    seconds = max(0.0, time.time() - text.occurred)
    record_live_delivery(protocol, seconds)
    if seconds * 1000 > realtime.max_latency:
        record_live_late(protocol)
        now = time.monotonic()
        if now - _warned.get(protocol, -LATE_WARNING_S) >= LATE_WARNING_S:
            _warned[protocol] = now
            logger.warning(
                "live %s: a message reached its client %.0f ms after its event (maxLatency %d ms)",
                protocol,
                seconds * 1000,
                realtime.max_latency,
            )
    return seconds
