"""The processor's state machine: seats, counts, deletes, truncates, redeliveries (pure)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.processor.aggregate import Availability, Deleted
from pipelines.processor.core import SeatChange, SeatState, state_of_record
from pipelines.processor.reference import EventRef, PriceLevelRef, Reference, SeatRef, SectionRef
from pipelines.processor.step import (
    Applied,
    Duplicate,
    Unresolved,
    apply_change,
    apply_truncate,
    undo,
)

pytestmark = pytest.mark.unit

SEATS = range(1, 9)
REFERENCE = Reference(
    events={1: EventRef("e", "on_sale")},
    sections={10: SectionRef("101"), 20: SectionRef("102")},
    seats={s: SeatRef(10 if s % 2 else 20, "A", s) for s in SEATS},
    price_levels={1: PriceLevelRef(1, "P1", Decimal("50.00")), 2: PriceLevelRef(1, "P2", Decimal("80.00"))},
)
NEXT = {"OPEN": ["HELD"], "HELD": ["OPEN", "SOLD"], "SOLD": ["OPEN"]}
STATUSES = ["OPEN", "HELD", "SOLD"]


def change(seat: int, status: str, version: int, *, level: int = 1, op: str = "u",
           lsn: int | None = None) -> SeatChange:
    expires = datetime(2030, 1, 1, tzinfo=UTC) if status == "HELD" else None
    price = Decimal("50.00") if level == 1 else Decimal("80.00")
    return SeatChange(op, 1, seat, None if op == "d" else status, level, price, expires, version,
                      lsn, 1_000, False)  # type: ignore[arg-type]


def apply(c: SeatChange, availability: Availability, **kw: bool) -> object:
    return apply_change(c, availability, REFERENCE, published_at_ms=0, **kw)


def test_counts_and_lowest_open_price_follow_each_change() -> None:
    availability = Availability()
    for seat, level in [(1, 1), (3, 2), (5, 2)]:
        apply(change(seat, "OPEN", 1, level=level), availability)
    section = availability.sections[(1, "101", 2)]
    assert (section.open, section.lowest_open_price()) == (2, Decimal("80.00"))
    apply(change(1, "HELD", 2), availability)
    assert availability.sections[(1, "101", 1)].lowest_open_price() is None
    assert availability.event_value(1, as_of_ms=5, committed_at_ms=4) == {
        "event_id": 1, "open": 2, "held": 1, "sold": 0, "total": 3, "as_of": 5,
        "source_committed_at": 4}


def test_older_or_repeated_versions_are_duplicates() -> None:
    availability = Availability()
    apply(change(1, "OPEN", 1), availability)
    apply(change(1, "HELD", 2), availability)
    assert isinstance(apply(change(1, "HELD", 2), availability), Duplicate)
    assert isinstance(apply(change(1, "OPEN", 1), availability), Duplicate)
    assert availability.seats[(1, 1)].status == "HELD"


def test_a_box_office_sale_is_published_with_an_anomaly() -> None:
    """open -> sold with no hold: the database decides; the rule is reported, not enforced."""
    availability = Availability()
    apply(change(1, "OPEN", 1), availability)
    verdict = apply(change(1, "SOLD", 2), availability)
    assert isinstance(verdict, Applied)
    assert [a.rule for a in verdict.anomalies] == ["illegal_transition"]
    assert verdict.record_value is not None and verdict.record_value["status"] == "SOLD"
    assert availability.seats[(1, 1)].status == "SOLD"
    assert availability.sections[(1, "101", 1)].sold == 1


def test_an_expired_hold_is_published_and_its_sale_too() -> None:
    availability = Availability()
    apply(change(1, "OPEN", 1), availability)
    expired = change(1, "HELD", 2)._replace(hold_expires_at=datetime(1970, 1, 1, tzinfo=UTC))
    verdict = apply(expired, availability)
    assert isinstance(verdict, Applied) and [a.rule for a in verdict.anomalies] == ["hold_expiry"]
    sold = apply(change(1, "SOLD", 3), availability)
    assert isinstance(sold, Applied) and sold.anomalies == ()
    assert availability.seats[(1, 1)].status == "SOLD"


def test_an_unknown_reference_waits_then_is_published_with_an_anomaly() -> None:
    availability = Availability()
    assert isinstance(apply(change(99, "OPEN", 1), availability), Unresolved)
    assert availability.seats == {}
    verdict = apply(change(99, "OPEN", 1), availability, give_up_waiting=True)
    assert isinstance(verdict, Applied)
    assert [a.rule for a in verdict.anomalies] == ["unresolved_reference"]
    assert verdict.record_value is not None and verdict.record_value["section_code"] is None
    assert availability.seats[(1, 99)].section_code == "?"


def test_a_finer_price_than_published_is_rounded_and_reported() -> None:
    availability = Availability()
    verdict = apply(change(1, "OPEN", 1)._replace(price=Decimal("50.125")), availability)
    assert isinstance(verdict, Applied) and [a.rule for a in verdict.anomalies] == ["price_scale"]
    assert verdict.record_value is not None and verdict.record_value["price"] == Decimal("50.12")


def test_delete_removes_the_seat_and_a_repeated_delete_is_a_duplicate() -> None:
    availability = Availability()
    apply(change(1, "OPEN", 1, lsn=10), availability)
    verdict = apply(change(1, "OPEN", 1, op="d", lsn=20), availability)
    assert isinstance(verdict, Applied) and verdict.record_value is None
    assert isinstance(apply(change(1, "OPEN", 1, op="d", lsn=20), availability), Duplicate)
    assert availability.events[1].total == 0
    assert availability.deleted == {(1, 1): Deleted(1, 20)}


def test_a_stale_redelivery_after_a_delete_does_not_bring_the_seat_back() -> None:
    availability = Availability()
    apply(change(1, "OPEN", 1, lsn=10), availability)
    apply(change(1, "HELD", 2, lsn=15), availability)
    apply(change(1, "HELD", 2, op="d", lsn=20), availability)
    assert isinstance(apply(change(1, "HELD", 2, lsn=15), availability), Duplicate)
    assert (1, 1) not in availability.seats
    # Inserted again (version 1 again, but a later LSN): that one is real.
    assert isinstance(apply(change(1, "OPEN", 1, op="c", lsn=30), availability), Applied)
    assert availability.seats[(1, 1)].version == 1 and (1, 1) not in availability.deleted


def test_the_delete_memory_is_bounded() -> None:
    availability = Availability(deleted_limit=3)
    for seat in SEATS:
        apply(change(seat, "OPEN", 1, lsn=seat), availability)
        apply(change(seat, "OPEN", 1, op="d", lsn=100 + seat), availability)
    assert list(availability.deleted) == [(1, 6), (1, 7), (1, 8)]


def test_a_truncate_deletes_every_seat_and_zeroes_the_counts() -> None:
    availability = Availability()
    for seat in SEATS:
        apply(change(seat, "OPEN", 1, lsn=seat), availability)
    applied = apply_truncate(availability, version=0, lsn=50)
    assert len(applied) == len(SEATS) and all(a.new is None for a in applied)
    assert availability.seats == {} and availability.events[1].total == 0
    assert all(c.total == 0 for c in availability.sections.values())
    assert isinstance(apply(change(3, "HELD", 2, lsn=40), availability), Duplicate)
    assert isinstance(apply(change(3, "OPEN", 1, op="c", lsn=60), availability), Applied)
    # The truncate redelivered later: the seat inserted after it stays.
    assert apply_truncate(availability, version=0, lsn=50) == []


# --- histories against a model of the database -------------------------------------------------

@st.composite
def db_histories(draw: st.DrawFn) -> tuple[list[tuple[str, SeatChange | int]], dict]:
    """What a ticketing host commits, in commit order (LSNs grow), as Debezium delivers it:
    legal and illegal transitions, deletes, re-inserts at version 1, truncates, and
    redeliveries of earlier changes (at least once). Returns the deliveries and the final
    database: seat -> (status, version)."""
    db: dict[int, tuple[str, int]] = {}
    deliveries: list[tuple[str, SeatChange | int]] = []
    for lsn in range(1, draw(st.integers(0, 80)) + 1):
        seat = draw(st.sampled_from(list(SEATS)))
        level = 1 + seat % 2
        kind = draw(st.sampled_from(["update", "update", "update", "delete", "truncate"]))
        item: tuple[str, SeatChange | int]
        if seat not in db and kind != "truncate":
            db[seat] = ("OPEN", 1)
            item = ("change", change(seat, "OPEN", 1, level=level, op="c", lsn=lsn))
        elif kind == "update":
            status, version = db[seat]
            # Mostly legal; sometimes whatever the database was told (a box-office sale...).
            new = draw(st.sampled_from(NEXT[status] if draw(st.booleans()) else STATUSES))
            db[seat] = (new, version + 1)
            item = ("change", change(seat, new, version + 1, level=level, lsn=lsn))
        elif kind == "delete":
            status, version = db.pop(seat)
            item = ("change", change(seat, status, version, level=level, op="d", lsn=lsn))
        else:
            db.clear()
            item = ("truncate", lsn)
        deliveries.append(item)  # in commit order
    # At least once: earlier changes delivered again, anywhere after their first delivery.
    for _ in range(draw(st.integers(0, len(deliveries) // 3))):
        first = draw(st.integers(0, len(deliveries) - 1))
        deliveries.insert(draw(st.integers(first + 1, len(deliveries))), deliveries[first])
    return deliveries, db


def deliver(item: tuple[str, SeatChange | int], availability: Availability) -> list[Applied]:
    kind, what = item
    if kind == "truncate":
        assert isinstance(what, int)
        return apply_truncate(availability, version=0, lsn=what)
    assert isinstance(what, SeatChange)
    verdict = apply(what, availability)
    assert not isinstance(verdict, Unresolved)
    return [verdict] if isinstance(verdict, Applied) else []


def counts_of(availability: Availability) -> dict:
    return {k: (v.open, v.held, v.sold, +v.open_prices) for k, v in availability.sections.items()
            if v.total}


@settings(max_examples=300)
@given(db_histories())
def test_any_history_ends_equal_to_the_database(history: tuple[list, dict]) -> None:
    """Seat by seat and count by count, whatever rules were broken and whatever was redelivered."""
    deliveries, db = history
    availability = Availability()
    for item in deliveries:
        deliver(item, availability)
    assert {k[1]: (s.status, s.version) for k, s in availability.seats.items()} == db
    expected: dict[tuple[int, str, int], Counter[str]] = {}
    for seat, (status, _) in db.items():
        section = REFERENCE.sections[REFERENCE.seats[seat].section_id].code
        expected.setdefault((1, section, 1 + seat % 2), Counter())[status] += 1
    got = {k: Counter({"OPEN": v.open, "HELD": v.held, "SOLD": v.sold})
           for k, v in availability.sections.items()}
    assert {k: +v for k, v in got.items() if +v} == expected
    assert availability.events.get(1, None) is None or availability.events[1].total == len(db)


@settings(max_examples=200)
@given(db_histories(), st.integers(0, 200))
def test_undo_restores_the_exact_state(history: tuple[list, dict], cut: int) -> None:
    """What an aborted transaction relies on: undoing a batch in reverse puts every seat, count
    and remembered delete back."""
    deliveries, _ = history
    availability = Availability()
    cut = min(cut, len(deliveries))
    for item in deliveries[:cut]:
        deliver(item, availability)
    before = (dict(availability.seats), counts_of(availability), dict(availability.deleted))
    applied: list[Applied] = []
    for item in deliveries[cut:]:
        applied.extend(deliver(item, availability))
    for a in reversed(applied):
        undo(availability, a)
    assert (dict(availability.seats), counts_of(availability), dict(availability.deleted)) == before


def rebuilt(log: dict) -> Availability:
    """The state a processor starts from: the compacted seat topic's last record per seat (a
    tombstone's header names the delete)."""
    availability = Availability()
    for key, (value, gone) in log.items():
        if value is not None:
            availability.put(key, state_of_record(value))
        elif gone is not None:
            availability.remember_delete(key, gone)
    return availability


