"""The bot attack through the recommender: N bots hammering one item push it into every
partition's trending list and into other users' lists without the guard, and into none with
it; honest users' lists are the same as on the log without bots."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from models.recommender import FoldInConfig, OnlineRecommender
from producers.attack import AttackConfig, with_bot_attack
from producers.synth import SynthConfig, generate

PARTITIONS = 6


def replay(log, guard: bool) -> OnlineRecommender:
    rec = OnlineRecommender(FoldInConfig(k=10, guard=guard, trending_adaptive=False))
    for ev in log.iter_events("t"):
        rec.learn_event(ev, zlib.crc32(ev.user_id.encode()) % PARTITIONS)
    return rec


@pytest.fixture(scope="module")
def world():
    honest, _, _ = generate(SynthConfig(n_users=1000, n_items=500, n_events=30_000,
                                        days=7.0, seed=3))
    counts: dict[str, int] = {}
    for x in honest.item_ids.tolist():
        counts[x] = counts.get(x, 0) + 1
    target = sorted(counts, key=counts.__getitem__)[len(counts) // 2]  # a middling item
    attack = AttackConfig(n_bots=50, events_per_bot=100, target=target, cover=0.2,
                          start=float(honest.times[-1]) - 3600, spread_seconds=1800.0)
    return honest, with_bot_attack(honest, attack), target


def in_trending(rec: OnlineRecommender, item: str) -> list[bool]:
    i = rec.catalog.get(item)
    return [i in rec.partition(p).trending.top(10)[0].tolist() for p in range(PARTITIONS)]


def honest_lists(rec: OnlineRecommender, log, now: float) -> dict[str, list[str]]:
    users = sorted(set(log.user_ids.tolist()))[:300]
    return {u: r.items for u, r in zip(users, rec.recommend_many(users, [now] * len(users)),
                                        strict=True)}


@pytest.mark.slow
def test_without_the_guard_the_bots_item_reaches_everyone(world) -> None:
    honest, attacked, target = world
    rec = replay(attacked, guard=False)
    assert all(in_trending(rec, target))
    lists = honest_lists(rec, honest, float(attacked.times[-1]))
    assert sum(target in items for items in lists.values()) > 0.5 * len(lists)
    assert rec.guard_stats.automated_events == 0


@pytest.mark.slow
def test_with_the_guard_it_reaches_no_one_and_honest_lists_do_not_change(world) -> None:
    honest, attacked, target = world
    rec = replay(attacked, guard=True)
    assert not any(in_trending(rec, target))
    now = float(attacked.times[-1])
    lists = honest_lists(rec, honest, now)
    assert not any(target in items for items in lists.values())
    assert rec.guard_stats.automated_users() == 50
    assert rec.guard_stats.automated_events >= 50 * (100 - 20)
    clean = replay(honest, guard=True)
    same = np.mean([lists[u] == items for u, items in honest_lists(clean, honest, now).items()])
    assert same >= 0.95, same
