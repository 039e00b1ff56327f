"""What a chaos run measured, as plain values: the fault schedule, lost and duplicated
versions, staleness, heals and the targets. Pure, unit-tested without a stack."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

FAULT_KINDS = ("processor", "connect", "kafka", "controller", "registry", "postgres")
# The target mix for one on-sale of at least 100,000 changes.
DEFAULT_FAULTS = "processor=20,connect=10,kafka=5,registry=5,postgres=3"
# Every fault must heal within 30 s; the processor, which fans' staleness depends on most
# directly, within 5 s.
HEAL_TARGET_S = {"processor": 5.0, "connect": 30.0, "kafka": 30.0, "controller": 30.0,
                 "registry": 30.0, "postgres": 30.0}

# A partition delivers its changes fresh when they arrive within this of their commit: a
# partition still draining the backlog of a fault delivers them later.
FRESH_S = 2.0

# ---- pure parts -------------------------------------------------------------------------------

def parse_faults(text: str) -> dict[str, int]:
    """`processor=20,connect=10` -> {"processor": 20, "connect": 10}; unknown kinds refused."""
    mix: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind, sep, count = part.partition("=")
        kind = kind.strip()
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}: one of {', '.join(FAULT_KINDS)}")
        try:
            n = int(count) if sep else 1
        except ValueError as e:
            raise ValueError(f"{part!r}: the count must be a whole number") from e
        if n < 0:
            raise ValueError(f"{part!r}: the count must be >= 0")
        mix[kind] = mix.get(kind, 0) + n
    return {k: n for k, n in mix.items() if n}


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault to inject, at the earliest `at_s` seconds into the on-sale."""

    at_s: float
    kind: str


def fault_schedule(mix: Mapping[str, int], span_s: float, *, seed: int,
                   lead_in_s: float = 5.0) -> list[Fault]:
    """The faults of `mix` at seeded random times in [lead_in_s, span_s), in time order.

    These are earliest times: a fault waits for the previous one to heal (and the minimum gap),
    so on a short span they follow one another as soon as allowed.
    """
    # Simulation, not security: the seed makes a run repeatable.
    rng = random.Random(seed)  # noqa: S311
    kinds = [kind for kind in FAULT_KINDS for _ in range(mix.get(kind, 0))]
    rng.shuffle(kinds)
    end = max(span_s, lead_in_s)
    times = sorted(rng.uniform(lead_in_s, end) for _ in kinds)
    return [Fault(round(t, 3), kind) for t, kind in zip(times, kinds, strict=True)]


