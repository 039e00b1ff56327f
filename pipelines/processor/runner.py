"""The processor's I/O: CDC topics in, availability topics out, one transaction per batch."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import NoReturn

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from pipelines.avro import CODEC_NAME, registry_client
from pipelines.kafka import clients
from pipelines.kafka.groups import group_offsets, unstable_offsets
from pipelines.kafka.reading import next_records
from pipelines.processor.aggregate import Availability
from pipelines.processor.codec import RecordDecoder, lookup_encoders
from pipelines.processor.config import (
    TRANSACTION_TIMEOUT_S,
    OffsetsLostError,
    ProcessorConfig,
    ProcessorError,
    RunStats,
)
from pipelines.processor.engine import Batch, BatchEngine, BatchStats
from pipelines.processor.guards import (
    EXIT_HUNG,
    Watchdog,
    any_broker_answers,
    tune_garbage_collector,
)
from pipelines.processor.intake import Intake, is_fatal, resume_at, start_positions
from pipelines.processor.published import POLL_RECORDS, PublishedState, Unreadable
from pipelines.processor.reference_feed import ReferenceFeed
from pipelines.settings import Settings

__all__ = ["AvailabilityRunner", "run_processor"]

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _kafka_transient(error: BaseException) -> bool:
    """A transaction call that can simply be made again (a timeout while the broker restarts)."""
    if not isinstance(error, KafkaException):
        return False
    e = error.args[0]
    return bool(e.retriable()) and not e.fatal() and not e.txn_requires_abort()


# Committing waits out a broker restart (bounded backoff, logged), within the transaction's
# timeout; what cannot be retried aborts the batch, which is then read again.
_transaction_retry = retry(retry=retry_if_exception(_kafka_transient),
                           wait=wait_exponential(multiplier=0.1, max=2),
                           stop=stop_after_delay(30),
                           before_sleep=before_sleep_log(log, logging.WARNING), reraise=True)
# How long committing a batch (offsets, commit, with their retries) may take before the worker
# gives up on its producer (a commit takes milliseconds; a fresh worker waits for a restarting
# broker in init_transactions just as well, so giving up early costs nothing).
# librdkafka's send_offsets_to_transaction can block for ever, past
# its timeout, when the group coordinator goes away under it (librdkafka issues #5456, #5511;
# seen here after a broker SIGKILL): no exception ever comes, so the process exits and its
# supervisor starts a fresh one, which fences the old transaction and goes on.
COMMIT_LIMIT_S = 10.0
# How long a new assignment waits for the group's committed offsets. They are pending while a
# transaction that commits them is open: one never stays open longer than
# TRANSACTION_TIMEOUT_S, so a longer wait is a broker that lost a transaction marker.
COMMITTED_WAIT_S = 2.0 * TRANSACTION_TIMEOUT_S


class AvailabilityRunner:
    """The Kafka shell around the batch engine: consumes the CDC topics and publishes what the
    engine says, exactly once, one transaction per batch."""

    def __init__(self, settings: Settings, config: ProcessorConfig) -> None:
        self.settings = settings
        self.config = config
        self._streaming = False  # set once started: at start, init_transactions waits instead
        registry = registry_client(settings)
        self.decoder = RecordDecoder.of(registry, config)
        self.encoders = lookup_encoders(registry, config)
        self.producer = clients.producer(settings, **config.producer_settings(),
                                         error_cb=self._on_client_error)
        self._produce = self.producer.produce
        # Followed all along by a warm standby (follow()); read at each assignment otherwise.
        self.published: PublishedState | None = None
        self._engine: BatchEngine | None = None
        self.consumer = clients.consumer(settings, **config.consumer_settings(),
                                         error_cb=self._on_client_error)
        self._registry = registry
        self._admin = clients.admin(settings)
        self.references: ReferenceFeed | None = None
        self.stats = RunStats(codec=CODEC_NAME)
        self._assign_error: BaseException | None = None
        # A fatal error of either client, as its error_cb reports it: librdkafka raises some
        # (a static member fenced by another with its group.instance.id) in no poll result.
        self._fatal: KafkaError | None = None
        self._watchdog = Watchdog(config.exit_when_hung)

    def follow(self, timeout: float) -> None:
        """As a warm standby: keep reading the published state, so that taking over costs only
        the records published since; the reference data is loaded already (prepare)."""
        if self.published is None:
            self.published = PublishedState(self.settings, self.config.seat_topic, self._registry)
            self.prepare()
        if self.published.poll(timeout) < POLL_RECORDS:  # caught up for now: decode what came
            self.published.apply()

    def prepare(self) -> None:
        """What needs no transactional id: the reference data (its topics followed from their
        current end, then the database loaded) and the engine. A standby does it while it waits,
        so that a take-over does not wait for the database (stack/NOTES.md)."""
        if self._engine is not None:
            return
        config = self.config
        self.references = ReferenceFeed(self.settings, config.reference_topics, self._admin,
                                        from_db=config.load_reference_from_db)
        reference = self.references.reference
        # The seats' state comes partition by partition, as the group assigns them (_on_assign).
        self._engine = BatchEngine(Availability(), reference, self.encoders, config.output_topics,
                                   reference_wait_ms=config.reference_wait_ms)

    def start(self) -> None:
        """Take over: fence the predecessor, then prepare (unless a standby did). The published
        state comes with each assignment (_on_assign). Until this, the runner holds no
        transactional id and publishes nothing."""
        started = time.monotonic()
        # Fences a zombie with the same transactional id and aborts its open transaction,
        # before the state is read back from the output topic.
        try:
            _transaction_retry(self.producer.init_transactions)(60)
        except KafkaException as e:
            raise ProcessorError(f"cannot initialise transactions: {e.args[0]}") from e
        fenced = time.monotonic()
        self.prepare()
        tune_garbage_collector()
        log.info("fenced in %.2f s, ready in %.2f s; the %s Avro codec", fenced - started,
                 time.monotonic() - fenced, CODEC_NAME)

    @property
    def engine(self) -> BatchEngine:
        if self._engine is None:
            raise ProcessorError("the runner has not started (start() takes over)")
        return self._engine

    @property
    def availability(self) -> Availability:
        return self.engine.availability

    def _on_client_error(self, error: KafkaError) -> None:
        """A fatal error ends the run (see run). A supervised worker whose brokers are all gone
        exits at once: its successor waits for them in init_transactions and starts clean, while
        this one's producer would block in send_offsets_to_transaction once they are back (see
        COMMIT_LIMIT_S)."""
        if is_fatal(error):
            self._fatal = error
        if (error.code() == KafkaError._ALL_BROKERS_DOWN and self.config.exit_when_hung
                and self._streaming and not any_broker_answers(self.settings)):
            log.critical("all brokers are down: exiting, so that a fresh processor takes over "
                         "when they are back")
            logging.shutdown()
            os._exit(EXIT_HUNG)

    def close(self) -> None:
        """Release the clients. Closing runs while the error that ended the run propagates: a
        client in a fatal state (a zombie, fenced) raises that state again here, which is
        logged, not raised, so that it never replaces the reason the run stopped."""
        if self.published is not None:
            self.published.close()
        if self.references is not None:
            self.references.close()
        for what, release in (("consumer", self.consumer.close),
                              ("producer", lambda: self.producer.flush(10))):
            try:
                release()
            except KafkaException as e:
                log.warning("closing the %s: %s", what, e.args[0])

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each partition at the group's committed offset; at the beginning where the group
        committed none; and fail loudly where the committed offset was trimmed away."""
        try:
            committed = self._committed(partitions)
            lows = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[0]
                    for tp in committed}
            starts, lost = start_positions({(tp.topic, tp.partition): tp.offset
                                            for tp in committed}, lows)
            if lost:
                raise OffsetsLostError(lost)
            for tp in committed:
                tp.offset = starts[(tp.topic, tp.partition)]
            self._take_state(sorted(tp.partition for tp in partitions))
            consumer.incremental_assign(committed)
        except BaseException as e:  # raised from poll() by run(): a callback cannot raise
            self._assign_error = e
            consumer.incremental_assign(partitions)

    def _take_state(self, partitions: list[int]) -> None:
        """The published state of newly assigned partitions (the same partitions of the
        co-partitioned seat topic), read to their committed end: the previous owner gave them up
        between two of its transactions, or was fenced. A warm standby has read most of it."""
        started = time.monotonic()
        published = self.published or PublishedState(
            self.settings, self.config.seat_topic, self._registry, partitions=partitions)
        self.published = None  # a standby's head start serves its first assignment only
        try:
            published.catch_up(partitions)
            unreadable = published.unreadable
            taken = self.engine.take_over(partitions, published.availability)
        finally:
            published.close()
        log.info("assigned partitions %s: state of %d seats (%d deleted) in %.2f s", partitions,
                 len(taken.seats), len(taken.deleted), time.monotonic() - started)
        if unreadable:
            self._dead_letter_unreadable(unreadable)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions going to another instance (between two transactions: none is open in a
        poll): forget their state."""
        gone = sorted(tp.partition for tp in partitions)
        if gone and self._engine is not None:
            self.engine.revoke(self.config.seat_inventory_topic, gone)
            log.info("revoked partitions %s", gone)

    def _committed(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The group's committed offsets, stable ones only (read_committed: an offset commit of
        an open transaction is waited for). Longer than any transaction may stay open, the wait
        means the group coordinator lost a transaction's marker (seen after a broker crash,
        stack/NOTES.md): then the offsets committed for good. Either way the transaction is
        over: if it was aborted they are right; if it committed, its changes are in the
        published state, which the engine reads, and are skipped by their versions."""
        try:
            return self.consumer.committed(partitions, timeout=COMMITTED_WAIT_S)
        except KafkaException as e:
            if e.args[0].code() != KafkaError._TIMED_OUT:
                raise
            unstable = unstable_offsets(self._admin, self.config.group_id, partitions)
            if not unstable:
                raise
            log.error("the group coordinator has held offset commits of %s as pending "
                      "(UNSTABLE_OFFSET_COMMIT) for over %.0f s, longer than any transaction may "
                      "stay open: it lost a transaction's marker. Starting from the offsets "
                      "committed for good", ", ".join(unstable), COMMITTED_WAIT_S)
            return group_offsets(self._admin, self.config.group_id, partitions, timeout=10)

    def run(self, *, should_stop: Callable[[], bool], until_end: bool = False,
            on_batch: Callable[[BatchStats], None] | None = None,
            on_ready: Callable[[], None] | None = None) -> RunStats:
        """Process until should_stop(); on_ready is called once, when the state is rebuilt and
        the input partitions are assigned."""
        subscribed_at = time.monotonic()
        self.consumer.subscribe(self.config.input_topics, on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_revoke)
        self._streaming = True
        intake = Intake()
        first_record_at: float | None = None
        while not should_stop():
            # A batch is as large as the backlog: no record waits for a timer.
            messages = next_records(self.consumer, self.config.batch_size,
                                    self.config.batch_timeout_s)
            if self.references is not None:
                messages = [*self.references.records(self.config.batch_size), *messages]
            if self._assign_error is not None:
                self._fail(self._assign_error)
            if self._fatal is not None:
                # Fenced, as a zombie is: another instance has this slot's ids. Publishing on
                # is impossible (the broker refuses its epoch), and stopping says so at once.
                raise ProcessorError(f"fatal Kafka error: {self._fatal}")
            polled = intake.sort(messages)
            if (gone := polled.lost) is not None:
                low, _ = self.consumer.get_watermark_offsets(
                    TopicPartition(gone.topic, gone.partition), timeout=10)
                self._fail(OffsetsLostError([(gone.topic, gone.partition, gone.offset, low)]))
            if polled.fatal is not None:
                raise ProcessorError(f"consumer failed: {polled.fatal}")
            records = polled.records
            if records and first_record_at is None:
                first_record_at = time.monotonic()
            if records or self.engine.pending:
                batch = self._batch(records)
                done_at = time.monotonic()
                self.stats.run_seconds = done_at - subscribed_at
                if first_record_at is not None:
                    self.stats.busy_seconds = done_at - first_record_at
                if batch is None:
                    self.stats.aborted += 1
                    intake.rewound()
                else:
                    self.stats.add(batch)
                    if on_batch:
                        on_batch(batch)
            assignment = self.consumer.assignment()
            if on_ready is not None and assignment:
                on_ready()
                on_ready = None
            if (until_end and not records and not self.engine.pending and assignment
                    and intake.all_at_end(len(assignment))):
                break
        return self.stats

    def _fail(self, error: BaseException) -> NoReturn:
        """Raise `error`; when changes were trimmed away, first move the group past the gap
        (to each partition's log start), so that the next start streams again while the
        affected events are backfilled: loudly, never silently."""
        if isinstance(error, OffsetsLostError):
            log.error("%s", error)
            self.producer.begin_transaction()
            self.producer.send_offsets_to_transaction(
                [TopicPartition(t, p, low) for t, p, _, low in error.lost],
                self.consumer.consumer_group_metadata(), 30)
            _transaction_retry(self.producer.commit_transaction)(60)
            log.error("moved the group to the log start of %s: those events need a backfill",
                      ", ".join(f"{t}[{p}]" for t, p, _, _ in error.lost))
        raise error

    def _send(self, topic: str, value: bytes | None, key: bytes | None,
              headers: list[tuple[str, bytes]] | None, partition: int | None) -> None:
        """Produce; when the producer's queue is full (a truncate of a whole stadium is one
        transaction of tombstones), wait for room."""
        where = -1 if partition is None else partition  # -1: the producer's partitioner
        while True:
            try:
                if headers is None:
                    self._produce(topic, value, key, where)
                else:
                    self._produce(topic, value, key, where, headers=headers)  # type: ignore[arg-type]
                return
            except BufferError:
                self.producer.poll(0.1)

    def _batch(self, records: list[Message]) -> BatchStats | None:
        """One transaction: publish the batch and commit its offsets; None when aborted."""
        # Decoded before the transaction begins: a registry that is away is waited for
        # (AvroDecoder retries), holding the stream, with no transaction open meanwhile.
        decoded = [self.decoder.decode(msg) for msg in records]
        engine = self.engine
        try:
            self.producer.begin_transaction()
        except KafkaException as e:  # fenced by a successor with this slot's id: a zombie
            raise ProcessorError(f"cannot begin a transaction: {e.args[0]}") from e
        b = None
        try:
            b = engine.begin(_now_ms(), len(records), self._send)
            engine.apply(b, records, decoded)
            engine.finish(b)
            self.producer.poll(0)
            committing = time.monotonic()
            with self._watchdog.limit("committing a batch", COMMIT_LIMIT_S):
                _transaction_retry(self.producer.send_offsets_to_transaction)(
                    self._offsets(), self.consumer.consumer_group_metadata(), 10)
                _transaction_retry(self.producer.commit_transaction)(10)
            b.stats.commit_ms = round((time.monotonic() - committing) * 1000, 1)
        except KafkaException as e:
            error = e.args[0]
            if error.fatal() or not (error.txn_requires_abort() or error.retriable()):
                raise ProcessorError(f"transaction failed and cannot be retried: {error}") from e
            log.warning("aborting a batch of %d records: %s", len(records), error)
            self._abort(b)
            return None
        except BaseException:
            # Interrupted (Dagster terminating the run, Ctrl-C) or a bug: leave nothing half done.
            self._abort(b)
            raise
        batch = engine.done(b, _now_ms())
        batch.lag = self._lag()
        return batch

    def _abort(self, b: Batch | None) -> None:
        try:
            with self._watchdog.limit("aborting a batch", COMMIT_LIMIT_S):
                _transaction_retry(self.producer.abort_transaction)(10)
        except KafkaException as e:
            raise ProcessorError(f"cannot abort the transaction: {e.args[0]}") from e
        if b is not None:
            self.engine.abort(b)
        else:
            self.engine.pending = []
        for tp in self.consumer.committed(self.consumer.assignment(), timeout=30):
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, resume_at(tp.offset)))
        if self.references is not None:
            self.references.rewind()

    def _offsets(self) -> list[TopicPartition]:
        """Positions to commit; a partition with pending records commits at its oldest one."""
        floors = self.engine.commit_floors()
        positions = self.consumer.position(self.consumer.assignment())
        return [TopicPartition(tp.topic, tp.partition, floors.get((tp.topic, tp.partition),
                                                                   tp.offset))
                for tp in positions if tp.offset >= 0]

    def _lag(self) -> int:
        lag = 0
        for tp in self.consumer.position(self.consumer.assignment()):
            if tp.topic == self.config.seat_inventory_topic and tp.offset >= 0:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                lag += max(high - tp.offset, 0)
        return lag

    def _dead_letter_unreadable(self, unreadable: list[Unreadable]) -> None:
        now = _now_ms()
        self.producer.begin_transaction()
        for bad in unreadable:
            self.engine.send_dead_letter(self._send, dict(
                key=bad.key, value=bad.value, headers=[], where=bad.where, timestamp_ms=None,
                reason="unreadable_state", error=bad.error, failed_at_ms=now))
        _transaction_retry(self.producer.commit_transaction)(60)


def run_processor(
    settings: Settings,
    *,
    should_stop: Callable[[], bool],
    until_end: bool = False,
    config: ProcessorConfig | None = None,
    on_batch: Callable[[BatchStats], None] | None = None,
    on_ready: Callable[[], None] | None = None,
    standby: Callable[[], bool] | None = None,
) -> RunStats:
    """Process changes until should_stop() is true (or, with until_end, the input's end).

    With `standby`, wait as a warm standby (following the published state, publishing nothing)
    until standby() says to take over."""
    runner = AvailabilityRunner(settings, config or ProcessorConfig.of(settings))
    try:
        while standby is not None and not standby():
            if should_stop():  # stopped before taking over: fence nobody
                return RunStats(codec=CODEC_NAME)
            runner.follow(0.2)
        runner.start()
        return runner.run(should_stop=should_stop, until_end=until_end, on_batch=on_batch,
                          on_ready=on_ready)
    except KafkaException as e:
        # A client in a fatal state (a zombie's producer, fenced by its successor) fails
        # whichever call comes next, wherever it is: the run ends on it, named as such.
        if e.args[0].fatal():
            raise ProcessorError(f"fatal Kafka error: {e.args[0]}") from e
        raise
    finally:
        runner.close()
