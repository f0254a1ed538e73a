"""Idempotent, batched writes of seed 000's graph, through the neo4j driver's managed transactions.

A :class:`GraphBatch` collects nodes and relationships; :meth:`GraphStore.write`
sends it as one managed transaction (``session.execute_write``) holding one
``UNWIND`` statement per node label and per relationship type, never a query
per row. Nodes are ``MERGE``d on their ``id`` and relationships on their two
ends (plus an optional key), so writing the same batch again, after a retry or
a resumed run, changes nothing. A node's ``kept_fields`` (and every property of
a node added with :meth:`GraphBatch.ensure` or an edge linked ``create_only``)
are set only when the MERGE creates it: figures that accumulate across runs are
never reset by a later upsert.

Retries: the driver retries transient errors and lost connections for
``max_transaction_retry_time`` seconds with backoff. ArcadeDB reports two
writers MERGEing one unique key at once as a constraint error rather than
waiting (DESIGN.md §5), so those are retried here too, a few times; the second
MERGE then matches the first one's node. A write that still fails raises
:class:`GraphWriteError` naming what it was writing.

Datetimes are stored as naive UTC (ArcadeDB hands stored datetimes back naive;
the models read naive values as UTC).
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from neo4j import GraphDatabase
from neo4j.exceptions import ConstraintError, Neo4jError, ServiceUnavailable, SessionExpired

from agentparty.models.config import DatabaseConfig
from agentparty.models.graph import GraphNode, RelationshipProperties
from agentparty.models.states import IllegalTransition, StateMachine

logger = logging.getLogger("agentparty.graph")

CONSTRAINT_RETRIES = 5
T = TypeVar("T")


class GraphWriteError(RuntimeError):
    """A write that failed after the driver's and the store's retries."""


def graph_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, list):
        return [graph_value(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):  # enums
        return value.value
    return value


def native(value: Any) -> Any:
    """Driver temporal types back to Python ones (naive values are UTC)."""
    if hasattr(value, "to_native"):
        return value.to_native()
    if isinstance(value, list):
        return [native(v) for v in value]
    return value


def node_row(node: GraphNode) -> dict[str, Any]:
    return {k: graph_value(v) for k, v in node.graph_properties().items() if v is not None}


def _split_row(node: GraphNode, create_only: bool) -> dict[str, Any]:
    """``set``: properties every write refreshes; ``init``: those only a creating MERGE sets."""
    props = node_row(node)
    kept = props.keys() - {"id"} if create_only else node.kept_fields
    return {
        "id": node.id,
        "set": {k: v for k, v in props.items() if k not in kept},
        "init": {k: v for k, v in props.items() if k in kept},
    }


@dataclass(frozen=True)
class Edge:
    """One relationship: its properties model says its type; the labels pick one where the type allows several."""

    props: RelationshipProperties
    source_id: str
    target_id: str
    source_label: str | None = None
    target_label: str | None = None
    key: tuple[str, ...] = ()
    """Property names that tell apart several relationships of this type between the same two nodes."""
    create_only: bool = False
    """Set the properties only when the relationship is created (they accumulate under other writers)."""

    def labels(self) -> tuple[str, str]:
        source = self.source_label or self.props.source[0]
        target = self.target_label or self.props.target[0]
        if source not in self.props.source or target not in self.props.target:
            raise ValueError(
                f"{self.props.type} goes from {self.props.source} to {self.props.target}, not {source} to {target}"
            )
        return source, target


@dataclass(frozen=True)
class StatusMove:
    """Move a node's ``status`` to ``target`` along its state machine, inside the batch's transaction.

    The node's status is read in the transaction and the shortest legal chain to ``target`` is taken
    (:meth:`~agentparty.models.states.StateMachine.route`, every link checked); the write is a guarded ``SET``
    (only while the status is still the one read), which also appends the chain to ``status_history`` and sets
    ``props`` (timestamps such as ``completed_at``). Already at ``target``: nothing changes, so a replay is
    idempotent. No legal chain (a late write asking a completed task back to ``in_progress``): nothing changes and
    the refusal is logged with the machine's message; the status a node has can only move forward.
    """

    label: str
    node_id: str
    machine: StateMachine[Any]
    target: str
    props: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    """Whether the chain may take a ``resume`` transition (failed → in_progress): a run's start may, its end not."""

    def apply(self, tx: Any) -> tuple[str, ...]:
        """Run in a managed write transaction; the states passed through (empty when nothing moved)."""
        # write-lock the node before reading it (as apply_outcome does): on Neo4j a concurrent move then waits for
        # this transaction and reads what it wrote; ArcadeDB's optimistic transactions retry the loser instead
        query = (
            f"MATCH (n:{self.label} {{id: $id}}) SET n._move_lock = true REMOVE n._move_lock RETURN n.status AS status"
        )
        row = tx.run(query, id=self.node_id).single()
        if row is None or row["status"] is None:
            raise GraphWriteError(f"{self.label} {self.node_id} has no status to move to {self.target!r}")
        try:
            chain = self.machine.route(row["status"], self.target, resume=self.resume)
        except IllegalTransition as exc:
            logger.warning("%s %s left at %r: %s", self.label, self.node_id, row["status"], exc)
            return ()
        if not chain:
            return ()
        passed = [t.target.value for t in chain]
        tx.run(
            f"MATCH (n:{self.label} {{id: $id}}) WHERE n.status = $source "
            "SET n.status = $target, n.status_history = coalesce(n.status_history, [$source]) + $passed, n += $props",
            id=self.node_id,
            source=row["status"],
            target=self.target,
            passed=passed,
            props={k: graph_value(v) for k, v in self.props.items() if v is not None},
        ).consume()
        return tuple(passed)


