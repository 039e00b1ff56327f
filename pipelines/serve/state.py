"""The availability that `seatflow serve` holds in memory, and the change log its streams read.

Pure: records go in as decoded values (the follower decodes them), snapshots and changes come
out as JSON-ready dicts; no I/O, no clock. One lock (the follower writes, the web handlers
read) is the caller's business: `ServeState.lock`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "CHANGE_LOG_SIZE",
    "Change",
    "EventView",
    "Seat",
    "SectionCount",
    "ServeState",
    "Totals",
    "epoch_ms",
]

# Changes kept per event for streams to resume from: an on-sale's 2,000 changes/s of one event
# give a reconnecting client 10 s; one further behind gets a fresh snapshot.
CHANGE_LOG_SIZE = 20_000
ChangeKind = Literal["seat", "section", "event"]


def epoch_ms(value: Any) -> int | None:
    """A timestamp as milliseconds since the epoch: fastavro gives timestamp-millis as an aware
    datetime, the native decoder as an int."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def _price(value: Any) -> str | None:
    # Exact decimals as strings: JSON numbers would pass prices through binary floats.
    return None if value is None else str(value if isinstance(value, Decimal) else Decimal(value))


@dataclass(frozen=True, slots=True)
class Seat:
    """A seat of an event as the newest seat-availability record says."""

    seat_id: int
    status: str  # OPEN / HELD / SOLD
    section_code: str | None
    row_label: str | None
    seat_number: int | None
    price_level_id: int | None
    price_level_code: str | None
    price: str | None
    version: int
    lsn: int | None
    source_committed_at: int | None

    def place(self) -> tuple[Any, ...]:
        """Where the seat is and what it costs: what a status change leaves as it was."""
        return (self.section_code, self.row_label, self.seat_number, self.price_level_id,
                self.price_level_code, self.price)

    def json(self) -> dict[str, Any]:
        return {"seat_id": self.seat_id, "status": self.status, "section_code": self.section_code,
                "row_label": self.row_label, "seat_number": self.seat_number,
                "price_level_id": self.price_level_id, "price_level_code": self.price_level_code,
                "price": self.price, "version": self.version,
                "source_committed_at": self.source_committed_at}


@dataclass(frozen=True, slots=True)
class SectionCount:
    """Open, held and sold seats of one price level of one section (a section-availability
    record)."""

    section_code: str
    price_level_id: int
    open: int
    held: int
    sold: int
    lowest_open_price: str | None
    source_committed_at: int | None

    def json(self) -> dict[str, Any]:
        return {"section_code": self.section_code, "price_level_id": self.price_level_id,
                "open": self.open, "held": self.held, "sold": self.sold,
                "lowest_open_price": self.lowest_open_price,
                "source_committed_at": self.source_committed_at}


@dataclass(frozen=True, slots=True)
class Totals:
    """An event's seat totals (an event-availability record)."""

    open: int
    held: int
    sold: int
    total: int
    source_committed_at: int | None

    def json(self) -> dict[str, Any]:
        return {"open": self.open, "held": self.held, "sold": self.sold, "total": self.total,
                "source_committed_at": self.source_committed_at}


@dataclass(frozen=True, slots=True)
class Change:
    """One change of an event, in the order applied; `id` grows across all events (SSE `id:`).
    `data` is the new value with its version, or `deleted`."""

    id: int
    event_id: int
    kind: ChangeKind
    # What the change replaces: the seat id, the (section, price level), or None for totals.
    key: Hashable
    data: dict[str, Any]
    # What the stream sends, as JSON made once (in the follower's thread) for every stream:
    # `data`, or for a seat whose place and price are unchanged only what a fan needs
    # ([seat_id, status, version, source_committed_at]): a crowd of streams is bandwidth.
    payload: str


