"""What the agent loop costs: per model turn, per tool call, per checkpoint; and what a resume re-runs.

    python bench/agent_loop.py [--json] [--rounds N] [--calls N]

Rows, each against a baseline measured in the same run, interleaved (baseline
first on even rounds, engine first on odd ones), medians:

(a) **Per model turn**: a 5-turn loop (4 turns that each call a no-op Python
    tool, then the answer) through ``AgentLoop.run`` with checkpoints off: the
    model router (breaker, budget ledger), the OpenAI adapter and the loop;
    against the same 5 request bodies (captured from the loop, byte for byte)
    sent with ``openai.AsyncOpenAI`` plus 4 direct calls of the function. Added
    per turn = (loop - bare) / 5, target <= 2 ms.
(b) **Checkpoint**: one checkpoint (``tasks/checkpoints.checkpointed``: a
    nested Prefect task run whose result is persisted and committed at once)
    against one plain Prefect task with ``persist_result=True``, both called by
    a flow run on a local Prefect server. Reported, no target.
(c) **Python tool call** through the loop (validation, worker thread for a
    sync function, rendering, the run's record), checkpoint off, against
    calling the function: target <= 1 ms added.
(d) **MCP tool call** through the loop to ``examples/mcp_docs_server.py``
    over stdio and over streamable HTTP (loopback), against ``docsearch.search``
    in process with the same JSON rendering: targets <= 3 ms and <= 5 ms added.
(f) **Conversation record** (issue 21): the same 5-turn loop as (a), with the
    engagement's conversation written to its SQLite store (the engagement opened,
    each turn's messages in one transaction at the turn's end) against the loop
    keeping none. Added per turn = (recorded - unrecorded) / 5, target <= 0.5 ms.
(e) **Resume**: a 10-turn loop (each turn one tool call) whose model fails
    at turn 8, resumed under the same run key: only turns 8-10 ask the model again
    and no tool call runs again.
(g) **Live stream latency** (issue 21, ``bench/live_latency.py``): a token's
    time from the OpenAI adapter to 20 WebSocket clients of the API (uvicorn,
    its own process) through the run's live stream and a Tansu broker: p50 and
    p99 over every token and client, target p99 <= 50 ms.

The model is ``tests/support/llm_wire.py``'s ``WireServer`` in a child process
(it does not share this process's GIL), scripted turn by turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples"))

MODEL = "bench-model"
TURN_TARGET_MS, PYTHON_TOOL_TARGET_MS, STDIO_TARGET_MS, HTTP_TARGET_MS = 2.0, 1.0, 3.0, 5.0
LOOP_TURNS = 5
RECORD_TARGET_MS = 0.5
RUN = uuid.uuid4().hex[:8]
"""In every cache key: results persisted by an earlier run of this benchmark must not be found."""

_SERVER_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from support.llm_wire import WireServer
server = WireServer().start()
print(server.url, flush=True)
for line in sys.stdin:
    command, _, rest = line.strip().partition(" ")
    if command == "script":
        for fields in json.loads(rest):
            server.script(**fields)
        print("ok", flush=True)
    elif command == "bodies":
        print(json.dumps([r.json for r in server.requests[-int(rest):]]), flush=True)
    elif command == "count":
        print(len(server.requests), flush=True)
    elif command == "reset":
        server.reset()
        print("ok", flush=True)
server.stop()
"""


