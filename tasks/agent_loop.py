"""The agent loop: a model turn, the tool calls it asks for, the next turn, until a final answer or a limit.

One agent step attempt runs :meth:`AgentLoop.run`. Each turn asks the model
(through the router: fallback chain, budgets reserved before the turn, rate
limits) with the conversation so far and the tools on offer; a turn without tool
calls is the final answer (validated against the step's ``outputSchema`` by the
provider adapter). Otherwise every call of the turn runs (at most
``max_parallel_tool_calls`` at once), each ending as a result the model reads
next turn: the tool's result, an error it may correct (bad arguments, an
exception, a timeout, an unknown tool), or a refusal (a denied tool, a rejected
approval). Turns and calls are checkpoints (``tasks/checkpoints.py``), so a
resumed run repeats none that completed.

Limits end the loop with :class:`LoopLimitExceeded`, naming the limit and what
was used: ``maxTurns``, ``maxToolCalls``, and ``max_consecutive_errors`` tool
errors in a row. Token budgets are reserved before every turn by the router, so
an exhausted budget stops the loop mid-way with ``BudgetExceeded``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agentparty.models.graph import AgentStateMetrics
from agentparty.models.messages import AgentMessage, ErrorDetail, ErrorMessage, Message, SystemMessage
from agentparty.models.step_errors import LoopLimitExceeded
from agentparty.models.tools import ToolCall, ToolCallRecord, ToolResult, TurnRecord
from agentparty.runtime.budgets import Budget
from agentparty.runtime.model_router import ModelRouter, RoutedCompletion
from agentparty.runtime.providers.base import CompletionRequest
from agentparty.runtime.secrets import redact
from agentparty.runtime.telemetry_metrics import record_tool_call
from agentparty.runtime.tracing import chat_answered, chat_span, tool_answered, tool_span
from agentparty.tasks.checkpoints import checkpointed, tool_call_key, turn_key
from agentparty.tasks.context_window import ContextWindow, estimate, summary_request_messages
from agentparty.tasks.conversation_log import NO_LOG, ConversationLog
from agentparty.tasks.lifecycle import Approver, ToolApprovalRequest, call_usage, tool_usage
from agentparty.tasks.toolbox import BoundTool, Toolbox, shown_arguments
from agentparty.tasks.tools import ToolContext, call_idempotency_key

logger = logging.getLogger("agentparty.agents")

RECORDED_RESULT_CHARS = 300
"""How much of a tool result the run's record keeps (the model read all of it, up to the tool's cap)."""


@dataclass(frozen=True)
class LoopLimits:
    max_turns: int
    max_tool_calls: int
    max_consecutive_errors: int
    max_parallel_tool_calls: int


@dataclass(frozen=True)
class LoopPlace:
    """Where the loop runs: the run, the step and slot, the agent; checkpoint keys and names derive from it."""

    run_key: str
    step_id: str
    slot: str
    agent_id: str
    agent_name: str
    approval_timeout: int = 3600
    attempt: int = 1
    """This attempt of the step (Prefect's run count); ``attempts`` is how many it may have."""
    attempts: int = 1
    durable: bool = True
    """Checkpoint each turn and call. False for a loop without tools: its one turn is the step itself, whose
    result is persisted already (a nested checkpoint would only add a task run)."""
    workflow_id: str | None = None  # the run's workflow, and who started it over the API: what /ws filters on
    owner_ref: str | None = None


class LoopObserver:
    """Told what the loop does as it happens (live streaming, ``agentparty run -v``); every method a no-op here.

    Called on the loop's event loop, so an observer must not block: hand work to a queue or a producer. Nothing
    it is told is durable: a turn or call replayed from its checkpoint is reported again, without its text.
    """

    def turn_started(self, place: LoopPlace, turn: int) -> None:
        """Before a model turn is asked for (or taken from its checkpoint)."""

    def text(self, place: LoopPlace, turn: int, delta: str) -> None:
        """A fragment of the answer's text as the provider streams it."""

    def turn_finished(self, place: LoopPlace, record: TurnRecord, message: AgentMessage) -> None:
        """A turn answered: its record, and the agent message it adds to the conversation."""

    def tool_started(self, place: LoopPlace, turn: int, call: ToolCall) -> None:
        """Before a tool call (its approval, when it needs one, comes after this)."""

    def waiting_for_approval(self, place: LoopPlace, turn: int, call: ToolCall) -> None:
        """A tool call now waits for a human."""

    def tool_finished(self, place: LoopPlace, turn: int, record: ToolCallRecord) -> None:
        """A tool call ended (answered, failed or refused)."""


@dataclass(frozen=True)
class ObserverGroup(LoopObserver):
    """Several observers, told in order; one that raises is logged and does not stop the loop or the others."""

    observers: tuple[LoopObserver, ...]

    def _each(self, method: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(*args)
            except Exception:  # an observer is never worth a failed step
                logger.exception("loop observer %s failed in %s", type(observer).__name__, method)

    def turn_started(self, place: LoopPlace, turn: int) -> None:
        self._each("turn_started", place, turn)

    def text(self, place: LoopPlace, turn: int, delta: str) -> None:
        self._each("text", place, turn, delta)

    def turn_finished(self, place: LoopPlace, record: TurnRecord, message: AgentMessage) -> None:
        self._each("turn_finished", place, record, message)

    def tool_started(self, place: LoopPlace, turn: int, call: ToolCall) -> None:
        self._each("tool_started", place, turn, call)

    def waiting_for_approval(self, place: LoopPlace, turn: int, call: ToolCall) -> None:
        self._each("waiting_for_approval", place, turn, call)

    def tool_finished(self, place: LoopPlace, turn: int, record: ToolCallRecord) -> None:
        self._each("tool_finished", place, turn, record)


@dataclass
class LoopOutcome:
    final: RoutedCompletion
    turns: list[TurnRecord]
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    fallback_reasons: list[str] = field(default_factory=list)


@dataclass
class AgentLoop:
    router: ModelRouter
    approver: Approver
    on_usage: Callable[[AgentStateMetrics], None] = lambda _usage: None
    """Told each model call (its tokens) and each turn's tool calls as they happen (the lifecycle counts them in
    the state the agent is in: its AgentState's ``metrics`` and ``token_count``)."""
    observer: LoopObserver = field(default_factory=LoopObserver)
    log: ConversationLog = field(default_factory=lambda: NO_LOG)
    """Where the engagement's conversation is kept (each turn's messages written at its end)."""
    context: ContextWindow | None = None
    """The model's window and what to do when the conversation outgrows it; None: never checked."""

    async def run(
        self,
        request: CompletionRequest,
        toolbox: Toolbox,
        limits: LoopLimits,
        place: LoopPlace,
        budgets: tuple[Budget, ...],
    ) -> LoopOutcome:
        """Loop until the model answers without asking for tools; ``request`` is the first turn's request.

        An exception leaving the loop carries the turns taken so far (:func:`turns_of`): a failed step still
        reports the tool calls it made.
        """
        turns: list[TurnRecord] = []
        try:
            outcome = await self._loop(request, toolbox, limits, place, budgets, turns)
        except BaseException as exc:
            with contextlib.suppress(AttributeError):  # exceptions with __slots__
                exc.agentparty_turns = tuple(turns)  # type: ignore[attr-defined]  # a marker attribute
            self._record_failure(exc, place)
            raise
        self.log.status("completed")
        return outcome

    def _record_failure(self, exc: BaseException, place: LoopPlace) -> None:
        """The failed attempt's error, as the conversation's last word until a retry continues it."""
        why = redact(f"{type(exc).__name__}: {exc}".rstrip(": "))[:2000] or type(exc).__name__
        retried = place.attempt < place.attempts
        note = ErrorMessage(
            content=f"attempt {place.attempt} failed: {why}",
            error=ErrorDetail(code=type(exc).__name__, message=why),
            recoverable=retried,
        )
        try:
            self.log.add(f"failed/{place.attempt}", note)
            self.log.flush()
            self.log.status("failed")
        except Exception:  # the step's own error is the one to report
            logger.exception("could not record the failed attempt in the conversation")

    async def _loop(
        self,
        request: CompletionRequest,
        toolbox: Toolbox,
        limits: LoopLimits,
        place: LoopPlace,
        budgets: tuple[Budget, ...],
        turns: list[TurnRecord],
    ) -> LoopOutcome:
        messages = [self.log.add(f"0/{index}", message) for index, message in enumerate(request.messages)]
        self.log.flush()
        tools = toolbox.specs()
        calls_made = errors_in_a_row = 0
        outcome: LoopOutcome | None = None
        reported: int | None = None  # the provider's input tokens for the first `covered` messages
        covered = 0
        for turn in range(1, limits.max_turns + 1):
            context_tokens = estimate(messages, reported, covered)
            if self.context is not None and not self.context.fits(context_tokens):
                messages, outcome = await self._fit(messages, request, turn, place, budgets, outcome)
                reported, context_tokens = None, estimate(messages)
            turn_request = replace(request, messages=tuple(messages), tools=tools, context_tokens=context_tokens)
            self.observer.turn_started(place, turn)
            routed, cached = await self._turn(turn_request, turn, place, budgets)
            completion = routed.completion
            outcome = _tally(outcome, routed)
            self.on_usage(call_usage(completion))
            if completion.input_tokens:
                reported, covered = completion.input_tokens, len(messages)
            record = TurnRecord(
                turn=turn,
                model=routed.model,
                input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens,
                cached=cached,
                final=not completion.tool_calls,
            )
            turns.append(record)
            answer = self.log.add(f"{turn}/agent", _agent_message(place, routed))
            messages.append(answer)
            self.observer.turn_finished(place, record, answer)
            if not completion.tool_calls:
                self.log.flush()
                outcome.turns = turns
                return outcome
            if calls_made + len(completion.tool_calls) > limits.max_tool_calls:
                raise LoopLimitExceeded(
                    f"step {place.step_id!r}: maxToolCalls {limits.max_tool_calls} reached: {calls_made} calls made, "
                    f"turn {turn} asked for {len(completion.tool_calls)} more"
                )
            results = await self._calls(completion.tool_calls, toolbox, turn, place, limits.max_parallel_tool_calls)
            calls_made += len(results)
            self.on_usage(tool_usage([call_record for _, call_record in results]))
            for index, (call, (result, call_record)) in enumerate(zip(completion.tool_calls, results, strict=True)):
                record.tool_calls.append(call_record)
                messages.append(self.log.add(f"{turn}/tool/{index}", _result_message(result)))
                errors_in_a_row = errors_in_a_row + 1 if result.is_error else 0
                if errors_in_a_row >= limits.max_consecutive_errors:
                    raise LoopLimitExceeded(
                        f"step {place.step_id!r}: {errors_in_a_row} tool errors in a row (max_consecutive_errors "
                        f"{limits.max_consecutive_errors}); the last, from {call.name}: {result.content[:300]}"
                    )
            self.log.flush()
        raise LoopLimitExceeded(
            f"step {place.step_id!r}: maxTurns {limits.max_turns} reached without a final answer "
            f"({calls_made} tool calls made)"
        )

    async def _turn(
        self, request: CompletionRequest, turn: int, place: LoopPlace, budgets: tuple[Budget, ...]
    ) -> tuple[RoutedCompletion, bool]:
        def streamed(delta: str) -> None:
            self.observer.text(place, turn, delta)

        async def ask() -> RoutedCompletion:
            with chat_span(request, place.agent_id, place.agent_name, place.step_id, turn) as span:
                routed = await self.router.complete(request, model=request.model, budgets=budgets, on_text=streamed)
                chat_answered(span, routed)
                return routed

        if not place.durable:
            return await ask(), False
        key = turn_key(place.run_key, place.slot, turn, request.model, request.messages, request.tools)
        return await checkpointed(key, f"{place.slot} · turn {turn}", ask)

    async def _fit(
        self,
        messages: list[Message],
        request: CompletionRequest,
        turn: int,
        place: LoopPlace,
        budgets: tuple[Budget, ...],
        outcome: LoopOutcome | None,
    ) -> tuple[list[Message], LoopOutcome | None]:
        """The conversation within the model's window (``tasks/context_window.py``), the loss noted in the log."""
        assert self.context is not None
        tally = outcome

        async def summarize(dropped: Sequence[Message], max_tokens: int) -> str:
            nonlocal tally
            summary_request = replace(
                request,
                messages=summary_request_messages(dropped),
                tools=(),
                output_schema=None,
                max_tokens=max_tokens,
                context_tokens=None,
            )

            def ask() -> Awaitable[RoutedCompletion]:
                return self.router.complete(summary_request, model=request.model, budgets=budgets)

            if place.durable:
                key = turn_key(place.run_key, place.slot, turn, request.model, summary_request.messages, ())
                routed, _ = await checkpointed(key, f"{place.slot} · turn {turn} · summary", ask)
            else:
                routed = await ask()
            tally = _tally(tally, routed)
            self.on_usage(call_usage(routed.completion))
            return routed.completion.text

        fitted = await self.context.fit(messages, summarize)
        if fitted.note is None:
            return messages, tally
        note = self.log.add(f"{turn}/context", fitted.note)
        self.log.flush()
        return [note if m is fitted.note else m for m in fitted.messages], tally

    async def _calls(
        self, calls: tuple[ToolCall, ...], toolbox: Toolbox, turn: int, place: LoopPlace, parallel: int
    ) -> list[tuple[ToolResult, ToolCallRecord]]:
        slots = asyncio.Semaphore(parallel)

        async def one(index: int, call: ToolCall) -> tuple[ToolResult, ToolCallRecord]:
            async with slots:
                return await self._call(call, index, toolbox, turn, place)

        return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(calls))))

    async def _call(
        self, call: ToolCall, index: int, toolbox: Toolbox, turn: int, place: LoopPlace
    ) -> tuple[ToolResult, ToolCallRecord]:
        started = time.perf_counter()
        self.observer.tool_started(place, turn, call)
        shown = shown_arguments(call.arguments)
        tool = toolbox.get(call.name)
        cached = False
        if tool is None:
            with tool_span(call.name, call.id, arguments=call.arguments, step_id=place.step_id) as span:
                result = _refusal(call, toolbox)
                tool_answered(span, content=result.content, is_error=True, refused=result.refused)
        else:
            result, cached = await self._checkpointed_call(tool, call, shown, turn, index, place)
        record = ToolCallRecord(
            call_id=call.id,
            name=call.name,
            source="mcp" if tool is not None and tool.spec.source == "mcp" else "python",
            server=tool.server_name if tool is not None else None,
            arguments=shown[:RECORDED_RESULT_CHARS],
            ok=not result.is_error,
            refused=result.refused,
            truncated=result.truncated,
            result=redact(result.content[:RECORDED_RESULT_CHARS]),
            duration_ms=(time.perf_counter() - started) * 1000,
            cached=cached,
        )
        self.observer.tool_finished(place, turn, record)
        record_tool_call(tool.name if tool else "(unknown)", record)
        return result, record

    async def _checkpointed_call(
        self, tool: BoundTool, call: ToolCall, shown: str, turn: int, index: int, place: LoopPlace
    ) -> tuple[ToolResult, bool]:
        """The call (after its approval, when it needs one) as one checkpoint: a resumed run asks neither again."""
        own_key = tool.idempotency_key(call.arguments) if _valid_arguments(call) else None
        position = own_key if own_key is not None else f"{turn}/{index}"
        context = ToolContext(
            run_key=place.run_key,
            step_id=place.step_id,
            slot=place.slot,
            turn=turn,
            call_id=call.id,
            idempotency_key=call_idempotency_key(place.run_key, place.slot, tool.name, position),
        )

        async def approved_call() -> ToolResult:
            tool_type = "extension" if tool.spec.source == "mcp" else "function"
            with tool_span(
                tool.name, call.id, tool_type=tool_type, arguments=call.arguments, step_id=place.step_id
            ) as span:
                refused = await self._approval(tool, call, shown, turn, index, place)
                result = refused if refused is not None else await tool.call(call.id, call.arguments, context)
                tool_answered(span, content=result.content, is_error=result.is_error, refused=result.refused)
                return result

        if place.durable:
            key = tool_call_key(place.run_key, place.slot, tool.name, own_key, turn, index, call.arguments)
            result, cached = await checkpointed(key, f"{place.slot} · turn {turn} · {tool.name}", approved_call)
        else:
            result, cached = await approved_call(), False
        return (result.model_copy(update={"call_id": call.id}) if result.call_id != call.id else result), cached

    async def _approval(
        self, tool: BoundTool, call: ToolCall, shown: str, turn: int, index: int, place: LoopPlace
    ) -> ToolResult | None:
        """None to go ahead; else the refusal the model reads (a human said no, or nobody answered in time)."""
        if not tool.needs_approval:
            return None
        self.observer.waiting_for_approval(place, turn, call)
        asked = ToolApprovalRequest(
            agent_id=place.agent_id,
            agent_name=place.agent_name,
            tool=tool.name,
            arguments=shown,
            timeout=place.approval_timeout,
            position=f"{place.run_key}|{place.slot}|{turn}|{index}",
        )
        decision = await self.approver.decide(asked)
        if decision is not None and decision.approve:
            return None
        why = "nobody answered in time" if decision is None else f"rejected by {decision.approver}"
        if decision is not None and decision.reason:
            why += f": {decision.reason}"
        return ToolResult(
            call_id=call.id, name=call.name, content=f"the call was not made: {why}", is_error=True, refused=True
        )


