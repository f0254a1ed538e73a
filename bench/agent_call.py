"""Engine overhead per agent call, measured against a raw SDK call to the same local server in the same run.

    python bench/agent_call.py [--json] [--calls N] [--repeat R] [--in-process] [--state-dir DIR] [--profile VARIANT]

Raw: ``openai.AsyncOpenAI(max_retries=0).chat.completions.create(...)``, non-streaming.
Engine: the same request (byte-identical JSON body, checked after the warm-up)
through ``ModelAgentRunner.run`` with ``stream=False``: template resolution (or
the ad-hoc path), agent provisioning and lifecycle, the model router with a
SQLite circuit breaker and budget ledger (a task budget and the agent's own are
reserved and settled), and the OpenAI adapter. Both talk to ``tests/support/llm_wire.py``'s
``WireServer``, which by default runs in a child process so it does not share
this process's GIL (``--in-process`` runs it in a thread, as the tests do).

Variants (each with its own run_key, kept for all its calls):

* ``new step``: a new step_id per call, so every call provisions a new agent
  (``initialized -> running -> completed``). This is what a workflow run does:
  each agent step calls its model once per attempt, and agents are per (run, step).
  The 2 ms target applies to these rows.
* ``same step``: one step_id for every call, so the agent is reused
  (``completed -> running -> completed``), as a retried step would be; its
  ``agent_token_budget`` is raised so hundreds of calls do not exhaust the
  default 10,000-token agent budget.

Each of ``ad-hoc`` (no template defines the agent) and ``template`` (a published
template, ``approval_required=False``) runs both ways. After a warm-up of 20
calls each, raw and engine calls alternate (raw first on even rounds, engine
first on odd ones, variant order rotated) so drift hits both alike. Added
latency is reported as median(engine) - median(raw) and as the median of the
per-call differences of each (raw, engine) pair. The engine's SQLite state lives
in a temporary directory (``--state-dir`` picks where, e.g. ``/dev/shm``); each
budget reservation and settlement is a committed write, so disk sync speed counts.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
sys.path.insert(0, str(TESTS))

MODEL = "bench-model"
PROMPT = "Summarise the quarterly report in one sentence for the weekly status update."
TEMPLATE = "bench-writer"
ADHOC = "bench-adhoc"
TEMPLATE_MAX_TOKENS = 256
WARMUP = 20
TARGET_MS = 2.0

_SERVER_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from agent_call import start_wire
server = start_wire()
print(server.url, flush=True)
for line in sys.stdin:
    command = line.split()
    if command and command[0] == "bodies":
        print(json.dumps([r.json for r in server.requests[-int(command[1]):]]), flush=True)
    elif command and command[0] == "reset":
        server.reset()
        print("ok", flush=True)
server.stop()
"""


def start_wire() -> Any:
    """Start a ``WireServer`` (its socket is IPPROTO_TCP, so asyncio turns Nagle's algorithm off)."""
    from support.llm_wire import WireServer

    return WireServer().start()


