"""Adaptive trending: the prequential choice of a half-life, its state, and new users' first lists
on a slow log of years and a fast one of hours against the popularity baselines."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.adaptive_trending import AdaptiveTrending
from producers.synth_pace import PaceConfig, fast_log, slow_log
from refold.bench import pace
from refold.bench.pace import BASELINES

DAY = 86400.0
ML100K = Path(os.environ.get(
    "REFOLD_ML100K", Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ml-100k"))


def test_serves_all_time_popularity_until_the_first_refresh() -> None:
    tr = AdaptiveTrending(half_lives=(60.0, math.inf), k=2, refresh_events=10)
    for t, item in enumerate([0, 0, 0, 1]):
        tr.update(item, 1.0, t=1000.0 * t)
    assert tr.half_life_seconds == math.inf
    assert tr.top(2)[0].tolist() == [0, 1]


def test_switches_to_the_half_life_whose_top_list_the_events_hit() -> None:
    """Hits rotate every 50 events: only the short half-life's list keeps up."""
    tr = AdaptiveTrending(half_lives=(10.0, math.inf), k=1, refresh_events=5)
    t = 0.0
    for phase in range(8):
        for _ in range(50):
            t += 1.0
            tr.update(phase, 1.0, t)
    assert tr.half_life_seconds == 10.0
    assert tr.hits[0] > 2 * tr.hits[1]
    assert tr.top(1)[0].tolist() == [7]


def test_keeps_the_long_half_life_on_a_stable_log() -> None:
    rng = np.random.default_rng(0)
    tr = AdaptiveTrending(half_lives=(60.0, math.inf), k=3, refresh_events=20)
    p = np.array([0.3, 0.25, 0.2, 0.1, 0.05, 0.04, 0.03, 0.02, 0.01])
    for t, item in enumerate(rng.choice(len(p), 3000, p=p)):
        tr.update(int(item), 1.0, t=600.0 * t)  # ten half-lives of the short rung apart
    assert tr.half_life_seconds == math.inf


def test_newcomers_events_choose_once_there_are_any() -> None:
    """Regulars' events follow a fast rotation that newcomers do not: all events would serve
    the short half-life, newcomers' events keep the long one."""
    rng = np.random.default_rng(1)
    tr = AdaptiveTrending(half_lives=(10.0, math.inf), k=1, refresh_events=5)
    t = 0.0
    for phase in range(8):
        for _ in range(50):
            t += 1.0
            newcomer = bool(rng.random() < 0.2)
            tr.update(0 if newcomer else 100 + phase, 1.0, t, newcomer=newcomer)
    assert tr.hits[0] > tr.hits[1]  # every event: the short half-life's list
    assert tr.newcomers > 0 and tr.newcomer_hits[1] > tr.newcomer_hits[0]
    assert tr.half_life_seconds == math.inf


def test_scores_are_the_served_rung() -> None:
    tr = AdaptiveTrending(half_lives=(10.0, math.inf), k=1, refresh_events=1)
    tr.update(0, 2.0, t=0.0)
    tr.update(1, 1.0, t=10.0)
    assert tr.half_life_seconds == math.inf
    assert tr.scores(10.0).tolist() == [2.0, 1.0]
    assert tr.ranking_scores().tolist() == [2.0, 1.0]
    tr.resize(4)
    assert len(tr) == 4


def test_selector_state_round_trip_continues_identically() -> None:
    rng = np.random.default_rng(3)
    events = [(int(i), float(t)) for i, t in zip(rng.integers(0, 30, 600),
                                                 np.sort(rng.uniform(0, 1e5, 600)), strict=True)]
    a = AdaptiveTrending(half_lives=(100.0, 1e4, math.inf), k=5, refresh_events=7)
    for n, (i, t) in enumerate(events[:300]):
        a.update(i, 1.0, t, newcomer=n % 3 == 0)
    b = AdaptiveTrending(half_lives=(100.0, 1e4, math.inf), k=5, refresh_events=7)
    for src, dst in zip(a.rungs, b.rungs, strict=True):
        idx = np.arange(len(src))
        dst.load(src.t_ref, idx, src.ranking_scores().copy())
    b.load_selector(a.selector_state())
    for n, (i, t) in enumerate(events[300:]):
        a.update(i, 1.0, t, newcomer=n % 3 == 0)
        b.update(i, 1.0, t, newcomer=n % 3 == 0)
    assert a.selector_state() == b.selector_state()
    assert a.newcomers > 0 and a.selector_state()["newcomer_hits"] != [0.0] * 3
    assert np.array_equal(a.ranking_scores(), b.ranking_scores())


