"""Another ranking of a list's logged candidates: what a shop can evaluate offline, then try.

A list logs the candidates its exploration policy drew from (ids and scores, best first, after
exposure demotion). A *re-scored* policy ranks those same candidates by

    s' = score · z(logged score) + popularity · z(log(1 + item popularity))

(z: min-max over the list's candidates onto [0, 1], 0 when they are all equal; popularity: the
item's clicks, carts and purchases by anyone before the list was shown, a model anyone can
compute from the logged events) and draws its list with an exploration policy, as the worker
does. `score=1, popularity=0` is the logged ranking; `score=0, popularity=1` ranks refold's
candidates by popularity alone. Ties keep the logged order.

Off-policy evaluation (`models.ope`) needs the candidate policy's probability of every
(candidate, position): `table` is the policy's position table on the re-ranked candidates,
indexed by the logged rank. A shop that runs the re-scored policy draws with `draw` (seeded by
the list's `rec_id`) and counts popularity with `Popularity`, as the evaluation counts it from
the logs, so what the shop measures and what the logs estimate are the same quantity.

>>> r = Rescore(score=0.0, popularity=1.0)
>>> r.order(np.array([3.0, 2.0, 1.0]), np.array([0.0, 9.0, 2.0])).tolist()
[1, 2, 0]
>>> P = r.table(Policy("none"), np.array([3.0, 2.0, 1.0]), np.array([0.0, 9.0, 2.0]), 2)
>>> P.tolist()                      # logged rank 1 first, logged rank 2 second
[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.exploration import Policy, PolicyError, choose, position_matrix, rng_for

POPULAR = ("click", "add_to_cart", "purchase")
"""The event types an item's popularity counts."""


def _z(x: np.ndarray) -> np.ndarray:
    spread = float(x.max() - x.min()) if len(x) else 0.0
    return (x - x.min()) / spread if spread > 0 else np.zeros(len(x))


@dataclass(frozen=True)
class Rescore:
    """The weights of the logged score and of popularity in the re-scored ranking."""

    score: float = 1.0
    popularity: float = 0.0

    def __post_init__(self) -> None:
        if self.score < 0 or self.popularity < 0 or self.score + self.popularity <= 0:
            raise PolicyError("re-scoring needs weights >= 0, not both 0")

    def describe(self) -> str:
        return f"score={self.score:g},popularity={self.popularity:g}"

    def scores(self, logged: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        s = np.asarray(logged, dtype=np.float64)
        p = np.log1p(np.asarray(popularity, dtype=np.float64))
        return self.score * _z(s) + self.popularity * _z(p)

    def order(self, logged: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        """The logged ranks of the candidates, best first by the new score (ties: logged
        order)."""
        return np.argsort(-self.scores(logged, popularity), kind="stable")

    def table(self, policy: Policy, logged: np.ndarray, popularity: np.ndarray, k: int,
              positions: int | None = None) -> np.ndarray:
        """P(logged candidate a at position j + 1) under `policy` on the re-ranked candidates:
        `models.exploration.position_matrix`, its rows put back in logged order."""
        order = self.order(logged, popularity)
        new = self.scores(logged, popularity)[order]
        P = position_matrix(policy, new, k, positions)
        out = np.zeros_like(P)
        out[order] = P
        return out

    def draw(self, policy: Policy, candidates: Sequence[str], logged: np.ndarray,
             popularity: np.ndarray, k: int, rec_id: str) -> tuple[list[str], list[bool]]:
        """The list `policy` draws from the re-ranked candidates, seeded by `rec_id`: item ids
        in position order, and whether each was placed above its new rank."""
        order = self.order(logged, popularity)
        slate = choose(policy, self.scores(logged, popularity)[order], k, rng_for(rec_id))
        return [candidates[i] for i in order[slate.ranks].tolist()], slate.explored.tolist()


@dataclass(frozen=True)
class Rescored:
    """A candidate policy that draws with `policy` from the candidates ranked by `rescore`."""

    policy: Policy
    rescore: Rescore


class Popularity:
    """Items' counts of `POPULAR` events before a moving time: events go in any order
    (`add`), `advance(t)` counts those before `t`; times only move forward.

    >>> pop = Popularity()
    >>> pop.add("a", "click", 5.0); pop.add("a", "view", 1.0); pop.add("b", "purchase", 2.0)
    >>> pop.advance(5.0); pop.counts(["a", "b"]).tolist()
    [0.0, 1.0]
    """

    def __init__(self) -> None:
        self._pending: list[tuple[float, str]] = []
        self._counts: Counter[str] = Counter()
        self.now = float("-inf")

    def add(self, item_id: str, event_type: str, t: float) -> None:
        if event_type in POPULAR:
            heapq.heappush(self._pending, (float(t), item_id))

    def advance(self, t: float) -> None:
        """Count every added event before `t`."""
        self.now = max(self.now, float(t))
        while self._pending and self._pending[0][0] < self.now:
            self._counts[heapq.heappop(self._pending)[1]] += 1

    def counts(self, items: Sequence[str]) -> np.ndarray:
        return np.array([float(self._counts[i]) for i in items])