@dataclass
class GraphBatch:
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    ensured: set[str] = field(default_factory=set)
    """Ids of nodes added with :meth:`ensure`."""
    moves: list[StatusMove] = field(default_factory=list)
    """Status moves applied after the nodes and edges are written, in order (:meth:`apply_moves`)."""

    def move(self, move: StatusMove) -> GraphBatch:
        self.moves.append(move)
        return self

    def apply_moves(self, tx: Any) -> None:
        for move in self.moves:
            move.apply(tx)

    def add(self, *nodes: GraphNode) -> GraphBatch:
        """Upsert: create the node, or refresh every property but its ``kept_fields``."""
        self.nodes.extend(nodes)
        return self

    def ensure(self, *nodes: GraphNode) -> GraphBatch:
        """Create the node if it is missing; an existing one is left exactly as it is."""
        self.nodes.extend(nodes)
        self.ensured.update(node.id for node in nodes)
        return self

    def link(self, props: RelationshipProperties, source_id: str, target_id: str, **options: Any) -> GraphBatch:
        self.edges.append(Edge(props, source_id, target_id, **options))
        return self

    def extend(self, other: GraphBatch) -> GraphBatch:
        self.nodes.extend(other.nodes)
        self.edges.extend(other.edges)
        self.ensured |= other.ensured
        self.moves.extend(other.moves)
        return self

    def statements(self) -> list[tuple[str, dict[str, Any]]]:
        """One UNWIND statement per label and per (type, labels, key); nodes first, so edges find their ends."""
        statements: list[tuple[str, dict[str, Any]]] = []
        by_label: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for node in self.nodes:
            by_label[node.label][node.id] = _split_row(node, node.id in self.ensured)  # the last write of an id wins
        for label, by_id in by_label.items():
            statements.append(
                (
                    f"UNWIND $rows AS row MERGE (n:{label} {{id: row.id}}) ON CREATE SET n += row.init SET n += row.set",
                    {"rows": list(by_id.values())},
                )
            )
        by_shape: dict[tuple[str, str, str, tuple[str, ...], bool], list[dict[str, Any]]] = defaultdict(list)
        for edge in self.edges:
            source, target = edge.labels()
            props = {k: graph_value(v) for k, v in edge.props.model_dump().items() if v is not None}
            by_shape[(edge.props.type, source, target, edge.key, edge.create_only)].append(
                {"s": edge.source_id, "t": edge.target_id, "props": props}
            )
        for (rel_type, source, target, key, create_only), rows in by_shape.items():
            pattern = ", ".join(f"{k}: row.props.{k}" for k in key)
            statements.append(
                (
                    f"UNWIND $rows AS row MATCH (a:{source} {{id: row.s}}) MATCH (b:{target} {{id: row.t}}) "
                    f"MERGE (a)-[r:{rel_type}{' {' + pattern + '}' if key else ''}]->(b) "
                    + ("ON CREATE SET r += row.props" if create_only else "SET r += row.props"),
                    {"rows": rows},
                )
            )
        return statements


