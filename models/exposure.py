"""Exposure feedback: an item shown to a user again and again without an interaction sinks.

A user's `Exposure` counts, per item, the impressions that showed it since the user last
interacted with it (any event on the item resets its count). `demote` lowers the candidates whose
count reached `min_count`, before the exploration policy draws the list:

    z_a = (s_a - s_1) / (s_1 - s_M)  in [-1, 0]        (the candidates' scores, best first)
    z_a -= strength · (count_a - min_count + 1)         for count_a >= min_count

and re-sorts, so with strength 0.5 an item shown `min_count` times unanswered drops by half the
candidates' score range, and further the more it is ignored. Scores come back on their original
scale (z · spread + s_1), so the policy's temperature and the logged candidate scores mean the
same with and without demotion.

Memory is bounded: at most `max_items` counts per user, the least recently shown forgotten
first.

>>> e = Exposure(max_items=10)
>>> for _ in range(3):
...     e.shown([5, 6])
>>> e.interacted(6)
>>> e.counts(np.array([5, 6, 7])).tolist()
[3, 0, 0]
>>> order, scores = demote(np.array([1.0, 0.8, 0.5, 0.0]), np.array([3, 0, 0, 0]), 2, 0.5)
>>> order.tolist(), scores.tolist()          # the top item, shown 3 times, falls to third
([1, 2, 0, 3], [0.8, 0.5, 0.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from models.errors import ModelError


class Exposure:
    """One user's unanswered impressions per item (item indices), bounded to `max_items`."""

    __slots__ = ("_counts", "max_items")

    def __init__(self, max_items: int = 200) -> None:
        if max_items < 1:
            raise ModelError(f"max_items must be >= 1, got {max_items}")
        self.max_items = max_items
        self._counts: dict[int, int] = {}  # insertion order = least recently shown first

    def shown(self, items: Iterable[int]) -> None:
        """One impression showed `items` (each counts once per impression)."""
        for i in dict.fromkeys(items):
            n = self._counts.pop(i, 0)
            self._counts[i] = n + 1
        while len(self._counts) > self.max_items:
            del self._counts[next(iter(self._counts))]

    def interacted(self, item: int) -> None:
        """The user acted on `item`: what they were shown of it is answered."""
        self._counts.pop(item, None)

    def counts(self, items: np.ndarray) -> np.ndarray:
        """Unanswered impressions of each of `items`."""
        get = self._counts.get
        return np.fromiter((get(int(i), 0) for i in items), dtype=np.int64, count=len(items))

    def __len__(self) -> int:
        return len(self._counts)

    def to_state(self, ids: Sequence[str]) -> dict[str, int]:
        """Plain data with item ids, least recently shown first, for a changelog."""
        return {ids[i]: n for i, n in self._counts.items()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], index: Any, max_items: int = 200) -> Exposure:
        """The inverse of `to_state`; `index(item_id)` gives (or makes) an item's index."""
        e = cls(max_items)
        for item_id, n in state.items():
            e._counts[index(item_id)] = int(n)
        return e


def demote(scores: np.ndarray, counts: np.ndarray, min_count: int,
           strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidates re-ordered after demotion: (order into `scores`, their new scores). Scores are
    sorted best first; ties keep the original order (stable)."""
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(counts)
    if min_count < 1 or strength < 0:
        raise ModelError("exposure feedback needs min_count >= 1 and strength >= 0")
    hit = c >= min_count
    if len(s) == 0 or not hit.any() or strength == 0:
        return np.arange(len(s)), s
    spread = float(s[0] - s[-1]) or 1.0
    z = (s - s[0]) / spread
    z = z - strength * np.where(hit, c - min_count + 1, 0)
    order = np.argsort(-z, kind="stable")
    return order, z[order] * spread + s[0]
