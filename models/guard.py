"""Bot and shill guard: what one user may add to the counts everyone shares.

Trending and co-visitation counts are shared by every user of a partition, so one account
hammering an item could push it into everyone's list. The guard decides, per positive event,
what share of its weight the shared counts get (the user's own history always gets all of it:
a user's list is theirs). It reads only the user's recent events (the history ring, the event
being added last), so it needs no state of its own and restores with the history.

**Rate caps.** One vote per item: within `repeat_seconds` a user's events on an item add, in
all, the weight of the strongest of them (an event adds what it exceeds the user's earlier ones
on the item by: a view, then a purchase adds the purchase's weight; the tenth purchase adds
nothing). And, when `max_per_window` > 0, an event adds nothing once the user had that many
positive events in the last `window_seconds` (counted in the history ring, so at most its
length). Off by default: 58 % of ml-100k's events come from users who rated 30 or more films
in the hour before, and they are people.

**Automated behaviour.** Over the user's last `min_events` events (fewer: no verdict):
- *rate*: more than `max_rate_per_minute` events a minute;
- *regularity*: gaps between events whose coefficient of variation is below `min_gap_cv` while
  the user acts more than `regular_rate_per_minute` times a minute (people are bursty: CV ≥ 0.6
  for every 20-event window of every ml-100k user; a script's timer is not);
- *breadth*: fewer than `min_breadth` distinct items per event (a shill repeating one item; an
  honest funnel view → click → cart → purchase is 0.25 on its own and mixes with other items).
A user flagged by any of them adds `bot_weight` (default 0) of each event to the shared counts,
and when a user is first flagged, what their earlier events still in the ring added is taken
back (`withdrawn`): until the verdict (`min_events` events), a bot votes like anyone.

>>> cfg = GuardConfig(min_events=10)
>>> bot = verdict(np.arange(10) * 2.0, np.zeros(10, dtype=np.int64), cfg)
>>> bot.automated, bot.reasons
(True, ('regularity', 'breadth'))
>>> times = np.array([0, 5, 7, 60, 61, 200, 202, 400, 460, 461.0])
>>> human = verdict(times, np.array([1, 2, 2, 3, 4, 5, 5, 6, 7, 8]), cfg)
>>> human.automated, round(human.rate_per_minute, 2), round(human.gap_cv, 2)
(False, 1.17, 1.32)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from models.errors import ModelError
from models.history import EVENT_DTYPE


@dataclass(frozen=True)
class GuardConfig:
    """Caps and thresholds; `enabled=False` lets every event count in full."""

    enabled: bool = True
    window_seconds: float = 3600.0
    max_per_window: int = 0
    """0: no cap on positive events per window."""
    repeat_seconds: float = 86400.0
    min_events: int = 20
    max_rate_per_minute: float = 60.0
    min_gap_cv: float = 0.3
    regular_rate_per_minute: float = 2.0
    min_breadth: float = 0.15
    bot_weight: float = 0.0

    @property
    def knobs(self) -> np.ndarray:
        """The settings as the compiled kernel takes them (built once)."""
        knobs = self.__dict__.get("_knobs")
        if knobs is None:
            knobs = self.__dict__["_knobs"] = _knobs(self)
        return knobs

    def __post_init__(self) -> None:
        if self.max_per_window < 0 or self.min_events < 3:
            raise ModelError("max_per_window must be >= 0 and min_events >= 3")
        if not 0 <= self.bot_weight <= 1:
            raise ModelError("bot_weight must be in [0, 1]")


@dataclass(frozen=True)
class Verdict:
    """Whether the recent events look automated, why, and the statistics behind it."""

    automated: bool
    reasons: tuple[str, ...]
    rate_per_minute: float
    gap_cv: float
    breadth: float


NO_VERDICT = Verdict(False, (), 0.0, float("nan"), float("nan"))
REASONS = ("rate", "regularity", "breadth")


def verdict(times: np.ndarray, items: np.ndarray, config: GuardConfig) -> Verdict:
    """Judge the user's recent events (oldest first) by their last `min_events`."""
    ring = _ring(times, items, np.ones(len(times)))
    return _verdict(_judge(ring, len(ring), len(ring), config.knobs), config)


