"""Engagements that handed sub-questions to other agents (``ask_agent``): what the graph and events tests feed in.

``writer`` (slot ``draft``) asks ``critic`` twice, once answered and once not (the critic failed); the answered
critic asks ``researcher`` once, who answers. Five agent messages in all. Pure models only, like ``tool_work``.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from agentparty.models.engagements import AgentWork, Handoff
from agentparty.models.messages import AgentMessage
from agentparty.models.states import AgentLifecycleState
from support.tool_work import START, tool_work

DRAFT = "draft"
TO_CRITIC = "draft→critic#1.aaaaaa"
TO_CRITIC_AGAIN = "draft→critic#2.bbbbbb"
TO_RESEARCHER = "draft→critic#1.aaaaaa→researcher#1.cccccc"


def message(sender: AgentWork, to: AgentWork, text: str, slot: str, minute: int) -> AgentMessage:
    return AgentMessage(
        content=text,
        agent_id=sender.agent.id,
        model="gpt-4o",
        timestamp=START + timedelta(minutes=minute),
        metadata={"to": to.agent.id, "handoff": slot},
    )


def handoff(asker: AgentWork, asked: AgentWork, slot: str, minute: int, answered: bool = True) -> Handoff:
    question = message(asker, asked, "what do we know?", slot, minute)
    answer = message(asked, asker, "this much", slot, minute + 1) if answered else None
    return Handoff(slot=slot, question=question, answer=answer, work=asked, cost=0.01)


def delegating_work() -> AgentWork:
    """The writer's engagement in ``draft``, with its hand-offs (and theirs) on it."""
    writer = tool_work(DRAFT, turns=(), agent_name="writer")
    critic = dataclasses.replace(tool_work(TO_CRITIC, turns=(), agent_name="critic"), role="delegate")
    researcher = dataclasses.replace(tool_work(TO_RESEARCHER, turns=(), agent_name="researcher"), role="delegate")
    failed_critic = dataclasses.replace(
        tool_work(TO_CRITIC_AGAIN, turns=(), agent_name="critic", ends=AgentLifecycleState.FAILED), role="delegate"
    )
    critic = dataclasses.replace(critic, handoffs=(handoff(critic, researcher, TO_RESEARCHER, 2),))
    return dataclasses.replace(
        writer,
        handoffs=(handoff(writer, critic, TO_CRITIC, 1), handoff(writer, failed_critic, TO_CRITIC_AGAIN, 6, False)),
    )
