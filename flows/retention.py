"""Retention and erasure: a user's data erased or exported, and what is older than ``dataRetention`` purged.

Whose a run is comes from the run index (``runtime/run_index.py``, written by every
compiled flow run) and, for runs the graph recorded, from the Task REQUESTED_BY the
User. For each run this removes, in order:

1. from Prefect: the persisted results its task runs' states name (read first: the
   state goes with the run), its artifacts, then the flow run (task runs and states
   go with it);
2. from this home: its conversations, memory changes, webhook deliveries and
   delivered outbox events (``runtime/erasure.py`` says what each store gives up);
3. from the graph: its Task and what hangs off it, and for an erasure the User;
4. its row in the run index, last, and only when Prefect and the graph were reached:
   an erasure that could not finish is run again and finds the same runs.

What cannot be removed is said in every report (``models/retention.py``): events
already on Kafka, Prefect's log lines and events. Each erasure and purge is one
``gdpr.erase`` / ``retention.purge`` entry of the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from neo4j.exceptions import DriverError, Neo4jError
from prefect import flow, get_client
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from agentparty.models.graph import stable_id
from agentparty.models.retention import (
    KAFKA_REMAINS,
    PREFECT_LOGS_REMAIN,
    STORAGE_REMAINS,
    ErasureReport,
    ExportedConversation,
    ExportedRun,
    PurgeReport,
    Removed,
    UserExport,
)
from agentparty.models.run_history import task_id_for
from agentparty.runtime.agent_memory import AgentMemoryStore
from agentparty.runtime.conversations import MAX_PAGE, ConversationStore
from agentparty.runtime.erasure import (
    agent_state_ids,
    compact_sqlite,
    erase_graph_runs,
    erase_graph_user,
    forget_memory_before,
    forget_memory_of_runs,
    graph_records,
    graph_tasks_before,
    remove_result_files,
)
from agentparty.runtime.graph_store import GraphStore, GraphWriteError
from agentparty.runtime.local_services import local_services
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.result_storage import forget_shared_results
from agentparty.runtime.run_index import IndexedRun, RunIndex
from agentparty.runtime.run_recorder import configured_recorder
from agentparty.runtime.settings import Settings, get_settings
from agentparty.runtime.webhook_deliveries import WebhookDeliveries
from agentparty.tasks.templates import engagement_key

logger = logging.getLogger("agentparty.retention")

FLOW_NAME = "retention-purge"
DEPLOYMENT_NAME = "daily"
_FINISHED = [StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED]
_PAGE = 200
_GRAPH_ERRORS = (GraphWriteError, Neo4jError, DriverError, OSError)


@dataclass
class _Work:
    """What one erasure or purge removed so far, and what it could not."""

    removed: Removed = field(default_factory=Removed)
    problems: list[str] = field(default_factory=list)

    def remains(self) -> list[str]:
        return [KAFKA_REMAINS, PREFECT_LOGS_REMAIN, STORAGE_REMAINS]


def _storage_key(state: Any) -> str | None:
    data = getattr(state, "data", None) if state is not None else None
    key = data.get("storage_key") if isinstance(data, dict) else getattr(data, "storage_key", None)
    return str(key) if key else None


async def _task_runs(client: PrefectClient, flow_run_id: uuid.UUID) -> list[Any]:
    runs: list[Any] = []
    only = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    while True:
        page = await client.read_task_runs(flow_run_filter=only, limit=_PAGE, offset=len(runs))
        runs += page
        if len(page) < _PAGE:
            return runs


async def _delete_prefect_run(client: PrefectClient, settings: Settings, flow_run_id: str, work: _Work) -> None:
    """The run's result files (named by its states), its artifacts, then the run itself."""
    run_id = uuid.UUID(flow_run_id)
    try:
        run = await client.read_flow_run(run_id)
    except ObjectNotFound:
        return
    keys = [_storage_key(run.state)] + [_storage_key(t.state) for t in await _task_runs(client, run_id)]
    only = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
    for artifact in await client.read_artifacts(flow_run_filter=only):
        await client.delete_artifact(artifact.id)
        work.removed.artifacts += 1
    stored = [k for k in keys if k]
    work.removed.result_files += remove_result_files(settings.home / "results", stored)
    # with engine state on PostgreSQL the server's default result storage is the shared table (result_storage.py)
    work.removed.result_files += await asyncio.to_thread(forget_shared_results, settings.state_backend(), stored)
    try:
        await client.delete_flow_run(run_id)
        work.removed.flow_runs += 1
    except ObjectNotFound:
        pass