@dataclass(frozen=True)
class WriteSummary:
    nodes: int
    relationships: int
    seconds: float


class GraphStore:
    def __init__(self, config: DatabaseConfig, database: str = "neo4j") -> None:

        self.config = config
        self.database = database
        self.driver = GraphDatabase.driver(
            config.uri,
            auth=(config.username, config.password.get_secret_value()),
            max_connection_pool_size=config.max_connection_pool_size,
            connection_timeout=config.connection_timeout,
            connection_acquisition_timeout=config.connection_acquisition_timeout,
            max_transaction_retry_time=config.max_transaction_retry_time,
        )

    def close(self) -> None:
        self.driver.close()

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, batch: GraphBatch, what: str = "graph batch") -> WriteSummary:
        """Write the batch in one managed transaction; idempotent, so retries and replays are safe."""
        statements = batch.statements()
        if not statements and not batch.moves:
            return WriteSummary(0, 0, 0.0)

        def work(tx: Any) -> None:
            for query, params in statements:
                tx.run(query, params).consume()
            batch.apply_moves(tx)

        started = time.perf_counter()
        self.transact(work, what)
        return WriteSummary(len({n.id for n in batch.nodes}), len(batch.edges), time.perf_counter() - started)

    def transact(self, work: Callable[[Any], T], what: str) -> T:
        """Run ``work(tx)`` as one managed write transaction (replayed whole on transient errors).

        ``work`` may read before it writes: a replay sees the state the failed
        attempt left, which is the state before it (the attempt was rolled back).
        """

        for attempt in range(1, CONSTRAINT_RETRIES + 1):
            try:
                with self.driver.session(database=self.database) as session:
                    return session.execute_write(work)
            except ConstraintError as exc:  # a concurrent MERGE of the same id (ArcadeDB): the retry matches it
                if attempt == CONSTRAINT_RETRIES:
                    raise GraphWriteError(f"{what}: {exc.message}") from exc
                time.sleep(random.uniform(0.01, 0.05) * attempt)
            except (ServiceUnavailable, SessionExpired) as exc:
                raise GraphWriteError(
                    f"{what}: the graph at {self.config.uri} was unreachable for "
                    f"{self.config.max_transaction_retry_time}s of retries: {exc}"
                ) from exc
            except Neo4jError as exc:
                raise GraphWriteError(f"{what}: the graph refused the write: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def set_agent_embeddings(self, embeddings: dict[str, list[float]], chunk: int = 500) -> None:
        """``Agent.embeddings`` for these agents, in one transaction: a targeted SET, never an upsert, since
        ``embeddings`` is one of the Agent's kept fields that run writes leave alone."""
        rows = [{"id": agent_id, "e": vector} for agent_id, vector in embeddings.items()]

        def work(tx: Any) -> None:
            for start in range(0, len(rows), chunk):
                tx.run(
                    "UNWIND $rows AS row MATCH (a:Agent {id: row.id}) SET a.embeddings = row.e",
                    rows=rows[start : start + chunk],
                ).consume()

        self.transact(work, "GNN agent embeddings")

    def count(self, label: str | None = None, rel_type: str | None = None) -> int:
        """Nodes with a label, or relationships of a type (tests and the ingest benchmark check exact counts)."""
        query = (
            f"MATCH ()-[r:{rel_type}]->() RETURN count(r) AS n"
            if rel_type
            else f"MATCH (n:{label}) RETURN count(n) AS n"
        )
        records, _, _ = self.driver.execute_query(query, database_=self.database, routing_="r")
        return int(records[0]["n"])

    def read_nodes(self, node_type: type[GraphNode], ids: Sequence[str]) -> list[GraphNode]:
        records, _, _ = self.driver.execute_query(
            f"UNWIND $ids AS id MATCH (n:{node_type.label} {{id: id}}) RETURN properties(n) AS p",
            ids=list(ids),
            database_=self.database,
            routing_="r",
        )
        return [node_type.from_graph_properties({k: native(v) for k, v in dict(r["p"]).items()}) for r in records]
