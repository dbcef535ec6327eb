"""Forgetting by event time: what is older than a horizon before a partition's watermark goes.

A user (or a de-duplicated event id) last seen at event time `t` is *expired* once the
partition's watermark `W` (the newest event time it has applied) passes the end of the time
bucket holding `t` by the horizon: `(bucket(t) + 1) · width ≤ W − horizon`, with buckets of
`width = horizon / granularity` (computed as `bucket(t) < first_live_bucket(W)`, the one
formula both the lazy check and a sweep use, so floating point cannot make them disagree).
Defining it on buckets lets a store keep an index by bucket that changes only when a user moves
to a newer bucket, and sweep whole buckets; defining it on the partition's own watermark (not a
clock) makes it a function of the partition's event sequence, so a batch redone after a crash
expires exactly what the first attempt did. An expired entry may
linger until a sweep removes it: whoever reads it applies `expired` first.

>>> h = Horizon(seconds=100.0, granularity=4)      # buckets of 25 s
>>> h.expired(t=10.0, watermark=120.0), h.expired(t=10.0, watermark=125.0)
(False, True)
>>> h.first_live_bucket(125.0), h.bucket(10.0), h.bucket(25.0)
(1, 0, 1)
>>> Horizon(0.0).expired(0.0, 1e12)                # 0: never
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Horizon:
    """Forget what is older than `seconds` (0: never), in buckets of `seconds / granularity`."""

    seconds: float
    granularity: int = 24

    def __post_init__(self) -> None:
        if not self.seconds >= 0 or math.isinf(self.seconds):
            raise ValueError(f"horizon must be finite and >= 0, not {self.seconds!r}")
        if self.granularity < 1:
            raise ValueError("granularity must be at least 1")

    @property
    def width(self) -> float:
        """Seconds per bucket."""
        return self.seconds / self.granularity

    @property
    def forgets(self) -> bool:
        return self.seconds > 0

    def bucket(self, t: float) -> int:
        """The bucket of event time `t` (0 when the horizon is off)."""
        return math.floor(t / self.width) if self.forgets else 0

    def expired(self, t: float, watermark: float) -> bool:
        """Whether something last seen at `t` is forgotten once the watermark is `watermark`:
        `bucket(t) < first_live_bucket(watermark)`, written out (a worker asks it a few times
        per event, and the calls of the two were most of its cost)."""
        seconds = self.seconds
        if seconds <= 0:
            return False
        width = seconds / self.granularity
        if watermark == -math.inf:
            return math.floor(t / width) < -(1 << 62)
        return math.floor(t / width) < math.floor((watermark - seconds) / width)

    def first_live_bucket(self, watermark: float) -> int:
        """Buckets below this one hold only expired entries (no bucket expires when off)."""
        if not self.forgets or watermark == -math.inf:  # nothing seen yet: nothing expired
            return -(1 << 62)
        return math.floor((watermark - self.seconds) / self.width)
