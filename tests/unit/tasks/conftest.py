"""The scripted model server the agent tests share: one per test module, reset around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import agent_tools
from support.llm_wire import WireServer


@pytest.fixture(scope="module")
def wire() -> Iterator[WireServer]:
    with WireServer() as server:
        yield server


@pytest.fixture
def server(wire: WireServer) -> Iterator[WireServer]:
    """The module's server with no scripts and no recorded requests, and no tool calls recorded."""
    wire.reset()
    agent_tools.CALLS.clear()
    yield wire
    wire.reset()