def test_a_selector_state_without_newcomers_loads() -> None:
    """Saved before newcomers' hits were kept: every event chooses until a newcomer's."""
    tr = AdaptiveTrending(half_lives=(10.0, math.inf), k=1)
    tr.load_selector({"hits": [3.0, 1.0], "events": 5, "chosen": 0, "tops": [[1], [0]]})
    assert tr.newcomers == 0 and tr.newcomer_hits.tolist() == [0.0, 0.0]
    assert tr.half_life_seconds == 10.0


def test_rejects_bad_settings_and_states() -> None:
    with pytest.raises(ValueError, match="half_lives"):
        AdaptiveTrending(half_lives=())
    with pytest.raises(ValueError, match="half_lives"):
        AdaptiveTrending(half_lives=(0.0, 10.0))
    with pytest.raises(ValueError, match="positive"):
        AdaptiveTrending(k=0)
    tr = AdaptiveTrending(half_lives=(1.0, 2.0))
    with pytest.raises(ValueError, match="3 rungs, expected 2"):
        tr.load_selector({"hits": [0, 0, 0], "events": 0, "chosen": 0, "tops": [[], [], []]})


def recalls(config: PaceConfig) -> dict[str, Any]:
    """First-list recall of the baselines and of adaptive trending (`refold bench pace`)."""
    return pace.run(config)


@pytest.mark.slow
def test_slow_log_first_lists_are_not_worse_than_the_best_popularity_baseline() -> None:
    """Five years at ~16 events a day: a week's half-life ranks noise (the failure this
    fixes). Tastes there are stable, so all-time popularity is about the best list there is, and
    the best baseline of each seed is picked after the fact: no online choice beats it on every
    seed, but over ten seeds (~75,000 first lists, compared list by list) adaptive trending is
    within 1% of it with 95% confidence, and no seed is more than 3% below it."""
    rows = [{"log": "slow", **recalls(slow_log(seed))} for seed in range(10)]
    for r in rows:
        assert r["one week"] < 0.6 * r["all-time"], r
        assert r["adaptive"] >= 0.97 * r[r["best_baseline"]], r
    summary = pace.pooled(rows)
    assert summary["ci_low"] >= 0.99, summary


@pytest.mark.slow
@pytest.mark.skipif(not ML100K.is_dir(), reason=f"no ml-100k at {ML100K}")
def test_ml100k_first_lists_beat_every_popularity_baseline() -> None:
    """MovieLens 100K: established users rate old films, so every event hits the lists of
    long half-lives as often as a month's, while newcomers' first events do not; choosing on
    newcomers' events (not on every event: 0.87 of the best baseline) serves them better than
    any baseline."""
    from producers.movielens import load_movielens

    r = pace.run_log(load_movielens(ML100K)[0])
    best = max(r[name] for name in BASELINES)
    assert r["adaptive"] >= best, r


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_fast_log_first_lists_follow_the_hits(seed: int) -> None:
    """Six hours whose hits last ~20 minutes: every baseline is all-time popularity here."""
    r = recalls(fast_log(seed))
    best = max(r[name] for name in BASELINES)
    assert r["adaptive"] >= 1.3 * best, r


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_published_tops_equal_a_scan_of_every_item(seed: int) -> None:
    """A refresh takes each rung's top-K from its last one and the items counted since; ties
    (integer weights, the all-time rung), withdrawals and rescales must not make it differ
    from a scan of all items."""
    rng = np.random.default_rng(seed)
    ladder = (50.0, 400.0, math.inf)
    fast, full = (AdaptiveTrending(ladder, k=5, refresh_events=7) for _ in range(2))
    for n in range(3000):
        item, weight = int(rng.zipf(1.5) % 300), float(rng.integers(1, 3))
        for tr in (fast, full):
            if n % 97 == 0:
                tr.withdraw(item, 1.0, 10.0 * n)
            tr.update(item, weight, 10.0 * n)
        full.forget_tops()  # never from the last top-K
        assert fast.selector_state() == full.selector_state(), n


