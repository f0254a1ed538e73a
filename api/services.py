"""What the routers share, kept on ``app.state`` and handed out as FastAPI dependencies.

One Prefect client per app, opened by the lifespan and reused by every request
(a client per request would pay a connection set-up and an API handshake each
time), and one webhook dispatcher on it; deployments are looked up by name once
and remembered. The graph store is the process-wide one (``configured_store``),
or one a test hands in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Request, status
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from agentparty.api.webhook_dispatch import DeliveryDispatcher
from agentparty.api.workflow_index import WorkflowIndex
from agentparty.runtime.conversations import ConversationStore
from agentparty.runtime.graph_reads import GraphReader
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.run_recorder import configured_graph
from agentparty.runtime.settings import Settings
from agentparty.tasks.templates import TemplateRegistry

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient


def prefect_api_url() -> str | None:

    return PREFECT_API_URL.value() or None


@asynccontextmanager
async def prefect_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the app's Prefect client for its lifetime; without ``PREFECT_API_URL`` there is none.

    Prefect would otherwise start an ephemeral in-process server (tens of
    seconds, and its runs vanish with the process): routes that need Prefect
    answer 503 instead, and ``agentparty api`` always points at a real server.
    """
    if prefect_api_url() is None:
        app.state.prefect = app.state.dispatcher = None
        yield
        return

    settings: Settings = app.state.settings
    async with get_client() as client:
        dispatcher = DeliveryDispatcher(  # made on the serving loop, whose primitives it uses
            client, app.state.webhook_deliveries, app.state.deployments, settings.api_prefect_concurrency
        )
        app.state.prefect, app.state.dispatcher = client, dispatcher
        dispatcher.start()  # also creates the runs of deliveries a previous process stored and did not finish
        try:
            yield
        finally:
            await dispatcher.stop()
            app.state.prefect = app.state.dispatcher = None


def dispatcher_of(request: Request) -> DeliveryDispatcher:
    prefect_client(request)  # the same 503 when there is no Prefect API
    dispatcher: DeliveryDispatcher = request.app.state.dispatcher
    return dispatcher


def prefect_client(request: Request) -> PrefectClient:
    client: PrefectClient | None = getattr(request.app.state, "prefect", None)
    if client is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="no Prefect API configured: set PREFECT_API_URL (agentparty api starts the local server)",
        )
    return client


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def workflow_index(request: Request) -> WorkflowIndex:  # async: a sync dependency costs a thread hop per request
    index: WorkflowIndex = request.app.state.workflows
    return index


def template_registry(request: Request) -> TemplateRegistry:
    """The app's template registry, made on first use with the tool allowlist and model registry of its settings."""
    registry: TemplateRegistry | None = getattr(request.app.state, "templates", None)
    if registry is None:
        settings = settings_of(request)
        registry = TemplateRegistry.at(
            settings.home,
            settings.tool_policy(),
            settings.model_registry(),
            settings.agent_runtime.prompt_templates,
            backend=settings.state_backend(),
        )
        request.app.state.templates = registry
    return registry


def conversation_store(request: Request) -> ConversationStore:
    """Every engagement's conversation under the app's home (the store the workers write), opened on first use."""
    store: ConversationStore | None = getattr(request.app.state, "conversations", None)
    if store is None:
        settings = settings_of(request)
        store = ConversationStore.at(settings.home, backend=settings.state_backend())
        request.app.state.conversations = store
    return store


def graph_reader(request: Request) -> GraphReader:
    """Reads on the app's graph store: one driver per app, made on first use, that gives up on an unreachable
    graph after ``api_graph_retry_seconds`` (the route then answers 503) instead of the driver's 30 s."""
    store: GraphStore | None = getattr(request.app.state, "graph_store", None)
    if store is None:
        settings = settings_of(request)
        config, database = configured_graph(settings)
        config = config.model_copy(update={"max_transaction_retry_time": settings.api_graph_retry_seconds})
        store = request.app.state.graph_store = GraphStore(config, database)
    return GraphReader(store)
