"""Companion topics of a loop's subscription: co-assigned by partition, merged by timestamp.

A fold-in worker subscribes to the events topic (cooperative-sticky assignment: a rebalance only
moves the partitions that change owner) and reads the impressions topic as its *companion*:
partition p of each companion is assigned whenever events partition p is, and revoked with it,
so a user's events and impressions meet in one worker (both are keyed by user id and have the
same partition count). A companion is not subscribed: the loop assigns it in the rebalance
callbacks, from the group's committed offsets (or `auto.offset.reset`), and commits its offsets
in the same transaction as the events'. The broker keeps a group's offsets for any partition;
the subscription only decides who owns what.

Fetched messages go through `consumers.merge.TimestampMerge`, which hands a batch out in one
order per partition whatever the fetch timing. It needs to know whether the broker holds more of
a topic-partition than was fetched. What was fetched ends at the last message delivered, or at a
partition-EOF event (`enable.partition.eof`: the client says where a partition ends when it
reaches it); unknown right after an assignment or a rewind. What the broker holds is its high
watermark (the last stable offset, as a read_committed consumer sees it), asked when a batch is
taken (through a second, idle client: a broker answers one connection's requests in order, and
the first client's fetch is parked there), so it is later than every message buffered: a message
the broker acknowledged before another topic's message was even produced is always read first.
At most one request per batch, for every held topic-partition, when the merge first needs one.

The loop reads ahead of its batches: with a backlog, the message a held-back partition waits for
can sit behind many others in the client's queue. To bound memory without starving anyone, a
topic-partition whose buffer holds `PAUSE_AT` batches is paused (the client stops fetching it)
until it is down to one batch, so the client's fetches go where the merge waits.

A companion topic that does not exist (topics created by an older version) is left out with a
warning before the first poll: the loop reads its subscription alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from consumers.batch import usable
from consumers.merge import TimestampMerge
from refold.core.config import Settings
from refold.core.kafka import make_admin

log = logging.getLogger(__name__)

PAUSE_AT = 4
"""Batches' worth of buffered messages at which a topic-partition is paused."""
UNKNOWN_END = (1 << 63) - 1
"""The end of a topic-partition the broker could not tell: more than anything fetched, so the
merge holds its group back (at most `max_wait`) as for a partition known to lag."""
_REFUSED = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED,
                      KafkaError.CLUSTER_AUTHORIZATION_FAILED})


