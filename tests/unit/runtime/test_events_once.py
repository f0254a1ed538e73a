"""Of processes appending the same events to one outbox, exactly one stores each (the unit half: no broker, no server).

That is what makes the Prefect mirror once per event. Each event reaching Kafka once,
however many processes relay one outbox, is ``tests/integration/events/test_events_once.py``.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from support.outbox_procs import append_shared


def test_of_processes_appending_the_same_events_exactly_one_stores_each(tmp_path: Path) -> None:
    """What makes the Prefect mirror once per event: ``append`` hands each new id to one emitter only."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=append_shared, args=(str(tmp_path), "same.", worker, 500, results))
        for worker in range(4)
    ]
    for process in processes:
        process.start()
    stored = [results.get(timeout=60)[1] for _ in processes]
    for process in processes:
        process.join(30)
    everything = [event_id for ids in stored for event_id in ids]
    assert len(everything) == len(set(everything)) == 500
