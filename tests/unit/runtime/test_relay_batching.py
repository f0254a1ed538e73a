"""``communication.batching`` as the outbox relay applies it (the relay against a real broker:
``tests/integration/events/test_relay_batching.py``)."""

from __future__ import annotations

from agentparty.models.config import KafkaConfig
from agentparty.models.sdk_config import BatchingConfig
from agentparty.runtime.relay import LINGER_MS, RelayBatching, producer_config

KAFKA = KafkaConfig(bootstrap_servers=["127.0.0.1:1"], group_id="tests")


def test_each_batching_setting_maps_to_what_the_relay_and_its_producer_use() -> None:
    batching = RelayBatching.of(BatchingConfig(max_batch_size=250, max_wait_time=20, flush_interval=300))
    assert batching == RelayBatching(rows=250, wait_s=0.02, flush_interval_s=0.3, linger_ms=LINGER_MS)
    settings = producer_config(KAFKA, 5000, batching)
    assert settings["batch.num.messages"] == 250 and settings["linger.ms"] == LINGER_MS
    assert settings["message.timeout.ms"] == 5000 and settings["acks"] == "all"


def test_batching_off_sends_every_event_on_its_own_at_once() -> None:
    batching = RelayBatching.of(BatchingConfig(enabled=False, max_batch_size=500, max_wait_time=40))
    assert (batching.rows, batching.wait_s, batching.linger_ms) == (1, 0.0, 0)
    settings = producer_config(KAFKA, batching=batching)
    assert (settings["batch.num.messages"], settings["linger.ms"]) == (1, 0)


def test_without_a_configuration_the_built_in_one_applies() -> None:
    defaults = BatchingConfig()
    assert RelayBatching.of(defaults) == RelayBatching.of(BatchingConfig.model_validate({}))
    assert producer_config(KAFKA)["batch.num.messages"] == defaults.max_batch_size