@settings(max_examples=300)
@given(db_histories(), st.lists(st.integers(1, 12), max_size=30),
       st.lists(st.one_of(st.none(), st.integers(0, 12)), max_size=30))
def test_crashes_between_any_two_steps_end_equal_to_the_database(
        history: tuple[list, dict], sizes: list[int], crashes: list[int | None]) -> None:
    """Batches committed whole (records and offset in one transaction) or not at all: a crash
    anywhere in a batch loses it, the processor rebuilds its state from the published records
    and reads again from the committed offset. It still ends equal to the database."""
    deliveries, db = history
    log: dict = {}  # the compacted seat-availability topic: key -> (value, remembered delete)
    committed = 0
    availability = Availability()
    size_of, crash_of = iter(sizes), iter(crashes)
    while committed < len(deliveries):
        batch = deliveries[committed:committed + next(size_of, 5)]
        crash_at = next(crash_of, None)
        published: dict = {}
        for i, item in enumerate(batch):
            if crash_at is not None and i == crash_at:
                availability = rebuilt(log)  # killed: the open transaction is aborted
                break
            for a in deliver(item, availability):
                published[a.key] = (a.record_value,
                                    availability.deleted.get(a.key) if a.new is None else None)
        else:
            log.update(published)
            committed += len(batch)
    assert {k[1]: (s.status, s.version) for k, s in availability.seats.items()} == db
    assert {k[1]: (s.status, s.version) for k, s in rebuilt(log).seats.items()} == db


def test_a_snapshot_row_of_the_seen_version_is_published_again_but_never_an_older_one() -> None:
    availability = Availability()
    apply(change(1, "OPEN", 1), availability)
    apply(change(1, "HELD", 2), availability)
    again = change(1, "HELD", 2)._replace(op="r", snapshot=True)
    assert isinstance(apply(again, availability), Applied)
    older = change(1, "OPEN", 1)._replace(op="r", snapshot=True)
    assert isinstance(apply(older, availability), Duplicate)
    assert availability.sections[(1, "101", 1)].held == 1
    assert availability.seats[(1, 1)] == SeatState(2, "HELD", "101", 1, Decimal("50.00"), None)


def test_a_price_of_a_finer_column_that_fits_is_no_anomaly() -> None:
    """After an ALTER TABLE to numeric(10, 3), 50.000 is just 50.00: published, nothing to say."""
    availability = Availability()
    verdict = apply(change(1, "OPEN", 1)._replace(price=Decimal("50.000")), availability)
    assert isinstance(verdict, Applied) and verdict.anomalies == ()
    assert verdict.record_value is not None
    assert str(verdict.record_value["price"]) == "50.00"
