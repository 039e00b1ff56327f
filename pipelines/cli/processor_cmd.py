"""`seatflow processor ...`: run the availability processor and watch its output."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from typing import Annotated

import typer
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from rich.live import Live
from rich.table import Table

from pipelines.avro import AvroDecoder
from pipelines.cli.output import console, fail
from pipelines.processor.aggregate import AvailabilityState
from pipelines.processor.runner import BatchStats, ProcessorError, run_processor
from pipelines.settings import Settings, get_settings
from pipelines.topics import SEAT_AVAILABILITY

app = typer.Typer(no_args_is_help=True)


@app.command()
def run(
    until_end: Annotated[bool, typer.Option(help="Stop at the current end of the input.")] = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 2000,
) -> None:
    """Publish seat availability from the seat-inventory CDC topic until interrupted."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def report(batch: BatchStats) -> None:
        console.print(
            f"batch in={batch.records_in} out={batch.records_out} "
            f"dead-lettered={batch.dead_lettered} max latency={batch.max_latency_ms:.0f} ms",
            highlight=False,
        )

    try:
        stats = run_processor(get_settings(), should_stop=stop.is_set, until_end=until_end,
                              batch_size=batch_size, on_batch=report)
    except ProcessorError as e:
        fail(str(e))
    console.print(f"done: {stats.batches} batches, {stats.records_in} in, {stats.records_out} out, "
                  f"{stats.dead_lettered} dead-lettered, {stats.aborted} aborted")


def _section_table(state: AvailabilityState, *, limit: int) -> Table:
    """The `limit` sections with the fewest open seats, then every event's totals."""
    table = Table("event", "section", "open", "held", "sold", title="seat availability (live)")
    busiest = sorted(state.sections.items(), key=lambda kv: kv[1]["OPEN"])[:limit]
    for (event_id, section), counts in sorted(busiest):
        table.add_row(str(event_id), section, str(counts["OPEN"]), str(counts["HELD"]),
                      str(counts["SOLD"]))
    for event_id, counts in sorted(state.event_totals().items()):
        table.add_row(f"[bold]{event_id}", "[bold]all", f"[bold]{counts['OPEN']}",
                      f"[bold]{counts['HELD']}", f"[bold]{counts['SOLD']}")
    return table


def watch_availability(settings: Settings, *, duration_s: float | None,
                       sections: int = 12) -> AvailabilityState:
    """Follow the seat-availability topic from its start and show per-section counts live."""
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"seatflow-watch-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    })
    decoder = AvroDecoder(SchemaRegistryClient({"url": settings.ccompat_url, "timeout": 10}))
    state = AvailabilityState()
    consumer.subscribe([SEAT_AVAILABILITY])
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        with Live(console=console, refresh_per_second=4) as live:
            last_draw = 0.0
            while deadline is None or time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=5000, timeout=0.2):
                    if msg.error() is None:
                        state.apply(decoder.decode(msg.key()), decoder.decode(msg.value()))
                if time.monotonic() - last_draw > 0.25:
                    live.update(_section_table(state, limit=sections))
                    last_draw = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return state


@app.command()
def watch(
    duration: Annotated[float | None, typer.Option(help="Seconds to watch (default: until Ctrl-C).")] = None,
    sections: Annotated[int, typer.Option(help="How many sections to show.")] = 12,
) -> None:
    """Show the availability per section as it changes."""
    watch_availability(get_settings(), duration_s=duration, sections=sections)
