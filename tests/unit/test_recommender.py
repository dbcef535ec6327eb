"""OnlineRecommender: batches equal sequential processing, exclusions, swaps, checkpoints."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from models.foldin import ItemFactors, residuals
from models.recommender import FoldInConfig, OnlineRecommender, Recs
from refold.core.errors import ModelError

N_ITEMS, K = 60, 4
IDS = [f"i{n}" for n in range(N_ITEMS)]
TYPES = ["view", "click", "add_to_cart", "purchase", "bookmark", "dismiss"]


def factors(seed: int = 0, version: int = 1) -> ItemFactors:
    Y = np.random.default_rng(seed).normal(size=(N_ITEMS, K)).astype(np.float32)
    return ItemFactors(IDS, Y, version=version)


def events(n: int, users: int, seed: int, new_items: bool = True, t0: float = 0.0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for j in range(n):
        item = f"new{rng.integers(3)}" if new_items and rng.random() < 0.1 else IDS[
            int(rng.integers(N_ITEMS))]
        out.append(SimpleNamespace(
            user_id=f"u{rng.integers(users)}", item_id=item,
            event_type=TYPES[int(rng.integers(len(TYPES)))], event_time=t0 + j,
            value=None, weight=None, session_id=f"s{j // 7}"))
    return out


def config(**kw: object) -> FoldInConfig:
    base = dict(alpha=5.0, regularization=0.1, k=8, full_events=6, shrink=3.0,
                session_boost=2.0, trending_half_life_seconds=50.0)
    return FoldInConfig(**{**base, **kw})  # type: ignore[arg-type]


def same(a: Recs, b: Recs) -> None:
    assert (a.user_id, a.items, a.source, a.model_version) == (
        b.user_id, b.items, b.source, b.model_version)
    assert a.scores == pytest.approx(b.scores, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("decay", ["events", "time"])
def test_process_batch_equals_sequential_learn_then_recommend(decay: str) -> None:
    """Each user's list is the one recommended right after its last event of the batch."""
    batched, sequential = (OnlineRecommender(config(decay=decay, half_life_seconds=30.0),
                                             factors()) for _ in range(2))
    sources = set()
    for lo in range(0, 400, 100):
        batch = events(100, 25, seed=lo)
        out = batched.process_batch(batch)
        last = {ev.user_id: ev for ev in batch}
        expected = {}
        for ev in batch:
            sequential.learn_event(ev)
            if last[ev.user_id] is ev:
                expected[ev.user_id] = sequential.recommend(ev.user_id, now=ev.event_time)
        users = [ev.user_id for ev, _ in out]
        assert len(set(users)) == len(users) == len({ev.user_id for ev in batch})
        for ev, recs in out:
            assert ev is last[ev.user_id]  # the last event
            same(recs, expected[ev.user_id])
            sources.add(recs.source)
    assert sources == {"collaborative", "popular"}  # cold users and warm ones were both seen


def test_batch_results_equal_per_event_results_for_collaborative_users() -> None:
    warm = events(600, 10, seed=1, new_items=False)
    a, b = (OnlineRecommender(config(), factors()) for _ in range(2))
    for rec in (a, b):
        for ev in warm:
            rec.learn_event(ev)
    batch = events(40, 10, seed=2, new_items=False, t0=1000.0)
    per_event = {}
    for ev in batch:
        b.learn_event(ev)
        per_event[ev.user_id] = b.recommend(ev.user_id, now=ev.event_time)
    out = a.process_batch(batch)
    assert all(r.source == "collaborative" for _, r in out)
    for ev, recs in out:
        same(recs, per_event[ev.user_id])


def test_fold_in_matches_implicit_recommend_recalculate_user() -> None:
    rng = np.random.default_rng(5)
    m = sp.random(50, N_ITEMS, density=0.2, random_state=3, format="csr", dtype=np.float32)
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(factors=K, iterations=4, regularization=0.1, alpha=5.0,
                                      random_state=0, num_threads=1)
        als.fit(m, show_progress=False)
    rec = OnlineRecommender(config(decay="none", k=10, full_events=1),
                            ItemFactors(IDS, als.item_factors, version=9))
    items = rng.choice(N_ITEMS, 8, replace=False)
    w = rng.uniform(0.2, 2.0, 8).astype(np.float32)
    for i, x in zip(items, w, strict=True):
        rec.learn("u", IDS[i], "purchase", t=0.0, weight=float(x))
    row = sp.csr_matrix((w, (np.zeros(8, int), items)), shape=(1, N_ITEMS))
    ids, _ = als.recommend(0, row, N=10, recalculate_user=True)
    got = rec.recommend("u", now=0.0)
    assert got.source == "collaborative" and got.model_version == 9
    assert got.items == [IDS[i] for i in ids]


