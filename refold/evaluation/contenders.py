"""The evaluated models by name, their default hyper-parameters, and refold behind the contract.

`refold`, `foldin_only` and `oracle` are the worker's own `models.recommender.OnlineRecommender`
(learn an event, recommend at the event's time) fed the same events as the Kafka worker, with
item factors from `models.als`: fitted on the warm-up, then

- `foldin_only`: never refitted;
- `refold`: refitted every `refit_every` events on all events so far, warm-started from the
  live factors (what the background refitter does; the new factors are swapped in at once);
- `oracle`: refitted from scratch every `oracle_every` events: an expensive upper reference;
- `refold_mixer`: `refold` with the learned mixer (`learn_mixer`), fitted at each refit as the
  refitter does; not in the default set (it costs ~8× `refold`'s CPU time: each scored event
  records its user's candidates), name it with `--models`.

The defaults below came from `refold evaluate --search` on ml-100k's warm-up (the first 20 % of
events, never the evaluated part); see `refold.evaluation.search`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from models import defaults
from models.als import csr_from, fit_als
from models.baselines import (
    Events,
    OryxRank1,
    Popularity,
    RiverMF,
    Row,
    StaticALS,
    StreamModel,
    Trending,
)
from models.foldin import ItemFactors
from models.mixer import Candidates
from models.mixer_fit import ExampleBuffer
from models.recommender import FoldInConfig, OnlineRecommender
from refold.evaluation.clock import Clock

MODELS = ("popularity", "trending", "river_funkmf", "river_biasedmf", "static_als", "oryx_rank1",
          "foldin_only", "refold", "oracle")
"""The default set of `refold evaluate`."""
OPTIONAL = ("refold_mixer",)
"""Models evaluated only when named."""
BASELINES = MODELS[:6]
REFOLD_FAMILY = ("foldin_only", "refold", "oracle", "refold_mixer")

DEFAULTS: dict[str, dict[str, Any]] = {
    "popularity": {},
    "trending": {"half_life": 90 * 86400.0},
    "river_funkmf": {"n_factors": 10, "lr": 0.1, "l2": 0.01, "target": "implicit",
                     "negatives": 4},
    "river_biasedmf": {"n_factors": 10, "lr": 0.005, "l2": 0.0, "target": "implicit",
                       "negatives": 4},
    "static_als": {"factors": 32, "regularization": 50.0, "alpha": 2.0, "iterations": 15},
    "oryx_rank1": {"factors": 32, "regularization": 20.0, "alpha": 2.0, "iterations": 15,
                   "strength": 1.0},
    "refold": {"factors": defaults.FACTORS, "regularization": defaults.REGULARIZATION,
               "alpha": defaults.ALPHA, "iterations": defaults.ITERATIONS,
               "warm_iterations": 5, "half_life_events": defaults.HALF_LIFE_EVENTS,
               "full_events": 1, "trending_half_life_seconds": defaults.TRENDING_HALF_LIFE_SECONDS,
               "session_weight": defaults.SESSION_WEIGHT,
               "session_half_life": defaults.SESSION_HALF_LIFE},
}
"""Hyper-parameters per model (`foldin_only` and `oracle` share `refold`'s: the model's defaults,
`models.defaults`, except `full_events`, 1 here and 20 in the worker). Besides implicit's
ALS settings, a refold entry may set `warm_iterations` (iterations of a warm-started refit; the
search cannot tune it, as its validation span holds no refit: 5 costs 0.4 % of ml-100k recall
against 15, for a third of the refit time) and any `FoldInConfig` field."""


MIXER_EXAMPLES = 120_000
"""Examples a refit fits the mixer on: the newest, four per scored event (1:3 negatives)."""
MIXER_NEGATIVES = 3
MIXER_MIN_POSITIVES = 500


def params_of(name: str, tuned: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The defaults of `name`, overridden by `tuned` (the search's results, keyed like DEFAULTS)."""
    key = "refold" if name in REFOLD_FAMILY else name
    return {**DEFAULTS[key], **((tuned or {}).get(key) or {})}


@dataclass(frozen=True)
class Names:
    """What the worker sees instead of indices: ids, and each item's categories; the catalog's
    messages when they carry more (text, tags), and users' declared profiles."""

    user_ids: Sequence[str]
    item_ids: Sequence[str]
    item_categories: Sequence[Sequence[str]]
    items: Sequence[Any] = ()
    """`refold.core.schemas.Item`s applied as the worker's catalog reader would (empty: the
    categories alone)."""
    profiles: Sequence[Any] = ()
    """`refold.core.schemas.User`s: declared profiles."""


def build(
    name: str,
    params: Mapping[str, Any],
    names: Names,
    config: FoldInConfig,
    refit_every: int | None = None,
    seed: int = 0,
) -> StreamModel:
    """A fresh model; `config` is the fold-in configuration of the refold family, and
    `refit_every` its refit period (`refold`, `oracle`)."""
    p = dict(params)
    if name == "popularity":
        return Popularity()
    if name == "trending":
        return Trending(**p)
    if name in ("river_funkmf", "river_biasedmf"):
        return RiverMF(biased=name == "river_biasedmf", seed=seed, **p)
    if name == "static_als":
        return StaticALS(seed=seed, **p)
    if name == "oryx_rank1":
        return OryxRank1(seed=seed, **p)
    if name in REFOLD_FAMILY:
        als = {k: p.pop(k) for k in ("factors", "regularization", "alpha", "iterations")}
        warm_iterations = p.pop("warm_iterations", als["iterations"])
        learn_mixer = bool(p.pop("learn_mixer", False)) or name == "refold_mixer"
        content = bool(p.pop("content", True))
        cfg = replace(config, alpha=als["alpha"], regularization=als["regularization"], **p)
        every = None if name == "foldin_only" else refit_every
        return RefoldModel(cfg, names, every, from_scratch=name == "oracle", seed=seed,
                           factors=als["factors"], iterations=als["iterations"],
                           warm_iterations=warm_iterations, learn_mixer=learn_mixer,
                           content=content)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")


