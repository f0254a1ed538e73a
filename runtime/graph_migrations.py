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
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


def migrate(driver: Any, database: str, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied now.

    Schema statements run one per transaction (Neo4j refuses schema and data
    changes in one transaction); the record is written after they all succeed,
    and every statement is ``IF NOT EXISTS``, so an interrupted migration simply
    runs again.
    """
    done = applied_migrations(driver, database)
    applied: list[int] = []
    for migration in migrations:
        recorded = done.get(migration.version)
        if recorded is not None:
            if recorded["checksum"] != migration.checksum:
                raise MigrationDrift(
                    f"migration {migration.version} ({migration.name}) was applied with checksum {recorded['checksum']}, "
                    f"but the code now has {migration.checksum}: add a new migration instead of editing an applied one"
                )
            continue
        for statement in migration.statements:
            driver.execute_query(statement, database_=database)
        driver.execute_query(
            "MERGE (m:SchemaMigration {version: $version}) SET m.name = $name, m.checksum = $checksum, m.applied_at = $at",
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            at=datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
            database_=database,
        )
        logger.info("graph migration %s applied: %s", migration.version, migration.name)
        applied.append(migration.version)
    return applied