def warmed(cfg: FoldInConfig | None = None) -> OnlineRecommender:
    rec = OnlineRecommender(cfg or config(), factors())
    for ev in events(300, 5, seed=3, new_items=False):
        rec.learn_event(ev)
    return rec


def test_dismissed_and_consumed_items_are_excluded_viewed_ones_not() -> None:
    rec = warmed()
    top = rec.recommend("u1", now=500.0).items
    rec.learn("u1", top[0], "dismiss", t=501.0)
    rec.learn("u1", top[1], "purchase", t=502.0)
    rec.learn("u1", top[2], "view", t=503.0)
    after = rec.recommend("u1", now=503.0, k=N_ITEMS).items
    assert top[0] not in after and top[1] not in after and top[2] in after


def test_inactive_items_are_never_recommended() -> None:
    rec = warmed()
    top = rec.recommend("u2", now=500.0).items
    rec.set_item_active(top[0], False)
    assert top[0] not in rec.recommend("u2", now=500.0, k=N_ITEMS).items
    assert top[0] not in rec.recommend("nobody", now=500.0, k=N_ITEMS).items
    rec.set_item_active(top[0], True)
    assert rec.recommend("u2", now=500.0).items == top


def test_swap_factors_recomputes_stale_vectors() -> None:
    rec = warmed()
    before = rec.recommend("u3", now=500.0)
    rec.swap_factors(factors(seed=42, version=2))
    after = rec.recommend("u3", now=500.0)
    fresh = OnlineRecommender(config(), factors(seed=42, version=2))
    for ev in events(300, 5, seed=3, new_items=False):
        fresh.learn_event(ev)
    assert after.model_version == 2 and after.items != before.items
    same(after, fresh.recommend("u3", now=500.0))


def test_prepared_swap_equals_inline_swap_with_items_indexed_in_between() -> None:
    """`prepare_factors` runs on another thread while events index new items; the swap places
    them, so serving is as if the whole swap ran between batches."""
    inline, prepared = warmed(), warmed()
    new = ItemFactors([*IDS, "late0", "late1"], np.random.default_rng(7).normal(
        size=(N_ITEMS + 2, K)).astype(np.float32), version=2)
    ready = prepared.prepare_factors(new)
    assert list(ready.missing) == [N_ITEMS, N_ITEMS + 1] and ready.version == 2
    for rec in (inline, prepared):
        rec.set_item_active("late1", True, ["shoes"])  # indexed after the preparation
        rec.learn("u2", "late1", "purchase", t=400.0)
    inline.swap_factors(new)
    prepared.swap_factors(ready)
    assert prepared.model_version == 2
    for user in ("u1", "u2", "u3"):
        same(inline.recommend(user, now=500.0), prepared.recommend(user, now=500.0))


def test_process_batch_reports_the_mean_user_vector_norm_and_residual() -> None:
    rec = OnlineRecommender(config(full_events=1), factors())
    assert rec.batch_vector_norm is None and rec.batch_residual is None
    results = rec.process_batch(events(20, 3, seed=1, new_items=False))
    assert rec.batch_vector_norm is not None and rec.batch_vector_norm > 0
    # the residual is the mean over the batch's users of their own residuals
    users = [ev.user_id for ev, _ in results]
    plans = rec.plans(users, [ev.event_time for ev, _ in results])
    vecs = rec.user_vectors(plans)
    each = residuals(rec.served.current.factors.Y, np.stack(vecs), [p.rows for p in plans],
                     [p.row_weights for p in plans])
    assert rec.batch_residual == pytest.approx(float(each.mean()))
    assert 0 < rec.batch_residual < 10
    popular = OnlineRecommender(config(), None)
    popular.process_batch(events(5, 2, seed=1))
    assert popular.batch_vector_norm is None and popular.batch_residual is None


def test_residuals_are_zero_when_the_vector_explains_the_items() -> None:
    Y = np.eye(3, dtype=np.float32)
    rows, weights = [np.array([0, 2])], [np.array([2.0, -1.0])]  # liked 0, disliked 2
    assert residuals(Y, np.array([[1.0, 0.7, 0.0]]), rows, weights).tolist() == [0.0]
    assert residuals(Y, np.array([[0.0, 0.0, 1.0]]), rows, weights).tolist() == [1.0]