class RefoldModel:
    """`OnlineRecommender` under the `StreamModel` contract, plus the refit schedule.

    The recommender keeps its own histories and exclusions (consumed and dismissed items); the
    harness checks its lists against the same exclusions. With `learn_mixer`, each scored
    event also records its user's candidates as the served model saw them (what a replay of
    the served model does in the refitter: `models.mixer_fit`), and each refit fits the mixer
    on the newest of them and ships it, with the items' interaction counts, in the new version.
    """

    def __init__(
        self, config: FoldInConfig, names: Names, refit_every: int | None, from_scratch: bool,
        factors: int, iterations: int, seed: int = 0, warm_iterations: int | None = None,
        learn_mixer: bool = False, content: bool = True,
    ) -> None:
        self.config = config
        self.names = names
        self.refit_every = refit_every
        self.from_scratch = from_scratch
        self.factors = factors
        self.iterations = iterations
        self.warm_iterations = iterations if warm_iterations is None else warm_iterations
        self.seed = seed
        self.learn_mixer = learn_mixer
        self.content = content
        """False: the catalog's categories only, no texts, tags or declared profiles."""
        self.index = {item_id: i for i, item_id in enumerate(names.item_ids)}
        self.refits = 0
        self.refit_clock = Clock()
        """CPU (all threads) and wall-clock seconds of the refits."""

    def fit(self, warmup: Events) -> None:
        self.rec = OnlineRecommender(self.config)
        if self.names.items and self.content:
            self.rec.apply_items(list(self.names.items))
        for item_id, cats in zip(self.names.item_ids, self.names.item_categories, strict=True):
            if item_id not in self.rec.catalog:
                self.rec.set_item_active(item_id, True, list(cats))
        if self.names.profiles and self.content:
            self.rec.set_profiles(list(self.names.profiles))
        self._examples = ExampleBuffer(MIXER_EXAMPLES)
        self._asked: tuple[int, float, Candidates] | None = None
        self._rng = np.random.default_rng(self.seed)
        self._users: list[int] = []
        self._items: list[int] = []
        self._weights: list[float] = []
        self._live: ItemFactors | None = None
        self._since = 0
        for ev in warmup.rows():
            self._learn(ev)
        self._shape = (warmup.n_users, warmup.n_items)
        self._refit()

    def recommend(self, user: int, k: int, exclude: np.ndarray, t: float = 0.0) -> np.ndarray:
        if self.learn_mixer:
            self._asked = (user, t, self.rec.candidates_of(self.names.user_ids[user], t))
        recs = self.rec.recommend(self.names.user_ids[user], now=t, k=k)
        return np.fromiter((self.index[i] for i in recs.items), dtype=np.int64,
                           count=len(recs.items))

    def learn(self, ev: Row) -> None:
        asked, self._asked = self._asked, None
        if asked is not None and asked[:2] == (ev.user, ev.t) and ev.weight > 0:
            target = self.rec.catalog.get(self.names.item_ids[ev.item])
            self._examples.add(asked[2], target, self._rng, MIXER_NEGATIVES)
        self._learn(ev)
        self._since += 1
        if self.refit_every and self._since >= self.refit_every:
            self._refit()

    def _learn(self, ev: Row) -> None:
        self.rec.learn(
            self.names.user_ids[ev.user], self.names.item_ids[ev.item], ev.kind, ev.t,
            value=None if ev.value != ev.value else ev.value, session_id=ev.session or None,
        )
        self._users.append(ev.user)
        self._items.append(ev.item)
        self._weights.append(ev.weight)

    def _refit(self) -> None:
        """Fit on every event so far (items that have one are the model's columns) and swap."""
        with self.refit_clock:
            self._fit_and_swap()

    @property
    def refit_seconds(self) -> float:
        return self.refit_clock.cpu

    @property
    def refit_wall_seconds(self) -> float:
        return self.refit_clock.wall

    def _fit_and_swap(self) -> None:
        self._since = 0
        users, items = np.asarray(self._users), np.asarray(self._items)
        seen, cols = np.unique(items, return_inverse=True)
        X = csr_from(users, cols, np.asarray(self._weights), (self._shape[0], len(seen)))
        warm = None if self.from_scratch else self._live
        iterations = self.iterations if warm is None else self.warm_iterations
        self._live = fit_als(
            X, self.factors, self.config.regularization, self.config.alpha, iterations,
            self.seed, warm_start=warm, item_ids=[self.names.item_ids[i] for i in seen],
            version=self.refits + 1,
        )
        if self.learn_mixer:
            positive = np.asarray(self._weights) > 0
            counts = np.bincount(cols[positive], minlength=len(seen)).astype(np.float64)
            f = self._live
            self._live = ItemFactors(f.item_ids, f.Y, f.version, f.XtX, counts,
                                     self._examples.fit(MIXER_MIN_POSITIVES))
        self.refits += 1
        self.rec.swap_factors(self._live)
