"""A bounded least-recently-used cache: the users a worker keeps decoded in memory.

Capacity counts entries *between* micro-batches: a batch may add its own users beyond it, and
`trim()`, called once the batch is committed or rolled back, evicts the least recently used down
to the capacity again. Nothing is lost by evicting: entries are written to the store when their
batch commits (write-through at commit), so an evicted entry is only decoded again on its next
use. The hit/miss counters are what `refold bench soak` and the metrics report.

>>> c = BoundedCache(capacity=2)
>>> for k in "abc":
...     c.put(k, k.upper())
>>> c.get("a"), len(c), c.trim(), sorted(c.keys())      # "a" used last: "b" goes
('A', 3, 1, ['a', 'c'])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """At most `capacity` entries after each `trim()`, the least recently used evicted first."""

    def __init__(self, capacity: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.on_evict = on_evict
        self._entries: OrderedDict[K, V] = OrderedDict()
        self.hits = self.misses = self.evicted = 0

    def get(self, key: K) -> V | None:
        """The entry (now the most recently used), or None (a miss: the caller loads it)."""
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def peek(self, key: K) -> V | None:
        """The entry without touching its recency or the counters."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def trim(self) -> int:
        """Evict the least recently used entries beyond the capacity; returns how many."""
        n = len(self._entries) - self.capacity
        for _ in range(max(n, 0)):
            key, value = self._entries.popitem(last=False)
            if self.on_evict is not None:
                self.on_evict(key, value)
        self.evicted += max(n, 0)
        return max(n, 0)

    def clear(self) -> None:
        self._entries.clear()

    def keys(self) -> Iterator[K]:
        return iter(list(self._entries))

    def items(self) -> Iterator[tuple[K, V]]:
        return iter(list(self._entries.items()))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_rate(self) -> float:
        asked = self.hits + self.misses
        return self.hits / asked if asked else 0.0
