"""The interaction store: weights, decay, window, bounds, holdout and checkpoint."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from models.store import InteractionStore, StoreConfig
from models.weights import EventWeights
from refold.core.errors import ModelError

DAY = 86400.0


def dense(store: InteractionStore, **kw) -> dict[tuple[str, str], float]:
    d = store.training_data(**kw)
    m = d.matrix.tocoo()
    return {(d.user_ids[u], d.item_ids[i]): float(w) for u, i, w in zip(m.row, m.col, m.data,
                                                                         strict=True)}


def test_weights_are_the_consumers_event_weights():
    weights = EventWeights(view=0.05, ratings_as_positive=True)
    s = InteractionStore(weights=weights)
    assert s.add("u", "a", "view", 1.0) == pytest.approx(0.05)
    assert s.add("u", "b", "rating", 1.0, value=1.0) == 1.0
    assert s.add("u", "c", "click", 1.0, override=2.5) == 2.5
    assert s.add("u", "a", "dismiss", 1.0) == -1.0
    got = dense(s)
    assert got == pytest.approx({("u", "a"): 0.05 - 1.0, ("u", "b"): 1.0, ("u", "c"): 2.5})
    with pytest.raises(ModelError):
        s.add("u", "a", "like", 1.0)


def test_decay_is_exact_whatever_the_compaction_points():
    events = [("u1", "a", "purchase", t) for t in (0.0, 5.0, 30.0)] + [("u1", "b", "click", 20.0)]
    expected = {("u1", "a"): 2**-3 + 2**-2.5 + 1.0, ("u1", "b"): 0.3 * 2**-1}
    for buffer_size in (1, 2, 100):
        s = InteractionStore(StoreConfig(half_life_seconds=10.0, buffer_size=buffer_size))
        for e in events:
            s.add(*e)
        assert dense(s) == pytest.approx(expected, rel=1e-6)
    assert dense(s, reference_time=40.0) == pytest.approx(
        {k: v / 2 for k, v in expected.items()}, rel=1e-6)


def test_window_keeps_only_the_last_days_of_event_time():
    s = InteractionStore(StoreConfig.days(2, buffer_size=1))
    for day, item in enumerate("abcde"):
        s.add("u", item, "click", day * DAY)
    assert sorted(i for _, i in dense(s)) == ["c", "d", "e"]
    assert s.evicted == 2


def test_caps_evict_the_oldest_users_items_and_entries():
    s = InteractionStore(StoreConfig(max_users=3, max_items=100, max_nnz=1000, buffer_size=1))
    for t, user in enumerate(["u1", "u2", "u3", "u4", "u2"]):
        s.add(user, "a", "click", float(t))
    assert {u for u, _ in dense(s)} == {"u2", "u3", "u4"}
    s = InteractionStore(StoreConfig(max_items=2, buffer_size=1))
    for t, item in enumerate("abcb"):
        s.add("u", item, "click", float(t))
    assert {i for _, i in dense(s)} == {"b", "c"}
    s = InteractionStore(StoreConfig(max_nnz=4, buffer_size=1))
    for t in range(10):
        s.add(f"u{t}", f"i{t}", "click", float(t))
    assert sorted(dense(s)) == [(f"u{t}", f"i{t}") for t in range(6, 10)]


@pytest.mark.slow
def test_memory_bound_holds_under_a_stream_far_beyond_the_caps():
    cfg = StoreConfig(max_users=2000, max_items=500, max_nnz=5000, buffer_size=2000)
    rng = np.random.default_rng(1)
    users = rng.integers(0, 5000, 100_000).tolist()
    items = rng.integers(0, 1000, 100_000).tolist()
    tracemalloc.start()
    s = InteractionStore(cfg)
    base = tracemalloc.get_traced_memory()[0]
    held, estimated = 0, 0
    for n, (u, i) in enumerate(zip(users, items, strict=True)):
        s.add(f"user-{u}", f"item-{i}", "click", float(n))
        if n % 10_000 == 9_999:
            held = max(held, tracemalloc.get_traced_memory()[0] - base)
            estimated = max(estimated, s.memory_bytes())
            assert s.memory_bytes() <= s.memory_bound(max_id_chars=12)
    tracemalloc.stop()
    s.compact()
    st = s.stats()
    assert 0 < st["nnz"] <= cfg.max_nnz
    assert st["events"] == 100_000 and st["evicted"] > 50_000
    entries = s.training_data().full  # users x items with at least one entry
    assert (entries.getnnz(axis=1) > 0).sum() <= cfg.max_users
    assert (entries.getnnz(axis=0) > 0).sum() <= cfg.max_items
    assert st["users"] <= 1.1 * cfg.max_users + 1000
    # The estimate is honest: what Python really holds is near it, and within the bound.
    assert held <= s.memory_bound(max_id_chars=12)
    assert 0.5 * held <= estimated <= 2 * held


def test_holdout_is_the_most_recent_entries_and_disjoint_from_training():
    s = InteractionStore(StoreConfig(buffer_size=7))
    for t in range(100):
        s.add(f"u{t % 10}", f"i{t}", "purchase" if t % 3 else "dismiss", float(t))
    d = s.training_data(holdout_fraction=0.1)
    train = d.matrix.tocoo()
    held = d.holdout.tocoo()
    held_items = {d.item_ids[i] for i in held.col}
    assert held_items == {f"i{t}" for t in range(90, 100) if t % 3}  # positives only
    assert not held_items & {d.item_ids[i] for i in train.col}
    assert d.full.nnz == 100 and train.nnz == 90
    assert (abs(d.full - d.matrix).tocsr()[held.row, held.col] == 1).all()
    # Only pairs wholly after `holdout_after` are held out: the live model saw none of them.
    s.add("u1", "i1", "purchase", 99.5)
    d = s.training_data(holdout_fraction=0.1, holdout_after=94.0)
    assert {d.item_ids[i] for i in d.holdout.tocoo().col} == {"i95", "i97", "i98"}


def test_checkpoint_round_trip_without_pickle():
    s = InteractionStore(StoreConfig(half_life_seconds=DAY, max_users=50, buffer_size=13))
    rng = np.random.default_rng(0)
    for t in range(500):
        s.add(f"u{rng.integers(80)}", f"i{rng.integers(40)}", "click", 1e9 + t * 60.0)
    s.meta["offsets"] = {"3": 42}
    blob = bytes(s.to_bytes())
    assert blob.startswith(b"RFLDSTO1") and b"pickle" not in blob
    back = InteractionStore.from_bytes(blob)
    assert back.meta == {"offsets": {"3": 42}} and back.stats() == s.stats()
    assert back.config == s.config
    assert dense(back) == dense(s)
    with pytest.raises(ModelError):
        InteractionStore.from_bytes(blob[:40])
