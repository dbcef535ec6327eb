"""The exactly-once poll → handle → produce → commit loop that refold's Kafka processes share.

A `Processor` (`consumers.batch`) says what a batch means; `TransactionalLoop` owns the clients
and the guarantee. Every batch is one Kafka transaction, in numbered steps:

1. poll the assigned partitions (read_committed), then take up to `batch_size` messages (with
   companion topics, merged per partition in timestamp order: `consumers.companions`);
2. `begin_transaction`;
3. `processor.handle(messages, out)`: stage state changes in memory, produce outputs via `out`;
4. `send_offsets_to_transaction(next offsets, group metadata)`: the input offsets join the txn;
5. `commit_transaction` (flushes the outputs): offsets and outputs become visible together;
6. `processor.promote()`: the staged state becomes the state.

Errors are handled by class: a *retriable* one retries the call; one that *requires abort* (or a
`produce` refused because the transaction already failed, see `consumers.txn`) aborts the
transaction, seeks the batch's partitions back to their committed offsets and calls
`processor.rollback()`, so the batch is read and handled again (with a growing pause; after
`MAX_ABORTS_IN_A_ROW` it gives up); a *fatal* one (fenced by a newer instance with the same
transactional.id, among others) raises `KafkaFatalError`.

A *stalled* producer is replaced: when `send_offsets_to_transaction`, `commit_transaction` or
`abort_transaction` times out (`CALL_TIMEOUT_S`), retrying on the same producer may never succeed
(librdkafka can be left without a broker after a broker restart, `consumers.txn.TXN_PRODUCER`).
A new producer of the same transactional.id ends the open transaction (fencing the old one);
whether the batch committed is then read from the group's committed offsets: if it did, the batch
is done, if not, it is redone as after an abort. Between batches, a processor's `inputless` work
runs in transactions of its own (`consumers.inputless`).

`guarantee="at-least-once"`: outputs flushed, then offsets committed; a crash in between delivers
outputs again (the worker's id de-dup keeps its state exact). Test hook: `consumers.crash`. A
`handle()` that raises is rolled back and retried smaller and smaller (`consumers.isolate`) until
its one message is found, for the processor's `quarantine`. Partitions restoring are paused
(`consumers.rebalance`). `stop()` lets a batch commit first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from consumers.batch import (
    LoopStats,
    Output,
    Processor,
    fetch_error,
    first_offsets,
    next_offsets,
    usable,
)
from consumers.companions import Companions
from consumers.crash import CrashPoint
from consumers.inputless import InputlessRunner
from consumers.instances import refuse_twin
from consumers.isolate import PoisonIsolator
from consumers.output_producer import OutputProducer
from consumers.rebalance import Assignment
from consumers.txn import CALL_TIMEOUT_S, TXN_TIMEOUT_S, Stalled, abortable, error_of
from refold.core.config import Settings
from refold.core.kafka import (
    AUTHORIZATION,
    KafkaFatalError,
    consumer_config,
    make_consumer,
    raise_fatal_cause,
    where,
)
from refold.core.probes import Probes

log = logging.getLogger(__name__)

MAX_ABORTS_IN_A_ROW = 8
GUARANTEES = ("exactly-once", "at-least-once")


class TransactionalLoop:
    """Run a `Processor` over topics exactly once: `run()` until `stop()`, a limit, or idleness.

    `transactional_id` must be stable for one worker slot and unique among live workers: a
    restarted worker with the same id fences its predecessor's zombie and aborts its open txn.
    """

    def __init__(
        self,
        settings: Settings,
        processor: Processor,
        *,
        topics: list[str],
        group_id: str,
        transactional_id: str,
        batch_size: int | None = None,
        poll_timeout: float = 0.5,
        max_messages: int | None = None,
        idle_exit: float | None = None,
        consumer_extra: dict[str, Any] | None = None,
        producer_extra: dict[str, Any] | None = None,
        guarantee: str = "exactly-once",
        on_producer: Callable[[Producer], Producer] | None = None,
        client_role: str = "worker",
        probes: Probes | None = None,
        check_instance: bool = True,
        companions: Sequence[str] = (),
    ) -> None:
        if guarantee not in GUARANTEES:
            raise ValueError(f"guarantee must be one of {GUARANTEES}, not {guarantee!r}")
        self.settings = settings
        self.processor = processor
        self.topics = topics
        self.group_id = group_id
        self.transactional_id = transactional_id
        self.batch_size = batch_size or settings.batch_size
        self.poll_timeout = poll_timeout
        self.max_messages = max_messages
        self.idle_exit = idle_exit
        self.consumer_extra = Companions.consumer_config(consumer_extra) if companions \
            else consumer_extra or {}
        self.producer_extra = producer_extra or {}
        self.guarantee = guarantee
        self.client_role = client_role
        """Names the clients (`refold.<role>.<instance id>`) and the instance check's member."""
        self.probes = probes or Probes()
        """Beaten every iteration; held not ready until the partitions are assigned and their
        processor has taken them (a worker restores their state then)."""
        self.check_instance = check_instance
        self.stats = LoopStats()
        strategy = consumer_config(settings, group_id, self.consumer_extra)[
            "partition.assignment.strategy"]
        self._companions = Companions(settings, topics[0], companions) if companions else None
        self.assignment = Assignment(processor, self.probes,
                                     cooperative="cooperative" in strategy, touched=self._touch,
                                     companions=self._companions)
        """The partitions assigned (and paused while restoring); the rebalance callbacks."""
        self.isolator = PoisonIsolator(self.batch_size, settings.handle_retries)
        self._stopping = False
        self._aborts_in_a_row = 0
        self._last_activity = self._begun = time.monotonic()  # _begun: the batch's start
        self.consumer: Consumer | None = None
        """The consumer, made by `run` (a monitor reads lag through it between batches)."""
        self.output = OutputProducer(settings, transactional_id, exactly_once=(
            guarantee == "exactly-once"), extra=self.producer_extra, purpose=client_role,
            on_producer=on_producer)
        """The output producer (`on_producer` may wrap each one it makes: fault tests)."""
        self.inputless = InputlessRunner(settings, self.output, topics[0], exactly_once=(
            guarantee == "exactly-once"), consumer=lambda: self.consumer, touched=self._touch)
        self._crash = CrashPoint.from_env()
        self._fetch_error = partial(fetch_error, group_id=group_id, topics=topics)

    @property
    def assigned(self) -> set[tuple[str, int]]:
        return self.assignment.assigned

    @property
    def paused(self) -> set[tuple[str, int]]:
        return self.assignment.paused

    # -- lifecycle

    def stop(self) -> None:
        """Ask the loop to finish its current batch and exit (safe from a signal handler)."""
        self._stopping = True

    def run(self) -> LoopStats:
        """Consume until stopped; commits every handled batch, then leaves the group cleanly."""
        exactly_once = self.guarantee == "exactly-once"
        self.probes.hold("joining", f"joining group {self.group_id}")
        if self.check_instance:
            refuse_twin(self.settings, self.group_id, self.client_role, self.consumer_extra)
        self.output.start()
        self.consumer = make_consumer(self.settings, self.group_id, self.consumer_extra,
                                      purpose=self.client_role)
        self.assignment.subscribe(self.consumer, self.topics)
        self.stats = LoopStats()
        self._last_activity = time.monotonic()
        try:
            while not self._done():
                self.probes.beat()
                self.processor.between_batches()
                self.assignment.resume_ready(self.consumer)
                self.inputless.run(getattr(self.processor, "inputless", None))
                messages = self._consume()
                if messages:
                    self._last_activity = time.monotonic()
                    if self.stats.first_batch is None:
                        self.stats.first_batch = self._last_activity
                    if exactly_once:
                        self._batch(messages)
                    else:
                        self._batch_at_least_once(messages)
        finally:
            self.stats.finished = time.monotonic()
            self._close()
        return self.stats

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _done(self) -> bool:
        if self._stopping:
            return True
        if self.max_messages is not None and self.stats.messages >= self.max_messages:
            return True
        idle = time.monotonic() - self._last_activity
        return self.idle_exit is not None and idle >= self.idle_exit

    def _consume(self) -> list[Message]:
        """Step 1: wait for a first message, then take what is already fetched, up to a batch.

        (`consume(n, timeout)` would wait for n messages: at low traffic, every event would wait
        the whole timeout.) Messages of partitions revoked meanwhile are left out.
        """
        n = min(self.batch_size, self.isolator.cap)  # smaller while a poison message is sought
        if self.max_messages is not None:
            n = min(n, self.max_messages - self.stats.messages)
        assert self.consumer is not None
        if self._companions is not None:
            return self._companions.consume(self.consumer, self.assigned, n, self.poll_timeout,
                                            self._fetch_error)
        first = self.consumer.poll(self.poll_timeout)
        more = self.consumer.consume(n - 1, 0) if first is not None and n > 1 else []
        return usable([] if first is None else [first, *more], self.assigned, self._fetch_error)

    def _close(self) -> None:
        if self._companions is not None:
            self._companions.close()
        if self.consumer is not None:
            try:
                self.consumer.close()  # leaves the group: revokes (committed) partitions now
            except (KafkaException, KafkaFatalError, RuntimeError) as exc:
                log.warning("closing the consumer: %s", exc)
        self.output.close()

    # -- one batch, one transaction

    def _batch(self, messages: list[Message]) -> None:
        assert self.consumer is not None and self.output.producer is not None
        producer = self.output.producer
        out, self._begun = Output(producer, track_delivery=True), time.monotonic()
        try:
            self.output.call("begin_transaction", producer.begin_transaction)  # 2
            self.processor.handle(messages, out)  # 3
            handled = time.monotonic()
            self._crash_if("after_produce")
            self.output.call("send_offsets_to_transaction", producer.send_offsets_to_transaction,
                       next_offsets(messages), self.consumer.consumer_group_metadata(),
                       CALL_TIMEOUT_S, stalls=True)  # 4
            self._crash_if("after_offsets")
            self.output.call("commit_transaction", producer.commit_transaction, CALL_TIMEOUT_S,
                       stalls=True)  # 5
            self._crash_if("after_commit")
        except KafkaFatalError:
            raise
        except Stalled as exc:
            log.warning("the batch %s..%s stalled: %s", where(messages[0]), where(messages[-1]),
                        exc)
            self.output.replace(exc)
            if self._landed(messages):
                self._committed(messages, handled)
            else:
                self._redo(messages, exc)
            return
        except KafkaException as exc:
            if error_of(exc).code() in AUTHORIZATION:
                out.raise_unwritable(error_of(exc), self.settings)
            if not abortable(error_of(exc)):
                raise self.output.fatal("transaction", error_of(exc)) from exc
            log.warning("aborting the batch %s..%s: %s",
                        where(messages[0]), where(messages[-1]), error_of(exc))
            self.output.abort()
            self._redo(messages, error_of(exc))
            return
        except Exception as exc:  # handle() raised: leave Kafka and memory clean, then retry
            raise_fatal_cause(exc)
            self.output.abort()
            self._roll_back(messages)
            self._isolate(messages, exc)
            return
        except BaseException:
            self.output.abort()
            self._roll_back(messages)
            raise
        out.serve_reports()
        self._committed(messages, handled)

    def _isolate(self, messages: list[Message], exc: Exception) -> None:
        """A batch's handling raised (the batch is rolled back): retry it, smaller and smaller
        (`consumers.isolate`), until the one message that raises is found; the processor then
        rejects it. A processor that cannot reject (no `quarantine`) stops the loop."""
        quarantine = getattr(self.processor, "quarantine", None)
        if quarantine is None:
            raise exc
        self.stats.handle_failures += 1
        log.error("handling %d message(s) %s..%s raised (%s: %s): retrying%s", len(messages),
                  where(messages[0]), where(messages[-1]), type(exc).__name__, exc,
                  " smaller" if self.isolator.searching else "",
                  exc_info=None if self.isolator.searching else exc)  # the first time: where
        culprit = self.isolator.failed(messages)
        if culprit is not None:
            log.error("%s raises whenever it is handled: it goes to the dead letters",
                      where(culprit))
            quarantine(culprit, exc)
            self.isolator.isolated()
        time.sleep(0.05)

    def _redo(self, messages: list[Message], cause: object) -> None:
        """After a failed transaction: roll the batch back and rewind its partitions, so it is
        read and handled again, after a pause that grows with the failures in a row."""
        self.stats.aborts += 1
        self._roll_back(messages)
        self._aborts_in_a_row += 1
        if self._aborts_in_a_row > MAX_ABORTS_IN_A_ROW:  # not transient: do not spin
            raise KafkaFatalError(f"{self._aborts_in_a_row} aborted transactions in a row, "
                                  f"the last: {cause}")
        time.sleep(min(0.1 * 2**self._aborts_in_a_row, 5.0))

    def _landed(self, messages: list[Message]) -> bool:
        """Whether the batch's offsets are the group's committed ones (its transaction
        committed). Asked after a new producer ended the transaction, so the answer is stable;
        if it cannot be had, the worker stops rather than guess."""
        assert self.consumer is not None
        want = self.assignment.held({(tp.topic, tp.partition): tp.offset
                                     for tp in next_offsets(messages)})
        tps = [TopicPartition(t, p) for t, p in want]
        try:
            got = self.output.call("committed", self.consumer.committed, tps,
                                   timeout=CALL_TIMEOUT_S)
        except KafkaException as exc:
            raise KafkaFatalError(f"whether a stalled transaction committed is unknown: "
                                  f"{error_of(exc)}") from exc
        return all(tp.offset == want[(tp.topic, tp.partition)] for tp in got)

    def _committed(self, messages: list[Message], handled: float) -> None:
        durable = time.monotonic()
        self.processor.promote()  # 6
        self.isolator.succeeded(len(messages))
        self._aborts_in_a_row = 0
        self.stats.committed(len(messages), self._begun, handled, durable)

    def _batch_at_least_once(self, messages: list[Message]) -> None:
        """handle → flush every output → commit the offsets: a crash between flush and commit
        delivers the batch's outputs again."""
        assert self.consumer is not None and self.output.producer is not None
        out, self._begun = Output(self.output.producer, track_delivery=True), time.monotonic()
        try:
            self.processor.handle(messages, out)
            handled = time.monotonic()
            self._crash_if("after_produce")
            left = self.output.producer.flush(TXN_TIMEOUT_S)
            if left or out.failed:
                raise KafkaFatalError(f"{left} output(s) not delivered, "
                                      f"{len(out.failed)} failed: {out.failed[:3]}")
            # asynchronous: a commit waits behind the consumer's parked fetch, and a lost one
            # only means more duplicates after a crash, which this mode accepts
            self.output.call("commit", self.consumer.commit, offsets=next_offsets(messages),
                       asynchronous=True)
            self._crash_if("after_commit")
        except KafkaFatalError:
            self._roll_back(messages)
            raise
        except Exception as exc:  # handle() raised: the offsets stay, the batch is redone
            self._roll_back(messages)
            raise_fatal_cause(exc)
            self._isolate(messages, exc)
            return
        except BaseException:
            self._roll_back(messages)  # the offsets stay where they were: the batch is redone
            raise
        self._committed(messages, handled)

    def _crash_if(self, point: str) -> None:
        """The test hook (`consumers.crash`): SIGKILL at `point` of the n-th batch."""
        if self._crash is not None and self._crash.due(point, self.stats.batches + 1):
            assert self.output.producer is not None
            self.output.producer.flush(TXN_TIMEOUT_S)  # the outputs reach the broker, uncommitted
            self._crash.kill()

    def _roll_back(self, messages: list[Message]) -> None:
        """Drop the batch's staged state and seek its partitions (those still assigned) back to
        their committed offsets, so that the batch is read and handled again."""
        assert self.consumer is not None
        self.processor.rollback()
        first = self.assignment.held(first_offsets(messages))
        tps = [TopicPartition(t, p) for t, p in first]
        try:
            committed = self.consumer.committed(tps, timeout=CALL_TIMEOUT_S)
        except KafkaException as exc:
            log.warning("committed offsets unavailable (%s): rewinding to the batch start", exc)
            committed = tps
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else first[(tp.topic, tp.partition)]
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            log.info("rewound %s[%d] to %d", tp.topic, tp.partition, offset)
        if self._companions is not None:
            self._companions.rewound(first)