def test_user_state_restores_in_another_process_with_other_indices() -> None:
    rec = warmed()
    rec.learn("u4", IDS[7], "dismiss", t=600.0)
    state = json.loads(json.dumps(rec.user_state("u4")))
    other = OnlineRecommender(config(), None)
    for item_id in reversed(IDS):  # a different index order
        other.catalog.index(item_id)
    other.swap_factors(factors())
    other.restore_user("u4", state)
    # the partition's state too (co-visits), as the worker restores both
    other.restore_partition(0, json.loads(json.dumps(
        rec.partition(0).to_plain(rec.catalog.ids, rec.model_version))))
    mine, theirs = rec.recommend("u4", now=600.0), other.recommend("u4", now=600.0)
    assert mine.items == theirs.items and IDS[7] not in theirs.items
    assert rec.user_state("nobody") is None
    other.drop_user("u4")
    assert other.recommend("u4", now=600.0).source == "popular"


def test_time_decay_recomputes_the_vector_at_each_now() -> None:
    cfg = config(decay="time", half_life_seconds=20.0)
    rec = warmed(cfg)
    rec.recommend("u0", now=300.0)
    later = rec.recommend("u0", now=400.0)
    fresh = warmed(cfg)
    same(later, fresh.recommend("u0", now=400.0))


def test_learn_returns_the_weight_and_rejects_unknown_types_untouched() -> None:
    rec = warmed()
    assert rec.learn("u9", IDS[0], "click", t=1.0) == 0.3
    assert rec.learn("u9", IDS[0], "rating", t=1.0, value=4.0) == 0.5
    before = rec.user_state("u9")
    with pytest.raises(ModelError, match="'like'"):
        rec.learn("u9", IDS[1], "like", t=2.0)
    assert rec.user_state("u9") == before


def test_config_from_mapping() -> None:
    cfg = FoldInConfig.from_mapping({"alpha": 4.0, "exclude_types": ["purchase"],
                                     "weights": {"view": 0.2}})
    assert cfg.alpha == 4.0 and cfg.exclude_types == frozenset({"purchase"})
    assert cfg.weights.view == 0.2
    with pytest.raises(ModelError, match="alpah"):
        FoldInConfig.from_mapping({"alpah": 1.0})
    from refold.core.config import Settings

    s = Settings()
    cfg = FoldInConfig.from_mapping(s.model_dump(exclude={"event_weights"}), strict=False)
    assert (cfg.k, cfg.alpha, cfg.history_size) == (s.k, s.alpha, s.history_size)
    assert cfg.decay_spec().mode == s.decay


@pytest.mark.parametrize(("setting", "expected"), [
    ({"session_weight": "x"}, "expected float"), ({"k": 2.5}, "expected int"),
    ({"k": True}, "expected int"), ({"guard": 1}, "expected bool"),
    ({"full_events": "20"}, "expected int | None"),
    ({"decay": "weekly"}, "expected one of 'events', 'time', 'none'"),
    ({"trending_half_lives": (60.0, "1h")}, r"expected tuple\[float, ...\]"),
    ({"exclude_types": ["purchase", 3]}, r"expected frozenset\[str\]"),
])
def test_config_refuses_a_value_of_the_wrong_type(setting, expected) -> None:
    with pytest.raises(ModelError, match=f"{next(iter(setting))}=.*{expected}"):
        FoldInConfig.from_mapping(setting)


def test_config_takes_whole_numbers_for_floats_and_none_where_allowed() -> None:
    cfg = FoldInConfig.from_mapping({"session_weight": 0, "max_age_seconds": 3600,
                                     "full_events": None, "trending_half_lives": (60, 3600.0)})
    assert (cfg.session_weight, cfg.max_age_seconds, cfg.full_events) == (0, 3600, None)


def test_basis_is_the_latest_positive_items_newest_first() -> None:
    rec = OnlineRecommender(config(), factors())
    assert rec.basis("nobody") == []
    kinds = ["click", "view", "dismiss", "purchase", "click", "click", "bookmark", "view"]
    for t, (item, kind) in enumerate(zip(IDS[:8], kinds, strict=True)):
        rec.learn_event(SimpleNamespace(user_id="u", item_id=item, event_type=kind,
                                        event_time=float(t), value=None, weight=None,
                                        session_id=None))
    assert rec.basis("u") == ["i7", "i6", "i5", "i4", "i3"]  # i2 was dismissed
    assert rec.basis("u", n=2) == ["i7", "i6"]
