"""The models refold is compared with, behind one small streaming contract.

A `StreamModel` is first `fit` on the warm-up events, then, per later event, asked to
`recommend` at the event's time (before the event) and told to `learn` it. Users and items are
dense indices fixed by the caller (`n_users`, `n_items`); `exclude` holds the items the user
already consumed, which a model must not return.

- `Popularity`: all-time count of positive events per item.
- `Trending`: the same count decayed with a half-life in event time (seconds), by the
  worker's `models.trending`.
- `RiverMF`: river's `reco.FunkMF` or `reco.BiasedMF` learning one event at a time, ranked over
  the whole catalog with river's own latent vectors (vectorised, same scores as `predict_one`).
- `StaticALS`: implicit ALS fitted once on the warm-up; user vectors frozen at warm-up, users
  without one get popularity.
- `OryxRank1`: the warm-up ALS, then per event Oryx's approximate rank-1 update of the user's and
  the item's vectors (see `oryx_target`).

>>> ev = Events(np.array([0, 0, 1]), np.array([2, 1, 2]), np.ones(3), np.arange(3.0), 2, 4)
>>> m = Popularity()
>>> m.fit(ev)
>>> m.recommend(1, k=3, exclude=np.array([2]), t=3.0).tolist()
[1, 0, 3]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
from scipy.sparse import csr_matrix

from models.als import csr_from, train_als
from models.topk import topk
from models.trending import Trending as DecayedPopularity


class Row(NamedTuple):
    """One encoded event; `value` is NaN when the event has none, `session` "" without one."""

    user: int
    item: int
    weight: float
    t: float
    value: float = float("nan")
    kind: str = "rating"
    session: str = ""


@dataclass(frozen=True)
class Events:
    """Encoded events in time order: dense user and item indices, weights, times; optionally the
    raw values (NaN: none), event types and session ids."""

    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    times: np.ndarray
    n_users: int
    n_items: int
    values: np.ndarray | None = None
    kinds: np.ndarray | None = None
    sessions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, rows: slice) -> Events:
        cut = [None if c is None else c[rows] for c in (self.values, self.kinds, self.sessions)]
        return Events(self.users[rows], self.items[rows], self.weights[rows], self.times[rows],
                      self.n_users, self.n_items, *cut)

    def rows(self) -> list[Row]:
        n = len(self)
        cols = (
            self.users.tolist(), self.items.tolist(), self.weights.tolist(), self.times.tolist(),
            [float("nan")] * n if self.values is None else self.values.tolist(),
            ["rating"] * n if self.kinds is None else self.kinds.tolist(),
            [""] * n if self.sessions is None else self.sessions.tolist(),
        )
        return [Row(*r) for r in zip(*cols, strict=True)]

    def csr(self) -> csr_matrix:
        """Users × items, weights summed per pair (what ALS trains on)."""
        return csr_from(self.users, self.items, self.weights, (self.n_users, self.n_items))


class StreamModel(Protocol):
    def fit(self, warmup: Events) -> None: ...

    def recommend(self, user: int, k: int, exclude: np.ndarray, t: float) -> np.ndarray: ...

    def learn(self, ev: Row) -> None: ...


class Popularity:
    """Items by all-time count of positive events (ties by ascending index)."""

    def fit(self, warmup: Events) -> None:
        self.counts = np.zeros(warmup.n_items, dtype=np.float64)
        pos = warmup.weights > 0
        np.add.at(self.counts, warmup.items[pos], 1.0)

    def recommend(self, user: int, k: int, exclude: np.ndarray, t: float = 0.0) -> np.ndarray:
        return topk(self.counts, k, exclude)[0]

    def learn(self, ev: Row) -> None:
        if ev.weight > 0:
            self.counts[ev.item] += 1.0


class Trending:
    """Positive events per item fading by half every `half_life` seconds of event time: the
    worker's own `models.trending.Trending`."""

    def __init__(self, half_life: float = 86400.0) -> None:
        self.half_life = half_life

    def fit(self, warmup: Events) -> None:
        self.trending = DecayedPopularity(self.half_life, capacity=warmup.n_items)
        self.trending.resize(warmup.n_items)
        pos = warmup.weights > 0
        self.trending.update_many(warmup.items[pos], np.ones(int(pos.sum())), warmup.times[pos])

    def recommend(self, user: int, k: int, exclude: np.ndarray, t: float = 0.0) -> np.ndarray:
        return topk(self.trending.ranking_scores(), k, exclude)[0]

    def learn(self, ev: Row) -> None:
        if ev.weight > 0:
            self.trending.update(ev.item, 1.0, ev.t)


