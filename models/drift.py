"""Drift statistics: river detectors on model signals, divergences on inputs, snapshot churn.

Four kinds, each with its current `statistic` and a count of `detections`:

- `HitRateDrift`: ADWIN on the online 0/1 hit stream (was the consumed item in the user's top-K);
  a detection is a change in the mean hit rate, a `drop` when it went down.
- `MeanShiftDrift`: Page-Hinkley on a per-batch scalar, such as the mean fold-in residual or the
  mean user-vector norm.
- `DistributionDrift`: PSI and Jensen-Shannon divergence between a reference window and the most
  recent window of a categorical stream (item ids for popularity, event types for the mix).
- `SnapshotChurn`: mean top-K overlap of a sample of users between consecutive model versions.

Pure: no clock, no Kafka, no Prometheus; callers feed values and read statistics.

>>> psi([50, 50], [50, 50]), round(psi([90, 10], [10, 90]), 3)
(0.0, 3.516)
>>> js_divergence([1, 0], [0, 1]), topk_overlap(["a", "b"], ["b", "c"])
(1.0, 0.5)
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
from river import drift as river_drift

EPS = 1e-4
"""Floor of a bin's share in PSI, so that an empty bin gives a large but finite term."""


def _shares(counts: Sequence[float] | np.ndarray, eps: float = 0.0) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    p = c / total if total > 0 else np.full(len(c), 1.0 / max(len(c), 1))
    if eps > 0:
        p = np.maximum(p, eps)
        p /= p.sum()
    return p


