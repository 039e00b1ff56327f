"""The stream's `changes` frame: made by serve, read by the crowd of `seatflow bench fans` and
by tests (the page's script reads it too: static/app.js). Standard library only, so that the
crowd's process stays small."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from pipelines.serve.state import Change

__all__ = ["BRIEF_FIELDS", "format_changes", "seats_of"]

# A seat change whose place and price are unchanged is sent as a list of these.
BRIEF_FIELDS = ("seat_id", "status", "version", "source_committed_at")


def format_changes(changes: Sequence[Change], epoch: str) -> bytes:
    """Changes that are ready together as one SSE `changes` frame, whose id is the newest's:
    every seat change in order, and of the counts only the newest per section and price level
    and the newest totals (counts carry no version: the newest wins, and a fan needs no
    other). `totals` is null when unchanged."""
    seats: list[str] = []
    sections: dict[Hashable, str] = {}
    totals = "null"
    for change in changes:
        if change.kind == "seat":
            seats.append(change.payload)
        elif change.kind == "section":
            sections.pop(change.key, None)  # in the order of their newest change
            sections[change.key] = change.payload
        else:
            totals = change.payload
    seq = changes[-1].id
    return (f'id: {epoch}.{seq}\nevent: changes\ndata: {{"seq":{seq},"seats":[{",".join(seats)}],'
            f'"sections":[{",".join(sections.values())}],"totals":{totals}}}\n\n').encode()


def seats_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The seat changes of a `changes` frame's data, each as a dict (a brief one has only the
    BRIEF_FIELDS)."""
    return [dict(zip(BRIEF_FIELDS, seat, strict=True)) if isinstance(seat, list) else seat
            for seat in data["seats"]]
