"""Graph schema: seed 000's constraints and indexes in Neo4j 5 syntax, applied as versioned migrations.

The seed writes ``CREATE CONSTRAINT ... ON (a:Agent) ASSERT a.id IS UNIQUE``,
which Neo4j 5 rejects; here every constraint and index is named and uses
``FOR ... REQUIRE`` / ``FOR ... ON``. The seed's TemplateVersion ``NODE KEY``
is an Enterprise-only constraint in Neo4j 5, so the key is a composite
uniqueness constraint (Community accepts it); the writer always sets both
properties, which is what the key's existence half would enforce.

Each applied migration is recorded as a ``(:SchemaMigration {version})`` node
with a checksum of its statements: applying again is a no-op, and a recorded
migration whose statements changed is an error rather than a silent drift.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentparty.runtime.schema_versions import MigrationDeclined, MigrationPolicy, SchemaBehind

logger = logging.getLogger("agentparty.graph")

UNIQUE_ID_LABELS = (
    "Agent",
    "AgentTemplate",
    "TemplateVersion",
    "Team",
    "Task",
    "Capability",
    "AgentState",
    "User",
    "Model",
    "Output",
    "SystemActor",
)
"""The node labels of migration 2, each MERGEd on its ``id`` (frozen: its checksum is recorded in existing graphs;
labels added since get their constraint in a later migration)."""


def _snake(label: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in label).lstrip("_")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]

    @property
    def checksum(self) -> str:
        return hashlib.sha256("\n".join(self.statements).encode()).hexdigest()[:16]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "migration records",
        (
            "CREATE CONSTRAINT schema_migration_version IF NOT EXISTS FOR (m:SchemaMigration) REQUIRE m.version IS UNIQUE",
        ),
    ),
    Migration(
        2,
        "seed 000 constraints and indexes",
        (
            *(
                f"CREATE CONSTRAINT {_snake(label)}_id IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE"
                for label in UNIQUE_ID_LABELS
            ),
            "CREATE CONSTRAINT template_version_key IF NOT EXISTS "
            "FOR (n:TemplateVersion) REQUIRE (n.template_id, n.version) IS UNIQUE",
            "CREATE INDEX agent_status IF NOT EXISTS FOR (n:Agent) ON (n.status)",
            "CREATE INDEX agent_reliability_score IF NOT EXISTS FOR (n:Agent) ON (n.reliability_score)",
            "CREATE INDEX team_status IF NOT EXISTS FOR (n:Team) ON (n.status)",
            "CREATE INDEX task_status IF NOT EXISTS FOR (n:Task) ON (n.status)",
            "CREATE INDEX capability_category IF NOT EXISTS FOR (n:Capability) ON (n.category)",
            "CREATE INDEX worked_with_success_score IF NOT EXISTS FOR ()-[r:WORKED_WITH]-() ON (r.success_score)",
            "CREATE INDEX has_capability_proficiency IF NOT EXISTS FOR ()-[r:HAS_CAPABILITY]-() ON (r.proficiency)",
            "CREATE INDEX member_of_role IF NOT EXISTS FOR ()-[r:MEMBER_OF]-() ON (r.role)",
        ),
    ),
    Migration(
        3,
        "tool nodes",
        ("CREATE CONSTRAINT tool_id IF NOT EXISTS FOR (n:Tool) REQUIRE n.id IS UNIQUE",),
    ),
    Migration(
        4,
        "memory change nodes",
        (
            "CREATE CONSTRAINT memory_change_id IF NOT EXISTS FOR (n:MemoryChange) REQUIRE n.id IS UNIQUE",
            "CREATE INDEX memory_change_agent IF NOT EXISTS FOR (n:MemoryChange) ON (n.agent_id)",
        ),
    ),
)


class MigrationDrift(RuntimeError):
    """A migration recorded in the graph no longer matches the code's statements."""


def applied_migrations(driver: Any, database: str) -> dict[int, dict[str, Any]]:
    records, _, _ = driver.execute_query(
        "MATCH (m:SchemaMigration) "
        "RETURN m.version AS version, m.name AS name, m.checksum AS checksum, m.applied_at AS applied_at",
        database_=database,
        routing_="r",
    )
    return {r["version"]: dict(r) for r in records}