class RiverMF:
    """river's FunkMF (`biased=False`) or BiasedMF learning each event with `learn_one`.

    `target="rating"` learns the event's value (a rating; the weight when there is none);
    `target="implicit"` learns 1 for the event and 0 for `negatives` items drawn uniformly.
    Every catalog item's latent vector is created up front in index order (river creates them on
    first use, so ranking the catalog with river's `rank` would do the same), which makes the
    catalog ranking one matrix product.
    """

    def __init__(
        self, biased: bool = False, n_factors: int = 10, lr: float = 0.01, l2: float = 0.0,
        target: str = "rating", negatives: int = 2, seed: int = 0,
    ) -> None:
        if target not in ("rating", "implicit"):
            raise ValueError(f"target must be 'rating' or 'implicit', not {target!r}")
        self.biased = biased
        self.n_factors = n_factors
        self.lr = lr
        self.l2 = l2
        self.target = target
        self.negatives = negatives
        self.seed = seed

    def fit(self, warmup: Events) -> None:
        from river import optim, reco

        init = optim.initializers.Normal(mu=0.0, sigma=0.1, seed=self.seed)
        if self.biased:
            self.model = reco.BiasedMF(
                n_factors=self.n_factors, bias_optimizer=optim.SGD(self.lr),
                latent_optimizer=optim.SGD(self.lr), l2_bias=self.l2, l2_latent=self.l2,
                latent_initializer=init, seed=self.seed,
            )
        else:
            self.model = reco.FunkMF(n_factors=self.n_factors, optimizer=optim.SGD(self.lr),
                                     l2=self.l2, initializer=init, seed=self.seed)
        self.Q = np.stack([self.model.i_latents[i] for i in range(warmup.n_items)])
        self.bias = np.zeros(warmup.n_items)
        self.rng = np.random.default_rng(self.seed)
        self.diverged = False
        for ev in warmup.rows():
            self.learn(ev)

    def recommend(self, user: int, k: int, exclude: np.ndarray, t: float = 0.0) -> np.ndarray:
        if self.diverged:  # a diverged model ranks nothing
            return np.zeros(0, dtype=np.int64)
        return topk(self.Q @ self.model.u_latents[user] + self.bias, k, exclude)[0]

    def learn(self, ev: Row) -> None:
        if self.diverged:
            return
        if self.target == "rating":
            self._learn_one(ev.user, ev.item, ev.weight if ev.value != ev.value else ev.value)
            return
        if ev.weight <= 0:
            self._learn_one(ev.user, ev.item, 0.0)
            return
        self._learn_one(ev.user, ev.item, 1.0)
        for neg in self.rng.integers(0, len(self.Q), self.negatives).tolist():
            if neg != ev.item:
                self._learn_one(ev.user, neg, 0.0)

    def _learn_one(self, user: int, item: int, y: float) -> None:
        with np.errstate(over="ignore", invalid="ignore"):
            self.model.learn_one(user, item, y)
        self.Q[item] = self.model.i_latents[item]
        if self.biased:
            self.bias[item] = self.model.i_biases[item]
        # Too high a learning rate blows the factors up; such a model stops there.
        self.diverged = not (np.isfinite(self.Q[item]).all() and np.isfinite(self.bias[item])
                             and np.isfinite(self.model.u_latents[user]).all())