def turns_of(exc: BaseException) -> tuple[TurnRecord, ...]:
    """The turns a failed loop had taken when ``exc`` ended it (none for a failure before the loop)."""
    return tuple(getattr(exc, "agentparty_turns", ()))


def _valid_arguments(call: ToolCall) -> bool:
    return isinstance(call.arguments, dict)


def _refusal(call: ToolCall, toolbox: Toolbox) -> ToolResult:
    if call.name in toolbox.denied:
        content = f"the tool {call.name!r} is not permitted for this agent; it was not called"
        return ToolResult(call_id=call.id, name=call.name, content=content, is_error=True, refused=True)
    known = ", ".join(sorted(toolbox.tools)) or "none"
    content = f"there is no tool {call.name!r}; the tools are: {known}"
    return ToolResult(call_id=call.id, name=call.name, content=content, is_error=True)


def _tally(outcome: LoopOutcome | None, routed: RoutedCompletion) -> LoopOutcome:
    completion = routed.completion
    if outcome is None:
        outcome = LoopOutcome(final=routed, turns=[])
    outcome.final = routed
    outcome.input_tokens += completion.input_tokens
    outcome.output_tokens += completion.output_tokens
    outcome.cost += routed.cost
    outcome.fallback_reasons += [
        f"{a.model}: {a.error}" for a in routed.skipped if f"{a.model}: {a.error}" not in outcome.fallback_reasons
    ]
    return outcome


