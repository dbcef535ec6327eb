"""Synthetic logs of very different pace, for trending that must suit both: a slow log that
spans years with a few dozen events a day, and a fast one of hours whose hits rotate by the
minute.

Items have a Zipf base popularity and a life: from its launch an item's pull fades as
e^(−age / lifetime) (an infinite lifetime: popularity never moves). Most users are new and act a
few times (a geometric number of events), so the log holds thousands of first lists. Events are
clicks, spread uniformly over the span; an event's item is drawn by base popularity times pull
among the items launched by then.

`slow_log` stands in for the public logs that span many years: stable tastes, 5 years, ~16 events
a day. `fast_log` is a news-like feed: 6 hours, hits that
last ~20 minutes.

>>> log = generate_paced(PaceConfig(n_events=300, span_seconds=3600.0, n_items=50, seed=1))
>>> len(log), bool(log.times[-1] - log.times[0] < 3600), set(log.event_types.tolist())
(300, True, {'click'})
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from producers.datasets import InteractionLog

YEAR = 365 * 86400.0


@dataclass(frozen=True)
class PaceConfig:
    """One paced world: how many events over how long, and how long an item stays popular."""

    n_events: int = 50_000
    span_seconds: float = 5 * YEAR
    n_items: int = 2_000
    lifetime_seconds: float = math.inf
    launched_share: float = 0.5
    """Items launched during the span (the others exist at its start)."""
    popularity: float = 1.0
    """Zipf exponent of the base popularity."""
    events_per_user: float = 4.0
    """Mean events of a user (geometric): 1 / this is the share of events by new users."""
    start_time: float = 1_500_000_000.0
    seed: int = 0
    name: str = "paced"

    def __post_init__(self) -> None:
        if self.n_events < 1 or self.n_items < 1 or not self.span_seconds > 0:
            raise ValueError("n_events, n_items and span_seconds must be positive")
        if not self.lifetime_seconds > 0 or not 0 <= self.launched_share <= 1:
            raise ValueError("lifetime_seconds must be positive, launched_share in [0, 1]")
        if self.events_per_user < 1:
            raise ValueError("events_per_user must be at least 1")


def slow_log(seed: int = 0, n_events: int = 30_000) -> PaceConfig:
    """Five years (~16 events a day), 5,000 items, stable tastes, a fifth of the items launched
    along the way: a long memory is the right list for a newcomer."""
    return PaceConfig(n_events=n_events, span_seconds=5 * YEAR, n_items=5_000,
                      lifetime_seconds=math.inf, launched_share=0.2, popularity=0.8, seed=seed,
                      name="slow-5y")


def fast_log(seed: int = 0, n_events: int = 50_000) -> PaceConfig:
    """Six hours of a feed whose items are popular for ~20 minutes after their launch."""
    return PaceConfig(n_events=n_events, span_seconds=6 * 3600.0, lifetime_seconds=1200.0,
                      launched_share=0.95, seed=seed, name="fast-6h")


def generate_paced(config: PaceConfig, blocks: int = 400) -> InteractionLog:
    """The log of `config`; item pulls are recomputed for each of `blocks` slices of time."""
    c = config
    rng = np.random.default_rng(c.seed)
    t0 = c.start_time
    base = np.exp(-c.popularity * np.log1p(rng.permutation(c.n_items)))
    launched = rng.random(c.n_items) < c.launched_share
    launch = np.where(launched, rng.uniform(t0, t0 + c.span_seconds, c.n_items), t0)
    times = np.sort(rng.uniform(t0, t0 + c.span_seconds, c.n_events))
    items = np.empty(c.n_events, dtype=np.int64)
    edges = np.linspace(0, c.n_events, blocks + 1).astype(np.int64)
    for a, b in itertools.pairwise(edges.tolist()):
        if a == b:
            continue
        t = times[a]
        age = t - launch
        pull = np.where(age >= 0, base * np.exp(-np.maximum(age, 0) / c.lifetime_seconds), 0.0)
        if pull.sum() <= 0:  # nothing launched yet: the items present at the start
            pull = np.where(launched, 0.0, base)
        items[a:b] = rng.choice(c.n_items, size=b - a, p=pull / pull.sum())
    users = _users(rng, c.n_events, c.events_per_user)
    return InteractionLog(
        np.char.add("u", users.astype(str)), np.char.add("i", items.astype(str)),
        np.full(c.n_events, "click"), np.full(c.n_events, np.nan), times, name=c.name)


def _users(rng: np.random.Generator, n: int, per_user: float) -> np.ndarray:
    """Per event, its user: a new one with probability 1 / per_user, else one of the last few
    hundred users (people come back soon after they arrive)."""
    new = rng.random(n) < 1.0 / per_user
    new[0] = True
    ids = np.cumsum(new) - 1
    back = np.minimum(rng.geometric(1.0 / 200.0, n) - 1, ids)
    return np.where(new, ids, ids - back)
