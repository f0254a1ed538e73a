"""State machines as data: agent runtime (seed 002), agent lifecycle (seed 000), team, task.

The two seeds each define an "agent state", and they are different things:

* seed 002's ``AgentState`` is the *runtime* state of one agent instance
  (Created / Idle / Processing / Error / Paused, driven by messages). Here it
  is :class:`AgentRuntimeStatus`, and the whole runtime record is
  :class:`agentparty.models.agent.AgentRuntimeState`.
* seed 000's ``AgentState`` node is a recorded *lifecycle* state in the graph
  (initialized / running / paused / completed / failed / terminated, governed
  by template rules such as ``running_to_paused``). Here the states are
  :class:`AgentLifecycleState` and the graph node is
  :class:`agentparty.models.graph.AgentStateRecord` (label ``AgentState``).

How they line up (``RUNTIME_TO_LIFECYCLE``): Created ≈ initialized,
Idle and Processing ≈ running, Paused ≈ paused, Error ≈ failed (recoverable:
``retry()`` leads back to Processing), shutdown ≈ terminated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar


class AgentRuntimeStatus(StrEnum):
    """Seed 002 state diagram. ``TERMINATED`` is the diagram's final ``[*]``."""

    CREATED = "created"
    IDLE = "idle"
    PROCESSING = "processing"
    ERROR = "error"
    PAUSED = "paused"
    TERMINATED = "terminated"


class AgentLifecycleState(StrEnum):
    """Seed 000 agent lifecycle, as its governance example (``initialized_to_running``…) implies."""

    INITIALIZED = "initialized"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    TERMINATED = "terminated"


class TeamStatus(StrEnum):
    FORMING = "forming"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


class TaskStatus(StrEnum):
    SUBMITTED = "submitted"
    ANALYZED = "analyzed"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = TypeVar("S", bound=StrEnum)

SETBACK_TRIGGERS = frozenset({"fail", "cancel", "terminate"})
"""Triggers a :meth:`StateMachine.route` takes only as its last step."""


class IllegalTransition(ValueError):
    """A state change the machine does not allow; the message says what is allowed instead."""

    def __init__(self, machine: str, source: str, target: str, allowed: Iterable[str]) -> None:
        self.machine = machine
        self.source = source
        self.target = target
        self.allowed = tuple(allowed)
        allowed_text = ", ".join(self.allowed) if self.allowed else "nothing (terminal state)"
        super().__init__(f"{machine}: cannot go from '{source}' to '{target}'; allowed from '{source}': {allowed_text}")


class UnknownTrigger(ValueError):
    """A trigger (seed 002 method name such as ``pause()``) that does not apply in the current state."""

    def __init__(self, machine: str, state: str, trigger: str, allowed: Iterable[str]) -> None:
        self.machine, self.state, self.trigger = machine, state, trigger
        allowed_text = ", ".join(f"{t}()" for t in allowed) or "none (terminal state)"
        super().__init__(f"{machine}: '{trigger}()' does not apply in state '{state}'; triggers there: {allowed_text}")


@dataclass(frozen=True)
class Transition(Generic[S]):
    source: S
    target: S
    trigger: str

    @property
    def key(self) -> str:
        """Governance rule key, as in seed 000's example: ``running_to_paused``."""
        return f"{self.source.value}_to_{self.target.value}"