def psi(reference: Sequence[float] | np.ndarray, recent: Sequence[float] | np.ndarray,
        eps: float = EPS) -> float:
    """Population stability index Σ (q − p) ln(q / p) of two aligned histograms (counts).

    Rule of thumb: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a large one.
    """
    p, q = _shares(reference, eps), _shares(recent, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def js_divergence(p_counts: Sequence[float] | np.ndarray,
                  q_counts: Sequence[float] | np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 equal, 1 disjoint) of two aligned histograms."""
    p, q = _shares(p_counts), _shares(q_counts)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def topk_overlap(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """|a ∩ b| / max(|a|, |b|): 1 for the same set of items, 0 for disjoint lists."""
    n = max(len(a), len(b))
    return len(set(a) & set(b)) / n if n else 1.0


class HitRateDrift:
    """ADWIN on the online hit stream; `statistic` is ADWIN's estimate of the current hit rate.

    After a detection river's ADWIN starts afresh, so `statistic` then follows the new regime.
    `direction` is -1 when the last detection was a drop (the mean of the window ADWIN dropped
    was higher than that of the part it kept), +1 for a rise.

    >>> d = HitRateDrift(delta=0.002)
    >>> _ = d.update_many([1, 0] * 500 + [0] * 1000)
    >>> d.detections >= 1, d.drops >= 1, d.first_detection_at > 1000
    (True, True, True)
    """

    def __init__(self, delta: float = 0.002, clock: int = 32, grace_period: int = 10) -> None:
        self.delta = delta
        self.clock = clock
        self.grace_period = grace_period
        self._adwin = river_drift.ADWIN(delta=delta, clock=clock, grace_period=grace_period)
        self.n = 0
        self.detections = 0
        self.drops = 0
        self.direction = 0
        self.first_detection_at: int | None = None
        """Index (0-based, in events seen) of the first detection; None before one."""
        self.last_detection_at: int | None = None

    @property
    def statistic(self) -> float:
        return float(self._adwin.estimation)

    @property
    def width(self) -> int:
        return int(self._adwin.width)

    def update(self, hit: bool | float) -> bool:
        """Add one judged event (1 hit, 0 miss); True when this event completes a detection."""
        total_before, width_before = self._adwin.total, self.width
        self._adwin.update(float(hit))
        self.n += 1
        if not self._adwin.drift_detected:
            return False
        # ADWIN dropped the older part of its window: its mean against the kept part's is the sign.
        dropped = width_before + 1 - self.width
        dropped_sum = total_before + float(hit) - self._adwin.total
        dropped_mean = dropped_sum / dropped if dropped > 0 else self.statistic
        self.direction = -1 if dropped_mean > self.statistic else 1
        self.detections += 1
        self.drops += self.direction < 0
        self.last_detection_at = self.n - 1
        if self.first_detection_at is None:
            self.first_detection_at = self.n - 1
        return True

    def update_many(self, hits: Iterable[bool | float]) -> int:
        """Add several events; returns how many detections they caused."""
        return sum(self.update(h) for h in hits)


class MeanShiftDrift:
    """Page-Hinkley on a scalar series (one value per batch); `statistic` is its test value.

    The statistic is the larger of the cumulative upward and downward deviations from the running
    mean, minus their historical extremes; a detection is the statistic passing `threshold`.

    >>> d = MeanShiftDrift(threshold=5.0, min_instances=10)
    >>> _ = d.update_many([1.0] * 50 + [2.0] * 50)
    >>> d.detections, d.first_detection_at
    (1, 55)
    """

    def __init__(self, threshold: float = 50.0, delta: float = 0.005, min_instances: int = 30,
                 alpha: float = 1 - 1e-4, mode: str = "both") -> None:
        self.threshold = threshold
        self.delta = delta
        self.min_instances = min_instances
        self.alpha = alpha
        self.mode = mode
        self._ph = river_drift.PageHinkley(min_instances=min_instances, delta=delta,
                                           threshold=threshold, alpha=alpha, mode=mode)
        self.n = 0
        self.detections = 0
        self.first_detection_at: int | None = None
        self.last_detection_at: int | None = None
        self.statistic = 0.0

    def update(self, value: float) -> bool:
        """Add one value; True when it completes a detection. NaN or infinite values are skipped."""
        if not math.isfinite(value):
            return False
        self._ph.update(float(value))
        self.n += 1
        # river keeps the test terms private; these are the two sides of its `_test_both`.
        up = self._ph._sum_increase - self._ph._min_increase
        down = self._ph._max_decrease - self._ph._sum_decrease
        self.statistic = float(max(up, down if self.mode != "up" else 0.0))
        if not self._ph.drift_detected:
            return False
        self.detections += 1
        self.last_detection_at = self.n - 1
        if self.first_detection_at is None:
            self.first_detection_at = self.n - 1
        return True

    def update_many(self, values: Iterable[float]) -> int:
        return sum(self.update(v) for v in values)


class DistributionDrift:
    """PSI and JS divergence of a categorical stream: a reference window against the latest one.

    The reference is the first `window` values seen (or after `rebase()`); the recent window slides
    over the last `window` values. Bins are the reference's `bins - 1` most frequent values plus
    one bin for all others, so a catalog of any size gives a fixed-size comparison and mass moving
    to items the reference barely saw shows up in the last bin. A detection is the PSI crossing
    `threshold` upwards (so a lasting shift counts once, until it goes back below).

    >>> d = DistributionDrift(window=100, bins=3, threshold=0.25)
    >>> d.update_many(["a", "b"] * 100)
    0
    >>> d.update_many(["c"] * 100), round(d.psi, 2) > 0.25, round(d.js, 2)
    (1, True, 1.0)
    """

    def __init__(self, window: int = 5000, bins: int = 50, threshold: float = 0.25,
                 min_recent: int | None = None) -> None:
        if window < 1 or bins < 2:
            raise ValueError("window must be >= 1 and bins >= 2")
        self.window = window
        self.bins = bins
        self.threshold = threshold
        self.min_recent = window if min_recent is None else min_recent
        self.detections = 0
        self.psi = 0.0
        self.js = 0.0
        self.rebase()

    def rebase(self) -> None:
        """Forget the reference: the next `window` values become the new one."""
        self._reference: Counter[Hashable] = Counter()
        self._ref_n = 0
        self._bins: list[Hashable] = []
        self._recent: deque[Hashable] = deque()
        self._recent_counts: Counter[Hashable] = Counter()
        self._above = False
        self.psi = self.js = 0.0

    @property
    def ready(self) -> bool:
        """Whether both windows are full enough for the statistics to mean something."""
        return self._ref_n >= self.window and len(self._recent) >= self.min_recent

    def update(self, value: Hashable) -> None:
        """Add one value (no statistics are computed here: call `evaluate`)."""
        if self._ref_n < self.window:
            self._reference[value] += 1
            self._ref_n += 1
            if self._ref_n == self.window:
                top = self._reference.most_common(self.bins - 1)
                self._bins = [v for v, _ in top]
            return
        self._recent.append(value)
        self._recent_counts[value] += 1
        if len(self._recent) > self.window:
            old = self._recent.popleft()
            self._recent_counts[old] -= 1
            if not self._recent_counts[old]:
                del self._recent_counts[old]

    def histograms(self) -> tuple[np.ndarray, np.ndarray]:
        """(reference, recent) counts over the bins, the last bin being "everything else"."""
        ref = [self._reference[v] for v in self._bins]
        cur = [self._recent_counts.get(v, 0) for v in self._bins]
        ref.append(self._ref_n - sum(ref))
        cur.append(len(self._recent) - sum(cur))
        return np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)

    def evaluate(self) -> bool:
        """Recompute PSI and JS; True when the PSI has just crossed the threshold upwards."""
        if not self.ready:
            return False
        ref, cur = self.histograms()
        self.psi, self.js = psi(ref, cur), js_divergence(ref, cur)
        above = self.psi > self.threshold
        crossed = above and not self._above
        self._above = above
        self.detections += crossed
        return crossed

    @property
    def statistic(self) -> float:
        return self.psi

    def update_many(self, values: Iterable[Hashable]) -> int:
        """Add several values, then evaluate once; returns 1 on a new detection, else 0."""
        self.add_many(values)
        return int(self.evaluate())

    def add_many(self, values: Iterable[Hashable]) -> None:
        """`update` with each of `values` in order, the recent window moved once.

        >>> a, b = DistributionDrift(window=3, bins=2), DistributionDrift(window=3, bins=2)
        >>> for v in "aabcbcca":
        ...     a.update(v)
        >>> b.add_many("aabcbcca")
        >>> a.histograms()[1].tolist() == b.histograms()[1].tolist() == [1.0, 2.0]
        True
        """
        values = list(values)
        start = 0
        while start < len(values) and self._ref_n < self.window:  # the reference fills first
            self.update(values[start])
            start += 1
        rest = values[start:]
        if not rest:
            return
        self._recent.extend(rest)
        self._recent_counts.update(rest)
        over = len(self._recent) - self.window
        if over > 0:
            gone = [self._recent.popleft() for _ in range(over)]
            self._recent_counts.subtract(gone)
            for v in set(gone):
                if self._recent_counts[v] <= 0:
                    del self._recent_counts[v]


class SnapshotChurn:
    """How much a sample of users' top-K changes from one model version to the next.

    The first `sample_size` users seen form the sample. `observe` records a sampled user's list
    under a model version; when a user who had a list under the previous version gets one under a
    newer version, their overlap joins the newer version's mean. `statistic` is the churn of the
    latest transition, 1 − mean overlap. Lists fed from the published stream also move with the
    user's own new events; a caller that re-scores the sample on a snapshot swap gets pure churn.

    >>> c = SnapshotChurn(sample_size=2, min_compared=1)
    >>> [c.observe(u, 1, li) for u, li in [("u1", "ab"), ("u2", "cd"), ("u3", "ef")]]
    [False, False, False]
    >>> c.observe("u1", 2, "ax"), c.observe("u2", 2, "cd")
    (False, False)
    >>> c.version, c.overlap, c.statistic, c.compared, c.transitions
    (2, 0.75, 0.25, 2, 1)
    """

    def __init__(self, sample_size: int = 256, threshold: float = 0.8,
                 min_compared: int = 20) -> None:
        self.sample_size = sample_size
        self.threshold = threshold
        self.min_compared = min_compared
        self._lists: dict[Hashable, tuple[int, tuple[Hashable, ...]]] = {}
        """The sample: each followed user's last list and its version."""
        self._previous: dict[Hashable, tuple[Hashable, ...]] = {}
        self.version: int | None = None
        self.transitions = 0
        """Version changes seen after the first version."""
        self.detections = 0
        self._sum = 0.0
        self.compared = 0
        self._flagged = False

    @property
    def sampled(self) -> int:
        """Users whose lists are followed (at most `sample_size`)."""
        return len(self._lists)

    @property
    def overlap(self) -> float:
        """Mean overlap of the latest transition so far (1.0 before any comparison)."""
        return self._sum / self.compared if self.compared else 1.0

    @property
    def statistic(self) -> float:
        return 1.0 - self.overlap

    def observe(self, user: Hashable, version: int, items: Sequence[Hashable]) -> bool:
        """Record `user`'s list under `version` (ignored for users outside the sample).

        True when this comparison makes the transition's churn pass `threshold`, with at least
        `min_compared` users compared: a transition counts as one detection at most.
        """
        if user not in self._lists and len(self._lists) >= self.sample_size:
            return False
        if self.version is None or version > self.version:
            # Lists under the version being replaced are what the new version is compared with.
            self._previous = {u: li for u, (v, li) in self._lists.items() if v == self.version}
            self.transitions += self.version is not None
            self.version = version
            self._sum, self.compared, self._flagged = 0.0, 0, False
        last = self._lists.get(user)
        self._lists[user] = (version, tuple(items))
        before = self._previous.get(user)
        if version != self.version or before is None or (last is not None and last[0] == version):
            return False
        self._sum += topk_overlap(before, items)
        self.compared += 1
        if self._flagged or self.compared < self.min_compared or self.statistic <= self.threshold:
            return False
        self._flagged = True
        self.detections += 1
        return True
