"""Cold start: blend weights and rank blend, regimes of the recommender, vectors for new items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from models import coldstart
from models.catalog import ItemIndex
from models.foldin import ItemFactors
from models.recommender import FoldInConfig, OnlineRecommender


def test_cf_weight_regimes() -> None:
    assert coldstart.cf_weight(0) == 0.0
    assert coldstart.cf_weight(2, shrink=5, min_events=3) == 0.0
    assert coldstart.cf_weight(3, shrink=5, min_events=3) == pytest.approx(3 / 8)
    assert coldstart.cf_weight(19, shrink=5, full_events=20) == pytest.approx(19 / 24)
    assert coldstart.cf_weight(20, shrink=5, full_events=20) == 1.0
    assert coldstart.cf_weight(1000, shrink=5, full_events=None) < 1.0


def test_list_weights_and_dominant_source() -> None:
    assert coldstart.list_weights(0.0, False) == ((0.0, 0.0, 1.0), "popular")
    assert coldstart.list_weights(0.0, True, 0.5) == ((0.0, 0.5, 0.5), "content")
    assert coldstart.list_weights(0.5, False)[1] == "collaborative"
    assert coldstart.list_weights(0.3, True, 0.5)[1] == "content"


def brute_blend(scores, weights, k, depth, excluded):
    total: dict[int, float] = {}
    for s, w in zip(scores, weights, strict=True):
        if w <= 0:
            continue
        ranked = sorted((i for i in range(len(s)) if i not in excluded and s[i] > -np.inf),
                        key=lambda i: (-s[i], i))[:depth]
        for r, i in enumerate(ranked):
            total[i] = total.get(i, 0.0) + w * (depth - r) / depth
    return sorted(total, key=lambda i: (-total[i], i))[:k], total


def test_rank_blend_equals_brute_force_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(5, 300))
        scores = [rng.integers(0, 5, n).astype(float), rng.normal(size=n),
                  np.where(rng.random(n) < 0.5, -np.inf, rng.random(n))]
        weights = list(rng.dirichlet([1, 1, 1]))
        weights[int(rng.integers(3))] *= int(rng.integers(2))  # sometimes a list is off
        excluded = set(rng.choice(n, n // 5, replace=False).tolist())
        k, depth = int(rng.integers(1, 30)), int(rng.integers(1, 60))
        idx, val = coldstart.rank_blend(scores, weights, k, depth, np.array(sorted(excluded)))
        expected, total = brute_blend(scores, weights, k, depth, excluded)
        assert idx.tolist() == expected
        assert val.tolist() == pytest.approx([total[i] for i in expected])


def test_item_vector_from_users_equals_implicit_recalculate_item() -> None:
    m = sp.random(60, 30, density=0.2, random_state=2, format="csr", dtype=np.float32)
    m.data = (m.data * 2 + 0.5).astype(np.float32)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=5, iterations=3, regularization=0.1, alpha=2.0,
                                        random_state=0, dtype=np.float64, num_threads=1)
        model.fit(m, show_progress=False)
    f = ItemFactors.from_implicit(model, [str(i) for i in range(30)], version=1)
    rng = np.random.default_rng(3)
    users = rng.choice(60, 7, replace=False)
    w = rng.normal(0.5, 1.0, 7)
    w[0] = 1.0
    col = sp.csr_matrix((w, (np.zeros(7, int), users)), shape=(1, 60))
    ref = model.recalculate_item(0, col)
    got = coldstart.item_vector_from_users(model.user_factors[users], w, f.XtX, 2.0, 0.1)
    assert got is not None
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-5


def test_item_vector_without_gramian_is_a_ridge_on_its_users() -> None:
    X = np.array([[1.0, 0.0], [0.0, 2.0]])
    v = coldstart.item_vector_from_users(X, np.array([1.0, 1.0]), None, alpha=1.0,
                                         regularization=0.5)
    assert v is not None and v.tolist() == pytest.approx([1 / 1.5, 2 / 4.5])


def test_item_vector_from_categories_is_the_mean_of_model_items() -> None:
    cat = ItemIndex(["a", "b", "c", "new"])
    for item_id, cats in [("a", ["x"]), ("b", ["x", "y"]), ("c", ["z"]), ("new", ["x"])]:
        cat.set_item(item_id, categories=cats)
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [9.0, 9.0]], dtype=np.float32)
    in_model = np.array([True, True, True, False])
    v = coldstart.item_vector_from_categories(["x", "y"], cat, Y, in_model)
    assert v is not None and v.tolist() == [0.5, 0.5]  # "new" is not a model item
    assert coldstart.item_vector_from_categories(["w"], cat, Y, in_model) is None
    assert coldstart.item_vector_from_categories([], cat, Y, in_model) is None


# -- the recommender's regimes, on two clusters of items: "a*" along x, "b*" along y

IDS = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)]


def clusters(with_xtx: bool = False) -> ItemFactors:
    rng = np.random.default_rng(0)
    Y = np.zeros((20, 2), dtype=np.float32)
    Y[:10, 0], Y[10:, 1] = 1.0, 1.0
    Y += rng.uniform(0, 0.1, Y.shape).astype(np.float32)
    return ItemFactors(IDS, Y, version=1, XtX=np.eye(2) * 5.0 if with_xtx else None)


def world(factors: ItemFactors | None, **config: object) -> OnlineRecommender:
    cfg = FoldInConfig(alpha=10.0, regularization=0.1, k=5, shrink=5.0, min_events=1,
                       full_events=4, decay="none", **config)  # type: ignore[arg-type]
    rec = OnlineRecommender(cfg, factors)
    for n, item in enumerate(["b0"] * 5 + ["b1"] * 4 + ["b2"] * 3):  # b* are popular
        rec.learn(f"crowd{n}", item, "view", t=float(n))
    return rec


def test_no_history_gets_popular() -> None:
    r = world(clusters()).recommend("stranger", now=20.0)
    assert r.source == "popular" and r.items[:3] == ["b0", "b1", "b2"]
    assert r.scores == sorted(r.scores, reverse=True) and r.model_version == 1


def test_no_model_gets_popular_even_with_history() -> None:
    rec = world(None)
    for item in ["a1", "a2", "a3", "a4", "a5"]:
        rec.learn("u", item, "view", t=30.0)
    r = rec.recommend("u", now=30.0)
    assert r.source == "popular" and r.model_version is None
    assert r.items[:3] == ["b0", "b1", "b2"]


def test_few_events_blend_cf_into_popularity() -> None:
    rec = world(clusters())
    rec.learn("u", "a1", "click", t=30.0)
    r = rec.recommend("u", now=30.0)  # w_cf = 1/6: mostly popular, some of the user's cluster
    assert r.source == "popular"
    assert {"b0", "b1"} <= set(r.items) and any(i.startswith("a") for i in r.items)
    assert all(0.0 < s <= 1.0 for s in r.scores)


def test_enough_events_are_collaborative() -> None:
    rec = world(clusters())
    for item in ["a1", "a2", "a3", "a4"]:
        rec.learn("u", item, "click", t=30.0)
    r = rec.recommend("u", now=30.0)
    assert r.source == "collaborative"
    assert all(i.startswith("a") for i in r.items)
    rec.learn("u", "a5", "purchase", t=31.0)
    assert "a5" not in rec.recommend("u", now=31.0).items  # a purchase is


def test_history_in_categories_gives_content() -> None:
    rec = world(None)
    for item_id in ["a1", "a2", "a3"]:
        rec.set_item_active(item_id, True, ["shoes"])
    rec.learn("u", "a1", "purchase", t=30.0)
    r = rec.recommend("u", now=30.0)
    assert r.source == "content"
    assert set(r.items[:2]) == {"a2", "a3"}


@pytest.mark.parametrize("with_xtx", [False, True])
def test_new_item_gets_a_vector_from_its_users_and_is_recommended(with_xtx: bool) -> None:
    rec = world(clusters(with_xtx))
    for u in range(3):  # users of cluster a adopt a new item
        for item in ["a1", "a2", "a3", "a4"]:
            rec.learn(f"fan{u}", item, "click", t=40.0)
        rec.learn(f"fan{u}", "fresh", "purchase", t=41.0)
        rec.recommend(f"fan{u}", now=41.0)
    for item in ["a5", "a6", "a7", "a8"]:
        rec.learn("me", item, "click", t=50.0)
    r = rec.recommend("me", now=50.0)
    assert r.source == "collaborative" and "fresh" in r.items
    assert not any(i.startswith("b") for i in r.items)


def test_new_catalog_item_gets_a_vector_from_its_categories() -> None:
    rec = world(clusters())
    for n in range(10):
        rec.set_item_active(f"a{n}", True, ["garden"])
        rec.set_item_active(f"b{n}", True, ["kitchen"])
    rec.set_item_active("spade", True, ["garden"])
    rec.set_item_active("whisk", True, ["kitchen"])
    for item in ["a1", "a2", "a3", "a4"]:
        rec.learn("me", item, "click", t=50.0)
    r = rec.recommend("me", now=50.0, k=12)
    assert "spade" in r.items and "whisk" not in r.items
