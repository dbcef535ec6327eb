"""Trending that adapts to the log's pace: a ladder of half-lives, and the one whose top-K the
stream's own next events hit most often is served.

A fixed half-life is a bet on how fast popularity moves in *event time*. A week suits a shop
with thousands of events a day; on a log that spans years with a few dozen events a day, a
week's decayed counts hold a handful of events per partition and rank noise (a new user's first
list then does far worse than all-time popularity), while on a log of hours whose hits rotate
every few minutes, a week is all-time popularity and lags every change.

`AdaptiveTrending` keeps one `models.trending.Trending` per rung of a ladder of half-lives
(default: 15 minutes to a year, ×8 apart, and all-time) and tests them prequentially: each
positive event, *before* it is counted, scores a hit for every rung whose last published top-K
(refreshed every `refresh_events` events) holds its item. That top-K is what a new user was
shown, so the hits estimate each rung's first-list recall on this very log. Hits fade with a
memory of `memory_events` events; at each refresh the rung with the most wins (ties: the
longer half-life, the steadier list). Until the first refresh, all-time popularity serves.
Everything is a function of the events in order, counted rather than timed, so the same
partition replayed gives the same choices.

Cost per event: one update per rung (7 by default) and a set lookup per rung; per refresh one
top-K per rung over the items. Memory: 8 bytes per item and rung.

>>> tr = AdaptiveTrending(half_lives=(10.0, math.inf), k=1, refresh_events=2)
>>> for t, item in enumerate([0, 0, 1, 1, 1, 1, 1, 1]):   # item 1 takes over
...     tr.update(item, 1.0, t=100.0 * t)
>>> tr.half_life_seconds, tr.hits.round(2).tolist()       # the short half-life saw it first
(10.0, [4.0, 2.0])
>>> tr.top(1)[0].tolist()
[1]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.topk import Exclude
from models.trending import Trending
from refold.core.errors import ModelError

HOUR = 3600.0
DEFAULT_LADDER = (900.0, 2 * HOUR, 16 * HOUR, 128 * HOUR, 1024 * HOUR, 8192 * HOUR, math.inf)
"""15 min, 2 h, 16 h, 5.3 days, 43 days, 341 days, all-time."""


class AdaptiveTrending:
    """A ladder of `Trending` counts and the prequential choice among them; reads like a
    `Trending` (scores, ranking_scores, top) of the chosen half-life."""

    def __init__(
        self,
        half_lives: Sequence[float] = DEFAULT_LADDER,
        k: int = 10,
        refresh_events: int = 100,
        memory_events: float = 5000.0,
        capacity: int = 1024,
    ) -> None:
        if not half_lives or any(not h > 0 for h in half_lives):
            raise ModelError("half_lives must be a non-empty list of positive numbers")
        if k < 1 or refresh_events < 1 or not memory_events > 0:
            raise ModelError("k, refresh_events and memory_events must be positive")
        self.half_lives = tuple(sorted(float(h) for h in half_lives))
        self.k = k
        self.refresh_events = refresh_events
        self.memory_events = memory_events
        self.rungs = [Trending(h, capacity) for h in self.half_lives]
        self.hits = np.zeros(len(self.rungs))
        """Faded count of events each rung's published top-K held."""
        self.events = 0
        self.chosen = len(self.rungs) - 1
        self._fade = 2.0 ** (-1.0 / memory_events)
        self._tops: list[frozenset[int]] = [frozenset()] * len(self.rungs)

    def __len__(self) -> int:
        return len(self.rungs[0])

    @property
    def half_life_seconds(self) -> float:
        """The half-life served now."""
        return self.half_lives[self.chosen]

    @property
    def served(self) -> Trending:
        return self.rungs[self.chosen]

    @property
    def t_ref(self) -> float | None:
        return self.served.t_ref

    def update(self, item: int, weight: float, t: float) -> None:
        """Score the rungs on `item`, then count the event (weight > 0) in every rung."""
        self.hits *= self._fade
        for r, top in enumerate(self._tops):
            if item in top:
                self.hits[r] += 1.0
        for rung in self.rungs:
            rung.update(item, weight, t)
        self.events += 1
        if self.events % self.refresh_events == 0:
            self.refresh()

    def withdraw(self, item: int, weight: float, t: float) -> None:
        """Take back `weight` added at time `t` (not an event: no hit is scored)."""
        for rung in self.rungs:
            rung.update(item, -weight, t)

    def forget(self, item: int) -> None:
        """Drop an item's popularity in every rung (it left the catalog)."""
        for rung in self.rungs:
            rung.forget(item)

    def refresh(self) -> None:
        """Publish each rung's current top-K and serve the rung with the most hits."""
        self._tops = [frozenset(rung.top(self.k)[0].tolist()) for rung in self.rungs]
        best = self.hits.max()
        self.chosen = max(r for r, h in enumerate(self.hits) if h >= best)

    def scores(self, now: float) -> np.ndarray:
        """Decayed popularity at `now` under the served half-life."""
        return self.served.scores(now)

    def ranking_scores(self) -> np.ndarray:
        return self.served.ranking_scores()

    def top(
        self, k: int, exclude: Exclude = None, now: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.served.top(k, exclude, now)

    def resize(self, n: int) -> None:
        for rung in self.rungs:
            rung.resize(n)

    # -- plain state (the accumulators are saved per item by the caller, rung by rung)

    def selector_state(self) -> dict[str, Any]:
        """What the choice depends on besides the counts: hits, events, published tops."""
        return {"hits": self.hits.tolist(), "events": self.events, "chosen": self.chosen,
                "tops": [sorted(top) for top in self._tops]}

    def load_selector(self, state: Mapping[str, Any]) -> None:
        """Install `selector_state` (after the rungs' accumulators were loaded)."""
        if len(state["hits"]) != len(self.rungs):
            raise ModelError(f"selector state has {len(state['hits'])} rungs, "
                             f"expected {len(self.rungs)}")
        self.hits = np.asarray(state["hits"], dtype=np.float64)
        self.events, self.chosen = int(state["events"]), int(state["chosen"])
        self._tops = [frozenset(int(i) for i in top) for top in state["tops"]]