def shared_weight(
    times: np.ndarray, items: np.ndarray, weights: np.ndarray, config: GuardConfig
) -> tuple[float, Verdict]:
    """The share (0..1) of the last event's weight that the shared counts get (co-visits count
    the event when the share is above 0), and the verdict on the user. The arrays hold the
    user's recent events, oldest first, the event being added last."""
    if not config.enabled or not len(times):
        return 1.0, NO_VERDICT
    ring = _ring(times, items, weights)
    out = _judge(ring, len(ring), len(ring), config.knobs)
    return float(out[0]), _verdict(out, config)


def shared_weight_ring(ring: np.ndarray, seq: int, n: int, config: GuardConfig
                       ) -> tuple[float, bool]:
    """`shared_weight` over a `models.history` ring buffer (`EVENT_DTYPE`, event s at s % its
    length) holding `n` events, the last of sequence number `seq - 1`, and whether the user
    looks automated: one compiled pass over the ring, no copy (~5 µs)."""
    if not config.enabled or n == 0:
        return 1.0, False
    share, mask = _judge(ring, seq, n, config.knobs)[:2]
    return share, mask != 0


def withdrawn(ring: np.ndarray, seq: int, n: int, config: GuardConfig
              ) -> list[tuple[int, float, float]]:
    """When the user's last event makes them look automated and the one before did not: what
    their earlier events still in the ring added to the shared counts beyond `bot_weight`, as
    (item, weight, time), each recomputed as the guard counted it then, for the caller to take
    back. Empty otherwise. (Co-visit counts are not taken back.)"""
    knobs = config.knobs
    if not config.enabled or n < 2 or not _judge(ring, seq, n, knobs)[1]:
        return []
    if _judge(ring, seq - 1, n - 1, knobs)[1]:  # flagged already: nothing new to take back
        return []
    out = []
    for j in range(1, n):  # the events before the last, newest first
        e = ring[(seq - 1 - j) % len(ring)]
        if e["weight"] <= 0:
            continue
        share = float(_judge(ring, seq - j, n - j, knobs)[0])
        if share > config.bot_weight:
            out.append((int(e["item"]), float(e["weight"]) * (share - config.bot_weight),
                        float(e["time"])))
    return out[::-1]


class GuardStats:
    """Counts of what the guard did, for metrics: events of automated-looking users, events it
    capped, and the users it flagged within the last `horizon_seconds` of event time (at most
    `max_users`, the oldest forgotten first)."""

    def __init__(self, horizon_seconds: float = 3600.0, max_users: int = 100_000) -> None:
        self.horizon_seconds = horizon_seconds
        self.max_users = max_users
        self.automated_events = 0
        self.capped_events = 0
        self.withdrawn_events = 0
        """Earlier events of newly flagged users taken back from the shared counts."""
        self._flagged: dict[str, float] = {}
        self._now = 0.0

    def count(self, user_id: str, t: float, share: float, automated: bool) -> None:
        """One positive event's outcome: `share` of it counted; `automated` its user's verdict."""
        self._now = max(self._now, t)
        if automated:
            self.automated_events += 1
            self._flagged.pop(user_id, None)
            self._flagged[user_id] = t
            if len(self._flagged) > self.max_users:
                del self._flagged[next(iter(self._flagged))]
        elif share < 1.0:
            self.capped_events += 1

    def totals(self) -> dict[str, int]:
        """The event counters, by the outcome names of the guard's metric."""
        return {"automated": self.automated_events, "capped": self.capped_events,
                "withdrawn": self.withdrawn_events}

    def automated_users(self) -> int:
        """Users flagged within the horizon before the newest event seen."""
        cutoff = self._now - self.horizon_seconds
        while self._flagged:
            first = next(iter(self._flagged))
            if self._flagged[first] >= cutoff:
                break
            del self._flagged[first]
        return len(self._flagged)


