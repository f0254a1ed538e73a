"""The live stream's producer never waits for a broker, and a run streams only where its events go to Kafka.

No broker here (an address nobody listens on): a full local queue drops and counts,
and ``send`` returns at once either way. The stream reaching a real broker and the
API is ``tests/integration/api/test_live_stream.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentparty.flows.services import run_services
from agentparty.models.config import KafkaConfig
from agentparty.models.live_stream import LiveStreamItem
from agentparty.runtime import live_stream
from agentparty.runtime.live_stream import LiveStream, close_streams, configured_stream
from agentparty.runtime.relay import stream_topic, topic_names
from agentparty.runtime.settings import Settings
from agentparty.tasks.live_updates import LiveUpdates

NOBODY = KafkaConfig(bootstrap_servers=["127.0.0.1:9"], group_id="unused")


@pytest.fixture(autouse=True)
def no_topic_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating topics asks the (absent) broker for 10 s in a thread of its own: not what these tests are about."""
    monkeypatch.setattr(live_stream, "ensure_topics", lambda *_args: [])


def delta(n: int) -> LiveStreamItem:
    return LiveStreamItem(
        event="text",
        activity="thinking",
        agent_id=f"agent-{n % 3}",
        agent_name="a",
        run_key="r",
        step_id="s",
        turn=1,
        delta=f"w{n} ",
    )


def test_a_full_queue_drops_and_counts_and_sending_never_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_stream, "QUEUE_MESSAGES", 5)
    stream = LiveStream(NOBODY, "unit.")
    try:
        started = time.perf_counter()
        accepted = [stream.send(delta(n)) for n in range(50)]
        elapsed = time.perf_counter() - started
        assert accepted == [True] * 5 + [False] * 45
        assert (stream.sent, stream.dropped, stream.pending()) == (5, 45, 5)
        assert elapsed < 0.5, f"50 sends to an absent broker took {elapsed:.3f} s"
        assert stream.topic == stream_topic("unit.") == "unit.agent-stream"
        assert stream.topic not in topic_names("unit."), "never read as events"
    finally:
        stream.close()
    assert stream.pending() == 0
    del stream  # librdkafka stops reconnecting once the producer is gone


def test_a_run_streams_only_when_its_events_go_to_a_broker(tmp_path: Path) -> None:
    with_kafka = Settings(home=tmp_path, kafka=NOBODY, event_topic_prefix="unit-services.")
    stream = configured_stream(with_kafka)
    assert stream is not None and stream.topic == "unit-services.agent-stream"
    assert configured_stream(with_kafka) is stream, "one producer per process, broker and prefix"
    assert configured_stream(with_kafka.model_copy(update={"events": "off"})) is None
    assert configured_stream(with_kafka.model_copy(update={"live_stream": False})) is None
    assert configured_stream(Settings(home=tmp_path, kafka=None, kafka_port=9)) is None  # nothing runs there

    def live(services_events: object) -> list[LiveUpdates]:
        kwargs = {} if services_events == "default" else {"events": None}
        observer = run_services(with_kafka, **kwargs)._observer()  # type: ignore[arg-type]
        return [o for o in observer.observers if isinstance(o, LiveUpdates)]  # type: ignore[attr-defined]

    assert len(live("default")) == 1 and live("default")[0].send == stream.send
    assert live(None) == [], "a run that emits no events streams nothing"
    close_streams()
    assert configured_stream(with_kafka) is not stream, "closed streams are forgotten"
    close_streams()
