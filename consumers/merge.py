"""Co-partitioned topics read as one stream per partition, in Kafka timestamp order.

A worker that reads events and impressions keyed by user, with the same partition count, sees a
user's two streams on partition p of each topic. What it computes for an event (a list demoted by
what the user was shown) depends on which impressions came before it, so the two must be read in
one order that does not depend on fetch timing, or a batch redone after a crash could publish a
different list. `TimestampMerge` buffers what the consumer fetched and hands out, per partition
number, the head with the smallest (timestamp, topic order) across the topics. A topic-partition
whose buffer is empty holds its group back while the broker has more of it than was fetched
(`lagging`), so a backlog is merged exactly as live traffic was; when it is caught up, its next
message does not exist yet and the others go on (the rule of Kafka Streams' timestamp
synchronisation, KIP-695). A group is held at most `max_wait` seconds, then goes on.

The one order it cannot restore: a message that reaches the broker after a later-stamped message
of the other topic was fetched and handled (e.g. an impression delayed behind the click it led
to). It is then handled when it arrives: its timestamp does not move it back.

>>> from types import SimpleNamespace as M
>>> def msg(topic, p, ts, off):
...     return M(topic=lambda: topic, partition=lambda: p, timestamp=lambda: (1, ts),
...              offset=lambda: off)
>>> m = TimestampMerge(["events", "impressions"])
>>> m.add([msg("events", 0, 30, 0), msg("events", 0, 50, 1), msg("impressions", 0, 40, 0)])
>>> [(x.topic(), x.timestamp()[1]) for x in m.take(10, lagging=lambda t, p: False)]
[('events', 30), ('impressions', 40), ('events', 50)]
>>> m.add([msg("events", 0, 70, 2)])
>>> m.take(10, lagging=lambda t, p: t == "impressions")   # more impressions wait at the broker
[]
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

log = logging.getLogger(__name__)

Lagging = Callable[[str, int], bool]
"""Whether the broker holds messages of (topic, partition) that are not fetched yet."""


class TimestampMerge:
    """Buffers of fetched messages per (topic, partition), merged per partition number."""

    def __init__(self, topics: Sequence[str], max_wait: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.topics = list(topics)
        self.rank = {t: k for k, t in enumerate(self.topics)}
        self.max_wait = max_wait
        self.clock = clock
        self._buffers: dict[tuple[str, int], deque[Any]] = {}
        self._blocked_since: dict[int, float] = {}
        self.waited_out = 0
        """Times a group was let go after `max_wait` with a topic still lagging."""

    def add(self, messages: Iterable[Any]) -> None:
        """Messages as fetched (each topic-partition's in offset order)."""
        for msg in messages:
            key = (msg.topic(), msg.partition())
            self._buffers.setdefault(key, deque()).append(msg)

    def pending(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def sizes(self) -> dict[tuple[str, int], int]:
        """Buffered messages per (topic, partition)."""
        return {k: len(b) for k, b in self._buffers.items()}

    def take(self, limit: int, lagging: Lagging) -> list[Any]:
        """Up to `limit` messages in merged order; groups that must wait are left buffered.

        A heap holds each ready group's head: taking a message changes only its own group,
        so only that group is looked at again (O(log groups) a message)."""
        released: set[int] = set()
        heap: list[Any] = []

        def push(p: int) -> None:  # group p's head, when the group may go on
            if self._ready(p, lagging, released) and (head := self._head(p)) is not None:
                heapq.heappush(heap, head)

        for p in sorted({p for (_, p), b in self._buffers.items() if b}):
            push(p)
        out: list[Any] = []
        while len(out) < limit and heap:
            _, key = heapq.heappop(heap)
            out.append(self._buffers[key].popleft())
            push(key[1])
        return out

    def drop(self, partitions: Iterable[tuple[str, int]] | None = None) -> int:
        """Forget buffered messages of `partitions` (all when None), e.g. rewound or revoked
        ones; returns how many."""
        keys = list(self._buffers) if partitions is None else list(partitions)
        n = 0
        for key in keys:
            buf = self._buffers.pop(key, None)
            n += len(buf) if buf else 0
            self._blocked_since.pop(key[1], None)  # its wait starts again when it is held
        return n

    def _head(self, p: int) -> tuple[tuple[int, int], tuple[str, int]] | None:
        """((timestamp, topic rank), buffer key) of group p's next message, None if empty."""
        best = None
        for t in self.topics:
            buf = self._buffers.get((t, p))
            if buf:
                key = (buf[0].timestamp()[1], self.rank[t])
                if best is None or key < best[0]:
                    best = (key, (t, p))
        return best

    def _ready(self, p: int, lagging: Lagging, released: set[int]) -> bool:
        """Group p has a message, and no topic with an empty buffer has more at the broker, or
        the group waited `max_wait` for it (then it goes on for the rest of this `take`)."""
        if not any(self._buffers.get((t, p)) for t in self.topics):
            return False
        waiting = [t for t in self.topics if not self._buffers.get((t, p)) and lagging(t, p)]
        if not waiting:
            self._blocked_since.pop(p, None)
            return True
        if p in released:
            return True
        since = self._blocked_since.setdefault(p, self.clock())
        if self.clock() - since < self.max_wait:
            return False
        self.waited_out += 1
        log.warning("partition %d: %s still lagging after %.1f s: going on without it", p,
                    ", ".join(waiting), self.max_wait)
        self._blocked_since.pop(p, None)
        released.add(p)
        return True
