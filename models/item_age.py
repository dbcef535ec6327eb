"""Item age: items created longer ago than a configurable age leave the candidates.

`ItemAges` keeps each item's `created_at` (from its catalog message; NaN when unknown: such an
item is never too old) by item index, and answers `too_old(now, max_age)` with the indices of
the items created before the cut-off `now - max_age`, rounded down to a multiple of `step`
seconds (an hour by default: an item leaves within the hour after it reaches the age), so that
every list of the same hour shares one answer (cached) and the answer depends only on `now`.
It keeps the indices sorted by creation time, so an answer is a binary search and a slice (the
sort is redone lazily after catalog changes).

>>> ages = ItemAges()
>>> ages.set(0, 100.0); ages.set(1, float("nan")); ages.set(2, 900.0)
>>> ages.too_old(now=1000.0, max_age=500.0).tolist()   # created before 0 (500, rounded down)
[]
>>> ages.too_old(now=5000.0, max_age=500.0).tolist()   # before 3600
[0, 2]
>>> ages.too_old(now=1000.0, max_age=None).tolist()
[]
"""

from __future__ import annotations

import math

import numpy as np

_NONE = np.zeros(0, dtype=np.int64)


class ItemAges:
    """Creation time per item index (NaN: unknown), and the items older than an age."""

    def __init__(self, capacity: int = 1024, step: float = 3600.0) -> None:
        self.step = step
        self._created = np.full(capacity, np.nan)
        self._n = 0
        self._order: np.ndarray | None = None
        self._last: tuple[float, np.ndarray] = (math.nan, _NONE)

    def __len__(self) -> int:
        return self._n

    def set(self, i: int, created_at: float | None) -> None:
        """An item's creation time (None: unknown)."""
        if i >= len(self._created):
            grown = np.full(max(i + 1, 2 * len(self._created)), np.nan)
            grown[: self._n] = self._created[: self._n]
            self._created = grown
        self._created[i] = np.nan if created_at is None else float(created_at)
        self._n = max(self._n, i + 1)
        self._order = None
        self._last = (math.nan, _NONE)

    def created_at(self, i: int) -> float:
        return float(self._created[i]) if i < self._n else math.nan

    def too_old(self, now: float, max_age: float | None) -> np.ndarray:
        """Indices (int64, by creation time) of the items created before `now - max_age`
        rounded down to a multiple of `step`; none when `max_age` is None."""
        if max_age is None or self._n == 0:
            return _NONE
        cutoff = math.floor((now - max_age) / self.step) * self.step
        if self._last[0] == cutoff:
            return self._last[1]
        if self._order is None:
            known = np.flatnonzero(~np.isnan(self._created[: self._n]))
            self._order = known[np.argsort(self._created[known], kind="stable")]
        times = self._created[self._order]
        old = self._order[: np.searchsorted(times, cutoff, side="left")].astype(np.int64)
        self._last = (cutoff, old)
        return old
