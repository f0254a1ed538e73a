"""What the security features cost, each against the same work with the feature off. One function per row.

    python bench/security.py [--json] [--repeat N]

(a) encryption at rest: the compiled 50-step sequential workflow of
    ``bench/orchestration.py`` (every step's result persisted, so sealed), with
    ``atRest`` on and off, interleaved; target: on costs at most 5% more. Also the
    cost of sealing and opening one persisted step result, measured directly.
(b) data masking: events emitted through an ``EventBus`` (outbox append, no
    relay) with ``dataMasking`` on and off, interleaved, in batches of a run's
    mix (step, tool-call and state events; some tool results hold an e-mail, a
    phone and a card number); target: masking costs at most 0.2 ms per event.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _server import benchmark_server
from orchestration import sequential_definition, timed

Row = dict[str, Any]


def encryption_at_rest(repeat: int) -> list[Row]:
    """(a) The 50-step workflow with results sealed vs plaintext, interleaved; plus seal+open of one result."""
    from agentparty.flows import compile_workflow
    from agentparty.models import WorkflowDefinition
    from agentparty.runtime.sealed_results import SealedPickleSerializer
    from agentparty.runtime.sealing import sealer_at
    from agentparty.runtime.settings import get_settings

    get_settings.cache_clear()  # the benchmark server's home (set by benchmark_server)
    sealer = sealer_at(get_settings().home)
    flow = compile_workflow(WorkflowDefinition.model_validate(sequential_definition(50)), source=HERE / "seq.yaml")
    samples: dict[str, list[float]] = {"on": [], "off": []}

    def run(mode: str) -> float:
        sealer.enabled = mode == "on"  # what atRest: false does: the same serializer, writing plaintext
        return timed(flow, 50)

    for mode in ("on", "off"):  # warm both paths
        run(mode)
    for i in range(repeat):  # interleaved, the order alternating: the first run of a pair is slower (server ingesting)
        for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
            samples[mode].append(run(mode))
    sealer.enabled = True
    per_result = _seal_open_seconds(SealedPickleSerializer(), sealer)
    on, off = statistics.median(samples["on"]), statistics.median(samples["off"])
    return [
        _row("(a) 50 sequential steps, results sealed (atRest on)", on, samples["on"]),
        _row("    same, atRest off", off, samples["off"]),
        _row("    on / off (medians; run-to-run noise included)", None, ratio=on / off, target="<= 1.05"),
        _row("    seal + open of one persisted step result (ms)", per_result * 1000, unit="ms"),
        # each step persists one result and a resumed run opens it: 50 seals and opens per run, over the off run
        _row("    50 x (seal + open) / off run", None, ratio=1 + 50 * per_result / off, target="<= 1.05"),
    ]


def _seal_open_seconds(serializer: Any, sealer: Any, count: int = 2000) -> float:
    """Median over 5 batches of dumps + loads of a typical step result, minus the same with sealing off."""
    from agentparty.flows.step_task import StepOutcome

    outcome = StepOutcome(output={"summary": "x" * 2000, "items": list(range(50))}, tokens=120, model="simulated")

    def batch() -> float:
        started = time.perf_counter()
        for _ in range(count):
            serializer.loads(serializer.dumps(outcome))
        return (time.perf_counter() - started) / count

    timings = {True: [], False: []}  # type: dict[bool, list[float]]
    for _ in range(5):
        for enabled in (True, False):
            sealer.enabled = enabled
            timings[enabled].append(batch())
    sealer.enabled = True
    return statistics.median(timings[True]) - statistics.median(timings[False])


def masking_per_event(repeat: int, batch: int = 200) -> list[Row]:
    """(b) Events through the bus with masking on vs off, interleaved; the difference per event is masking's cost."""
    import tempfile

    from agentparty.models.events import (
        AgentStateTransitionEvent,
        AgentStateTransitionPayload,
        ToolCallEvent,
        ToolCallPayload,
        WorkflowEvent,
        WorkflowEventPayload,
    )
    from agentparty.models.sdk_config import SecurityConfig
    from agentparty.runtime.event_bus import EventBus
    from agentparty.runtime.masking import masker_for
    from agentparty.runtime.outbox import Outbox

    def events(n: int) -> list[Any]:
        made: list[Any] = []
        for i in range(n):
            run = f"run-{i // 20}"
            kind = i % 4
            if kind == 0:
                payload = WorkflowEventPayload(
                    workflow_id="research-report",
                    workflow_version="1.0.0",
                    run_key=run,
                    task_id=f"task-{run}",
                    step_id=f"research[{i % 3}]",
                    attempt=1,
                    tokens=345,
                    duration_s=1.25,
                )
                made.append(WorkflowEvent(event_type="step_completed", correlation_id=run, payload=payload))
            elif kind == 1:
                result = "Found 3 sources; contact jane.doe@example.com, +1 415 555 2671, card 4111 1111 1111 1111"
                tool = ToolCallPayload(
                    agent_id=f"agent-{i}",
                    task_id=f"task-{run}",
                    run_key=run,
                    step_id="research[1]",
                    turn=2,
                    call_id=f"call-{i}",
                    tool="search_docs",
                    arguments='{"query": "graph neural networks 2024"}',
                    ok=True,
                    result=result if i % 8 == 1 else "Found 3 sources on team formation",
                    duration_ms=12.5,
                )
                made.append(ToolCallEvent(event_type="tool_completed", correlation_id=run, payload=tool))
            else:
                state = AgentStateTransitionPayload(
                    agent_id=f"agent-{i}",
                    previous_state="initialized",
                    new_state="running",
                    transition_reason="step research[1] started",
                    transition_approver="engine",
                    token_count=120,
                )
                made.append(AgentStateTransitionEvent(correlation_id=run, payload=state))
        return made

    masker = masker_for(SecurityConfig())
    samples: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as folder:
        bus = EventBus(Outbox(Path(folder) / "outbox.sqlite"), relay=None, mirror=False)

        def run(mode: str) -> float:
            bus.masker = masker if mode == "on" else None
            made = events(batch)  # fresh ids: every event is new to the outbox
            started = time.perf_counter()
            for start in range(0, batch, 20):  # a step's worth of events per emit, as a run emits them
                bus.emit(*made[start : start + 20])
            return (time.perf_counter() - started) / batch

        for mode in ("on", "off"):  # warm both paths
            run(mode)
        for _ in range(max(repeat, 5)):
            for mode in ("on", "off"):
                samples[mode].append(run(mode))
    on, off = statistics.median(samples["on"]), statistics.median(samples["off"])
    return [
        _row("(b) one event emitted, dataMasking on (ms)", on * 1000, [x * 1000 for x in samples["on"]], unit="ms"),
        _row("    same, dataMasking off (ms)", off * 1000, [x * 1000 for x in samples["off"]], unit="ms"),
        _row("    masking per event: on - off (ms)", (on - off) * 1000, unit="ms", target="<= 0.2 ms"),
    ]


def _row(
    name: str,
    seconds: float | None,
    samples: list[float] | None = None,
    ratio: float | None = None,
    target: str = "",
    unit: str = "s",
) -> Row:
    return {"benchmark": name, "median": seconds, "unit": unit, "ratio": ratio, "target": target, "samples": samples}


ROWS: list[Callable[[int], list[Row]]] = [encryption_at_rest, masking_per_event]
"""Each row's function: it gets the repeat count and returns its rows (they share one Prefect server)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows: list[Row] = []
    with benchmark_server():
        for measure in ROWS:
            rows += measure(args.repeat)
    if args.json:
        print(json.dumps({"repeat": args.repeat, "rows": rows}, indent=2))
        return
    print(f"{'benchmark':<58} {'median':>10} {'ratio':>7}  target")
    for row in rows:
        value = f"{row['median']:.4f} {row['unit']}" if row["median"] is not None else ""
        ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else ""
        print(f"{row['benchmark']:<58} {value:>10} {ratio:>7}  {row['target']}")


if __name__ == "__main__":
    main()
