"""Bring a partition's local store up to its changelog: read from the store's checkpoint onwards.

A store opened on the same disk holds the changelog up to its checkpoint, so only the tail since
then is read; a new (or wiped) store reads the partition from its first offset. Records are
applied in chunks of `chunk_records`, each one atomic write with the checkpoint after it, so a
restore that is killed goes on from its last chunk next time. Within a chunk only the last value
of each key is written. `derive(key, old, new, batch)` adds what a record implies beyond itself
(the users' activity and event-id indexes; `old` is the value the store held).

There is no time limit: `catch_up` reads to the end offset (read_committed: the last stable
offset) of the moment it is called and returns; the caller (the worker, which keeps polling its
group meanwhile, the partition paused) calls it again until the state reaches the group's
committed offset. Progress is reported every `report_every` s to `on_progress` and the log.

Before reading, `StoreRestorer.check` compares the store with the changelog as it is now
(`PartitionStore.stale_reason`): a store the changelog no longer backs is wiped and rebuilt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicCollection, TopicPartition

from consumers.crash import CrashPoint
from consumers.state.store import Checkpoint, PartitionStore, StoreBatch
from refold.core.config import Settings
from refold.core.kafka import KafkaFatalError, make_admin, make_consumer, watermarks

log = logging.getLogger(__name__)

Derive = Callable[[bytes, bytes | None, bytes | None, StoreBatch], None]
CHUNK_RECORDS = 20_000
REPORT_EVERY_S = 5.0


@dataclass
class RestoreProgress:
    """How far one partition's restore is: offsets `start` -> `position` of `end`."""

    partition: int
    start: int
    end: int
    position: int
    records: int = 0
    bytes: int = 0
    users: int = 0
    """User records applied (the latest of each key in a chunk)."""
    started: float = field(default_factory=time.monotonic)
    wiped: str | None = None
    """Why the store was wiped first (None: it was kept)."""

    @property
    def remaining(self) -> int:
        return max(self.end - self.position, 0)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def __str__(self) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        return (f"restore of partition {self.partition}: offset {self.position:,} of "
                f"{self.end:,} ({self.remaining:,} left, from {self.start:,}), "
                f"{self.records:,} records ({self.bytes / 1e6:.1f} MB) in {self.seconds:.1f} s "
                f"({rate:,.0f}/s)")


