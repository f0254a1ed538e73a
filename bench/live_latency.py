"""Row (g) of ``bench/agent_loop.py``: a token's way from the provider adapter to 20 WebSocket clients.

    python bench/agent_loop.py            # all rows; this one last
    python bench/live_latency.py [--json] [--clients N] [--loops N] [--tokens N]   # this row alone

Everything real and on this machine: a Tansu broker, the API (``create_app`` with
its ``/ws`` feed, served by uvicorn with uvloop and httptools, as ``agentparty
api`` serves it) in a process of its own, N ``websockets`` clients in another,
and agent loops in this one: ``AgentLoop`` on the OpenAI adapter against the
scripted wire server (a child process), streaming, with the run's live observer
(``LiveUpdates`` on a ``LiveStream`` producer). Each loop is one turn whose
answer streams ``--tokens`` unique words as fast as the wire server writes them
(a burst far faster than any model: the hard case for the fan-out). Each
token is stamped (``time.monotonic``, one clock for every process of a machine)
when the adapter hands it on (``on_text`` → the loop's observers, the stamp
first), and again when each client's socket yields its ``agent_update``; the
latency is the difference, over every token and client. Target: p99 <= 50 ms
with 20 clients connected; a token a client never got counts as a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

P99_TARGET_MS = 50.0
KEY = "bench-live-key"

_API = r"""
import sys
from agentparty.api import create_app
from agentparty.api.live import LiveFeed
from agentparty.api.security import key_digest
from agentparty.api.serve import serve
from agentparty.models.access import ApiAccessConfig
from agentparty.models.config import KafkaConfig

bootstrap, prefix, port, key = sys.argv[1:5]
access = ApiAccessConfig.model_validate({"apiKeys": [{"name": "bench", "role": "viewer", "keySha256": key_digest(key)}]})
app = create_app(access)
app.state.live_feed = LiveFeed(KafkaConfig(bootstrap_servers=[bootstrap], group_id="bench"), prefix)
serve(app, "127.0.0.1", int(port), log_level="warning")
"""

_CLIENTS = r"""
import asyncio, json, sys, time
from websockets.asyncio.client import connect

url, count = sys.argv[1], int(sys.argv[2])

async def main():
    connections = [await connect(url, max_queue=None) for _ in range(count)]
    received = [[] for _ in connections]
    closes = []

    async def read(i, ws):
        try:
            async for text in ws:
                received[i].append((time.monotonic(), text))  # stamped first, parsed after the run
        except Exception as exc:
            closes.append(repr(exc))

    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(connections)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for ws in connections:
        await ws.close()
    await asyncio.gather(*readers)
    seen = {}
    for messages in received:
        for at, text in messages:
            payload = json.loads(text)["payload"]
            if payload.get("stream_event") == "text":
                seen.setdefault(payload["delta"], []).append(at)
    print(json.dumps({"seen": seen, "closes": closes}), flush=True)

