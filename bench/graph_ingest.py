"""Graph ingest through GraphStore vs the raw neo4j driver with the same UNWIND batches, in the same run.

    python bench/graph_ingest.py [--json] [--repeat N] [--batch ROWS]

20,000 nodes (10,000 agents, 10,000 capabilities) and 40,000 HAS_CAPABILITY
relationships, written in batches of ``--batch`` rows per UNWIND statement and
one managed transaction per batch, into a local Bolt server (ArcadeDB) started
for the run. The raw baseline sends the very statements and parameters
GraphStore builds, prepared before the clock starts; GraphStore's time includes
turning pydantic models into rows. Each repetition uses fresh ids and the two
alternate, so both write into a graph of the same size. Target: throughput
ratio (raw time / GraphStore time) >= 0.8.

Also: the median latency of writing one agent step's result as a workflow run
does (``RunGraph.step``: the agent with its template, version and capabilities,
MEMBER_OF, two lifecycle transitions with their states and approver, the Output
with CREATED and RESULTED_IN, and the task and team updates) in one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agentparty.models import WorkflowDefinition
from agentparty.models.engagements import AgentWork, SlotRecord
from agentparty.models.governance import GovernanceRules
from agentparty.models.graph import Agent, AgentTemplate, Capability, HasCapability, TemplateVersion, stable_id
from agentparty.models.run_results import StepResult, StepStatus
from agentparty.models.states import AgentLifecycleState
from agentparty.runtime.graph_migrations import migrate
from agentparty.runtime.graph_server import DATABASE_NAME, LocalBoltServer
from agentparty.runtime.graph_store import GraphBatch, GraphStore
from agentparty.runtime.local_service import free_port
from agentparty.runtime.run_recorder import RunGraph
from agentparty.tasks.lifecycle import AgentLifecycle, PrefectApprover

AGENTS, CAPABILITIES, LINKS_PER_AGENT = 10_000, 10_000, 4


def batches(batch_rows: int) -> list[GraphBatch]:
    """Node batches first (agents, then capabilities), then relationship batches, each of ``batch_rows`` rows."""
    agents = [Agent(name=f"agent {i}", model="simulated") for i in range(AGENTS)]
    capabilities = [Capability(name=f"cap_{i}") for i in range(CAPABILITIES)]
    out: list[GraphBatch] = []
    nodes: list[Any] = [*agents, *capabilities]
    for start in range(0, len(nodes), batch_rows):
        out.append(GraphBatch(nodes=nodes[start : start + batch_rows]))
    links = GraphBatch()
    for i, agent in enumerate(agents):
        for j in range(LINKS_PER_AGENT):
            links.link(
                HasCapability(proficiency=0.5), agent.id, capabilities[(i * LINKS_PER_AGENT + j) % CAPABILITIES].id
            )
    for start in range(0, len(links.edges), batch_rows):
        out.append(GraphBatch(edges=links.edges[start : start + batch_rows]))
    return out


def write_raw(store: GraphStore, prepared: list[list[tuple[str, dict[str, Any]]]]) -> float:
    started = time.perf_counter()
    for statements in prepared:

        def work(tx: Any, statements: list[tuple[str, dict[str, Any]]] = statements) -> None:
            for query, params in statements:
                tx.run(query, params).consume()

        with store.driver.session(database=DATABASE_NAME) as session:
            session.execute_write(work)
    return time.perf_counter() - started


def write_store(store: GraphStore, work: list[GraphBatch]) -> float:
    started = time.perf_counter()
    for batch in work:
        store.write(batch, "bench batch")
    return time.perf_counter() - started


def step_result_latencies(store: GraphStore, count: int) -> list[float]:
    """What the engine writes for one agent step: the run's mapping (RunGraph.step) of a real engagement:
    agent, template and version, capabilities, two lifecycle transitions, the output, task and team."""
    definition = WorkflowDefinition.model_validate(
        {
            "id": "bench",
            "name": "Bench",
            "steps": [{"id": "s", "type": "task", "configuration": {"agent": "writer", "prompt": "p"}}],
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
        }
    )
    run = RunGraph(definition, run_key="bench-run", username="bench")
    store.write(run.started())
    template = AgentTemplate(name="writer")
    version = TemplateVersion(template_id=template.id, version="1.0.0", model="simulated")
    agent = Agent(id=stable_id("agent", template.id, "1.0.0"), name="writer@1.0.0", model="simulated")
    latencies = []
    for i in range(count):
        lifecycle = AgentLifecycle(agent.id, "writer", GovernanceRules(), PrefectApprover(), engagement=f"s[{i}]")
        asyncio.run(lifecycle.transition(AgentLifecycleState.RUNNING, "step"))
        asyncio.run(lifecycle.transition(AgentLifecycleState.COMPLETED, "answered"))
        work = AgentWork(
            agent=agent,
            slot=f"s[{i}]",
            role="s",
            template=template,
            version=version,
            capabilities={"report_generation": 0.7, "summarisation": 0.5},
            used=("report_generation",),
            transitions=lifecycle.drain(),
            input_tokens=80,
            output_tokens=40,
        )
        record = SlotRecord(f"s[{i}]", True, {"answer": i}, "simulated", True, (work,))
        run.tally.add(StepResult(step_id=f"s[{i}]", status=StepStatus.COMPLETED, tokens=120), [record])
        batch = run.step([record])
        started = time.perf_counter()
        store.write(batch, "step result")
        latencies.append(time.perf_counter() - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    raw_times, store_times = [], []
    with tempfile.TemporaryDirectory(prefix="agentparty-graph-bench-") as home:
        server = LocalBoltServer(Path(home), port=free_port(), http_port=free_port(), heap="2g")
        server.start()
        try:
            with GraphStore(server.database_config(), DATABASE_NAME) as store:
                migrate(store.driver, DATABASE_NAME)
                write_store(store, batches(args.batch))  # warm the server (JIT, caches) before timing either
                for rep in range(args.repeat):
                    prepared = [b.statements() for b in batches(args.batch)]
                    mine = batches(args.batch)
                    if rep % 2 == 0:  # alternate who writes into the smaller graph
                        raw_times.append(write_raw(store, prepared))
                        store_times.append(write_store(store, mine))
                    else:
                        store_times.append(write_store(store, mine))
                        raw_times.append(write_raw(store, prepared))
                nodes = store.count("Agent") + store.count("Capability")
                rels = store.count(rel_type="HAS_CAPABILITY")
                expected_nodes = (2 * args.repeat + 1) * (AGENTS + CAPABILITIES)
                if nodes != expected_nodes or rels != (2 * args.repeat + 1) * AGENTS * LINKS_PER_AGENT:
                    raise SystemExit(f"count mismatch: {nodes} nodes, {rels} relationships")
                latencies = step_result_latencies(store, 50)
        finally:
            server.stop()

    raw, ours = statistics.median(raw_times), statistics.median(store_times)
    items = AGENTS + CAPABILITIES + AGENTS * LINKS_PER_AGENT
    rows = [
        {
            "benchmark": "raw driver, same UNWIND batches",
            "seconds": raw,
            "per_second": items / raw,
            "ratio": None,
            "target": "",
        },
        {
            "benchmark": "GraphStore.write",
            "seconds": ours,
            "per_second": items / ours,
            "ratio": raw / ours,
            "target": ">= 0.8",
        },
        {
            "benchmark": "one step result (median of 50)",
            "seconds": statistics.median(latencies),
            "per_second": None,
            "ratio": None,
            "target": "",
        },
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "batch_rows": args.batch,
                    "repeat": args.repeat,
                    "rows": rows,
                    "samples": {"raw": raw_times, "store": store_times, "step_result": latencies},
                },
                indent=2,
            )
        )
        return
    print(f"20,000 nodes + 40,000 relationships, {args.batch} rows per UNWIND, median of {args.repeat}")
    print(f"{'benchmark':<36} {'seconds':>9} {'items/s':>9} {'ratio':>6}  target")
    for row in rows:
        per_second = f"{row['per_second']:.0f}" if row["per_second"] else ""
        ratio = f"{row['ratio']:.2f}" if row["ratio"] else ""
        print(f"{row['benchmark']:<36} {row['seconds']:>9.3f} {per_second:>9} {ratio:>6}  {row['target']}")


if __name__ == "__main__":
    main()
