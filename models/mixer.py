"""The learned mixer: how much each signal counts, from how much the user and the item have done.

A user's list mixes four signals, each a score per item scaled to at most 1 over the items
the user may be shown (`scaled`): collaborative filtering (the fold-in's dot products),
session co-visitation, content similarity (`models.content_index`, already in [0, 1]) and
trending popularity. How much each deserves depends on context: collaborative filtering knows
little about a user with two events or an item with three, content knows new items, popularity
is all a newcomer has. So the mixer's score of item i for user u is linear in the signals and
in their products with three context features, each scaled to [0, 1] on a log scale:

    score(u, i) = Σ_s  s_ui · (w_s + w_s,u · n_u + w_s,a · age_u + w_s,i · n_i)  +  w_i · n_i

n_u: the user's events (log(1 + n) / log(1 + `USER_EVENTS_CAP`), capped at 1); age_u: the
account's age (log(1 + days) / log(1 + `AGE_CAP_DAYS`)); n_i: the item's interactions in the
model's training data (log(1 + n) / log(1 + `ITEM_EVENTS_CAP`)). User terms are constant over a
user's items, so scoring the whole catalog costs one multiply-add per signal and item, like the
hand-set blend it replaces.

**Candidates.** The mixer re-ranks a short list, not the catalog: the union of the best
`depth` items of the hand-set blend (collaborative filtering plus session, or popularity for a
user without a vector) and of the best few by content and by trending (`union_of_tops`). It is
fitted on the same candidate sets (`models.mixer_fit`): an event's item that is not among its
user's candidates teaches nothing about ordering them. On ml-100k, fitting on every item
instead (uniform negatives over the catalog) lost 0.4 % recall@10 against the hand-set blend,
and hard negatives drawn from the blend's top 100 against positives drawn anywhere taught the
mixer that collaborative filtering predicts *against* a choice (recall@10 0.014): the
negatives were chosen for high CF scores.

**Fitting.** The refitter replays recent events through the recommender with the model the
worker served them with and, for each positive event whose item is among its user's
candidates, records the features of the item (label 1) and of `negatives` items sampled from
the same candidates (label 0, 1:3 by default); `fit` is an L2-regularised logistic regression
(scikit-learn's). A mixer travels in the snapshot as plain numbers (`to_json`), and the worker
falls back to the hand-set blend when a snapshot has none.

>>> m = Mixer(np.zeros(len(FEATURES)), 0.0)
>>> m.coef[FEATURES.index("content")] = 1.0          # content alone ...
>>> m.coef[FEATURES.index("cf*user_events")] = 2.0    # ... until the user has a history
>>> sig = Signals(cf=np.array([1.0, 0.0]), content=np.array([0.0, 1.0]))
>>> m.scores(sig, user_context(events=0, age_seconds=0), np.zeros(2)).tolist()
[0.0, 1.0]
>>> m.scores(sig, user_context(events=100, age_seconds=0), np.zeros(2)).tolist()
[2.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from models.errors import ModelError
from models.topk import topk

SIGNALS = ("cf", "session", "content", "trend")
CONTEXT = ("user_events", "account_age", "item_events")
FEATURES = tuple([s for s in SIGNALS] + [f"{s}*{c}" for s in SIGNALS for c in CONTEXT]
                 + ["item_events"])
"""Feature names, in the order of `Mixer.coef`."""
USER_EVENTS_CAP = 100.0
AGE_CAP_DAYS = 365.0
ITEM_EVENTS_CAP = 10_000.0
FORMAT = 1


@dataclass(frozen=True, slots=True)
class Signals:
    """A user's signals over the items (each scaled to at most 1; None: absent, i.e. zero)."""

    cf: np.ndarray | None = None
    session: np.ndarray | None = None
    content: np.ndarray | None = None
    trend: np.ndarray | None = None

    def of(self, items: np.ndarray) -> Signals:
        """The signals of some items only."""
        return Signals(*(None if s is None else s[items] for s in self.values()))

    def values(self) -> list[np.ndarray | None]:
        return [getattr(self, f.name) for f in fields(self)]


@dataclass(frozen=True, slots=True)
class Candidates:
    """One user's candidate items (catalog indices) with their signals and contexts."""

    items: np.ndarray
    signals: Signals
    """Over `items`."""
    user: np.ndarray
    """(n_u, age_u), `user_context`."""
    item: np.ndarray
    """n_i over `items`, `item_context`."""

    def __len__(self) -> int:
        return len(self.items)

    def rows(self, at: np.ndarray | None = None) -> np.ndarray:
        """Feature rows of the candidates at positions `at` (all when None)."""
        if at is None:
            return feature_rows(self.signals, self.user, self.item)
        return feature_rows(self.signals.of(at), self.user, self.item[at])


def union_of_tops(lists: list[tuple[np.ndarray, int]], allowed: np.ndarray) -> np.ndarray:
    """The sorted union of the best `depth` allowed items of each (scores, depth); items
    scoring -inf or 0 are never candidates (0: the signal has nothing to say)."""
    tops = []
    for scores, depth in lists:
        s = np.where(allowed & (scores != 0), scores, -np.inf)
        tops.append(topk(s, depth)[0])
    return np.unique(np.concatenate(tops)) if tops else np.zeros(0, np.int64)