def _agent_message(place: LoopPlace, routed: RoutedCompletion) -> AgentMessage:
    completion = routed.completion
    return AgentMessage(
        content=completion.text,
        agent_id=place.agent_id,
        model=routed.model,
        confidence=completion.confidence,
        tool_calls=list(completion.tool_calls) or None,
    )


def _result_message(result: ToolResult) -> Message:
    if result.is_error:
        code = "tool_refused" if result.refused else "tool_error"
        detail = ErrorDetail(code=code, message=result.content or "(no detail)")
        return ErrorMessage(content=result.content, error=detail, recoverable=not result.refused, tool_result=result)
    return SystemMessage(content=result.content, code="tool_result", tool_result=result)


def loop_limits(step: Any, template: Any, runtime: Any) -> LoopLimits:
    """The step's limits, else the template version's, else the runtime defaults."""

    def pick(name: str) -> int:
        for source in (step, template):
            value = getattr(source, name, None) if source is not None else None
            if value is not None:
                return int(value)
        return int(getattr(runtime, name))

    return LoopLimits(
        max_turns=pick("max_turns"),
        max_tool_calls=pick("max_tool_calls"),
        max_consecutive_errors=int(runtime.max_consecutive_errors),
        max_parallel_tool_calls=int(runtime.max_parallel_tool_calls),
    )
