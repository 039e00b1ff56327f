"""The ticketing host: its schema (migrations), seed data and an on-sale simulator."""

from __future__ import annotations

from pipelines.errors import SeatflowError

__all__ = ["CAPTURED_TABLES", "PUBLICATION", "SCHEMA", "HostError"]

# Names other parts of seatflow depend on (connector config, processors).
SCHEMA = "ticketing"
PUBLICATION = "seatflow_pub"
CAPTURED_TABLES = (
    "venues",
    "events",
    "sections",
    "price_levels",
    "seats",
    "seat_inventory",
    "holds",
    "orders",
    "heartbeat",
    "debezium_signal",
)


class HostError(SeatflowError):
    """The ticketing host's database refused or failed an operation."""
