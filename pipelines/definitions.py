"""The Dagster code location: what `dagster dev -m pipelines.definitions` shows."""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.


import dagster as dg

from pipelines.processor.runner import run_processor
from pipelines.settings import Settings
from pipelines.topics import DEAD_LETTER, SEAT_AVAILABILITY

TICKETING_TABLES = ["venues", "events", "sections", "price_levels", "seats", "seat_inventory"]


class SeatflowConfig(dg.ConfigurableResource):
    """Where the stack is; passwords come from SEATFLOW_* environment variables at run time."""

    kafka_port: int = 19092
    registry_port: int = 18081
    pg_port: int = 54329

    def settings(self) -> Settings:
        return Settings(kafka_port=self.kafka_port, registry_port=self.registry_port,
                        pg_port=self.pg_port)


tables = [
    dg.AssetSpec(["ticketing", t], group_name="ticketing_host", kinds={"postgres"},
                 description=f"ticketing.{t} in the ticketing host's PostgreSQL")
    for t in TICKETING_TABLES
]
cdc_seat_inventory = dg.AssetSpec(
    ["cdc", "seat_inventory"], deps=[["ticketing", "seat_inventory"]], group_name="cdc",
    kinds={"kafka", "debezium"},
    description="Debezium change events of ticketing.seat_inventory (Avro, through the registry)",
)
seat_availability = dg.AssetSpec(
    ["availability", "seat_availability"],
    deps=[cdc_seat_inventory.key, ["ticketing", "seats"], ["ticketing", "sections"],
          ["ticketing", "price_levels"]],
    group_name="availability", kinds={"kafka"},
    description=f"Compacted topic {SEAT_AVAILABILITY}: one Avro record per seat change",
)
dead_letter = dg.AssetSpec(
    ["availability", "dead_letter"], deps=[cdc_seat_inventory.key], group_name="availability",
    kinds={"kafka"}, description=f"Topic {DEAD_LETTER}: records the processor could not publish",
)


def _run(context: dg.OpExecutionContext, config: SeatflowConfig, *, until_end: bool) -> None:
    stats = run_processor(
        config.settings(), should_stop=lambda: False, until_end=until_end,
        on_batch=lambda b: context.log.debug(f"batch in={b.records_in} out={b.records_out}"),
    )
    context.log.info(f"processed {stats.records_in} changes, published {stats.records_out}, "
                     f"dead-lettered {stats.dead_lettered}")


@dg.op
def stream_availability(context: dg.OpExecutionContext, seatflow: SeatflowConfig) -> None:
    """Run the processor until the run is terminated."""
    _run(context, seatflow, until_end=False)


@dg.op
def catch_up_availability(context: dg.OpExecutionContext, seatflow: SeatflowConfig) -> None:
    """Process up to the current end of the input topic, then stop."""
    _run(context, seatflow, until_end=True)


@dg.job(description="Long-running: publishes seat availability until the run is terminated.")
def availability_stream() -> None:
    stream_availability()


@dg.job(description="Bounded: processes the CDC topic up to its current end, then ends.")
def availability_catchup() -> None:
    catch_up_availability()


defs = dg.Definitions(
    assets=[*tables, cdc_seat_inventory, seat_availability, dead_letter],
    jobs=[availability_stream, availability_catchup],
    resources={"seatflow": SeatflowConfig()},
)
