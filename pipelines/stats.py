"""Figures of a benchmark's samples (standard library only: the fan-out crowd's process imports
it too)."""

from __future__ import annotations

__all__ = ["percentile"]


def percentile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted samples (the value at index q * n), to 0.1; 0.0 for none."""
    if not ordered:
        return 0.0
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)
