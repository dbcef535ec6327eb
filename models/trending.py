"""Time-decayed item popularity, maintained in-stream with O(1) updates.

The score of item i at time `now` is Σ w·2^(−(now − t)/half_life) over its events (w, t). Rather
than decaying every item at every event, each event adds w·e^((t − t_ref)/τ) (τ = half_life / ln 2)
to a float64 accumulator, and a read multiplies by e^((t_ref − now)/τ). When the exponent grows past
`RENORM_EXPONENT` every accumulator is rescaled and `t_ref` moves forward, so nothing overflows.
A half-life of `inf` is all-time popularity (a plain sum). Ranking does not depend on `now`.

A rescale moves `t_ref` by whole half-lives, so it multiplies every accumulator by an exact power
of two (values below `FLUSH` become 0). A value saved `shift` rescales ago therefore converts to
today's scale exactly (`load`): a saved state need not be written again after a rescale.

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models import kernels
from models.topk import Exclude, topk_of_support

RENORM_EXPONENT = 600.0
"""Rescale when an event's weight factor would exceed e^600: float64 holds up to e^709, which
leaves room for sums of a billion events. A rescale touches every item ever counted (once per
~866 half-lives of event time: every 9 days at a 15-minute half-life)."""
FLUSH = 2.0**-900
"""Accumulators below this (900 half-lives below an event's weight) are 0 after a rescale: every
value that remains is a normal float, so the rescale's multiplication by 2^-k is exact."""


def at_shift(values: np.ndarray, saved_at: np.ndarray | int, shift: np.ndarray | int
             ) -> np.ndarray:
    """Accumulators saved at shift(s) `saved_at` as they are at `shift` (per rung, for the
    rungs of a ladder side by side): what the rescales in
    between made of them (exactly: powers of two, then `FLUSH`).

    >>> at_shift(np.array([3.0, 2.0**-899]), 0, 2).tolist()  # the second went below FLUSH
    [0.75, 0.0]
    """
    out = np.ldexp(np.asarray(values, dtype=np.float64),
                   np.asarray(saved_at, dtype=np.int64) - shift)
    out[np.abs(out) < FLUSH] = 0.0
    return out


@dataclass(slots=True)
class TrendingUndo:
    """What `Trending.revert` needs to undo a batch: the scalars as `journal` found them and,
    oldest first, each accumulator change's indices and the values they held before it (an
    index or an index array)."""

    n: int
    t_ref: float | None
    shift: int
    before: list[tuple[Any, Any]] = field(default_factory=list)


class Trending:
    """Decayed popularity per item index; grows as new indices appear.

    A batch's undo costs what the batch changed, not the catalog: `journal()` starts noting the
    accumulators before they change, `revert` puts them back.

    >>> tr = Trending(half_life_seconds=10.0)
    >>> tr.update(0, 1.0, t=0.0)
    >>> undo = tr.journal()
    >>> tr.update_many(np.array([0, 2]), np.array([1.0, 1.0]), np.array([0.0, 0.0]))
    >>> tr.ranking_scores().tolist()
    [2.0, 0.0, 1.0]
    >>> tr.revert(undo)
    >>> tr.ranking_scores().tolist(), len(tr)
    ([1.0], 1)
    """

    def __init__(self, half_life_seconds: float = 86400.0, capacity: int = 1024) -> None:
        if not half_life_seconds > 0:
            raise ValueError("half_life_seconds must be positive (inf for all-time)")
        self.half_life_seconds = half_life_seconds
        self._inv_tau = 0.0 if math.isinf(half_life_seconds) else math.log(2) / half_life_seconds
        self._acc = np.zeros(capacity, dtype=np.float64)
        self._seen = np.zeros(capacity, dtype=bool)
        """Items ever given a value: every other item's accumulator is 0 (`counted`)."""
        self._counted = np.zeros(0, dtype=np.intp)
        self._fresh: list[np.ndarray] = []
        self._n = 0
        self.t_ref: float | None = None
        self.shift = 0
        """Half-lives `t_ref` has moved by rescaling: a value saved at shift s is 2^(s - shift)
        times its size now."""
        self._undo: TrendingUndo | None = None

    def __len__(self) -> int:
        return self._n

    def update(self, item: int, weight: float, t: float) -> None:
        """Add one event's weight at time `t` (events may arrive slightly out of order)."""
        if item >= self._n:  # (the check inline: this runs for every rung of every event)
            self._grow(item + 1)
        if self.t_ref is None:
            self.t_ref = t
        x = (t - self.t_ref) * self._inv_tau
        if x > RENORM_EXPONENT:
            self._rescale(t)
            x = (t - self.t_ref) * self._inv_tau
        if self._undo is not None:
            self._undo.before.append((item, float(self._acc[item])))
        if not self._seen[item]:
            self._seen[item] = True
            self._fresh.append(np.array([item], dtype=np.intp))
        self._acc[item] += weight * math.exp(x)

    def update_many(self, items: np.ndarray, weights: np.ndarray, times: np.ndarray) -> None:
        """`update` of each event in order, vectorised: the same accumulators, bit for bit (a
        rescale happens at the event that needs it, and each item's additions are made in the
        events' order), so a stream may be cut into batches anywhere."""
        items = np.ascontiguousarray(items, dtype=np.intp)  # (contiguous: one compiled kernel)
        if not len(items):
            return
        times = np.ascontiguousarray(times, dtype=np.float64)
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        if weights.shape != times.shape:  # one weight for every event
            weights = np.ascontiguousarray(np.broadcast_to(weights, times.shape))
        self._grow(int(items.max()) + 1)
        self._mark(items)
        if self.t_ref is None:
            self.t_ref = float(times[0])
        start, before = 0, np.empty(len(items))
        while start < len(items):
            end = start + kernels.decayed_add(
                self._acc, items[start:], weights[start:], times[start:], self.t_ref,
                self._inv_tau, RENORM_EXPONENT, before[start:])
            if end > start:
                self._note(items[start:end], before[start:end])
            if end < len(items):  # the event that needs a rescale first: `update` does both
                self.update(int(items[end]), float(weights[end]), float(times[end]))
            start = end + 1

    def scores(self, now: float) -> np.ndarray:
        """Decayed popularity of every item at `now` (float64)."""
        if self.t_ref is None:
            return self._acc[: self._n].copy()
        return self._acc[: self._n] * math.exp((self.t_ref - now) * self._inv_tau)

    def ranking_scores(self) -> np.ndarray:
        """Scores proportional to `scores(now)` for any `now` (a view: do not modify)."""
        return self._acc[: self._n]

    def counted(self) -> np.ndarray:
        """Sorted indices of the items ever given a value (some may be 0 again): every other
        item's score is 0, so a top-K over these is the top-K over all items when its K-th
        score is above 0 (`models.topk.topk_of_support`)."""
        if self._fresh:  # none of them in `_counted` (`_seen`): a merge, not a union's sort
            fresh = np.unique(np.concatenate(self._fresh))
            self._counted = np.insert(self._counted, np.searchsorted(self._counted, fresh), fresh)
            self._fresh = []
        return self._counted[: np.searchsorted(self._counted, self._n)]  # (a revert cuts _n)

    def top(
        self, k: int, exclude: Exclude = None, now: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` most popular items (ties by index) and their scores at `now` (or t_ref)."""
        idx, _ = topk_of_support(self._acc[: self._n], self.counted(), k, exclude)
        return idx, self.scores(self.t_ref if now is None else now)[idx]

    def load(self, t_ref: float | None, items: np.ndarray, values: np.ndarray, shift: int = 0,
             saved_at: np.ndarray | int | None = None) -> None:
        """Set raw accumulators saved from `ranking_scores()`, with the `t_ref` and `shift` of
        now; `saved_at`: the shift each value was saved at (`shift` when None). Values saved
        before later rescales are scaled as those rescales did, exactly.

        >>> a = Trending(half_life_seconds=1.0)
        >>> a.update(0, 3.0, t=0.0)
        >>> saved = a.ranking_scores().copy()
        >>> a.update(1, 1.0, t=880.0)                  # a rescale: t_ref moves 880 half-lives
        >>> a.shift, float(a.ranking_scores()[0]) == 3.0 * 2.0**-880
        (880, True)
        >>> b = Trending(half_life_seconds=1.0)
        >>> b.load(a.t_ref, np.array([0]), saved, shift=a.shift, saved_at=0)
        >>> bool(b.ranking_scores()[0] == a.ranking_scores()[0])
        True
        """
        items = np.asarray(items, dtype=np.intp)
        if len(items):
            self._grow(int(items.max()) + 1)
            self._note(items)
            self._mark(items)
        values = np.asarray(values, dtype=np.float64)
        if saved_at is not None:
            values = at_shift(values, saved_at, shift)
        self._acc[items] = values
        self.t_ref = t_ref
        self.shift = shift

    def journal(self) -> TrendingUndo:
        """Start noting the state before it changes (ending any earlier journal); `revert` with
        the result undoes what changed since."""
        self._undo = TrendingUndo(self._n, self.t_ref, self.shift)
        return self._undo

    def revert(self, undo: TrendingUndo) -> None:
        """Put back the state `journal` returned `undo` at (the accumulators it noted, newest
        change first, so the oldest value of each wins) and stop journaling."""
        acc = self._acc
        for at, values in reversed(undo.before):
            acc[at] = values
        acc[undo.n : self._n] = 0.0  # items that arrived since: gone again
        self._n, self.t_ref, self.shift, self._undo = undo.n, undo.t_ref, undo.shift, None

    def forget(self, item: int) -> None:
        """Drop an item's popularity (it left the catalog)."""
        if item < self._n:
            self._note(np.array([item]))
            self._acc[item] = 0.0

    def _mark(self, items: np.ndarray) -> None:
        """`items` (grown to) get values: note those never seen for `counted`."""
        new = items[~self._seen[items]]
        if len(new):
            self._seen[new] = True
            self._fresh.append(new)

    def _note(self, items: np.ndarray, before: np.ndarray | None = None) -> None:
        """While journaling: the accumulators of `items` before they change (`before`: those
        values, when already read)."""
        if self._undo is not None:
            self._undo.before.append((items.copy(), self._acc[items] if before is None else before))

    def _rescale(self, t: float) -> None:
        """Move `t_ref` forward by the whole half-lives it is behind `t`: each accumulator is
        multiplied by 2^-k (exactly; the tiny ones are flushed to 0)."""
        assert self.t_ref is not None
        k = math.floor((t - self.t_ref) / self.half_life_seconds)
        counted = self.counted()  # every other accumulator is 0 and stays 0
        self._note(counted)
        acc = self._acc[counted] * math.ldexp(1.0, -k)
        acc[np.abs(acc) < FLUSH] = 0.0
        self._acc[counted] = acc
        self.t_ref += k * self.half_life_seconds
        self.shift += k

    def _grow(self, n: int) -> None:
        if n > len(self._acc):
            acc = np.zeros(max(n, 2 * len(self._acc)), dtype=np.float64)
            acc[: self._n] = self._acc[: self._n]
            self._acc = acc
            seen = np.zeros(len(acc), dtype=bool)
            seen[: len(self._seen)] = self._seen
            self._seen = seen
        self._n = max(self._n, n)

    def resize(self, n: int) -> None:
        """Make room for items 0..n-1 (new items start at zero)."""
        self._grow(n)
