"""Prequential quality computed from the live stream, over sliding windows.

Each positive event is judged against the list its user had *before* it (test, then train): the
list in force is the last one published for the user. An item is judged once per list: a
session's view, click and purchase of one item often face the same list, and counting them as
three outcomes would make the hit stream bursty (and its drift detector jumpy). The numbers
follow the definitions of the offline evaluation (`models.prequential`), restricted to the last
`window` judged events:

- recall@K: share of judged events whose item was in the list (one relevant item per event);
- hit rate@K: the same per-event hit, averaged per user first, then over users;
- NDCG@K: 1 / log2(rank + 2) for a hit at 0-based `rank`, else 0 (the ideal DCG is 1).

Over the last `list_window` published lists:

- catalog coverage: distinct recommended items / catalog size;
- diversity: mean number of distinct categories in a list's first `depth` items;
- Gini coefficient of item exposure over the catalog (0: every item shown equally often, 1: all
  exposure on one item); items never shown count as zeros;
- cold-start share: lists not produced by the collaborative model (popular or content lists).

Pure: callers pass ids and lists; no clock, no Kafka.

>>> q = OnlineQuality(k=3, window=10, catalog_size=4, categories={"a": ["x"], "b": ["y"]})
>>> q.judge("u1", "a") is None                   # no list in force yet: not judged
True
>>> q.record("u1", ["a", "b", "c"]); q.record("u2", ["a", "d"], source="popular")
>>> q.judge("u1", "b"), q.judge("u2", "z"), q.judge("u1", "a"), q.judge("u1", "b")
(1, -1, 0, None)
>>> round(q.recall, 3), q.hit_rate, round(q.ndcg, 3)
(0.667, 0.5, 0.544)
>>> q.coverage, q.diversity, q.cold_start_share, round(q.gini, 3)
(1.0, 1.5, 0.5, 0.15)
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

COLLABORATIVE = "collaborative"
CategoriesOf = Mapping[Hashable, Iterable[str]] | Callable[[Hashable], Iterable[str] | None]


def gini(counts: Iterable[float], n: int | None = None) -> float:
    """Gini coefficient of non-negative `counts`, padded with zeros up to `n` values.

    >>> gini([1, 1, 1, 1]), gini([4], n=4), gini([])
    (0.0, 0.75, 0.0)
    """
    x = np.sort(np.asarray(list(counts), dtype=np.float64))
    n = max(len(x), n or 0)
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    # Zeros padded in front shift the ranks of the observed values by `n - len(x)`.
    ranks = np.arange(n - len(x) + 1, n + 1)
    return float(2.0 * np.sum(ranks * x) / (n * total) - (n + 1) / n)


class OnlineQuality:
    """Rolling prequential metrics of one model stream; see the module docstring."""

    def __init__(
        self,
        k: int = 20,
        window: int = 5000,
        list_window: int = 2000,
        catalog_size: int | None = None,
        categories: CategoriesOf | None = None,
        depth: int = 10,
        max_users: int = 200_000,
    ) -> None:
        if k < 1 or window < 1 or list_window < 1 or max_users < 1:
            raise ValueError("k, window, list_window and max_users must be at least 1")
        self.k = k
        self.window = window
        self.list_window = list_window
        self.catalog_size = catalog_size
        self.categories = categories
        self.depth = depth
        self.max_users = max_users
        self.judged = 0
        """Events judged since the start (not only in the window)."""
        self.hits = 0
        self.unjudged = 0
        """Positive events not judged: no list in force, or its item already judged against it."""
        self._lists: OrderedDict[Hashable, list[Any]] = OrderedDict()
        """user -> [the list in force (a tuple), the items judged against it (a set, or None:
        none yet)]; at most `max_users` users, the least recently listed forgotten first."""
        self._events: deque[tuple[Hashable, int, float]] = deque()
        self._hit_sum = 0
        self._gain_sum = 0.0
        self._per_user: dict[Hashable, list[int]] = {}  # user -> [judged, hits] in the window
        self._user_mean_sum = 0.0
        self._shown: deque[tuple[tuple[Hashable, ...], float, bool]] = deque()
        self._exposure: Counter[Hashable] = Counter()
        self._div_sum = 0.0
        self._div_n = 0
        self._cold = 0

    # -- events ------------------------------------------------------------------------------
    def judge(self, user: Hashable, item: Hashable) -> int | None:
        """Judge a positive event: the item's 0-based rank in the user's list, -1 for a miss, or
        None when not judged (no list in force, or the item was already judged against it)."""
        entry = self._lists.get(user)
        if entry is None or (entry[1] is not None and item in entry[1]):
            self.unjudged += 1
            return None
        shown, judged = entry
        if judged is None:
            judged = entry[1] = set()
        judged.add(item)
        rank = shown.index(item) if item in shown else -1
        hit = int(rank >= 0)
        gain = 1.0 / math.log2(rank + 2) if hit else 0.0
        self.judged += 1
        self.hits += hit
        self._events.append((user, hit, gain))
        self._hit_sum += hit
        self._gain_sum += gain
        self._user_add(user, hit, +1)
        if len(self._events) > self.window:
            old_user, old_hit, old_gain = self._events.popleft()
            self._hit_sum -= old_hit
            self._gain_sum -= old_gain
            self._user_add(old_user, old_hit, -1)
        return rank

    def _user_add(self, user: Hashable, hit: int, sign: int) -> None:
        """Add (+1) or remove (-1) one judged event of `user`, keeping Σ per-user means."""
        n_h = self._per_user.get(user)
        if n_h is None:
            n_h = self._per_user[user] = [0, 0]
        else:
            self._user_mean_sum -= n_h[1] / n_h[0]
        n_h[0] += sign
        n_h[1] += sign * hit
        if n_h[0]:
            self._user_mean_sum += n_h[1] / n_h[0]
        else:
            del self._per_user[user]

    # -- lists -------------------------------------------------------------------------------
    def record(
        self, user: Hashable, items: Sequence[Hashable], source: str = COLLABORATIVE
    ) -> None:
        """Make `items` the user's list in force and count it in the list statistics."""
        shown = tuple(items[: self.k])
        self._lists[user] = [shown, None]
        self._lists.move_to_end(user)
        if len(self._lists) > self.max_users:
            self._lists.popitem(last=False)
        distinct = self._distinct_categories(shown[: self.depth])
        cold = source != COLLABORATIVE
        self._shown.append((shown, distinct, cold))
        self._exposure.update(shown)
        self._cold += cold
        if not math.isnan(distinct):
            self._div_sum += distinct
            self._div_n += 1
        if len(self._shown) > self.list_window:
            old, old_distinct, old_cold = self._shown.popleft()
            self._exposure.subtract(old)
            for item in old:
                if self._exposure[item] <= 0:
                    del self._exposure[item]
            self._cold -= old_cold
            if not math.isnan(old_distinct):
                self._div_sum -= old_distinct
                self._div_n -= 1

    def _distinct_categories(self, items: Sequence[Hashable]) -> float:
        if self.categories is None:
            return math.nan
        of = self.categories
        found: set[str] = set()
        for item in items:
            cats = of(item) if callable(of) else of.get(item)
            found.update(cats or ())
        return float(len(found))

    def forget(self, user: Hashable) -> None:
        """Drop a user's list in force (e.g. when their partition is revoked)."""
        self._lists.pop(user, None)

    # -- statistics --------------------------------------------------------------------------
    @property
    def recall(self) -> float:
        return self._hit_sum / len(self._events) if self._events else math.nan

    @property
    def hit_rate(self) -> float:
        return self._user_mean_sum / len(self._per_user) if self._per_user else math.nan

    @property
    def ndcg(self) -> float:
        return self._gain_sum / len(self._events) if self._events else math.nan

    @property
    def coverage(self) -> float:
        if not self.catalog_size:
            return math.nan
        return min(1.0, len(self._exposure) / self.catalog_size)

    @property
    def diversity(self) -> float:
        return self._div_sum / self._div_n if self._div_n else math.nan

    @property
    def gini(self) -> float:
        return gini(self._exposure.values(), self.catalog_size)

    @property
    def cold_start_share(self) -> float:
        return self._cold / len(self._shown) if self._shown else math.nan

    def summary(self) -> dict[str, float]:
        """Every statistic by name (NaN where nothing was seen yet)."""
        return {
            "hit_rate": self.hit_rate, "recall": self.recall, "ndcg": self.ndcg,
            "coverage": self.coverage, "diversity": self.diversity, "gini": self.gini,
            "cold_start_share": self.cold_start_share,
        }