class StoreRestorer:
    """Reads changelog partitions into their stores; one consumer, assigned per call."""

    def __init__(self, settings: Settings, topic: str, *, derive: Derive | None = None,
                 chunk_records: int = CHUNK_RECORDS, report_every: float = REPORT_EVERY_S,
                 on_progress: Callable[[RestoreProgress], None] | None = None,
                 max_checkpoint_age: float | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self.derive = derive
        self.chunk_records = chunk_records
        self.report_every = report_every
        self.on_progress = on_progress
        self.max_checkpoint_age = max_checkpoint_age
        self._consumer: Consumer | None = None
        self._marks: Consumer | None = None
        self._uncommitted: Consumer | None = None
        self._topic_id: str | None = None
        self._crash = CrashPoint.from_env()
        self.chunks = 0
        """Chunks applied by this restorer (the fault tests' `restore_chunk` kill point)."""

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = make_consumer(self.settings, f"{self.topic}.restore", {
                "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20,
                "fetch.wait.max.ms": 50, "queued.max.messages.kbytes": 262144},
                purpose="worker-restore")
        return self._consumer

    def topic_id(self) -> str | None:
        """The changelog topic's id (it changes when the topic is deleted and created again)."""
        if self._topic_id is None:
            admin = make_admin(self.settings, purpose="worker-restore")
            got = admin.describe_topics(TopicCollection([self.topic]))[self.topic].result(30)
            self._topic_id = str(got.topic_id)
        return self._topic_id

    def offsets(self, partition: int) -> tuple[int, int]:
        """(first offset, last stable offset) of the changelog partition, asked by an idle
        client: behind the reader's parked fetch the answer would wait."""
        if self._marks is None:
            self._marks = make_consumer(self.settings, f"{self.topic}.restore",
                                        purpose="worker-restore")
        marks = watermarks(self._marks, self.topic)
        if partition not in marks:
            raise KafkaFatalError(f"{self.topic} has no partition {partition}")
        return marks[partition]

    def open_transaction(self, partition: int) -> bool:
        """Whether a transaction is open on the changelog partition (its last stable offset is
        below its high watermark): then more of its records may still commit."""
        if self._uncommitted is None:
            self._uncommitted = make_consumer(self.settings, f"{self.topic}.restore",
                                              {"isolation.level": "read_uncommitted"},
                                              purpose="worker-restore")
        high = watermarks(self._uncommitted, self.topic)[partition][1]
        return self.offsets(partition)[1] < high

    def check(self, store: PartitionStore) -> str | None:
        """Wipe `store` if the changelog no longer backs it; returns why (None: kept)."""
        low, high = self.offsets(store.partition)
        reason = store.stale_reason(self.topic_id(), low, high, self.max_checkpoint_age)
        if reason is not None:
            store.wipe(reason)
        return reason

    def catch_up(self, store: PartitionStore, stop: threading.Event | None = None
                 ) -> RestoreProgress:
        """Apply the changelog from the store's checkpoint to the current end; `stop` ends it
        early (at a chunk boundary, with the checkpoint written)."""
        low, high = self.offsets(store.partition)
        start = store.checkpoint.offset if store.checkpoint is not None else low
        progress = RestoreProgress(store.partition, start, high, start)
        if start >= high:
            return progress
        consumer = self.consumer
        consumer.assign([TopicPartition(self.topic, store.partition, start)])
        last_report = time.monotonic()
        try:
            while progress.position < high and not (stop is not None and stop.is_set()):
                self._chunk(store, progress, high)
                if time.monotonic() - last_report >= self.report_every:
                    last_report = time.monotonic()
                    self._report(progress)
        finally:
            consumer.unassign()
        self._report(progress)
        return progress

    def _chunk(self, store: PartitionStore, progress: RestoreProgress, high: int) -> None:
        """Read up to `chunk_records` records and apply them with the checkpoint after them."""
        latest: dict[bytes, bytes | None] = {}
        last, n = -1, 0
        while n < self.chunk_records and progress.position < high:
            msgs = self.consumer.consume(
                min(10_000, self.chunk_records - n, high - progress.position), 0.1)
            n += len(msgs)
            for msg in msgs:
                if msg.error() is not None:
                    if msg.error().fatal():
                        raise KafkaFatalError(f"{self.topic}: {msg.error()}")
                    log.warning("%s: %s", self.topic, msg.error())
                    continue
                value = msg.value()
                latest[msg.key()] = value
                last = msg.offset()
                progress.records += 1
                progress.bytes += len(value or b"")
            # markers and aborted records take offsets too: the position says what was passed
            tp = self.consumer.position([TopicPartition(self.topic, store.partition)])[0]
            progress.position = max(progress.position, last + 1, tp.offset)
            if not msgs:
                break
        batch = StoreBatch()
        progress.users += sum(1 for key in latest if key[:2] != b"~p")
        if self.derive is not None and latest:
            keys = list(latest)
            for key, old in zip(keys, store.get_many(keys), strict=True):
                self.derive(key, old, latest[key], batch)
        for key, value in latest.items():
            batch.put(key, value)
        checkpoint = Checkpoint(self.topic, self.topic_id(), store.partition, progress.position)
        store.commit(batch, checkpoint)
        self.chunks += 1
        if self._crash is not None and self._crash.due("restore_chunk", self.chunks):
            self._crash.kill()

    def _report(self, progress: RestoreProgress) -> None:
        log.info("%s", progress)
        if self.on_progress is not None:
            self.on_progress(progress)

    def close(self) -> None:
        for client in (self._consumer, self._marks, self._uncommitted):
            if client is not None:
                client.close()
        self._consumer = self._marks = self._uncommitted = None
