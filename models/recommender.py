"""OnlineRecommender: learn an event, recommend top-K; the worker and the evaluation both run it.

`learn` records an event in the user's history (blocking on dismiss, marking consumed types), adds
it to trending popularity and, for an item outside the model, to that item's interactions.
`recommend_many` folds users in against the current item factors (one batched solve, vectors cached
per model version and history state), picks each user's cold-start regime and ranks:

- no model, or w_cf = 0 (`coldstart.cf_weight`): popularity, `source="popular"`, scores are decayed
  popularity at `now`; rank-blended with category affinity when the user's items have categories;
- 0 < w_cf < 1: truncated-rank blend of CF, content and popularity, scores in (0, 1]; `source` is
  the list with the largest weight (ties: collaborative, then content, then popular);
- w_cf = 1: pure CF, `source="collaborative"`, scores are dot products, all users scored with one
  matrix product (the hot path).

`process_batch` learns a micro-batch in order and then recommends once per affected user; each
user's result equals learning the whole batch sequentially and then calling `recommend`. Shared
state (popularity, new items' vectors) is the batch's final state.

>>> Y = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
>>> rec = OnlineRecommender(FoldInConfig(k=2, full_events=1),
...                         ItemFactors(["a", "b", "c", "d"], Y, version=3))
>>> rec.learn("u1", "a", "purchase", t=0.0)
1.0
>>> r = rec.recommend("u1", now=0.0)
>>> r.items, r.source, r.model_version
(['b', 'd'], 'collaborative', 3)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

from models import coldstart
from models.catalog import ItemIndex
from models.foldin import ItemFactors, VectorCache
from models.history import Decay, UserHistory, confidences_many
from models.topk import topk, topk_batch
from models.trending import Trending
from models.weights import EventWeights, ModelError

Source = Literal["collaborative", "content", "popular"]
SCORE_CHUNK = 128
"""Users scored per matrix product: big enough for BLAS, small enough to stay in cache."""
_NO_HISTORY = UserHistory(1)


@dataclass(frozen=True)
class FoldInConfig:
    """Settings that do not depend on the factors; names match `refold.config.Settings`."""

    alpha: float = 2.0
    regularization: float = 0.05
    decay: Literal["events", "time", "none"] = "events"
    half_life_events: float = 5.0
    half_life_seconds: float = 3600.0
    session_boost: float = 1.0
    k: int = 20
    history_size: int = 50
    max_age_seconds: float | None = None
    max_excluded: int = 1000
    shrink: float = 5.0
    min_events: int = 1
    full_events: int | None = 20
    blend_depth: int = 200
    content_weight: float = 0.5
    exclude_types: frozenset[str] = frozenset({"purchase", "rating"})
    """Event types whose item is consumed: never recommended to that user again."""
    trending_half_life_seconds: float = 86400.0
    max_item_users: int = 1000
    weights: EventWeights = field(default_factory=EventWeights)

    def decay_spec(self) -> Decay:
        half_life = {"events": self.half_life_events, "time": self.half_life_seconds}
        return Decay(self.decay, half_life.get(self.decay, 1.0), self.session_boost)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any], strict: bool = True) -> FoldInConfig:
        """From a config table; `strict=False` ignores unknown keys (e.g. a whole Settings)."""
        names = {f.name for f in fields(cls)}
        if strict and set(config) - names:
            raise ModelError(f"unknown fold-in setting(s): {sorted(set(config) - names)}")
        values = {key: v for key, v in config.items() if key in names}
        if isinstance(values.get("weights"), Mapping):
            values["weights"] = EventWeights.from_mapping(values["weights"])
        if "exclude_types" in values:
            values["exclude_types"] = frozenset(values["exclude_types"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Recs:
    user_id: str
    items: list[str]
    scores: list[float]
    source: Source
    model_version: int | None


@dataclass(slots=True)
class _Plan:
    user_id: str
    now: float
    history: UserHistory
    items: np.ndarray
    weights: np.ndarray
    rows: np.ndarray
    """Model rows of the items that are in the model, with their `row_weights`."""
    row_weights: np.ndarray
    w_cf: float
    key: tuple[Any, ...]


class OnlineRecommender:
    """Per-user histories, trending, the catalog and the current item factors (None: popular)."""

    def __init__(
        self,
        config: FoldInConfig | None = None,
        factors: ItemFactors | None = None,
        catalog: ItemIndex | None = None,
    ) -> None:
        self.config = config or FoldInConfig()
        self.catalog = catalog if catalog is not None else ItemIndex()
        self.trending = Trending(self.config.trending_half_life_seconds)
        self._decay = self.config.decay_spec()
        self._users: dict[str, UserHistory] = {}
        self._vectors = VectorCache()
        self._cold = coldstart.ItemInteractions(self.config.max_item_users)
        self._model: coldstart.ServedFactors | None = None
        self._never: tuple[Any, np.ndarray] = (None, np.zeros(0, np.intp))
        if factors is not None:
            self.swap_factors(factors)

    @property
    def model_version(self) -> int | None:
        return self._model.factors.version if self._model else None

    def learn(
        self,
        user_id: str,
        item_id: str,
        event_type: str,
        t: float,
        *,
        value: float | None = None,
        weight: float | None = None,
        session_id: str | None = None,
    ) -> float:
        """Record one event; returns the weight it got (`weight` overrides the type's)."""
        cfg = self.config
        w = cfg.weights.weight(event_type, value, weight)
        i = self.catalog.index(item_id)
        h = self._users.get(user_id)
        if h is None:
            h = UserHistory(cfg.history_size, cfg.max_age_seconds, cfg.max_excluded)
            self._users[user_id] = h
        consume, block = event_type in cfg.exclude_types, EventWeights.blocks(event_type)
        h.add(i, w, t, session_id, consume, block)
        # Negative signals are personal: they do not lower an item's popularity.
        if w > 0:
            self.trending.update(i, w, t)
        if self._model is None or not self._model.in_model(i):
            self._cold.add(i, user_id, w)
        return w

    def learn_event(self, ev: Any) -> float:
        """`learn` from an event object (`refold.schemas.Event` or anything with its fields)."""
        return self.learn(
            ev.user_id, ev.item_id, ev.event_type, ev.event_time,
            value=getattr(ev, "value", None), weight=getattr(ev, "weight", None),
            session_id=getattr(ev, "session_id", None),
        )

    def process_batch(self, events: Iterable[Any]) -> list[tuple[Any, Recs]]:
        """Learn `events` in order, then one `Recs` per affected user with its last event."""
        last: dict[str, Any] = {}
        for ev in events:
            self.learn_event(ev)
            last.pop(ev.user_id, None)
            last[ev.user_id] = ev
        recs = self.recommend_many(list(last), [ev.event_time for ev in last.values()])
        return list(zip(last.values(), recs, strict=True))

    def recommend(self, user_id: str, now: float, k: int | None = None) -> Recs:
        return self.recommend_many([user_id], [now], k)[0]

    def recommend_many(
        self, user_ids: Sequence[str], nows: Sequence[float], k: int | None = None
    ) -> list[Recs]:
        """Top-K for several users at once (one batched fold-in, one scoring product)."""
        k = self.config.k if k is None else k
        self._sync()
        plans = self._plans(user_ids, nows)
        vecs = self._user_vectors(plans)
        out: list[Recs | None] = [None] * len(plans)
        pure = [j for j, p in enumerate(plans) if p.w_cf == 1.0 and vecs[j] is not None]
        if pure:
            ranked = self._rank_cf([plans[j] for j in pure], vecs, pure, k)
            for j, recs in zip(pure, ranked, strict=True):
                out[j] = recs
        for j, p in enumerate(plans):
            if out[j] is None:
                out[j] = self._rank_blend(p, vecs[j], k)
        return out  # type: ignore[return-value]

    def swap_factors(self, factors: ItemFactors) -> None:
        """Serve a new model version; users' vectors are recomputed lazily on next use."""
        idx = self.catalog.index_many(factors.item_ids)
        m = coldstart.ServedFactors(factors, idx, len(self.catalog))
        self._cold.forget([i for i in self._cold.items() if m.in_model(i)])
        outside = [i for i in self.catalog.with_categories() if not m.in_model(i)]
        self._cold.dirty = set(self._cold.items()).union(outside)
        self.trending.resize(len(self.catalog))
        self._model, self._never = m, (None, self._never[1])  # readers see old or new

    def set_item_active(
        self, item_id: str, active: bool, categories: Iterable[str] | None = None
    ) -> None:
        """Apply a catalog message: inactive items are never recommended."""
        i = self.catalog.set_item(item_id, active, categories)
        if categories is not None and not (self._model and self._model.in_model(i)):
            self._cold.dirty.add(i)

    def user_state(self, user_id: str) -> dict[str, Any] | None:
        """The user's history as plain data with item ids (not indices), for a changelog."""
        h = self._users.get(user_id)
        return None if h is None else h.to_state(self.catalog.ids)

    def restore_user(self, user_id: str, state: Mapping[str, Any]) -> None:
        """Install a state from `user_state` (possibly saved by another process)."""
        self._users[user_id] = UserHistory.from_state(state, self.catalog.index)
        self._vectors.drop(user_id)

    def drop_user(self, user_id: str) -> None:
        """Forget a user (e.g. when its partition moves to another worker)."""
        self._users.pop(user_id, None)
        self._vectors.drop(user_id)

    # -- internals

    def _plans(self, user_ids: Sequence[str], nows: Sequence[float]) -> list[_Plan]:
        """Each user's aggregated history, model rows and CF weight (one pass for all users)."""
        cfg, m = self.config, self._model
        hs = [self._users.get(u, _NO_HISTORY) for u in user_ids]
        offsets, items, weights = confidences_many(hs, nows, self._decay)
        rows = m.row_of[items] if m is not None else np.full(len(items), -1)
        user = np.repeat(np.arange(len(hs)), offsets[1:] - offsets[:-1])
        modelled = rows >= 0
        n_cf = np.bincount(user, weights=modelled & (weights > 0), minlength=len(hs))
        row_offsets = np.zeros(len(hs) + 1, dtype=np.intp)
        np.cumsum(np.bincount(user[modelled], minlength=len(hs)), out=row_offsets[1:])
        rows, row_weights = rows[modelled], weights[modelled]
        timed = self._decay.mode == "time" or cfg.max_age_seconds is not None
        version, plans = self.model_version, []
        for j, (u, now, h) in enumerate(zip(user_ids, nows, hs, strict=True)):
            lo, hi, rlo, rhi = offsets[j], offsets[j + 1], row_offsets[j], row_offsets[j + 1]
            w_cf = coldstart.cf_weight(int(n_cf[j]), cfg.shrink, cfg.min_events,
                                       cfg.full_events) if m else 0.0
            key = (version, h.seq, now if timed else None)
            plans.append(_Plan(u, now, h, items[lo:hi], weights[lo:hi], rows[rlo:rhi],
                               row_weights[rlo:rhi], w_cf, key))
        return plans

    def _user_vectors(self, plans: Sequence[_Plan]) -> list[np.ndarray | None]:
        """Vectors of the plans with w_cf > 0 (cached, or solved in one batch); None otherwise."""
        need = [p for p in plans if p.w_cf > 0]
        if not need or self._model is None:
            return [None] * len(plans)
        got = iter(self._vectors.vectors(
            self._model.factors, [(p.user_id, p.key, p.rows, p.row_weights) for p in need],
            self.config.alpha, self.config.regularization))
        return [next(got) if p.w_cf > 0 else None for p in plans]

    def _rank_cf(
        self, plans: list[_Plan], vecs: list[np.ndarray | None], at: list[int], k: int
    ) -> list[Recs]:
        """Pure-CF users: one scoring product, one batched top-K."""
        m, n = self._model, len(self.catalog)
        assert m is not None
        Y, never = m.Y[:n], self._never_recommended()
        if len(plans) == 1:  # the per-event path: a plain matrix-vector product
            exclude = np.concatenate([never, plans[0].history.excluded()])
            idx, val = topk(Y @ vecs[at[0]], k, exclude)  # type: ignore[operator]
            return [self._recs(plans[0], idx, val, "collaborative")]
        out = []
        for lo in range(0, len(plans), SCORE_CHUNK):
            chunk = plans[lo : lo + SCORE_CHUNK]
            S = np.stack([vecs[j] for j in at[lo : lo + SCORE_CHUNK]]) @ Y.T  # type: ignore
            idx, val = topk_batch(S, k, [p.history.excluded() for p in chunk], never)
            ranked = zip(chunk, idx, val, strict=True)
            out += [self._recs(p, i, v, "collaborative") for p, i, v in ranked]
        return out

    def _never_recommended(self) -> np.ndarray:
        """Inactive items and items without a vector (cached until either changes)."""
        m, n = self._model, len(self.catalog)
        assert m is not None
        key = (m.changes, self.catalog.version, n)
        if self._never[0] != key:
            self._never = (key, np.flatnonzero(~(self.catalog.active & m.has_vec[:n])))
        return self._never[1]

    def _rank_blend(self, p: _Plan, x: np.ndarray | None, k: int) -> Recs:
        """Popular, content and partial-CF users: truncated-rank blend of their lists."""
        cfg, m, n = self.config, self._model, len(self.catalog)
        exclude = ~self.catalog.active
        exclude[p.history.excluded()] = True
        pop = self.trending.ranking_scores()[:n]
        aff = coldstart.category_affinity(p.items, p.weights, self.catalog)
        weights, source = coldstart.list_weights(
            p.w_cf if x is not None else 0.0, aff is not None, cfg.content_weight)
        if weights[2] == 1.0:
            idx, _ = topk(pop, k, exclude)
            return self._recs(p, idx, self.trending.scores(p.now)[idx], "popular")
        cf = None
        if x is not None and m is not None:
            cf = m.Y[:n] @ x
            cf[~m.has_vec[:n]] = -np.inf
        lists = [s if s is not None else pop for s in (cf, aff, pop)]
        idx, val = coldstart.rank_blend(lists, weights, k, max(cfg.blend_depth, k), exclude)
        return self._recs(p, idx, val, source)

    def _recs(self, p: _Plan, idx: np.ndarray, val: np.ndarray, source: str) -> Recs:
        keep = idx >= 0
        return Recs(
            p.user_id, list(map(self.catalog.ids.__getitem__, idx[keep].tolist())),
            val[keep].tolist(), source, self.model_version,  # type: ignore[arg-type]
        )

    def _sync(self) -> None:
        """Size the arrays to the catalog; give dirty items outside the model their vectors."""
        n = len(self.catalog)
        self.trending.resize(n)
        m = self._model
        if m is None:
            return
        m.grow(n)
        dirty, self._cold.dirty = sorted(self._cold.dirty), set()
        users = {u for i in dirty for u in self._cold.users_of(i)}
        users = sorted(users & self._users.keys())
        vecs = self._user_vectors([self._plan_any_vector(u) for u in users])
        m.refresh(dirty, self._cold, dict(zip(users, vecs, strict=True)), self.catalog,
                  self.config.alpha, self.config.regularization)

    def _plan_any_vector(self, user_id: str) -> _Plan:
        """A plan at the user's last event that accepts any cached vector of this version."""
        h = self._users[user_id]
        p = self._plans([user_id], [h.last_time or 0.0])[0]
        key = self._vectors.key_of(user_id)
        if key is not None and key[0] == self.model_version:
            p.key = key
        return p
