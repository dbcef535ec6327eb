"""Prequential quality from the stream: windows, per-user hit rate, dedup, list statistics."""

from __future__ import annotations

import math

import pytest

from models.online_quality import OnlineQuality, gini


def test_nothing_seen_gives_nan_not_zero():
    q = OnlineQuality(k=5)
    assert all(math.isnan(v) for k, v in q.summary().items() if k != "gini")
    assert q.judge("u", "i") is None and q.unjudged == 1


def test_events_are_judged_against_the_list_in_force():
    q = OnlineQuality(k=3)
    q.record("u1", ["a", "b", "c", "d"])  # longer than k: cut to k
    assert q.judge("u1", "d") == -1
    assert q.judge("u1", "c") == 2
    q.record("u1", ["d"])
    assert q.judge("u1", "d") == 0
    assert (q.judged, q.hits) == (3, 2)
    assert q.ndcg == pytest.approx((0 + 1 / math.log2(4) + 1) / 3)


def test_an_item_counts_once_per_list():
    q = OnlineQuality(k=3)
    q.record("u1", ["a", "b"])
    assert q.judge("u1", "a") == 0
    assert q.judge("u1", "a") is None  # the same session's click after the view
    q.record("u1", ["a", "b"])
    assert q.judge("u1", "a") == 0  # a new list judges it afresh
    assert q.judged == 2 and q.unjudged == 1


def test_window_slides_and_hit_rate_weighs_users_equally():
    q = OnlineQuality(k=2, window=4)
    q.record("heavy", ["x"])
    q.record("light", ["y"])
    for i in range(3):
        q.judge("heavy", f"miss{i}")
    q.judge("light", "y")
    assert q.recall == pytest.approx(1 / 4)
    assert q.hit_rate == pytest.approx((0 + 1) / 2)
    q.record("light", ["y"])
    q.judge("light", "y")  # pushes heavy's first miss out of the window
    assert q.recall == pytest.approx(2 / 4)
    assert q.hit_rate == pytest.approx((0 + 1) / 2)
    q.record("light", ["z"])
    q.judge("light", "y")
    q.judge("light", "w")
    assert q.recall == pytest.approx(2 / 4) and q.hit_rate == pytest.approx(0.5)


def test_list_statistics_over_the_list_window():
    cats = {"a": ["c1"], "b": ["c1", "c2"], "c": ["c3"]}
    q = OnlineQuality(k=3, list_window=2, catalog_size=10, categories=cats)
    q.record("u1", ["a", "b"], source="collaborative")
    q.record("u2", ["c"], source="popular")
    assert q.coverage == pytest.approx(3 / 10)
    assert q.diversity == pytest.approx((2 + 1) / 2)
    assert q.cold_start_share == pytest.approx(0.5)
    q.record("u3", ["c"], source="popular")  # u1's list leaves the window
    assert q.coverage == pytest.approx(1 / 10)
    assert q.cold_start_share == pytest.approx(1.0) and q.diversity == pytest.approx(1.0)


def test_categories_may_be_a_function():
    q = OnlineQuality(k=2, categories=lambda item: [item[0]] if item != "x" else None)
    q.record("u", ["ab", "ac", "x"])
    assert q.diversity == 1.0


def test_gini():
    assert gini([5, 5, 5]) == pytest.approx(0.0)
    assert gini([1], n=100) == pytest.approx(0.99)
    assert 0.0 < gini([1, 2, 3, 10]) < gini([1, 1, 1, 100])


def test_users_in_force_are_bounded():
    q = OnlineQuality(k=2, max_users=2)
    for u in ("u1", "u2", "u3"):
        q.record(u, ["a"])
    assert q.judge("u1", "a") is None and q.judge("u3", "a") == 0
    q.forget("u3")
    assert q.judge("u3", "a") is None


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        OnlineQuality(k=0)
