"""Reconciliation: the availability topics' state of an event against the ticketing host's.

Seat by seat first (status and version of every seat), then the section and event counts. The
comparisons are pure; `reconcile_events` does the reading, with retries for changes in flight,
and `steady_differences` tells drift from changes in flight, one difference at a time.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import psycopg
from confluent_kafka import Message

from pipelines.avro import AvroDecoder, registry_client
from pipelines.kafka.reading import read_topic
from pipelines.kafka.topics import EVENT_AVAILABILITY, SEAT_AVAILABILITY, SECTION_AVAILABILITY
from pipelines.settings import Settings

__all__ = [
    "Attempt",
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
    "steady_differences",
]

log = logging.getLogger(__name__)

# (section_code, price_level_id) within one event; the processor's aggregate.SectionKey also
# names the event.
SectionPrice = tuple[str, int]
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
    sections: dict[SectionPrice, Counts] = field(default_factory=dict)
    totals: Counts = field(default_factory=dict)
    # The database's side only: it lets a section's count gap be weighed against the seats that
    # moved, which is how a gap in flight is told from drift while a sale goes on.
    seat_sections: dict[int, SectionPrice] = field(default_factory=dict)


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
    return [d for _, d in _keyed_count_differences(database, published)]


def _keyed_count_differences(database: EventState, published: EventState
                             ) -> Iterator[tuple[SectionPrice | None, CountDifference]]:
    """count_differences with each one's section key (None for the event's totals)."""
    for key in sorted(database.sections.keys() | published.sections.keys()):
        want = _counts(database.sections.get(key, {}))
        got = _counts(published.sections.get(key, {}))
        if want != got:
            yield key, CountDifference(f"section {key[0]} level {key[1]}", want, got)
    want, got = _counts(database.totals), _counts(published.totals)
    if want != got:
        yield None, CountDifference("event", want, got)


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
            state.seat_sections[seat_id] = (section, level)
            counts = state.sections.setdefault((section, level), {})
            counts[status] = counts.get(status, 0) + 1
            state.totals[status] = state.totals.get(status, 0) + 1
    return states


def latest_values(settings: Settings, topic: str, keep: Callable[[dict], bool], *,
                  decoder: AvroDecoder | None = None) -> dict[tuple, dict | None]:
    """The newest value (None for a tombstone) of every kept key of a compacted topic."""
    # A key's bytes never change: each is decoded once, and only each key's last value is.
    decoder = decoder or AvroDecoder(registry_client(settings))
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

    read_topic(settings, topic, fold, purpose="reconcile")
    return {key: decoder.decode(raw) for key, raw in latest_raw.items()}


def published_state(settings: Settings, event_ids: Iterable[int]) -> dict[int, EventState]:
    """The events' availability as the seat, section and event topics publish it (read committed)."""
    ids = set(event_ids)
    states = {e: EventState() for e in ids}
    decoder = AvroDecoder(registry_client(settings))

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


@dataclass(frozen=True)
class Attempt:
    """One attempt's reads of an event: the database, then the topics, then the database again."""

    before: EventState
    published: EventState
    after: EventState


# Why two database reads an attempt, and what "steady" means.
#
# The topics are read after the database and over seconds, so at attempt k they show the
# database as it was at some moment (one per topic, since they are read one after another)
# that is not after attempt k's second database read (`after`): nothing can be published
# before it is committed. And, since the wait between attempts is longer than the processor's
# lag, that moment is not before attempt k-1's second read: whatever was committed by then
# has been published by now. So the topics' state at attempt k is one the database had within
# [k-1's after, k's after], a window of which three states are known: k-1's after, k's before,
# k's after. A difference that no state of that window can produce is not in flight: the
# same seat still wrong, the same count still off, a whole wait later.
#
# Versions make this work seat by seat: seat_inventory.version grows by one on every update,
# so a version names one state of the seat. What three reads cannot see is assumed not to
# happen within one wait: a row both inserted and deleted, in either order (seed --reset does
# it: a re-insert whose versions fall below the old is seen and let be, one whose versions
# climb back past them is not), and a seat leaving its price level and coming back (no writer
# changes a seat's price level). Counts follow from the seats: those that did not move must be
# counted as they are, those that moved in any status, and no more of them than moved.


