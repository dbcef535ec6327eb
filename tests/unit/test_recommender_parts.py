"""The parts of `OnlineRecommender`, each against its own contract: users (`UserHistories`),
partitions (`Partitions`), the served model (`ServedModel`), ranking (`Ranker`), and the
worker's batch undo log (`consumers.undo.BatchUndo`)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from consumers.undo import BatchUndo
from models import covisit
from models.catalog import ItemIndex
from models.foldin import ItemFactors
from models.partition import Partitions
from models.recommender import FoldInConfig, OnlineRecommender
from models.served import ServedModel
from models.users import UserHistories
from tests.unit.test_recommender import IDS, config, events, factors

# -- users ------------------------------------------------------------------------------------

USER_STORES = {"in memory": lambda cfg: UserHistories(cfg)}
"""Every implementation of the `UserHistories` contract runs the tests below."""


@pytest.mark.parametrize("make", USER_STORES.values(), ids=list(USER_STORES))
def test_users_are_made_on_first_use_and_remember_their_partition(make) -> None:
    users = make(FoldInConfig(history_size=4))
    assert users.get("u1") is None and "u1" not in users and len(users) == 0
    assert users.partition_of("u1") == 0
    h = users.get_or_create("u1", 5)
    assert users.get_or_create("u1", 5) is h and h.max_events == 4
    assert "u1" in users and len(users) == 1 and users.partition_of("u1") == 5
    assert list(users.users()) == ["u1"]
    users.drop("u1")
    assert users.get("u1") is None and users.partition_of("u1") == 0 and len(users) == 0


@pytest.mark.parametrize("make", USER_STORES.values(), ids=list(USER_STORES))
def test_a_users_state_restores_elsewhere_by_item_id(make) -> None:
    users = make(FoldInConfig())
    h = users.get_or_create("u1", 2)
    for i, w in enumerate([1.0, -1.0, 0.5]):
        h.add(i, w, t=float(i), session_id="s1")
    state = users.state("u1", ["a", "b", "c"])
    assert users.state("nobody", ["a"]) is None
    other, index = make(FoldInConfig()), {"c": 0, "b": 1, "a": 2}  # another process's indices
    other.restore("u1", state, index.__getitem__, partition=2)
    assert other.partition_of("u1") == 2
    assert other.state("u1", ["c", "b", "a"]) == state


# -- partitions -------------------------------------------------------------------------------


def test_partitions_are_made_once_and_dropped() -> None:
    parts = Partitions(FoldInConfig(trending_adaptive=False, trending_half_life_seconds=10.0))
    first = parts.get(3)
    assert parts.get(3) is first and list(parts.states()) == [first]
    assert first.trending.half_life_seconds == 10.0
    ladder = Partitions(FoldInConfig(trending_half_lives=(10.0, 20.0))).get(0).trending
    assert ladder.half_lives == (10.0, 20.0)
    fresh = parts.fresh()
    assert fresh is not first and list(parts.states()) == [first]  # not registered
    parts.put(3, fresh)
    assert parts.get(3) is fresh
    parts.drop(3)
    assert list(parts.states()) == []


def test_a_saved_partition_reverts_to_what_it_was() -> None:
    rec = OnlineRecommender(config(), factors())
    for ev in events(50, 5, seed=1):
        rec.learn_event(ev, partition=1)
    before = rec.partition_changes(1)
    batch = events(20, 5, seed=2)
    undo = rec.partitions.get(1).save(rec.catalog.index(ev.item_id) for ev in batch)
    for ev in batch:
        rec.learn_event(ev, partition=1)
    rec.partitions.get(1).revert(undo)
    rec.partition(1).changed.update(rec.catalog.index(i) for i in before["items"])
    assert rec.partition_changes(1)["items"] == before["items"]


# -- the served model -------------------------------------------------------------------------


def test_no_model_serves_nothing() -> None:
    served = ServedModel(ItemIndex(), alpha=2.0, regularization=5.0)
    assert served.current is None and served.version is None and not served.in_model(0)
    served.sync()  # nothing to size


def test_a_version_prepared_on_another_thread_places_items_indexed_meanwhile() -> None:
    catalog = ItemIndex(["a"])
    served = ServedModel(catalog, alpha=2.0, regularization=5.0)
    f = ItemFactors(["a", "b", "c"], np.eye(3, dtype=np.float32), version=2)
    box = []
    thread = threading.Thread(target=lambda: box.append(served.prepare(f)))
    thread.start()
    thread.join()
    catalog.index("c")  # learnt between the layout and the swap
    m = served.swap(box[0])
    assert served.version == 2 and m is served.current
    for item in "abc":
        i = catalog.get(item)
        assert served.in_model(i)
        assert np.array_equal(m.Y[i], f.Y[f.item_ids.index(item)])


def test_never_recommended_follows_the_catalog_and_the_vectors() -> None:
    catalog = ItemIndex(["a", "b"])
    served = ServedModel(catalog, alpha=2.0, regularization=5.0)
    served.swap(ItemFactors(["a", "b"], np.eye(2, dtype=np.float32), version=1))
    assert served.never_recommended().tolist() == []
    catalog.set_item("b", False)
    catalog.index("new")  # no vector: never recommended either
    served.sync()
    assert served.never_recommended().tolist() == [1, 2]


def test_an_item_outside_the_model_gets_its_categories_vector_at_sync() -> None:
    catalog = ItemIndex()
    served = ServedModel(catalog, alpha=2.0, regularization=5.0)
    for item, cats in (("a", ["x"]), ("b", ["x"])):
        catalog.set_item(item, True, cats)
    served.swap(ItemFactors(["a", "b"], np.eye(2, dtype=np.float32), version=1))
    new = catalog.set_item("c", True, ["x"])
    served.item_changed(new, categorized=True)
    served.sync()
    assert not served.in_model(new)  # not a model item: a vector from its categories
    assert served.current.has_vec[new] and served.never_recommended().tolist() == []


def test_an_overlay_is_cached_on_the_identity_of_the_partitions_vectors() -> None:
    catalog = ItemIndex(["a", "b", "c"])
    served = ServedModel(catalog, alpha=2.0, regularization=5.0)
    served.swap(ItemFactors(["a", "b"], np.eye(2, dtype=np.float32), version=1))
    vectors = {2: np.array([0.5, 0.5], np.float32)}
    new, V, never = served.overlay(vectors)
    assert new.tolist() == [2] and V.shape == (1, 2) and never.tolist() == []
    assert served.overlay(vectors)[1] is V  # same dict: the cached stack
    assert served.overlay({})[2].tolist() == [2]  # without it, c has no vector


# -- ranking ----------------------------------------------------------------------------------


def test_the_ranker_makes_the_recommenders_lists_from_its_plans() -> None:
    rec = OnlineRecommender(config(full_events=1), factors())
    for ev in events(80, 6, seed=3, new_items=False):
        rec.learn_event(ev)
    users = ["u0", "u1", "u2"]
    want = rec.recommend_many(users, [100.0] * 3)
    plans = rec.plans(users, [100.0] * 3)
    vecs = rec.user_vectors(plans)
    part = rec.partition(0)
    for p in plans:
        p.session = covisit.session_of(part.covisits, p.history, rec.config)
    got = rec.ranker.rank_pure_cf(plans, vecs, [part.vectors] * 3)
    assert [r.items for r in got] == [r.items for r in want]
    assert all(r.source == "collaborative" and r.model_version == 1 for r in got)


def test_without_a_model_the_ranker_serves_popularity() -> None:
    rec = OnlineRecommender(config())
    for ev in events(40, 4, seed=4, new_items=False):
        rec.learn_event(ev)
    plan = rec.plans(["u1"], [50.0])[0]
    assert rec.ranker.rank_pure_cf([plan], [None], [{}]) == [None]
    recs = rec.ranker.rank_blend(plan, None, 3, rec.partition(0), {})
    assert recs.source == "popular" and recs.model_version is None and len(recs.items) == 3
    assert set(recs.items) <= set(IDS)


# -- the worker's undo log --------------------------------------------------------------------


def test_the_undo_log_puts_back_users_partitions_and_the_workers_maps() -> None:
    rec = OnlineRecommender(config(), factors())
    history = events(60, 5, seed=5)
    for ev in history:
        rec.learn_event(ev, partition=0)
    recent = {u: {"e0": None} for u in ("u0", "u1")}
    partition_of = {"u0": 0, "u1": 0}
    users = {f"u{n}": rec.user_state(f"u{n}") for n in range(5)}
    before = rec.partition(0).to_plain(rec.catalog.ids, rec.model_version)

    undo = BatchUndo(rec, recent, partition_of)
    batch = events(30, 7, seed=6)  # u5 and u6 are new
    for ev in batch:
        undo.save_user(ev.user_id, 0)
    undo.save_partitions({0: [ev.item_id for ev in batch]})
    for ev in batch:
        rec.learn_event(ev, partition=0)
        recent.setdefault(ev.user_id, {})[ev.user_id + "x"] = None
    assert undo.revert() == (len({ev.user_id for ev in batch}), 1)

    assert {u: rec.user_state(u) for u in users} == users
    assert rec.user_state("u5") is None and rec.user_state("u6") is None
    assert recent == {"u0": {"e0": None}, "u1": {"e0": None}}
    assert partition_of == {"u0": 0, "u1": 0}
    assert rec.partition(0).to_plain(rec.catalog.ids, rec.model_version) == before
    assert undo.revert() == (0, 0)  # cleared


def test_a_recommender_keeps_its_users_where_it_is_told() -> None:
    """Per-user state lives behind the `Users` contract: another implementation can hold it,
    and is asked for a user with the time of the event about to be learned."""
    asked: list[tuple[str, int, float | None]] = []

    class Recording(UserHistories):
        def get_or_create(self, user_id, partition, t=None):
            asked.append((user_id, partition, t))
            return super().get_or_create(user_id, partition, t)

    cfg = config()
    mine = Recording(cfg)
    rec, plain = (OnlineRecommender(cfg, factors(), users=u) for u in (mine, None))
    batch = events(40, 5, seed=7)
    got = rec.process_batch(batch, [1] * len(batch))
    want = plain.process_batch(batch, [1] * len(batch))
    assert rec.users is mine and len(mine) == len({ev.user_id for ev in batch})
    assert asked == [(ev.user_id, 1, ev.event_time) for ev in batch]
    assert [r.items for _, r in got] == [r.items for _, r in want]


def test_a_ladder_of_another_length_loads_its_served_rung_into_every_rung() -> None:
    """A partition saved with one ladder, restored after the ladder changed: each rung starts
    from the counts that were served, and the choice starts afresh."""
    ids = ["a", "b", "c"]
    old = Partitions(FoldInConfig(trending_half_lives=(10.0, 1e4, math.inf))).get(0)
    for t, item in enumerate([0, 1, 1, 2, 1, 0, 1]):
        old.add_popularity(item, 1.0, float(t), newcomer=True)
    plain = old.to_plain(ids, None)
    served = old.trending.served.ranking_scores().copy()
    new = Partitions(FoldInConfig(trending_half_lives=(10.0, math.inf))).fresh()
    new.load_plain(plain, ids.index, None, lambda i: False)
    for rung in new.trending.rungs:
        assert np.allclose(rung.ranking_scores()[:3], served[:3])
    assert new.trending.newcomers == 0 and new.trending.half_life_seconds == math.inf
