"""What buyers do during an on-sale: how many seats, where, and what next; pure logic.

Everything here takes a `random.Random` (or plain values) and returns values, so a run is
reproducible from its seed and the rules are unit-tested without a database.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "QUANTITY_WEIGHTS",
    "ZONE_DEMAND",
    "BuyerChoice",
    "OpenSeats",
    "Outcome",
    "OutcomeWeights",
    "SeatPlace",
    "adjacent_blocks",
    "checkout_delay",
    "choose_outcome",
    "choose_quantity",
    "next_slot",
]

# Seats per hold: pairs and groups of four dominate, as at real box offices.
QUANTITY_WEIGHTS: Mapping[int, float] = {2: 0.32, 3: 0.10, 4: 0.34, 5: 0.09, 6: 0.15}
# Relative pull of each price zone; sideline seats go first, club seats are pricey.
ZONE_DEMAND: Mapping[str, float] = {"CLUB": 0.6, "LS": 1.6, "LE": 1.0, "US": 1.2, "UE": 0.8}


class Outcome(StrEnum):
    BUY = "buy"
    RELEASE = "release"
    ABANDON = "abandon"  # walks away; the hold expires


@dataclass(frozen=True, slots=True)
class OutcomeWeights:
    buy: float = 0.70
    release: float = 0.15
    abandon: float = 0.15

    def __post_init__(self) -> None:
        if min(self.buy, self.release, self.abandon) < 0 or (
            self.buy + self.release + self.abandon <= 0
        ):
            raise ValueError(f"outcome weights must be >= 0 and not all 0: {self}")


@dataclass(frozen=True, slots=True)
class SeatPlace:
    """Where a seat on sale is: its section, row and number, which buyers choose by (the
    processor's reference.SeatRef is what a published record says of a seat)."""

    seat_id: int
    section_id: int
    row_index: int
    seat_number: int


@dataclass(frozen=True, slots=True)
class BuyerChoice:
    seat_ids: tuple[int, ...]
    adjacent: bool


def choose_quantity(rng: random.Random, weights: Mapping[int, float] = QUANTITY_WEIGHTS) -> int:
    """How many seats a buyer asks for."""
    quantities = list(weights)
    return rng.choices(quantities, weights=[weights[q] for q in quantities])[0]


def choose_outcome(rng: random.Random, weights: OutcomeWeights) -> Outcome:
    """What a buyer holding seats does next."""
    return rng.choices(
        (Outcome.BUY, Outcome.RELEASE, Outcome.ABANDON),
        weights=(weights.buy, weights.release, weights.abandon),
    )[0]


def checkout_delay(rng: random.Random, outcome: Outcome, hold_ttl: float) -> float:
    """Seconds a buyer thinks before checking out or releasing (on-sale time is compressed).

    Most decide well within the hold's lifetime; about one in twenty dawdles past it, so
    checkouts that arrive after the sweeper expired the hold happen too.
    """
    if outcome is Outcome.ABANDON:
        return 0.0
    if rng.random() < 0.05:
        return hold_ttl * rng.uniform(1.0, 1.5)
    return min(rng.uniform(0.02, 0.5), hold_ttl * 0.8)


def adjacent_blocks(open_numbers: Sequence[int], quantity: int) -> list[int]:
    """Start numbers of every run of `quantity` consecutive open seat numbers (sorted input)."""
    if quantity < 1:
        raise ValueError(f"quantity must be >= 1, got {quantity}")
    starts = []
    run_start = 0
    for i in range(len(open_numbers)):
        if i > 0 and open_numbers[i] != open_numbers[i - 1] + 1:
            run_start = i
        if i - run_start + 1 >= quantity:
            starts.append(open_numbers[i - quantity + 1])
    return starts


def next_slot(slot: float, now: float, seats: int, rate: float) -> tuple[float, float]:
    """Pacing for `rate` seat changes/s: (seconds to wait, the next free slot).

    A slot in the past starts from now, so an idle spell does not turn into a burst.
    """
    if rate <= 0:
        return 0.0, now
    start = max(slot, now)
    return start - now, start + seats / rate


class OpenSeats:
    """The seats of one event a buyer's seat map shows as open.

    The map may be stale (other buyers hold seats concurrently); the database decides.
    """

    _TRIES = 6

    def __init__(self, seats: Iterable[SeatPlace], zone_of_section: Mapping[int, str]) -> None:
        """A map of these seats, none open yet (see `give_back`, `from_rows`)."""
        self._refs: dict[int, SeatPlace] = {}
        self._ids: dict[tuple[int, int, int], int] = {}
        # (section, row) -> sorted seat numbers open in that row
        self._rows: dict[tuple[int, int], list[int]] = {}
        for seat in seats:
            self._refs[seat.seat_id] = seat
            self._ids[(seat.section_id, seat.row_index, seat.seat_number)] = seat.seat_id
            self._rows.setdefault((seat.section_id, seat.row_index), [])
        self._section_rows: dict[int, list[int]] = {}
        for section_id, row_index in sorted(self._rows):
            self._section_rows.setdefault(section_id, []).append(row_index)
        self._open_in_section = dict.fromkeys(self._section_rows, 0)
        self._weight = {s: ZONE_DEMAND.get(z, 1.0) for s, z in zone_of_section.items()}

    @classmethod
    def from_rows(
        cls,
        seats: Iterable[SeatPlace],
        open_ids: Iterable[int],
        zone_of_section: Mapping[int, str],
    ) -> OpenSeats:
        mapped = cls(seats, zone_of_section)
        mapped.give_back(open_ids)
        return mapped

    def __len__(self) -> int:
        return sum(self._open_in_section.values())

    def __contains__(self, seat_id: object) -> bool:
        ref = self._refs.get(seat_id) if isinstance(seat_id, int) else None
        if ref is None:
            return False
        row = self._rows[(ref.section_id, ref.row_index)]
        i = bisect.bisect_left(row, ref.seat_number)
        return i < len(row) and row[i] == ref.seat_number

    def take(self, seat_ids: Iterable[int]) -> None:
        """Mark seats as no longer open (held or sold by someone)."""
        for seat_id in seat_ids:
            ref = self._refs.get(seat_id)
            if ref is None:
                continue
            row = self._rows[(ref.section_id, ref.row_index)]
            i = bisect.bisect_left(row, ref.seat_number)
            if i < len(row) and row[i] == ref.seat_number:
                del row[i]
                self._open_in_section[ref.section_id] -= 1

    def give_back(self, seat_ids: Iterable[int]) -> None:
        """Mark seats as open again (released, expired)."""
        for seat_id in seat_ids:
            ref = self._refs.get(seat_id)
            if ref is None:
                continue
            row = self._rows[(ref.section_id, ref.row_index)]
            i = bisect.bisect_left(row, ref.seat_number)
            if i == len(row) or row[i] != ref.seat_number:
                row.insert(i, ref.seat_number)
                self._open_in_section[ref.section_id] += 1

    def pick(self, rng: random.Random, quantity: int) -> BuyerChoice | None:
        """Seats a buyer clicks: `quantity` side by side in one row of a section they like.

        Failing a block after a few rows, the buyer settles for the open seats of the
        fullest row tried (fewer, not adjacent). None when nothing is open.
        """
        sections = [s for s, n in self._open_in_section.items() if n > 0]
        if not sections:
            return None
        section_id = rng.choices(sections, weights=[self._weight.get(s, 1.0) for s in sections])[
            0
        ]
        rows = [r for r in self._section_rows[section_id] if self._rows[(section_id, r)]]
        best: tuple[int, list[int]] | None = None
        for _ in range(self._TRIES):
            row_index = rng.choice(rows)
            numbers = self._rows[(section_id, row_index)]
            starts = adjacent_blocks(numbers, quantity)
            if starts:
                first = rng.choice(starts)
                ids = tuple(
                    self._ids[(section_id, row_index, n)] for n in range(first, first + quantity)
                )
                return BuyerChoice(ids, adjacent=True)
            if best is None or len(numbers) > len(best[1]):
                best = (row_index, numbers)
        assert best is not None
        row_index, numbers = best
        chosen = numbers[:quantity]
        ids = tuple(self._ids[(section_id, row_index, n)] for n in chosen)
        return BuyerChoice(ids, adjacent=len(chosen) == quantity and len(
            adjacent_blocks(chosen, quantity)) == 1)