def steady_differences(event_id: int, earlier: Attempt, now: Attempt) -> Reconciliation:
    """The differences of `now` that are drift, not changes in flight (pure).

    A difference is kept when it was there at the `earlier` attempt too (the seat, or the
    section's or event's counts, differed then, whatever the values) and the topics at `now`
    show something the database did not have at any moment since `earlier.after` was read.
    Differences that change or vanish between attempts are kept as long as that holds: a seat
    that moves but stays wrong, or a count gap in a section whose other seats are busy.
    """
    reads = (earlier.after, now.before, now.after)
    seen_seats = {d.seat_id for d in seat_differences(earlier.before.seats, earlier.published.seats)}
    seats = [d for d in seat_differences(now.before.seats, now.published.seats)
             if d.seat_id in seen_seats
             and _seat_drifted([r.seats.get(d.seat_id) for r in reads], d.published)]

    seen_counts = {key for key, _ in _keyed_count_differences(earlier.before, earlier.published)}
    keyed = list(_keyed_count_differences(now.before, now.published))
    sections, totals = _window_bounds(reads)
    # Counts read without their seats (states built from counts alone) leave only the values
    # as evidence: such a gap is steady when neither side of it moved between the attempts.
    seated = all(r.seats or not (r.sections or r.totals) for r in reads)
    mapped = seated and all(r.seats.keys() <= r.seat_sections.keys() for r in reads)
    earlier_counts = dict(_keyed_count_differences(earlier.before, earlier.published))
    counts = []
    for key, d in keyed:
        if key not in seen_counts:
            continue
        if key is None and seated:
            drifted = not totals.explains(d.published)
        elif key is not None and mapped:
            drifted = not sections.get(key, _Bounds()).explains(d.published)
        else:
            drifted = earlier_counts[key] == d
        if drifted:
            counts.append(d)
    return Reconciliation(event_id, len(now.before.seats), seats, counts)


def _seat_drifted(known: Sequence[SeatTruth | None], published: SeatTruth | None) -> bool:
    """Whether `published` is a state the seat cannot have had in the window of which `known`
    are the three states read."""
    first = known[0]
    if all(k == first for k in known):
        return published != first
    if first is None or any(k is None for k in known):
        return False  # inserted or deleted within the window: its states there are unknown
    versions = [k.version for k in known if k is not None]
    if versions != sorted(versions):
        return False  # inserted again, versions restarted: they no longer order its states
    if published is None:
        return True  # the seat existed all through the window
    if published.version < first.version:
        return True  # older than a state the topics must have reached
    return any(k is not None and k.version == published.version and k.status != published.status
               for k in known)


@dataclass
class _Bounds:
    """What the seats of a section (or event) allow its counts to be within the window."""

    fixed: Counter[str] = field(default_factory=Counter)  # seats that did not move, by status
    must: int = 0  # seats that moved but were there all along, in some status
    may: int = 0  # seats that moved and may be there, in any status

    def explains(self, published: Mapping[str, int]) -> bool:
        extra = [published.get(s, 0) - self.fixed[s] for s in published.keys() | self.fixed.keys()]
        return all(n >= 0 for n in extra) and self.must <= sum(extra) <= self.may


def _window_bounds(reads: Sequence[EventState]) -> tuple[dict[SectionPrice, _Bounds], _Bounds]:
    """The counts each section, and the event, can have had within the window read as `reads`."""
    sections: dict[SectionPrice, _Bounds] = {}
    totals = _Bounds()
    for seat_id in set().union(*(r.seats.keys() for r in reads)):
        states = [r.seats.get(seat_id) for r in reads]
        keys = {r.seat_sections.get(seat_id) for r in reads if seat_id in r.seats}
        known_keys = [k for k in keys if k is not None]
        first = states[0]
        if first is not None and all(s == first for s in states) and len(keys) == 1:
            totals.fixed[first.status] += 1
            for key in known_keys:
                sections.setdefault(key, _Bounds()).fixed[first.status] += 1
            continue
        versions = [s.version for s in states if s is not None]
        throughout = len(versions) == len(states) and versions == sorted(versions)
        totals.may += 1
        totals.must += throughout
        for key in known_keys:
            bounds = sections.setdefault(key, _Bounds())
            bounds.may += 1
            bounds.must += throughout and len(keys) == 1
    return sections, totals


def reconcile_events(settings: Settings, event_ids: Iterable[int], *, attempts: int = 3,
                     wait_s: float = 2.0) -> dict[int, Reconciliation]:
    """Reconcile events; while changes stream in, a difference counts only when it is steady
    from one attempt to the next (see `steady_differences`): a change in flight is published
    by then, a steady drift is not, however busy the seats around it are."""
    pending = sorted(set(event_ids))
    results: dict[int, Reconciliation] = {}
    previous: dict[int, Attempt] = {}
    for attempt in range(1, attempts + 1):
        before = db_state(settings, pending)  # first: a newer published version is fine
        published = published_state(settings, pending)
        # Last: bounds what the topics just read can hold. One attempt alone has no use for it.
        after = db_state(settings, pending) if attempts > 1 else before
        for event_id in pending:
            now = Attempt(before[event_id], published[event_id], after[event_id])
            earlier = previous.get(event_id)
            results[event_id] = (reconcile_event(event_id, now.before, now.published)
                                 if earlier is None else steady_differences(event_id, earlier, now))
            previous[event_id] = now
        pending = [e for e in pending if not results[e].passed]
        if not pending:
            break
        if attempt < attempts:
            log.info("attempt %d: %d event(s) differ; checking again in %.0f s",
                     attempt, len(pending), wait_s * attempt)
            time.sleep(wait_s * attempt)
    return results
