"""The bounded cache of users: LRU order, capacity after a trim, counters."""

from __future__ import annotations

import pytest

from consumers.state.cache import BoundedCache


def test_trim_evicts_the_least_recently_used_down_to_the_capacity() -> None:
    evicted = []
    c = BoundedCache(3, on_evict=lambda k, v: evicted.append(k))
    for k in range(6):
        c.put(k, str(k))
    c.get(0)  # used again: now the most recent
    assert c.trim() == 3
    assert evicted == [1, 2, 3] and sorted(c.keys()) == [0, 4, 5]
    assert c.trim() == 0


def test_peek_does_not_change_recency_and_counts_nothing() -> None:
    c = BoundedCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.peek("a") == 1 and c.peek("zz") is None
    c.put("c", 3)
    c.trim()
    assert "a" not in c and c.hits == c.misses == 0


def test_counters() -> None:
    c = BoundedCache(2)
    c.put("a", 1)
    assert c.get("a") == 1 and c.get("b") is None
    assert (c.hits, c.misses, c.hit_rate) == (1, 1, 0.5)
    assert c.pop("a") == 1 and len(c) == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BoundedCache(0)