class StaticALS:
    """implicit ALS fitted once on the warm-up; user vectors stay as fitted.

    Users without a warm-up vector get all-time popularity, which keeps counting.
    """

    def __init__(
        self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0,
        iterations: int = 15, seed: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed

    def fit(self, warmup: Events) -> None:
        model = train_als(warmup.csr(), self.factors, self.regularization, self.alpha,
                          self.iterations, self.seed)
        self.X = np.asarray(model.user_factors, dtype=np.float64)
        self.Y = np.asarray(model.item_factors, dtype=np.float64)
        self.known = np.zeros(warmup.n_users, dtype=bool)
        self.known[np.unique(warmup.users[warmup.weights > 0])] = True
        self.popularity = Popularity()
        self.popularity.fit(warmup)

    def recommend(self, user: int, k: int, exclude: np.ndarray, t: float = 0.0) -> np.ndarray:
        if not self.known[user]:
            return self.popularity.recommend(user, k, exclude)
        return topk(self.Y @ self.X[user], k, exclude)[0]

    def learn(self, ev: Row) -> None:
        self.popularity.learn(ev)


def oryx_target(value: float, current: float) -> float:
    """Oryx 2's implicit target for the new x_u·y_i after an event of strength `value`: part of
    the way from `current` to 1 (to 0 for a negative value), by value / (1 + value); NaN when
    there is nothing to do (already at or past the target).

    >>> oryx_target(1.0, 0.0), oryx_target(1.0, 1.2), oryx_target(-1.0, 0.5)
    (0.5, nan, 0.25)
    """
    if value > 0 and current < 1.0:
        return current + value / (1.0 + value) * (1.0 - max(0.0, current))
    if value < 0 and current > 0.0:
        return current + value / (value - 1.0) * -min(1.0, current)
    return float("nan")


class OryxRank1(StaticALS):
    """Warm-up ALS, then Oryx's speed-layer update per event: with target q' = `oryx_target`,
    x_u += (YᵀY)⁻¹ y_i (q' − x_u·y_i) and y_i += (XᵀX)⁻¹ x_u (q' − x_u·y_i), both from the values
    before the event. The Gramians are recomputed every `gram_every` events; `regularization` is
    added to their diagonal (Oryx solves them unregularised, which a new item's zero Gramian
    direction makes singular). `strength` scales an event's weight into Oryx's value.
    """

    def __init__(
        self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0,
        iterations: int = 15, seed: int = 0, strength: float = 1.0, gram_every: int = 1000,
    ) -> None:
        super().__init__(factors, regularization, alpha, iterations, seed)
        self.strength = strength
        self.gram_every = gram_every

    def fit(self, warmup: Events) -> None:
        super().fit(warmup)
        self.has_item = np.zeros(warmup.n_items, dtype=bool)
        self.has_item[np.unique(warmup.items)] = True
        self._since = 0
        self._inverses()

    def _inverses(self) -> None:
        eye = self.regularization * np.eye(self.Y.shape[1])
        self.YtY_inv = np.linalg.inv(self.Y.T @ self.Y + eye)
        self.XtX_inv = np.linalg.inv(self.X[self.known].T @ self.X[self.known] + eye)

    def learn(self, ev: Row) -> None:
        super().learn(ev)
        user, item = ev.user, ev.item
        xu, yi = self.X[user], self.Y[item]
        known, has_item = bool(self.known[user]), bool(self.has_item[item])
        current = float(xu @ yi) if known and has_item else 0.0
        target = oryx_target(self.strength * ev.weight, current)
        if target != target:  # NaN: no change
            return
        delta = target - current
        if has_item:  # a user vector needs an item vector to move along
            self.X[user] = (xu if known else 0.0) + self.YtY_inv @ (yi * delta)
            self.known[user] = True
        if known:
            self.Y[item] = (yi if has_item else 0.0) + self.XtX_inv @ (xu * delta)
            self.has_item[item] = True
        self._since += 1
        if self._since >= self.gram_every:
            self._since = 0
            self._inverses()