async def _delete_prefect_runs(settings: Settings, flow_run_ids: list[str], work: _Work) -> bool:
    try:
        async with get_client() as client:
            for flow_run_id in flow_run_ids:
                await _delete_prefect_run(client, settings, flow_run_id, work)
    except Exception as exc:  # Prefect unreachable or refusing: report it, keep the index so a rerun finds the runs
        work.problems.append(f"Prefect: {type(exc).__name__}: {exc}")
        return False
    return True


def local_prefect_database(settings: Settings) -> Path | None:
    """The SQLite database of this home's local Prefect server, when that server is the Prefect API in use."""
    server = local_services(settings).prefect
    database = server.home / "prefect" / "prefect.db"
    in_use = os.environ.get("PREFECT_API_URL", server.api_url).rstrip("/") == server.api_url.rstrip("/")
    return database if in_use and database.is_file() else None


def _compact(database: Path | None, work: _Work) -> None:
    if database is None or not work.removed.flow_runs:
        return
    try:
        compact_sqlite(database)
    except (OSError, sqlite3.Error) as exc:  # the server held its write lock for 30 s: the rows are gone all the same
        work.problems.append(f"Prefect's database {database} was not compacted (deleted rows stay on disk): {exc}")


def _graph(settings: Settings) -> GraphStore | None:
    recorder = configured_recorder(settings)
    return recorder.store if recorder is not None else None


def _erase_local(settings: Settings, runs: list[IndexedRun], work: _Work) -> list[str]:
    """Conversations, memory, deliveries and delivered events of the runs; the AgentState ids of their
    engagements (read from the conversations before they go), for the graph."""
    home = settings.home
    run_keys = sorted({r.run_key for r in runs})
    flow_run_ids = [r.flow_run_id for r in runs]
    conversations = ConversationStore.at(home, backend=settings.state_backend())
    states = agent_state_ids([(e.agent_id, engagement_key(e.run_key, e.slot)) for e in conversations.of_runs(run_keys)])
    work.removed.conversation_messages += conversations.forget_runs(run_keys)
    memory = forget_memory_of_runs(AgentMemoryStore.at(home, backend=settings.state_backend()).backend, run_keys)
    work.removed.memory_entries += memory.entries
    work.removed.memory_changes += memory.changes
    work.removed.memory_snapshots += memory.snapshots
    work.removed.webhook_deliveries += WebhookDeliveries.at(home).forget_runs(flow_run_ids)
    work.removed.outbox_events += Outbox.at(home).forget_delivered(sorted({*flow_run_ids, *run_keys}))
    return states


def _audit(settings: Settings, actor: str, action: str, target: str, work: _Work, **details: Any) -> None:
    try:
        settings.audit_log().append(
            actor,
            action,
            target,
            "ok" if not work.problems else "partial",
            **work.removed.model_dump(),
            problems=work.problems,
            **details,
        )
    except OSError as exc:
        logger.error("audit log: %s of %s not recorded: %s", action, target, exc)


async def erase_user(
    user_id: str, *, actor: str, settings: Settings | None = None, prefect_database: Path | None = None
) -> ErasureReport:
    """Remove the user's runs and the data they left (see the module's docstring); audited as ``gdpr.erase``.
    ``prefect_database``: the Prefect server's SQLite file to compact afterwards (default: this home's local
    server's, when it is the one in use)."""
    settings = settings or get_settings()
    index = RunIndex.at(settings.home, settings.state_backend())
    runs = index.of_user(user_id)
    work = _Work()
    prefect_ok = await _delete_prefect_runs(settings, [r.flow_run_id for r in runs], work)
    states = await asyncio.to_thread(_erase_local, settings, runs, work)
    graph_ok, graph_tasks = True, 0
    store = _graph(settings)
    if store is not None:
        try:
            task_ids = [task_id_for(k) for k in {r.run_key for r in runs}]
            graph_tasks = await asyncio.to_thread(erase_graph_runs, store, task_ids, states)
            requested, users = await asyncio.to_thread(erase_graph_user, store, stable_id("user", user_id))
            graph_tasks += len(set(requested) - set(task_ids))
            work.removed.graph_users = users
        except _GRAPH_ERRORS as exc:
            graph_ok = False
            work.problems.append(f"graph: {type(exc).__name__}: {exc}")
    work.removed.graph_tasks = graph_tasks
    await asyncio.to_thread(_compact, prefect_database or local_prefect_database(settings), work)
    if prefect_ok and graph_ok:
        work.removed.indexed_runs = index.forget([r.flow_run_id for r in runs])
    _audit(settings, actor, "gdpr.erase", user_id, work, runs=len(runs))
    return ErasureReport(
        user_id=user_id,
        runs=max(len(runs), graph_tasks),
        removed=work.removed,
        complete=not work.problems,
        problems=work.problems,
        remains=work.remains(),
    )


