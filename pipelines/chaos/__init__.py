"""`seatflow bench chaos`: an on-sale while the stack's processes are killed, and what it cost.

An on-sale runs at a given rate while faults are injected one at a time, at seeded random
times, each after the previous one has healed (plus a minimum gap):

- processor: SIGKILL of the processor's worker process (found by its command line);
- connect, kafka, registry: SIGKILL of the JVM that the stack's supervisord runs;
- postgres: `pg_ctl stop -m immediate` (PostgreSQL's crash stop: no checkpoint, recovery at
  the next start).

Nothing restarts a killed process but what runs in production too: the stack's supervisord,
Kafka Connect, the processor's own supervision. Afterwards, with the pipeline caught up, the
report compares what a read_committed reader of `seat-availability` saw with what the database
committed. The database is the truth: `seat_inventory.version` grows by one on every update (a
trigger), so every version between a seat's version before the on-sale and its version after
it was committed, and each must have been published once.

The pure parts (the fault schedule, lost and duplicated versions, staleness, the report's
targets) are functions of plain values, unit-tested without a stack.
"""

from __future__ import annotations

from pipelines.chaos.processes import (
    PROCESSOR_WORKER_MARKER,
    ProcessRow,
    find_processor,
    pick_processor,
)
from pipelines.chaos.report import (
    DEFAULT_FAULTS,
    FAULT_KINDS,
    HEAL_TARGET_S,
    ChaosReport,
    Fault,
    FaultResult,
    KindSummary,
    VersionLedger,
    fault_schedule,
    flowing_since,
    fresh_since,
    parse_faults,
    staleness_s,
    summarise_kinds,
    targets,
)
from pipelines.chaos.run import bench_chaos
from pipelines.chaos.tail import VersionTail, seat_versions

__all__ = [
    "DEFAULT_FAULTS",
    "FAULT_KINDS",
    "HEAL_TARGET_S",
    "PROCESSOR_WORKER_MARKER",
    "ChaosReport",
    "Fault",
    "FaultResult",
    "KindSummary",
    "ProcessRow",
    "VersionLedger",
    "VersionTail",
    "bench_chaos",
    "fault_schedule",
    "find_processor",
    "flowing_since",
    "fresh_since",
    "parse_faults",
    "pick_processor",
    "seat_versions",
    "staleness_s",
    "summarise_kinds",
    "targets",
]
