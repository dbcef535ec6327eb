"""Bot and shill guard: rate caps, the automated-behaviour verdict, honest ml-100k users, and
a bot attack on trending with and without the guard."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from models.guard import (
    GuardConfig,
    GuardStats,
    shared_weight,
    shared_weight_ring,
    verdict,
    withdrawn,
)
from models.history import EVENT_DTYPE
from models.trending import Trending
from producers.attack import AttackConfig, with_bot_attack
from producers.synth import SynthConfig, generate

ML100K = Path(os.environ.get(
    "REFOLD_ML100K", Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ml-100k"))


def share(times, items, weights=None, **cfg) -> float:
    times = np.asarray(times, dtype=np.float64)
    weights = np.ones(len(times)) if weights is None else np.asarray(weights, dtype=np.float64)
    return shared_weight(times, np.asarray(items), weights, GuardConfig(**cfg))[0]


def test_one_vote_per_item_and_repeat_period() -> None:
    assert share([0, 100], [7, 7]) == 0.0
    assert share([0, 86401], [7, 7]) == 1.0
    assert share([0, 100], [7, 8]) == 1.0
    assert share([0, 100], [7, 7], weights=[-1.0, 1.0]) == 1.0  # a dismiss is not a vote
    # a funnel adds up to its strongest event: 0.1 + 0.2 + 0.3 + 0.4 of the purchase's 1.0
    funnel = [0.1, 0.3, 0.6, 1.0]
    added = [share(np.arange(j + 1), [7] * (j + 1), funnel[: j + 1]) * funnel[j]
             for j in range(4)]
    assert added == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_positive_events_per_window_can_be_capped() -> None:
    times = np.arange(31) * 100.0  # ~36 an hour, all distinct items: human enough
    items = np.arange(31)
    assert share(times, items) == 1.0  # no cap by default
    assert share(times[:30], items[:30], max_per_window=30) == 1.0
    assert share(times, items, max_per_window=30) == 0.0
    assert share(times, items, max_per_window=30, window_seconds=1000.0) == 1.0


def test_disabled_guard_lets_everything_count() -> None:
    assert share(np.zeros(50), np.zeros(50), enabled=False) == 1.0


def test_verdict_flags_rate_regularity_and_breadth_separately() -> None:
    cfg = GuardConfig()
    rng = np.random.default_rng(0)
    fast = np.cumsum(rng.exponential(0.5, 20))  # two a second, bursty, all distinct items
    assert verdict(fast, np.arange(20), cfg).reasons == ("rate",)
    clock = np.arange(20) * 20.0  # every 20 s like a timer
    assert verdict(clock, np.arange(20), cfg).reasons == ("regularity",)
    slow_clock = np.arange(20) * 600.0  # a timer, but slower than people browse
    assert not verdict(slow_clock, np.arange(20), cfg).automated
    human = np.cumsum(rng.exponential(30.0, 20))
    assert verdict(human, np.repeat(np.arange(10), 2), cfg).reasons == ()
    assert verdict(human, np.zeros(20, dtype=np.int64), cfg).reasons == ("breadth",)
    assert not verdict(human[:19], np.zeros(19, dtype=np.int64), cfg).automated  # too few


def test_a_flagged_user_adds_the_bot_weight() -> None:
    times, items = np.arange(20) * 1.0, np.arange(20)
    assert share(times, items) == 0.0
    assert share(times, items, bot_weight=0.25) == 0.25


def test_the_ring_kernel_equals_the_array_version() -> None:
    rng = np.random.default_rng(4)
    cfg = GuardConfig(min_events=8, max_per_window=12)
    h = Ring(16)
    for j in range(200):
        t = j * float(rng.choice([1.0, 30.0, 300.0]))
        h.add(int(rng.integers(6)), float(rng.choice([-1.0, 0.1, 0.3, 1.0])), t)
        ev = h.events()
        share, judged = shared_weight(ev["time"], ev["item"], ev["weight"], cfg)
        assert shared_weight_ring(*h.ring(), cfg) == (share, judged.automated)


def test_a_newly_flagged_user_gives_back_what_their_ring_added() -> None:
    cfg = GuardConfig(min_events=5)
    ring = Ring(10)
    back = []
    for j in range(7):  # a timer on two items: regular from the 5th event on
        ring.add(j % 2, 1.0, 10.0 * j)
        back.append(withdrawn(*ring.ring(), cfg))
    assert back[:4] == [[]] * 4 and back[5:] == [[], []]  # flagged at the 5th, not again
    assert back[4] == [(0, 1.0, 0.0), (1, 1.0, 10.0)]  # the two first votes; repeats added 0
    assert withdrawn(*ring.ring(), GuardConfig(min_events=5, enabled=False)) == []


def test_stats_count_users_flagged_within_the_horizon() -> None:
    stats = GuardStats(horizon_seconds=100.0, max_users=2)
    stats.count("a", 0.0, 0.0, True)
    stats.count("b", 50.0, 0.0, True)
    stats.count("c", 60.0, 0.5, False)
    assert stats.automated_users() == 2 and stats.capped_events == 1
    stats.count("d", 120.0, 0.0, True)  # a is out of the horizon (and of the bound)
    assert stats.automated_users() == 2 and stats.automated_events == 3


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="bot_weight"):
        GuardConfig(bot_weight=2.0)
    with pytest.raises(ValueError, match="min_events"):
        GuardConfig(min_events=2)


@pytest.mark.slow
@pytest.mark.skipif(not ML100K.is_dir(), reason=f"no ml-100k at {ML100K}")
def test_no_ml100k_user_looks_automated() -> None:
    from producers.datasets import load_movielens

    log, _ = load_movielens(ML100K)
    flagged, users = guarded_replay(log, GuardConfig())[1:]
    assert not flagged, f"{len(flagged)} of {users} honest users flagged"


class Ring:
    """The part of a user's history the guard reads: a ring of their last events."""

    def __init__(self, size: int) -> None:
        self.buf, self.seq = np.zeros(size, dtype=EVENT_DTYPE), 0

    def add(self, item: int, weight: float, t: float) -> None:
        self.buf[self.seq % len(self.buf)] = (item, weight, t, self.seq, -1)
        self.seq += 1

    def events(self) -> np.ndarray:
        n = min(self.seq, len(self.buf))
        return np.roll(self.buf, -(self.seq % len(self.buf)))[-n:]

    def ring(self) -> tuple[np.ndarray, int, int]:
        return self.buf, self.seq, min(self.seq, len(self.buf))