@dataclass(frozen=True)
class StateMachine(Generic[S]):
    """A finite state machine described entirely by data; `check` is the single gate."""

    name: str
    states: type[S]
    initial: S
    terminal: frozenset[S]
    transitions: tuple[Transition[S], ...]
    _index: Mapping[tuple[S, S], Transition[S]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {(t.source, t.target): t for t in self.transitions}
        object.__setattr__(self, "_index", index)
        for t in self.transitions:
            if t.source in self.terminal:
                raise ValueError(f"{self.name}: terminal state {t.source} has an outgoing transition")

    def state(self, value: S | str) -> S:
        """Coerce a name to a state, with an error that lists the valid ones."""
        try:
            return self.states(value)
        except ValueError:
            valid = ", ".join(s.value for s in self.states)
            raise ValueError(f"{self.name}: unknown state {value!r}; states are: {valid}") from None

    def allowed_from(self, source: S | str) -> tuple[S, ...]:
        state = self.state(source)
        return tuple(t.target for t in self.transitions if t.source == state)

    def can(self, source: S | str, target: S | str) -> bool:
        return (self.state(source), self.state(target)) in self._index

    def check(self, source: S | str, target: S | str) -> Transition[S]:
        """Return the transition, or raise :class:`IllegalTransition` naming what is allowed."""
        src, dst = self.state(source), self.state(target)
        transition = self._index.get((src, dst))
        if transition is None:
            raise IllegalTransition(self.name, src.value, dst.value, (s.value for s in self.allowed_from(src)))
        return transition

    def fire(self, source: S | str, trigger: str) -> S:
        """Apply a named trigger (``pause``, ``resume``…) and return the new state."""
        src = self.state(source)
        for t in self.transitions:
            if t.source == src and t.trigger == trigger:
                return t.target
        raise UnknownTrigger(self.name, src.value, trigger, [t.trigger for t in self.transitions if t.source == src])

    def transition_for_key(self, key: str) -> Transition[S] | None:
        """Find the transition a governance key such as ``running_to_paused`` names."""
        for t in self.transitions:
            if t.key == key:
                return t
        return None

    def keys(self) -> tuple[str, ...]:
        return tuple(t.key for t in self.transitions)

    def route(self, source: S | str, target: S | str, *, resume: bool = False) -> tuple[Transition[S], ...]:
        """The shortest chain of legal transitions from ``source`` to ``target``; empty when already there.

        This is how a run moves a Task or Team record to where it stands now whatever state an earlier attempt
        left it in: a new task goes submitted → analyzed → assigned → in_progress, a resumed failed one goes
        failed → in_progress, one already there does not move (re-applying a move is idempotent). A chain passes
        through a setback (a ``fail``, ``cancel`` or ``terminate`` trigger) only when that is where it ends, so
        submitted → in_progress never takes the shorter submitted → failed → in_progress; and it takes a
        ``resume`` transition only when asked (the start of a resumed run does, an ending never does: a failed
        task is not completed by a late ending). No chain (a completed task asked back to in_progress) raises
        :class:`IllegalTransition` naming what is allowed.
        """
        src, dst = self.state(source), self.state(target)
        if src == dst:
            return ()
        paths: dict[S, tuple[Transition[S], ...]] = {src: ()}
        frontier = [src]
        while frontier:
            following: list[S] = []
            for state in frontier:
                for t in self.transitions:
                    setback = t.trigger in SETBACK_TRIGGERS and t.target != dst
                    barred = setback or (t.trigger == "resume" and not resume)
                    if t.source == state and t.target not in paths and not barred:
                        paths[t.target] = (*paths[state], t)
                        following.append(t.target)
            if dst in paths:
                return tuple(self.check(t.source, t.target) for t in paths[dst])
            frontier = following
        raise IllegalTransition(self.name, src.value, dst.value, (s.value for s in self.allowed_from(src)))


def _machine(
    name: str, states: type[S], initial: S, terminal: Iterable[S], rows: Iterable[tuple[S, S, str]]
) -> StateMachine[S]:
    return StateMachine(
        name=name,
        states=states,
        initial=initial,
        terminal=frozenset(terminal),
        transitions=tuple(Transition(a, b, trig) for a, b, trig in rows),
    )


_R = AgentRuntimeStatus
AGENT_RUNTIME_MACHINE: StateMachine[AgentRuntimeStatus] = _machine(
    "agent runtime",
    AgentRuntimeStatus,
    initial=_R.CREATED,  # [*] --> Created: initialize()
    terminal=[_R.TERMINATED],
    rows=[
        (_R.CREATED, _R.IDLE, "start"),
        (_R.IDLE, _R.PROCESSING, "receiveMessage"),
        (_R.PROCESSING, _R.IDLE, "completeTask"),
        (_R.PROCESSING, _R.ERROR, "exception"),
        (_R.ERROR, _R.PROCESSING, "retry"),
        (_R.ERROR, _R.IDLE, "abort"),
        (_R.PROCESSING, _R.PAUSED, "pause"),
        (_R.PAUSED, _R.PROCESSING, "resume"),
        (_R.IDLE, _R.TERMINATED, "shutdown"),
    ],
)
"""Exactly the transitions of seed 002's state diagram."""

_L = AgentLifecycleState
AGENT_LIFECYCLE_MACHINE: StateMachine[AgentLifecycleState] = _machine(
    "agent lifecycle",
    AgentLifecycleState,
    initial=_L.INITIALIZED,
    terminal=[_L.TERMINATED],
    rows=[
        (_L.INITIALIZED, _L.RUNNING, "start"),
        (_L.INITIALIZED, _L.TERMINATED, "terminate"),
        (_L.RUNNING, _L.PAUSED, "pause"),
        (_L.RUNNING, _L.COMPLETED, "complete"),
        (_L.RUNNING, _L.FAILED, "fail"),
        (_L.PAUSED, _L.RUNNING, "resume"),
        (_L.PAUSED, _L.FAILED, "fail"),
        (_L.PAUSED, _L.TERMINATED, "terminate"),
        (_L.COMPLETED, _L.RUNNING, "reassign"),  # an agent takes its next task
        (_L.COMPLETED, _L.TERMINATED, "terminate"),
        (_L.FAILED, _L.RUNNING, "recover"),
        (_L.FAILED, _L.TERMINATED, "terminate"),
    ],
)

_T = TeamStatus
TEAM_MACHINE: StateMachine[TeamStatus] = _machine(
    "team status",
    TeamStatus,
    initial=_T.FORMING,
    terminal=[_T.COMPLETED],
    rows=[
        (_T.FORMING, _T.ACTIVE, "activate"),
        (_T.FORMING, _T.FAILED, "fail"),
        (_T.ACTIVE, _T.COMPLETED, "complete"),
        (_T.ACTIVE, _T.FAILED, "fail"),
        (_T.FAILED, _T.ACTIVE, "resume"),  # resuming a failed run puts its team back to work, like its task
    ],
)

_K = TaskStatus
TASK_MACHINE: StateMachine[TaskStatus] = _machine(
    "task status",
    TaskStatus,
    initial=_K.SUBMITTED,
    terminal=[_K.COMPLETED, _K.CANCELLED],
    rows=[
        (_K.SUBMITTED, _K.ANALYZED, "analyze"),
        (_K.SUBMITTED, _K.CANCELLED, "cancel"),
        (_K.SUBMITTED, _K.FAILED, "fail"),
        (_K.ANALYZED, _K.ASSIGNED, "assign"),
        (_K.ANALYZED, _K.CANCELLED, "cancel"),
        (_K.ANALYZED, _K.FAILED, "fail"),
        (_K.ASSIGNED, _K.IN_PROGRESS, "start"),
        (_K.ASSIGNED, _K.CANCELLED, "cancel"),
        (_K.ASSIGNED, _K.FAILED, "fail"),
        (_K.IN_PROGRESS, _K.COMPLETED, "complete"),
        (_K.IN_PROGRESS, _K.FAILED, "fail"),
        (_K.IN_PROGRESS, _K.CANCELLED, "cancel"),
        (_K.FAILED, _K.IN_PROGRESS, "resume"),  # resuming a failed run picks the task up again
    ],
)

RUNTIME_TO_LIFECYCLE: Mapping[AgentRuntimeStatus, AgentLifecycleState] = {
    _R.CREATED: _L.INITIALIZED,
    _R.IDLE: _L.RUNNING,
    _R.PROCESSING: _L.RUNNING,
    _R.ERROR: _L.FAILED,
    _R.PAUSED: _L.PAUSED,
    _R.TERMINATED: _L.TERMINATED,
}