class VersionLedger:
    """Which seat versions a read_committed reader saw, compactly: per seat an int used as a
    bit set of versions (a long on-sale is millions of versions over some 150,000 seats)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], int] = {}
        self.streamed: dict[tuple[int, int], int] = {}
        self.duplicated = 0
        self.duplicate_examples: list[tuple[int, int, int]] = []

    def add(self, event_id: int, seat_id: int, version: int, *, snapshot: bool) -> bool:
        """Record one published version; True when it is the first record of it."""
        key = (event_id, seat_id)
        bit = 1 << version
        seen = self.seen.get(key, 0)
        first = not seen & bit
        self.seen[key] = seen | bit
        if not snapshot:
            # A snapshot record restates a seat on purpose (a backfill, a rebuild); only the
            # same change published twice by the stream is a duplicate.
            streamed = self.streamed.get(key, 0)
            if streamed & bit:
                self.duplicated += 1
                if len(self.duplicate_examples) < 20:
                    self.duplicate_examples.append((event_id, seat_id, version))
            self.streamed[key] = streamed | bit
        return first

    def lost(self, before: Mapping[tuple[int, int], int], after: Mapping[tuple[int, int], int],
             *, examples: int = 20) -> tuple[int, int, list[tuple[int, int, int]]]:
        """(versions committed, versions never seen, a few of those) for the seats' versions
        in (before, after]: all committed, since every update adds one."""
        committed = lost = 0
        shown: list[tuple[int, int, int]] = []
        for key, end in after.items():
            start = before.get(key, 0)
            if end <= start:
                continue
            committed += end - start
            wanted = ((1 << (end + 1)) - 1) ^ ((1 << (start + 1)) - 1)  # bits start+1 .. end
            missing = wanted & ~self.seen.get(key, 0)
            if missing:
                lost += missing.bit_count()
                version = start + 1
                while missing and len(shown) < examples:
                    if missing >> version & 1:
                        shown.append((key[0], key[1], version))
                        missing &= ~(1 << version)
                    version += 1
        return committed, lost, shown


def staleness_s(commits: Sequence[float], receipts: Sequence[float], start: float, end: float,
                *, max_latency_s: float) -> float:
    """The longest time, within [start, end], that a committed change was not yet readable.

    At a moment t the fans' view is as stale as the oldest change committed by t and not yet
    received: t - its commit time. Over the window that is, for every change committed by
    `end` and received after `start`, min(end, receipt) - commit, at its largest. `commits`
    must be sorted (receipts in the same order); `max_latency_s` (the largest receipt - commit
    of all changes) bounds how far before `start` a change can still be unseen.
    """
    lo = bisect.bisect_left(commits, start - max_latency_s)
    hi = bisect.bisect_right(commits, end)
    worst = 0.0
    for i in range(lo, hi):
        receipt = receipts[i]
        if receipt > start:
            worst = max(worst, min(end, receipt) - commits[i])
    return worst


def flowing_since(latest: Mapping[int, tuple[float, float]], at: float) -> bool:
    """The stream flows end to end again after a fault at `at` (pure): every partition that
    carries changes has delivered one committed after it. `latest` maps each partition to
    (commit, receipt) of its latest change. One partition back says nothing of the others."""
    return bool(latest) and all(commit > at for commit, _ in latest.values())


def fresh_since(latest: Mapping[int, tuple[float, float]], at: float, *,
                fresh_s: float = FRESH_S) -> bool:
    """As flowing_since, and every partition has drained the backlog the fault left: its latest
    change arrived within fresh_s of its commit (pure). Until then fans still see the fault,
    and a next fault would be measured inside this one."""
    return flowing_since(latest, at) and all(receipt - commit <= fresh_s
                                             for commit, receipt in latest.values())


@dataclass
class FaultResult:
    kind: str
    at_s: float  # into the on-sale, when injected
    target: str  # what was killed: a pid, or the data folder of PostgreSQL
    healed_s: float | None  # from the fault until healthy again; None: not within the limit
    staleness_s: float = 0.0
    # From the fault until every partition is fresh again (its backlog drained); None: not
    # within the limit.
    fresh_s: float | None = None
    error: str = ""  # why it could not be injected


@dataclass
class KindSummary:
    kind: str
    count: int
    healed: int
    healed_within_s: float | None  # the slowest heal; None when one did not heal
    longest_staleness_s: float
    target_s: float

    @property
    def met(self) -> bool:
        return (self.healed == self.count and self.healed_within_s is not None
                and self.healed_within_s <= self.target_s)


def summarise_kinds(results: Iterable[FaultResult]) -> list[KindSummary]:
    """Per kind of fault, in FAULT_KINDS order: how many, how fast they healed, how stale."""
    by_kind: dict[str, list[FaultResult]] = {}
    for r in results:
        by_kind.setdefault(r.kind, []).append(r)
    out = []
    for kind in FAULT_KINDS:
        rs = by_kind.get(kind)
        if not rs:
            continue
        heals = [r.healed_s for r in rs if r.healed_s is not None]
        out.append(KindSummary(
            kind, len(rs), len(heals),
            round(max(heals), 2) if len(heals) == len(rs) and heals else None,
            round(max(r.staleness_s for r in rs), 2), HEAL_TARGET_S[kind]))
    return out


@dataclass
class ChaosReport:
    rate_target: float
    seconds: float  # of on-sale
    changes_committed: int  # seat versions the database committed during the on-sale
    changes_published: int  # of which a read_committed reader received (first records)
    versions_lost: int
    versions_duplicated: int
    seat_differences: int
    count_differences: int
    anomalies: int
    dead_letters: int
    catch_up_s: float | None  # after the on-sale, until the pipeline had published it all
    faults: list[FaultResult] = field(default_factory=list)
    kinds: list[KindSummary] = field(default_factory=list)
    lost_examples: list[tuple[int, int, int]] = field(default_factory=list)
    duplicate_examples: list[tuple[int, int, int]] = field(default_factory=list)
    reconciliation: list[str] = field(default_factory=list)
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kinds"] = [{**asdict(k), "met": k.met} for k in self.kinds]
        data["targets"] = {name: {"target": t, "met": ok} for name, (t, ok) in targets(self).items()}
        return data


def targets(report: ChaosReport) -> dict[str, tuple[str, bool]]:
    """The issue's targets, each (what, met)."""
    out = {
        "versions_lost": ("0", report.versions_lost == 0),
        "versions_duplicated": ("0", report.versions_duplicated == 0),
        "seat_differences": ("0", report.seat_differences == 0),
        "count_differences": ("0", report.count_differences == 0),
        "catch_up_s": ("caught up", report.catch_up_s is not None),
    }
    for kind in report.kinds:
        out[f"heal {kind.kind}"] = (f"<= {kind.target_s:g} s", kind.met)
    return out