class Companions:
    """The companion topics of `subscribed`, and the merge of everything fetched."""

    def __init__(self, settings: Settings, subscribed: str, topics: Sequence[str],
                 max_wait: float = 10.0) -> None:
        self.settings = settings
        self.subscribed = subscribed
        self.topics = list(topics)
        self.merge = TimestampMerge([subscribed, *self.topics], max_wait)
        self._checked = False
        self._fetched_to: dict[tuple[str, int], int] = {}
        """Per topic-partition, the offset after what was delivered (at its EOF: its end)."""
        self._paused: set[tuple[str, int]] = set()
        self._ends: AdminClient | None = None

    @staticmethod
    def consumer_config(extra: Mapping[str, Any] | None) -> dict[str, Any]:
        """The loop's consumer settings plus what the merge needs: EOF events."""
        return {"enable.partition.eof": True, **(extra or {})}

    def with_companions(self, partitions: Iterable[TopicPartition]) -> list[TopicPartition]:
        """`partitions`, each subscribed one joined by the companions' same partition."""
        out = list(partitions)
        for tp in list(out):
            if tp.topic == self.subscribed:
                out += [TopicPartition(t, tp.partition) for t in self.topics]
        return out

    def assign(self, consumer: Consumer, partitions: list[TopicPartition]
               ) -> list[TopicPartition]:
        """Assign `partitions` and their companions (which start at the group's committed
        offsets, as subscribed partitions do: the client resolves them, waiting out a pending
        transaction); returns all of them."""
        extra = [TopicPartition(tp.topic, tp.partition, OFFSET_INVALID)
                 for tp in self.with_companions(partitions) if tp.topic in self.topics]
        every = [*partitions, *extra]
        consumer.incremental_assign(every)
        if every:
            consumer.resume(every)  # a pause can outlive an unassignment (a lost partition)
        return every

    def revoke(self, consumer: Consumer, partitions: list[TopicPartition]
               ) -> list[TopicPartition]:
        """Unassign `partitions` and their companions, forget what was fetched of them."""
        every = self.with_companions(partitions)
        paused = [tp for tp in every if (tp.topic, tp.partition) in self._paused]
        if paused:
            consumer.resume(paused)
        consumer.incremental_unassign(every)
        self.merge.drop((tp.topic, tp.partition) for tp in every)
        for tp in every:
            self._fetched_to.pop((tp.topic, tp.partition), None)
            self._paused.discard((tp.topic, tp.partition))
        return every

    def rewound(self, partitions: Iterable[tuple[str, int]]) -> None:
        """`partitions` are sought back: what was fetched of them will come again."""
        partitions = list(partitions)
        for key in partitions:
            self._fetched_to.pop(key, None)
        dropped = self.merge.drop(partitions)
        if dropped:
            log.debug("dropped %d fetched message(s) of rewound partitions", dropped)

    def consume(self, consumer: Consumer, assigned: Container[tuple[str, int]], batch: int,
                timeout: float, on_error: Callable[[Message], None]) -> list[Message]:
        """The loop's step 1: fetch ahead (waiting up to `timeout` for a first message when
        nothing is buffered), then the next batch of at most `batch`, in merged order."""
        if not self._checked:  # before the first poll: never inside a rebalance callback
            self._leave_out_missing(consumer, timeout=10.0)
        # A batch already fetched does not wait (50 ms a batch, when the partitions are paused)
        pending = self.pending
        first = consumer.poll(0.0 if pending >= batch else 0.05 if pending else timeout)
        fetched = [] if first is None else [first, *consumer.consume(PAUSE_AT * batch, 0)]
        self.merge.add(usable(self._delivered(fetched), assigned, on_error))
        ends: dict[tuple[str, int], int] = {}  # high watermarks asked during this take

        def lagging(topic: str, partition: int) -> bool:
            key = (topic, partition)
            if key not in self._fetched_to:
                return True
            if key not in ends:  # one request for every held topic-partition
                ends.update(self._high_watermarks([k for k in self._fetched_to if k not in ends]))
            return ends[key] > self._fetched_to[key]

        out = self.merge.take(batch, lagging)
        self._throttle(consumer, batch)
        return out

    @property
    def pending(self) -> int:
        return self.merge.pending()

    def close(self) -> None:
        self._ends = None

    def _delivered(self, fetched: list[Message]) -> list[Message]:
        """`fetched` without its EOF events; each message and EOF moves where what was
        delivered of its partition ends."""
        out = []
        for msg in fetched:
            key = (msg.topic(), msg.partition())
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                self._fetched_to[key] = msg.offset()
                continue
            if err is None:
                self._fetched_to[key] = max(self._fetched_to.get(key, 0), msg.offset() + 1)
            out.append(msg)
        return out

    def _high_watermarks(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The ends of `keys` as the loop's read_committed consumer sees them (the last stable
        offset), in one request. Asked of the broker, not read from the consumer's cached ends
        (the last fetch responses'): a stale end lets a live merge go on without a message a
        replay would wait for, and the two orders then differ (the fault tests caught it)."""
        if self._ends is None:
            self._ends = make_admin(self.settings, purpose=f"{self.subscribed}.ends")
        asked = {TopicPartition(t, p): OffsetSpec.latest() for t, p in keys}
        done = self._ends.list_offsets(asked, isolation_level=IsolationLevel.READ_COMMITTED,
                                       request_timeout=10.0)
        return {(tp.topic, tp.partition): _end(tp, f) for tp, f in done.items()}

    def _throttle(self, consumer: Consumer, batch: int) -> None:
        """Pause the topic-partitions holding `PAUSE_AT` batches, resume those down to one."""
        sizes = self.merge.sizes()
        full = [k for k, n in sizes.items() if n >= PAUSE_AT * batch and k not in self._paused]
        low = [k for k in self._paused if sizes.get(k, 0) <= batch]
        if full:
            consumer.pause([TopicPartition(t, p) for t, p in full])
            self._paused.update(full)
        if low:
            consumer.resume([TopicPartition(t, p) for t, p in low])
            self._paused.difference_update(low)

    def _leave_out_missing(self, consumer: Consumer, timeout: float) -> None:
        self._checked = True
        for topic in list(self.topics):
            md = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            if md is None or md.error is not None:
                log.warning("companion topic %s is missing (`refold topics create` makes it): "
                            "reading %s alone", topic, self.subscribed)
                self.topics.remove(topic)
                self.merge = TimestampMerge([self.subscribed, *self.topics], self.merge.max_wait)


def _end(tp: TopicPartition, answer: Future) -> int:
    """One partition's end from a ListOffsets answer; `UNKNOWN_END` when the broker is away or
    its partitions are moving (a restart answers FENCED_LEADER_EPOCH, NOT_LEADER_...): the
    loop then waits for it as for a lagging partition instead of stopping. Refusals (no
    access) and fatal errors are raised."""
    try:
        return int(answer.result().offset)
    except KafkaException as exc:
        err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if err is None or err.fatal() or err.code() in _REFUSED:
            raise
        log.warning("end of %s[%d] unknown (%s): its group waits", tp.topic, tp.partition,
                    err.str())
        return UNKNOWN_END
