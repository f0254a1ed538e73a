"""Every store of the engine's state database with its migrations: what ``agentparty migrate`` walks through.

A store that is opened applies its own migrations as the strategy allows
(``runtime/schema_versions.py``); this list lets one command bring every store
(and the graph) up to date at once, before any process needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentparty.runtime import (
    agent_memory,
    api_keys,
    audit_postgres,
    breakers,
    budgets,
    conversations,
    outbox_postgres,
    rate_buckets,
    result_storage,
    run_documents,
    run_index,
    template_store,
    webhook_deliveries,
)
from agentparty.runtime.state_backend import Dialect, Migration


@dataclass(frozen=True)
class StateStore:
    name: str
    migrations: Sequence[Migration]
    dialects: tuple[Dialect, ...] = ("sqlite", "postgresql")
    """Where the store exists (run results live in the database only on PostgreSQL)."""


STATE_STORES: tuple[StateStore, ...] = (
    StateStore(budgets.BudgetLedger.STORE, budgets.MIGRATIONS),
    StateStore(breakers.SharedBreakerStore.STORE, breakers.MIGRATIONS),
    StateStore(webhook_deliveries.WebhookDeliveries.STORE, webhook_deliveries.MIGRATIONS),
    StateStore(template_store.SharedTemplateStore.STORE, template_store.MIGRATIONS),
    StateStore(api_keys.ApiKeyStore.STORE, api_keys.MIGRATIONS),
    StateStore(rate_buckets.STORE, rate_buckets.MIGRATIONS),
    StateStore(run_documents.STORE, run_documents.MIGRATIONS),
    StateStore(conversations.STORE, conversations.MIGRATIONS),
    StateStore(run_index.STORE, run_index.MIGRATIONS),
    StateStore(agent_memory.STORE, agent_memory.MIGRATIONS),
    StateStore(result_storage.STORE, result_storage.MIGRATIONS, ("postgresql",)),
    # the SQLite outbox keeps its own, tuned schema (runtime/outbox.py); on PostgreSQL it is a migrated store
    StateStore(outbox_postgres.STORE, outbox_postgres.MIGRATIONS, ("postgresql",)),
    # on SQLite the audit chain is the home's JSONL file (runtime/audit.py)
    StateStore(audit_postgres.STORE, audit_postgres.MIGRATIONS, ("postgresql",)),
)
