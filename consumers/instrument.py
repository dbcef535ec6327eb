"""Instrumentation of refold's processes: the fold-in worker's processor wrapper, consumer lag,
and the refitter's account of its refits.

`Monitored` wraps a `FoldInWorker` as the loop's `Processor`: the worker does the work, and the
wrapper tells a `consumers.monitor.Monitor` about committed batches, aborts, rebalances, model
swaps, and (every `lag_interval` seconds, between batches) the lag of the assigned partitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from consumers.monitor import Monitor
from refold.core import metrics as M

OFFSET_INVALID = -1001  # librdkafka: no position or watermark known yet


def record_lag(consumer: Consumer, group: str, timeout: float = 1.0) -> dict[tuple[str, int], int]:
    """Set `refold_consumer_lag_messages` for every assigned partition with a known position.

    The high watermark comes from the consumer's cache (refreshed by every fetch), and from the
    broker only when the cache has none; partitions not fetched from yet are left out.
    """
    lags: dict[tuple[str, int], int] = {}
    assigned = consumer.assignment()
    if not assigned:
        return lags
    for tp in consumer.position(assigned):
        if tp.offset < 0:
            continue
        high = consumer.get_watermark_offsets(tp, cached=True)[1]
        if high == OFFSET_INVALID:
            high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)[1]
        lag = max(0, high - tp.offset)
        lags[(tp.topic, tp.partition)] = lag
        M.CONSUMER_LAG.labels(group=group, topic=tp.topic, partition=str(tp.partition)).set(lag)
    return lags


class Monitored:
    """The loop's `Processor`: a fold-in worker (`worker`: start, close and its counts are
    reached there), observed by a `Monitor`. The loop's optional hooks are the worker's:
    `resumable`, `quarantine` and its `inputless` work."""

    def __init__(self, worker: Any, monitor: Monitor, group: str,
                 lag_interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.worker = worker
        self.monitor = monitor
        self.group = group
        self.lag_interval = lag_interval
        self.clock = clock
        self.consumer: Callable[[], Consumer | None] = lambda: None
        """Where the loop's consumer is read from (set by `attach`)."""
        worker.on_commit = monitor.on_commit
        self._version = worker.recommender.model_version
        self._snapshots: dict[int, tuple[float, int]] = {}
        self._last_lag = float("-inf")

    def attach(self, loop: Any) -> None:
        """Read lag through the consumer of `loop` (a `TransactionalLoop`), between batches, when
        the loop is not using it."""
        self.consumer = lambda: loop.consumer

    @property
    def inputless(self) -> Any:
        """The worker's work done between batches without input (`consumers.inputless`)."""
        return self.worker.inputless

    def resumable(self) -> list[TopicPartition]:
        return self.worker.resumable()

    def quarantine(self, msg: Message, exc: BaseException) -> None:
        self.worker.quarantine(msg, exc)

    # -- the Processor protocol, each step the worker's, then the monitor's
    def handle(self, messages: list[Message], out: Any) -> None:
        self.worker.handle(messages, out)

    def promote(self) -> None:
        self.worker.promote()  # calls monitor.on_commit with the committed batch

    def rollback(self) -> None:
        self.worker.rollback()
        self.monitor.on_error("abort")

    def between_batches(self) -> None:
        self.worker.between_batches()
        version = self.worker.recommender.model_version
        if version is not None and version != self._version:
            self._version = version
            created_at, items = self._snapshots.pop(version, (None, None))
            self.monitor.on_snapshot(version, created_at, items)
        now = self.clock()
        consumer = self.consumer()
        if consumer is not None and now - self._last_lag >= self.lag_interval:
            self._last_lag = now
            record_lag(consumer, self.group)

    def on_partitions_assigned(self, partitions: list[TopicPartition]
                               ) -> list[TopicPartition] | None:
        waiting = self.worker.on_partitions_assigned(partitions)
        self.monitor.on_assigned(partitions)
        return waiting

    def on_partitions_revoked(self, partitions: list[TopicPartition]) -> None:
        self.worker.on_partitions_revoked(partitions)
        self.monitor.on_revoked(partitions, self.group)

    # -- model swaps
    def swap_snapshot(self, snapshot: Any) -> None:
        """Serve a `models.snapshot.Snapshot` from the next batch on, remembering when it was
        built (for `refold_snapshot_created_timestamp_seconds`); safe from another thread."""
        self._snapshots[snapshot.version] = (snapshot.created_at, len(snapshot.item_ids))
        self.worker.swap_model(snapshot.item_factors())


def record_refit(seconds: float, outcome: str, *, training_events: int | None = None,
                 scores: dict[str, tuple[float, float | None]] | None = None) -> None:
    """The refitter's account of one refit: duration, outcome (accepted, refused, failed) and
    hold-out scores as `{metric: (candidate, live)}`."""
    M.REFIT_DURATION.observe(seconds)
    M.REFITS.labels(outcome=outcome).inc()
    M.LAST_REFIT.set(time.time())
    if training_events is not None:
        M.REFIT_EVENTS.set(training_events)
    for metric, (candidate, live) in (scores or {}).items():
        M.REFIT_SCORE.labels(metric=metric, model="candidate").set(candidate)
        if live is not None:
            M.REFIT_SCORE.labels(metric=metric, model="live").set(live)


def record_refitter_read(offsets: dict[int, int]) -> None:
    """The refitter's position: the events it has read (`offsets`: partition -> next offset)."""
    M.REFITTER_EVENTS_READ.set(sum(offsets.values()))


def record_refit_request(detector: str) -> None:
    """The refitter took a worker's refit request (`consumers.control`)."""
    M.REFIT_REQUESTS.labels(reason=M.reason_label(detector, "refit_request")).inc()


def record_live(version: int, created_at: float) -> None:
    """The refitter's live snapshot (loaded at start, or just published)."""
    M.MODEL_VERSION.set(version)
    M.SNAPSHOT_CREATED.set(created_at)


def record_published(version: int, created_at: float, size_bytes: int) -> None:
    """A snapshot the refitter has published: now the live version."""
    M.SNAPSHOTS_PUBLISHED.inc()
    M.SNAPSHOT_BYTES.set(size_bytes)
    record_live(version, created_at)
