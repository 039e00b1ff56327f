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

import bisect
import logging
import multiprocessing
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil
import psycopg
import requests
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from tenacity import retry, stop_after_delay, wait_fixed

from pipelines.avro import AvroDecoder, registry_client
from pipelines.bench.common import SIMULATOR_NICE
from pipelines.connect import connect_session
from pipelines.deploy import wait_caught_up
from pipelines.polling import PollTimeoutError, poll
from pipelines.processor.supervise import WORKER_MODULE
from pipelines.reconcile import reconcile_events
from pipelines.settings import Settings
from pipelines.stack import health
from pipelines.stack.configs import PG_OS_USER
from pipelines.stack.layout import StackLayout, running_as_root
from pipelines.stack.supervisor import Supervisor
from pipelines.topics import DEAD_LETTER, SEAT_AVAILABILITY, end_offsets, read_topic

__all__ = [
    "ANOMALIES",
    "DEFAULT_FAULTS",
    "FAULT_KINDS",
    "HEAL_TARGET_S",
    "PROCESSOR_WORKER_MARKER",
    "ChaosReport",
    "Fault",
    "FaultResult",
    "KindSummary",
    "OnSale",
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

log = logging.getLogger(__name__)

FAULT_KINDS = ("processor", "connect", "kafka", "controller", "registry", "postgres")
# The target mix for one on-sale of at least 100,000 changes.
DEFAULT_FAULTS = "processor=20,connect=10,kafka=5,registry=5,postgres=3"
# Every fault must heal within 30 s; the processor, which fans' staleness depends on most
# directly, within 5 s.
HEAL_TARGET_S = {"processor": 5.0, "connect": 30.0, "kafka": 30.0, "controller": 30.0,
                 "registry": 30.0, "postgres": 30.0}
ANOMALIES = "seatflow.anomalies"
# The processor's worker: the process that consumes and publishes, run (and restarted at once)
# by a supervising parent; its command line names the module.
PROCESSOR_WORKER_MARKER = WORKER_MODULE
# Until the worker runs as a child of its own, the processor is the `processor run` command
# (the stack's supervisord program) or a Dagster run of the availability_stream job.
_PROCESSOR_FALLBACKS: tuple[tuple[str, ...], ...] = (
    ("pipelines.cli.main processor run",),
    ("seatflow processor run",),
    ("execute_run", "availability_stream"),
)
# Buyers who mostly release or abandon their holds: seats go back on sale, so a long on-sale
# (all the faults of the mix, each healed) does not sell the venue out.
ONSALE_OUTCOMES = {"buy": 0.1, "release": 0.45, "abandon": 0.45}
# Each on-sale process runs this long; a new one follows (PostgreSQL's stop ends one early).
ONSALE_CHUNK_S = 60.0
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


# ---- processes --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProcessRow:
    pid: int
    ppid: int
    create_time: float
    cmdline: tuple[str, ...]


def pick_processor(rows: Iterable[ProcessRow]) -> int | None:
    """Of the machine's processes, the processor's worker to kill (pure): one whose command
    line names PROCESSOR_WORKER_MARKER, else `processor run` or a Dagster availability_stream
    run; the oldest (a warm standby is always started after the worker it stands by for, so
    the oldest worker is the active one). Processes of a bench command (chaos itself, its
    on-sale) never count."""
    markers = ((PROCESSOR_WORKER_MARKER,), *_PROCESSOR_FALLBACKS)
    ranked: dict[int, list[ProcessRow]] = {}
    for row in rows:
        if "bench" in row.cmdline:
            continue
        joined = " ".join(row.cmdline)
        rank = next((i for i, needles in enumerate(markers)
                     if all(n in joined for n in needles)), None)
        if rank is not None:
            ranked.setdefault(rank, []).append(row)
    if not ranked:
        return None
    best = sorted(ranked[min(ranked)], key=lambda r: r.create_time)
    # A `processor run` that supervises a child with the same words in its command line: the
    # child is the one that works.
    pids = {r.pid for r in best}
    children = [r for r in best if r.ppid in pids]
    return (children or best)[0].pid


def find_processor(*, exclude: Iterable[int] = ()) -> psutil.Process | None:
    """The processor's worker process on this machine (see pick_processor), if one runs."""
    skip = {os.getpid(), *exclude}
    rows = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline", "create_time"]):
        info = proc.info
        if info["pid"] in skip or not info["cmdline"]:
            continue
        rows.append(ProcessRow(info["pid"], info["ppid"] or 0, info["create_time"] or 0.0,
                               tuple(info["cmdline"])))
    pid = pick_processor(rows)
    if pid is None:
        return None
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _connector_running(settings: Settings) -> bool:
    try:
        with connect_session(settings, retries=0) as session:
            r = session.get(f"{settings.connect_url}/connectors/{settings.connector_name}/status",
                            timeout=2)
    except requests.RequestException:
        return False
    if not r.ok:
        return False
    status = r.json()
    tasks = status.get("tasks", [])
    return status["connector"]["state"] == "RUNNING" and bool(tasks) and all(
        t["state"] == "RUNNING" for t in tasks)


class VersionTail(threading.Thread):
    """A read_committed reader of seat-availability from given offsets: which versions it saw,
    and for each first record its commit time and when it arrived."""

    def __init__(self, settings: Settings, start: Mapping[int, int]) -> None:
        super().__init__(daemon=True, name="chaos-tail")
        self.ledger = VersionLedger()
        self.commits = array("d")
        self.receipts = array("d")
        # Seconds: per partition, (commit, receipt) of its latest change received so far. The
        # topic is partitioned by event, and after a fault the partitions catch up each at its
        # own pace.
        self.latest_by_partition: dict[int, tuple[float, float]] = {}
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.position: dict[int, int] = dict(start)
        self._lock = threading.Lock()
        self.decoder = AvroDecoder(registry_client(settings))
        self.consumer = Consumer({
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"seatflow-chaos-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            # Its end: a partition's last offset is often a transaction marker, which no record
            # reaches; the end-of-partition event gives the offset past it.
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
            # The broker is one of the things killed: keep trying, never give up on it, and
            # keep librdkafka's line per refused connection out of the report.
            "reconnect.backoff.max.ms": 1000,
            "log_level": 0,
        })
        self.consumer.assign([TopicPartition(SEAT_AVAILABILITY, p, o) for p, o in start.items()])

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                batch = self.consumer.consume(2000, timeout=0.1)
                received = time.time()
                for msg in batch:
                    self._take(msg, received)
        except BaseException as e:  # reported by the caller, not lost in a thread
            self.error = e
        finally:
            self.consumer.close()

    def _take(self, msg: Message, received: float) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                with self._lock:
                    partition = msg.partition() or 0
                    self.position[partition] = max(self.position.get(partition, 0),
                                                   msg.offset() or 0)
            else:
                log.debug("tail: %s", err)
            return
        with self._lock:
            self.position[msg.partition() or 0] = (msg.offset() or 0) + 1
        raw = msg.value()
        if raw is None:
            return  # a tombstone: a deleted seat has no version to check
        value = self.decoder.decode(raw)
        snapshot = bool(value["snapshot"])
        first = self.ledger.add(value["event_id"], value["seat_id"], value["source_version"],
                                snapshot=snapshot)
        if first and not snapshot:
            committed = value["source_committed_at"].timestamp()
            self.commits.append(committed)
            self.receipts.append(received)
            partition = msg.partition() or 0
            if committed > self.latest_by_partition.get(partition, (0.0, 0.0))[0]:
                self.latest_by_partition[partition] = (committed, received)

    def flowing_since(self, at: float) -> bool:
        return flowing_since(dict(self.latest_by_partition), at)

    def fresh_since(self, at: float) -> bool:
        return fresh_since(dict(self.latest_by_partition), at)

    def staleness(self, windows: Sequence[tuple[float, float]]) -> list[float]:
        """staleness_s of each (start, end) window, over every change this reader received;
        rounded to the millisecond. For after the reading stopped."""
        order = sorted(range(len(self.commits)), key=self.commits.__getitem__)
        commits = [self.commits[i] for i in order]
        receipts = [self.receipts[i] for i in order]
        longest = max((r - c for c, r in zip(commits, receipts, strict=True)), default=0.0)
        return [round(staleness_s(commits, receipts, start, end, max_latency_s=longest), 3)
                for start, end in windows]

    def reached(self, ends: Mapping[int, int]) -> bool:
        with self._lock:
            return all(self.position.get(p, 0) >= end for p, end in ends.items())


def _onsale_child(rate: float, duration: float, seed: int, hold_ttl: float) -> None:
    """One on-sale process (multiprocessing target): the fans' apps, at a lower priority."""
    from pipelines.host import HostError
    from pipelines.host.onsale import OutcomeWeights
    from pipelines.host.simulate import run_onsale

    os.nice(SIMULATOR_NICE)
    parent = os.getppid()

    def orphaned() -> None:
        # The chaos command was killed: its on-sale must not go on alone.
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    # The pool's warnings, one per connection PostgreSQL's stop broke, are expected here.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        run_onsale(Settings(), rate=rate, duration=duration, seed=seed, hold_ttl=hold_ttl,
                   outcomes=OutcomeWeights(**ONSALE_OUTCOMES))
    except HostError as e:  # PostgreSQL stopped under it: the parent starts another
        raise SystemExit(f"on-sale ended: {e}") from None