def guarded_replay(log, guard: GuardConfig | None, partitions: int = 6, history: int = 50):
    """Replay `log` into per-partition trending, each positive event counted with the guard's
    share (all of it without a guard); returns the trending, the flagged users and the number
    of users."""
    trending = [Trending(7 * 86400.0) for _ in range(partitions)]
    histories: dict[str, Ring] = {}
    flagged: set[str] = set()
    items = {x: i for i, x in enumerate(np.unique(log.item_ids).tolist())}
    for u, x, t in zip(log.user_ids.tolist(), log.item_ids.tolist(), log.times.tolist(),
                       strict=True):
        h = histories.setdefault(u, Ring(history))
        i = items[x]
        h.add(i, 1.0, t)
        w = 1.0
        if guard is not None:
            w, automated = shared_weight_ring(*h.ring(), guard)
            if automated:
                flagged.add(u)
        if w > 0:
            trending[zlib.crc32(u.encode()) % partitions].update(i, w, t)
    trending.append(items)  # the caller looks the target's index up here
    return trending, flagged, len(histories)


@pytest.mark.slow
def test_a_bot_attack_does_not_reach_other_users_trending_lists() -> None:
    """50 bots purchase one unpopular item every ~10 s for a quarter of an hour each: without
    the guard it tops every partition's trending list, with it it enters none; the honest
    users' counts are untouched."""
    honest, catalog, _ = generate(SynthConfig(n_users=1000, n_items=500, n_events=30_000,
                                              days=7.0, seed=3))
    counts = {x: 0 for x in (it.item_id for it in catalog)}
    for x in honest.item_ids.tolist():
        counts[x] += 1
    target = sorted(counts, key=counts.get)[len(counts) // 2]  # a middling item
    attack = AttackConfig(n_bots=50, events_per_bot=100, target=target,
                          start=float(honest.times[-1]) - 3 * 3600, spread_seconds=3600.0,
                          cover=0.2)
    attacked = with_bot_attack(honest, attack)
    for guard, tops in [(None, True), (GuardConfig(), False)]:
        *trending, items = guarded_replay(attacked, guard)[0]
        i = items[target]
        in_top = [i in tr.top(10)[0].tolist() for tr in trending]
        assert all(in_top) if tops else not any(in_top), (guard, in_top)
    honest_only = guarded_replay(honest, GuardConfig())
    guarded = guarded_replay(attacked, GuardConfig())
    assert not honest_only[1]
    assert guarded[1] == {f"bot{k}" for k in range(50)}
    for a, b in zip(honest_only[0][:-1], guarded[0][:-1], strict=True):
        assert a.top(10)[0].tolist() == b.top(10)[0].tolist()
