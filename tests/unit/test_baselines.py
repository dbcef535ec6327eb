from __future__ import annotations

import math

import numpy as np
import pytest

from models.baselines import (
    Events,
    OryxRank1,
    Popularity,
    RiverMF,
    Row,
    StaticALS,
    Trending,
    oryx_target,
)
from models.foldin_config import FoldInConfig
from refold.evaluation.contenders import REFOLD_FAMILY, Names, build, params_of

N_USERS, N_ITEMS, K = 30, 40, 5


def _events(seed: int = 0, n: int = 600) -> Events:
    """Two taste groups: even users like even items, odd users odd items."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, N_USERS, n)
    items = 2 * rng.integers(0, N_ITEMS // 2, n) + users % 2
    values = rng.integers(1, 6, n).astype(float)
    return Events(users, items, np.ones(n), np.arange(n) * 60.0, N_USERS, N_ITEMS, values)


def refold_model(name: str):
    """refold's own `OnlineRecommender` (`refold`, `foldin_only`, `oracle`) as the evaluation
    runs it, on this suite's tiny world: 4 factors, refits every 50 events."""
    names = Names([f"u{u}" for u in range(N_USERS)], [f"i{i}" for i in range(N_ITEMS)],
                  [[f"g{i % 3}"] for i in range(N_ITEMS)])
    params = {**params_of(name), "factors": 4, "iterations": 3, "warm_iterations": 2}
    return lambda: build(name, params, names, FoldInConfig(k=K), refit_every=50, seed=3)


FACTORIES = {
    "popularity": lambda: Popularity(),
    "trending": lambda: Trending(half_life=3600.0),
    "river_funkmf": lambda: RiverMF(n_factors=4, lr=0.05, target="implicit", seed=3),
    "river_biasedmf": lambda: RiverMF(biased=True, n_factors=4, lr=0.01, seed=3),
    "static_als": lambda: StaticALS(factors=4, iterations=3, seed=3),
    "oryx_rank1": lambda: OryxRank1(factors=4, iterations=3, seed=3),
    **{name: refold_model(name) for name in REFOLD_FAMILY},
}


def _run(factory, ev: Events, split: int = 400) -> list[list[int]]:
    """Fit on the head, then recommend-and-learn the tail; every list, as lists."""
    model = factory()
    model.fit(ev[:split])
    seen: dict[int, set[int]] = {}
    for u, i in zip(ev.users[:split].tolist(), ev.items[:split].tolist(), strict=True):
        seen.setdefault(u, set()).add(i)
    out = []
    for row in ev[split:].rows():
        exclude = np.array(sorted(seen.get(row.user, ())), dtype=np.int64)
        recs = model.recommend(row.user, K, exclude, row.t)
        out.append(recs.tolist())
        model.learn(row)
        seen.setdefault(row.user, set()).add(row.item)
    return out


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_contract_k_distinct_unseen_items(name):
    ev = _events()
    model = FACTORIES[name]()
    model.fit(ev[:400])
    for user in (0, 1, 7):
        exclude = np.unique(ev.items[:400][ev.users[:400] == user])
        recs = model.recommend(user, K, exclude, 1e9)
        assert len(recs) == K and len(set(recs.tolist())) == K
        assert not set(recs.tolist()) & set(exclude.tolist())
        assert all(0 <= i < N_ITEMS for i in recs.tolist())


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_deterministic_for_a_seed(name):
    ev = _events(n=450)
    assert _run(FACTORIES[name], ev) == _run(FACTORIES[name], ev)


def test_learning_changes_popularity_and_trending():
    ev = Events(np.array([0]), np.array([0]), np.ones(1), np.zeros(1), 2, 3)
    pop, tr = Popularity(), Trending(half_life=10.0)
    pop.fit(ev)
    tr.fit(ev)
    for model in (pop, tr):
        for _ in range(2):
            model.learn(Row(user=1, item=2, weight=1.0, t=100.0))
    assert pop.recommend(1, 1, np.array([], dtype=np.int64)).tolist() == [2]
    # one old event at t=0 against one fresh event at t=100: trending prefers the fresh one
    tr2 = Trending(half_life=10.0)
    tr2.fit(Events(np.array([0, 0]), np.array([0, 0]), np.ones(2), np.zeros(2), 1, 3))
    tr2.learn(Row(user=0, item=1, weight=1.0, t=100.0))
    assert tr2.recommend(0, 1, np.array([], dtype=np.int64)).tolist() == [1]


def test_negative_events_do_not_count_as_popular():
    pop = Popularity()
    pop.fit(Events(np.array([0, 1]), np.array([1, 0]), np.array([-1.0, 1.0]), np.zeros(2), 2, 2))
    assert pop.recommend(0, 2, np.array([], dtype=np.int64)).tolist() == [0, 1]


def test_river_catalog_ranking_matches_predict_one():
    ev = _events()
    for biased in (False, True):
        m = RiverMF(biased=biased, n_factors=4, lr=0.02, seed=1)
        m.fit(ev[:300])
        user = 3
        scores = [m.model.predict_one(user, i) for i in range(N_ITEMS)]
        expected = sorted(range(N_ITEMS), key=lambda i: (-scores[i], i))[:K]
        assert m.recommend(user, K, np.array([], dtype=np.int64)).tolist() == expected


def test_static_als_gives_unseen_users_popularity():
    ev = _events()
    head = ev[:100]
    new_user = next(u for u in range(N_USERS) if u not in set(head.users.tolist()))
    m, pop = StaticALS(factors=4, iterations=3), Popularity()
    m.fit(head)
    pop.fit(head)
    none = np.array([], dtype=np.int64)
    assert m.recommend(new_user, K, none).tolist() == pop.recommend(new_user, K, none).tolist()


def test_oryx_target_follows_oryx():
    assert oryx_target(1.0, 0.0) == pytest.approx(0.5)
    assert oryx_target(3.0, 0.2) == pytest.approx(0.2 + 0.75 * 0.8)
    assert math.isnan(oryx_target(1.0, 1.5))  # already past 1: no update
    assert oryx_target(-1.0, 0.8) == pytest.approx(0.4)
    assert math.isnan(oryx_target(-1.0, -0.1))


def test_oryx_update_moves_the_pair_toward_its_target():
    ev = _events()
    m = OryxRank1(factors=4, iterations=5, regularization=0.01)
    m.fit(ev[:400])
    u, i = 0, 1  # an even user and an odd item: predicted low
    before = float(m.X[u] @ m.Y[i])
    m.learn(Row(user=u, item=i, weight=1.0, t=0.0))
    after = float(m.X[u] @ m.Y[i])
    # Oryx's step is x_u += (YᵀY)⁻¹ y_i δ: it moves toward the target by the item's leverage
    assert before < 0.3 and before + 0.05 < after < oryx_target(1.0, before)


def test_a_diverging_river_model_stops_and_ranks_nothing():
    m = RiverMF(n_factors=4, lr=10.0, target="rating", seed=0)
    with np.errstate(all="raise"):  # river's overflow must not escape as a warning or error
        m.fit(_events())
    assert m.diverged
    assert m.recommend(0, K, np.array([], dtype=np.int64)).tolist() == []
