"""The replication slot check: when retained WAL warns, and when a slot is lost."""

from __future__ import annotations

import pytest

from pipelines.monitoring import SlotRetention, slot_verdict

pytestmark = pytest.mark.unit

MIB = 2**20


def slot(held: int | None, status: str | None = "reserved", active: bool = True) -> SlotRetention:
    return SlotRetention("s", active, held, status, None)


def test_a_slot_within_the_threshold_is_fine() -> None:
    assert slot_verdict("s", slot(10 * MIB), 100 * MIB)[0] == "ok"
    assert slot_verdict("s", slot(100 * MIB), 100 * MIB)[0] == "ok"


def test_a_slot_past_the_threshold_warns_and_says_whether_its_connector_reads() -> None:
    verdict, why = slot_verdict("s", slot(101 * MIB, active=False), 100 * MIB)
    assert verdict == "warn" and "101 MiB" in why and "inactive" in why


def test_a_slot_past_its_reservation_warns_even_below_the_threshold() -> None:
    assert slot_verdict("s", slot(MIB, "unreserved"), 100 * MIB)[0] == "warn"


@pytest.mark.parametrize("retention", [slot(None, "lost"), slot(5 * MIB, "lost"), None])
def test_a_lost_or_missing_slot_is_an_error(retention: SlotRetention | None) -> None:
    verdict, why = slot_verdict("s", retention, 100 * MIB)
    assert verdict == "error"
    assert ("lost" in why and "re-snapshot" in why) or "does not exist" in why
