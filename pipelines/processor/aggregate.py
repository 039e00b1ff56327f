"""Section and event availability, folded from seat-availability records (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AvailabilityState", "SectionKey"]

SectionKey = tuple[int, str]  # (event_id, section_code)


@dataclass
class AvailabilityState:
    """The latest status of every seat and, kept in step, the counts per section and event."""

    seats: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)
    sections: dict[SectionKey, Counter[str]] = field(default_factory=dict)
    versions: dict[tuple[int, int], int] = field(default_factory=dict)

    def apply(self, key: Mapping[str, Any], value: Mapping[str, Any] | None) -> bool:
        """Fold one record in; older or repeated versions change nothing. True if it changed."""
        seat = (key["event_id"], key["seat_id"])
        if value is not None:
            version = value["source_version"]
            if self.versions.get(seat, -1) >= version:
                return False
            self.versions[seat] = version
        previous = self.seats.pop(seat, None)
        if previous is not None:
            self.sections[(seat[0], previous[0])][previous[1]] -= 1
        if value is None:
            self.versions.pop(seat, None)
            return previous is not None
        section = value.get("section_code") or "?"
        self.seats[seat] = (section, value["status"])
        self.sections.setdefault((seat[0], section), Counter())[value["status"]] += 1
        return True

    def event_totals(self) -> dict[int, Counter[str]]:
        totals: dict[int, Counter[str]] = {}
        for (event_id, _), counts in self.sections.items():
            totals.setdefault(event_id, Counter()).update(counts)
        return totals
