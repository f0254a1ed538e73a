"""``communication`` settings that cannot take effect are refused at load, each with a message naming it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentparty.models import SDKConfiguration
from agentparty.models.sdk_config import CommunicationConfig


def load(communication: dict[str, object]) -> SDKConfiguration:
    return SDKConfiguration.model_validate({"communication": communication})


def test_the_seed_defaults_and_every_supported_setting_load() -> None:
    config = load(
        {
            "realtime": {"protocol": "sse", "maxLatency": 150, "bufferSize": 64, "heartbeatInterval": 5000},
            "batching": {"enabled": False, "maxBatchSize": 10, "maxWaitTime": 0, "flushInterval": 250},
            "connectionPool": {"maxConnections": 8, "idleTimeout": 1500, "maxReuseCount": 1000},
            "protocols": [],
        }
    )
    assert config.communication.realtime.protocol == "sse"
    assert config.communication.connection_pool.max_connections == 8
    for protocol in ("websocket", "sse", "long_polling"):
        assert load({"realtime": {"protocol": protocol}}).communication.realtime.protocol == protocol
    assert CommunicationConfig().connection_pool.max_reuse_count == 1000


@pytest.mark.parametrize("count", [1, 999, 5000])
def test_max_reuse_count_other_than_its_default_is_refused_by_name(count: int) -> None:
    with pytest.raises(ValidationError) as caught:
        load({"connectionPool": {"maxReuseCount": count}})
    text = str(caught.value)
    assert "communication.connectionPool.maxReuseCount is not supported" in text
    assert "httpx" in text and "leave maxReuseCount at 1000" in text


def test_every_protocols_entry_is_refused_naming_the_entry() -> None:
    with pytest.raises(ValidationError) as caught:
        load({"protocols": [{"name": "grpc", "version": "1.0", "encryption": True}]})
    text = str(caught.value)
    assert "communication.protocols[0] (grpc 1.0) is not supported" in text and "remove the entry" in text


def test_an_unknown_realtime_protocol_is_refused_by_name() -> None:
    with pytest.raises(ValidationError) as caught:
        load({"realtime": {"protocol": "mqtt"}})
    assert "protocol" in str(caught.value) and "long_polling" in str(caught.value)
