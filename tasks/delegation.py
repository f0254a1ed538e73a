"""Delegation inside a team: ``ask_agent``, a built-in tool that hands a sub-question to another agent of the run.

A step that names ``delegates`` (or sets ``delegateToTeam``) gives its agent the
tool; the agents it may ask are the request's ``colleagues``. A call runs the
asked agent through the same runner, as an engagement of its own: its own slot
(``<asker's slot>→<name>#<turn>.<call>``, derived from the call's idempotency
key, so a resumed or retried run that makes the call again reuses it), its own
lifecycle under its template's governance, its own checkpoints and its own agent
budget, beside the asker's task, team and user budgets (so the team budget
covers both). Its answer is the tool's result.

Each hand-off is two seed 002 agent messages, the question (asker → asked) and
the answer (asked → asker), kept with the asked agent's engagement record
(:class:`~agentparty.models.engagements.Handoff`) on the asker's
:class:`~agentparty.models.engagements.AgentWork`: the results graph writes it
(``ASKED``), the run's events count it (``messages_exchanged``). Like lifecycle
transitions, hand-offs stay pending across a step's attempts until a successful
one carries them.

Bounds: an asked agent may ask in turn, up to ``max_delegation_depth`` levels
below the step's agent, and one engagement may hand off at most
``max_delegations`` times. A call past either is refused without asking anyone,
and the refusal the model reads names the limit. A hand-off replayed from its
checkpoint (a resumed run) is not counted again, because it is not made again.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentparty.models._base import utc_now
from agentparty.models.config import AgentRuntimeConfig
from agentparty.models.engagements import Colleague, Handoff
from agentparty.models.messages import AgentMessage
from agentparty.models.tools import DEFAULT_RESULT_CHARS, ToolResult, ToolSpec
from agentparty.tasks.agent import AgentStepRequest, AgentStepResponse, ModelAgentRunner, StepAgent, agent_work_of
from agentparty.tasks.templates import engagement_key
from agentparty.tasks.toolbox import BoundTool
from agentparty.tasks.tools import ToolContext, rendered

ASK_AGENT = "ask_agent"
DELEGATE_ROLE = "delegate"
"""The team role (MEMBER_OF) of an agent that worked in a run only because another asked it."""
MAX_TRACKED_ENGAGEMENTS = 10_000
_UNSAFE_IN_SLOTS = re.compile(r"[/%&<>\s]")
"""Characters Prefect refuses in task run names (a slot names the asked agent's checkpoints), and spaces."""

AskAgent = Callable[[AgentStepRequest], Awaitable[AgentStepResponse]]


@dataclass
class Delegation:
    """The ``ask_agent`` extension of a runner (an ``AgentExtension`` and a ``HandoffSource``).

    ``ask`` runs the asked agent: the runner's own ``run`` (:func:`enable_delegation` wires it).
    """

    ask: AskAgent
    runtime: AgentRuntimeConfig = field(default_factory=AgentRuntimeConfig)
    _pending: OrderedDict[str, list[Handoff]] = field(default_factory=OrderedDict)
    """Hand-offs per engagement not yet carried by a successful result."""
    _made: OrderedDict[str, int] = field(default_factory=OrderedDict)
    """Hand-offs each engagement has made (its fan-out so far)."""

    def tools(self, request: AgentStepRequest, agent: StepAgent) -> Sequence[BoundTool]:
        choices = colleagues_for(request)
        return (AskAgentTool(self, request, agent, choices),) if choices else ()

    def instructions(self, request: AgentStepRequest, agent: StepAgent) -> str:
        choices = colleagues_for(request)
        if not choices:
            return ""
        names = ", ".join(choices)
        return (
            f"You can hand a sub-question to another agent of your team with the {ASK_AGENT} tool ({names}); "
            "its answer comes back as the tool's result. Ask only what you cannot answer as well yourself."
        )

    def handoffs(self, request: AgentStepRequest, *, drain: bool) -> tuple[Handoff, ...]:
        key = engagement_key(request.run_key, request.agent_slot)
        found = tuple(self._pending.pop(key, []) if drain else self._pending.get(key, []))
        if drain:
            self._made.pop(key, None)
        return found

    def record(self, key: str, handoff: Handoff) -> None:
        """Keep a hand-off of the engagement ``key`` until a successful result carries it."""
        self._pending.setdefault(key, []).append(handoff)
        self._pending.move_to_end(key)
        while len(self._pending) > MAX_TRACKED_ENGAGEMENTS:
            self._pending.popitem(last=False)

    def count(self, key: str) -> int:
        """Count one more hand-off of the engagement; the number made before it."""
        made = self._made.get(key, 0)
        self._made[key] = made + 1
        self._made.move_to_end(key)
        while len(self._made) > MAX_TRACKED_ENGAGEMENTS:
            self._made.popitem(last=False)
        return made


def enable_delegation(runner: ModelAgentRunner) -> ModelAgentRunner:
    """Give ``runner`` the ``ask_agent`` extension, asking through the runner itself (limits from its runtime);
    a runner that has it already is left as it is."""
    if not any(isinstance(extension, Delegation) for extension in runner.extensions):
        runner.extensions = (*runner.extensions, Delegation(runner.run, runner.runtime))
    return runner


def colleagues_for(request: AgentStepRequest) -> dict[str, Colleague]:
    """Name → colleague the request's agent may ask: its colleagues but itself, first of each name kept."""
    found: dict[str, Colleague] = {}
    for colleague in request.colleagues:
        itself = colleague.agent == request.agent and colleague.version in (None, request.version)
        if not itself and colleague.name not in found:
            found[colleague.name] = colleague
    return found


@dataclass(frozen=True)
class AskAgentTool:
    """``ask_agent(agent, question)`` for one engagement attempt of one agent."""

    owner: Delegation
    request: AgentStepRequest
    asker: StepAgent
    choices: dict[str, Colleague]

    @property
    def name(self) -> str:
        return ASK_AGENT

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=ASK_AGENT,
            description=(
                "Hand a sub-question to another agent of your team; it works on it on its own and its answer comes "
                "back as this tool's result."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "agent": {"type": "string", "enum": sorted(self.choices), "description": "Who to ask."},
                    "question": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The sub-question, with whatever context the other agent needs.",
                    },
                },
                "required": ["agent", "question"],
                "additionalProperties": False,
            },
            source="python",
        )

    @property
    def needs_approval(self) -> bool:
        return False

    @property
    def server_name(self) -> str | None:
        return None

    def idempotency_key(self, arguments: dict[str, Any]) -> str | None:
        return None  # the call's place in the conversation: asking the same twice is two hand-offs

    async def call(self, call_id: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        """Ask the chosen colleague (unless a limit says no); its answer, or why there is none, for the model."""
        colleague, question, problem = self._parsed(arguments)
        if problem is not None or colleague is None:
            return ToolResult(call_id=call_id, name=ASK_AGENT, content=problem or "invalid arguments", is_error=True)
        refusal = self._refusal()
        if refusal is not None:
            content = f"the call was not made: {refusal}"
            return ToolResult(call_id=call_id, name=ASK_AGENT, content=content, is_error=True, refused=True)
        slot = delegate_slot(self.request.agent_slot, colleague.name, context)
        asked_at = utc_now()
        try:
            response = await self.owner.ask(self._asked_request(colleague, question, slot))
        except Exception as exc:  # the asker reads why and may carry on without the answer
            work = agent_work_of(exc)
            if work is not None:
                question_message = self._question(question, work.agent.id, slot, asked_at)
                self._keep(Handoff(slot=slot, question=question_message, answer=None, work=work))
            content = f"{colleague.name} could not answer: {type(exc).__name__}: {exc}"[:2000]
            return ToolResult(call_id=call_id, name=ASK_AGENT, content=content, is_error=True)
        assert response.work is not None  # the runner always reports the engagement
        work = dataclasses.replace(response.work, role=DELEGATE_ROLE)
        text = _as_text(response.output)
        answer = AgentMessage(
            content=text,
            agent_id=work.agent.id,
            model=response.model,
            metadata={"to": self.asker.instance.id, "handoff": slot},
        )
        question_message = self._question(question, work.agent.id, slot, asked_at)
        self._keep(Handoff(slot=slot, question=question_message, answer=answer, work=work, cost=response.cost))
        return rendered(call_id, ASK_AGENT, text, DEFAULT_RESULT_CHARS)

    def _parsed(self, arguments: dict[str, Any]) -> tuple[Colleague | None, str, str | None]:
        """(colleague, question, None), or the problem the model reads and may correct."""
        extra = sorted(set(arguments) - {"agent", "question"})
        name, question = arguments.get("agent"), arguments.get("question")
        known = ", ".join(sorted(self.choices))
        if extra:
            return None, "", f"invalid arguments: unexpected {', '.join(extra)} (ask_agent takes agent and question)"
        if not isinstance(name, str) or name not in self.choices:
            return None, "", f"invalid arguments: agent: {name!r} is not one to ask; ask one of: {known}"
        if not isinstance(question, str) or not question.strip():
            return None, "", "invalid arguments: question: say what you want to know"
        return self.choices[name], question.strip(), None

    def _refusal(self) -> str | None:
        """Why no hand-off may be made now (a limit), counting this one when it may."""
        runtime = self.owner.runtime
        depth = self.request.depth + 1
        if depth > runtime.max_delegation_depth:
            return (
                f"max_delegation_depth {runtime.max_delegation_depth} reached: you are {self.request.depth} "
                "hand-off(s) below the step's agent, so you may not ask further; answer yourself"
            )
        key = engagement_key(self.request.run_key, self.request.agent_slot)
        made = self.owner.count(key)
        if made >= runtime.max_delegations:
            return (
                f"max_delegations {runtime.max_delegations} reached: you have already asked {made} time(s); "
                "answer with what you have"
            )
        return None

    def _asked_request(self, colleague: Colleague, question: str, slot: str) -> AgentStepRequest:
        """The asked agent's request: the asker's run, budgets and colleagues; its own slot, agent budget, depth."""
        return dataclasses.replace(
            self.request,
            agent=colleague.agent,
            version=colleague.version,
            model=colleague.model,
            prompt=question,
            capability=None,
            output_schema=None,
            inputs={},
            agent_token_budget=None,
            slot=slot,
            tools=(),
            mcp_servers=(),
            max_turns=None,
            max_tool_calls=None,
            depth=self.request.depth + 1,
        )

    def _question(self, question: str, asked: str, slot: str, at: Any) -> AgentMessage:
        return AgentMessage(
            content=question,
            agent_id=self.asker.instance.id,
            model=self.asker.instance.model.model,
            timestamp=at,
            metadata={"to": asked, "handoff": slot},
        )

    def _keep(self, handoff: Handoff) -> None:
        self.owner.record(engagement_key(self.request.run_key, self.request.agent_slot), handoff)


def delegate_slot(asker_slot: str, name: str, context: ToolContext) -> str:
    """The asked agent's slot: the asker's, the colleague, and the call's place (its turn and a digest of its
    idempotency key, which is the same when a resumed or retried run makes the same call again)."""
    return f"{asker_slot}→{_UNSAFE_IN_SLOTS.sub('-', name)}#{context.turn}.{context.idempotency_key[:6]}"


def _as_text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output, sort_keys=True, default=str)
