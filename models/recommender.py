"""OnlineRecommender: learn an event, recommend top-K; the worker and the evaluation both run it.

`learn` records an event in the user's history (blocking on dismiss, marking consumed types), adds
it to its partition's popularity and, for an item outside the model, to that item's interactions
in the partition (`models.partition`: state other than a user's is kept per events partition, so
it depends only on that partition's event sequence; without partitions everything is in 0).
`recommend_many` folds users in against the current item factors (one batched solve, vectors cached
per model version and history state), picks each user's cold-start regime and ranks
(`models.ranking`):

- no model, or w_cf = 0 (`coldstart.cf_weight`): popularity, `source="popular"`, scores are decayed
  popularity at `now`; rank-blended with category affinity when the user's items have categories;
- 0 < w_cf < 1: truncated-rank blend of CF, content and popularity, scores in (0, 1]; `source` is
  the list with the largest weight (ties: collaborative, then content, then popular);
- w_cf = 1: pure CF, `source="collaborative"`, scores are dot products, all users scored with one
  matrix product (the hot path).

`process_batch` learns a micro-batch in order and then recommends once per affected user; each
user's result equals learning the events one by one and calling `recommend` right after the user's
last one: popularity and new items' vectors as of that event, whatever the batch boundaries.

The recommender coordinates parts, each with its own small contract: `users`
(`models.users.Users`: histories and home partitions; in memory by default), `partitions`
(`models.partition.Partitions`: popularity, co-visits and new items per events partition),
`served` (`models.served.ServedModel`: the model version and what derives from it) and `ranker`
(`models.ranking.Ranker`: plans to lists). It makes the users' `Plan`s and vectors itself.

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
from typing import Any

import numpy as np

from models import compiled, covisit
from models.adaptive_trending import NEWCOMER_EVENTS
from models.catalog import ItemIndex
from models.content import attribute_tags
from models.content_index import ContentIndex
from models.foldin import ItemFactors, VectorCache, batch_drift
from models.foldin_config import FoldInConfig
from models.guard import GuardStats, shared_weight_ring, withdrawn
from models.history import UserHistory
from models.item_age import ItemAges
from models.mixer import Candidates
from models.partition import Partitions, PartitionState, PartitionUndo
from models.pending_popularity import PendingPopularity
from models.plans import Plan, make_plans
from models.profiles import DeclaredProfiles
from models.ranking import Ranker, Recs
from models.served import PreparedFactors, ServedModel
from models.trending import Trending
from models.users import UserHistories, Users
from models.weights import EventWeights

__all__ = ["FoldInConfig", "OnlineRecommender", "PreparedFactors", "Recs"]

_NO_HISTORY = UserHistory(1)
Learned = tuple[float, int, float, list[tuple[int, float, float]], bool]
"""What `_learn` did: weight, item, shared weight, weights given back, newcomer."""


class OnlineRecommender:
    """Per-user histories, per-partition state, the catalog and the served model (None:
    popular), and the lists they make."""

    def __init__(
        self,
        config: FoldInConfig | None = None,
        factors: ItemFactors | None = None,
        catalog: ItemIndex | None = None,
        users: Users | None = None,
    ) -> None:
        """`users`: where per-user state lives (default: in memory, `UserHistories`)."""
        compiled.warm_up()  # compiled once per process: the first event should not wait for it
        self.config = config or FoldInConfig()
        self.catalog = catalog if catalog is not None else ItemIndex()
        self._decay = self.config.decay_spec()
        self.users: Users = users if users is not None else UserHistories(self.config)
        self.partitions = Partitions(self.config)
        self.content = ContentIndex(self.config.content_text_weight,
                                    self.config.content_tag_weight)
        self.profiles = DeclaredProfiles(self.config.max_profiles, self.content.encoder)
        self.served = ServedModel(self.catalog, self.config.alpha, self.config.regularization,
                                  self.config.ann_config(), self.content)
        self.ages = ItemAges()
        self.ranker = Ranker(self.config, self.catalog, self.served, self.content,
                             self.profiles, self.ages)
        tagged = self.catalog.with_categories()  # a catalog given filled: categories are tags
        if tagged:
            self.content.set_items(tagged, [None] * len(tagged),
                                   [self.catalog.categories_of(i) for i in tagged])
        self._vectors = VectorCache()
        self._guard = self.config.guard_config()
        self.guard_stats = GuardStats()
        """What the guard did (`models.guard`): automated users and events, capped events."""
        self.batch_vector_norm: float | None = None
        """Mean L2 norm of the user vectors of the last `process_batch` (None: no vector)."""
        self.batch_residual: float | None = None
        """Mean fold-in residual (`models.foldin.residuals`) of the last batch's users (None)."""
        if factors is not None:
            self.swap_factors(factors)

    @property
    def model_version(self) -> int | None:
        return self.served.version

    @property
    def trending(self) -> Trending:
        """Partition 0's popularity: everything's, when partitions are not used."""
        return self.partition(0).trending

    def partition(self, partition: int) -> PartitionState:
        return self.partitions.get(partition)

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
        partition: int = 0,
    ) -> float:
        """Record one event of `partition`; returns the weight it got (`weight` overrides the
        type's)."""
        return self._learn(user_id, item_id, event_type, t, value, weight, session_id,
                           partition, popularity=True)[0]

    def learn_event(self, ev: Any, partition: int = 0) -> float:
        """`learn` from an event object (`refold.core.schemas.Event`, or anything with its
        fields)."""
        return self._learn_event(ev, partition, popularity=True)[0]

    def process_batch(self, events: Iterable[Any], partitions: Iterable[int] | None = None,
                      k: int | None = None) -> list[tuple[Any, Recs]]:
        """Learn `events` in order (event j of partition `partitions[j]`, default 0), then one
        `Recs` of `k` (default `config.k`) per affected user with its last event, as of it."""
        k = self.config.k if k is None else k
        events = list(events)
        parts = [0] * len(events) if partitions is None else list(partitions)
        last = {ev.user_id: j for j, ev in enumerate(events)}
        learned, overlays, sessions = [], {}, {}
        for j, (ev, p) in enumerate(zip(events, parts, strict=True)):
            learned.append(self._learn_event(ev, p, popularity=False))  # popularity: below
            if last[ev.user_id] == j:
                part = self.partitions.get(p)
                overlays[j] = part.vectors
                sessions[j] = covisit.session_of(part.covisits, self.users.get(ev.user_id),
                                                 self.config)
        at = sorted(last.values())
        self.served.sync()
        plans = self.plans([events[j].user_id for j in at], [events[j].event_time for j in at])
        for q, j in enumerate(at):
            plans[q].session = sessions[j]
        vecs = self.user_vectors(plans)
        m = self.served.current
        self.batch_vector_norm, self.batch_residual = batch_drift(
            m.factors.Y if m is not None else None, vecs,
            [p.rows for p in plans], [p.row_weights for p in plans])
        out = self.ranker.rank_pure_cf(plans, vecs, [overlays[j] for j in at], k)
        # Popularity as of each other user's last event: the batch's updates in order.
        blend = {at[q]: q for q, r in enumerate(out) if r is None}
        pending = PendingPopularity(self.partitions)
        for j, ((_, i, shared, back, new), p) in enumerate(zip(learned, parts, strict=True)):
            pending.share(p, i, shared, events[j].event_time, back, new)
            if (q := blend.get(j)) is not None:
                out[q] = self.ranker.rank_blend(plans[q], vecs[q], k, pending.flush(p),
                                                overlays[j])
        pending.flush_all()
        return [(events[j], r) for j, r in zip(at, out, strict=True)]  # type: ignore[misc]

    def recommend(self, user_id: str, now: float, k: int | None = None) -> Recs:
        return self.recommend_many([user_id], [now], k)[0]

    def recommend_many(
        self, user_ids: Sequence[str], nows: Sequence[float], k: int | None = None
    ) -> list[Recs]:
        """Top-K for several users at once (one batched fold-in, one scoring product)."""
        k = self.config.k if k is None else k
        self.served.sync()
        plans = self.plans(user_ids, nows)
        vecs = self.user_vectors(plans)
        parts = [self.partitions.get(self.users.partition_of(u)) for u in user_ids]
        for p, part in zip(plans, parts, strict=True):
            p.session = covisit.session_of(part.covisits, p.history, self.config)
        out = self.ranker.rank_pure_cf(plans, vecs, [part.vectors for part in parts], k)
        for j, p in enumerate(plans):
            if out[j] is None:
                out[j] = self.ranker.rank_blend(p, vecs[j], k, parts[j], parts[j].vectors)
        return out  # type: ignore[return-value]

    def candidates_of(self, user_id: str, now: float) -> Candidates:
        """The user's candidates and signals for the mixer at `now` (`Ranker.candidates`), as
        a list would see them: what fitting the mixer on a replay records."""
        self.served.sync()
        plan = self.plans([user_id], [now])[0]
        part = self.partitions.get(self.users.partition_of(user_id))
        plan.session = covisit.session_of(part.covisits, plan.history, self.config)
        x = self.user_vectors([plan])[0]
        return self.ranker.candidates(plan, x, part, part.vectors)

    def prepare_factors(self, factors: ItemFactors) -> PreparedFactors:
        """The costly part of `swap_factors` (`ServedModel.prepare`), safe to run on another
        thread while this recommender serves."""
        return self.served.prepare(factors)

    def swap_factors(self, factors: ItemFactors | PreparedFactors) -> None:
        """Serve a new model version (and its content idf, when it has one); users' vectors are
        recomputed lazily on next use."""
        idf = (factors.served.factors if isinstance(factors, PreparedFactors) else factors).idf
        if idf is not None:
            self.content.set_idf(idf)
        m = self.served.swap(factors)
        for part in self.partitions.states():  # new items' vectors, in the new model's space
            joined = [i for i in part.cold.items() if m.in_model(i)]
            part.cold.forget(joined)
            part.changed.update(joined)
            part.vectors, part.cold.dirty = {}, set()
            self._refresh_partition(part, part.cold.items())

    def set_item_active(
        self, item_id: str, active: bool, categories: Iterable[str] | None = None
    ) -> None:
        """Apply a catalog message: inactive items are never recommended; categories are
        content tags too."""
        i = self.catalog.set_item(item_id, active, categories)
        if categories is not None:
            self.content.set_items([i], [None], [list(categories)])
        self.served.item_changed(i, categorized=categories is not None)

    def basis(self, user_id: str, n: int = 5) -> list[str]:
        """The ids of the user's latest `n` positive items, newest first: what their list was
        computed from (explanations name them). Reads the session's cached positive items."""
        history = self.users.get(user_id)
        if history is None:
            return []
        items = history.positive_items(max(n, self.config.session_items))[-n:]
        return [self.catalog.ids[i] for i in items[::-1].tolist()]

    def apply_items(self, items: Sequence[Any]) -> None:
        """Apply catalog messages (`refold.core.schemas.Item`, or anything with its fields):
        activity, categories, and content (text, tags, categories and textual attributes),
        the texts hashed in one call."""
        idx = [self.catalog.set_item(it.item_id, it.active, it.categories) for it in items]
        self.content.set_items(
            idx, [getattr(it, "text", None) for it in items],
            [[*getattr(it, "tags", ()), *it.categories, *attribute_tags(it)] for it in items])
        for i, it in zip(idx, items, strict=True):
            own = bool(getattr(it, "text", None) or getattr(it, "tags", None))
            self.served.item_changed(i, categorized=bool(it.categories), described=own)
            self.ages.set(i, getattr(it, "created_at", None))

    def set_profiles(self, profiles: Sequence[Any]) -> None:
        """Apply users' declared profiles (`refold.core.schemas.User`, or anything with its
        fields); a profile of None fields only is a deletion."""
        self.profiles.set_many(
            (u.user_id, getattr(u, "interests", None), getattr(u, "skills", ()),
             getattr(u, "attributes", None), getattr(u, "signup_at", None)) for u in profiles)

    def drop_profile(self, user_id: str) -> None:
        self.profiles.drop(user_id)

    def user_state(self, user_id: str) -> dict[str, Any] | None:
        """The user's history as plain data with item ids (not indices), for a changelog."""
        return self.users.state(user_id, self.catalog.ids)

    def restore_user(self, user_id: str, state: Mapping[str, Any], partition: int = 0) -> None:
        """Install a state from `user_state` (possibly saved by another process)."""
        self.users.restore(user_id, state, self.catalog.index, partition)
        self._vectors.drop(user_id)

    def drop_user(self, user_id: str) -> None:
        """Forget a user (e.g. when its partition moves to another worker)."""
        self.users.drop(user_id)
        self._vectors.drop(user_id)

    def save_partition(self, partition: int, item_ids: Iterable[str]) -> PartitionUndo:
        """The undo record of a batch whose events of `partition` touch `item_ids`."""
        return self.partition(partition).save(map(self.catalog.index, item_ids))

    def revert_partition(self, partition: int, undo: PartitionUndo) -> None:
        self.partition(partition).revert(undo)

    def partition_changes(self, partition: int) -> dict[str, Any]:
        """Plain data (item ids) of the partition's counters and its items and co-visit rows
        changed since the last call (`PartitionState.to_plain`), for a changelog."""
        part = self.partition(partition)
        return part.to_plain(self.catalog.names(), self.model_version, *part.take_changed())

    def restore_partition(self, partition: int, plain: Mapping[str, Any]) -> None:
        """Install `partition_changes` data accumulated over time (after the partition's users:
        new items' vectors saved for another model version are folded in again from them)."""
        part = self.partitions.fresh()
        stale = part.load_plain(plain, self.catalog.index, self.model_version,
                                self.served.in_model)
        self.partitions.put(partition, part)
        if stale:
            self._refresh_partition(part, stale)

    def drop_partition(self, partition: int) -> None:
        """Forget a partition's state (not its users': `drop_user`)."""
        self.partitions.drop(partition)

    # -- internals

    def _learn_event(self, ev: Any, partition: int, popularity: bool) -> Learned:
        return self._learn(
            ev.user_id, ev.item_id, ev.event_type, ev.event_time, getattr(ev, "value", None),
            getattr(ev, "weight", None), getattr(ev, "session_id", None), partition, popularity)

    def _learn(
        self, user_id: str, item_id: str, event_type: str, t: float, value: float | None,
        weight: float | None, session_id: str | None, partition: int, popularity: bool,
    ) -> Learned:
        """`learn`; returns the weight, the item's index, the weight the shared counts get,
        what they give back (`models.guard`: (item, weight, time) of a newly flagged user's
        earlier events) and whether the user is a newcomer (adaptive trending chooses on
        their events). `popularity=False` leaves the popularity updates to the caller
        (`process_batch`)."""
        cfg, m = self.config, self.served.current
        w = cfg.weights.weight(event_type, value, weight)
        i = self.catalog.index(item_id)
        h = self.users.get_or_create(user_id, partition, t)
        newcomer = h.seq < NEWCOMER_EVENTS
        consume, block = event_type in cfg.exclude_types, EventWeights.blocks(event_type)
        covisited = w > 0 and cfg.session_weight != 0
        previous = covisit.recent_items(h, cfg.session_window) if covisited else None
        h.add(i, w, t, session_id, consume, block)
        h.observe(i, event_type, t)
        shared, back = w, []
        if w > 0 and self._guard.enabled:  # what this user may add to everyone's counts
            share, automated = shared_weight_ring(*h.ring(), self._guard)
            shared = w * share
            self.guard_stats.count(user_id, t, share, automated)
            if automated:
                back = withdrawn(*h.ring(), self._guard)
                self.guard_stats.withdrawn_events += len(back)
        part = self.partitions.get(partition)
        if previous is not None and shared > 0:  # items out of the catalog take no part
            cat = self.catalog
            part.add_covisit(i, previous, None if cat.all_active() else cat.active)
        # Negative signals are personal: they do not lower an item's popularity.
        if popularity:
            part.share_popularity(i, shared, t, back, newcomer)
        if m is None or not m.in_model(i):
            part.cold.add(i, user_id, shared if w > 0 else w)
            part.changed.add(i)
        part.events += 1
        if cfg.session_weight != 0 and part.events % cfg.session_refresh_events == 0:
            part.refresh_covisits()
        if m is not None and part.cold.dirty and part.events % cfg.cold_refresh_events == 0:
            dirty, part.cold.dirty = part.cold.dirty, set()
            self._refresh_partition(part, dirty)
        return w, i, shared, back, newcomer

    def _refresh_partition(self, part: PartitionState, items: Iterable[int]) -> None:
        """Fold in the vectors of `items` (outside the model) from the current vectors of the
        partition's users who touched them; an item no user with a vector touched has none in
        the partition (its category vector, if any, serves)."""
        m, cfg = self.served.current, self.config
        items = sorted(items)
        if m is None or not items:
            return
        m.grow(len(self.catalog))
        known = self.users  # only the users who touched these items: no scan of all users
        users = sorted(u for u in {u for i in items for u in part.cold.users_of(i)} if u in known)
        plans = self.plans(users, [known.get(u).last_time or 0.0 for u in users])  # type: ignore
        vecs = dict(zip(users, self.user_vectors(plans), strict=True))
        part.refresh(items, vecs, m.factors.XtX, cfg.alpha, cfg.regularization)

    def plans(self, user_ids: Sequence[str], nows: Sequence[float]) -> list[Plan]:
        """Each user's aggregated history, model rows and CF weight (`models.plans`)."""
        m = self.served.current
        return make_plans(user_ids, nows, [self.users.get(u, _NO_HISTORY) for u in user_ids],
                          None if m is None else m.row_of, self.config, self._decay,
                          self.model_version)

    def user_vectors(self, plans: Sequence[Plan]) -> list[np.ndarray | None]:
        """Vectors of the plans with w_cf > 0 (cached, or solved in one batch); None otherwise."""
        need, m = [p for p in plans if p.w_cf > 0], self.served.current
        if not need or m is None:
            return [None] * len(plans)
        got = iter(self._vectors.vectors(
            m.factors, [(p.user_id, p.key, p.rows, p.row_weights) for p in need],
            self.config.alpha, self.config.regularization))
        return [next(got) if p.w_cf > 0 else None for p in plans]
