"""`seatflow processor ...`: run the availability processor and watch its output."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from typing import Annotated

import typer
from rich.table import Table

from pipelines.avro import AvroDecoder, registry_client
from pipelines.cli.output import console, live_view
from pipelines.kafka import clients
from pipelines.kafka.reading import next_records
from pipelines.kafka.topics import EVENT_AVAILABILITY, SECTION_AVAILABILITY
from pipelines.processor.config import ProcessorConfig
from pipelines.processor.engine import BatchStats
from pipelines.processor.runner import run_processor
from pipelines.settings import Settings, get_settings

app = typer.Typer(no_args_is_help=True)


@app.command()
def run(
    until_end: Annotated[bool, typer.Option(help="Stop at the current end of the input.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Most records per transaction.")] = 5000,
) -> None:
    """Publish availability from the CDC topics until interrupted (SIGTERM or Ctrl-C)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    settings = get_settings()

    def report(batch: BatchStats) -> None:
        console.print(
            f"batch in={batch.records_in} out={batch.records_out} dup={batch.duplicates} "
            f"dead-lettered={batch.dead_lettered} pending={batch.pending} lag={batch.lag} "
            f"latency p50={batch.latency_p50_ms:.0f} ms max={batch.latency_max_ms:.0f} ms "
            f"commit={batch.commit_ms:.0f} ms",
            highlight=False,
        )

    stats = run_processor(settings, should_stop=stop.is_set, until_end=until_end,
                          config=ProcessorConfig.of(settings, batch_size=batch_size),
                          on_batch=report)
    console.print(f"done: {stats.batches} batches, {stats.records_in} in, {stats.records_out} out, "
                  f"{stats.duplicates} duplicates, {stats.dead_lettered} dead-lettered, "
                  f"{stats.aborted} aborted ({stats.codec} Avro codec)", highlight=False)


def _section_table(sections: dict[tuple, dict], events: dict[int, dict], *, limit: int) -> Table:
    """The `limit` sections with the fewest open seats, then every event's totals."""
    table = Table("event", "section", "price level", "open", "held", "sold", "lowest open price",
                  title="availability (live, from section-availability and event-availability)")
    busiest = sorted(sections.values(), key=lambda v: (v["open"], v["event_id"]))[:limit]
    for v in sorted(busiest, key=lambda v: (v["event_id"], v["section_code"])):
        price = v["lowest_open_price"]
        table.add_row(str(v["event_id"]), v["section_code"], str(v["price_level_id"]),
                      str(v["open"]), str(v["held"]), str(v["sold"]),
                      "-" if price is None else f"{price:.2f}")
    for event_id, v in sorted(events.items()):
        table.add_row(f"[bold]{event_id}", "[bold]all", "", f"[bold]{v['open']}",
                      f"[bold]{v['held']}", f"[bold]{v['sold']}", "")
    return table


def watch_availability(settings: Settings, *, duration_s: float | None,
                       sections: int = 12) -> tuple[dict[tuple, dict], dict[int, dict]]:
    """Follow the section and event availability topics and show them live."""
    consumer = clients.consumer(settings, group_id=f"seatflow-watch-{uuid.uuid4()}", **{
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    })
    decoder = AvroDecoder(registry_client(settings))
    latest_sections: dict[tuple, dict] = {}
    latest_events: dict[int, dict] = {}
    consumer.subscribe([SECTION_AVAILABILITY, EVENT_AVAILABILITY])
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        with live_view(console) as live:
            while deadline is None or time.monotonic() < deadline:
                for msg in next_records(consumer, 5000, 0.25):
                    if msg.error() is not None or msg.value() is None:
                        continue
                    value = decoder.decode(msg.value())
                    if msg.topic() == EVENT_AVAILABILITY:
                        latest_events[value["event_id"]] = value
                    else:
                        key = (value["event_id"], value["section_code"], value["price_level_id"])
                        latest_sections[key] = value
                live.update(_section_table(latest_sections, latest_events, limit=sections))
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return latest_sections, latest_events


@app.command()
def watch(
    duration: Annotated[
        float | None, typer.Option(help="Seconds to watch (default: until Ctrl-C).")
    ] = None,
    sections: Annotated[int, typer.Option(help="How many sections to show.")] = 12,
) -> None:
    """Show the availability per section and event as it changes."""
    watch_availability(get_settings(), duration_s=duration, sections=sections)
