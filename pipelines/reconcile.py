"""Reconciliation: the availability topics' state of an event against the ticketing host's.

Seat by seat first (status and version of every seat), then the section and event counts. The
comparisons are pure; `reconcile_events` does the reading, with retries for changes in flight.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import psycopg
from confluent_kafka import Message
from confluent_kafka.schema_registry import SchemaRegistryClient

from pipelines.avro import AvroDecoder
from pipelines.settings import Settings
from pipelines.topics import EVENT_AVAILABILITY, SEAT_AVAILABILITY, SECTION_AVAILABILITY, read_topic

__all__ = [
    "CountDifference",
    "Counts",
    "EventState",
    "Reconciliation",
    "SeatDifference",
    "SeatTruth",
    "count_differences",
    "db_state",
    "latest_values",
    "on_sale_events",
    "published_state",
    "reconcile_event",
    "reconcile_events",
    "seat_differences",
]

log = logging.getLogger(__name__)

SectionKey = tuple[str, int]  # (section_code, price_level_id) within one event
Counts = dict[str, int]  # {"OPEN": n, "HELD": n, "SOLD": n}, zeros left out
Kind = Literal["missing", "unexpected", "wrong", "behind"]


@dataclass(frozen=True, slots=True)
class SeatTruth:
    """A seat's status (OPEN / HELD / SOLD) and row version."""

    status: str
    version: int


@dataclass
class EventState:
    """One event's availability: seats, counts per section and price level, and totals."""

    seats: dict[int, SeatTruth] = field(default_factory=dict)
    sections: dict[SectionKey, Counts] = field(default_factory=dict)
    totals: Counts = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SeatDifference:
    seat_id: int
    kind: Kind
    database: SeatTruth | None
    published: SeatTruth | None

    def __str__(self) -> str:
        def show(s: SeatTruth | None) -> str:
            return "absent" if s is None else f"{s.status} v{s.version}"
        return (f"seat {self.seat_id}: {self.kind} (database {show(self.database)}, "
                f"published {show(self.published)})")


@dataclass(frozen=True, slots=True)
class CountDifference:
    what: str  # "section 101 level 7" or "event"
    database: Counts
    published: Counts

    def __str__(self) -> str:
        return f"{self.what}: database {self.database}, published {self.published}"


@dataclass(frozen=True)
class Reconciliation:
    event_id: int
    seats: int  # seats of the event in the database
    seat_differences: list[SeatDifference]
    count_differences: list[CountDifference]

    @property
    def passed(self) -> bool:
        return not self.seat_differences and not self.count_differences

    def summary(self) -> str:
        if self.passed:
            return f"event {self.event_id}: {self.seats:,} seats, in agreement"
        kinds = Counter(d.kind for d in self.seat_differences)
        seats = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
        return (f"event {self.event_id}: {self.seats:,} seats; seat differences: {seats}; "
                f"count differences: {len(self.count_differences)}")

    def report(self, *, limit: int = 10) -> str:
        """A short report: the summary, then up to `limit` lines of each kind of difference."""
        lines = [self.summary()]
        lines += [f"  {d}" for d in self.seat_differences[:limit]]
        if len(self.seat_differences) > limit:
            lines.append(f"  ... and {len(self.seat_differences) - limit} more seats")
        lines += [f"  {d}" for d in self.count_differences[:limit]]
        if len(self.count_differences) > limit:
            lines.append(f"  ... and {len(self.count_differences) - limit} more counts")
        return "\n".join(lines)


def _counts(counter: Mapping[str, int]) -> Counts:
    return {k: v for k, v in sorted(counter.items()) if v}


def seat_differences(database: Mapping[int, SeatTruth],
                     published: Mapping[int, SeatTruth]) -> list[SeatDifference]:
    """Seats whose published state is not the database's (pure).

    The database is read first: a published version above the database's is a change committed
    since, not a difference; one below it is `behind` (lost, or still in flight).
    """
    out = []
    for seat_id in sorted(database.keys() | published.keys()):
        want, got = database.get(seat_id), published.get(seat_id)
        if want is None:
            out.append(SeatDifference(seat_id, "unexpected", None, got))
        elif got is None:
            out.append(SeatDifference(seat_id, "missing", want, None))
        elif got.version < want.version:
            out.append(SeatDifference(seat_id, "behind", want, got))
        elif got.version == want.version and got.status != want.status:
            out.append(SeatDifference(seat_id, "wrong", want, got))
    return out


def count_differences(database: EventState, published: EventState) -> list[CountDifference]:
    """Sections (and the event's totals) whose open / held / sold counts differ (pure)."""
    out = []
    for key in sorted(database.sections.keys() | published.sections.keys()):
        want = _counts(database.sections.get(key, {}))
        got = _counts(published.sections.get(key, {}))
        if want != got:
            out.append(CountDifference(f"section {key[0]} level {key[1]}", want, got))
    want, got = _counts(database.totals), _counts(published.totals)
    if want != got:
        out.append(CountDifference("event", want, got))
    return out


def reconcile_event(event_id: int, database: EventState, published: EventState) -> Reconciliation:
    """Seat by seat, then the counts (pure)."""
    return Reconciliation(event_id, len(database.seats),
                          seat_differences(database.seats, published.seats),
                          count_differences(database, published))


