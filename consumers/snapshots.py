"""Model snapshots on the snapshots topic: follow and load the latest complete version.

A version is chunks keyed `<version>/<index>` and then a manifest keyed `<version>/manifest`
naming the chunks' first offset (`consumers.snapshot_publisher` writes them, `models.snapshot`
has the format); chunks without a manifest (a publisher killed mid-way) are never used.

Finding the latest complete version does not scan the topic: from the end, a manifest points at
its first chunk, and a chunk `<v>/<i>` at offset o says its attempt started at o - i (a single
idempotent publisher writes contiguous offsets), so each probe jumps over a whole version.

The worker's side (`SnapshotFollower`, wired by `follow`)::

    follower = SnapshotFollower(settings)
    if (snap := follower.load_latest(timeout=60)) is not None:
        worker.swap_model(snap.item_factors())
    follower.start(lambda snap: worker.swap_model(snap.item_factors()))  # background thread
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import msgspec
from confluent_kafka import KafkaError, Message, TopicPartition

from consumers.snapshot_publisher import Published, SnapshotPublisher, SnapshotPublishError
from models.snapshot import Assembler, Snapshot, SnapshotError, parse_key
from refold.core.config import Settings
from refold.core.kafka import KafkaFatalError, make_consumer, watermarks, where

log = logging.getLogger(__name__)

__all__ = ["Published", "SnapshotFollower", "SnapshotPublishError", "SnapshotPublisher",
           "follow", "load_latest"]  # the publisher's names too, where they were before


class SnapshotFollower:
    """Reads the snapshots topic (assigned, no group) and hands over new verified versions.

    Refused versions (a corrupted chunk, a missing chunk, a bad checksum) are logged with their
    reason, counted in `refused` and passed to `on_refused` (e.g. the monitor's counter); the live
    version stays. Not thread-safe, except `poll` while the background thread of `start` runs.
    """

    def __init__(self, settings: Settings, live_version: int = 0) -> None:
        self.settings = settings
        self.topic = settings.topic("snapshots")
        self.assembler = Assembler(live_version)
        self.received = 0
        self.refused = 0
        self.last_refusal = ""
        self.on_refused: Callable[[str], None] | None = None
        """Called with the reason of each refused version (on the following thread)."""
        self.max_version_seen = 0
        """The highest version of any message seen (complete or not): a publisher goes above."""
        self._consumer = None
        self._ready: Snapshot | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def live_version(self) -> int:
        return self.assembler.live_version

    def _client(self):
        if self._consumer is None:
            self._consumer = make_consumer(self.settings, f"{self.settings.topic_prefix}snapshots",
                                           {"max.partition.fetch.bytes": 16 << 20,
                                            "fetch.max.bytes": 64 << 20,
                                            # a long-poll at the end of the log would delay
                                            # the next probe's fetch by its full wait
                                            "fetch.wait.max.ms": 20,
                                            # with a full prefetch queue, retry in 10 ms
                                            # rather than the default second
                                            "fetch.queue.backoff.ms": 10,
                                            # a probe at a transaction's commit marker gets
                                            # no message: the end of the log says so
                                            "enable.partition.eof": True},
                                           purpose="snapshots")
        return self._consumer

    def load_latest(self, timeout: float = 60.0) -> Snapshot | None:
        """The newest complete, verified version (None if there is none); `poll` goes on after
        it. Walks back from the end of the topic, one probe per version."""
        consumer, deadline = self._client(), time.monotonic() + timeout
        marks = watermarks(consumer, self.topic, timeout)
        if 0 not in marks:
            raise KafkaFatalError(f"topic {self.topic} not found "
                                  "(`refold topics create` makes the topics)")
        low, high = marks[0]
        snap, end, start = None, high, high
        while end > low:
            if time.monotonic() > deadline:
                start = low  # not sure what is there: read it all
                break
            msg = self._read_one(end - 1, deadline)
            if msg is None or msg.offset() >= end:
                end -= 1
                continue
            try:
                version, index = parse_key(msg.key())
            except SnapshotError:
                end = msg.offset()
                continue
            self.max_version_seen = max(self.max_version_seen, version)
            if index is not None:  # an unfinished attempt: jump to its start
                end = max(low, msg.offset() - index)
                continue
            try:
                first = int(msgspec.json.decode(msg.value())["first_offset"])
            except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                log.warning("refused snapshot at %s: manifest does not decode", where(msg))
                self._refuse("manifest does not decode")
                end = msg.offset()
                continue
            snap = self._assemble(max(low, first), msg.offset(), version, deadline)
            if snap is not None:
                start = msg.offset() + 1
                break
            end = min(first, msg.offset())
        consumer.assign([TopicPartition(self.topic, 0, start)])
        return snap

    def _read_one(self, offset: int, deadline: float) -> Message | None:
        consumer = self._client()
        consumer.assign([TopicPartition(self.topic, 0, offset)])
        while time.monotonic() < deadline:
            for msg in consumer.consume(1, timeout=0.5):
                if msg.error() is None:
                    return msg
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return None  # `offset` held a commit marker (or an aborted record)
        return None

    def _assemble(self, first: int, last: int, version: int, deadline: float) -> Snapshot | None:
        asm, position = Assembler(version - 1), first
        self._client().assign([TopicPartition(self.topic, 0, first)])
        while time.monotonic() < deadline:
            # consume(n) waits for n messages: never ask for more than the range holds
            for msg in self._client().consume(min(64, last + 1 - position), timeout=0.5):
                if msg.error() is not None or msg.offset() > last:
                    continue
                position = msg.offset() + 1
                snap = self._take(asm, msg)
                if snap is not None or msg.offset() == last:
                    if snap is not None:  # never back below a version already served
                        self.assembler = Assembler(max(snap.version, self.live_version))
                    return snap
        return None

    def _take(self, asm: Assembler, msg: Message) -> Snapshot | None:
        try:
            version, _ = parse_key(msg.key())
            self.max_version_seen = max(self.max_version_seen, version)
            snap = asm.add(msg.key(), msg.value(), msg.headers())
        except SnapshotError as exc:
            log.warning("refused snapshot at %s: %s", where(msg), exc)
            self._refuse(str(exc))
            return None
        if snap is not None:
            self.received += 1
            log.info("snapshot v%d verified at %s: %d items x %d factors", snap.version,
                     where(msg), len(snap.item_ids), snap.factors)
        return snap

    def poll(self, timeout: float = 0.0, max_messages: int = 256) -> Snapshot | None:
        """The newest verified version that arrived since the last call, or None."""
        if self._thread is not None:
            with self._lock:
                snap, self._ready = self._ready, None
            return snap
        return self._step(timeout, max_messages)

    def _refuse(self, reason: str) -> None:
        self.refused += 1
        self.last_refusal = reason
        if self.on_refused is not None:
            self.on_refused(reason)

    def _step(self, timeout: float, max_messages: int) -> Snapshot | None:
        newest = None
        for msg in self._client().consume(max_messages, timeout=timeout):
            if msg.error() is None:
                newest = self._take(self.assembler, msg) or newest
        return newest

    def start(self, on_snapshot: Callable[[Snapshot], None] | None = None) -> None:
        """Follow in a background thread: each new version gets its `ItemFactors` built there,
        then goes to `on_snapshot` (or waits for `poll`)."""
        def run() -> None:
            while not self._stop.is_set():
                snap = self._step(0.5, 256)
                if snap is None:
                    continue
                snap.item_factors()
                if on_snapshot is not None:
                    on_snapshot(snap)
                else:
                    with self._lock:
                        self._ready = snap

        self._thread = threading.Thread(target=run, name="snapshot-follower", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> SnapshotFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def follow(settings: Settings, swap: Callable[[Snapshot], None], served: int | None = None,
           wait: float = 30.0, on_refused: Callable[[str], None] | None = None
           ) -> SnapshotFollower:
    """Keep a worker on the newest version through `swap` (e.g. `FoldInWorker.swap_snapshot`):
    now the latest complete one if newer than `served` (the version it started with), looked
    for at most `wait` s (then the worker serves what it has, popularity if nothing, until the
    follower reads it); then each newer one, verified and laid out on the follower's thread.
    Call it before the worker's first batch, which then runs on that version. `on_refused` is
    called with the reason of each refused version (a monitor counts them)."""
    follower = SnapshotFollower(settings, live_version=served or 0)
    follower.on_refused = on_refused
    snap = follower.load_latest(timeout=wait)
    if snap is not None and snap.version > (served or 0):
        swap(snap)
    follower.start(swap)
    return follower


def load_latest(settings: Settings, timeout: float = 60.0) -> Snapshot | None:
    """The newest complete, verified snapshot on the topic, or None."""
    with SnapshotFollower(settings) as follower:
        return follower.load_latest(timeout)