@pytest.mark.parametrize("cut", [1, 7, 100, 333])
def test_batched_updates_give_the_state_of_one_by_one_bit_for_bit(cut: int) -> None:
    """Runs of any length (across refreshes and rescales) leave the same accumulators, hits,
    tops and choice as updating event by event: the worker's batches cannot change the state."""
    rng = np.random.default_rng(5)
    n = 2000
    items = rng.zipf(1.5, n) % 300
    weights = rng.choice([0.5, 1.0, 3.0], n)
    times = np.cumsum(rng.exponential(600.0, n))  # ~2 weeks: the 15-minute rung rescales
    newcomers = rng.random(n) < 0.2
    a, b = AdaptiveTrending(k=10, refresh_events=50), AdaptiveTrending(k=10, refresh_events=50)
    for e in zip(items.tolist(), weights.tolist(), times.tolist(), newcomers.tolist(),
                 strict=True):
        a.update(*e)
    for lo in range(0, n, cut):
        hi = lo + cut
        b.update_many(items[lo:hi].tolist(), weights[lo:hi].tolist(), times[lo:hi].tolist(),
                      newcomers[lo:hi].tolist())
    assert a.rungs[0].shift > 0  # rescales were crossed
    assert a.selector_state() == b.selector_state()
    for ra, rb in zip(a.rungs, b.rungs, strict=True):
        assert (ra.t_ref, ra.shift) == (rb.t_ref, rb.shift)
        assert np.array_equal(ra.ranking_scores(), rb.ranking_scores())


def test_a_selector_state_saved_mid_window_continues_identically() -> None:
    """The hits of the refresh window under way are part of the state."""
    rng = np.random.default_rng(6)
    items, times = rng.integers(0, 40, 500).tolist(), np.arange(500.0).tolist()
    a = AdaptiveTrending(half_lives=(30.0, math.inf), k=3, refresh_events=40)
    for n in range(230):  # mid-window
        a.update(items[n], 1.0, times[n], newcomer=n % 4 == 0)
    b = AdaptiveTrending(half_lives=(30.0, math.inf), k=3, refresh_events=40)
    for src, dst in zip(a.rungs, b.rungs, strict=True):
        dst.load(src.t_ref, np.arange(len(src)), src.ranking_scores().copy(), src.shift)
    b.load_selector(a.selector_state())
    assert np.array_equal(a.hits, b.hits) and np.array_equal(a.newcomer_hits, b.newcomer_hits)
    for n in range(230, 500):
        for tr in (a, b):
            tr.update(items[n], 1.0, times[n], newcomer=n % 4 == 0)
    assert a.selector_state() == b.selector_state()


def test_revert_gives_back_the_counts_and_the_selector_state() -> None:
    """The undo of a batch across refreshes and a change of the served half-life: every rung's
    counts and the selector's state as before, and the same state as a twin when both go on."""
    rng = np.random.default_rng(3)

    def feed(tr: AdaptiveTrending, n: int, start: float) -> None:
        items = rng.integers(0, 40, n).tolist()
        tr.update_many(items, [1.0] * n, [start + 60.0 * j for j in range(n)],
                       rng.random(n) < 0.3)

    tr = AdaptiveTrending(half_lives=(600.0, 86400.0), k=3, refresh_events=10)
    feed(tr, 55, 0.0)
    twin = copy.deepcopy(tr)
    before = copy.deepcopy(([r.ranking_scores().tolist() for r in tr.rungs],
                            tr.selector_state()))  # (the state's plain data shares lists)
    undo = tr.journal()
    feed(tr, 47, 4000.0)
    tr.withdraw(3, 1.0, 4100.0)
    assert ([r.ranking_scores().tolist() for r in tr.rungs], tr.selector_state()) != before
    tr.revert(undo)
    assert ([r.ranking_scores().tolist() for r in tr.rungs], tr.selector_state()) == before
    rng2 = rng.bit_generator.state
    feed(tr, 30, 9000.0)
    rng.bit_generator.state = rng2
    feed(twin, 30, 9000.0)
    assert tr.selector_state() == twin.selector_state()
    assert all(a.ranking_scores().tolist() == b.ranking_scores().tolist()
               for a, b in zip(tr.rungs, twin.rungs, strict=True))