class Wire:
    """The scripted model server in a child process, driven over its stdin."""

    def __init__(self) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-c", _SERVER_SCRIPT, str(ROOT / "tests")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout is not None
        self.url = self.child.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise SystemExit(f"wire server did not start (exit code {self.child.wait()})")

    def ask(self, command: str) -> str:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(command + "\n")
        self.child.stdin.flush()
        return self.child.stdout.readline().strip()

    def script(self, *answers: dict[str, Any]) -> None:
        self.ask("script " + json.dumps(list(answers)))

    def bodies(self, count: int) -> list[dict[str, Any]]:
        return list(json.loads(self.ask(f"bodies {count}")))

    def count(self) -> int:
        return int(self.ask("count"))

    def reset(self) -> None:
        self.ask("reset")

    def close(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        self.child.wait(timeout=15)


def noop(value: int) -> int:
    """Return ``value`` (the cheapest tool there is).

    Args:
        value: Any integer.
    """
    return value


def tool_turns(turns: int) -> list[dict[str, Any]]:
    """Scripts for a loop of ``turns`` turns: one no-op call per turn, then the answer."""
    calls = [{"tool_calls": [{"name": "noop", "arguments": {"value": n}, "id": f"call-{n}"}]} for n in range(turns - 1)]
    return [*calls, {"text": "done"}]


def build(home: Path, url: str) -> tuple[Any, Any]:
    """The router (SQLite breaker and ledger under ``home``) and a loop on it."""
    from agentparty.models import ModelRegistry
    from agentparty.models.model_registry import ModelCapabilities, ModelInfo
    from agentparty.runtime.breakers import SqliteBreakerStore
    from agentparty.runtime.budgets import BudgetLedger
    from agentparty.runtime.model_router import ModelRouter
    from agentparty.runtime.providers.openai_provider import OpenAIProvider
    from agentparty.tasks.agent_loop import AgentLoop
    from agentparty.tasks.lifecycle import PrefectApprover

    registry = ModelRegistry(
        default_model=MODEL,
        available_models={
            MODEL: ModelInfo(
                name=MODEL,
                provider="openai",
                capabilities=ModelCapabilities(max_tokens=128_000, supports_functions=True),
            )
        },
        fallback_chain=[],
    )
    router = ModelRouter(
        registry=registry,
        providers={"openai": OpenAIProvider(api_key="x", base_url=f"{url}/v1")},
        breaker_store=SqliteBreakerStore(home / "breakers.sqlite"),
        ledger=BudgetLedger(home / "budgets.sqlite"),
    )
    return router, AgentLoop(router, PrefectApprover())


def loop_parts(run_key: str, durable: bool, turns: int = LOOP_TURNS) -> tuple[Any, Any, Any, Any, Any]:
    """The first request, a toolbox with ``noop``, the limits, the place and the budgets of one loop."""
    from agentparty.models.messages import SystemMessage, UserMessage
    from agentparty.models.tools import PythonTool
    from agentparty.runtime.budgets import Budget
    from agentparty.runtime.providers.base import CompletionRequest
    from agentparty.tasks.agent_loop import LoopLimits, LoopPlace
    from agentparty.tasks.toolbox import PythonBoundTool, Toolbox
    from agentparty.tasks.tools import function_tool

    request = CompletionRequest(
        model=MODEL,
        messages=(
            SystemMessage(content="You are a bench agent."),
            UserMessage(content="Call noop until told otherwise.", user_id="bench", session_id=run_key),
        ),
        max_tokens=256,
    )
    toolbox = Toolbox()
    toolbox.add(PythonBoundTool(function_tool(PythonTool(function="agent_loop:noop"))))
    limits = LoopLimits(max_turns=turns, max_tool_calls=turns, max_consecutive_errors=3, max_parallel_tool_calls=4)
    place = LoopPlace(run_key=run_key, step_id="bench", slot="bench", agent_id="a", agent_name="bench", durable=durable)
    return request, toolbox, limits, place, (Budget("task", run_key, 10**9),)


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def interleaved(
    rounds: int, baseline: Callable[[], Awaitable[Any]], engine: Callable[[], Awaitable[Any]]
) -> tuple[list[float], list[float]]:
    base, eng = [], []
    for i in range(rounds):
        if i % 2 == 0:
            base.append(await timed(baseline))
            eng.append(await timed(engine))
        else:
            eng.append(await timed(engine))
            base.append(await timed(baseline))
    return base, eng


# -- (a) per model turn ----------------------------------------------------------------------------


async def per_turn(wire: Wire, home: Path, rounds: int) -> dict[str, Any]:
    import openai

    router, loop = build(home, wire.url)
    client = openai.AsyncOpenAI(api_key="x", base_url=f"{wire.url}/v1", max_retries=0)
    counter = iter(range(10**9))

    async def engine() -> None:
        request, toolbox, limits, place, budgets = loop_parts(f"turns-{next(counter)}", durable=False)
        await loop.run(request, toolbox, limits, place, budgets)

    wire.script(*tool_turns(LOOP_TURNS))
    await engine()
    bodies = wire.bodies(LOOP_TURNS)  # what the loop sent: the bare calls send exactly these

    async def bare() -> None:
        for n, body in enumerate(bodies):
            await client.chat.completions.create(**body)
            if n < LOOP_TURNS - 1:
                noop(value=n)

    base, eng = [], []
    for i in range(rounds):
        wire.script(*tool_turns(LOOP_TURNS))  # the same answers for both (scripted outside the timing)
        wire.script(*tool_turns(LOOP_TURNS))
        order = [(bare, base), (engine, eng)] if i % 2 == 0 else [(engine, eng), (bare, base)]
        for call, out in order:
            out.append(await timed(call))
        wire.reset()
    await client.close()
    await router.aclose()
    added = (statistics.median(eng) - statistics.median(base)) / LOOP_TURNS
    return {
        "row": f"(a) loop, per model turn ({LOOP_TURNS}-turn loop, checkpoints off)",
        "baseline_ms": statistics.median(base) / LOOP_TURNS,
        "engine_ms": statistics.median(eng) / LOOP_TURNS,
        "added_ms": added,
        "target_ms": TURN_TARGET_MS,
        "n": rounds,
    }


# -- (f) the conversation record -------------------------------------------------------------------


async def conversation_row(wire: Wire, home: Path, rounds: int) -> dict[str, Any]:
    from agentparty.models.agent import WorkflowState
    from agentparty.runtime.conversations import ConversationStore
    from agentparty.tasks.conversation_log import ConversationLog

    router, loop = build(home, wire.url)
    store = ConversationStore.at(home)
    counter = iter(range(10**9))

    async def unrecorded() -> None:
        request, toolbox, limits, place, budgets = loop_parts(f"plain-{next(counter)}", durable=False)
        await loop.run(request, toolbox, limits, place, budgets)

    async def recorded() -> None:
        run_key = f"kept-{next(counter)}"
        request, toolbox, limits, place, budgets = loop_parts(run_key, durable=False)
        key = store.begin("a", run_key, run_key, "bench", WorkflowState(workflow_id="bench", run_id=run_key))
        await replace(loop, log=ConversationLog(store, key)).run(request, toolbox, limits, place, budgets)

    base, eng = [], []
    for i in range(rounds):
        wire.script(*tool_turns(LOOP_TURNS))
        wire.script(*tool_turns(LOOP_TURNS))
        order = [(unrecorded, base), (recorded, eng)] if i % 2 == 0 else [(recorded, eng), (unrecorded, base)]
        for call, out in order:
            out.append(await timed(call))
        wire.reset()
    await router.aclose()
    return {
        "row": f"(f) conversation record, per turn ({LOOP_TURNS}-turn loop)",
        "baseline_ms": statistics.median(base) / LOOP_TURNS,
        "engine_ms": statistics.median(eng) / LOOP_TURNS,
        "added_ms": (statistics.median(eng) - statistics.median(base)) / LOOP_TURNS,
        "target_ms": RECORD_TARGET_MS,
        "n": rounds,
    }


# -- (c), (d) tool calls ---------------------------------------------------------------------------


async def tool_call_row(
    name: str, toolbox: Any, tool: str, arguments: dict[str, Any], direct: Callable[[], Any], target: float, rounds: int
) -> dict[str, Any]:
    from agentparty.models.tools import ToolCall
    from agentparty.tasks.agent_loop import AgentLoop, LoopPlace
    from agentparty.tasks.lifecycle import PrefectApprover

    loop = AgentLoop(router=None, approver=PrefectApprover())  # type: ignore[arg-type]  # no model is asked
    place = LoopPlace(run_key="tools", step_id="bench", slot="bench", agent_id="a", agent_name="bench", durable=False)
    call = ToolCall(id="c1", name=tool, arguments=arguments)

    async def through_loop() -> None:
        result, _record = await loop._call(call, 0, toolbox, 1, place)
        assert not result.is_error, result.content

    async def in_process() -> None:
        direct()

    for _ in range(20):
        await through_loop()
        await in_process()
    base, eng = await interleaved(rounds, in_process, through_loop)
    return {
        "row": name,
        "baseline_ms": statistics.median(base),
        "engine_ms": statistics.median(eng),
        "added_ms": statistics.median(eng) - statistics.median(base),
        "target_ms": target,
        "n": rounds,
    }


async def tool_rows(rounds: int) -> list[dict[str, Any]]:
    from docsearch import search

    from agentparty.models.tools import McpServer, PythonTool
    from agentparty.runtime.local_service import free_port
    from agentparty.runtime.mcp_tools import McpPool
    from agentparty.tasks.toolbox import build_toolbox

    python = await build_toolbox(
        [PythonTool(function="agent_loop:noop")], [], [], search_dirs=[], connector=None, configured_servers={}
    )
    rows = [
        await tool_call_row(
            "(c) Python tool call, sync",
            python,
            "noop",
            {"value": 7},
            lambda: noop(value=7),
            PYTHON_TOOL_TARGET_MS,
            rounds,
        )
    ]
    query = {"query": "graph neural networks for team formation", "limit": 3}

    def in_process() -> str:
        return json.dumps(search(query["query"], query["limit"]), ensure_ascii=False, separators=(",", ":"))

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "mcp_docs_server.py"), "--http", str(port)],
        cwd=ROOT / "examples",
        stderr=subprocess.DEVNULL,
    )
    try:
        stdio = McpServer(name="docs", command=["python", "mcp_docs_server.py"])
        http = McpServer(name="docs", url=f"http://127.0.0.1:{port}/mcp")
        async with McpPool() as pool:
            for label, declared, target in (
                ("stdio", stdio, STDIO_TARGET_MS),
                ("streamable HTTP", http, HTTP_TARGET_MS),
            ):
                toolbox = await _connected(declared, pool, build_toolbox)
                rows.append(
                    await tool_call_row(
                        f"(d) MCP tool call, {label}", toolbox, "search_docs", query, in_process, target, rounds
                    )
                )
    finally:
        server.terminate()
        server.wait(10)
    return rows


