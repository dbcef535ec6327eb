"""The shared counts' own state through the local stores: the guard's verdicts (read from each
user's ring, which is the user's stored record) and the adaptive trending's choice (in each
partition's meta record) come out of a store-backed run exactly as out of an all-in-memory one,
with users evicted and read back from disk between batches, and a partition restored from its
store serves the same trending choice."""

from __future__ import annotations

import zlib

import pytest

from consumers import changelog
from consumers.state.local import LocalState
from consumers.state.users import StoredUsers
from models.expiry import Horizon
from models.history import UserHistory
from models.recommender import FoldInConfig, OnlineRecommender
from producers.attack import AttackConfig, with_bot_attack
from producers.synth import SynthConfig, generate

PARTITIONS = 3
BATCH = 64


@pytest.fixture(scope="module")
def events():
    honest, _, _ = generate(SynthConfig(n_users=150, n_items=120, n_events=4000, days=2.0,
                                        seed=5))
    attack = AttackConfig(n_bots=8, events_per_bot=60, target=str(honest.item_ids[0]),
                          start=float(honest.times[-1]) - 3600, spread_seconds=1800.0)
    return list(with_bot_attack(honest, attack).iter_events("t"))


def part_of(user: str) -> int:
    return zlib.crc32(user.encode()) % PARTITIONS


def recommender() -> OnlineRecommender:
    """Guard on, adaptive trending on (both the defaults, named here as what is tested)."""
    return OnlineRecommender(FoldInConfig(k=10, guard=True, trending_adaptive=True))


def stored(rec: OnlineRecommender, path, cache_users: int) -> StoredUsers:
    cfg = rec.config
    local = LocalState(path, "cl", new_history=lambda: UserHistory(
        cfg.history_size, cfg.max_age_seconds, cfg.max_excluded),
        item_ids=lambda: rec.catalog.ids, item_index=rec.catalog.index,
        cache_users=cache_users, user_horizon=Horizon(0.0), id_horizon=Horizon(0.0))
    for p in range(PARTITIONS):
        local.open(p)
    local.cache.on_evict = lambda user, _entry: rec.drop_user(user)
    users = StoredUsers(local)
    rec.users = users  # type: ignore[assignment]  # the same contract
    return users


def run(rec: OnlineRecommender, events, users: StoredUsers | None = None) -> list:
    """Process `events` in batches as the worker does; with `users`, each batch's users and
    partition records are staged and committed to the stores (the cache trimmed after)."""
    lists = []
    for at in range(0, len(events), BATCH):
        batch = events[at:at + BATCH]
        parts = [part_of(ev.user_id) for ev in batch]
        lists += [(ev.user_id, r.items) for ev, r in rec.process_batch(batch, parts)]
        if users is None:
            continue
        for user in dict.fromkeys(ev.user_id for ev in batch):
            users.local.stage_user(user)
        for p in sorted(set(parts)):
            plain = rec.partition_changes(p)
            for key, value in changelog.partition_records(p, plain, at, users.watermark(p)):
                users.local.stage_record(p, key, value)
        users.commit({})
    return lists


@pytest.mark.slow
def test_guard_and_adaptive_trending_survive_the_store(events, tmp_path) -> None:
    memory = recommender()
    want = run(memory, events)
    rec = recommender()
    users = stored(rec, tmp_path, cache_users=5)  # nearly every user read back from disk
    got = run(rec, events, users)
    assert memory.guard_stats.automated_users() == 8  # the bots were flagged ...
    assert rec.guard_stats.totals() == memory.guard_stats.totals()  # ... the same way
    assert rec.guard_stats.automated_users() == 8
    assert got == want
    chosen = {memory.partition(p).trending.half_life_seconds for p in range(PARTITIONS)}
    assert len(chosen) > 1  # the partitions' choices differ: restoring the default would fail
    for p in range(PARTITIONS):  # the meta records hold the trending choice ...
        meta = users.local.partition_records(p).meta
        assert meta is not None and "trend" in meta
        assert meta["trend"] == memory.partition(p).to_plain(memory.catalog.ids, None)["trend"]
    restored = OnlineRecommender(rec.config, catalog=rec.catalog)  # ... and a restore
    for p in range(PARTITIONS):
        restored.restore_partition(p, users.local.partition_records(p).plain())
        assert restored.partition(p).trending.half_life_seconds == \
            memory.partition(p).trending.half_life_seconds
        assert restored.partition(p).trending.top(10)[0].tolist() == \
            memory.partition(p).trending.top(10)[0].tolist()
