"""Follow a whole topic without a consumer group: the reader behind catalogs and views.

`TopicTail` assigns every partition from the beginning (read_committed: aborted transactions are
never seen), so each process holds the full contents of a compacted topic; or only `partitions`,
each from the offset `start` gives (a serve replica holds some partitions, and reads the events
of the last hours only). `catch_up` reads to the end offsets of the moment it was called; `poll`
reads what has arrived since.

End offsets are asked through a second, idle client: a broker answers one connection's requests
in order, so behind the reader's parked fetch they would wait for `fetch.wait.max.ms`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from refold.core.config import Settings
from refold.core.kafka import (
    KafkaFatalError,
    make_consumer,
    not_authorized,
    topic_metadata,
    watermarks,
)

log = logging.getLogger(__name__)


StartOffsets = Callable[[Consumer, list[int]], dict[int, int]]
"""Given the consumer and the partitions, the offset to start each at (missing: the beginning)."""


class TopicTail:
    """Every partition of `topic` (or `partitions`), from the beginning (or `start`),
    read_committed; no group, no commits."""

    def __init__(self, settings: Settings, topic: str, batch: int = 1000,
                 partitions: set[int] | None = None, start: StartOffsets | None = None,
                 fetch_wait_ms: int = 100) -> None:
        self.settings = settings
        self.topic = topic
        self.batch = batch
        self.wanted = partitions
        self.start = start
        self.fetch_wait_ms = fetch_wait_ms
        """How long the broker may park a fetch: the latency of a new message when idle."""
        self._consumer: Consumer | None = None
        self._offsets: Consumer | None = None
        self._partitions: list[int] = []

    @property
    def consumer(self) -> Consumer:
        """The consumer, created and assigned on first use (a group id is required, not used)."""
        if self._consumer is None:
            consumer = make_consumer(self.settings, f"{self.topic}.tail",
                                     {"fetch.wait.max.ms": self.fetch_wait_ms}, purpose="reader")
            md = topic_metadata(consumer, self.topic)
            if md.error is not None:
                consumer.close()
                raise KafkaFatalError(f"topic {self.topic}: {md.error.str()} "
                                      "(`refold topics create` makes the topics)")
            self._partitions = sorted(p for p in md.partitions
                                      if self.wanted is None or p in self.wanted)
            offsets = self.start(consumer, self._partitions) if self.start else {}
            consumer.assign([TopicPartition(self.topic, p, offsets.get(p, OFFSET_BEGINNING))
                             for p in self._partitions])
            self._consumer = consumer
        return self._consumer

    def poll(self, timeout: float = 0.0, fill: bool = False) -> list[Message]:
        """The messages that arrived (up to `batch`), waiting at most `timeout` for the first
        (`fill`: for `batch` of them, which paces a loop that polls several tails in turn)."""
        out = []
        fetched = self.consumer.consume(self.batch, timeout) if fill else \
            arrived(self.consumer, self.batch, timeout)
        for msg in fetched:
            if msg.error() is not None:
                group = msg.error().code() == KafkaError.GROUP_AUTHORIZATION_FAILED
                not_authorized(msg.error(), "DESCRIBE" if group else "READ",
                               f"{self.topic}.tail" if group else self.topic)
                log.warning("%s: %s", self.topic, msg.error())
            else:
                out.append(msg)
        return out

    def end_offsets(self, timeout: float = 10.0) -> dict[int, int]:
        """Per partition, the offset after the last committed message (the LSO)."""
        self.consumer  # noqa: B018  (assigns, and learns the partitions)
        if self._offsets is None:
            self._offsets = make_consumer(self.settings, f"{self.topic}.tail", purpose="reader")
        marks = watermarks(self._offsets, self.topic, timeout)
        return {p: marks[p][1] for p in self._partitions}

    def reached(self, ends: dict[int, int]) -> bool:
        """Whether the read position of every partition is at or past `ends`."""
        positions = self.consumer.position([TopicPartition(self.topic, p) for p in ends])
        return all(tp.offset >= ends[tp.partition] or ends[tp.partition] == 0
                   for tp in positions)

    def catch_up(self, handle: Callable[[list[Message]], None], timeout: float = 10.0) -> bool:
        """Read and `handle` everything up to the current end offsets; False on timeout."""
        deadline = time.monotonic() + timeout
        ends = self.end_offsets(timeout)
        while not self.reached(ends):
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("%s: not caught up after %.1f s", self.topic, timeout)
                return False
            messages = self.poll(min(left, 0.2))
            if messages:
                handle(messages)
        return True

    def close(self) -> None:
        for client in (self._consumer, self._offsets):
            if client is not None:
                client.close()
        self._consumer = self._offsets = None


def arrived(consumer: Consumer, n: int, timeout: float) -> list[Message]:
    """Up to `n` messages: wait at most `timeout` for the first, then take what is fetched.
    (`consume(n, timeout)` returns early only once it has `n`: at low traffic it would hold
    every message for up to `timeout`, which a reader timing its messages would count.)"""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(n - 1, 0)] if n > 1 else [first]