async def _old_prefect_runs(cutoff: datetime) -> list[str]:
    """Finished flow runs Prefect expected to start before ``cutoff`` (any flow: Prefect's own retention)."""
    found: list[str] = []
    old = FlowRunFilter(
        expected_start_time=FlowRunFilterExpectedStartTime(before_=cutoff),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_FINISHED)),
    )
    async with get_client() as client:
        while True:
            page = await client.read_flow_runs(flow_run_filter=old, limit=_PAGE, offset=len(found))
            found += [str(r.id) for r in page]
            if len(page) < _PAGE:
                return found


def _purge_local(settings: Settings, cutoff: datetime, work: _Work) -> None:
    home = settings.home
    conversations = ConversationStore.at(home, backend=settings.state_backend())
    work.removed.conversation_messages += conversations.forget_before(cutoff)
    memory = forget_memory_before(AgentMemoryStore.at(home, backend=settings.state_backend()).backend, cutoff)
    work.removed.memory_changes += memory.changes
    work.removed.memory_snapshots += memory.snapshots
    work.removed.webhook_deliveries += WebhookDeliveries.at(home).forget_before(cutoff.timestamp())
    work.removed.outbox_events += Outbox.at(home).forget_delivered_before(cutoff.timestamp())


async def purge(
    *,
    actor: str,
    older_than_days: float | None = None,
    cutoff: datetime | None = None,
    settings: Settings | None = None,
    prefect_database: Path | None = None,
) -> PurgeReport:
    """Delete what is older than the retention period (``monitoring.logging.compliance.dataRetention`` days unless
    ``older_than_days`` or ``cutoff`` says otherwise); audited as ``retention.purge``. ``prefect_database`` as for
    :func:`erase_user`."""
    settings = settings or get_settings()
    days = older_than_days
    if days is None:
        days = float(settings.load_sdk_configuration().monitoring.logging.compliance.data_retention)
    cutoff = cutoff or datetime.now(UTC) - timedelta(days=days)
    backend = settings.state_backend()
    index = RunIndex.at(settings.home, backend)
    runs = index.started_before(cutoff)
    work = _Work()
    try:
        flow_run_ids = sorted({r.flow_run_id for r in runs} | set(await _old_prefect_runs(cutoff)))
    except Exception as exc:  # Prefect unreachable: the local stores and the graph are purged all the same
        work.problems.append(f"Prefect: {type(exc).__name__}: {exc}")
        flow_run_ids = []
    prefect_ok = not work.problems and await _delete_prefect_runs(settings, flow_run_ids, work)
    states = agent_state_ids(
        [
            (e.agent_id, engagement_key(e.run_key, e.slot))
            for e in ConversationStore.at(settings.home, backend=backend).of_runs(sorted({r.run_key for r in runs}))
        ]
    )
    await asyncio.to_thread(_purge_local, settings, cutoff, work)
    store = _graph(settings)
    graph_ok = True
    if store is not None:
        try:
            old_tasks = await asyncio.to_thread(graph_tasks_before, store, cutoff)
            work.removed.graph_tasks = await asyncio.to_thread(erase_graph_runs, store, old_tasks, states)
        except _GRAPH_ERRORS as exc:
            graph_ok = False
            work.problems.append(f"graph: {type(exc).__name__}: {exc}")
    await asyncio.to_thread(_compact, prefect_database or local_prefect_database(settings), work)
    if prefect_ok and graph_ok:
        work.removed.indexed_runs = index.forget([r.flow_run_id for r in runs])
    _audit(settings, actor, "retention.purge", f"older than {cutoff.isoformat()}", work, retention_days=days)
    return PurgeReport(
        cutoff=cutoff,
        retention_days=days,
        removed=work.removed,
        complete=not work.problems,
        problems=work.problems,
        remains=work.remains(),
    )


