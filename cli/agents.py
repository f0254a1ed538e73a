"""``agentparty agents``: persistent agents' memories and conversations (forget one, show a memory).

An agent is named by its id (the graph's ``Agent.id``, shown by ``agentparty run``) or, for a template's agent,
by ``template@version``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentparty.cli._bootstrap import settings

if TYPE_CHECKING:
    from agentparty.runtime.agent_memory import AgentMemoryStore
    from agentparty.tasks.templates import TemplateRegistry

app = typer.Typer(help="Persistent agents: show an agent's memory, forget an agent.", no_args_is_help=True)

AgentArgument = Annotated[str, typer.Argument(help="The agent's id, or template@version for a template's agent.")]


def _registry() -> TemplateRegistry:
    from agentparty.tasks.templates import TemplateRegistry  # deferred: the CLI's start-up

    configured = settings()
    return TemplateRegistry.at(
        configured.home, configured.tool_policy(), configured.model_registry(), backend=configured.state_backend()
    )


def _memory() -> AgentMemoryStore:
    from agentparty.runtime.agent_memory import AgentMemoryStore

    configured = settings()
    return AgentMemoryStore.at(configured.home, backend=configured.state_backend())


def template_agents(registry: TemplateRegistry) -> dict[str, str]:
    """Agent id → ``template@version`` for every version of every template (each version has one agent)."""
    from agentparty.tasks.templates import persistent_agent_id

    found: dict[str, str] = {}
    for name in registry.store.names():
        for record in registry.versions(name):
            version = record.version
            found[persistent_agent_id(version.template_id, version.version)] = f"{name}@{version.version}"
    return found


def _resolve(agent: str, known: dict[str, str]) -> str:
    """The agent id ``agent`` names: itself, or the id of the ``template@version`` it spells."""
    by_handle = {handle: agent_id for agent_id, handle in known.items()}
    return by_handle.get(agent, agent)


@app.command()
def forget(
    agent: AgentArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was erased as JSON.")] = False,
) -> None:
    """Erase an agent's memory and every conversation it had. Exit 1 for an agent nobody knows."""
    from agentparty.runtime.conversations import ConversationStore

    known = template_agents(_registry())
    agent_id = _resolve(agent, known)
    memory = _memory()
    conversations = ConversationStore.at(settings().home, backend=settings().state_backend())
    had_conversations = bool(conversations.engagements(agent_id, limit=1))
    if agent_id not in known and not memory.initialised(agent_id) and not had_conversations:
        typer.echo(
            f"error: no agent {agent!r}: no template version makes it, and no memory or conversation is kept for it",
            err=True,
        )
        raise typer.Exit(1)
    erased = memory.forget(agent_id)
    messages = conversations.forget_agent(agent_id)
    summary: dict[str, Any] = {
        "agent_id": agent_id,
        "agent": known.get(agent_id),
        "memory_keys": erased.keys,
        "memory_changes": erased.changes,
        "conversation_messages": messages,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    name = f"{agent_id} ({known[agent_id]})" if agent_id in known else agent_id
    if not (erased.keys or erased.changes or messages):
        typer.echo(f"agent {name}: nothing to erase (no memory, no conversations)")
        return
    typer.echo(
        f"agent {name}: erased {erased.keys} memory keys ({erased.changes} recorded changes) and "
        f"{messages} conversation messages"
    )


@app.command()
def memory(
    agent: AgentArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """An agent's memory: each key with its version, size and value."""
    agent_id = _resolve(agent, template_agents(_registry()))
    entries = _memory().entries(agent_id)
    if as_json:
        rows = [{"key": e.key, "version": e.version, "bytes": e.size_bytes, "value": e.value} for e in entries]
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not entries:
        typer.echo(f"agent {agent_id}: memory empty")
        return
    for entry in entries:
        value = json.dumps(entry.value, ensure_ascii=False)
        typer.echo(f"{entry.key:<24} v{entry.version:<4} {entry.size_bytes:>6} B  {value[:200]}")
