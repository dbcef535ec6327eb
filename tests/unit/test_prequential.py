from __future__ import annotations

import math

import numpy as np
import pytest

from models.prequential import PrequentialMetrics


def _metrics(**kw) -> PrequentialMetrics:
    return PrequentialMetrics(k=kw.pop("k", 3), n_items=kw.pop("n_items", 6), **kw)


def test_recall_ndcg_and_per_user_hit_rate():
    m = _metrics()
    m.score(0, np.array([5, 4, 3]), target=5, prior=10)  # hit at rank 0: gain 1
    m.score(0, np.array([5, 4, 3]), target=3, prior=11)  # hit at rank 2: gain 1/log2(4) = 0.5
    m.score(0, np.array([5, 4, 3]), target=0, prior=12)  # miss
    m.score(1, np.array([1, 2, 3]), target=0, prior=0)  # miss
    s = m.summary()
    assert s["recall_at_10"] == pytest.approx(2 / 4)
    assert s["ndcg_at_10"] == pytest.approx((1 + 0.5) / 4)
    # per user first: user 0 hits 2/3, user 1 hits 0/1
    assert s["hit_rate_at_10"] == pytest.approx((2 / 3 + 0) / 2)
    assert s["events"] == 4


def test_only_the_first_k_items_count():
    m = _metrics(k=2)
    m.score(0, np.array([1, 2, 3]), target=3, prior=0)
    assert m.summary()["recall_at_10"] == 0.0


def test_coverage_and_diversity():
    cats = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [0, 0]], dtype=bool)
    m = _metrics(categories=cats)
    m.score(0, np.array([0, 1]), target=5, prior=0)  # one category
    m.score(0, np.array([0, 2, 4]), target=5, prior=0)  # two categories
    s = m.summary()
    assert s["coverage"] == pytest.approx(4 / 6)
    assert s["diversity"] == pytest.approx(1.5)
    assert math.isnan(_metrics().summary()["diversity"])


def test_novelty_is_self_information_before_the_event():
    m = _metrics()
    for user in range(3):
        m.learned(user, 0)  # item 0: 3 of 3 users
    m.learned(0, 1)  # item 1: 1 of 3 users
    m.learned(0, 1)  # a repeat does not count twice
    m.score(0, np.array([0, 1]), target=2, prior=1)
    expected = (-math.log2(4 / 4) - math.log2(2 / 4)) / 2
    assert m.summary()["novelty"] == pytest.approx(expected)


def test_cold_recall_uses_users_with_one_to_four_prior_events():
    m = _metrics()
    m.score(0, np.array([1]), target=1, prior=0)  # new user: not cold
    m.score(1, np.array([1]), target=1, prior=1)
    m.score(2, np.array([1]), target=2, prior=4)
    m.score(3, np.array([1]), target=2, prior=5)  # warm
    s = m.summary()
    assert s["cold_recall_at_10"] == pytest.approx(0.5)
    assert s["cold_events"] == 2
    curve = {c["prior"]: c for c in m.cold_curve()}
    assert curve["0"]["recall"] == 1.0 and curve["5-9"]["events"] == 1
    assert math.isnan(curve["100+"]["recall"])


def test_windowed_recall():
    m = _metrics(window=4)
    for j, hit in enumerate([1, 1, 0, 0, 0, 0, 1, 1]):
        m.score(0, np.array([7 % 6]), target=1 if hit else 2, prior=j, position=100 + j)
    pos, rec = m.windowed(every=2)
    assert pos.tolist() == [103, 105, 107]
    assert rec.tolist() == [0.5, 0.0, 0.5]


def test_empty_summary_is_nan_not_an_error():
    s = _metrics().summary()
    assert math.isnan(s["recall_at_10"]) and s["events"] == 0 and s["coverage"] == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError):
        PrequentialMetrics(k=0, n_items=3)
    with pytest.raises(ValueError):
        PrequentialMetrics(k=1, n_items=3, categories=np.zeros((2, 1), dtype=bool))