def db_state(settings: Settings, event_ids: Iterable[int]) -> dict[int, EventState]:
    """Every seat of the events, with the counts derived from them, as the database has them."""
    ids = sorted(set(event_ids))
    states = {e: EventState() for e in ids}
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT i.event_id, i.seat_id, upper(i.status), i.version, sec.code, i.price_level_id"
            " FROM ticketing.seat_inventory i JOIN ticketing.seats s USING (seat_id)"
            " JOIN ticketing.sections sec USING (section_id)"
            " WHERE i.event_id = ANY(%s)", (ids,))
        for event_id, seat_id, status, version, section, level in cur:
            state = states[event_id]
            state.seats[seat_id] = SeatTruth(status, version)
            counts = state.sections.setdefault((section, level), {})
            counts[status] = counts.get(status, 0) + 1
            state.totals[status] = state.totals.get(status, 0) + 1
    return states


def latest_values(settings: Settings, topic: str, keep: Callable[[dict], bool], *,
                  decoder: AvroDecoder | None = None) -> dict[tuple, dict | None]:
    """The newest value (None for a tombstone) of every kept key of a compacted topic."""
    # A key's bytes never change: each is decoded once, and only each key's last value is.
    decoder = decoder or AvroDecoder(SchemaRegistryClient({"url": settings.ccompat_url,
                                                           "timeout": 10}))
    keys: dict[bytes, tuple | None] = {}
    latest_raw: dict[tuple, bytes | None] = {}

    def fold(msg: Message) -> None:
        raw = msg.key() or b""
        if raw not in keys:
            key = decoder.decode(raw)
            keys[raw] = tuple(key.values()) if keep(key) else None
        kept = keys[raw]
        if kept is not None:
            latest_raw[kept] = msg.value()

    read_topic(settings.kafka_bootstrap, topic, fold, purpose="reconcile")
    return {key: decoder.decode(raw) for key, raw in latest_raw.items()}


def published_state(settings: Settings, event_ids: Iterable[int]) -> dict[int, EventState]:
    """The events' availability as the seat, section and event topics publish it (read committed)."""
    ids = set(event_ids)
    states = {e: EventState() for e in ids}
    decoder = AvroDecoder(SchemaRegistryClient({"url": settings.ccompat_url, "timeout": 10}))

    def ours(key: dict) -> bool:
        return key["event_id"] in ids

    for (event_id, seat_id), value in latest_values(settings, SEAT_AVAILABILITY, ours,
                                                    decoder=decoder).items():
        if value is not None:
            states[event_id].seats[seat_id] = SeatTruth(value["status"], value["source_version"])
    for (event_id, section, level), value in latest_values(settings, SECTION_AVAILABILITY, ours,
                                                           decoder=decoder).items():
        if value is not None:
            states[event_id].sections[(section, level)] = _counts(
                {"OPEN": value["open"], "HELD": value["held"], "SOLD": value["sold"]})
    for (event_id,), value in latest_values(settings, EVENT_AVAILABILITY, ours,
                                                  decoder=decoder).items():
        if value is not None:
            states[event_id].totals = _counts(
                {"OPEN": value["open"], "HELD": value["held"], "SOLD": value["sold"]})
    return states


def event_ids(settings: Settings, *, status: str | None = None) -> list[int]:
    """The events of the ticketing host, or those with the given status."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        rows = conn.execute("SELECT event_id FROM ticketing.events"
                            " WHERE %(status)s::text IS NULL OR status = %(status)s"
                            " ORDER BY event_id", {"status": status}).fetchall()
    return [r[0] for r in rows]


def on_sale_events(settings: Settings) -> list[int]:
    """Events whose seats are on sale now."""
    return event_ids(settings, status="on_sale")


def _persisting(now: Reconciliation, before: Reconciliation | None) -> Reconciliation:
    """Keep only the differences that were there, the same, at the previous attempt too."""
    if before is None:
        return now
    earlier = set(before.seat_differences)
    earlier_counts = {_count_key(d) for d in before.count_differences}
    return Reconciliation(
        now.event_id, now.seats,
        [d for d in now.seat_differences if d in earlier],
        [d for d in now.count_differences if _count_key(d) in earlier_counts])


def _count_key(d: CountDifference) -> tuple:
    return d.what, tuple(d.database.items()), tuple(d.published.items())


def reconcile_events(settings: Settings, event_ids: Iterable[int], *, attempts: int = 3,
                     wait_s: float = 2.0) -> dict[int, Reconciliation]:
    """Reconcile events; while changes stream in, a difference counts only when it persists
    from one attempt to the next (a change in flight is gone by then)."""
    pending = sorted(set(event_ids))
    results: dict[int, Reconciliation] = {}
    previous: dict[int, Reconciliation] = {}
    for attempt in range(1, attempts + 1):
        database = db_state(settings, pending)  # first: a newer published version is fine
        published = published_state(settings, pending)
        for event_id in pending:
            now = reconcile_event(event_id, database[event_id], published[event_id])
            results[event_id] = _persisting(now, previous.get(event_id)) if attempt > 1 else now
            previous[event_id] = now
        pending = [e for e in pending if not results[e].passed]
        if not pending:
            break
        if attempt < attempts:
            log.info("attempt %d: %d event(s) differ; checking again in %.0f s",
                     attempt, len(pending), wait_s * attempt)
            time.sleep(wait_s * attempt)
    return results
