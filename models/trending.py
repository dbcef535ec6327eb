"""Time-decayed item popularity, maintained in-stream with O(1) updates.

The score of item i at time `now` is Σ w·2^(−(now − t)/half_life) over its events (w, t). Rather
than decaying every item at every event, each event adds w·e^((t − t_ref)/τ) (τ = half_life / ln 2)
to a float64 accumulator, and a read multiplies by e^((t_ref − now)/τ). When the exponent grows past
`RENORM_EXPONENT` every accumulator is rescaled and `t_ref` moves forward, so nothing overflows.
A half-life of `inf` is all-time popularity (a plain sum). Ranking does not depend on `now`.

>>> tr = Trending(half_life_seconds=10.0)
>>> tr.update(0, 1.0, t=0.0)
>>> tr.update(1, 1.0, t=10.0)
>>> tr.scores(now=10.0).tolist()
[0.5, 1.0]
>>> tr.top(1)[0].tolist()
[1]
"""

from __future__ import annotations

import math

import numpy as np

from models.topk import Exclude, topk

RENORM_EXPONENT = 600.0
"""Rescale when an event's weight factor would exceed e^600: float64 holds up to e^709, which
leaves room for sums of a billion events. Rare rescales matter: one changes every item's raw
accumulator, which the worker's changelog must then write (once per ~866 half-lives of event
time: every 9 days at a 15-minute half-life, where e^50 was every 18 hours)."""


class Trending:
    """Decayed popularity per item index; grows as new indices appear."""

    def __init__(self, half_life_seconds: float = 86400.0, capacity: int = 1024) -> None:
        if not half_life_seconds > 0:
            raise ValueError("half_life_seconds must be positive (inf for all-time)")
        self.half_life_seconds = half_life_seconds
        self._inv_tau = 0.0 if math.isinf(half_life_seconds) else math.log(2) / half_life_seconds
        self._acc = np.zeros(capacity, dtype=np.float64)
        self._n = 0
        self.t_ref: float | None = None

    def __len__(self) -> int:
        return self._n

    def update(self, item: int, weight: float, t: float) -> None:
        """Add one event's weight at time `t` (events may arrive slightly out of order)."""
        self._grow(item + 1)
        if self.t_ref is None:
            self.t_ref = t
        x = (t - self.t_ref) * self._inv_tau
        if x > RENORM_EXPONENT:
            self._acc[: self._n] *= math.exp(-x)
            self.t_ref, x = t, 0.0
        self._acc[item] += weight * math.exp(x)

    def update_many(self, items: np.ndarray, weights: np.ndarray, times: np.ndarray) -> None:
        """Vectorised `update` for a batch of events."""
        items = np.asarray(items, dtype=np.intp)
        if not len(items):
            return
        times = np.asarray(times, dtype=np.float64)
        self._grow(int(items.max()) + 1)
        if self.t_ref is None:
            self.t_ref = float(times[0])
        top = float(times.max())
        if (top - self.t_ref) * self._inv_tau > RENORM_EXPONENT:
            self._acc[: self._n] *= math.exp((self.t_ref - top) * self._inv_tau)
            self.t_ref = top
        np.add.at(self._acc, items, weights * np.exp((times - self.t_ref) * self._inv_tau))

    def scores(self, now: float) -> np.ndarray:
        """Decayed popularity of every item at `now` (float64)."""
        if self.t_ref is None:
            return self._acc[: self._n].copy()
        return self._acc[: self._n] * math.exp((self.t_ref - now) * self._inv_tau)

    def ranking_scores(self) -> np.ndarray:
        """Scores proportional to `scores(now)` for any `now` (a view: do not modify)."""
        return self._acc[: self._n]

    def top(
        self, k: int, exclude: Exclude = None, now: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` most popular items (ties by index) and their scores at `now` (or t_ref)."""
        idx, _ = topk(self._acc[: self._n], k, exclude)
        return idx, self.scores(self.t_ref if now is None else now)[idx]

    def load(self, t_ref: float | None, items: np.ndarray, values: np.ndarray) -> None:
        """Set raw accumulators saved from `ranking_scores()` with the `t_ref` they refer to
        (restoring a saved state exactly: no rescaling, so no rounding)."""
        items = np.asarray(items, dtype=np.intp)
        if len(items):
            self._grow(int(items.max()) + 1)
        self._acc[items] = values
        self.t_ref = t_ref

    def forget(self, item: int) -> None:
        """Drop an item's popularity (it left the catalog)."""
        if item < self._n:
            self._acc[item] = 0.0

    def _grow(self, n: int) -> None:
        if n > len(self._acc):
            acc = np.zeros(max(n, 2 * len(self._acc)), dtype=np.float64)
            acc[: self._n] = self._acc[: self._n]
            self._acc = acc
        self._n = max(self._n, n)

    def resize(self, n: int) -> None:
        """Make room for items 0..n-1 (new items start at zero)."""
        self._grow(n)
