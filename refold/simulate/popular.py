"""The simulated shop's `popularity` policy: global popularity only (the standard "MostPop").

Every customer is shown the catalog's most-interacted items so far: each event the shop has
sent before the page (the organic history, views, clicks, carts and purchases alike) counts one
for its item, all time, by anyone; ties go to the lower catalog index. The only thing personal
is what any shop does: items the customer already bought are left out. There is no category,
content, co-visit or model signal: it is `models.baselines.Popularity`, the popularity baseline
of refold's offline evaluation, fed the shop's events in time order.

With a `demotion` (`popularity-exposure`), the customer's list is instead the `depth` most
popular items re-ordered by refold's own exposure feedback (`models.exposure`: an item shown
`min_count` times without any event on it sinks): still no personal taste, but no longer the
same five items on every page. It tells how much of refold's lead over popularity its exposure
feedback alone would give.

>>> pop = MostPopular(n_items=4)
>>> pop.add(2, 10.0); pop.add(2, 11.0); pop.add(1, 12.0); pop.add(3, 99.0)
>>> pop.bought("u1", 2)
>>> pop.top("u1", 2, now=50.0).tolist(), pop.top("u2", 2, now=50.0).tolist()
([1, 0], [2, 1])
>>> pop.top("u2", 2, now=100.0).tolist()     # the event at 99 s counts from then on
[2, 1]
>>> fresh = MostPopular(n_items=4, demotion=Demotion(min_count=1, strength=1.0), depth=4)
>>> fresh.add(2, 1.0); fresh.add(2, 2.0); fresh.add(1, 3.0)
>>> fresh.top("u1", 2, now=9.0).tolist()
[2, 1]
>>> fresh.shown("u1", [2, 1]); fresh.interacted("u1", 1)
>>> fresh.top("u1", 2, now=9.0).tolist()    # 2 was ignored (sinks one range), 1 answered
[1, 2]
"""

from __future__ import annotations

import heapq

import numpy as np

from models.baselines import Events, Popularity, Row
from models.decision import Demotion
from models.exposure import Exposure, demote


class MostPopular:
    """All-time interaction counts per item, counted up to a moving time, and each customer's
    purchases (excluded from their list). Events may be added in any order; `top(now=t)`
    counts those before t (times only move forward)."""

    def __init__(self, n_items: int, demotion: Demotion | None = None,
                 depth: int | None = None) -> None:
        self.demotion = demotion
        self.depth = depth
        self.exposure: dict[str, Exposure] = {}
        self.model = Popularity()
        empty = np.zeros(0, dtype=np.int64)
        self.model.fit(Events(empty, empty, np.zeros(0), np.zeros(0), 0, n_items))
        self._pending: list[tuple[float, int]] = []
        self._bought: dict[str, list[int]] = {}
        self.now = float("-inf")

    def add(self, item: int, t: float) -> None:
        """An event on `item` (catalog index) at time t."""
        heapq.heappush(self._pending, (float(t), item))

    def bought(self, user: str, item: int) -> None:
        """`user` bought `item`: never shown to them again."""
        self._bought.setdefault(user, []).append(item)

    def shown(self, user: str, items: list[int]) -> None:
        """A page showed `user` these items (for exposure feedback)."""
        if self.demotion is not None:
            self.exposure.setdefault(user, Exposure()).shown(items)

    def interacted(self, user: str, item: int) -> None:
        """`user` had an event on `item`: what they were shown of it is answered."""
        if user in self.exposure:
            self.exposure[user].interacted(item)

    def top(self, user: str, k: int, now: float) -> np.ndarray:
        """The `k` most-interacted items before `now` that `user` has not bought (with a
        demotion: the `depth` most popular, those `user` ignored demoted)."""
        self.now = max(self.now, float(now))
        while self._pending and self._pending[0][0] < self.now:
            t, item = heapq.heappop(self._pending)
            self.model.learn(Row(0, item, 1.0, t))
        exclude = np.array(self._bought.get(user, []), dtype=np.int64)
        if self.demotion is None or not self.demotion.on:
            return self.model.recommend(0, k, exclude)
        idx = self.model.recommend(0, max(self.depth or k, k), exclude)
        seen = self.exposure.get(user)
        if seen is not None and len(idx):
            order, _ = demote(self.model.counts[idx], seen.counts(idx), self.demotion.min_count,
                              self.demotion.strength)
            idx = idx[order]
        return idx[:k]