async def _connected(declared: Any, pool: Any, build_toolbox: Any) -> Any:
    deadline = time.monotonic() + 30
    while True:  # the HTTP server may still be starting
        try:
            return await build_toolbox(
                [], [declared], [], search_dirs=[ROOT / "examples"], connector=pool, configured_servers={}
            )
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


# -- (b) checkpoint, (e) resume --------------------------------------------------------------------


async def checkpoint_row(rounds: int) -> dict[str, Any]:
    from prefect import flow, task

    from agentparty.tasks.checkpoints import checkpointed

    @task(persist_result=True, cache_key_fn=lambda _ctx, params: f"plain-{RUN}-{params['n']}")
    async def plain(n: int) -> int:
        return n

    async def nothing() -> int:
        return 1

    @flow(name="bench checkpoints")
    async def bench_flow() -> tuple[list[float], list[float]]:
        # Both at the flow's level, so each writes its result when it ends (a plain task nested in another would
        # defer its write to the outer task's commit, which a checkpoint, committed at once, does not).
        counter = iter(range(10**9))

        async def one_plain() -> None:
            await plain(next(counter))

        async def one_checkpoint() -> None:
            await checkpointed(f"bench-{RUN}-{next(counter)}", "bench · turn 1", nothing)

        for _ in range(10):
            await one_plain()
            await one_checkpoint()
        return await interleaved(rounds, one_plain, one_checkpoint)

    base, eng = await bench_flow()
    return {
        "row": "(b) checkpoint vs a plain persisted Prefect task",
        "baseline_ms": statistics.median(base),
        "engine_ms": statistics.median(eng),
        "added_ms": statistics.median(eng) - statistics.median(base),
        "target_ms": None,
        "n": rounds,
    }