async def _exported_run(client: PrefectClient | None, run: IndexedRun, problems: list[str]) -> ExportedRun:
    exported = ExportedRun(
        flow_run_id=run.flow_run_id,
        run_key=run.run_key,
        workflow_id=run.workflow_id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        status=run.status,
    )
    if client is None:
        return exported
    try:
        flow_run = await client.read_flow_run(uuid.UUID(run.flow_run_id))
        tasks = await _task_runs(client, flow_run.id)
    except ObjectNotFound:
        return exported
    except Exception as exc:  # Prefect unreachable mid-export: the rest is still the user's
        problems.append(f"Prefect, run {run.flow_run_id}: {type(exc).__name__}: {exc}")
        return exported
    exported.parameters = dict(flow_run.parameters or {})
    exported.steps = {t.name: t.state.name if t.state else "unknown" for t in tasks}
    return exported


async def export_user(user_id: str, *, settings: Settings | None = None) -> UserExport:
    """The user's runs (index, Prefect's parameters and step states), conversations and graph records."""
    settings = settings or get_settings()
    runs = RunIndex.at(settings.home, settings.state_backend()).of_user(user_id)
    problems: list[str] = []
    try:
        async with get_client() as client:
            exported = [await _exported_run(client, run, problems) for run in runs]
    except Exception as exc:  # no Prefect API at all: what the home knows
        problems.append(f"Prefect: {type(exc).__name__}: {exc}")
        exported = [await _exported_run(None, run, problems) for run in runs]
    store = ConversationStore.at(settings.home, backend=settings.state_backend())
    conversations = [
        ExportedConversation(
            engagement_id=e.id,
            agent_id=e.agent_id,
            run_key=e.run_key,
            slot=e.slot,
            messages=_all_messages(store, e.id),
        )
        for e in store.of_runs(sorted({r.run_key for r in runs}))
    ]
    graph: list[dict[str, Any]] = []
    graph_store = _graph(settings)
    if graph_store is not None:
        try:
            task_ids = [task_id_for(k) for k in sorted({r.run_key for r in runs})]
            graph = await asyncio.to_thread(graph_records, graph_store, task_ids)
        except _GRAPH_ERRORS as exc:
            problems.append(f"graph: {type(exc).__name__}: {exc}")
    return UserExport(
        user_id=user_id,
        exported_at=datetime.now(UTC),
        runs=exported,
        conversations=conversations,
        graph=[_jsonable(record) for record in graph],
        problems=problems,
    )


def _all_messages(store: ConversationStore, engagement_id: str) -> list[dict[str, Any]]:
    """Every message of the engagement, page by page (a page holds at most ``MAX_PAGE``)."""
    found: list[dict[str, Any]] = []
    while True:
        page = store.page(engagement_id, len(found), MAX_PAGE)
        found += [m.model_dump(mode="json", by_alias=True) for m in page.messages]
        if not page.messages or len(found) >= page.total:
            return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@flow(name=FLOW_NAME, log_prints=False)
async def retention_purge(older_than_days: float | None = None) -> dict[str, Any]:
    """The scheduled purge: what is older than ``dataRetention`` days (or ``older_than_days``) goes."""
    report = await purge(actor="system:retention-flow", older_than_days=older_than_days)
    return report.model_dump(mode="json", by_alias=True)


def retention_deployment(cron: str = "30 3 * * *", timezone: str = "UTC", name: str = DEPLOYMENT_NAME) -> Any:
    """The cron-scheduled deployment of :func:`retention_purge` (daily at 03:30 UTC by default)."""
    return retention_purge.to_deployment(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        entrypoint_type=EntrypointType.MODULE_PATH,
        description="Daily retention purge: runs, results, conversations, deliveries and graph data past dataRetention.",
        tags=["agentparty", "retention"],
    )