def scaled(scores: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """`scores` divided by their largest magnitude over the `allowed` items (a mask or indices;
    all when None); non-finite scores become 0. All zero stays zero."""
    s = np.where(np.isfinite(scores), scores, 0.0).astype(np.float64)
    sub = s if allowed is None else s[allowed]
    top = float(np.abs(sub).max()) if len(sub) else 0.0
    return s / top if top > 0 else s


def user_context(events: float, age_seconds: float) -> np.ndarray:
    """(n_u, age_u) of a user with `events` events whose account is `age_seconds` old."""
    n = math.log1p(min(max(events, 0.0), USER_EVENTS_CAP)) / math.log1p(USER_EVENTS_CAP)
    days = max(age_seconds, 0.0) / 86400.0
    age = min(math.log1p(days) / math.log1p(AGE_CAP_DAYS), 1.0)
    return np.array([n, age])


def item_context(counts: np.ndarray) -> np.ndarray:
    """n_i of items with `counts` interactions."""
    c = np.clip(np.asarray(counts, dtype=np.float64), 0.0, ITEM_EVENTS_CAP)
    return np.log1p(c) / math.log1p(ITEM_EVENTS_CAP)


def feature_rows(signals: Signals, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """The (items, `FEATURES`) matrix of some items: `signals` and `item` (n_i) over the same
    items, `user` = (n_u, age_u)."""
    m = len(item)
    sig = np.stack([np.zeros(m) if s is None else s for s in signals.values()], axis=1)
    ctx = np.column_stack([np.full(m, user[0]), np.full(m, user[1]), item])
    crossed = (sig[:, :, None] * ctx[:, None, :]).reshape(m, -1)
    return np.column_stack([sig, crossed, item])


class Mixer:
    """Logistic-regression weights over `FEATURES`; `scores` ranks like the fitted
    probability (the sigmoid is monotone and left out)."""

    __slots__ = ("coef", "intercept", "metrics")

    def __init__(self, coef: np.ndarray, intercept: float = 0.0,
                 metrics: Mapping[str, float] | None = None) -> None:
        coef = np.asarray(coef, dtype=np.float64)
        if coef.shape != (len(FEATURES),) or not np.isfinite(coef).all():
            raise ModelError(f"a mixer needs {len(FEATURES)} finite weights, got {coef.shape}")
        self.coef = coef
        self.intercept = float(intercept)
        self.metrics = dict(metrics or {})
        """How the fit went (examples, log loss, ...), published with it."""

    def weight(self, name: str) -> float:
        return float(self.coef[FEATURES.index(name)])

    def scores(self, signals: Signals, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """The mixer's score of every item: `signals` over all items, `item` their n_i."""
        n_s, n_c = len(SIGNALS), len(CONTEXT)
        w = self.coef
        cross = w[n_s : n_s + n_s * n_c].reshape(n_s, n_c)
        out = w[-1] * item
        for j, s in enumerate(signals.values()):
            if s is None:
                continue
            per_user = w[j] + cross[j, 0] * user[0] + cross[j, 1] * user[1]
            out = out + s * (per_user + cross[j, 2] * item)
        return out

    def rank(self, c: Candidates, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The best `k` candidates (catalog indices) and their scores (ties: lower index)."""
        at, val = topk(self.scores(c.signals, c.user, c.item), k)
        return c.items[at], val

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "features": list(FEATURES), "coef": self.coef.tolist(),
                "intercept": self.intercept, "metrics": self.metrics}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Mixer:
        """A mixer from `to_json`; its feature list must be this version's."""
        if d.get("format") != FORMAT or list(d.get("features", ())) != list(FEATURES):
            raise ModelError("the mixer was fitted for other features: "
                             f"{d.get('features')!r}")
        return cls(np.asarray(d["coef"], dtype=np.float64), d.get("intercept", 0.0),
                   d.get("metrics"))


def fit(X: np.ndarray, y: np.ndarray, regularization: float = 1.0,
        max_iter: int = 200) -> Mixer:
    """A logistic regression of labels `y` (0/1) on feature rows `X` (`feature_rows`), with L2
    strength `regularization` (scikit-learn's C = 1 / regularization)."""
    from sklearn.linear_model import LogisticRegression

    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != len(FEATURES) or len(X) != len(y):
        raise ModelError(f"need examples of {len(FEATURES)} features with one label each, got "
                         f"X {X.shape} and y {y.shape}")
    if len(np.unique(y)) < 2:
        raise ModelError("need positive and negative examples to fit a mixer")
    model = LogisticRegression(C=1.0 / regularization, max_iter=max_iter)
    model.fit(X, y)
    p = np.clip(model.predict_proba(X)[:, 1], 1e-12, 1 - 1e-12)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return Mixer(model.coef_[0], float(model.intercept_[0]),
                 {"examples": float(len(y)), "positives": float(np.sum(y)), "log_loss": loss})


def sample_negatives(
    rng: np.random.Generator, positive: int, candidates: np.ndarray, n: int
) -> np.ndarray:
    """`n` distinct items drawn uniformly from `candidates` other than `positive` (fewer when
    there are not enough)."""
    pool = candidates[candidates != positive]
    if len(pool) <= n:
        return pool.copy()
    return rng.choice(pool, n, replace=False)
