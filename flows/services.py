"""What a workflow run talks to outside itself, built once from ``Settings`` and passed in.

A compiled workflow gets one :class:`RunServices` (``CompileOptions.services``):
where state lives, who runs it and their budget, the circuit-breaker store, the
graph runs are recorded in, the event bus, and who answers agent steps. The
CLI, the API, deployed flows, benchmarks and tests all build it through
:func:`run_services`, handing in what they want instead of the configured
default (a test's agent runner, no graph, a bus on a private outbox).

The graph, the bus and the agent runner are resolved on first use: whether a
local graph server or broker runs is asked only when a run starts, and the
provider SDKs load only when an agent step runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agentparty.models.graph import User, stable_id
from agentparty.runtime.agent_memory import AgentMemoryStore
from agentparty.runtime.breakers import BreakerStore, SharedBreakerStore
from agentparty.runtime.budgets import Budget
from agentparty.runtime.conversations import ConversationStore
from agentparty.runtime.event_bus import EventBus, configured_bus
from agentparty.runtime.live_stream import configured_stream
from agentparty.runtime.masking import Masker, mask_logs, masker_for
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.run_recorder import GraphRecorder, configured_recorder
from agentparty.runtime.settings import Settings
from agentparty.runtime.telemetry_metrics import configure as configure_metrics
from agentparty.tasks.agent import ModelAgentRunner
from agentparty.tasks.agent_loop import LoopObserver, ObserverGroup
from agentparty.tasks.delegation import enable_delegation
from agentparty.tasks.live_updates import LiveUpdates
from agentparty.tasks.memory_tools import enable_memory
from agentparty.tasks.templates import TemplateRegistry

if TYPE_CHECKING:
    from agentparty.tasks.agent import AgentRunner


class _Unset:
    """Marks a service to be resolved from the settings (None means "none at all")."""


UNSET = _Unset()


@dataclass
class RunServices:
    settings: Settings
    user_id: str
    """Who runs the workflows (user budget, the graph's REQUESTED_BY)."""
    _breakers: BreakerStore | None = None
    _recorder: GraphRecorder | _Unset | None = UNSET
    _events: EventBus | _Unset | None = UNSET
    _agent_runner: AgentRunner | None = None
    _observers: tuple[LoopObserver, ...] = ()
    """Told what agents' loops do as it happens, beside the live stream (``agentparty run -v`` prints it)."""
    _masker: Masker | _Unset | None = UNSET
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def home(self) -> Path:
        return self.settings.home

    def user_node(self) -> User:
        """The graph's User of this process's runs, with what the settings know of them: ``user_id``,
        ``user_email``, ``user_roles`` and ``user_token_budget`` (0: no limit). Preferences and approved
        capabilities are not known to the engine and stay empty."""
        s = self.settings
        return User(
            id=stable_id("user", self.user_id),
            username=self.user_id,
            email=s.user_email,
            roles=list(s.user_roles),
            token_budget=s.user_token_budget or 0,
        )

    def user_budget(self) -> Budget | None:
        """The user's token budget across runs, when one is set."""
        limit = self.settings.user_token_budget
        return Budget("user", self.user_id, limit) if limit else None

    def breaker_store(self) -> BreakerStore:
        """Where circuit breakers keep their state, shared by every process of the home (made on first use)."""
        with self._lock:
            if self._breakers is None:
                self._breakers = SharedBreakerStore(self.settings.state_backend())
            return self._breakers

    def masker(self) -> Masker | None:
        """What masks run data where it leaves a run (``security.dataMasking``), None when off; made on first use,
        when it also starts masking this process's log records."""
        with self._lock:
            if isinstance(self._masker, _Unset):
                self._masker = masker_for(self.settings.load_sdk_configuration().security)
                mask_logs(self._masker)
            return self._masker

    def recorder(self) -> GraphRecorder | None:
        """The graph runs are written to, if any (``AGENTPARTY_GRAPH``), resolved on first use."""
        masker = self.masker()
        with self._lock:
            if isinstance(self._recorder, _Unset):
                self._recorder = configured_recorder(self.settings)
            if self._recorder is not None:
                self._recorder.masker = masker
            return self._recorder

    def event_bus(self) -> EventBus | None:
        """Where runs emit events, if anywhere (``AGENTPARTY_EVENTS``), resolved on first use."""
        masker = self.masker()
        with self._lock:
            if isinstance(self._events, _Unset):
                self._events = configured_bus(self.settings)
            if self._events is not None:
                self._events.masker = masker
            return self._events

    def agent_runner(self) -> AgentRunner:
        """Who answers agent steps: agents from the template registry on the model registry (made on first use)."""
        masker = self.masker()
        with self._lock:
            if self._agent_runner is None:
                config = self.settings.load_sdk_configuration() if self.settings.sdk_config else None
                policy = self.settings.tool_policy()
                self._agent_runner = ModelAgentRunner(
                    router=ModelRouter.from_settings(self.home, config),
                    templates=TemplateRegistry.at(
                        self.home,
                        policy,
                        config.models if config else None,
                        self.settings.agent_runtime.prompt_templates,
                        backend=self.settings.state_backend(),
                    ),
                    runtime=self.settings.agent_runtime,
                    conversations=ConversationStore.at(self.home, backend=self.settings.state_backend()),
                    policy=policy,
                    observer=self._observer(masker),
                )
                self._agent_runner = enable_memory(
                    self._agent_runner, AgentMemoryStore.at(self.home, backend=self.settings.state_backend())
                )
                self._agent_runner = enable_delegation(self._agent_runner)  # ask_agent runs through the runner
            return self._agent_runner

    def _observer(self, masker: Masker | None = None) -> LoopObserver:
        """The observers handed in, and the live stream when the run streams (it emits events to a broker)."""
        stream = None if self._events is None else configured_stream(self.settings)
        live = (LiveUpdates(stream.send, masker),) if stream is not None else ()
        return ObserverGroup((*self._observers, *live))


def run_services(
    settings: Settings,
    *,
    user_id: str | None = None,
    agent_runner: AgentRunner | None = None,
    recorder: GraphRecorder | _Unset | None = UNSET,
    events: EventBus | _Unset | None = UNSET,
    breakers: BreakerStore | None = None,
    observers: tuple[LoopObserver, ...] = (),
) -> RunServices:
    """The services of runs under ``settings``; each keyword replaces one (``recorder=None``: record nothing,
    ``events=None``: emit nothing). Metrics are turned on or off here for the process (``monitoring.metrics``)."""
    monitoring = settings.load_sdk_configuration().monitoring
    configure_metrics(monitoring.metrics, monitoring.performance_thresholds.max_response_time)
    return RunServices(
        settings=settings,
        user_id=user_id or settings.user_id,
        _breakers=breakers,
        _recorder=recorder,
        _events=events,
        _agent_runner=agent_runner,
        _observers=observers,
    )