class OnSale:
    """On-sale processes one after another, for as long as asked; one that ends early (its
    database stopped) is followed by another once PostgreSQL answers again."""

    def __init__(self, settings: Settings, *, rate: float, seed: int, hold_ttl: float) -> None:
        self.settings = settings
        self.rate = rate
        self.rng = random.Random(seed)  # noqa: S311
        self.hold_ttl = hold_ttl
        self.proc: Any = None
        self.started = 0
        self.failed = 0
        self._ctx = multiprocessing.get_context("spawn")

    def keep_going(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            return
        if self.proc is not None:
            self.failed += self.proc.exitcode not in (0, None)
            self.proc = None
        if health.check("postgres", self.settings) is not None:
            return  # the next call tries again
        self.proc = self._ctx.Process(
            target=_onsale_child, name="chaos-onsale", daemon=True,
            args=(self.rate, ONSALE_CHUNK_S, self.rng.getrandbits(32), self.hold_ttl))
        self.proc.start()
        self.started += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(30)
        self.proc = None


def seat_versions(settings: Settings) -> dict[tuple[int, int], int]:
    """Every seat's version in the database now (waiting out a restart)."""
    @retry(stop=stop_after_delay(120), wait=wait_fixed(1), reraise=True)
    def read() -> dict[tuple[int, int], int]:
        with psycopg.connect(settings.pg_dsn(), connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT event_id, seat_id, version FROM ticketing.seat_inventory").fetchall()
        return {(e, s): v for e, s, v in rows}

    return read()


def _version_sum(settings: Settings) -> int | None:
    try:
        with psycopg.connect(settings.pg_dsn(), connect_timeout=3) as conn:
            row = conn.execute("SELECT coalesce(sum(version), 0)::bigint"
                               " FROM ticketing.seat_inventory").fetchone()
    except psycopg.Error:
        return None  # PostgreSQL is down (a fault): ask again later
    return int(row[0]) if row else 0


def _records_since(settings: Settings, topic: str, start: Mapping[int, int], since_ms: int) -> int:
    """Committed records of topic written since since_ms, from `start` (0 if it is missing)."""
    count = 0

    def handle(msg: Message) -> None:
        nonlocal count
        if msg.timestamp()[1] >= since_ms:
            count += 1

    read_topic(settings.kafka_bootstrap, topic, handle, purpose="chaos", start=start)
    return count


class _Injector:
    """Injects one fault and tells when the stack has healed from it."""

    def __init__(self, settings: Settings, tail: VersionTail) -> None:
        self.settings = settings
        self.layout = StackLayout.of(settings)
        self.sup = Supervisor(self.layout)
        self.tail = tail

    def inject(self, kind: str) -> tuple[str, int | None]:
        """Do it; (what was hit, its pid when a process was killed)."""
        if kind == "processor":
            proc = find_processor()
            if proc is None:
                raise RuntimeError("no processor process found")
            proc.send_signal(signal.SIGKILL)
            return f"pid {proc.pid}", proc.pid
        if kind == "postgres":
            pg_ctl = [str(self.settings.pg_bin_dir / "pg_ctl"), "stop", "-m", "immediate",
                      "-D", str(self.layout.pg_data)]
            cmd = ["runuser", "-u", PG_OS_USER, "--", *pg_ctl] if running_as_root() else pg_ctl
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise RuntimeError(f"pg_ctl stop failed: {(done.stderr or done.stdout).strip()}")
            return f"immediate stop of {self.layout.pg_data}", None
        info = self.sup.info(kind)
        if info.state != "RUNNING" or not info.pid:
            raise RuntimeError(f"{kind} is {info.state}, not running")
        os.kill(info.pid, signal.SIGKILL)
        return f"pid {info.pid}", info.pid

    def healed(self, kind: str, killed_pid: int | None, at: float) -> bool:
        """The killed service is back and the pipeline flows end to end again: changes
        committed after the fault reach seat-availability, in every partition (see
        flowing_since). A service that is up while capture or the processor is stuck has not
        healed as far as fans can tell."""
        if kind == "processor":
            if find_processor(exclude=[killed_pid] if killed_pid else []) is None:
                return False
        else:
            info = self.sup.info(kind)
            if info.state not in ("RUNNING", "STARTING") or (killed_pid and info.pid == killed_pid):
                return False
            if health.check(kind, self.settings) is not None:
                return False
        return self.tail.flowing_since(at)


def _every(say: Callable[[str], None], seconds: float) -> Callable[[str], None]:
    """`say`, at most once per `seconds` (waits report progress every second)."""
    last = [0.0]

    def throttled(text: str) -> None:
        if time.monotonic() - last[0] >= seconds:
            last[0] = time.monotonic()
            say(text)

    return throttled


def _wait_ready(settings: Settings, *, timeout_s: float, say: Callable[[str], None]) -> None:
    def probe() -> str | None:
        for service in health.CHECKS:
            problem = health.check(service, settings)
            if problem is not None:
                return f"{service}: {problem}"
        if not _connector_running(settings):
            return f"connector {settings.connector_name} not running"
        if find_processor() is None:
            return "no processor process"
        return None

    try:
        poll(probe, until=lambda problem: problem is None, timeout_s=timeout_s)
    except PollTimeoutError as e:
        raise RuntimeError(f"the pipeline is not ready: {e.last}") from e


def bench_chaos(settings: Settings, *, rate: float = 2000, changes: int = 100_000,
                duration: float | None = None, faults: Mapping[str, int] | None = None,
                seed: int = 1, min_gap_s: float = 5.0, heal_timeout_s: float = 120.0,
                settle_s: float = 10.0, max_seconds: float = 3600.0, hold_ttl: float = 15.0,
                catch_up_timeout_s: float = 600.0,
                start_processor: bool = True,
                say: Callable[[str], None] = lambda _: None) -> ChaosReport:
    """Run the on-sale with its faults, wait until the pipeline has caught up, and report."""
    from pipelines import stack

    mix = dict(faults if faults is not None else parse_faults(DEFAULT_FAULTS))
    started_processor = False
    if find_processor() is None:
        if not start_processor:
            raise RuntimeError("no processor runs (seatflow stack ... or Dagster's stream run)")
        say("starting the processor under the stack's supervisord")
        stack.start_app(settings, "processor")
        started_processor = True
    try:
        _wait_ready(settings, timeout_s=300, say=say)
        say("waiting until everything committed so far is published")
        wait_caught_up(settings, timeout_s=600, say=_every(say, 10))
        before = seat_versions(settings)
        base_sum = sum(before.values())
        start_offsets = end_offsets(settings.kafka_bootstrap, SEAT_AVAILABILITY)
        side_starts = {t: end_offsets(settings.kafka_bootstrap, t) for t in (ANOMALIES, DEAD_LETTER)}
        since_ms = int(time.time() * 1000)
        tail = VersionTail(settings, start_offsets)
        tail.start()
        span = duration if duration else changes / max(rate, 1.0)
        schedule = fault_schedule(mix, span, seed=seed)
        say(f"on-sale at {rate:.0f} changes/s; {len(schedule)} faults "
            f"({', '.join(f'{k} x{n}' for k, n in mix.items()) or 'none'})")
        injector = _Injector(settings, tail)
        onsale = OnSale(settings, rate=rate, seed=seed, hold_ttl=hold_ttl)
        results: list[FaultResult] = []
        t0 = time.time()
        current: tuple[FaultResult, int | None, float] | None = None
        next_allowed = t0
        committed = 0
        last_count = 0.0
        pending = list(schedule)
        try:
            while True:
                now = time.time()
                onsale.keep_going()
                if now - last_count >= 2:
                    last_count = now
                    total = _version_sum(settings)
                    if total is not None:
                        committed = total - base_sum
                if current is not None:
                    result, pid, at = current
                    # Healed: flowing again. Then fresh: the backlog drained, and only then the
                    # next fault, so that each one's heal and staleness are its own.
                    if result.healed_s is None and injector.healed(result.kind, pid, at):
                        result.healed_s = round(time.time() - at, 2)
                        say(f"{result.at_s:7.1f} s  {result.kind} healed in {result.healed_s:.1f} s")
                    if result.healed_s is not None and tail.fresh_since(at):
                        result.fresh_s = round(time.time() - at, 2)
                        say(f"{result.at_s:7.1f} s  {result.kind}: fresh again after "
                            f"{result.fresh_s:.1f} s")
                        current, next_allowed = None, time.time() + min_gap_s
                    elif now - at > heal_timeout_s:
                        what = "fresh again" if result.healed_s is not None else "healed"
                        say(f"{result.at_s:7.1f} s  {result.kind} NOT {what} after "
                            f"{heal_timeout_s:.0f} s")
                        current, next_allowed = None, now + min_gap_s
                elif pending and now - t0 >= pending[0].at_s and now >= next_allowed:
                    fault = pending.pop(0)
                    at = time.time()
                    try:
                        target, pid = injector.inject(fault.kind)
                    except (RuntimeError, OSError, psutil.Error, subprocess.SubprocessError) as e:
                        results.append(FaultResult(fault.kind, round(at - t0, 2), "", None,
                                                   error=str(e)))
                        say(f"{at - t0:7.1f} s  {fault.kind}: not injected: {e}")
                        next_allowed = at + min_gap_s
                        continue
                    result = FaultResult(fault.kind, round(at - t0, 2), target, None)
                    results.append(result)
                    current = (result, pid, at)
                    say(f"{result.at_s:7.1f} s  {fault.kind}: {target} "
                        f"({committed:,} changes committed so far)")
                enough = committed >= changes or (duration is not None and now - t0 >= duration)
                if enough and not pending and current is None and now >= next_allowed + settle_s:
                    break
                if now - t0 > max_seconds:
                    say(f"stopping after {max_seconds:.0f} s with {len(pending)} faults left")
                    break
                if tail.error is not None:
                    raise RuntimeError(f"the seat-availability reader failed: {tail.error}")
                time.sleep(0.2)
        finally:
            onsale.stop()
        t_end = time.time()
        say(f"on-sale over after {t_end - t0:.0f} s; waiting for the pipeline to catch up")
        catch_up: float | None = None
        try:
            wait_caught_up(settings, timeout_s=catch_up_timeout_s, say=_every(say, 10))
            ends = end_offsets(settings.kafka_bootstrap, SEAT_AVAILABILITY)
            try:
                poll(lambda: tail.reached(ends), until=bool, timeout_s=120, every_s=0.2)
            except PollTimeoutError as e:
                raise TimeoutError(f"the report's reader of {SEAT_AVAILABILITY} did not reach "
                                   "its end within 120 s") from e
            catch_up = round(time.time() - t_end, 1)
        except TimeoutError as e:
            say(f"not caught up: {e}")
        tail.stop.set()
        tail.join(30)
        after = seat_versions(settings)
        committed_versions, lost, lost_examples = tail.ledger.lost(before, after)
        say("reconciling the events with the database")
        events = sorted({e for e, _ in after})
        reconciliations = reconcile_events(settings, events)
        anomalies = _records_since(settings, ANOMALIES, side_starts[ANOMALIES], since_ms)
        dead = _records_since(settings, DEAD_LETTER, side_starts[DEAD_LETTER], since_ms)
    finally:
        if started_processor:
            stack.stop_app(settings, "processor")
    injected = [r for r in results if not r.error]
    # Staleness per fault: from its injection until the next fault (or the on-sale's end).
    starts = [t0 + r.at_s for r in injected]
    windows = list(zip(starts, [*starts[1:], t_end], strict=True))
    for r, stale in zip(injected, tail.staleness(windows), strict=True):
        r.staleness_s = stale
    return ChaosReport(
        rate_target=rate,
        seconds=round(t_end - t0, 1),
        changes_committed=committed_versions,
        changes_published=len(tail.commits),
        versions_lost=lost,
        versions_duplicated=tail.ledger.duplicated,
        seat_differences=sum(len(r.seat_differences) for r in reconciliations.values()),
        count_differences=sum(len(r.count_differences) for r in reconciliations.values()),
        anomalies=anomalies,
        dead_letters=dead,
        catch_up_s=catch_up,
        faults=results,
        kinds=summarise_kinds(injected),
        lost_examples=lost_examples,
        duplicate_examples=tail.ledger.duplicate_examples,
        reconciliation=[r.summary() for r in reconciliations.values() if not r.passed],
        seed=seed,
    )

