"""Prequential (test-then-train) metrics: each positive event is scored against the top-K the
model showed *before* learning from it.

Per scored event the relevant set is the event's one item, so

- recall@K is 1 when the item is in the top-K, else 0 (micro-averaged over events; with a single
  relevant item per query recall@K and the per-event hit are the same number);
- NDCG@K is 1 / log2(rank + 2) for a hit at 0-based `rank` (the ideal DCG is 1), else 0;
- hit-rate@K is the per-event hit averaged per user first, then over users (the leave-one-out
  "HR@K" generalised to many test events per user: every user weighs the same);
- windowed recall is the mean hit over the last `window` scored events;
- catalog coverage is the share of catalog items shown in at least one top-K;
- diversity is the mean number of distinct categories in a top-K list;
- novelty is the mean self-information -log2 p(i) of the shown items, where p(i) = (users who
  interacted with i so far + 1) / (users seen so far + 1), counted before the event;
- cold-start buckets split recall by the user's number of prior events (warm-up included);
  "cold" is 1 to 4 prior events.

>>> m = PrequentialMetrics(k=3, n_items=5, categories=np.eye(5, dtype=bool))
>>> m.score(user=0, recs=np.array([1, 2, 3]), target=2, prior=0)
>>> m.learned(user=0, item=2)
>>> m.score(user=0, recs=np.array([0, 1, 3]), target=4, prior=1)
>>> s = m.summary()
>>> s["recall_at_10"], round(s["ndcg_at_10"], 4), s["coverage"], s["diversity"]
(0.5, 0.3155, 0.8, 3.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

COLD_PRIOR = (1, 4)
"""Users with this many prior events (inclusive) are "cold" in `cold_recall_at_10`."""
BUCKETS = ((0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 9), (10, 19), (20, 49), (50, 99),
           (100, 1 << 62))
"""Prior-event buckets of the cold-start curve (inclusive bounds)."""


class PrequentialMetrics:
    """Collects one model's scored events; `summary()` turns them into the report's numbers.

    Call `score` for an event before the model learns it, then `learned` once it has: `learned`
    updates the popularity counts behind novelty, so it must see every event, scored or not.
    """

    def __init__(
        self, k: int, n_items: int, categories: np.ndarray | None = None, window: int = 5000
    ) -> None:
        if k < 1 or n_items < 1 or window < 1:
            raise ValueError("k, n_items and window must be at least 1")
        self.k = k
        self.n_items = n_items
        self.window = window
        self.categories = None if categories is None else np.asarray(categories, dtype=bool)
        if self.categories is not None and self.categories.shape[0] != n_items:
            raise ValueError(f"categories has {self.categories.shape[0]} rows for {n_items} items")
        self._shown = np.zeros(n_items, dtype=bool)
        self._item_users = np.zeros(n_items, dtype=np.int64)
        self._pairs: set[tuple[int, int]] = set()
        self._users: set[int] = set()
        self._rows: dict[str, list[float]] = {
            "user": [], "rank": [], "prior": [], "position": [], "distinct": [], "selfinfo": [],
            "length": [],
        }

    def score(
        self, user: int, recs: np.ndarray, target: int, prior: int, position: int | None = None
    ) -> None:
        """Record the list `recs` shown to `user` before they consumed `target`."""
        recs = np.asarray(recs, dtype=np.int64)[: self.k]
        hit = np.flatnonzero(recs == target)
        row = self._rows
        row["user"].append(user)
        row["rank"].append(int(hit[0]) if len(hit) else -1)
        row["prior"].append(prior)
        row["position"].append(len(row["position"]) if position is None else position)
        row["length"].append(len(recs))
        if len(recs):
            self._shown[recs] = True
        if self.categories is not None and len(recs):
            row["distinct"].append(int(self.categories[recs].any(axis=0).sum()))
        p = (self._item_users[recs] + 1.0) / (len(self._users) + 1.0)
        row["selfinfo"].append(float(-np.log2(p).mean()) if len(recs) else 0.0)

    def learned(self, user: int, item: int) -> None:
        """Count `user` as having interacted with `item` (for novelty's popularity)."""
        self._users.add(user)
        if (user, item) not in self._pairs:
            self._pairs.add((user, item))
            self._item_users[item] += 1

    def __len__(self) -> int:
        return len(self._rows["rank"])

    def hits(self) -> np.ndarray:
        return np.asarray(self._rows["rank"], dtype=np.int64) >= 0

    def summary(self) -> dict[str, Any]:
        """The per-model numbers of the report (NaN where nothing was scored)."""
        rank = np.asarray(self._rows["rank"], dtype=np.int64)
        hit = rank >= 0
        users = np.asarray(self._rows["user"], dtype=np.int64)
        prior = np.asarray(self._rows["prior"], dtype=np.int64)
        gain = np.where(hit, 1.0 / np.log2(np.maximum(rank, 0) + 2.0), 0.0)
        cold = (prior >= COLD_PRIOR[0]) & (prior <= COLD_PRIOR[1])
        distinct = self._rows["distinct"]
        return {
            "recall_at_10": _mean(hit),
            "ndcg_at_10": _mean(gain),
            "hit_rate_at_10": _user_mean(users, hit),
            "cold_recall_at_10": _mean(hit[cold]),
            "coverage": float(self._shown.mean()),
            "diversity": _mean(np.asarray(distinct)) if distinct else float("nan"),
            "novelty": _mean(np.asarray(self._rows["selfinfo"])),
            "events": len(rank),
            "cold_events": int(cold.sum()),
            "short_lists": int((np.asarray(self._rows["length"]) < self.k).sum()),
        }

    def windowed(self, every: int = 250) -> tuple[np.ndarray, np.ndarray]:
        """(log positions, mean hit over the last `window` scored events), every `every` events;
        the first point is at `window` events (earlier means would be over fewer events)."""
        hit = self.hits().astype(np.float64)
        if len(hit) < self.window:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        c = np.concatenate([[0.0], np.cumsum(hit)])
        ends = np.arange(self.window, len(hit) + 1, every)
        pos = np.asarray(self._rows["position"], dtype=np.int64)[ends - 1]
        return pos, (c[ends] - c[ends - self.window]) / self.window

    def cold_curve(self) -> list[dict[str, Any]]:
        """Recall per prior-event bucket: [{"prior": "5-9", "recall": r, "events": n}, ...]."""
        hit = self.hits()
        prior = np.asarray(self._rows["prior"], dtype=np.int64)
        out = []
        for lo, hi in BUCKETS:
            sel = (prior >= lo) & (prior <= hi)
            label = str(lo) if lo == hi else (f"{lo}+" if hi > 1 << 40 else f"{lo}-{hi}")
            out.append({"prior": label, "recall": _mean(hit[sel]), "events": int(sel.sum())})
        return out


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def _user_mean(users: np.ndarray, values: np.ndarray) -> float:
    """Mean over users of each user's mean value."""
    if not len(users):
        return float("nan")
    uniq, inverse = np.unique(users, return_inverse=True)
    sums = np.bincount(inverse, weights=values.astype(np.float64), minlength=len(uniq))
    return float(np.mean(sums / np.bincount(inverse, minlength=len(uniq))))
