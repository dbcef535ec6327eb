"""Trending: decay math, renormalisation, all-time mode, batch updates, growth, top-K."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from models.topk import topk
from models.trending import RENORM_EXPONENT, Trending


def direct(events: list[tuple[int, float, float]], n: int, now: float, half_life: float):
    out = np.zeros(n)
    for item, w, t in events:
        out[item] += w * 2.0 ** (-(now - t) / half_life)
    return out


def test_score_halves_every_half_life() -> None:
    tr = Trending(half_life_seconds=60.0)
    tr.update(0, 4.0, t=1000.0)
    assert tr.scores(1000.0).tolist() == pytest.approx([4.0])
    assert tr.scores(1060.0).tolist() == pytest.approx([2.0])
    assert tr.scores(1180.0).tolist() == pytest.approx([0.5])


def test_matches_the_direct_sum_with_out_of_order_events() -> None:
    rng = np.random.default_rng(0)
    events = [(int(rng.integers(5)), float(rng.random()), float(t))
              for t in rng.uniform(0, 500, 200)]
    tr = Trending(half_life_seconds=100.0)
    for e in events:
        tr.update(*e)
    assert np.allclose(tr.scores(600.0), direct(events, 5, 600.0, 100.0), rtol=1e-12)


def test_renormalises_instead_of_overflowing() -> None:
    tr = Trending(half_life_seconds=1.0)
    span = 40 * RENORM_EXPONENT  # e^2000 would overflow float64 without renormalising
    events = [(0, 1.0, 0.0), (1, 1.0, span - 3.0), (1, 1.0, span - 1.0), (2, 2.0, span)]
    for e in events:
        tr.update(*e)
    assert tr.t_ref is not None and tr.t_ref > 0
    got = tr.scores(span)
    assert np.isfinite(got).all()
    assert got.tolist() == pytest.approx([0.0, 0.125 + 0.5, 2.0])


def test_infinite_half_life_is_all_time_popularity() -> None:
    tr = Trending(half_life_seconds=math.inf)
    for item, t in [(0, 0.0), (1, 1e9), (1, 5.0), (2, 2e9)]:
        tr.update(item, 1.0, t)
    assert tr.scores(1e12).tolist() == [1.0, 2.0, 1.0]
    assert tr.top(2)[0].tolist() == [1, 0]


def test_update_many_equals_sequential_updates() -> None:
    rng = np.random.default_rng(1)
    items = rng.integers(0, 3000, 500)
    w = rng.random(500)
    t = np.sort(rng.uniform(0, 10_000, 500))
    a, b = Trending(600.0, capacity=4), Trending(600.0, capacity=4)
    for e in zip(items.tolist(), w.tolist(), t.tolist(), strict=True):
        a.update(*e)
    b.update_many(items, w, t)
    assert len(a) == len(b) == int(items.max()) + 1
    assert np.allclose(a.scores(10_000.0), b.scores(10_000.0), rtol=1e-9, atol=1e-300)
    # bit for bit, across rescales too (each run's compiled additions are `update`'s)
    c, d = Trending(60.0, capacity=4), Trending(60.0, capacity=4)
    t = np.sort(rng.uniform(0, 200_000, 500))  # ~6 rescales
    for e in zip(items.tolist(), w.tolist(), t.tolist(), strict=True):
        c.update(*e)
    for run in np.array_split(np.arange(500), 7):
        d.update_many(items[run], w[run], t[run])
    assert c.shift == d.shift > 0 and c.t_ref == d.t_ref
    assert c.ranking_scores().tolist() == d.ranking_scores().tolist()


def test_grows_for_new_items_and_top_excludes() -> None:
    tr = Trending(3600.0, capacity=2)
    tr.update(5000, 1.0, t=0.0)
    tr.update(3, 3.0, t=0.0)
    tr.update(7, 2.0, t=0.0)
    assert len(tr) == 5001 and tr.scores(0.0)[5000] == 1.0
    idx, scores = tr.top(2, exclude=[3], now=3600.0)
    assert idx.tolist() == [7, 5000] and scores.tolist() == pytest.approx([1.0, 0.5])
    tr.resize(6000)
    assert len(tr) == 6000 and tr.scores(0.0)[5999] == 0.0


def test_ranking_does_not_depend_on_now() -> None:
    tr = Trending(10.0)
    for item, t in [(0, 0.0), (1, 5.0), (1, 30.0), (2, 31.0)]:
        tr.update(item, 1.0, t)
    for now in (31.0, 100.0, 1000.0):
        s = tr.scores(now)
        assert np.argsort(-s, kind="stable").tolist() == tr.top(3)[0].tolist()


def snapshot(tr: Trending) -> tuple:
    return (tr.ranking_scores().tolist(), len(tr), tr.t_ref, tr.shift)


def test_revert_undoes_updates_growth_a_rescale_and_forgetting() -> None:
    """A batch's undo is the journal of what it changed (not a copy of every item's count);
    reverting gives back exactly the state before, and the stream then goes on as if the
    batch had not happened."""
    tr, twin = Trending(half_life_seconds=1.0, capacity=4), Trending(half_life_seconds=1.0)
    for t in (tr, twin):
        t.update_many(np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0]))
    before = snapshot(tr)
    undo = tr.journal()
    tr.update(1, 5.0, t=3.0)
    tr.update_many(np.array([7, 2, 2]), np.array([1.0, 1.0, 1.0]), np.array([3.0, 4.0, 5.0]))
    tr.update(9, 1.0, t=3.0 + 2 * RENORM_EXPONENT)  # grows past the capacity, rescales
    tr.forget(0)
    assert snapshot(tr) != before and tr.shift > 0
    tr.revert(undo)
    assert snapshot(tr) == before
    for t in (tr, twin):  # and nothing of the batch is left behind the old length
        t.update_many(np.array([5]), np.array([1.0]), np.array([3.0]))
    assert snapshot(tr) == snapshot(twin)


def test_a_journal_notes_only_what_changes() -> None:
    tr = Trending(half_life_seconds=60.0, capacity=1_000_000)
    tr.update_many(np.arange(1_000_000), np.ones(1_000_000), np.zeros(1_000_000))
    undo = tr.journal()
    tr.update_many(np.array([3, 5]), np.array([1.0, 1.0]), np.array([1.0, 2.0]))
    tr.update(8, 1.0, t=3.0)
    assert sum(np.size(values) for _, values in undo.before) == 3


def test_every_item_with_a_score_is_counted() -> None:
    """`counted` holds every item whose score is not 0, through updates, growth, loading,
    reverts and copies; the top-K it speeds up is the top-K over every item."""
    rng = np.random.default_rng(4)
    tr = Trending(half_life_seconds=5.0, capacity=8)

    def check(t: Trending) -> None:
        counted = t.counted()
        assert np.all(np.diff(counted) > 0)
        assert set(np.flatnonzero(t.ranking_scores()).tolist()) <= set(counted.tolist())
        for k in (1, 3, 50):
            full = topk(t.ranking_scores(), k, np.array([1, 4]))
            assert t.top(k, np.array([1, 4]))[0].tolist() == full[0].tolist()

    for step in range(60):
        items = rng.integers(0, 40 + step, int(rng.integers(1, 6)))
        undo = tr.journal() if step % 7 == 0 else None
        if step % 2:
            tr.update_many(items, np.ones(len(items)), np.full(len(items), float(step)))
        else:
            tr.update(int(items[0]), float(rng.choice([1.0, -0.5])), float(step))
        if step % 11 == 0:
            tr.forget(int(items[0]))
        if undo is not None and step % 2:
            tr.revert(undo)
        check(tr)
    twin = copy.deepcopy(tr)
    twin.update(500, 1.0, 60.0)
    assert 500 in twin.counted() and 500 not in tr.counted()
    loaded = Trending(half_life_seconds=5.0)
    loaded.load(tr.t_ref, np.array([3, 90]), np.array([2.0, 1.0]), shift=tr.shift)
    assert loaded.counted().tolist() == [3, 90]
    check(loaded)


def test_an_item_new_twice_in_one_run_is_counted_once() -> None:
    """A run that brings a new item more than once marks it once: `counted` stays a set."""
    tr = Trending(half_life_seconds=5.0, capacity=4)
    tr.update_many(np.array([2, 0]), np.ones(2), np.zeros(2))
    assert tr.counted().tolist() == [0, 2]
    tr.update_many(np.array([7, 1, 7, 2, 1]), np.ones(5), np.ones(5))
    tr.update(9, 1.0, t=2.0)
    assert tr.counted().tolist() == [0, 1, 2, 7, 9]