def _knobs(c: GuardConfig) -> np.ndarray:
    return np.array([c.min_events, c.max_rate_per_minute, c.min_gap_cv,
                     c.regular_rate_per_minute, c.min_breadth, c.bot_weight, c.window_seconds,
                     c.max_per_window, c.repeat_seconds], dtype=np.float64)


def _verdict(out: tuple[float, int, float, float, float], config: GuardConfig) -> Verdict:
    _, mask, rate, cv, breadth = out
    if rate < 0:
        return NO_VERDICT
    reasons = tuple(r for b, r in enumerate(REASONS) if mask >> b & 1)
    return Verdict(bool(reasons), reasons, float(rate), float(cv), float(breadth))


def _ring(times: np.ndarray, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
    ring = np.zeros(len(times), dtype=EVENT_DTYPE)
    ring["time"], ring["item"], ring["weight"] = times, items, weights
    return ring


@njit(cache=True, nogil=True)
def _judge(ring: np.ndarray, seq: int, n: int, knobs: np.ndarray
           ) -> tuple[float, int, float, float, float]:
    """(share, reasons bit mask, rate a minute, gap CV, breadth); rate -1: too few events.
    `knobs` is `GuardConfig.knobs`."""
    min_events, max_rate, min_cv, regular_rate = int(knobs[0]), knobs[1], knobs[2], knobs[3]
    min_breadth, bot_weight, window, max_per_window = knobs[4], knobs[5], knobs[6], knobs[7]
    size = ring.shape[0]
    last = ring[(seq - 1) % size]
    t, item, w = last["time"], last["item"], last["weight"]
    share, mask, rate, cv, breadth = 1.0, 0, -1.0, np.nan, np.nan
    if n >= min_events:
        # the verdict, over the last min_events events: gap moments and distinct items
        s1 = s2 = 0.0
        distinct = 0
        for j in range(min_events):
            e = ring[(seq - min_events + j) % size]
            if j:
                g = e["time"] - ring[(seq - min_events + j - 1) % size]["time"]
                s1 += g
                s2 += g * g
            new = True
            for q in range(j):
                if ring[(seq - min_events + q) % size]["item"] == e["item"]:
                    new = False
                    break
            distinct += new
        span = s1
        rate = (min_events - 1) / span * 60.0 if span > 0 else np.inf
        mean = s1 / (min_events - 1)
        var = max(s2 / (min_events - 1) - mean * mean, 0.0)
        cv = np.sqrt(var) / mean if mean > 0 else 0.0
        breadth = distinct / min_events
        mask = (rate > max_rate) | (cv < min_cv and rate > regular_rate) << 1 \
            | (breadth < min_breadth) << 2
        if mask:
            share = bot_weight
    if share == 0.0:
        return share, mask, rate, cv, breadth
    # the caps, over the events before the last
    recent, strongest = 0, 0.0
    for j in range(1, n):
        e = ring[(seq - 1 - j) % size]
        if e["weight"] <= 0:
            continue
        recent += e["time"] > t - window
        if e["item"] == item and e["time"] > t - knobs[8]:
            strongest = max(strongest, float(e["weight"]))
    if max_per_window > 0 and recent >= max_per_window:
        return 0.0, mask, rate, cv, breadth
    if w > 0 and strongest > 0:
        share *= max(0.0, 1.0 - strongest / w)
    return share, mask, rate, cv, breadth


def warm_up() -> None:
    """Compile (or load from numba's cache) the check run on every learned event."""
    shared_weight_ring(np.zeros(2, EVENT_DTYPE), 1, 1, GuardConfig())