@dataclass
class EventView:
    """Everything known of one event, and the tail of its changes."""

    seats: dict[int, Seat] = field(default_factory=dict)
    # Deleted seats: their last version (and the delete's LSN), so an older record that comes
    # later does not bring them back.
    deleted: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    sections: dict[tuple[str, int], SectionCount] = field(default_factory=dict)
    totals: Totals | None = None
    log: deque[Change] = field(default_factory=lambda: deque(maxlen=CHANGE_LOG_SIZE))
    # The id of the newest change that fell out of `log`: a client that saw less has a gap.
    evicted_through: int = 0
    newest_committed_at: int | None = None

    def sections_summary(self) -> list[dict[str, Any]]:
        """Per section (all its price levels): open, held, sold and the lowest open price."""
        summary: dict[str, dict[str, Any]] = {}
        for count in self.sections.values():
            row = summary.setdefault(count.section_code, {
                "section_code": count.section_code, "open": 0, "held": 0, "sold": 0,
                "lowest_open_price": None, "price_levels": []})
            row["open"] += count.open
            row["held"] += count.held
            row["sold"] += count.sold
            low = count.lowest_open_price
            if count.open and low is not None and (
                    row["lowest_open_price"] is None
                    or Decimal(low) < Decimal(row["lowest_open_price"])):
                row["lowest_open_price"] = low
            row["price_levels"].append(count.json())
        return [summary[code] for code in sorted(summary, key=_section_order)]


def _section_order(code: str) -> tuple[int, int | str]:
    # Numeric section codes in number order (9 before 10), others after, by name.
    return (0, int(code)) if code.isdigit() else (1, code)


def is_newer(version: int, lsn: int | None, seen_version: int, seen_lsn: int | None) -> bool:
    """Whether a seat record replaces what is held: LSNs order a seat's streamed changes (a seat
    deleted and inserted again starts at version 1), versions order the rest. The same version
    again is applied (a backfill republishes it to repair), an older one never."""
    if lsn is not None and seen_lsn is not None:
        return lsn >= seen_lsn
    return version >= seen_version