async def resume_row(wire: Wire, home: Path) -> dict[str, Any]:
    from prefect import flow

    from agentparty.models.step_errors import StepError

    router, loop = build(home, wire.url)
    turns = 10

    @flow(name="bench resume")
    async def run() -> Any:
        request, toolbox, limits, place, budgets = loop_parts(f"resume-{RUN}", durable=True, turns=turns)
        return await loop.run(request, toolbox, limits, place, budgets)

    wire.reset()
    scripts = tool_turns(turns)
    wire.script(*scripts[:7], {"status": 400, "error": "the model went away at turn 8"})
    try:
        await run()
        raise SystemExit("the first run was meant to fail at turn 8")
    except StepError:
        pass
    first = wire.count()
    wire.reset()
    wire.script(*scripts[7:])
    outcome = await run()
    asked_again = wire.count()
    await router.aclose()
    cached_turns = [t.turn for t in outcome.turns if t.cached]
    rerun_calls = [c.name for t in outcome.turns for c in t.tool_calls if not c.cached]
    return {
        "row": "(e) 10-turn loop resumed after turn 7",
        "first_run_model_calls": first,
        "resumed_model_calls": asked_again,
        "turns_from_checkpoints": cached_turns,
        "tool_calls_run_again": len(rerun_calls) - 2,  # turns 8 and 9 each call once, for the first time
        "ok": asked_again == 3 and cached_turns == list(range(1, 8)) and len(rerun_calls) == 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=200, help="interleaved rounds per row (default 200)")
    args = parser.parse_args()
    from _server import benchmark_server
    from live_latency import describe as describe_live
    from live_latency import stream_latency_row

    started = time.perf_counter()
    wire = Wire()
    try:
        with tempfile.TemporaryDirectory(prefix="agentparty-bench-") as home, benchmark_server():
            os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
            rows = [asyncio.run(per_turn(wire, Path(home), args.rounds))]
            rows.append(asyncio.run(conversation_row(wire, Path(home), args.rounds)))
            rows.append(asyncio.run(checkpoint_row(args.rounds)))
            rows += asyncio.run(tool_rows(args.rounds))
            resume = asyncio.run(resume_row(wire, Path(home)))
            live = stream_latency_row(wire, Path(home))
    finally:
        wire.close()
    wall = time.perf_counter() - started
    if args.json:
        print(
            json.dumps({"rounds": args.rounds, "rows": rows, "resume": resume, "live": live, "wall_s": wall}, indent=2)
        )
        return
    print(f"{'row (ms, medians)':<58} {'baseline':>9} {'engine':>9} {'added':>7}  target")
    for row in rows:
        target = row["target_ms"]
        verdict = "" if target is None else f"<= {target:g} ms " + ("ok" if row["added_ms"] <= target else "MISSED")
        print(
            f"{row['row']:<58} {row['baseline_ms']:>9.3f} {row['engine_ms']:>9.3f} {row['added_ms']:>7.3f}  {verdict}"
        )
    print(
        f"{resume['row']}: first run asked the model {resume['first_run_model_calls']} times (turn 8 failed); "
        f"the resume asked {resume['resumed_model_calls']} times (turns 8-10), took turns "
        f"{resume['turns_from_checkpoints']} from checkpoints, ran {resume['tool_calls_run_again']} tool calls again "
        f"-> {'ok' if resume['ok'] else 'MISSED'}"
    )
    print(describe_live(live))
    print(
        f"baselines: bare SDK calls + direct tool calls; a plain persisted task; the function in process. "
        f"{args.rounds} interleaved rounds per row, {wall:.0f} s in all"
    )


if __name__ == "__main__":
    main()
