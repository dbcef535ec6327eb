"""Trending that adapts to the log's pace: a ladder of half-lives, and the one whose top-K the
stream's own next events hit most often is served.

A fixed half-life is a bet on how fast popularity moves in *event time*. A week suits a shop
with thousands of events a day; on a log that spans years with a few dozen events a day, a
week's decayed counts hold a handful of events per partition and rank noise (a new user's first
list then does far worse than all-time popularity), while on a log of hours whose hits rotate
every few minutes, a week is all-time popularity and lags every change.

`AdaptiveTrending` keeps one `models.trending.Trending` per rung of a ladder of half-lives
(default: 15 minutes, 2 and 16 hours, a week, 30 and 90 days, a year, and all-time) and tests
them prequentially: each positive event, *before* it is counted, scores a hit for every rung
whose last published top-K (refreshed every `refresh_events` events) holds its item. The list
serves newcomers, so the choice is made on *newcomers'* events (`newcomer=True`: the caller
marks an event of a user with fewer than `NEWCOMER_EVENTS` earlier events): their hits estimate
each rung's first-list recall on this very log. Every event's hits are kept too, and choose
until the first newcomer's event is seen. The two differ where it matters: on ml-100k, where
established users rate old films, every event hits the lists of long half-lives about as often
as a month's, while newcomers' first events hit a month's far more often. Hits fade with a
memory of `memory_events` events (of newcomers' events, for theirs): the hits of a refresh
window are whole counts, added at its refresh to the totals faded by the window's events; then
the rung with the most wins (ties: the longer half-life, the steadier list). Until the first
refresh, all-time popularity serves. Everything is a function of the events in order,
counted rather than timed, so the same partition replayed gives the same choices, however its
events were batched.

Cost per event: one update per rung (8 by default) and a look-up of the item's bit mask of
rungs holding it; `update_many` does the rungs' updates of a batch's events (between two
refreshes) in a few numpy calls per rung, with the same result bit for bit. Per refresh, a
rung's new top-K comes from its last top-K and the items counted since: every other item's count
is unchanged and below the last K-th score, so the result is the scan's. A tie with that score,
a withdrawal, a rescale or a load makes the next refresh scan every item. On a million items
that keeps a refresh from costing more than the hundred events before it. Memory: 8 bytes per
item and rung.

>>> import math
>>> tr = AdaptiveTrending(half_lives=(10.0, math.inf), k=1, refresh_events=2)
>>> for t, item in enumerate([0, 0, 1, 1, 1, 1, 1, 1]):   # item 1 takes over
...     tr.update(item, 1.0, t=100.0 * t)
>>> tr.half_life_seconds, tr.hits.round(2).tolist()       # the short half-life saw it first
(10.0, [4.0, 2.0])
>>> tr.top(1)[0].tolist()
[1]

Newcomers' events decide once there are any. Regulars move on to item 1 while newcomers keep
choosing the long-run favourite 0: every event alone would serve the short half-life.

>>> log = [0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1]
>>> for marked in (False, True):
...     tr = AdaptiveTrending(half_lives=(10.0, math.inf), k=1, refresh_events=2)
...     for t, item in enumerate(log):
...         tr.update(item, 1.0, t=100.0 * t, newcomer=marked and t >= 4 and item == 0)
...     print(tr.half_life_seconds, tr.newcomer_hits.round(2).tolist())
10.0 [0.0, 0.0]
inf [0.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.defaults import TRENDING_HALF_LIVES
from models.errors import ModelError
from models.topk import Exclude, topk
from models.trending import Trending, TrendingUndo
from models.trending_window import Window, held_masks

DEFAULT_LADDER = TRENDING_HALF_LIVES
"""15 min, 2 h, 16 h, a week, 30 days, 90 days, a year, all-time."""
NEWCOMER_EVENTS = 3
"""An event is a newcomer's when its user had fewer earlier events: the users trending serves.
(On the paced logs and ml-100k, choosing on the first 1, 3 or 5 events of each user gave the
same first-list recall within noise; 3 triples the sample of the first event alone.)"""


BATCHED_FROM = 12
"""Fewer events than this between refreshes are counted one by one (the same result, sooner:
with the default 8 rungs a vectorised run costs ~90 µs whatever its length, one event ~10)."""


@dataclass(frozen=True, slots=True)
class AdaptiveUndo:
    """What `AdaptiveTrending.revert` needs: the selector's attributes as they were (the rungs'
    list aside), and each rung's `TrendingUndo`."""

    state: dict[str, Any]
    rungs: list[TrendingUndo]


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
        self._hits = np.zeros(len(self.rungs))
        """Faded count of events each rung's published top-K held, as of the last refresh."""
        self._newcomer_hits = np.zeros(len(self.rungs))
        """The same over newcomers' events only (faded per newcomer's event): what chooses."""
        self._window = Window.empty(len(self.rungs))
        """Hits since the last refresh (whole numbers: no order to depend on)."""
        self.newcomers = 0
        """Newcomers' events seen."""
        self.events = 0
        self.chosen = len(self.rungs) - 1
        self._fade = 2.0 ** (-1.0 / memory_events)
        self._tops: list[frozenset[int]] = [frozenset()] * len(self.rungs)
        self._held: dict[int, int] = {}
        """Item -> bit mask of the rungs whose published top-K holds it."""
        self._touched: set[int] = set()
        """Items counted since the last refresh."""
        self._bounds: list[tuple[float, float | None] | None] = [None] * len(self.rungs)
        """Per rung, the K-th accumulator of its last top-K and the t_ref it refers to; None:
        the next refresh scans every item."""

    def __len__(self) -> int:
        return len(self.rungs[0])

    def journal(self) -> AdaptiveUndo:
        """Start noting the state before it changes, for `revert`: each rung notes the
        accumulators it changes (`Trending.journal`: a batch's undo costs what the batch
        changed, not the catalog); the selector's small state is copied now."""
        return AdaptiveUndo({**vars(self), **self._selector_copies()},
                            [rung.journal() for rung in self.rungs])

    def revert(self, undo: AdaptiveUndo) -> None:
        """Put back the state `journal` returned `undo` at."""
        rungs = self.rungs
        vars(self).update(undo.state)
        self.rungs = rungs
        for rung, rung_undo in zip(rungs, undo.rungs, strict=True):
            rung.revert(rung_undo)

    def _selector_copies(self) -> dict[str, Any]:
        """Copies of the selector's state that changes in place."""
        return {"_hits": self._hits.copy(), "_newcomer_hits": self._newcomer_hits.copy(),
                "_window": self._window.copy(), "_tops": list(self._tops),
                "_bounds": list(self._bounds), "_touched": set(self._touched)}

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

    @property
    def hits(self) -> np.ndarray:
        """Faded count of events each rung's published top-K held."""
        return self._window.faded(self._hits, self._fade)

    @property
    def newcomer_hits(self) -> np.ndarray:
        """The same over newcomers' events only (faded per newcomer's event): what chooses."""
        return self._window.faded(self._newcomer_hits, self._fade, newcomers=True)

    def update(self, item: int, weight: float, t: float, newcomer: bool = False) -> None:
        """Score the rungs on `item` (a newcomer's event: in both tallies), then count the
        event (weight > 0) in every rung."""
        self._window.score(self._held.get(item, 0), newcomer)
        self.newcomers += newcomer
        for rung in self.rungs:
            rung.update(item, weight, t)
        if weight >= 0:
            self._touched.add(item)
        else:  # a count went down: an item outside the candidates may overtake it
            self.forget_tops()
        self.events += 1
        if self.events % self.refresh_events == 0:
            self.refresh()

    def update_many(self, items: Sequence[int], weights: Sequence[float],
                    times: Sequence[float], newcomers: Sequence[bool]) -> None:
        """`update` of each event in order (weights >= 0), the same state whatever the batches:
        vectorised between refreshes (the published tops stand still there)."""
        start, n = 0, len(items)
        while start < n:
            end = min(n, start + self.refresh_events - self.events % self.refresh_events)
            chunk = items[start:end]
            if end - start < BATCHED_FROM:
                for j in range(start, end):
                    self.update(items[j], weights[j], times[j], newcomers[j])
            else:
                self.newcomers += self._window.score_many(
                    [self._held.get(i, 0) for i in chunk], newcomers[start:end])
                at = np.asarray(chunk, dtype=np.intp)
                w = np.asarray(weights[start:end], dtype=np.float64)
                t = np.asarray(times[start:end], dtype=np.float64)
                for rung in self.rungs:
                    rung.update_many(at, w, t)
                self._touched.update(chunk)
                self.events += end - start
                if self.events % self.refresh_events == 0:
                    self.refresh()
            start = end

    def withdraw(self, item: int, weight: float, t: float) -> None:
        """Take back `weight` added at time `t` (not an event: no hit is scored)."""
        for rung in self.rungs:
            rung.update(item, -weight, t)
        self.forget_tops()

    def forget(self, item: int) -> None:
        """Drop an item's popularity in every rung (it left the catalog)."""
        for rung in self.rungs:
            rung.forget(item)

    def refresh(self) -> None:
        """Publish each rung's current top-K and serve the rung with the most hits."""
        touched = np.fromiter(self._touched, dtype=np.intp, count=len(self._touched))
        self._touched = set()
        for r in range(len(self.rungs)):
            since = self._top_since(r, touched)
            self._publish(r, *(since or self._scan(r)))
        self._hits, self._newcomer_hits = self.hits, self.newcomer_hits
        self._window = Window.empty(len(self.rungs))
        self._held = held_masks(self._tops)
        hits = self._newcomer_hits if self.newcomers else self._hits
        best = hits.max()
        self.chosen = max(r for r, h in enumerate(hits) if h >= best)

    def forget_tops(self) -> None:
        """Take the next refresh's top-K of every rung from all items."""
        self._bounds = [None] * len(self.rungs)

    def _top_since(self, r: int, touched: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Rung `r`'s top-K among its last top-K and the `touched` items, and their scores, when
        that is its top-K over all items (see the module docstring); None otherwise."""
        rung, bound = self.rungs[r], self._bounds[r]
        if bound is None or bound[1] != rung.t_ref:
            return None
        cand = np.union1d(np.fromiter(self._tops[r], dtype=np.intp), touched)
        if len(cand) < self.k:
            return None
        scores = rung.ranking_scores()[cand]
        idx, val = topk(scores, self.k)  # ties: the lower index, as over all items
        return (cand[idx], scores) if val[-1] >= bound[0] else None

    def _scan(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Rung `r`'s top-K over all items, and their scores: among the items counted at all
        when K of them are (every other item is below them), as `Trending.top` otherwise."""
        scores = self.rungs[r].ranking_scores()
        counted = self.rungs[r].counted()
        counted = counted[scores[counted] > 0]
        if len(counted) < self.k:
            return self.rungs[r].top(self.k)[0], scores
        idx, _ = topk(scores[counted], self.k)
        return counted[idx], scores[counted]  # (every other item scores 0, below the K-th)

    def _publish(self, r: int, top: np.ndarray, scores: np.ndarray) -> None:
        """Publish `top` as rung `r`'s top-K; `scores` are those of every item it was chosen
        from. The K-th score bounds every other item's from above until the next refresh;
        when another item ties with it, the next refresh scans every item (the tie might
        break the other way once the K-th changes)."""
        self._tops[r] = frozenset(top.tolist())
        self._bounds[r] = None
        if len(top) == self.k:
            kth = float(self.rungs[r].ranking_scores()[top].min())
            tied = int(np.count_nonzero(scores == kth))
            if tied == int(np.count_nonzero(self.rungs[r].ranking_scores()[top] == kth)):
                self._bounds[r] = (kth, self.rungs[r].t_ref)

    def scores(self, now: float) -> np.ndarray:
        """Decayed popularity at `now` under the served half-life."""
        return self.served.scores(now)

    def ranking_scores(self) -> np.ndarray:
        return self.served.ranking_scores()

    def counted(self) -> np.ndarray:
        return self.served.counted()

    def top(
        self, k: int, exclude: Exclude = None, now: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.served.top(k, exclude, now)

    def resize(self, n: int) -> None:
        for rung in self.rungs:
            rung.resize(n)

    # -- plain state (the accumulators are saved per item by the caller, rung by rung)

    def selector_state(self) -> dict[str, Any]:
        """What the choice depends on besides the counts: hits (as of the last refresh, and
        since: `window`), events, published tops."""
        return {"hits": self._hits.tolist(), "events": self.events, "chosen": self.chosen,
                "tops": [sorted(top) for top in self._tops],
                "newcomer_hits": self._newcomer_hits.tolist(), "newcomers": self.newcomers,
                "window": self._window.to_plain()}

    def load_selector(self, state: Mapping[str, Any]) -> None:
        """Install `selector_state` (after the rungs' accumulators were loaded); a state saved
        before newcomers' hits were kept chooses on all events until a newcomer's is seen; one
        saved before hits were counted per refresh window has every hit in `hits`."""
        n = len(self.rungs)
        if len(state["hits"]) != n:
            raise ModelError(f"selector state has {len(state['hits'])} rungs, expected {n}")
        self._hits = np.asarray(state["hits"], dtype=np.float64)
        self._newcomer_hits = np.asarray(state.get("newcomer_hits", np.zeros(n)),
                                         dtype=np.float64)
        self._window = Window.from_plain(state["window"]) if "window" in state else \
            Window.empty(n)
        self.newcomers = int(state.get("newcomers", 0))
        self.events, self.chosen = int(state["events"]), int(state["chosen"])
        self._tops = [frozenset(int(i) for i in top) for top in state["tops"]]
        self._held = held_masks(self._tops)
        self.forget_tops()