asyncio.run(main())
"""


def _wait_for_port(port: int, child: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the API did not start on port {port} (exit code {child.poll()})") from None
            time.sleep(0.1)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _stream_loops(wire: Any, home: Path, config: Any, prefix: str, loops: int, tokens: int) -> dict[str, float]:
    """Run ``loops`` one-turn streaming loops; when the adapter handed each token on (by its text)."""
    from agent_loop import build, loop_parts

    from agentparty.runtime.live_stream import LiveStream
    from agentparty.tasks.agent_loop import AgentLoop, LoopObserver, LoopPlace, ObserverGroup
    from agentparty.tasks.live_updates import LiveUpdates

    stamped: dict[str, float] = {}

    class Stamp(LoopObserver):
        def text(self, place: LoopPlace, turn: int, delta: str) -> None:
            stamped[delta] = time.monotonic()

    stream = LiveStream(config, prefix)
    router, plain = build(home, wire.url)
    loop = AgentLoop(router, plain.approver, observer=ObserverGroup((Stamp(), LiveUpdates(stream.send))))
    for n in range(loops + 1):  # the first one warms the connections up and is not counted
        wire.script({"text": " ".join(f"L{n:03d}t{t:03d}" for t in range(tokens))})
        request, toolbox, limits, place, budgets = loop_parts(f"live-{uuid.uuid4().hex[:8]}", durable=False, turns=1)
        await loop.run(replace(request, stream=True), toolbox, limits, place, budgets)
        if n == 0:
            stamped.clear()
        await asyncio.sleep(0.05)  # a model turn's own pause before the next answer
    await router.aclose()
    stream.flush(5)
    if stream.dropped or stream.failed:
        raise SystemExit(f"the run's stream dropped {stream.dropped} and lost {stream.failed} items")
    return stamped


def stream_latency_row(wire: Any, home: Path, clients: int = 20, loops: int = 40, tokens: int = 25) -> dict[str, Any]:
    """Row (g): token at the adapter → ``agent_update`` at each of ``clients`` WebSocket clients (p50, p99)."""
    from agentparty.models.config import KafkaConfig
    from agentparty.runtime.broker import LocalKafkaBroker
    from agentparty.runtime.local_service import free_port
    from agentparty.runtime.relay import ensure_topics

    broker = LocalKafkaBroker(home / "live-broker", port=free_port())
    broker.start()
    api = client_process = None
    try:
        config = KafkaConfig(bootstrap_servers=[broker.bootstrap_servers], group_id="bench")
        prefix = f"bench-live-{uuid.uuid4().hex[:6]}."
        ensure_topics(config, prefix)
        port = free_port()
        api = subprocess.Popen(
            [sys.executable, "-c", _API, broker.bootstrap_servers, prefix, str(port), KEY], text=True
        )
        _wait_for_port(port, api)
        url = f"ws://127.0.0.1:{port}/ws?api_key={KEY}"
        client_process = subprocess.Popen(
            [sys.executable, "-c", _CLIENTS, url, str(clients)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client_process.stdout is not None and client_process.stdin is not None
        if client_process.stdout.readline().strip() != "ready":
            raise SystemExit("the WebSocket clients did not connect")
        stamped = asyncio.run(_stream_loops(wire, home, config, prefix, loops, tokens))
        time.sleep(2.0)  # the last tokens reach every client
        client_process.stdin.write("stop\n")
        client_process.stdin.flush()
        report = json.loads(client_process.stdout.readline())
    finally:
        for child in (client_process, api):
            if child is not None:
                child.terminate()
                child.wait(15)
        broker.stop()
    latencies = [
        (at - stamped[delta]) * 1000 for delta, ats in report["seen"].items() if delta in stamped for at in ats
    ]
    expected = len(stamped) * clients
    p50, p99 = statistics.median(latencies), _percentile(latencies, 0.99)
    return {
        "row": f"(g) token at the adapter -> WebSocket client, {clients} clients",
        "tokens": len(stamped),
        "deliveries": len(latencies),
        "missed": expected - len(latencies),
        "clients_closed": report["closes"],
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": max(latencies),
        "target_p99_ms": P99_TARGET_MS,
        "ok": p99 <= P99_TARGET_MS and len(latencies) == expected and not report["closes"],
    }


def describe(row: dict[str, Any]) -> str:
    return (
        f"{row['row']}: {row['tokens']} tokens, {row['deliveries']} deliveries ({row['missed']} missed), "
        f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, max {row['max_ms']:.1f} ms "
        f"(p99 <= {row['target_p99_ms']:g} ms) -> {'ok' if row['ok'] else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--loops", type=int, default=40, help="one-turn loops, each streaming --tokens tokens")
    parser.add_argument("--tokens", type=int, default=25)
    args = parser.parse_args()
    from _server import benchmark_server
    from agent_loop import Wire

    wire = Wire()
    try:
        with tempfile.TemporaryDirectory(prefix="agentparty-bench-") as home, benchmark_server():
            os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
            row = stream_latency_row(wire, Path(home), args.clients, args.loops, args.tokens)
    finally:
        wire.close()
    print(json.dumps(row, indent=2) if args.json else describe(row))


if __name__ == "__main__":
    main()