def migrate(
    driver: Any,
    database: str,
    migrations: tuple[Migration, ...] = MIGRATIONS,
    *,
    policy: MigrationPolicy | None = None,
    explicit: bool = False,
    confirm: Callable[[str], bool] | None = None,
) -> list[int]:
    """Apply the migrations not yet recorded, as ``policy`` (``versioning.migrationStrategy``) allows; return the
    versions applied now.

    A graph with no migration recorded is being created, which every strategy
    allows; an older one is upgraded only under ``automatic``, or when a person
    asks (``explicit``: ``agentparty migrate`` / ``graph migrate``; ``assisted``
    asks ``confirm`` first). ``dataBackup`` exports every node and relationship
    to ``HOME/backups`` first (:func:`export_graph`). Schema statements run one
    per transaction (Neo4j refuses schema and data changes in one transaction);
    the record is written after they all succeed; with ``rollbackSupport`` a
    failure drops what the failed migration had created, without it every
    statement being ``IF NOT EXISTS`` lets a later run simply continue.
    """
    policy = policy or MigrationPolicy()
    done = applied_migrations(driver, database)
    pending = []
    for migration in migrations:
        recorded = done.get(migration.version)
        if recorded is None:
            pending.append(migration)
        elif recorded["checksum"] != migration.checksum:
            raise MigrationDrift(
                f"migration {migration.version} ({migration.name}) was applied with checksum {recorded['checksum']}, "
                f"but the code now has {migration.checksum}: add a new migration instead of editing an applied one"
            )
    if pending and done:  # an upgrade of a graph that holds data, not its creation
        plan = f"graph schema: applies {', '.join(f'{m.version} ({m.name})' for m in pending)}"
        if policy.strategy != "automatic" and not explicit:
            raise SchemaBehind(f"{plan} is needed, and versioning.migrationStrategy is {policy.strategy!r}: run "
                               "`agentparty migrate`")  # fmt: skip
        if policy.strategy == "assisted" and explicit and not (confirm and confirm(plan)):
            raise MigrationDeclined(f"not applied: {plan}")
        if policy.backup:
            if policy.backup_dir is None:
                raise ValueError("versioning.migrationStrategy.dataBackup needs a backup folder")
            export_graph(driver, database, policy.backup_dir)
    applied: list[int] = []
    for migration in pending:
        _apply(driver, database, migration, rollback=policy.rollback)
        logger.info("graph migration %s applied: %s", migration.version, migration.name)
        applied.append(migration.version)
    return applied


_CREATED = re.compile(r"^CREATE (CONSTRAINT|INDEX) (\w+) IF NOT EXISTS", re.IGNORECASE)


def _apply(driver: Any, database: str, migration: Migration, *, rollback: bool) -> None:
    created: list[str] = []
    try:
        for statement in migration.statements:
            driver.execute_query(statement, database_=database)
            if found := _CREATED.match(statement.strip()):
                created.append(f"DROP {found[1].upper()} {found[2]} IF EXISTS")
        driver.execute_query(
            "MERGE (m:SchemaMigration {version: $version}) SET m.name = $name, m.checksum = $checksum, m.applied_at = $at",
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            at=datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
            database_=database,
        )
    except Exception:
        if rollback:
            for undo in reversed(created):
                driver.execute_query(undo, database_=database)
        raise


def export_graph(driver: Any, database: str, folder: Path) -> Path:
    """Every node (labels, properties) and relationship (type, ends, properties) as JSON lines; the file."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"graph-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.jsonl"
    with target.open("w", encoding="utf-8") as out:
        nodes, _, _ = driver.execute_query(
            "MATCH (n) RETURN id(n) AS id, labels(n) AS labels, properties(n) AS props",
            database_=database,
            routing_="r",
        )
        for record in nodes:
            out.write(json.dumps({"node": record["id"], "labels": record["labels"], "props": record["props"]},
                                 default=str) + "\n")  # fmt: skip
        edges, _, _ = driver.execute_query(
            "MATCH (a)-[r]->(b) RETURN id(a) AS start, type(r) AS type, id(b) AS end, properties(r) AS props",
            database_=database,
            routing_="r",
        )
        for record in edges:
            out.write(json.dumps({"start": record["start"], "type": record["type"], "end": record["end"],
                                  "props": record["props"]}, default=str) + "\n")  # fmt: skip
    return target
