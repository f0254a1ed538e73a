"""What a user's erasure, a retention purge and a user's export report (``flows/retention.py``, the CLI, the API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from ._base import CamelModel

KAFKA_REMAINS = (
    "Events already sent to Kafka are not deleted: a topic is an append-only log that keeps each event until the "
    "topic's own retention (retention.ms) drops it. They carry ids, step outputs and counts of these runs."
)
PREFECT_LOGS_REMAIN = (
    "Prefect has no API to delete log lines or events: the deleted runs' logs stay in Prefect's database until its "
    "db_vacuum service removes orphaned logs (PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED=orphans), and its events "
    "until PREFECT_EVENTS_RETENTION_PERIOD (7 days by default) passes."
)

STORAGE_REMAINS = (
    "Deleted records may linger in storage files until they are overwritten: the graph server's transaction log "
    "(the local server's txlog_*.wal) and, with encryption at rest off, free pages of this home's SQLite stores. "
    "Prefect's database is compacted (VACUUM) after the erasure when it is this home's local server."
)


class Removed(CamelModel):
    """How much of each kind of record went."""

    flow_runs: int = 0
    result_files: int = 0
    artifacts: int = 0
    conversation_messages: int = 0
    memory_entries: int = 0
    memory_changes: int = 0
    memory_snapshots: int = 0
    webhook_deliveries: int = 0
    outbox_events: int = 0
    graph_tasks: int = 0
    graph_users: int = 0
    indexed_runs: int = 0


class ErasureReport(CamelModel):
    user_id: str
    runs: int = Field(description="The user's runs found (run index and graph).")
    removed: Removed
    complete: bool = Field(description="False when a store could not be reached; run the erasure again.")
    problems: list[str] = Field(default_factory=list, description="What could not be erased, and why.")
    remains: list[str] = Field(description="What this erasure cannot remove.")


class PurgeReport(CamelModel):
    cutoff: datetime = Field(description="Data older than this went.")
    retention_days: float
    removed: Removed
    complete: bool
    problems: list[str] = Field(default_factory=list)
    remains: list[str]


class ExportedRun(CamelModel):
    flow_run_id: str
    run_key: str
    workflow_id: str
    started_at: datetime
    finished_at: datetime | None = None
    status: str | None = None
    parameters: dict[str, Any] | None = Field(default=None, description="The run's inputs, as Prefect keeps them.")
    steps: dict[str, str] = Field(default_factory=dict, description="Step (task run) name → its final state.")


class ExportedConversation(CamelModel):
    engagement_id: str
    agent_id: str
    run_key: str
    slot: str
    messages: list[dict[str, Any]]


class UserExport(CamelModel):
    user_id: str
    exported_at: datetime
    runs: list[ExportedRun]
    conversations: list[ExportedConversation]
    graph: list[dict[str, Any]] = Field(description="Each run's Task, Team and Outputs as the graph holds them.")
    problems: list[str] = Field(default_factory=list)