class Server:
    """The wire server, in a child process (default) or a thread of this one."""

    def __init__(self, in_process: bool) -> None:
        self._wire: Any = None
        self._child: subprocess.Popen[str] | None = None
        if in_process:
            self._wire = start_wire()
            self.url: str = self._wire.url
        else:
            self._child = subprocess.Popen(
                [sys.executable, "-c", _SERVER_SCRIPT, str(HERE)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._child.stdout is not None
            self.url = self._child.stdout.readline().strip()
            if not self.url.startswith("http"):
                raise SystemExit(f"wire server did not start (exit code {self._child.wait()})")

    def _ask(self, line: str) -> str:
        assert self._child is not None and self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(line + "\n")
        self._child.stdin.flush()
        return self._child.stdout.readline()

    def bodies(self, count: int) -> list[Any]:
        """JSON bodies of the last ``count`` requests the server saw."""
        if self._wire is not None:
            return [r.json for r in self._wire.requests[-count:]]
        return json.loads(self._ask(f"bodies {count}"))

    def reset(self) -> None:
        if self._wire is not None:
            self._wire.reset()
        else:
            self._ask("reset")

    def close(self) -> None:
        if self._wire is not None:
            self._wire.stop()
        if self._child is not None:
            assert self._child.stdin is not None
            self._child.stdin.close()
            try:
                self._child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._child.kill()


@dataclass(repr=False)
class Variant:
    """One engine configuration and the raw request that matches its calls.

    No dataclass repr: when ``asyncio.run`` ends it reprs its main task, result
    included, and a runner's journal of every transition would take seconds.
    """

    name: str
    runner: Any
    agent: str
    run_key: str
    new_step_per_call: bool
    raw_kwargs: dict[str, Any]
    agent_token_budget: int | None = None
    calls: int = 0
    raw_ms: list[float] = field(default_factory=list)
    engine_ms: list[float] = field(default_factory=list)
    added_by_repeat: list[float] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Variant({self.name!r})"

    def request(self) -> Any:
        """The next step's request: a new step_id per call, or always the same one."""
        from agentparty.runtime.budgets import Budget
        from agentparty.tasks.agent import AgentStepRequest

        self.calls += 1
        step_id = f"step-{self.calls}" if self.new_step_per_call else "step"
        return AgentStepRequest(
            step_id=step_id,
            agent=self.agent,
            prompt=PROMPT,
            run_key=self.run_key,
            budgets=(Budget("task", self.run_key, 10**9),),
            agent_token_budget=self.agent_token_budget,
        )


def build_runner(home: Path, url: str, template: bool) -> tuple[Any, dict[str, Any]]:
    """A runner on a one-model registry with SQLite breaker, ledger and templates under ``home``; and the matching raw request."""
    from agentparty.models import CreateAgentTemplateRequest, ModelRegistry
    from agentparty.models.model_registry import ModelCapabilities, ModelInfo
    from agentparty.runtime.breakers import SqliteBreakerStore
    from agentparty.runtime.budgets import BudgetLedger
    from agentparty.runtime.model_router import ModelRouter
    from agentparty.runtime.providers.openai_provider import OpenAIProvider
    from agentparty.tasks.agent import ModelAgentRunner
    from agentparty.tasks.templates import TemplateRegistry, default_system_prompt

    registry = ModelRegistry(
        default_model=MODEL,
        available_models={
            MODEL: ModelInfo(name=MODEL, provider="openai", capabilities=ModelCapabilities(max_tokens=128_000))
        },
        fallback_chain=[],
    )
    router = ModelRouter(
        registry=registry,
        providers={"openai": OpenAIProvider(api_key="x", base_url=f"{url}/v1")},
        breaker_store=SqliteBreakerStore(home / "state" / "breakers.sqlite"),
        ledger=BudgetLedger(home / "state" / "budgets.sqlite"),
    )
    templates = TemplateRegistry.at(home)
    if template:
        templates.create(
            CreateAgentTemplateRequest(
                name=TEMPLATE,
                description="Writes one-line summaries",
                model=MODEL,
                parameters={"max_tokens": TEMPLATE_MAX_TOKENS},
                personality="terse",
                capabilities=["summarising"],
                approval_required=False,
            )
        )
        templates.publish(TEMPLATE, "1.0.0")
        system, max_tokens = templates.resolve(TEMPLATE).record.system_prompt, TEMPLATE_MAX_TOKENS
    else:
        system, max_tokens = default_system_prompt(ADHOC, "", "", {}), 1024
    raw = {
        "model": MODEL,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
    }
    return ModelAgentRunner(router=router, templates=templates, stream=False), raw


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def measure(args: argparse.Namespace, server: Server, home: Path) -> tuple[list[Variant], str | None]:
    """Warm up, check the bodies match, then run the interleaved rounds; optionally profile one variant."""
    import openai

    raw_client = openai.AsyncOpenAI(api_key="x", base_url=f"{server.url}/v1", max_retries=0)
    adhoc_runner, adhoc_raw = build_runner(home / "adhoc", server.url, template=False)
    template_runner, template_raw = build_runner(home / "template", server.url, template=True)
    variants = [
        Variant("ad-hoc agent, new step per call", adhoc_runner, ADHOC, "run-adhoc-new", True, adhoc_raw),
        Variant("template agent, new step per call", template_runner, TEMPLATE, "run-template-new", True, template_raw),
        Variant("ad-hoc agent, same step every call", adhoc_runner, ADHOC, "run-adhoc-same", False, adhoc_raw, 10**12),
        Variant(
            "template agent, same step every call",
            template_runner,
            TEMPLATE,
            "run-template-same",
            False,
            template_raw,
            10**12,
        ),
    ]

    def raw_call(variant: Variant) -> Callable[[], Awaitable[Any]]:
        return lambda: raw_client.chat.completions.create(**variant.raw_kwargs)

    def engine_call(variant: Variant) -> Callable[[], Awaitable[Any]]:
        return lambda: variant.runner.run(variant.request())

    try:
        for variant in variants:
            for _ in range(WARMUP):
                await raw_call(variant)()
                await engine_call(variant)()
            raw_body, engine_body = server.bodies(2)
            if raw_body != engine_body:
                raise SystemExit(
                    f"{variant.name}: the engine's request body differs from the raw one:\n{engine_body}\n{raw_body}"
                )
        server.reset()

        for _ in range(args.repeat):
            gc.collect()
            start = [len(v.raw_ms) for v in variants]
            for i in range(args.calls):
                shift = i % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    if i % 2 == 0:
                        variant.raw_ms.append(await timed(raw_call(variant)))
                        variant.engine_ms.append(await timed(engine_call(variant)))
                    else:
                        variant.engine_ms.append(await timed(engine_call(variant)))
                        variant.raw_ms.append(await timed(raw_call(variant)))
            server.reset()
            for variant, first in zip(variants, start, strict=False):
                variant.added_by_repeat.append(
                    statistics.median(variant.engine_ms[first:]) - statistics.median(variant.raw_ms[first:])
                )

        profile = None
        if args.profile:
            variant = next(v for v in variants if v.name.startswith(args.profile) and v.new_step_per_call)
            profile = await profiled(variant, engine_call, args.calls)
        return variants, profile
    finally:
        await raw_client.close()
        await adhoc_runner.router.aclose()
        await template_runner.router.aclose()


async def profiled(variant: Variant, engine_call: Callable[[Variant], Callable[[], Awaitable[Any]]], calls: int) -> str:
    """cProfile of ``calls`` engine calls of one variant: top 25 by cumulative and by internal time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        await engine_call(variant)()
    profiler.disable()
    out = []
    for order in ("cumulative", "tottime"):
        stream = _Text()
        pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(order).print_stats(25)  # type: ignore[arg-type]
        out.append(f"--- {variant.name}: {calls} engine calls, top 25 by {order} ---\n{stream.text}")
    return "\n".join(out)


class _Text:
    def __init__(self) -> None:
        self.text = ""

    def write(self, chunk: str) -> None:
        self.text += chunk


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--calls", type=int, default=300, help="measured calls per variant and repeat (default 300)")
    parser.add_argument("--repeat", type=int, default=1, help="measured rounds of --calls each, pooled (default 1)")
    parser.add_argument("--in-process", action="store_true", help="run the wire server in a thread of this process")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the temporary SQLite state goes (default: the system temp dir)",
    )
    parser.add_argument(
        "--profile",
        choices=["ad-hoc", "template"],
        help="afterwards, cProfile --calls engine calls of that new-step variant",
    )
    args = parser.parse_args()
    if args.calls < 2 or args.repeat < 1:
        parser.error("--calls must be >= 2 and --repeat >= 1")

    started = time.perf_counter()
    server = Server(args.in_process)
    try:
        with tempfile.TemporaryDirectory(prefix="agentparty-bench-", dir=args.state_dir) as home:
            variants, profile = asyncio.run(measure(args, server, Path(home)))
    finally:
        server.close()
    wall = time.perf_counter() - started

    rows = [_row(v, TARGET_MS if v.new_step_per_call else None) for v in variants]
    if args.json:
        print(
            json.dumps(
                {
                    "calls": args.calls,
                    "repeat": args.repeat,
                    "server": "thread" if args.in_process else "process",
                    "target_added_ms": TARGET_MS,
                    "wall_s": wall,
                    "rows": rows,
                    "samples_ms": {v.name: {"raw": v.raw_ms, "engine": v.engine_ms} for v in variants},
                },
                indent=2,
            )
        )
        if profile:
            print(profile, file=sys.stderr)
        return
    header = (
        f"{'variant (ms per call)':<38} {'calls':>5} {'raw p50':>8} {'raw p90':>8} {'eng p50':>8} {'eng p90':>8}"
        f" {'added':>7} {'paired':>7}  target"
    )
    print(header)
    for row in rows:
        target = f"<= {row['target_added_ms']:.0f} ms" if row["target_added_ms"] is not None else ""
        if row["target_added_ms"] is not None:
            target += " ok" if row["added_median_ms"] <= row["target_added_ms"] else " MISSED"
        print(
            f"{row['variant']:<38} {row['calls']:>5} {row['raw_median_ms']:>8.2f} {row['raw_p90_ms']:>8.2f} "
            f"{row['engine_median_ms']:>8.2f} {row['engine_p90_ms']:>8.2f} {row['added_median_ms']:>7.2f} "
            f"{row['added_paired_median_ms']:>7.2f}  {target}"
        )
        if args.repeat > 1:
            print(f"{'':<38} added per repeat: " + ", ".join(f"{a:.2f}" for a in row["added_by_repeat_ms"]))
    print(
        "added = median(engine) - median(raw); paired = median of per-call (engine - raw) differences; "
        f"wire server in {'this process' if args.in_process else 'a child process'}; {wall:.1f} s in all"
    )
    if profile:
        print()
        print(profile)


def _row(variant: Variant, target: float | None) -> dict[str, Any]:
    paired = [e - r for r, e in zip(variant.raw_ms, variant.engine_ms, strict=False)]
    raw, engine = statistics.median(variant.raw_ms), statistics.median(variant.engine_ms)
    return {
        "variant": variant.name,
        "calls": len(variant.engine_ms),
        "raw_median_ms": raw,
        "raw_p90_ms": p90(variant.raw_ms),
        "engine_median_ms": engine,
        "engine_p90_ms": p90(variant.engine_ms),
        "added_median_ms": engine - raw,
        "added_paired_median_ms": statistics.median(paired),
        "added_by_repeat_ms": variant.added_by_repeat,
        "target_added_ms": target,
    }


if __name__ == "__main__":
    main()
