"""A micro-batch as `consumers.loop` and its processors see it: the processor contract, the
output producer, the offsets a commit records, what a run did, and the side inputs a processor
applies between batches.

>>> stats = LoopStats(first_batch=1.0, last_commit=3.5)
>>> stats.busy_seconds
2.5
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from refold.core.config import Settings
from refold.core.errors import KafkaFatalError
from refold.core.kafka import lacking_write, not_authorized, produce

log = logging.getLogger(__name__)


class Output:
    """The transactional producer as processors see it: produce, with back-pressure handled."""

    def __init__(self, producer: Producer, track_delivery: bool = False) -> None:
        self.producer = producer
        self.produced = 0
        self.failed: list[KafkaError] = []
        """Delivery errors (with `track_delivery`)."""
        self.failed_topics: list[str] = []
        """The topic of each failed delivery: what a missing WRITE permission names."""
        self.topics: set[str] = set()
        """Every topic produced to (or tried: a refusal names the topic it was for)."""
        self._on_delivery = self._delivered if track_delivery else None

    def produce(self, topic: str, value: bytes | None, key: bytes | str | None = None,
                headers: list[tuple[str, bytes]] | None = None,
                partition: int | None = None,
                on_delivery: Callable[[KafkaError | None, Message], None] | None = None
                ) -> None:
        """Produce to `partition`, or to the one the key hashes to when None; `on_delivery`
        gets the delivery report (a transaction's commit serves them all before it returns)."""
        callback = self._on_delivery
        if on_delivery is not None:
            callback = on_delivery if callback is None else _both(callback, on_delivery)
        self.topics.add(topic)  # first: a producer in an error state refuses with the cause
        produce(self.producer, topic, value, key, partition=partition, headers=headers,
                on_delivery=callback)
        self.produced += 1

    def serve_reports(self, timeout: float = 5.0, *, until_failure: bool = False) -> None:
        """Serve the delivery reports still queued, for up to `timeout` s. After a commit
        (which delivers the messages but does not call their callbacks), so that `on_delivery`
        has seen every report (the store's checkpoints take changelog offsets from them).
        `until_failure`: after a failed transaction, waiting (0.1 s polls) until one failure is
        known: the transaction can fail before the report naming the failed topic is served."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until_failure:
                if self.failed or len(self.producer) == 0:
                    return
                try:
                    self.producer.poll(0.1)
                except (KafkaException, KafkaFatalError):  # the error callback raised the cause
                    return
            elif self.producer.poll(0) == 0:
                return

    def raise_unwritable(self, err: KafkaError, settings: Settings) -> None:
        """The transaction failed with `err`, an authorization error: raise `KafkaFatalError`
        naming the topic without WRITE (redoing would not help). The failed delivery names it
        when its report is served in time; else the broker is asked (a fatal state can purge
        the report)."""
        self.serve_reports(until_failure=True)
        for topic, failed in zip(self.failed_topics, self.failed, strict=True):
            not_authorized(failed, "WRITE", topic)
        if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            for topic in lacking_write(settings, self.topics):
                not_authorized(err, "WRITE", topic)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed.append(err)
            self.failed_topics.append(msg.topic())


def _both(first: Callable[[KafkaError | None, Message], None],
          second: Callable[[KafkaError | None, Message], None]
          ) -> Callable[[KafkaError | None, Message], None]:
    def both(err: KafkaError | None, msg: Message) -> None:
        first(err, msg)
        second(err, msg)

    return both


class Processor(Protocol):
    """What a batch means. `handle` stages; `promote` or `rollback` settles the staged state.

    `on_partitions_assigned` may return partitions that are not ready yet (their state is being
    restored): the loop pauses them, keeps polling the others, and resumes each one once
    `resumable()` (asked between batches, optional) names it. `quarantine(msg, exc)` (optional)
    is told the message whose handling kept raising (`consumers.isolate`): the processor deals
    with it when it is read again (the worker: `consumers.suspects`); without it, the loop raises.
    """

    def handle(self, messages: list[Message], out: Output) -> None: ...
    def promote(self) -> None: ...
    def rollback(self) -> None: ...
    def between_batches(self) -> None: ...
    def on_partitions_assigned(self, partitions: list[TopicPartition]
                               ) -> list[TopicPartition] | None: ...
    def on_partitions_revoked(self, partitions: list[TopicPartition]) -> None: ...


class SideInput(Protocol):
    """A reader a processor applies between batches, never in the middle of one (the catalog,
    `consumers.catalog_reader.CatalogReader`): read to its end at start, then polled."""

    def catch_up(self, timeout: float = 10.0) -> bool:
        """Apply everything up to the current end; False if that took longer than `timeout`."""
        ...

    def poll(self, timeout: float = 0.0) -> int:
        """Apply what arrived since the last call; how many messages were read."""
        ...

    def close(self) -> None: ...


class WithoutHooks:
    """The optional `Processor` hooks as no-ops, for a processor whose state does not depend on
    its partitions or on anything arriving between batches."""

    def between_batches(self) -> None:
        pass

    def on_partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        return None

    def on_partitions_revoked(self, partitions: list[TopicPartition]) -> None:
        pass


@dataclass
class LoopStats:
    """What a run did. `messages` counts committed input messages only."""

    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    handle_failures: int = 0
    """Batches whose handling raised (each rolled back and retried)."""
    batches: int = 0
    messages: int = 0
    aborts: int = 0
    first_batch: float | None = None
    last_commit: float | None = None
    handle_seconds: float = 0.0
    """Spent handling committed batches (with each transaction's begin)."""
    commit_seconds: float = 0.0
    """Spent making handled batches durable: offsets and commit (exactly once), or flushing
    the outputs and committing the offsets (at least once)."""
    promote_seconds: float = 0.0
    """Spent in the processor's `promote` after each commit (its state stores, its hooks)."""
    longest_handle_seconds: float = 0.0
    """The slowest handling of one committed batch (with the transaction's begin)."""
    longest_commit_seconds: float = 0.0
    """The slowest making-durable of one committed batch (what `commit_seconds` adds up)."""

    def committed(self, messages: int, begun: float, handled: float, durable: float) -> None:
        """A batch of `messages` committed: begun, handled and made durable at those
        `time.monotonic()` times, promoted by now."""
        self.batches += 1
        self.messages += messages
        self.last_commit = promoted = time.monotonic()
        handling, committing = handled - begun, durable - handled
        self.handle_seconds += handling
        self.commit_seconds += committing
        self.promote_seconds += promoted - durable
        self.longest_handle_seconds = max(self.longest_handle_seconds, handling)
        self.longest_commit_seconds = max(self.longest_commit_seconds, committing)

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def busy_seconds(self) -> float:
        """From the first batch read to the last commit: the time spent on input."""
        if self.first_batch is None or self.last_commit is None:
            return 0.0
        return self.last_commit - self.first_batch


def next_offsets(messages: list[Message]) -> list[TopicPartition]:
    """Per partition, the offset after the last message: what a commit must record."""
    last: dict[tuple[str, int], int] = {}
    for msg in messages:
        last[(msg.topic(), msg.partition())] = msg.offset()
    return [TopicPartition(t, p, off + 1) for (t, p), off in last.items()]


def usable(messages: Iterable[Message], assigned: Container[tuple[str, int]],
           on_error: Callable[[Message], None]) -> list[Message]:
    """The fetched messages of partitions still assigned; errors go to `on_error` (which raises
    for those that stop the loop)."""
    out = []
    for msg in messages:
        if msg.error() is not None:
            on_error(msg)
        elif (msg.topic(), msg.partition()) in assigned:
            out.append(msg)
    return out


def fetch_error(msg: Message, group_id: str, topics: list[str]) -> None:
    """A fetch's error: a missing authorization or a fatal error stops the loop (raises)."""
    group = msg.error().code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    not_authorized(msg.error(), "READ", group_id if group else (
        msg.topic() or ", ".join(topics)))
    if msg.error().fatal():
        raise KafkaFatalError(f"consumer: {msg.error()}")
    log.warning("consumer: %s", msg.error())


def first_offsets(messages: list[Message]) -> dict[tuple[str, int], int]:
    """Per partition, the offset of the first message of a batch."""
    first: dict[tuple[str, int], int] = {}
    for msg in messages:
        first.setdefault((msg.topic(), msg.partition()), msg.offset())
    return first


def names(partitions: list[TopicPartition]) -> str:
    """`topic[p], topic[q]` (or "nothing"), as logs name partitions."""
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
