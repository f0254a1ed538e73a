"""``agentparty events``: topics, the outbox relay, and reading events back."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from agentparty.cli._bootstrap import kafka, settings

app = typer.Typer(help="Lifecycle events: create topics, relay the outbox to Kafka, tail events.", no_args_is_help=True)


def init_topics() -> list[str]:
    from agentparty.runtime.relay import ensure_topics

    config = settings()
    return ensure_topics(kafka(), config.event_topic_prefix, config.event_partitions, config.event_replication)


@app.command()
def init() -> None:
    """Create the event topics (one per family: agents, teams, tasks, workflows) and the live stream's
    (agent-stream) that do not exist yet."""
    from confluent_kafka import KafkaException

    try:
        created = init_topics()
    except KafkaException as exc:
        typer.echo(
            f"error: no broker at {','.join(kafka().bootstrap_servers)} ({exc}); start one with `agentparty up`",
            err=True,
        )
        raise typer.Exit(1) from None
    typer.echo(f"created {', '.join(created)}" if created else "topics already exist")


@app.command()
def relay(
    once: Annotated[
        bool, typer.Option(help="Send what is pending and exit (else keep relaying until interrupted).")
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between drains when nothing wakes the relay (default: batching.flushInterval)."),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(help="With --once, while another process sends: seconds to wait for it to deliver everything."),
    ] = 30.0,
) -> None:
    """Send the outbox's pending events to Kafka (events stay in the outbox until the broker acknowledges them).

    One relay sends an outbox at a time, in whichever process holds it (a flow run, a worker, this command);
    this one stands by, and takes over when that process stops.
    """
    from agentparty.runtime.outbox import Outbox
    from agentparty.runtime.relay import OutboxRelay

    config = settings()
    outbox = Outbox.at(config.home, config.event_topic_prefix)
    relay_ = OutboxRelay(
        outbox,
        kafka(),
        batching=config.load_sdk_configuration().communication.batching,
        partitions=config.event_partitions,
        replication=config.event_replication,
    )
    if once:
        report = relay_.drain()
        if not report.sender:
            typer.echo(f"{outbox.sender()} sends this outbox; waiting up to {wait:g} s for it", err=True)
            pending = relay_.wait_delivered(None, wait)
            relay_.stop()
            typer.echo(f"pending {pending}")
            raise typer.Exit(0 if pending == 0 else 1)
        relay_.stop()
        typer.echo(f"delivered {report.delivered}, failed {report.failed}, pending {report.pending}")
        raise typer.Exit(0 if report.pending == 0 else 1)
    typer.echo(f"relaying {outbox.where} to {','.join(kafka().bootstrap_servers)}; Ctrl-C stops", err=True)
    relay_.start(interval)
    said = None
    try:
        while True:
            sender = outbox.sender()
            status = "sending" if relay_.is_sender else f"standing by ({sender} sends)" if sender else "starting"
            pending = outbox.pending_count()
            if (status, pending) != said:
                typer.echo(f"{status}; pending {pending}", err=True)
                said = (status, pending)
            time.sleep(max(relay_.batching.flush_interval_s if interval is None else interval, 0.5))
    except KeyboardInterrupt:
        relay_.stop()
        raise typer.Exit(0) from None


@app.command()
def tail(
    event_type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Only these event types (repeatable).")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new events.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
    idle: Annotated[
        float, typer.Option(help="Without --follow: seconds to wait for the first event (then 2 s of quiet ends it).")
    ] = 10.0,
) -> None:
    """Print events from the topics, oldest first, without duplicates."""
    from confluent_kafka import KafkaException

    from agentparty.runtime.event_consumer import EventConsumer, RawEvent

    try:
        consumer = EventConsumer(kafka(), settings().event_topic_prefix, types=set(event_type) if event_type else None)
    except KafkaException as exc:
        typer.echo(f"error: no broker at {','.join(kafka().bootstrap_servers)} ({exc})", err=True)
        raise typer.Exit(1) from None
    with consumer:
        try:
            for event in consumer.events(idle_timeout=idle, follow=follow):
                if isinstance(event, RawEvent):
                    typer.echo(
                        json.dumps(event.data)
                        if as_json
                        else f"{event.event_type} (version {event.event_version}, raw)"
                    )
                elif as_json:
                    typer.echo(event.model_dump_json())
                else:
                    detail = {
                        k: v for k, v in event.payload.model_dump(mode="json").items() if v not in (None, [], {}, "")
                    }
                    typer.echo(
                        f"{event.timestamp:%H:%M:%S} {event.event_type:<24} {event.entity_id()}  {json.dumps(detail)[:160]}"
                    )
        except KeyboardInterrupt:
            pass
