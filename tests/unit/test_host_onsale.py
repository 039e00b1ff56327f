"""Buyers' decisions during an on-sale: quantities, seat picking, outcomes, pacing; how the
host's group commit takes buyers' statements together."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.host.onsale import (
    QUANTITY_WEIGHTS,
    OpenSeats,
    Outcome,
    OutcomeWeights,
    SeatPlace,
    adjacent_blocks,
    checkout_delay,
    choose_outcome,
    choose_quantity,
    next_slot,
)
from pipelines.host.simulate import _GroupCommit

pytestmark = pytest.mark.unit


def _seats(sections: int = 3, rows: int = 4, width: int = 10) -> list[SeatPlace]:
    seats = []
    seat_id = 0
    for section in range(1, sections + 1):
        for row in range(1, rows + 1):
            for number in range(1, width + 1):
                seat_id += 1
                seats.append(SeatPlace(seat_id, section, row, number))
    return seats


def _zones(sections: int = 3) -> dict[int, str]:
    return dict.fromkeys(range(1, sections + 1), "LS")


@pytest.mark.parametrize(
    ("numbers", "quantity", "starts"),
    [
        ([], 2, []),
        ([1, 2, 3], 2, [1, 2]),
        ([1, 2, 4, 5, 6], 3, [4]),
        ([1, 3, 5], 2, []),
        ([7], 1, [7]),
        ([1, 2, 3, 4], 4, [1]),
    ],
)
def test_adjacent_blocks(numbers: list[int], quantity: int, starts: list[int]) -> None:
    assert adjacent_blocks(numbers, quantity) == starts


@given(
    st.sets(st.integers(min_value=1, max_value=40)).map(sorted),
    st.integers(min_value=1, max_value=6),
)
def test_adjacent_blocks_finds_exactly_the_runs(numbers: list[int], quantity: int) -> None:
    open_set = set(numbers)
    expected = [n for n in numbers if all(n + k in open_set for k in range(quantity))]
    assert adjacent_blocks(numbers, quantity) == expected


@given(st.integers())
def test_quantity_is_two_to_six(seed: int) -> None:
    assert choose_quantity(random.Random(seed)) in QUANTITY_WEIGHTS
    assert set(QUANTITY_WEIGHTS) == {2, 3, 4, 5, 6}


def test_outcomes_follow_their_weights() -> None:
    rng = random.Random(1)
    picks = [choose_outcome(rng, OutcomeWeights(0.7, 0.2, 0.1)) for _ in range(5000)]
    assert 0.65 < picks.count(Outcome.BUY) / 5000 < 0.75
    assert 0.07 < picks.count(Outcome.ABANDON) / 5000 < 0.13
    assert {choose_outcome(rng, OutcomeWeights(0, 1, 0)) for _ in range(50)} == {Outcome.RELEASE}


def test_outcome_weights_must_be_usable() -> None:
    with pytest.raises(ValueError, match="weights"):
        OutcomeWeights(0, 0, 0)
    with pytest.raises(ValueError, match="weights"):
        OutcomeWeights(-1, 1, 1)


@given(st.integers(), st.floats(min_value=0.1, max_value=60), st.sampled_from(list(Outcome)))
def test_checkout_delay_is_bounded(seed: int, ttl: float, outcome: Outcome) -> None:
    delay = checkout_delay(random.Random(seed), outcome, ttl)
    if outcome is Outcome.ABANDON:
        assert delay == 0
    else:
        assert 0 <= delay <= ttl * 1.5


def test_few_checkouts_outlive_their_hold() -> None:
    rng = random.Random(3)
    late = sum(checkout_delay(rng, Outcome.BUY, 10.0) >= 10.0 for _ in range(10_000))
    assert 300 < late < 700


@given(
    st.floats(min_value=0, max_value=1e6),
    st.floats(min_value=0, max_value=1e6),
    st.integers(min_value=1, max_value=6),
    st.floats(min_value=0.5, max_value=1e5),
)
def test_next_slot_paces_to_the_rate(slot: float, now: float, seats: int, rate: float) -> None:
    wait, following = next_slot(slot, now, seats, rate)
    assert wait >= 0
    assert now + wait == pytest.approx(max(slot, now))
    assert following == pytest.approx(max(slot, now) + seats / rate)


def test_next_slot_without_rate_never_waits() -> None:
    assert next_slot(100.0, 5.0, 4, 0) == (0.0, 5.0)


def test_steady_pacing_reaches_the_rate() -> None:
    slot, now = 0.0, 0.0
    for _ in range(1000):
        wait, slot = next_slot(slot, now, 4, 2000)
        now += wait
    # 999 waits of 4 seats at 2000 seats/s
    assert now == pytest.approx(999 * 4 / 2000)


def test_open_seats_picks_adjacent_open_seats() -> None:
    seats = _seats()
    open_map = OpenSeats.from_rows(seats, [s.seat_id for s in seats], _zones())
    assert len(open_map) == len(seats)
    choice = open_map.pick(random.Random(1), 4)
    assert choice is not None and choice.adjacent
    picked = [s for s in seats if s.seat_id in choice.seat_ids]
    assert len(picked) == 4
    assert len({(s.section_id, s.row_index) for s in picked}) == 1
    numbers = sorted(s.seat_number for s in picked)
    assert numbers == list(range(numbers[0], numbers[0] + 4))


def test_take_and_give_back_keep_the_count() -> None:
    seats = _seats()
    open_map = OpenSeats.from_rows(seats, [s.seat_id for s in seats], _zones())
    open_map.take([1, 2, 3, 3, 9999])
    assert len(open_map) == len(seats) - 3
    assert 1 not in open_map and 4 in open_map
    open_map.give_back([1, 1, 2])
    assert len(open_map) == len(seats) - 1
    assert 1 in open_map and 3 not in open_map


def test_pick_settles_for_scattered_seats_then_nothing() -> None:
    seats = _seats(sections=1, rows=1, width=6)
    # Only seats 1, 3 and 5 are open: no pair side by side.
    open_map = OpenSeats.from_rows(seats, [1, 3, 5], _zones(1))
    choice = open_map.pick(random.Random(0), 2)
    assert choice is not None and not choice.adjacent
    assert set(choice.seat_ids) <= {1, 3, 5} and len(choice.seat_ids) == 2
    open_map.take([1, 3, 5])
    assert open_map.pick(random.Random(0), 2) is None


@given(
    st.integers(),
    st.sets(st.integers(min_value=1, max_value=120), max_size=120),
    st.integers(min_value=1, max_value=6),
)
def test_picks_are_open_distinct_and_in_one_row(
    seed: int, open_ids: set[int], quantity: int
) -> None:
    seats = _seats()
    by_id = {s.seat_id: s for s in seats}
    open_map = OpenSeats.from_rows(seats, open_ids, _zones())
    choice = open_map.pick(random.Random(seed), quantity)
    if not open_ids:
        assert choice is None
        return
    assert choice is not None
    assert 1 <= len(choice.seat_ids) <= quantity
    assert len(set(choice.seat_ids)) == len(choice.seat_ids)
    assert set(choice.seat_ids) <= open_ids
    assert len({(by_id[i].section_id, by_id[i].row_index) for i in choice.seat_ids}) == 1
    if choice.adjacent:
        numbers = sorted(by_id[i].seat_number for i in choice.seat_ids)
        assert numbers == list(range(numbers[0], numbers[0] + quantity))


def test_popular_zones_are_picked_more() -> None:
    seats = _seats(sections=2, rows=10, width=30)
    open_map = OpenSeats.from_rows(seats, [s.seat_id for s in seats], {1: "LS", 2: "CLUB"})
    by_id = {s.seat_id: s for s in seats}
    rng = random.Random(5)
    sideline = 0
    for _ in range(2000):
        choice = open_map.pick(rng, 2)
        assert choice is not None
        sideline += by_id[choice.seat_ids[0]].section_id == 1
    assert sideline / 2000 > 0.6


def _group_commit(size: int, linger: float) -> Any:
    # Taking a group touches only the queue; the pool is for running it.
    return _GroupCommit(pool=None, size=size, linger=linger)  # type: ignore[arg-type]


def test_a_group_commit_takes_at_most_its_size_and_leaves_the_rest_for_the_next() -> None:
    async def take() -> list[int]:
        group = _group_commit(size=4, linger=5.0)
        loop = asyncio.get_running_loop()
        for n in range(10):
            group.queue.put_nowait(("SELECT 1", {"n": n}, loop.create_future()))
        sizes = [len(await group._take()), len(await group._take())]
        return [*sizes, group.queue.qsize()]

    assert asyncio.run(take()) == [4, 4, 2]


def test_a_group_commit_waits_its_linger_for_more_then_goes_with_what_it_has() -> None:
    async def take() -> tuple[list[int], float]:
        group = _group_commit(size=32, linger=0.2)
        loop = asyncio.get_running_loop()

        async def arrive(n: int, after: float) -> None:
            await asyncio.sleep(after)
            await group.queue.put(("SELECT 1", {"n": n}, loop.create_future()))

        arrivals = [asyncio.create_task(arrive(n, after))
                    for n, after in enumerate((0.0, 0.05, 0.1, 0.6))]
        started = time.monotonic()
        first = await group._take()
        waited = time.monotonic() - started
        second = await group._take()  # the late one, alone after its own linger
        await asyncio.gather(*arrivals)
        return [p["n"] for _, p, _ in first] + [-1] + [p["n"] for _, p, _ in second], waited

    taken, waited = asyncio.run(take())
    assert taken == [0, 1, 2, -1, 3]
    assert 0.15 <= waited < 0.5