class ServeState:
    """The availability of every event, as the availability topics have it."""

    def __init__(self, *, log_size: int = CHANGE_LOG_SIZE) -> None:
        self.lock = threading.Lock()
        self.events: dict[int, EventView] = {}
        self._log_size = log_size
        self.last_id = 0

    def _view(self, event_id: int) -> EventView:
        view = self.events.get(event_id)
        if view is None:
            view = self.events[event_id] = EventView(log=deque(maxlen=self._log_size))
        return view

    def _record(self, view: EventView, event_id: int, kind: ChangeKind, key: Hashable,
                data: dict[str, Any], committed_at: int | None,
                brief: list[Any] | None = None) -> Change:
        self.last_id += 1
        data = {**data, "seq": self.last_id}
        payload = json.dumps(data if brief is None else brief, separators=(",", ":"))
        change = Change(self.last_id, event_id, kind, key, data, payload)
        if view.log.maxlen is not None and len(view.log) == view.log.maxlen:
            view.evicted_through = view.log[0].id
        view.log.append(change)
        if committed_at is not None and (view.newest_committed_at is None
                                         or committed_at > view.newest_committed_at):
            view.newest_committed_at = committed_at
        return change

    def apply_seat(self, event_id: int, seat_id: int, value: Mapping[str, Any] | None, *,
                   deleted: tuple[int, int | None] | None = None) -> Change | None:
        """A seat-availability record: `value` (decoded), or None for a tombstone whose
        `seatflow.deleted` header gave `deleted` (version, LSN). The change, or None when the
        record is older than (or the same as) what is held."""
        view = self._view(event_id)
        held = view.seats.get(seat_id)
        if value is None:
            if held is None:
                # Nothing to delete (or deleted already): remembered, so that an older record
                # read later does not bring the seat back.
                gone = view.deleted.get(seat_id)
                if deleted is not None and (gone is None or is_newer(*deleted, *gone)):
                    view.deleted[seat_id] = deleted
                return None
            if deleted is not None and not is_newer(deleted[0], deleted[1], held.version, held.lsn):
                return None
            del view.seats[seat_id]
            version = deleted[0] if deleted is not None else held.version
            view.deleted[seat_id] = (version, deleted[1] if deleted is not None else held.lsn)
            return self._record(view, event_id, "seat", seat_id,
                                {"seat_id": seat_id, "version": version, "deleted": True}, None)
        version = int(value["source_version"])
        lsn = value.get("source_lsn")
        if held is not None:
            if not is_newer(version, lsn, held.version, held.lsn):
                return None
        elif seat_id in view.deleted:
            gone_version, gone_lsn = view.deleted[seat_id]
            # Only a change after the delete brings the seat back (the delete carries the
            # deleted row's last version: that version again is older).
            after = (lsn > gone_lsn if lsn is not None and gone_lsn is not None
                     else version > gone_version)
            if not after:
                return None
            del view.deleted[seat_id]
        seat = Seat(seat_id=seat_id, status=str(value["status"]),
                    section_code=value.get("section_code"), row_label=value.get("row_label"),
                    seat_number=value.get("seat_number"),
                    price_level_id=value.get("price_level_id"),
                    price_level_code=value.get("price_level_code"),
                    price=_price(value.get("price")), version=version, lsn=lsn,
                    source_committed_at=epoch_ms(value.get("source_committed_at")))
        if seat == held:
            return None  # redelivered: nothing to tell anyone
        view.seats[seat_id] = seat
        brief = None
        if held is not None and held.place() == seat.place():
            brief = [seat_id, seat.status, version, seat.source_committed_at]
        return self._record(view, event_id, "seat", seat_id, seat.json(),
                            seat.source_committed_at, brief)

    def apply_section(self, event_id: int, section_code: str, price_level_id: int,
                      value: Mapping[str, Any] | None) -> Change | None:
        """A section-availability record (None: a tombstone); counts carry no version: the
        topic's order is theirs, so the newest record wins."""
        view = self._view(event_id)
        key = (section_code, price_level_id)
        if value is None:
            if view.sections.pop(key, None) is None:
                return None
            return self._record(view, event_id, "section", key, {
                "section_code": section_code, "price_level_id": price_level_id,
                "deleted": True}, None)
        count = SectionCount(section_code, price_level_id, int(value["open"]),
                             int(value["held"]), int(value["sold"]),
                             _price(value.get("lowest_open_price")),
                             epoch_ms(value.get("source_committed_at")))
        if view.sections.get(key) == count:
            return None
        view.sections[key] = count
        return self._record(view, event_id, "section", key, count.json(),
                            count.source_committed_at)

    def apply_event(self, event_id: int, value: Mapping[str, Any] | None) -> Change | None:
        """An event-availability record (None: a tombstone); the newest record wins."""
        view = self._view(event_id)
        if value is None:
            if view.totals is None:
                return None
            view.totals = None
            return self._record(view, event_id, "event", None, {"deleted": True}, None)
        totals = Totals(int(value["open"]), int(value["held"]), int(value["sold"]),
                        int(value["total"]), epoch_ms(value.get("source_committed_at")))
        if totals == view.totals:
            return None
        view.totals = totals
        return self._record(view, event_id, "event", None, totals.json(),
                            totals.source_committed_at)

    def changes_since(self, event_id: int, last_id: int) -> list[Change] | None:
        """The event's changes after `last_id`, oldest first; None when some of them are no
        longer kept (or `last_id` is not one this state gave out): the client needs a snapshot."""
        if last_id > self.last_id or last_id < 0:
            return None
        view = self.events.get(event_id)
        if view is None:
            return []
        if last_id < view.evicted_through:
            return None
        newer: list[Change] = []
        for change in reversed(view.log):
            if change.id <= last_id:
                break
            newer.append(change)
        newer.reverse()
        return newer

    def newest_id(self, event_id: int) -> int:
        """The id of the event's newest change (0: none kept). Safe without the lock: a deque's
        last item is read atomically, and a change read a moment late is read next time."""
        view = self.events.get(event_id)
        log = view.log if view is not None else None
        return log[-1].id if log else 0

    def snapshot(self, event_id: int) -> dict[str, Any] | None:
        """Everything known of an event, with the id of its newest change (None: unknown)."""
        view = self.events.get(event_id)
        if view is None:
            return None
        return {"event_id": event_id, "seq": self.last_id, **self.summary(event_id, view),
                "seats": [s.json() for s in sorted(view.seats.values(), key=_seat_order)]}

    def summary(self, event_id: int, view: EventView | None = None) -> dict[str, Any]:
        """An event's totals and sections (no seats)."""
        view = view or self.events[event_id]
        return {"event_id": event_id,
                "totals": view.totals.json() if view.totals else None,
                "sections": view.sections_summary(), "seats": len(view.seats),
                "updated_at": view.newest_committed_at}

    def seats(self, event_id: int, section: str | None = None) -> list[Seat] | None:
        """An event's seats (of one section), by section, row and number; None: unknown event."""
        view = self.events.get(event_id)
        if view is None:
            return None
        chosen: Iterable[Seat] = view.seats.values()
        if section is not None:
            chosen = (s for s in chosen if s.section_code == section)
        return sorted(chosen, key=_seat_order)


def _seat_order(seat: Seat) -> tuple[Any, ...]:
    return (_section_order(seat.section_code or ""), seat.row_label or "", seat.seat_number or 0,
            seat.seat_id)
